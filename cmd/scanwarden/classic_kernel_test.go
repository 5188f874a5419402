package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/block"
)

// The classic modes in the namespace lab: the real binary started twice in
// the victim namespace, as PortSentry's guide starts portsentry -tcp and
// portsentry -udp, on one config and one state directory. The -tcp daemon
// runs without CAP_NET_BIND_SERVICE (as under the shipped systemd unit), so
// that its privileged trap port can only be watched by packet capture.

const classicChildEnv = "SCANWARDEN_CLASSIC_CHILD"

const (
	classicBanner   = "** UNAUTHORIZED ACCESS PROHIBITED *** YOUR CONNECTION ATTEMPT HAS BEEN LOGGED."
	classicTCPPort  = 31337 // bound by the -tcp daemon
	classicUDPPort  = 31335 // bound by the -udp daemon
	classicPrivPort = 111   // below 1024: not bindable without CAP_NET_BIND_SERVICE
)

// More attacker addresses, each for one scenario.
var (
	labAttackerUDP   = netip.MustParseAddr("198.51.100.244") // UDP at the classic UDP port
	labAttackerBoth  = netip.MustParseAddr("198.51.100.245") // TCP and UDP at once: both daemons see it
	labAttackerPriv  = netip.MustParseAddr("198.51.100.246") // the privileged port: capture only
	labAttackerScore = netip.MustParseAddr("198.51.100.247") // ignored; closed ports, then the classic port: engine and listener
)

// syncBuffer is a bytes.Buffer for a process's output read while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// buildScanwarden builds the real binary into the test's directory, with
// the race detector when the test runs with it (make test does).
func buildScanwarden(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("needs the go tool to build the binary: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "scanwarden")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	if out, err := exec.Command(goTool, append(args, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startDaemon starts argv in the victim namespace, logging to the returned
// buffer, waits until it says it is listening, and stops it (SIGTERM, by
// its PID: ip netns exec and setpriv exec in place) at the end of the test.
func (l *lab) startDaemon(argv ...string) *syncBuffer {
	out, _ := l.startDaemonStop(argv...)
	return out
}

// startDaemonStop is startDaemon, also returning a function that stops the
// daemon before the end of the test (later calls do nothing).
func (l *lab) startDaemonStop(argv ...string) (*syncBuffer, func()) {
	l.t.Helper()
	return l.startDaemonIn("victim", argv...)
}

// startDaemonIn is startDaemonStop in role's namespace.
func (l *lab) startDaemonIn(role string, argv ...string) (*syncBuffer, func()) {
	t := l.t
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.ns(role)}, argv...)...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l.daemon = cmd.Process.Pid
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
				t.Errorf("%s did not stop on SIGTERM:\n%s", strings.Join(argv, " "), out)
			}
			if strings.Contains(out.String(), "DATA RACE") {
				t.Errorf("the race detector found a data race in the daemon:\n%s", out)
			}
		})
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "is now active and listening") {
		select {
		case <-exited:
			t.Fatalf("%s exited:\n%s", strings.Join(argv, " "), out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening after 20 s:\n%s", strings.Join(argv, " "), out)
		}
	}
	return out, stop
}

// attack runs one TestClassicChild action in the attacker namespace and
// returns its output.
func (l *lab) attack(args ...string) string {
	cmd := exec.Command("ip", "netns", "exec", l.ns("attacker"), os.Args[0], "-test.run=^TestClassicChild$", "-test.v")
	cmd.Env = append(os.Environ(), classicChildEnv+"="+strings.Join(args, " "))
	out, err := cmd.CombinedOutput()
	if err != nil {
		l.t.Fatalf("attacker %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestClassicChild is the attacker's side; it does nothing in a normal run.
//
//	connect SRC DST PORT...   TCP connections at once, each printing what it read
//	udp SRC DST PORT          three datagrams
//	both SRC DST TCPPORT UDPPORT   a connection and a datagram at once
func TestClassicChild(t *testing.T) {
	args := strings.Fields(os.Getenv(classicChildEnv))
	if len(args) == 0 {
		t.Skip("only runs as a child of the classic-mode kernel test")
	}
	src, dst := netip.MustParseAddr(args[1]), netip.MustParseAddr(args[2])
	port := func(s string) uint16 {
		p, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			t.Fatal(err)
		}
		return uint16(p)
	}
	connect := func(p uint16) string {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", netip.AddrPortFrom(dst, p).String())
		if err != nil {
			return fmt.Sprintf("tcp/%d fail: %v", p, err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		got, err := io.ReadAll(c)
		return fmt.Sprintf("tcp/%d read %q (%v)", p, got, err)
	}
	udp := func(p uint16) string {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, p)))
		if err != nil {
			return fmt.Sprintf("udp/%d fail: %v", p, err)
		}
		defer c.Close()
		for i := 0; i < 3; i++ {
			c.Write([]byte("probe"))
			time.Sleep(20 * time.Millisecond)
		}
		return fmt.Sprintf("udp/%d sent", p)
	}
	var jobs []func() string
	switch args[0] {
	case "connect":
		for _, p := range args[3:] {
			p := port(p)
			jobs = append(jobs, func() string { return connect(p) })
		}
	case "udp":
		jobs = append(jobs, func() string { return udp(port(args[3])) })
	case "both":
		jobs = append(jobs, func() string { return connect(port(args[3])) }, func() string { return udp(port(args[4])) })
	default:
		t.Fatalf("unknown action %q", args[0])
	}
	out := make([]string, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() { defer wg.Done(); out[i] = j() }()
	}
	wg.Wait()
	for _, o := range out {
		fmt.Println(o)
	}
}

// TestKernelClassicPair: `scanwarden -tcp` (without CAP_NET_BIND_SERVICE)
// and `scanwarden -udp` on one config and state. The classic ports look
// open: a connection gets PORT_BANNER and its source is blocked (DROP rule,
// hosts.deny line, one history line), over IPv4 and IPv6; a datagram at the
// classic UDP port blocks its source once; a source seen by both daemons at
// once is blocked once; the privileged port nobody could bind is still a
// trap of the packet capture; a source that trips both the engine and a
// classic port is reported once; a service's port is left to it; the state
// holds exactly one ban per source.
func TestKernelClassicPair(t *testing.T) {
	l := newLab(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skipf("needs setpriv (util-linux) to drop CAP_NET_BIND_SERVICE: %v", err)
	}
	bin := buildScanwarden(t)
	// the lab's config with the classic ports, a banner, and an ignore
	// file: an ignored source is reported but never blocked, so that both
	// the engine and the listener get to report it
	cfg := l.config()
	base, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ignore := filepath.Join(l.dir, "ignore")
	if err := os.WriteFile(ignore, []byte(labAttackerScore.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(base), `IGNORE_FILE=""`, fmt.Sprintf("IGNORE_FILE=%q", ignore), 1) +
		fmt.Sprintf("TCP_PORTS=\"%d,%d,%d\"\nUDP_PORTS=\"%d,%d\"\nPORT_BANNER=%q\n",
			classicPrivPort, labPort, classicTCPPort, labPort, classicUDPPort, classicBanner)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{labAttackerUDP, labAttackerBoth, labAttackerPriv, labAttackerScore} {
		sh(t, "ip", "-n", l.ns("attacker"), "addr", "add", a.String()+"/24", "dev", "eth0")
	}
	// a service on labPort (TCP and UDP) before the daemons start
	l.start("victim", "serve")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if t4, u4, t6, u6 := l.reach("benign"); t4 && u4 && t6 && u6 {
			break
		}
		if time.Now().After(deadline) {
			out, _ := l.child("benign", "probe")
			t.Fatalf("the lab service is not reachable:\n%s", out)
		}
	}

	tcpLog := l.startDaemon("setpriv", "--bounding-set=-net_bind_service", bin, "-tcp", "-c", cfg)
	udpLog := l.startDaemon(bin, "-udp", "-c", cfg)
	for _, want := range []string{
		fmt.Sprintf("Going into listen mode on TCP port(s): %d ", classicTCPPort),
		fmt.Sprintf("cannot bind TCP port(s) %d: permission denied: ports below net.ipv4.ip_unprivileged_port_start", classicPrivPort),
		"CAP_NET_BIND_SERVICE", "watched by packet capture only",
		fmt.Sprintf("cannot bind TCP port(s) %d: in use by another program", labPort),
	} {
		if !strings.Contains(tcpLog.String(), want) {
			t.Errorf("the -tcp daemon's log lacks %q", want)
		}
	}
	for _, want := range []string{
		fmt.Sprintf("Going into listen mode on UDP port(s): %d ", classicUDPPort),
		fmt.Sprintf("cannot bind UDP port(s) %d: in use by another program", labPort),
		"PORT_BANNER: not sent by the classic UDP mode",
	} {
		if !strings.Contains(udpLog.String(), want) {
			t.Errorf("the -udp daemon's log lacks %q", want)
		}
	}
	if strings.Contains(tcpLog.String(), "PORT_BANNER: accepted but not used") {
		t.Errorf("the -tcp daemon warns about PORT_BANNER, which it uses")
	}
	if t.Failed() {
		t.Fatalf("-tcp:\n%s\n-udp:\n%s", tcpLog, udpLog)
	}

	v4, v6 := labVictim4.String(), labVictim6.String()
	tcpP, udpP := strconv.Itoa(classicTCPPort), strconv.Itoa(classicUDPPort)
	wantBanner := fmt.Sprintf("tcp/%d read %q", classicTCPPort, classicBanner)
	if out := l.attack("connect", labAttacker4.String(), v4, tcpP); !strings.Contains(out, wantBanner) {
		t.Errorf("IPv4 connect: want the banner:\n%s", out)
	}
	if out := l.attack("connect", labAttacker6.String(), v6, tcpP); !strings.Contains(out, wantBanner) {
		t.Errorf("IPv6 connect: want the banner:\n%s", out)
	}
	l.attack("udp", labAttackerUDP.String(), v4, udpP)
	l.attack("both", labAttackerBoth.String(), v4, tcpP, udpP)
	if out := l.attack("connect", labAttackerPriv.String(), v4, strconv.Itoa(classicPrivPort)); !strings.Contains(out, "connection refused") {
		t.Errorf("the privileged port is bound after all:\n%s", out)
	}
	// closed ports make the engine's alert (three are enough); then
	// the classic port (after the capture has surely delivered those
	// packets) makes the listener's
	l.attack("connect", labAttackerScore.String(), v4, "20", "21", "22", "23")
	time.Sleep(500 * time.Millisecond)
	if out := l.attack("connect", labAttackerScore.String(), v4, tcpP); !strings.Contains(out, wantBanner) {
		t.Errorf("the ignored source did not get the banner:\n%s", out)
	}

	// every source blocked
	blocked4 := []netip.Addr{labAttacker4, labAttackerUDP, labAttackerBoth, labAttackerPriv}
	var rules4, rules6 string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		rules4 = sh(t, "ip", "netns", "exec", l.ns("victim"), "iptables", "-t", "raw", "-S")
		rules6 = sh(t, "ip", "netns", "exec", l.ns("victim"), "ip6tables", "-t", "raw", "-S")
		all := strings.Contains(rules6, labAttacker6.String())
		for _, a := range blocked4 {
			all = all && strings.Contains(rules4, a.String()+"/32")
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every source blocked:\n%s\n%s\n-tcp:\n%s\n-udp:\n%s", rules4, rules6, tcpLog, udpLog)
		}
	}
	// let late alerts (a second daemon, the engine) have their say
	time.Sleep(time.Second)
	rules4 = sh(t, "ip", "netns", "exec", l.ns("victim"), "iptables", "-t", "raw", "-S")
	rules6 = sh(t, "ip", "netns", "exec", l.ns("victim"), "ip6tables", "-t", "raw", "-S")
	deny, _ := os.ReadFile(filepath.Join(l.dir, "hosts.deny"))
	hist, _ := os.ReadFile(filepath.Join(l.dir, "history"))
	blockedTCP, _ := os.ReadFile(filepath.Join(l.dir, "blocked.tcp"))
	blockedUDP, _ := os.ReadFile(filepath.Join(l.dir, "blocked.udp"))
	logs := tcpLog.String() + udpLog.String()
	for _, a := range append(blocked4, labAttacker6) {
		rules, rule := rules4, a.String()+"/32"
		denyLine := "ALL: " + a.String() + " : DENY"
		if a.Is6() {
			rules, rule, denyLine = rules6, a.String()+"/128", "ALL: ["+a.String()+"] : DENY"
		}
		if n := countLines(rules, rule); n != 1 {
			t.Errorf("%s: %d DROP rules", a, n)
		}
		if n := countLines(string(deny), denyLine); n != 1 {
			t.Errorf("%s: %d hosts.deny lines", a, n)
		}
		if n := countLines(string(hist), "/"+a.String()+" Port: "); n != 1 {
			t.Errorf("%s: %d history lines", a, n)
		}
	}
	for _, c := range []struct {
		file, want string
	}{
		{string(hist), fmt.Sprintf("/%s Port: %d TCP Blocked", labAttacker4, classicTCPPort)},
		{string(hist), fmt.Sprintf("/%s Port: %d TCP Blocked", labAttacker6, classicTCPPort)},
		{string(hist), fmt.Sprintf("/%s Port: %d UDP Blocked", labAttackerUDP, classicUDPPort)},
		{string(hist), fmt.Sprintf("/%s Port: %d TCP Blocked", labAttackerPriv, classicPrivPort)},
		{string(blockedTCP), fmt.Sprintf("/%s Port: %d TCP Blocked", labAttacker4, classicTCPPort)},
		{string(blockedUDP), fmt.Sprintf("/%s Port: %d UDP Blocked", labAttackerUDP, classicUDPPort)},
		{logs, fmt.Sprintf("attackalert: Connect from host: %s/%s to TCP port: %d", labAttacker4, labAttacker4, classicTCPPort)},
		{logs, fmt.Sprintf("attackalert: Connect from host: %s/%s to UDP port: %d", labAttackerUDP, labAttackerUDP, classicUDPPort)},
	} {
		if !strings.Contains(c.file, c.want) {
			t.Errorf("missing %q", c.want)
		}
	}
	// one jump from raw PREROUTING per family, though both daemons
	// prepared the chain
	jumps4 := sh(t, "ip", "netns", "exec", l.ns("victim"), "iptables", "-t", "raw", "-S", "PREROUTING")
	jumps6 := sh(t, "ip", "netns", "exec", l.ns("victim"), "ip6tables", "-t", "raw", "-S", "PREROUTING")
	if countLines(jumps4, "-j SCANWARDEN") != 1 || countLines(jumps6, "-j SCANWARDEN") != 1 {
		t.Errorf("jumps:\n%s\n%s", jumps4, jumps6)
	}
	// the source both daemons saw: one of them blocked it, the other
	// found it blocked (when its hit arrived before the rule)
	if n := countLines(logs, "Host "+labAttackerBoth.String()+" has been blocked via wrappers"); n != 1 {
		t.Errorf("%s blocked %d times", labAttackerBoth, n)
	}
	t.Logf("%s seen by both daemons: %d \"already blocked\" line(s)", labAttackerBoth,
		countLines(logs, "Host: "+labAttackerBoth.String()+"/"+labAttackerBoth.String()+" is already blocked"))
	// the ignored source: the engine (its closed ports) reported it,
	// and its connection to the classic port (banner and all) within the
	// same window was not reported again
	if n := countLines(tcpLog.String(), "from host: "+labAttackerScore.String()+"/"); n != 1 {
		t.Errorf("%s: %d attackalert lines, want 1", labAttackerScore, n)
	}
	if n := countLines(tcpLog.String(), "trigger=score type=connect"); n != 1 {
		t.Errorf("%s: %d alerts of the engine, want 1", labAttackerScore, n)
	}
	if strings.Contains(rules4, labAttackerScore.String()) || strings.Contains(string(hist), "/"+labAttackerScore.String()+" ") ||
		countLines(tcpLog.String(), "Host: "+labAttackerScore.String()+"/"+labAttackerScore.String()+" is in the ignore file") != 1 {
		t.Errorf("the ignored source %s blocked or recorded, or not said to be ignored", labAttackerScore)
	}

	st, err := block.OpenState(filepath.Join(l.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	bans, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]int{}
	for _, b := range bans {
		seen[b.Addr]++
	}
	if len(bans) != len(blocked4)+1 {
		t.Errorf("%d bans, want %d: %+v", len(bans), len(blocked4)+1, bans)
	}
	for _, a := range append(blocked4, labAttacker6) {
		if seen[a] != 1 {
			t.Errorf("%s: %d bans", a, seen[a])
		}
	}

	// the blocked attacker is cut off; the service and the benign client
	// are left alone
	if out := l.attack("connect", labAttacker4.String(), v4, tcpP); !strings.Contains(out, "fail") {
		t.Errorf("the blocked attacker still connects:\n%s", out)
	}
	if t4, u4, t6, u6 := l.reach("benign"); !(t4 && u4 && t6 && u6) {
		t.Errorf("benign client cut off from the service: tcp4 %v udp4 %v tcp6 %v udp6 %v", t4, u4, t6, u6)
	}
	if t.Failed() {
		t.Logf("history:\n%s\nhosts.deny:\n%s\n-tcp:\n%s\n-udp:\n%s", hist, deny, tcpLog, udpLog)
	}
}
