// Package classic serves PortSentry's classic modes, -tcp and -udp: the ports of TCP_PORTS and
// UDP_PORTS are bound so that they look open, a full TCP connection gets
// PORT_BANNER and is closed, and a connection (or a datagram at a bound UDP
// port) is a hit of its source, as in PortSentry 1.2. The packet capture
// goes on beside it: every other port is scored as in the stealth modes,
// and a trap port that cannot be bound stays a trap of the capture.
//
// A bound port is not a trap of the capture: the engine would react to the
// SYN, before the connection is accepted and the banner sent, and the kernel
// trap would drop the SYN itself. Only a completed handshake or a datagram
// at the socket counts there, which a forged source cannot make (for TCP).
//
// It owns the classic ports' sockets and their handlers. Hits are counted
// by a detection engine of its own (detect.Engine.Hit: SCAN_TRIGGER, the
// window, the bounded table, Rearm), not by a copy of it. It does not read
// the config file (the daemon hands it Settings) and never blocks: its
// alerts go to the daemon through the emit function.
package classic

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/host"
)

// Tunables of the classic modes.
const (
	// classicHandlers bounds the accepted connections being answered
	// (banner written, closed, hit reported) at once, over every classic
	// port: a connect flood then costs at most this many goroutines and
	// sockets; a connection that finds them all busy is closed at once,
	// without the banner, and still counts as a hit. 64 is far more than
	// a scanner's parallel connects to a couple of dozen trap ports.
	classicHandlers = 64
	// classicWriteTimeout bounds the banner write of one connection. A
	// banner is sent into a fresh socket's send buffer at once; only a
	// banner larger than the buffer, to a client that does not read, waits,
	// and it must not hold a handler longer than this.
	classicWriteTimeout = 2 * time.Second
	// classicMaxSources bounds the sources whose hits on classic ports
	// are counted (SCAN_TRIGGER above 1) by the classic engine: a flood of
	// forged UDP sources costs constant memory (about 0.8 KiB a source,
	// allocated up front), the engine's eviction making room.
	classicMaxSources = 4096
	// classicDatagram is how much of a datagram at a classic UDP port is
	// read: none of it is used (PortSentry read one byte), and nothing is
	// ever sent back.
	classicDatagram = 1
	// classicRetry is how long an accept or read that failed (EMFILE,
	// say) waits before it tries again; the failure is logged once.
	classicRetry = 100 * time.Millisecond
)

// classicPortKey names one classic port.
type classicPortKey struct {
	proto uint8
	port  uint16
}

// classicSocket is one bound socket of a classic port (one per address
// family).
type classicSocket interface {
	Close() error
}

// udpReader is what the classic mode needs of a bound UDP socket: read a
// datagram's source and, from its IP_PKTINFO / IPV6_PKTINFO control
// message, its destination. *net.UDPConn is one.
type udpReader interface {
	ReadMsgUDPAddrPort(b, oob []byte) (n, oobn, flags int, addr netip.AddrPort, err error)
	Close() error
}

// binder binds the wildcard address of one family ("tcp4", "tcp6", "udp4",
// "udp6") on a port. The real one is netBinder; tests give fakes.
type binder interface {
	listenTCP(network string, port uint16) (net.Listener, error)
	listenUDP(network string, port uint16) (udpReader, error)
}

// Settings are what the classic mode takes from the config: the ports to
// bind (TCP_PORTS with -tcp, UDP_PORTS with -udp; port 0 is skipped),
// PORT_BANNER, HOME_NETWORKS, DETECT_WINDOW and SCAN_TRIGGER (0 and 1:
// the first hit).
type Settings struct {
	TCP, UDP []uint16
	Banner   []byte
	Home     []netip.Prefix
	Window   time.Duration
	Trigger  int
}

// Mode binds and serves the classic ports of one daemon. Its methods are
// safe for concurrent use, and safe on a nil *Mode (no classic mode).
type Mode struct {
	log      logrus.FieldLogger
	tcp, udp bool
	// emit hands an alert to the daemon, which queues it for the block
	// manager without waiting (or drops it and calls Rearm).
	emit  func(*detect.Alert)
	slots chan struct{}
	bind  binder
	now   func() time.Time
	// unprivStart reads net.ipv4.ip_unprivileged_port_start.
	unprivStart func() int

	// hitMu guards eng, the engine that counts the hits (one hit per
	// connection or datagram, never per packet), and what it was made
	// with.
	hitMu   sync.Mutex
	eng     *detect.Engine
	engWith engineKey

	mu     sync.Mutex
	banner []byte
	// writeTimeout is classicWriteTimeout (tests shorten it).
	writeTimeout time.Duration
	ports        map[classicPortKey][]classicSocket
	failed       map[classicPortKey]string // why a port could not be bound, as last logged
	no6          bool                      // IPv6 unavailable, said once
	stopped      bool
	wg           sync.WaitGroup
}

// engineKey is what the hit engine was made with: a reload that changes
// it starts a new count.
type engineKey struct {
	window  time.Duration
	trigger int
	home    string
}

// New returns the classic mode (nil when neither tcp nor udp is asked
// for); nothing is bound before Sync. emit receives the alerts of the
// classic ports.
func New(tcp, udp bool, log logrus.FieldLogger, emit func(*detect.Alert)) *Mode {
	if !tcp && !udp {
		return nil
	}
	return &Mode{
		log: log, tcp: tcp, udp: udp, emit: emit,
		slots:        make(chan struct{}, classicHandlers),
		bind:         netBinder{},
		now:          time.Now,
		writeTimeout: classicWriteTimeout,
		unprivStart:  host.UnprivilegedPortStart,
		ports:        map[classicPortKey][]classicSocket{},
		failed:       map[classicPortKey]string{},
	}
}

// Sync binds the ports of s that are not bound yet, closes those it no
// longer lists, and takes the banner, the home networks, the window and
// the trigger from s. It is called on start, before the capture's trap
// ports are computed (a bound port is no trap of the capture), and on
// every reload. A port that cannot be bound is logged once with the
// reason, grouped with the others of the same reason; it is tried again
// on the next reload, never in between (a service starting meanwhile
// must not lose its port to scanwarden).
func (m *Mode) Sync(s Settings) {
	if m == nil {
		return
	}
	want := map[classicPortKey]bool{}
	if m.tcp {
		for _, p := range s.TCP {
			want[classicPortKey{detect.ProtoTCP, p}] = p != 0
		}
	}
	if m.udp {
		for _, p := range s.UDP {
			want[classicPortKey{detect.ProtoUDP, p}] = p != 0
		}
	}
	m.configure(s)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	m.banner = nil
	if m.tcp && len(s.Banner) > 0 {
		// sent as written, as PortSentry 1.2 did: no escapes are
		// interpreted and no line end is added
		m.banner = slices.Clone(s.Banner)
	}
	for k, socks := range m.ports {
		if !want[k] {
			closeAll(socks)
			delete(m.ports, k)
		}
	}
	for k := range m.failed {
		if !want[k] {
			delete(m.failed, k)
		}
	}
	keys := make([]classicPortKey, 0, len(want))
	for k, ok := range want {
		if ok && m.ports[k] == nil {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b classicPortKey) int {
		if a.proto != b.proto {
			return int(a.proto) - int(b.proto)
		}
		return int(a.port) - int(b.port)
	})
	m.bindAll(keys)
}

// configure makes the hit engine for s's window, trigger and home
// networks, unless the one in use has them already.
func (m *Mode) configure(s Settings) {
	key := engineKey{window: s.Window, trigger: s.Trigger, home: fmt.Sprint(s.Home)}
	m.hitMu.Lock()
	defer m.hitMu.Unlock()
	if m.eng != nil && m.engWith == key {
		return
	}
	eng, err := detect.New(detect.Config{
		Window: s.Window, ScanTrigger: s.Trigger, MaxSources: classicMaxSources, Home: s.Home,
		// only the trap trigger: every hit is on a trap port, and the
		// score of a handful of them must not make an alert of its own
		Threshold: math.MaxInt32,
	})
	if err != nil {
		m.log.Errorf("classic mode: %v (keeping the previous count)", err)
		return
	}
	m.eng, m.engWith = eng, key
}

// bindAll binds keys (sorted) and logs what was bound and, grouped by
// reason, what could not be. Called with m.mu held.
func (m *Mode) bindAll(keys []classicPortKey) {
	unpriv := m.unprivStart()
	opened := map[uint8][]uint16{}
	type group struct {
		proto uint8
		why   string
	}
	var order []group
	failed := map[group][]uint16{}
	for _, k := range keys {
		socks, err := m.open(k)
		if err == nil {
			m.ports[k] = socks
			delete(m.failed, k)
			opened[k.proto] = append(opened[k.proto], k.port)
			continue
		}
		why := bindProblem(err, k.port, unpriv)
		if m.failed[k] == why {
			continue // said already
		}
		m.failed[k] = why
		g := group{k.proto, why}
		if failed[g] == nil {
			order = append(order, g)
		}
		failed[g] = append(failed[g], k.port)
	}
	for _, proto := range []uint8{detect.ProtoTCP, detect.ProtoUDP} {
		if ps := opened[proto]; len(ps) > 0 {
			what := "a connection gets PORT_BANNER and is closed"
			switch {
			case proto == detect.ProtoUDP:
				what = "a datagram is read and never answered"
			case m.banner == nil:
				what = "a connection is closed at once (no PORT_BANNER)"
			}
			m.log.Warnf("adminalert: Going into listen mode on %s port(s): %s (classic mode: they look open; %s, and its source is reported)",
				detect.ProtoName(proto), detect.PortsText(ps), what)
		}
	}
	for _, g := range order {
		m.log.Warnf("adminalert: classic mode cannot bind %s port(s) %s: %s", detect.ProtoName(g.proto), detect.PortsText(failed[g]), g.why)
	}
}

// open binds k in both families and starts serving it. A family the host
// does not have (no IPv6) is skipped; any other failure closes what was
// bound and is returned, for bindProblem. Called with m.mu held.
func (m *Mode) open(k classicPortKey) ([]classicSocket, error) {
	var socks []classicSocket
	var tcp []net.Listener
	var udp []udpReader
	for _, fam := range []string{"4", "6"} {
		var err error
		if k.proto == detect.ProtoTCP {
			var ln net.Listener
			if ln, err = m.bind.listenTCP("tcp"+fam, k.port); err == nil {
				tcp = append(tcp, ln)
				socks = append(socks, ln)
			}
		} else {
			var pc udpReader
			if pc, err = m.bind.listenUDP("udp"+fam, k.port); err == nil {
				udp = append(udp, pc)
				socks = append(socks, pc)
			}
		}
		if err == nil {
			continue
		}
		if fam == "6" && noFamily(err) {
			if !m.no6 {
				m.no6 = true
				m.log.Warnf("adminalert: classic mode: IPv6 is not available (%v): classic ports are bound for IPv4 only", err)
			}
			continue
		}
		closeAll(socks)
		return nil, err
	}
	for _, ln := range tcp {
		m.wg.Add(1)
		go m.serveTCP(ln, k.port)
	}
	for _, pc := range udp {
		m.wg.Add(1)
		go m.serveUDP(pc, k.port)
	}
	return socks, nil
}

// noFamily reports whether err says the host has no such address family.
func noFamily(err error) bool {
	return errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EPROTONOSUPPORT) || errors.Is(err, syscall.EADDRNOTAVAIL)
}

// bindProblem says why port could not be bound and what follows, for the
// log: in use by another program (no trap at all, as a service's port in
// the stealth modes), or refused (a trap of the packet capture only).
// unpriv is net.ipv4.ip_unprivileged_port_start.
func bindProblem(err error, port uint16, unpriv int) string {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return "in use by another program (address already in use): left to it, and no trap, as a service's port"
	case (errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)) && int(port) < unpriv:
		return fmt.Sprintf("permission denied: ports below net.ipv4.ip_unprivileged_port_start (%d) need CAP_NET_BIND_SERVICE, "+
			"which this process lacks (the shipped systemd unit grants only CAP_NET_RAW and CAP_NET_ADMIN); "+
			"they stay watched by packet capture only (a probe is a trap hit, as with -stcp, but they do not look open). "+
			"To bind them, grant the capability: systemctl edit scanwarden, and under [Service] set "+
			"AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN CAP_NET_BIND_SERVICE and "+
			"CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN CAP_NET_BIND_SERVICE", unpriv)
	}
	return fmt.Sprintf("%v: watched by packet capture only", err)
}

// Owned returns the ports the classic mode has bound: traps it serves
// itself, neither services' ports nor traps of the packet capture.
func (m *Mode) Owned() (tcp, udp detect.PortSet) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.ports {
		if k.proto == detect.ProtoTCP {
			tcp.Add(k.port)
		} else {
			udp.Add(k.port)
		}
	}
	return
}

// Owns reports whether the classic mode has bound port of proto.
func (m *Mode) Owns(proto uint8, port uint16) bool {
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.ports[classicPortKey{proto, port}]
	return ok
}

// Rearm asks the hit engine to report src again (see
// detect.Engine.Rearm): the block manager refused its alert.
func (m *Mode) Rearm(src netip.Addr, at int64, onNew bool) {
	if m == nil {
		return
	}
	m.hitMu.Lock()
	defer m.hitMu.Unlock()
	if m.eng != nil {
		m.eng.Rearm(src, at, onNew)
	}
}

// Close closes every classic socket and waits for the connections being
// answered; their hits are reported before it returns, so the alert queue
// must still be drained meanwhile.
func (m *Mode) Close() {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.stopped = true
	for k, socks := range m.ports {
		closeAll(socks)
		delete(m.ports, k)
	}
	m.mu.Unlock()
	m.wg.Wait()
}

func closeAll(socks []classicSocket) {
	for _, s := range socks {
		s.Close()
	}
}

// serveTCP accepts the connections of one classic TCP socket until it is
// closed.
func (m *Mode) serveTCP(ln net.Listener, port uint16) {
	defer m.wg.Done()
	failing := false
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if !failing {
				failing = true
				m.log.Errorf("classic mode: accepting on TCP port %d: %v (retrying)", port, err)
			}
			time.Sleep(classicRetry)
			continue
		}
		failing = false
		m.accepted(conn, port)
	}
}

// accepted answers one connection in a handler of its own when one is
// free (banner, close, then the hit: the banner leaves before the block is
// made), or closes it at once and reports the hit.
func (m *Mode) accepted(conn net.Conn, port uint16) {
	src, dst := addrOf(conn.RemoteAddr()), addrOf(conn.LocalAddr())
	select {
	case m.slots <- struct{}{}:
	default:
		conn.Close()
		m.report(src, dst, detect.ProtoTCP, port)
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() { <-m.slots }()
		m.answer(conn)
		m.report(src, dst, detect.ProtoTCP, port)
	}()
}

// answer writes PORT_BANNER, if any, within writeTimeout, and closes the
// connection. Nothing is read from it.
func (m *Mode) answer(conn net.Conn) {
	defer conn.Close()
	m.mu.Lock()
	banner, timeout := m.banner, m.writeTimeout
	m.mu.Unlock()
	if len(banner) == 0 {
		return
	}
	if err := conn.SetWriteDeadline(m.now().Add(timeout)); err != nil {
		return
	}
	conn.Write(banner) // a client gone or not reading is no concern of ours
}

// serveUDP reads the datagrams of one classic UDP socket until it is
// closed. Only their addresses are used; nothing is sent back (a reply to
// a forged source would make scanwarden a reflector).
func (m *Mode) serveUDP(pc udpReader, port uint16) {
	defer m.wg.Done()
	buf := make([]byte, classicDatagram)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	failing := false
	for {
		_, oobn, _, from, err := pc.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if !failing {
				failing = true
				m.log.Errorf("classic mode: reading on UDP port %d: %v (retrying)", port, err)
			}
			time.Sleep(classicRetry)
			continue
		}
		failing = false
		m.report(from.Addr().Unmap(), pktinfoDst(oob[:oobn]), detect.ProtoUDP, port)
	}
}

// report counts a hit of src on a classic port of dst in the hit engine
// and queues the alert when the hit makes one. A destination outside
// HOME_NETWORKS does not count (as for the capture); an unknown one does.
func (m *Mode) report(src, dst netip.Addr, proto uint8, port uint16) {
	m.hitMu.Lock()
	var a *detect.Alert
	if m.eng != nil {
		if a = m.eng.Hit(src, dst, proto, port, m.now().UnixNano()); a != nil {
			a = a.Clone() // the engine reuses its alert
		}
	}
	m.hitMu.Unlock()
	if a != nil {
		m.emit(a)
	}
}

// addrOf returns the address of a TCP or UDP socket address, IPv4-mapped
// addresses as IPv4; the zero Addr for anything else.
func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// pktinfoDst returns the destination address of a datagram from its
// IP_PKTINFO or IPV6_PKTINFO control message; the zero Addr when there is
// none.
func pktinfoDst(oob []byte) netip.Addr {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}
	}
	for _, msg := range msgs {
		switch {
		case msg.Header.Level == unix.IPPROTO_IP && msg.Header.Type == unix.IP_PKTINFO && len(msg.Data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ifindex, spec_dst, addr (the header's
			// destination)
			return netip.AddrFrom4([4]byte(msg.Data[8:12]))
		case msg.Header.Level == unix.IPPROTO_IPV6 && msg.Header.Type == unix.IPV6_PKTINFO && len(msg.Data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo: addr, ifindex
			return netip.AddrFrom16([16]byte(msg.Data[:16])).Unmap()
		}
	}
	return netip.Addr{}
}

// netBinder binds real sockets on the wildcard address of a family. The
// IPv6 sockets are IPv6-only (Go sets IPV6_V6ONLY for "tcp6"/"udp6"), so
// that the IPv4 ones can be bound beside them; UDP sockets ask for the
// datagrams' destination (IP_PKTINFO, IPV6_RECVPKTINFO).
type netBinder struct{}

func (netBinder) listenTCP(network string, port uint16) (net.Listener, error) {
	return (&net.ListenConfig{}).Listen(context.Background(), network, wildcard(network, port))
}

func (netBinder) listenUDP(network string, port uint16) (udpReader, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if network == "udp4" {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
			}
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("asking for packet info: %w", serr)
		}
		return nil
	}}
	pc, err := lc.ListenPacket(context.Background(), network, wildcard(network, port))
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// wildcard is the any-address of network's family with port.
func wildcard(network string, port uint16) string {
	if strings.HasSuffix(network, "6") {
		return netip.AddrPortFrom(netip.IPv6Unspecified(), port).String()
	}
	return netip.AddrPortFrom(netip.IPv4Unspecified(), port).String()
}
