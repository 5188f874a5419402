package host

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// childEnv names the variable that makes the test binary, re-executed
// under ip netns exec, the child of a kernel test.
const childEnv = "SCANWARDEN_HOST_CHILD"

// newNetns creates a network namespace of the test's own, deleted when
// the test ends, with loopback and a veth pair d0/d1 up; it skips the
// test when not root or without ip(8).
func newNetns(t *testing.T, role string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8)")
	}
	ns := fmt.Sprintf("sw%s%d", role, os.Getpid()%100000)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	ipns(t, ns, "link", "set", "lo", "up")
	ipns(t, ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	ipns(t, ns, "link", "set", "d0", "up")
	ipns(t, ns, "link", "set", "d1", "up")
	return ns
}

// ipns runs ip(8) in the namespace ns, and fails the test if it fails.
func ipns(t *testing.T, ns string, args ...string) {
	t.Helper()
	if err := tryIPns(ns, args...); err != nil {
		t.Fatal(err)
	}
}

func tryIPns(ns string, args ...string) error {
	out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// child re-executes the test binary in ns to run test there as a child
// (childEnv=role).
func child(ns, test, role string) *exec.Cmd {
	c := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	c.Env = append(os.Environ(), childEnv+"="+role)
	c.Stderr = os.Stderr
	return c
}

// TestWatchSeesNewAddresses runs Watch inside a network namespace made for
// the test (the test binary re-executed under ip netns exec) and adds an
// address there: Watch must say so, and a new read must list it.
func TestWatchSeesNewAddresses(t *testing.T) {
	if os.Getenv(childEnv) == "watch" {
		watchChild(t)
		return
	}
	ns := newNetns(t, "watch")
	c := child(ns, "TestWatchSeesNewAddresses", "watch")
	stdout, _ := c.StdoutPipe()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Wait()
	buf := make([]byte, 4096)
	n, _ := stdout.Read(buf) // "watching"
	if !strings.Contains(string(buf[:n]), "watching") {
		t.Fatalf("child: %q", buf[:n])
	}
	for _, a := range []string{"198.51.100.251/32", "fd00:77::251/128"} {
		ipns(t, ns, "addr", "add", a, "dev", "d0", "nodad")
	}
	rest, _ := readAll(stdout)
	if err := c.Wait(); err != nil || !strings.Contains(rest, "protected 198.51.100.251 fd00:77::251") {
		t.Fatalf("child: %v %q", err, rest)
	}
}

func readAll(r interface{ Read([]byte) (int, error) }) (string, error) {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String(), nil
		}
	}
}

func watchChild(t *testing.T) {
	src := NewAddrs(true, true)
	src.ResolvConf, src.ResolvedConf = "/nonexistent", "/nonexistent"
	var mu sync.Mutex
	read := func() map[netip.Addr]string {
		m, err := src.Read()
		if err != nil {
			t.Error(err)
		}
		return m
	}
	known := read()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := Watch(ctx, func() {
		m := read()
		mu.Lock()
		known = m
		mu.Unlock()
	}, func(err error) { t.Log(err) }); err != nil {
		t.Fatal(err)
	}
	fmt.Println("watching")
	want := []netip.Addr{netip.MustParseAddr("198.51.100.251"), netip.MustParseAddr("fd00:77::251")}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		_, ok0 := known[want[0]]
		_, ok1 := known[want[1]]
		mu.Unlock()
		if ok0 && ok1 {
			fmt.Printf("protected %s %s\n", want[0], want[1])
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("new addresses never seen")
}

// TestReadGatewaysOfEveryTable makes default routes in a namespace of the
// test's own, outside the main table (policy routing tables 100 and 101,
// a multipath route, IPv6, a VRF's table when the kernel has VRFs) and
// in the main table through a nexthop object the route dump leaves out
// (nexthop_compat_mode=0, when the kernel has nexthop objects): a read
// there must report every gateway, and not the gateway of a route that is
// not a default one.
func TestReadGatewaysOfEveryTable(t *testing.T) {
	if os.Getenv(childEnv) == "read" {
		src := NewAddrs(true, false)
		m, err := src.Read()
		if err != nil {
			t.Fatal(err)
		}
		var gws []string
		for a, why := range m {
			if why == "a default gateway" {
				gws = append(gws, a.String())
			}
		}
		slices.Sort(gws)
		fmt.Printf("gateways: %s\n", strings.Join(gws, " "))
		return
	}
	ns := newNetns(t, "gw")
	ipns(t, ns, "addr", "add", "198.51.100.2/24", "dev", "d0")
	ipns(t, ns, "addr", "add", "fd00:77::2/64", "dev", "d0", "nodad")
	ipns(t, ns, "addr", "add", "203.0.113.2/24", "dev", "d1")
	ipns(t, ns, "route", "add", "default", "via", "198.51.100.1", "dev", "d0", "table", "100")
	ipns(t, ns, "-6", "route", "add", "default", "via", "fd00:77::1", "dev", "d0", "table", "100")
	ipns(t, ns, "route", "add", "default", "table", "101",
		"nexthop", "via", "198.51.100.3", "dev", "d0", "nexthop", "via", "203.0.113.3", "dev", "d1")
	ipns(t, ns, "route", "add", "192.0.2.128/25", "via", "203.0.113.9", "table", "100") // not a default route
	want := []string{"198.51.100.1", "198.51.100.3", "203.0.113.3", "fd00:77::1"}

	// a VRF: its own table, 1001
	if err := tryIPns(ns, "link", "add", "vrf0", "type", "vrf", "table", "1001"); err != nil {
		t.Logf("no VRF checked: %v", err)
	} else {
		ipns(t, ns, "link", "add", "d2", "type", "veth", "peer", "name", "d3")
		ipns(t, ns, "link", "set", "d2", "master", "vrf0")
		for _, l := range []string{"vrf0", "d2", "d3"} {
			ipns(t, ns, "link", "set", l, "up")
		}
		ipns(t, ns, "addr", "add", "192.0.2.2/25", "dev", "d2")
		ipns(t, ns, "route", "add", "default", "via", "192.0.2.1", "dev", "d2", "vrf", "vrf0")
		want = append(want, "192.0.2.1")
	}
	// a nexthop object the route messages leave out: the main table's
	// default route, read from /proc
	out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.nexthop_compat_mode=0").CombinedOutput()
	if err == nil {
		err = tryIPns(ns, "nexthop", "add", "id", "7", "via", "198.51.100.7", "dev", "d0")
	} else {
		err = fmt.Errorf("sysctl: %v: %s", err, out)
	}
	if err != nil {
		t.Logf("no nexthop object checked: %v", err)
	} else {
		ipns(t, ns, "route", "add", "default", "nhid", "7")
		want = append(want, "198.51.100.7")
	}
	slices.Sort(want)

	out, err = child(ns, "TestReadGatewaysOfEveryTable", "read").Output()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	line := "gateways: " + strings.Join(want, " ")
	if !strings.Contains(string(out), line+"\n") {
		t.Errorf("child said %q, want %q", out, line)
	}
}

// fdCount is how many file descriptors the process has open.
func fdCount(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// TestWatchCancelLeavesNothing starts and cancels Watch a few times with
// the kernel's subscriptions (in the test's namespace: it only listens):
// once ctx has ended, the goroutines and file descriptors are back to
// what they were.
func TestWatchCancelLeavesNothing(t *testing.T) {
	cycle := func() {
		ctx, cancel := context.WithCancel(context.Background())
		if err := Watch(ctx, func() {}, func(err error) { t.Error(err) }); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	g0 := runtime.NumGoroutine()
	cycle() // the runtime's poller is made once: count the fds after it
	if g, _ := settled(t, g0, 1<<30); g > g0 {
		t.Fatalf("the first cycle left %d goroutines, %d before", g, g0)
	}
	f0 := fdCount(t)

	ctx, cancel := context.WithCancel(context.Background())
	if err := Watch(ctx, func() {}, nil); err != nil {
		t.Fatal(err)
	}
	if g, f := runtime.NumGoroutine(), fdCount(t); g <= g0 || f < f0+3 {
		t.Errorf("while watching: %d goroutines, %d fds; before: %d, %d", g, f, g0, f0)
	}
	cancel()
	for range 5 {
		cycle()
	}
	if g, f := settled(t, g0, f0); g > g0 || f > f0 {
		buf := make([]byte, 1<<20)
		t.Errorf("after the cycles: %d goroutines (before %d), %d fds (before %d)\n%s",
			g, g0, f, f0, buf[:runtime.Stack(buf, true)])
	}
}

// fakeSubs stands in for the library's subscriptions: each is a goroutine
// that forwards the test's messages, closes its channel when done is
// closed or when the test ends it with an error (as the library does on
// a failed read or an overrun), and tells the error callback.
type fakeSubs struct {
	mu   sync.Mutex
	subs []*fakeSub
	fail map[string]error // subscriptions that cannot be made, by kind
}

type fakeSub struct {
	kind  string
	send  chan struct{}
	kill  chan error
	done  <-chan struct{}
	ended chan struct{} // closed with the channel
}

func subscribeFake[T any](f *fakeSubs, kind string, ch chan<- T, done <-chan struct{}, cb func(error), list bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cb == nil || list || done == nil {
		return errors.New("want an error callback, a done channel, and no listing")
	}
	if err := f.fail[kind]; err != nil {
		return err
	}
	s := &fakeSub{kind: kind, send: make(chan struct{}), kill: make(chan error), done: done, ended: make(chan struct{})}
	go func() {
		defer close(s.ended)
		defer close(ch)
		for {
			select {
			case <-done:
				cb(errors.New("Receive failed: use of closed file"))
				return
			case err := <-s.kill:
				cb(fmt.Errorf("Receive failed: %v", err))
				return
			case <-s.send:
				var zero T
				ch <- zero
			}
		}
	}()
	f.subs = append(f.subs, s)
	return nil
}

func (f *fakeSubs) install(t *testing.T) {
	saved := subscribers
	t.Cleanup(func() { subscribers = saved })
	subscribers.link = func(ch chan<- netlink.LinkUpdate, done <-chan struct{}, o netlink.LinkSubscribeOptions) error {
		return subscribeFake(f, "link", ch, done, o.ErrorCallback, o.ListExisting)
	}
	subscribers.addr = func(ch chan<- netlink.AddrUpdate, done <-chan struct{}, o netlink.AddrSubscribeOptions) error {
		return subscribeFake(f, "addr", ch, done, o.ErrorCallback, o.ListExisting)
	}
	subscribers.route = func(ch chan<- netlink.RouteUpdate, done <-chan struct{}, o netlink.RouteSubscribeOptions) error {
		return subscribeFake(f, "route", ch, done, o.ErrorCallback, o.ListExisting)
	}
}

// live returns the subscriptions of each kind not ended yet.
func (f *fakeSubs) live() map[string]*fakeSub {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]*fakeSub{}
	for _, s := range f.subs {
		select {
		case <-s.ended:
		default:
			m[s.kind] = s
		}
	}
	return m
}

func (f *fakeSubs) setFail(kind string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[kind] = err
}

// TestWatchBurstsOverrunsAndRenewals drives Watch over fake
// subscriptions: a burst of messages of every kind is one call of
// changed; an overrun is a change, not an error, and its subscription is
// made again; a failed read is reported, and a subscription that cannot
// be made again is retried; when ctx ends every subscription ends and
// nothing more is called; a subscription that cannot be made at first is
// Watch's error, and the ones already made end.
func TestWatchBurstsOverrunsAndRenewals(t *testing.T) {
	f := &fakeSubs{fail: map[string]error{}}
	f.install(t)
	calls, errs := make(chan struct{}, 100), make(chan error, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := Watch(ctx, func() { calls <- struct{}{} }, func(err error) { errs <- err }); err != nil {
		t.Fatal(err)
	}
	subs := f.live()
	if len(subs) != 3 {
		t.Fatalf("subscriptions: %v", subs)
	}
	oneCall := func(what string) {
		t.Helper()
		select {
		case <-calls:
		case <-time.After(10 * watchSettle):
			t.Fatalf("%s: changed not called", what)
		}
		select {
		case <-calls:
			t.Fatalf("%s: changed called twice", what)
		case <-time.After(2 * watchSettle):
		}
	}
	noError := func(what string) {
		t.Helper()
		select {
		case err := <-errs:
			t.Errorf("%s: error %v", what, err)
		default:
		}
	}
	// a burst
	for range 5 {
		for _, s := range subs {
			s.send <- struct{}{}
		}
	}
	oneCall("burst")
	noError("burst")

	// an overrun
	old := subs["route"]
	old.kill <- unix.ENOBUFS
	oneCall("overrun")
	noError("overrun")
	<-old.ended
	if s := f.live()["route"]; s == nil || s == old {
		t.Fatalf("overrun: no new route subscription")
	}
	select {
	case <-old.done:
	default:
		t.Error("overrun: the old subscription's done channel is open")
	}

	// a failed read, and a renewal that fails once
	f.setFail("addr", errors.New("no more sockets"))
	subs["addr"].kill <- unix.EIO
	var said []string
	for len(said) < 2 {
		select {
		case err := <-errs:
			said = append(said, err.Error())
		case <-time.After(2 * time.Second):
			t.Fatalf("failed read: errors %q", said)
		}
	}
	if all := strings.Join(said, "\n"); !strings.Contains(all, unix.EIO.Error()) || !strings.Contains(all, "no more sockets") {
		t.Errorf("failed read: errors %q", said)
	}
	oneCall("failed read")
	f.setFail("addr", nil)
	deadline := time.Now().Add(3 * watchRetry)
	for f.live()["addr"] == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if f.live()["addr"] == nil {
		t.Fatal("the address subscription was not made again")
	}
	oneCall("renewed") // what changed while it was gone
	f.live()["addr"].send <- struct{}{}
	oneCall("renewed subscription")
	noError("renewed")

	// ctx ends: every subscription ends, nothing more is called
	live := f.live()
	cancel()
	for _, s := range live {
		select {
		case <-s.ended:
		case <-time.After(2 * time.Second):
			t.Fatalf("%s subscription still running", s.kind)
		}
	}
	time.Sleep(2 * watchSettle)
	if len(calls) != 0 || len(errs) != 0 {
		t.Errorf("after the end: %d calls, %d errors", len(calls), len(errs))
	}

	// a subscription that cannot be made
	f.setFail("route", errors.New("EPERM, say"))
	n := len(f.subs)
	if err := Watch(context.Background(), func() {}, nil); err == nil || !strings.Contains(err.Error(), "EPERM, say") {
		t.Errorf("failed subscription: %v", err)
	}
	for _, s := range f.subs[n:] {
		select {
		case <-s.ended:
		case <-time.After(2 * time.Second):
			t.Errorf("%s subscription left running", s.kind)
		}
	}
}

// settled waits up to 3 s for the goroutines and open files to come down
// to at most goroutines and fds, and returns how many there are.
func settled(t *testing.T, goroutines, fds int) (int, int) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		g, f := runtime.NumGoroutine(), fdCount(t)
		if g <= goroutines && f <= fds || time.Now().After(deadline) {
			return g, f
		}
		time.Sleep(10 * time.Millisecond)
	}
}
