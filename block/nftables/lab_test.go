package nftables

// The namespace lab of the kernel tests and benchmarks: as root only, each
// test in network namespaces of its own (swnft-PID-N-ROLE), deleted when
// it ends. The backend works on a descriptor of the victim's namespace;
// the attacker's packets come from helpers run in the attacker's (see
// helper_test.go). Nothing is ever sent anywhere but between the test's
// namespaces, on 198.51.100.0/24 and fd00:77::/64, with no default route
// and no link to the host.

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

// The lab's addresses and ports.
var (
	victim4 = netip.MustParseAddr("198.51.100.1")
	victim6 = netip.MustParseAddr("fd00:77::1")
)

// attacker4 and attacker6 are the attacker's i-th source address (i from
// 0 to 49): every probe of a test comes from a fresh one.
func attacker4(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, byte(100 + i)}) }
func attacker6(i int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("fd00:77::%x", 0x100+i))
}

const (
	nAttackerAddrs = 50
	openPort       = 8022 // the victim's listener
	trapTCP        = 2222 // trap ports: nothing listens there
	trapUDP        = 5353
	// droppedWait is how long a connect expected to be dropped is given:
	// a dropped SYN is not answered at all, a reset one is answered at
	// once, so any wait tells them apart; it is below the first SYN
	// retransmission (1 s), so that exactly one SYN is sent.
	droppedWait = 700 * time.Millisecond
	// openWait bounds a connect or datagram expected to get through: far
	// more than a veth round trip, so that a slow CI machine never fails.
	openWait = 5 * time.Second
	// udpGrace is how long after a later control datagram arrived a
	// dropped one is still waited for: it was sent first.
	udpGrace = 300 * time.Millisecond
	// cmdTimeout bounds every command a test runs.
	cmdTimeout = time.Minute
)

var nsSeq atomic.Int32

// lab is a test's set of network namespaces, by role.
type lab struct {
	t   testing.TB
	exe string
	ns  map[string]string
}

// newLab creates one namespace per role, with loopback up and IPv6 set to
// do no DAD and send no solicitation. It skips when not root or when a
// tool is missing.
func newLab(t testing.TB, roles ...string) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: the kernel tests create network namespaces and nftables tables in them")
	}
	for _, c := range []string{"ip", "sysctl"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s is missing (scripts/deps.sh installs it): %v", c, err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, exe: exe, ns: map[string]string{}}
	n := nsSeq.Add(1)
	for _, r := range roles {
		name := fmt.Sprintf("swnft-%d-%d-%s", os.Getpid(), n, r)
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Skipf("cannot create network namespace %s: %v: %s", name, err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", name, err, out)
			}
		})
		l.ns[r] = name
		l.run(r, "ip", "link", "set", "lo", "up")
		l.run(r, "sysctl", "-q", "-w",
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
			"net.ipv6.conf.default.addr_gen_mode=1",
			"net.ipv6.conf.all.router_solicitations=0", "net.ipv6.conf.default.router_solicitations=0",
			"net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0")
	}
	return l
}

// wire links the attacker to the victim with a veth pair: the victim's va
// holds its addresses, the attacker's eth0 nAttackerAddrs addresses of
// each family. It waits until the links are up.
func (l *lab) wire() {
	l.t.Helper()
	l.run("victim", "ip", "link", "add", "va", "type", "veth", "peer", "name", "eth0", "netns", l.ns["attacker"])
	l.run("attacker", "sysctl", "-q", "-w", "net.ipv6.conf.eth0.addr_gen_mode=1", "net.ipv6.conf.eth0.accept_dad=0")
	l.run("victim", "sysctl", "-q", "-w", "net.ipv6.conf.va.addr_gen_mode=1", "net.ipv6.conf.va.accept_dad=0")
	var batch strings.Builder
	for i := range nAttackerAddrs {
		fmt.Fprintf(&batch, "addr add %s/24 dev eth0\naddr add %s/64 dev eth0 nodad\n", attacker4(i), attacker6(i))
	}
	l.runInput("attacker", batch.String(), "ip", "-batch", "-")
	l.run("attacker", "ip", "link", "set", "eth0", "up")
	l.run("victim", "ip", "addr", "add", victim4.String()+"/24", "dev", "va")
	l.run("victim", "ip", "addr", "add", victim6.String()+"/64", "dev", "va", "nodad")
	l.run("victim", "ip", "link", "set", "va", "up")
	for i := 0; ; i++ {
		ready := true
		for _, r := range []struct{ role, dev string }{{"attacker", "eth0"}, {"victim", "va"}} {
			link := l.run(r.role, "ip", "link", "show", "dev", r.dev)
			tentative := l.run(r.role, "ip", "-6", "addr", "show", "dev", r.dev, "tentative")
			ready = ready && strings.Contains(link, "LOWER_UP") && strings.TrimSpace(tentative) == ""
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

// command returns name args run in role's namespace.
func (l *lab) command(ctx context.Context, role, name string, args ...string) *exec.Cmd {
	ns, ok := l.ns[role]
	if !ok {
		l.t.Fatalf("no namespace for role %s", role)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// runInput runs name args in role's namespace with input on its standard
// input, and fails the test on an error.
func (l *lab) runInput(role, input, name string, args ...string) string {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	c := l.command(ctx, role, name, args...)
	c.Stdin = strings.NewReader(input)
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		l.t.Fatalf("%s %s in %s: %v: %s", name, strings.Join(args, " "), role, err, strings.TrimSpace(stderr.String()))
	}
	return string(out)
}

// run is runInput without input.
func (l *lab) run(role, name string, args ...string) string {
	l.t.Helper()
	return l.runInput(role, "", name, args...)
}

// nsFile opens role's namespace, checking that it is not the test
// process's own (the host's), and closes it when the test ends.
func (l *lab) nsFile(role string) *os.File {
	l.t.Helper()
	f, err := os.Open("/run/netns/" + l.ns[role])
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	if err != nil {
		l.t.Fatal(err)
	}
	// It must not be the namespace the tests run in (the host's), nor
	// that of PID 1 when that can be seen.
	self, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		l.t.Fatal(err)
	}
	if os.SameFile(fi, self) {
		l.t.Fatalf("namespace %s is the test process's own: refusing to use it", l.ns[role])
	}
	if init, err := os.Stat("/proc/1/ns/net"); err == nil && os.SameFile(fi, init) {
		l.t.Fatalf("namespace %s is PID 1's: refusing to use it", l.ns[role])
	}
	return f
}

// backend returns a new Backend working in the victim's namespace (a new
// one stands for a restarted daemon).
func (l *lab) backend() *Backend {
	l.t.Helper()
	f := l.nsFile("victim")
	b, err := New(Options{NetNS: int(f.Fd())})
	if err != nil {
		l.t.Fatal(err)
	}
	return b
}

// helper returns this test binary as helper op in role's namespace.
func (l *lab) helper(ctx context.Context, role, op string, args ...string) *exec.Cmd {
	c := l.command(ctx, role, l.exe)
	c.Env = append(os.Environ(), envHelper+"="+op, envNetns+"="+l.ns[role], envArgs+"="+strings.Join(args, "\n"),
		// Under -race, a process that ran goroutines sleeps a second at
		// exit (for late reports); helpers are many and short.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return c
}

// dial connects from the attacker's src to port of dst within wait and
// returns the helper's exit code: exitConnected, exitTimeout or
// exitRefused (anything else fails the test).
func (l *lab) dial(src, dst netip.Addr, port int, wait time.Duration) int {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	c := l.helper(ctx, "attacker", "tcp", netip.AddrPortFrom(dst, uint16(port)).String(), wait.String(), src.String())
	out, err := c.CombinedOutput()
	if c.ProcessState == nil {
		l.t.Fatalf("tcp from %v to %v: %v", src, dst, err)
	}
	code := c.ProcessState.ExitCode()
	if code != exitConnected && code != exitTimeout && code != exitRefused {
		l.t.Fatalf("tcp from %v to %v port %d: %v: %s", src, dst, port, err, out)
	}
	return code
}

// raw sends one TCP segment with flags from the attacker's src to port of
// dst.
func (l *lab) raw(src, dst netip.Addr, port int, flags byte) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	c := l.helper(ctx, "attacker", "raw", src.String(), dst.String(), fmt.Sprint(port), fmt.Sprint(flags))
	if out, err := c.CombinedOutput(); err != nil {
		l.t.Fatalf("raw segment from %v to %v port %d: %v: %s", src, dst, port, err, out)
	}
}

var tokenSeq atomic.Int64

// sendUDP sends a new token from the attacker's src to port of dst, three
// times, and returns it.
func (l *lab) sendUDP(src, dst netip.Addr, port int) string {
	l.t.Helper()
	token := fmt.Sprintf("token-%d", tokenSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	c := l.helper(ctx, "attacker", "udp", netip.AddrPortFrom(dst, uint16(port)).String(), token, "3", src.String())
	if out, err := c.CombinedOutput(); err != nil {
		l.t.Fatalf("udp from %v to %v: %v: %s", src, dst, err, out)
	}
	return token
}

// server is the helper serve, running in the victim.
type server struct {
	mu    sync.Mutex
	lines []string
}

func (s *server) has(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.lines, func(l string) bool { return strings.Contains(l, sub) })
}

// wait reports whether a line containing sub appears within d.
func (s *server) wait(sub string, d time.Duration) bool {
	for end := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if s.has(sub) {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// serve starts the listener on openPort in the victim; it ends when the
// test does (its standard input closes; the process, which this test
// started, is killed by PID if it lingers).
func (l *lab) serve() *server {
	l.t.Helper()
	c := l.helper(context.Background(), "victim", "serve", fmt.Sprint(openPort))
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
	s := &server{}
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
	if !s.wait("ready", 30*time.Second) {
		l.t.Fatalf("listener not ready: %s", stderr.String())
	}
	return s
}
