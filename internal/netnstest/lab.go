package netnstest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Config says how a package's lab is made.
type Config struct {
	// Prefix starts the names of the namespaces, PREFIX-PID-N-ROLE: each
	// package has its own, so that no two tests share a namespace.
	Prefix string
	// Env starts the names of the helper variables (see Main).
	Env string
	// Tools are the commands the tests need (ip and sysctl at least):
	// the test is skipped when one is missing.
	Tools []string
	// Makes says what the tests create in the namespaces, for the
	// message of the skip when not root.
	Makes string
	// CmdTimeout bounds every command run in a namespace.
	CmdTimeout time.Duration
}

var nsSeq atomic.Int32

// Lab is a test's set of network namespaces, by role.
type Lab struct {
	NS  map[string]string // the namespace of each role
	t   testing.TB
	cfg Config
	exe string
}

// New creates one namespace per role, deleted when the test ends, with
// loopback up and IPv6 set to make no link-local address, do no DAD and
// send no solicitation, so that the lab's addresses are the only sources
// and usable at once. It skips the test when not root, when a tool is
// missing or when no namespace can be made.
func New(t testing.TB, cfg Config, roles ...string) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("not root: the kernel tests create network namespaces and %s in them", cfg.Makes)
	}
	for _, c := range cfg.Tools {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s is missing (scripts/deps.sh installs it): %v", c, err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	l := &Lab{NS: map[string]string{}, t: t, cfg: cfg, exe: exe}
	n := nsSeq.Add(1)
	for _, r := range roles {
		name := fmt.Sprintf("%s-%d-%d-%s", cfg.Prefix, os.Getpid(), n, r)
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Skipf("cannot create network namespace %s: %v: %s", name, err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", name, err, out)
			}
		})
		l.NS[r] = name
		l.Run(r, "ip", "link", "set", "lo", "up")
		l.Run(r, "sysctl", "-q", "-w",
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
			"net.ipv6.conf.default.addr_gen_mode=1",
			"net.ipv6.conf.all.router_solicitations=0", "net.ipv6.conf.default.router_solicitations=0",
			"net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0")
	}
	return l
}

// Command returns name args run in role's namespace.
func (l *Lab) Command(ctx context.Context, role, name string, args ...string) *exec.Cmd {
	ns, ok := l.NS[role]
	if !ok {
		l.t.Fatalf("no namespace for role %s", role)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// TryInput runs name args in role's namespace with input on its standard
// input, and returns its standard output and an error carrying its
// standard error.
func (l *Lab) TryInput(role, input, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.CmdTimeout)
	defer cancel()
	c := l.Command(ctx, role, name, args...)
	c.Stdin = strings.NewReader(input)
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), role, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// TryHelper runs the test binary's helper name in role's namespace (see
// HelperCmd) with env added to its environment, and returns its output;
// an error carries its standard error.
func (l *Lab) TryHelper(role, name string, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.CmdTimeout)
	defer cancel()
	c := l.HelperCmd(ctx, role, name, args...)
	c.Env = append(c.Env, env...)
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %q in %s: %w: %s", name, args, role, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Try is TryInput without input.
func (l *Lab) Try(role, name string, args ...string) (string, error) {
	return l.TryInput(role, "", name, args...)
}

// RunInput is TryInput that fails the test on an error.
func (l *Lab) RunInput(role, input, name string, args ...string) string {
	l.t.Helper()
	out, err := l.TryInput(role, input, name, args...)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

// Run is RunInput without input.
func (l *Lab) Run(role, name string, args ...string) string {
	l.t.Helper()
	return l.RunInput(role, "", name, args...)
}

// HelperCmd returns this test binary as helper op (see Main) with args
// in role's namespace.
func (l *Lab) HelperCmd(ctx context.Context, role, op string, args ...string) *exec.Cmd {
	env := l.cfg.Env
	c := l.Command(ctx, role, l.exe)
	c.Env = append(os.Environ(), env+suffixHelper+"="+op, env+suffixNetns+"="+l.NS[role], env+suffixArgs+"="+strings.Join(args, "\n"),
		// Under -race, a process that ran goroutines sleeps a second at
		// exit (for late reports); helpers are many and short.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return c
}

// A Link is a client's veth pair to the victim: its end is eth0 in the
// client's namespace, with Addrs (IPv4 ones /24, IPv6 ones /64).
type Link struct {
	Role  string       // the client's role
	Port  string       // the name of the victim's end
	Addrs []netip.Addr // the client's addresses
}

// addAddrs gives dev in role the addresses addrs (IPv4 ones /24, IPv6
// ones /64 with no DAD), in one batch.
func (l *Lab) addAddrs(role, dev string, addrs []netip.Addr) {
	l.t.Helper()
	var batch strings.Builder
	for _, a := range addrs {
		if a.Is4() {
			fmt.Fprintf(&batch, "addr add %s/24 dev %s\n", a, dev)
		} else {
			fmt.Fprintf(&batch, "addr add %s/64 dev %s nodad\n", a, dev)
		}
	}
	l.RunInput(role, batch.String(), "ip", "-batch", "-")
}

// veth makes c's veth pair from the victim and sets up the client's end.
func (l *Lab) veth(c Link) {
	l.t.Helper()
	l.Run("victim", "ip", "link", "add", c.Port, "type", "veth", "peer", "name", "eth0", "netns", l.NS[c.Role])
	l.Run(c.Role, "sysctl", "-q", "-w", "net.ipv6.conf.eth0.addr_gen_mode=1", "net.ipv6.conf.eth0.accept_dad=0")
}

// WireVeth links the client c to the "victim" role with a veth pair
// only: the victim's end, c.Port, holds the victim's addresses. It waits
// until the links are up.
func (l *Lab) WireVeth(victim []netip.Addr, c Link) {
	l.t.Helper()
	l.veth(c)
	l.Run("victim", "sysctl", "-q", "-w", "net.ipv6.conf."+c.Port+".addr_gen_mode=1", "net.ipv6.conf."+c.Port+".accept_dad=0")
	l.addAddrs(c.Role, "eth0", c.Addrs)
	l.Run(c.Role, "ip", "link", "set", "eth0", "up")
	l.addAddrs("victim", c.Port, victim)
	l.Run("victim", "ip", "link", "set", c.Port, "up")
	l.waitLinks(c.Port, c)
}

// WireBridge links the clients to the "victim" role: a bridge br0 in the
// victim holds its addresses and each client's veth Port. It waits until
// every link is up.
func (l *Lab) WireBridge(victim []netip.Addr, clients ...Link) {
	l.t.Helper()
	l.Run("victim", "ip", "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0")
	for _, c := range clients {
		l.veth(c)
		l.Run("victim", "ip", "link", "set", c.Port, "master", "br0", "up")
		l.addAddrs(c.Role, "eth0", c.Addrs)
		l.Run(c.Role, "ip", "link", "set", "eth0", "up")
	}
	l.addAddrs("victim", "br0", victim)
	l.Run("victim", "ip", "link", "set", "br0", "up")
	l.waitLinks("br0", clients...)
}

// waitLinks waits up to 5s until the clients' eth0 and the victim's dev
// are up, with no tentative IPv6 address.
func (l *Lab) waitLinks(dev string, clients ...Link) {
	l.t.Helper()
	type link struct{ role, dev string }
	var links []link
	for _, c := range clients {
		links = append(links, link{c.Role, "eth0"})
	}
	links = append(links, link{"victim", dev})
	for i := 0; ; i++ {
		ready := true
		for _, r := range links {
			up := l.Run(r.role, "ip", "link", "show", "dev", r.dev)
			tentative := l.Run(r.role, "ip", "-6", "addr", "show", "dev", r.dev, "tentative")
			ready = ready && strings.Contains(up, "LOWER_UP") && strings.TrimSpace(tentative) == ""
		}
		if ready {
			return
		}
		if i == 100 {
			l.t.Fatal("the lab's links did not come up in 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Server is the serve helper (see Serve) running in a namespace: the
// lines it printed.
type Server struct {
	mu    sync.Mutex
	lines []string
}

// Has reports whether a line containing sub has been printed.
func (s *Server) Has(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.lines, func(l string) bool { return strings.Contains(l, sub) })
}

// Wait reports whether a line containing sub appears within d.
func (s *Server) Wait(sub string, d time.Duration) bool {
	for end := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if s.Has(sub) {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// Serve starts the serve helper on ports in the victim and waits until
// it is ready; it ends when the test does (its standard input closes;
// the process, which this test started, is killed by PID if it lingers).
func (l *Lab) Serve(ports ...int) *Server {
	l.t.Helper()
	return l.serveIn("victim", ports...)
}

// serveIn starts the serve helper on ports in role (see Serve).
func (l *Lab) serveIn(role string, ports ...int) *Server {
	l.t.Helper()
	args := make([]string, len(ports))
	for i, p := range ports {
		args[i] = fmt.Sprint(p)
	}
	c := l.HelperCmd(context.Background(), role, "serve", args...)
	stdin, err := c.StdinPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	stdout, err := c.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	var stderr strings.Builder
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		l.t.Fatal(err)
	}
	s := &Server{}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	l.t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan error, 1)
		go func() { <-read; done <- c.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				l.t.Errorf("listener: %v: %s", err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			_ = c.Process.Kill()
			<-done
			l.t.Error("listener did not stop when its input closed: killed")
		}
	})
	if !s.Wait("ready", 30*time.Second) {
		l.t.Fatalf("listener not ready: %s", stderr.String())
	}
	return s
}
