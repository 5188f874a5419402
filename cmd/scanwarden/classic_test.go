package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/hostsdeny"
	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/detect"
)

var (
	cSrc  = netip.MustParseAddr("198.51.100.50")
	cSrc2 = netip.MustParseAddr("198.51.100.51")
	cDst  = netip.MustParseAddr("198.51.100.10")
)

// TestClassicHitsTrigger: SCAN_TRIGGER as PortSentry 1.2 reads it (0 and 1
// react on the first hit, N on the Nth within the window), the alert's
// fields, and one admitted alert per source and window.
func TestClassicHitsTrigger(t *testing.T) {
	sec := int64(time.Second)
	for _, trig := range []int{0, 1} {
		h := newClassicHits(16)
		h.configure(time.Minute, (&conf.Config{ScanTrigger: trig}).TriggerHits())
		a := h.hit(cSrc, cDst, detect.ProtoTCP, 111, 5*sec)
		if a == nil {
			t.Fatalf("SCAN_TRIGGER %d: no alert on the first hit", trig)
		}
		want := detect.Alert{Src: cSrc, Type: detect.TypeConnect, Trigger: detect.TriggerTrap, Time: 5 * sec, First: 5 * sec,
			Probes: 1, Score: detect.WeightClosed, Proto: detect.ProtoTCP, Port: 111}
		if a.Src != want.Src || a.Type != want.Type || a.Trigger != want.Trigger || a.Time != want.Time || a.First != want.First ||
			a.Probes != want.Probes || a.Score != want.Score || a.Proto != want.Proto || a.Port != want.Port ||
			!slices.Equal(a.Ports, []detect.PortRef{{Proto: detect.ProtoTCP, Port: 111}}) || !slices.Equal(a.Dst, []netip.Addr{cDst}) {
			t.Fatalf("alert %+v", a)
		}
	}

	h := newClassicHits(16)
	h.configure(time.Minute, 3)
	if h.hit(cSrc, cDst, detect.ProtoUDP, 31337, 0) != nil || h.hit(cSrc, cDst, detect.ProtoUDP, 7, 10*sec) != nil {
		t.Fatal("alert before the third hit")
	}
	// the third hit comes after the first has left the window: it is
	// the first of a new count
	if h.hit(cSrc, cDst, detect.ProtoUDP, 9, 61*sec) != nil || h.hit(cSrc, cDst, detect.ProtoUDP, 9, 62*sec) != nil {
		t.Fatal("hits outside the window counted together")
	}
	a := h.hit(cSrc, cDst, detect.ProtoUDP, 7, 63*sec)
	if a == nil || a.Type != detect.TypeUDP || a.Probes != 3 || a.First != 61*sec || a.Port != 7 ||
		!slices.Equal(a.Ports, []detect.PortRef{{Proto: detect.ProtoUDP, Port: 7}, {Proto: detect.ProtoUDP, Port: 9}}) || a.Score != 2*detect.WeightClosed {
		t.Fatalf("third hit in the window: %+v", a)
	}

	// one alert per source and window, whichever comes first
	h = newClassicHits(16)
	h.configure(time.Minute, 1)
	if !h.admit(cSrc, 0) {
		t.Fatal("the engine's first alert not admitted")
	}
	if h.hit(cSrc, cDst, detect.ProtoTCP, 1, sec) != nil || h.admit(cSrc, 2*sec) {
		t.Fatal("a second alert of a source within the window")
	}
	if a := h.hit(cSrc2, cDst, detect.ProtoTCP, 1, sec); a == nil || !h.admit(cSrc2, sec) {
		t.Fatal("another source's alert held back")
	}
	if h.admit(cSrc2, 30*sec) {
		t.Fatal("the engine's alert admitted after the classic one")
	}
	if h.hit(cSrc, cDst, detect.ProtoTCP, 1, 61*sec) == nil || !h.admit(cSrc, 61*sec) {
		t.Fatal("no alert once the window has passed")
	}
}

// A source whose alert the block manager refused (rate limit) is reported
// again as the engine's Rearm says: not on every further connection, but
// from the rearm time on, or at once on another port when onNew.
func TestClassicHitsUnclaim(t *testing.T) {
	sec := int64(time.Second)
	for _, onNew := range []bool{true, false} {
		h := newClassicHits(16)
		h.configure(time.Minute, 1)
		if a := h.hit(cSrc, cDst, detect.ProtoTCP, 111, 0); a == nil || !h.admit(cSrc, 0) {
			t.Fatal("first hit")
		}
		h.unclaim(cSrc, 5*sec, onNew) // refused; again from 5 s on
		if a := h.hit(cSrc, cDst, detect.ProtoTCP, 111, sec); a != nil {
			t.Fatalf("onNew %v: the same port again re-reported before the rearm time: %+v", onNew, a)
		}
		a := h.hit(cSrc, cDst, detect.ProtoTCP, 143, 2*sec)
		if onNew && (a == nil || a.Probes != 3 || len(a.Ports) != 2) {
			t.Fatalf("onNew: another port not re-reported at once: %+v", a)
		}
		if !onNew && a != nil {
			t.Fatalf("another port re-reported before the rearm time without onNew: %+v", a)
		}
		if onNew {
			// admitted: one re-report per rearm
			if !h.admit(cSrc, 2*sec) {
				t.Fatal("onNew: re-report not admitted")
			}
			if a := h.hit(cSrc, cDst, detect.ProtoTCP, 1, 3*sec); a != nil {
				t.Fatalf("onNew: re-reported twice: %+v", a)
			}
			continue
		}
		if a := h.hit(cSrc, cDst, detect.ProtoTCP, 111, 6*sec); a == nil || !h.admit(cSrc, 6*sec) {
			t.Fatal("not re-reported after the rearm time")
		}
	}
}

// TestClassicHitsBounded: the table never holds more than its bound; the
// oldest source makes room, and a forgotten source starts afresh.
func TestClassicHitsBounded(t *testing.T) {
	h := newClassicHits(4)
	h.configure(time.Hour, 2)
	base := netip.MustParseAddr("198.51.100.100")
	a := base
	for i := 0; i < 1000; i++ {
		h.hit(a, cDst, detect.ProtoUDP, 7, int64(i))
		a = a.Next()
		if len(h.srcs) > 4 || len(h.order) > 4 {
			t.Fatalf("%d sources held, bound 4", len(h.srcs))
		}
	}
	// the last four are held: a second hit alerts; base was evicted
	// long ago, so its second hit is its first again
	last := a.Prev()
	if h.hit(last, cDst, detect.ProtoUDP, 7, 2000) == nil {
		t.Fatal("a held source lost its count")
	}
	if h.hit(base, cDst, detect.ProtoUDP, 7, 2001) != nil {
		t.Fatal("an evicted source kept its count")
	}
}

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

func TestClassicModeNames(t *testing.T) {
	for _, c := range []struct {
		m        modeSet
		tcp, udp string
	}{
		{modeSet{tcp: true, udp: true}, "stcp", "sudp"},
		{modeSet{tcp: true, classic: []string{"tcp"}}, "tcp", "sudp"},
		{modeSet{udp: true, classic: []string{"udp"}}, "stcp", "udp"},
		{modeSet{tcp: true, udp: true, advUDP: true, classic: []string{"tcp", "udp"}}, "tcp", "audp"},
	} {
		if c.m.name(detect.ProtoTCP) != c.tcp || c.m.name(detect.ProtoUDP) != c.udp {
			t.Errorf("%+v: %s %s", c.m, c.m.name(detect.ProtoTCP), c.m.name(detect.ProtoUDP))
		}
	}
}

// TestClassicConfigWarnings: PORT_BANNER is warned about as unused except
// by a classic TCP daemon, which sends it; a classic UDP daemon says why it
// does not.
func TestClassicConfigWarnings(t *testing.T) {
	c, err := conf.Parse(strings.NewReader("PORT_BANNER=\"go away\"\nSCAN_TRIGGER=\"0\"\nSCAN_TRIGGER=\"2\"\n"), "ps.conf")
	if err != nil {
		t.Fatal(err)
	}
	joined := func(m modeSet) string { return strings.Join(configWarnings(c, m), "\n") }
	if w := joined(modeSet{tcp: true, udp: true}); !strings.Contains(w, "ps.conf:1: PORT_BANNER: accepted but not used") || !strings.Contains(w, "ps.conf:3: SCAN_TRIGGER") {
		t.Errorf("stealth mode: %s", w)
	}
	if w := joined(modeSet{tcp: true, classic: []string{"tcp"}}); strings.Contains(w, "PORT_BANNER") || !strings.Contains(w, "ps.conf:3: SCAN_TRIGGER") {
		t.Errorf("classic TCP: %s", w)
	}
	if w := joined(modeSet{udp: true, classic: []string{"udp"}}); !strings.Contains(w, "ps.conf:1: PORT_BANNER: not sent by the classic UDP mode") || strings.Contains(w, "accepted but not used") {
		t.Errorf("classic UDP: %s", w)
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
	m      *classicMode
	b      *fakeBinder
	logs   *test.Hook
	alerts chan *detect.Alert
}

func newClassicLab(t *testing.T, modes modeSet, errs map[string]error) *classicLab {
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	l := &classicLab{b: &fakeBinder{errs: errs, tcp: map[uint16]*fakeListener{}, udp: map[uint16]*fakeUDP{}}, logs: hook,
		alerts: make(chan *detect.Alert, 100)}
	l.m = newClassicMode(modes, log, func(a *detect.Alert) { l.alerts <- a })
	if l.m == nil {
		t.Fatal("no classic mode")
	}
	l.m.bind = l.b
	l.m.unprivStart = func() int { return 1024 }
	t.Cleanup(l.m.close)
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

func classicConf(t *testing.T, text string) *conf.Config {
	t.Helper()
	c, err := conf.Parse(strings.NewReader(text), "classic.conf")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClassicModeBinding: the listed ports are bound, the ones that cannot
// be are logged once each, grouped by reason, and the ones a reload drops
// are closed; owned reports what is bound and serviceHas does not count
// it; the capture's trap ports leave the bound ports and the services'
// ones out but keep the refused ones.
func TestClassicModeBinding(t *testing.T) {
	l := newClassicLab(t, modeSet{tcp: true, classic: []string{"tcp"}}, map[string]error{
		"tcp/1": syscall.EACCES, "tcp/11": syscall.EACCES, "tcp/7777": syscall.EADDRINUSE,
	})
	c := classicConf(t, "TCP_PORTS=\"1,11,7777,31337,40421\"\nUDP_PORTS=\"7\"\n")
	l.m.sync(c)
	otcp, oudp := l.m.owned()
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
	l.m.sync(classicConf(t, "TCP_PORTS=\"1,11,7777,31337\"\n"))
	if len(l.logs.AllEntries()) != 0 {
		t.Errorf("a reload logged again: %v", l.logs.AllEntries()[0].Message)
	}
	if l.b.listener(31337) != ln || ln.isClosed() || !l.b.listener(40421).isClosed() {
		t.Error("reload rebound a kept port or kept a dropped one")
	}

	// /proc/net lists our listener on 31337 and a service on 7777
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tcp"), []byte(`  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:7A69 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 00000000:1E61 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
`), 0o644)
	d := &daemon{bound: procNet(dir), modes: modeSet{tcp: true, classic: []string{"tcp"}}, classic: l.m}
	// the check on a trap hit: a service on 7777, not ours on 31337,
	// nothing on 11, and no UDP service on 7777
	for _, c := range []struct {
		proto uint8
		port  uint16
		want  bool
	}{{detect.ProtoTCP, 7777, true}, {detect.ProtoTCP, 31337, false}, {detect.ProtoTCP, 11, false}, {detect.ProtoUDP, 7777, false}} {
		if got, err := d.serviceHas(c.proto, c.port); err != nil || got != c.want {
			t.Errorf("serviceHas(%s, %d) = %v, %v; want %v", detect.ProtoName(c.proto), c.port, got, err, c.want)
		}
	}
	tr, err := d.computeTraps(classicConf(t, "TCP_PORTS=\"1,11,7777,31337\"\n"), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !tr.tcp.Has(1) || !tr.tcp.Has(11) || tr.tcp.Has(7777) || tr.tcp.Has(31337) {
		t.Error("capture traps: want the refused ports only")
	}
	l.m.close()
	if !ln.isClosed() {
		t.Error("close left a listener open")
	}
}

// TestClassicModeConnect: a connection gets PORT_BANNER byte for byte,
// then is closed, and only then is reported as a connect alert; nothing is
// read from it. A client that does not read holds its handler no longer
// than the write timeout.
func TestClassicModeConnect(t *testing.T) {
	l := newClassicLab(t, modeSet{tcp: true, classic: []string{"tcp"}}, nil)
	banner := `** UNAUTHORIZED ACCESS PROHIBITED *** \n not an escape`
	l.m.sync(classicConf(t, "TCP_PORTS=\"31337\"\nPORT_BANNER=\""+banner+"\"\n"))
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
	if a.Src != cSrc || a.Type != detect.TypeConnect || a.Trigger != detect.TriggerTrap || a.Port != 31337 || !slices.Equal(a.Dst, []netip.Addr{cDst}) {
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
	l := newClassicLab(t, modeSet{tcp: true, classic: []string{"tcp"}}, nil)
	l.m.mu.Lock()
	l.m.writeTimeout = time.Hour
	l.m.mu.Unlock()
	l.m.sync(classicConf(t, "TCP_PORTS=\"31337\"\nPORT_BANNER=\"hello\"\nSCAN_TRIGGER=\"1000\"\n"))
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
		l.m.hits.mu.Lock()
		s := l.m.hits.srcs[src]
		n := uint32(0)
		if s != nil {
			n = s.hits
		}
		l.m.hits.mu.Unlock()
		if n == 1 {
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
	l := newClassicLab(t, modeSet{udp: true, classic: []string{"udp"}}, nil)
	l.m.sync(classicConf(t, "UDP_PORTS=\"7,31335\"\nHOME_NETWORKS=\"198.51.100.0/25\"\nPORT_BANNER=\"x\"\n"))
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

// TestTwoManagersOneState is the -tcp/-udp pair as the block managers see
// it: two managers, each with its own state handle, journal and hosts.deny
// backend, over the same STATE_DIR and files, handling alerts of the same
// sources at once. Each source is blocked once, by one backend call, with
// one hosts.deny entry and one history line.
func TestTwoManagersOneState(t *testing.T) {
	dir := t.TempDir()
	hd := filepath.Join(dir, "hosts.deny")
	if err := os.WriteFile(hd, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	hist := filepath.Join(dir, "history")
	var blocks countingBlocker
	var mgrs []*block.Manager
	for i := 0; i < 2; i++ {
		st, err := block.OpenState(filepath.Join(dir, "state"))
		if err != nil {
			t.Fatal(err)
		}
		h, err := hostsdeny.New(hd, "ALL: $TARGET$ : DENY", hostsdeny.WithLockDir(filepath.Join(dir, "state", "locks")))
		if err != nil {
			t.Fatal(err)
		}
		j := block.NewJournal(hist, filepath.Join(dir, "blocked"))
		t.Cleanup(func() { j.Close() })
		log, _ := test.NewNullLogger()
		m, err := block.NewManager(block.Options{Policy: block.PolicyOf(conf.Default()), Blockers: []block.Blocker{&blocks, h},
			Never: block.NewNeverBlock(nil, false, false), State: st, Journal: j, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		mgrs = append(mgrs, m)
	}
	srcs := []netip.Addr{netip.MustParseAddr("198.51.100.60"), netip.MustParseAddr("198.51.100.61"), netip.MustParseAddr("fd00:77::60")}
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[netip.Addr][]block.Outcome{}
	for round := 0; round < 4; round++ {
		for i, m := range mgrs {
			typ, mode := detect.TypeConnect, "tcp"
			if i == 1 {
				typ, mode = detect.TypeUDP, "udp"
			}
			for _, src := range srcs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					out, err := m.Handle(context.Background(), &detect.Alert{Src: src, Type: typ, Trigger: detect.TriggerTrap, Port: 1, Probes: 1}, mode)
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					outcomes[src] = append(outcomes[src], out)
					mu.Unlock()
				}()
			}
		}
	}
	wg.Wait()
	for _, src := range srcs {
		n := 0
		for _, o := range outcomes[src] {
			if o == block.Blocked {
				n++
			} else if o != block.AlreadyBlocked {
				t.Errorf("%s: outcome %v", src, o)
			}
		}
		if n != 1 {
			t.Errorf("%s blocked %d times: %v", src, n, outcomes[src])
		}
		if got := blocks.count(src); got != 1 {
			t.Errorf("%s: %d backend blocks", src, got)
		}
	}
	deny, _ := os.ReadFile(hd)
	histText, _ := os.ReadFile(hist)
	for _, src := range srcs {
		if n := strings.Count(string(deny), src.String()+"]"); src.Is6() && n != 1 {
			t.Errorf("hosts.deny has %d entries for %s:\n%s", n, src, deny)
		}
		if n := strings.Count(string(deny), "ALL: "+src.String()+" "); src.Is4() && n != 1 {
			t.Errorf("hosts.deny has %d entries for %s:\n%s", n, src, deny)
		}
		if n := strings.Count(string(histText), "/"+src.String()+" Port:"); n != 1 {
			t.Errorf("history has %d lines for %s:\n%s", n, src, histText)
		}
	}
	bans, err := mgrs[0].List()
	if err != nil || len(bans) != len(srcs) {
		t.Fatalf("state: %v %v", bans, err)
	}
}

// countingBlocker counts Block calls per address, across managers.
type countingBlocker struct {
	mu sync.Mutex
	n  map[netip.Addr]int
}

func (c *countingBlocker) count(a netip.Addr) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[a]
}

func (c *countingBlocker) Name() string { return "counting" }
func (c *countingBlocker) Block(_ context.Context, b block.Ban) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[netip.Addr]int{}
	}
	c.n[b.Addr]++
	return nil
}
func (c *countingBlocker) Unblock(context.Context, netip.Addr) error  { return nil }
func (c *countingBlocker) List(context.Context) ([]netip.Addr, error) { return nil, nil }
func (c *countingBlocker) Sync(context.Context, []block.Ban) error    { return nil }
func (c *countingBlocker) Flush(context.Context) error                { return nil }

// BenchmarkClassicHits measures what one hit on a classic port costs the
// daemon beyond the socket: a source hitting again below SCAN_TRIGGER, and
// a flood of forged sources with the table full (each evicts the oldest).
func BenchmarkClassicHits(b *testing.B) {
	b.Run("same-source", func(b *testing.B) {
		h := newClassicHits(classicMaxSources)
		h.configure(time.Minute, 1<<30)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			h.hit(cSrc, cDst, detect.ProtoUDP, 7, int64(i))
		}
	})
	b.Run("forged-flood", func(b *testing.B) {
		h := newClassicHits(classicMaxSources)
		h.configure(time.Minute, 2)
		src := netip.MustParseAddr("10.0.0.0")
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			h.hit(src, cDst, detect.ProtoUDP, 7, int64(i))
			src = src.Next()
		}
		b.ReportMetric(float64(len(h.srcs)), "sources-held")
	})
	b.Run("alert-and-admit", func(b *testing.B) {
		h := newClassicHits(classicMaxSources)
		h.configure(time.Minute, 1)
		src := netip.MustParseAddr("10.0.0.0")
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if a := h.hit(src, cDst, detect.ProtoTCP, 1, int64(i)); a != nil {
				h.admit(a.Src, int64(i))
			}
			src = src.Next()
		}
	})
}
