package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/daemon"
	"github.com/scanwarden/scanwarden/detect"
)

// The kernel tests run the real blocking path (iptables through
// go-iptables, hosts.deny, the state file, the CLI) inside network
// namespaces made for the test: a victim, an attacker and a benign client
// on a bridge, 198.51.100.0/24 and fd00:77::/64, no default route. The
// test binary re-executes itself under `ip netns exec` for what must run
// inside a namespace (childEnv names the role).

const childEnv = "SCANWARDEN_TEST_CHILD"

type lab struct {
	t      *testing.T
	prefix string
	dir    string
	// daemon is the PID of the last daemon startDaemon started.
	daemon int
	// hosts counts the namespaces on the bridge (addHost).
	hosts int
}

var (
	labVictim4   = netip.MustParseAddr("198.51.100.241")
	labAttacker4 = netip.MustParseAddr("198.51.100.242")
	labBenign4   = netip.MustParseAddr("198.51.100.243")
	labVictim6   = netip.MustParseAddr("fd00:77::241")
	labAttacker6 = netip.MustParseAddr("fd00:77::242")
	labBenign6   = netip.MustParseAddr("fd00:77::243")
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and firewall rules")
	}
	for _, tool := range []string{"ip", "iptables", "ip6tables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (l *lab) ns(role string) string { return l.prefix + "-" + role }

// newLab builds the namespaces and tears them down at the end of the test.
func newLab(t *testing.T) *lab {
	needRoot(t)
	l := &lab{t: t, prefix: fmt.Sprintf("swk%d", os.Getpid()%100000), dir: t.TempDir()}
	lan := l.ns("lan")
	t.Cleanup(func() {
		for _, r := range []string{"victim", "attacker", "benign", "lan"} {
			exec.Command("ip", "netns", "del", l.ns(r)).Run()
		}
	})
	sh(t, "ip", "netns", "add", lan)
	sh(t, "ip", "-n", lan, "link", "add", "br0", "type", "bridge")
	sh(t, "ip", "-n", lan, "link", "set", "br0", "up")
	l.addHost("victim", labVictim4, labVictim6)
	l.addHost("attacker", labAttacker4, labAttacker6)
	l.addHost("benign", labBenign4, labBenign6)
	return l
}

// addHost adds role's namespace to the lab's bridge, with v4 and v6 on
// its eth0; the namespace is deleted at the end of the test.
func (l *lab) addHost(role string, v4, v6 netip.Addr) {
	t := l.t
	t.Helper()
	ns, lan := l.ns(role), l.ns("lan")
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	l.hosts++
	peer := fmt.Sprintf("p%d", l.hosts)
	sh(t, "ip", "-n", lan, "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", ns)
	sh(t, "ip", "-n", lan, "link", "set", peer, "master", "br0", "up")
	sh(t, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.eth0.accept_dad=0")
	sh(t, "ip", "-n", ns, "addr", "add", v4.String()+"/24", "dev", "eth0")
	sh(t, "ip", "-n", ns, "addr", "add", v6.String()+"/64", "dev", "eth0", "nodad")
	sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	sh(t, "ip", "-n", ns, "link", "set", "eth0", "up")
}

// child runs this test binary in role's namespace as the given child
// action and returns its combined output.
func (l *lab) child(role, action string, env ...string) (string, error) {
	cmd := exec.Command("ip", "netns", "exec", l.ns(role), os.Args[0], "-test.run=^TestKernelChild$", "-test.v")
	cmd.Env = append(os.Environ(), append(env, childEnv+"="+action, "SCANWARDEN_TEST_DIR="+l.dir)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// start starts a long-running child (the victim's listeners) and stops it
// at the end of the test.
func (l *lab) start(role, action string) {
	cmd := exec.Command("ip", "netns", "exec", l.ns(role), os.Args[0], "-test.run=^TestKernelChild$")
	cmd.Env = append(os.Environ(), childEnv+"="+action, "SCANWARDEN_TEST_DIR="+l.dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
}

// reach reports whether role can open a TCP connection to the victim and
// get a UDP answer from it, over IPv4 and IPv6.
func (l *lab) reach(role string) (tcp4, udp4, tcp6, udp6 bool) {
	out, _ := l.child(role, "probe")
	return strings.Contains(out, "tcp4 ok"), strings.Contains(out, "udp4 ok"), strings.Contains(out, "tcp6 ok"), strings.Contains(out, "udp6 ok")
}

// config writes the lab's config: the lines of first (which win, as the
// first setting of a key does), then the lab's paths and iptables.
func (l *lab) config(first ...string) string {
	return l.configIn(l.dir, first...)
}

// configIn is config, with the config, state and record files in dir.
func (l *lab) configIn(dir string, first ...string) string {
	p := filepath.Join(dir, "scanwarden.conf")
	text := strings.Join(append(first, ""), "\n") + fmt.Sprintf(`STATE_DIR=%q
HOSTS_DENY_FILE=%q
HISTORY_FILE=%q
BLOCKED_FILE=%q
IGNORE_FILE=""
BLOCK_BACKEND="iptables"
KILL_HOSTS_DENY="ALL: $TARGET$ : DENY"
`, filepath.Join(dir, "state"), filepath.Join(dir, "hosts.deny"), filepath.Join(dir, "history"), filepath.Join(dir, "blocked"))
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return p
}

const labPort = 7777

// waitUntil polls ok every 100 ms for 20 s at most.
func waitUntil(t *testing.T, what string, ok func() bool, logs ...*syncBuffer) {
	t.Helper()
	waitWithin(t, 20*time.Second, what, ok, logs...)
}

// waitWithin is waitUntil with a time limit of its own.
func waitWithin(t *testing.T, limit time.Duration, what string, ok func() bool, logs ...*syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			var b strings.Builder
			for i, l := range logs {
				fmt.Fprintf(&b, "--- log %d:\n%s\n", i+1, l)
			}
			t.Fatalf("timed out waiting for %s\n%s", what, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLogged is waitUntil for text to appear in log (shown, with more,
// when it does not).
func waitLogged(t *testing.T, what string, log *syncBuffer, text string, more ...*syncBuffer) {
	t.Helper()
	waitUntil(t, what, func() bool { return strings.Contains(log.String(), text) }, append([]*syncBuffer{log}, more...)...)
}

// hitTrap makes one connection attempt from src (an address of the
// attacker) at the victim's trap port 31337, which must not answer.
func (l *lab) hitTrap(src netip.Addr) {
	l.t.Helper()
	l.hitTrapOf(src, labVictim4)
}

// hitTrapOf is hitTrap at dst, a victim of the lab.
func (l *lab) hitTrapOf(src, dst netip.Addr) {
	l.t.Helper()
	if out := l.attack("connect", src.String(), dst.String(), "31337"); !strings.Contains(out, "fail") {
		l.t.Fatalf("the trap port of %s answered:\n%s", dst, out)
	}
}

// TestKernelChild is the body of the children; it does nothing in a
// normal run.
func TestKernelChild(t *testing.T) {
	action := os.Getenv(childEnv)
	if action == "" {
		t.Skip("only runs as a child of the kernel tests")
	}
	dir := os.Getenv("SCANWARDEN_TEST_DIR")
	cfg := filepath.Join(dir, "scanwarden.conf")
	switch action {
	case "serve":
		serveLab(t)
	case "probe":
		probeLab(t)
	case "block":
		// block the attacker's two addresses as the daemon would
		c, err := daemon.LoadConfig(cfg, true)
		if err != nil {
			t.Fatal(err)
		}
		m, closeM, err := daemon.OpenManager(c, newCLILogger(os.Stderr))
		if err != nil {
			t.Fatal(err)
		}
		defer closeM()
		for _, a := range []netip.Addr{labAttacker4, labAttacker6, labAttacker4} {
			out, err := m.Handle(context.Background(), &detect.Alert{Src: a, Type: detect.TypeSYN, Trigger: detect.TriggerTrap, Port: 111, Probes: 1}, "stcp")
			fmt.Printf("handle %s: %v %v\n", a, out, err)
			if err != nil {
				t.Fatal(err)
			}
		}
		if os.Getenv("SCANWARDEN_TEST_HANG") != "" {
			fmt.Println("hanging")
			time.Sleep(time.Hour)
		}
	case "restore":
		c, err := daemon.LoadConfig(cfg, true)
		if err != nil {
			t.Fatal(err)
		}
		m, closeM, err := daemon.OpenManager(c, newCLILogger(os.Stderr))
		if err != nil {
			t.Fatal(err)
		}
		defer closeM()
		if err := m.Restore(context.Background()); err != nil {
			t.Fatal(err)
		}
	case "get":
		// an HTTP GET from inside the namespace: the body between markers
		c := http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(os.Getenv("SCANWARDEN_TEST_URL"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %v\n%s", resp.Status, err, body)
		}
		fmt.Printf("=== body\n%s\n=== end of body\n", body)
	case "cli":
		args := strings.Fields(os.Getenv("SCANWARDEN_TEST_ARGS"))
		var o, e bytes.Buffer
		code := realMain(args, &o, &e)
		fmt.Printf("%s%s", o.String(), e.String())
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	default:
		t.Fatalf("unknown child action %q", action)
	}
}

func serveLab(t *testing.T) {
	for _, a := range []netip.Addr{labVictim4, labVictim6} {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(a, labPort).String())
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Write([]byte("hello\n"))
				c.Close()
			}
		}()
		pc, err := net.ListenPacket("udp", netip.AddrPortFrom(a, labPort).String())
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(buf[:n], from)
			}
		}()
	}
	select {}
}

func probeLab(t *testing.T) {
	for _, v := range []struct {
		name string
		a    netip.Addr
	}{{"4", labVictim4}, {"6", labVictim6}} {
		addr := netip.AddrPortFrom(v.a, labPort).String()
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			buf := make([]byte, 6)
			c.SetReadDeadline(time.Now().Add(time.Second))
			if n, _ := c.Read(buf); n > 0 {
				fmt.Printf("tcp%s ok\n", v.name)
			}
			c.Close()
		} else {
			fmt.Printf("tcp%s fail: %v\n", v.name, err)
		}
		if c, err := net.Dial("udp", addr); err == nil {
			ok := false
			for i := 0; i < 3 && !ok; i++ {
				c.Write([]byte("ping"))
				c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				buf := make([]byte, 16)
				if n, err := c.Read(buf); err == nil && string(buf[:n]) == "ping" {
					ok = true
				}
			}
			if ok {
				fmt.Printf("udp%s ok\n", v.name)
			} else {
				fmt.Printf("udp%s fail\n", v.name)
			}
			c.Close()
		}
	}
}

func countLines(s, sub string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

// TestKernelBlockUnblock: a blocked attacker's TCP connections and UDP
// datagrams stop arriving (IPv4 and IPv6), the benign neighbour's do not,
// hosts.deny has one entry per source, unblock restores reachability, and
// a restart after kill -9 leaves exactly one rule per blocked source.
func TestKernelBlockUnblock(t *testing.T) {
	l := newLab(t)
	l.config()
	l.start("victim", "serve")
	// wait for the listeners
	deadline := time.Now().Add(5 * time.Second)
	for {
		if t4, u4, t6, u6 := l.reach("attacker"); t4 && u4 && t6 && u6 {
			break
		}
		if time.Now().After(deadline) {
			out, _ := l.child("attacker", "probe")
			t.Fatalf("lab not reachable before blocking:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}

	if out, err := l.child("victim", "block"); err != nil {
		t.Fatalf("block: %v\n%s", err, out)
	}
	if t4, u4, t6, u6 := l.reach("attacker"); t4 || u4 || t6 || u6 {
		t.Fatalf("attacker still reaches the victim: tcp4 %v udp4 %v tcp6 %v udp6 %v", t4, u4, t6, u6)
	}
	if t4, u4, t6, u6 := l.reach("benign"); !(t4 && u4 && t6 && u6) {
		t.Fatalf("benign client cut off: tcp4 %v udp4 %v tcp6 %v udp6 %v", t4, u4, t6, u6)
	}
	deny, err := os.ReadFile(filepath.Join(l.dir, "hosts.deny"))
	if err != nil {
		t.Fatal(err)
	}
	if string(deny) != "ALL: 198.51.100.242 : DENY\nALL: [fd00:77::242] : DENY\n" {
		t.Fatalf("hosts.deny:\n%s", deny)
	}
	// the rules are in the raw table (dropped at prerouting)
	rules4 := sh(t, "ip", "netns", "exec", l.ns("victim"), "iptables", "-t", "raw", "-S")
	rules6 := sh(t, "ip", "netns", "exec", l.ns("victim"), "ip6tables", "-t", "raw", "-S")
	if countLines(rules4, "198.51.100.242") != 1 || countLines(rules6, "fd00:77::242") != 1 {
		t.Fatalf("rules:\n%s\n%s", rules4, rules6)
	}
	hist, _ := os.ReadFile(filepath.Join(l.dir, "history"))
	if countLines(string(hist), "Port: 111 TCP Blocked") != 2 {
		t.Fatalf("history:\n%s", hist)
	}

	// list, then unblock through the CLI
	out, err := l.child("victim", "cli", "SCANWARDEN_TEST_ARGS=list -c "+filepath.Join(l.dir, "scanwarden.conf"))
	if err != nil || !strings.Contains(out, "198.51.100.242") || !strings.Contains(out, "fd00:77::242") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, err = l.child("victim", "cli", "SCANWARDEN_TEST_ARGS=unblock -c "+filepath.Join(l.dir, "scanwarden.conf")+" 198.51.100.242 fd00:77::242")
	if err != nil {
		t.Fatalf("unblock: %v\n%s", err, out)
	}
	if t4, u4, t6, u6 := l.reach("attacker"); !(t4 && u4 && t6 && u6) {
		t.Fatalf("unblocked attacker still cut off: tcp4 %v udp4 %v tcp6 %v udp6 %v", t4, u4, t6, u6)
	}
	if deny, _ := os.ReadFile(filepath.Join(l.dir, "hosts.deny")); len(deny) != 0 {
		t.Fatalf("hosts.deny after unblock:\n%s", deny)
	}

	// kill -9 in the middle of blocking, then a restart: one rule each
	cmd := exec.Command("ip", "netns", "exec", l.ns("victim"), os.Args[0], "-test.run=^TestKernelChild$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"=block", "SCANWARDEN_TEST_DIR="+l.dir, "SCANWARDEN_TEST_HANG=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	hung := false
	for sc := bufio.NewScanner(stdout); sc.Scan(); {
		if strings.Contains(sc.Text(), "hanging") {
			hung = true
			break
		}
	}
	// ip netns exec execs the test binary in place: the PID is the child's
	cmd.Process.Signal(syscall.SIGKILL)
	go io.Copy(io.Discard, stdout)
	cmd.Wait()
	if !hung {
		t.Fatal("the blocking child ended before it could be killed")
	}
	// and a second time, then restore twice: still one rule per source
	if out, err := l.child("victim", "block"); err != nil {
		t.Fatalf("block again: %v\n%s", err, out)
	}
	for i := 0; i < 2; i++ {
		if out, err := l.child("victim", "restore"); err != nil {
			t.Fatalf("restore: %v\n%s", err, out)
		}
	}
	rules4 = sh(t, "ip", "netns", "exec", l.ns("victim"), "iptables", "-t", "raw", "-S")
	rules6 = sh(t, "ip", "netns", "exec", l.ns("victim"), "ip6tables", "-t", "raw", "-S")
	jumps4 := sh(t, "ip", "netns", "exec", l.ns("victim"), "iptables", "-t", "raw", "-S", "PREROUTING")
	if countLines(rules4, "198.51.100.242") != 1 || countLines(rules6, "fd00:77::242") != 1 || countLines(jumps4, "-j SCANWARDEN") != 1 {
		t.Fatalf("after kill -9 and restarts:\n%s\n%s", rules4, rules6)
	}
	if deny, _ := os.ReadFile(filepath.Join(l.dir, "hosts.deny")); countLines(string(deny), "198.51.100.242") != 1 {
		t.Fatalf("hosts.deny after restarts:\n%s", deny)
	}

	// flush removes everything scanwarden added and nothing else
	sh(t, "ip", "netns", "exec", l.ns("victim"), "iptables", "-I", "INPUT", "-s", "192.0.2.99", "-j", "DROP")
	out, err = l.child("victim", "cli", "SCANWARDEN_TEST_ARGS=flush -c "+filepath.Join(l.dir, "scanwarden.conf"))
	if err != nil {
		t.Fatalf("flush: %v\n%s", err, out)
	}
	rules4 = sh(t, "ip", "netns", "exec", l.ns("victim"), "iptables", "-S")
	raw4 := sh(t, "ip", "netns", "exec", l.ns("victim"), "iptables", "-t", "raw", "-S")
	if strings.Contains(rules4, "SCANWARDEN") || strings.Contains(raw4, "SCANWARDEN") || !strings.Contains(rules4, "192.0.2.99") {
		t.Fatalf("after flush:\n%s\nraw:\n%s", rules4, raw4)
	}
}
