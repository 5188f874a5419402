package classic

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/detect"
)

var (
	cSrc  = netip.MustParseAddr("198.51.100.50")
	cSrc2 = netip.MustParseAddr("198.51.100.51")
	cDst  = netip.MustParseAddr("198.51.100.10")
)

func TestBindProblem(t *testing.T) {
	inUse := fmt.Errorf("listen tcp4 0.0.0.0:111: bind: %w", syscall.EADDRINUSE)
	denied := fmt.Errorf("listen tcp4 0.0.0.0:111: bind: %w", syscall.EACCES)
	if s := bindProblem(inUse, 111, 1024); !strings.Contains(s, "in use by another program") || !strings.Contains(s, "no trap") {
		t.Errorf("EADDRINUSE: %s", s)
	}
	s := bindProblem(denied, 111, 1024)
	for _, want := range []string{"ip_unprivileged_port_start (1024)", "CAP_NET_BIND_SERVICE", "packet capture only", "systemctl edit scanwarden", "AmbientCapabilities="} {
		if !strings.Contains(s, want) {
			t.Errorf("EACCES below the limit: %q lacks %q", s, want)
		}
	}
	// above the limit it is not the capability (an LSM, say)
	if s := bindProblem(denied, 2000, 1024); strings.Contains(s, "CAP_NET_BIND_SERVICE") || !strings.Contains(s, "packet capture only") {
		t.Errorf("EACCES above the limit: %s", s)
	}
	if s := bindProblem(errors.New("boom"), 5, 1024); !strings.HasPrefix(s, "boom") {
		t.Errorf("other: %s", s)
	}
}

func TestPktinfoDst(t *testing.T) {
	v4 := unix.PktInfo4(&unix.Inet4Pktinfo{Ifindex: 2, Spec_dst: [4]byte{192, 0, 2, 1}, Addr: [4]byte{198, 51, 100, 10}})
	if got := pktinfoDst(v4); got != cDst {
		t.Errorf("IPv4: %v", got)
	}
	v6 := unix.PktInfo6(&unix.Inet6Pktinfo{Addr: netip.MustParseAddr("fd00:77::10").As16(), Ifindex: 2})
	if got := pktinfoDst(v6); got != netip.MustParseAddr("fd00:77::10") {
		t.Errorf("IPv6: %v", got)
	}
	if got := pktinfoDst(nil); got.IsValid() {
		t.Errorf("none: %v", got)
	}
}

// fakeListener hands out the connections sent on conns; Close ends Accept.
type fakeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	port   uint16
}

func newFakeListener(port uint16) *fakeListener {
	return &fakeListener{conns: make(chan net.Conn), closed: make(chan struct{}), port: port}
}

func (l *fakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *fakeListener) Close() error { l.once.Do(func() { close(l.closed) }); return nil }
func (l *fakeListener) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}
func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{Port: int(l.port)} }

// addrConn is one end of a net.Pipe with TCP addresses.
type addrConn struct {
	net.Conn
	local, remote *net.TCPAddr
}

func (c addrConn) LocalAddr() net.Addr  { return c.local }
func (c addrConn) RemoteAddr() net.Addr { return c.remote }

// dial makes a connection from src to dst:port through l and returns the
// client's end.
func (l *fakeListener) dial(t *testing.T, src, dst netip.Addr) net.Conn {
	t.Helper()
	client, server := net.Pipe()
	l.conns <- addrConn{server, net.TCPAddrFromAddrPort(netip.AddrPortFrom(dst, l.port)), net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 40000))}
	return client
}

// fakeUDP hands out the datagrams' addresses sent on from.
type fakeUDP struct {
	from   chan [2]netip.AddrPort // source, destination
	closed chan struct{}
	once   sync.Once
}

func (u *fakeUDP) ReadMsgUDPAddrPort(b, oob []byte) (int, int, int, netip.AddrPort, error) {
	select {
	case d := <-u.from:
		info := unix.PktInfo4(&unix.Inet4Pktinfo{Addr: d[1].Addr().As4()})
		return copy(b, "x"), copy(oob, info), 0, d[0], nil
	case <-u.closed:
		return 0, 0, 0, netip.AddrPort{}, net.ErrClosed
	}
}

func (u *fakeUDP) Close() error { u.once.Do(func() { close(u.closed) }); return nil }

// fakeBinder binds what its errs do not refuse, IPv4 only (IPv6 is
// "not supported"), and keeps the sockets it made.
type fakeBinder struct {
	mu   sync.Mutex
	errs map[string]error // "tcp/111": the error of binding it
	tcp  map[uint16]*fakeListener
	udp  map[uint16]*fakeUDP
}

func (b *fakeBinder) listenTCP(network string, port uint16) (net.Listener, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if network == "tcp6" {
		return nil, &net.OpError{Op: "listen", Net: network, Err: os.NewSyscallError("socket", syscall.EAFNOSUPPORT)}
	}
	if err := b.errs[fmt.Sprintf("tcp/%d", port)]; err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: os.NewSyscallError("bind", err)}
	}
	l := newFakeListener(port)
	b.tcp[port] = l
	return l, nil
}

func (b *fakeBinder) listenUDP(network string, port uint16) (udpReader, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if network == "udp6" {
		return nil, &net.OpError{Op: "listen", Net: network, Err: os.NewSyscallError("socket", syscall.EAFNOSUPPORT)}
	}
	if err := b.errs[fmt.Sprintf("udp/%d", port)]; err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: os.NewSyscallError("bind", err)}
	}
	u := &fakeUDP{from: make(chan [2]netip.AddrPort), closed: make(chan struct{})}
	b.udp[port] = u
	return u, nil
}

func (b *fakeBinder) listener(port uint16) *fakeListener {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tcp[port]
}

// classicLab is a classicMode over a fakeBinder, whose alerts are
// collected.
type classicLab struct {
	m      *Mode
	b      *fakeBinder
	logs   *test.Hook
	alerts chan *detect.Alert
}

func newClassicLab(t *testing.T, tcp, udp bool, errs map[string]error) *classicLab {
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	l := &classicLab{b: &fakeBinder{errs: errs, tcp: map[uint16]*fakeListener{}, udp: map[uint16]*fakeUDP{}}, logs: hook,
		alerts: make(chan *detect.Alert, 100)}
	l.m = New(tcp, udp, log, func(a *detect.Alert) { l.alerts <- a })
	if l.m == nil {
		t.Fatal("no classic mode")
	}
	l.m.bind = l.b
	l.m.unprivStart = func() int { return 1024 }
	t.Cleanup(l.m.Close)
	return l
}

func (l *classicLab) logged(sub string) int {
	n := 0
	for _, e := range l.logs.AllEntries() {
		if strings.Contains(e.Message, sub) {
			n++
		}
	}
	return n
}

func (l *classicLab) alert(t *testing.T) *detect.Alert {
	t.Helper()
	select {
	case a := <-l.alerts:
		return a
	case <-time.After(5 * time.Second):
		t.Fatal("no alert")
		return nil
	}
}

// settings are Settings with the defaults' window and trigger.
func settings(tcp, udp []uint16) Settings {
	return Settings{TCP: tcp, UDP: udp, Window: time.Minute, Trigger: 1}
}

// TestClassicModeBinding: the listed ports are bound, the ones that cannot
// be are logged once each, grouped by reason, and the ones a reload drops
// are closed; Owned reports what is bound.
func TestClassicModeBinding(t *testing.T) {
	l := newClassicLab(t, true, false, map[string]error{
		"tcp/1": syscall.EACCES, "tcp/11": syscall.EACCES, "tcp/7777": syscall.EADDRINUSE,
	})
	l.m.Sync(settings([]uint16{1, 11, 7777, 31337, 40421}, []uint16{7}))
	otcp, oudp := l.m.Owned()
	if !otcp.Has(31337) || !otcp.Has(40421) || otcp.Has(1) || otcp.Has(7777) || oudp.Has(7) {
		t.Fatal("owned ports wrong")
	}
	if n := l.logged("cannot bind TCP port(s) 1,11: permission denied"); n != 1 {
		t.Errorf("EACCES logged %d times", n)
	}
	if n := l.logged("cannot bind TCP port(s) 7777: in use by another program"); n != 1 {
		t.Errorf("EADDRINUSE logged %d times", n)
	}
	if n := l.logged("Going into listen mode on TCP port(s): 31337,40421"); n != 1 {
		t.Errorf("listen line logged %d times", n)
	}
	if n := l.logged("IPv6 is not available"); n != 1 {
		t.Errorf("no IPv6 logged %d times", n)
	}
	// a reload with the same ports logs nothing new and binds nothing
	// again; dropping 40421 closes it
	ln := l.b.listener(31337)
	l.logs.Reset()
	l.m.Sync(settings([]uint16{1, 11, 7777, 31337}, nil))
	if len(l.logs.AllEntries()) != 0 {
		t.Errorf("a reload logged again: %v", l.logs.AllEntries()[0].Message)
	}
	if l.b.listener(31337) != ln || ln.isClosed() || !l.b.listener(40421).isClosed() {
		t.Error("reload rebound a kept port or kept a dropped one")
	}

	if !l.m.Owns(detect.ProtoTCP, 31337) || l.m.Owns(detect.ProtoTCP, 7777) || l.m.Owns(detect.ProtoUDP, 31337) {
		t.Error("Owns wrong")
	}
	l.m.Close()
	if !ln.isClosed() {
		t.Error("close left a listener open")
	}
}

// TestClassicModeConnect: a connection gets PORT_BANNER byte for byte,
// then is closed, and only then is reported as a connect alert; nothing is
// read from it. A client that does not read holds its handler no longer
// than the write timeout.
func TestClassicModeConnect(t *testing.T) {
	l := newClassicLab(t, true, false, nil)
	banner := `** UNAUTHORIZED ACCESS PROHIBITED *** \n not an escape`
	st := settings([]uint16{31337}, nil)
	st.Banner = []byte(banner)
	l.m.Sync(st)
	client := l.b.listener(31337).dial(t, cSrc, cDst)
	select {
	case a := <-l.alerts:
		t.Fatalf("alert before the banner was read: %+v", a)
	case <-time.After(50 * time.Millisecond):
	}
	got, err := io.ReadAll(client)
	if err != nil || string(got) != banner {
		t.Fatalf("banner %q, %v", got, err)
	}
	a := l.alert(t)
	if a.Src != cSrc || a.Type != detect.TypeConnect || a.Trigger != detect.TriggerTrap || a.Port != 31337 || !a.Connected || !slices.Equal(a.Dst, []netip.Addr{cDst}) {
		t.Fatalf("alert %+v", a)
	}

	// a client that never reads: the handler gives up after the write
	// timeout and the hit still counts
	l.m.mu.Lock()
	l.m.writeTimeout = 100 * time.Millisecond
	l.m.mu.Unlock()
	stuck := l.b.listener(31337).dial(t, cSrc2, cDst)
	defer stuck.Close()
	if a := l.alert(t); a.Src != cSrc2 {
		t.Fatalf("alert %+v", a)
	}
}

// TestClassicModeBounded: with every handler busy a connection is closed
// at once, without the banner, and still counts.
func TestClassicModeBounded(t *testing.T) {
	l := newClassicLab(t, true, false, nil)
	l.m.mu.Lock()
	l.m.writeTimeout = time.Hour
	l.m.mu.Unlock()
	st := settings([]uint16{31337}, nil)
	st.Banner, st.Trigger = []byte("hello"), 1000
	l.m.Sync(st)
	ln := l.b.listener(31337)
	src := netip.MustParseAddr("198.51.100.100")
	var stuck []net.Conn
	for i := 0; i < classicHandlers; i++ {
		stuck = append(stuck, ln.dial(t, src, cDst)) // never read: each holds a handler
		src = src.Next()
	}
	c := ln.dial(t, src, cDst)
	buf := make([]byte, 8)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(buf); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("with every handler busy: read %q, %v; want EOF at once", buf[:n], err)
	}
	if got := len(l.m.slots); got != classicHandlers {
		t.Fatalf("%d handlers busy, want %d", got, classicHandlers)
	}
	for _, s := range stuck {
		s.Close()
	}
	// the refused connection's hit is counted (after the close the
	// client saw): with SCAN_TRIGGER 1 it would have alerted
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		l.m.hitMu.Lock()
		n := l.m.eng.Stats().Probes
		l.m.hitMu.Unlock()
		if n == classicHandlers+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("refused connection counted %d times", n)
		}
	}
}

// TestClassicModeUDP: a datagram at a bound UDP port is a udp alert by the
// trap trigger; one aimed outside HOME_NETWORKS does not count.
func TestClassicModeUDP(t *testing.T) {
	l := newClassicLab(t, false, true, nil)
	st := settings(nil, []uint16{7, 31335})
	st.Home, st.Banner = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/25")}, []byte("x")
	l.m.Sync(st)
	u := l.b.udp[31335]
	u.from <- [2]netip.AddrPort{netip.AddrPortFrom(cSrc2, 5000), netip.AddrPortFrom(netip.MustParseAddr("198.51.100.200"), 31335)}
	u.from <- [2]netip.AddrPort{netip.AddrPortFrom(cSrc, 5000), netip.AddrPortFrom(cDst, 31335)}
	a := l.alert(t)
	if a.Src != cSrc || a.Type != detect.TypeUDP || a.Proto != detect.ProtoUDP || a.Port != 31335 || a.Trigger != detect.TriggerTrap {
		t.Fatalf("alert %+v", a)
	}
	select {
	case a := <-l.alerts:
		t.Fatalf("second alert %+v", a)
	default:
	}
}
