package main

// PortSentry's classic modes, -tcp and -udp: the ports of TCP_PORTS and
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

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/detect"
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
	// are counted (SCAN_TRIGGER above 1) and whose alert is remembered, so
	// that the engine's alert for the same source is not passed on a
	// second time. The oldest entry makes room: a flood of forged UDP
	// sources costs constant memory (about 0.3 KiB an entry).
	classicMaxSources = 4096
	// classicDatagram is how much of a datagram at a classic UDP port is
	// read: none of it is used (PortSentry read one byte), and nothing is
	// ever sent back.
	classicDatagram = 1
	// classicRetry is how long an accept or read that failed (EMFILE,
	// say) waits before it tries again; the failure is logged once.
	classicRetry = 100 * time.Millisecond
	// classicMaxPorts and classicMaxDsts bound the ports and destination
	// addresses an alert lists, as the engine's alerts do.
	classicMaxPorts = 16
	classicMaxDsts  = 8
	// unprivPortStartFile says from which port an unprivileged process may
	// bind; the kernel's default is 1024.
	unprivPortStartFile = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
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

// classicMode binds and serves the classic ports of one daemon. Its
// methods are safe for concurrent use.
type classicMode struct {
	log      logrus.FieldLogger
	tcp, udp bool
	// emit queues an alert for the block manager; it may block while the
	// queue is full (the handlers are bounded).
	emit  func(*detect.Alert)
	hits  *classicHits
	slots chan struct{}
	bind  binder
	now   func() time.Time
	// unprivStart reads net.ipv4.ip_unprivileged_port_start.
	unprivStart func() int

	mu     sync.Mutex
	banner []byte
	// writeTimeout is classicWriteTimeout (tests shorten it).
	writeTimeout time.Duration
	home         []netip.Prefix
	ports        map[classicPortKey][]classicSocket
	failed       map[classicPortKey]string // why a port could not be bound, as last logged
	no6          bool                      // IPv6 unavailable, said once
	stopped      bool
	wg           sync.WaitGroup
}

// newClassicMode returns the classic mode of the daemon's modes (nil when
// neither -tcp nor -udp was given); nothing is bound before sync. emit
// receives the alerts of the classic ports.
func newClassicMode(m modeSet, log logrus.FieldLogger, emit func(*detect.Alert)) *classicMode {
	tcp, udp := slices.Contains(m.classic, "tcp"), slices.Contains(m.classic, "udp")
	if !tcp && !udp {
		return nil
	}
	return &classicMode{
		log: log, tcp: tcp, udp: udp, emit: emit,
		hits:         newClassicHits(classicMaxSources),
		slots:        make(chan struct{}, classicHandlers),
		bind:         netBinder{},
		now:          time.Now,
		writeTimeout: classicWriteTimeout,
		unprivStart:  readUnprivStart,
		ports:        map[classicPortKey][]classicSocket{},
		failed:       map[classicPortKey]string{},
	}
}

// sync binds the classic ports c lists (TCP_PORTS with -tcp, UDP_PORTS with
// -udp) that are not bound yet, closes those it no longer lists, and takes
// PORT_BANNER, HOME_NETWORKS, DETECT_WINDOW and SCAN_TRIGGER from c. It is
// called on start, before the capture's trap ports are computed (a bound
// port is no trap of the capture), and on every reload. A port that cannot
// be bound is logged once with the reason, grouped with the others of the
// same reason; it is tried again on the next reload, never in between (a
// service starting meanwhile must not lose its port to scanwarden).
func (m *classicMode) sync(c *conf.Config) {
	want := map[classicPortKey]bool{}
	if m.tcp {
		for _, p := range c.TCPPorts.Ports() {
			want[classicPortKey{detect.ProtoTCP, p}] = p != 0
		}
	}
	if m.udp {
		for _, p := range c.UDPPorts.Ports() {
			want[classicPortKey{detect.ProtoUDP, p}] = p != 0
		}
	}
	m.hits.configure(c.DetectWindow, c.TriggerHits())
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	m.banner = nil
	if m.tcp && c.Unused["PORT_BANNER"] != "" {
		// sent as written, as PortSentry 1.2 did: no escapes are
		// interpreted and no line end is added
		m.banner = []byte(c.Unused["PORT_BANNER"])
	}
	m.home = slices.Clone(c.HomeNetworks)
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
				detect.ProtoName(proto), conf.PortsText(ps), what)
		}
	}
	for _, g := range order {
		m.log.Warnf("adminalert: classic mode cannot bind %s port(s) %s: %s", detect.ProtoName(g.proto), conf.PortsText(failed[g]), g.why)
	}
}

// open binds k in both families and starts serving it. A family the host
// does not have (no IPv6) is skipped; any other failure closes what was
// bound and is returned, for bindProblem. Called with m.mu held.
func (m *classicMode) open(k classicPortKey) ([]classicSocket, error) {
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

// readUnprivStart reads net.ipv4.ip_unprivileged_port_start (1024 when it
// cannot be read: the kernel's default, and older kernels' fixed value).
func readUnprivStart() int {
	b, err := os.ReadFile(unprivPortStartFile)
	if err != nil {
		return 1024
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 1024
	}
	return n
}

// owned returns the ports the classic mode has bound: traps it serves
// itself, neither services' ports nor traps of the packet capture. Safe on
// a nil *classicMode (no classic mode: none).
func (m *classicMode) owned() (tcp, udp detect.PortSet) {
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

// owns reports whether the classic mode has bound port of proto. Safe on a
// nil *classicMode.
func (m *classicMode) owns(proto uint8, port uint16) bool {
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.ports[classicPortKey{proto, port}]
	return ok
}

// serviceHas reports whether a service has bound port of proto (a socket
// of d.bound that is not one of the classic mode's own listeners, which
// are traps): the check between a trap hit and its block, which reads
// proto's sockets alone.
func (d *daemon) serviceHas(proto uint8, port uint16) (bool, error) {
	set, err := d.bound.boundPorts(proto)
	if err != nil || !set.Has(port) {
		return false, err
	}
	return !d.classic.owns(proto, port), nil
}

// union returns the ports in a or b.
func union(a, b *detect.PortSet) *detect.PortSet {
	var out detect.PortSet
	for i := range a {
		out[i] = a[i] | b[i]
	}
	return &out
}

// admit reports whether an alert is the first of its source in the
// detection window, between the engine's alerts and the classic ports'
// ones: a source that connects to a classic port and also trips the
// engine's score is passed to the block manager once, and so gets one
// attackalert and one history line. Safe on a nil *classicMode (always
// true).
func (m *classicMode) admit(a *detect.Alert) bool {
	if m == nil {
		return true
	}
	return m.hits.admit(a.Src, m.now().UnixNano())
}

// close closes every classic socket and waits for the connections being
// answered; their hits are reported before it returns, so the alert queue
// must still be drained meanwhile. Safe on a nil *classicMode.
func (m *classicMode) close() {
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
func (m *classicMode) serveTCP(ln net.Listener, port uint16) {
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
func (m *classicMode) accepted(conn net.Conn, port uint16) {
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
func (m *classicMode) answer(conn net.Conn) {
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
func (m *classicMode) serveUDP(pc udpReader, port uint16) {
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

// report counts a hit of src on a classic port of dst and queues the
// alert when the hit makes one. A destination outside HOME_NETWORKS does
// not count (as for the engine); an unknown one does.
func (m *classicMode) report(src, dst netip.Addr, proto uint8, port uint16) {
	if !src.IsValid() {
		return
	}
	m.mu.Lock()
	home := m.home
	m.mu.Unlock()
	if dst.IsValid() && len(home) > 0 && !slices.ContainsFunc(home, func(p netip.Prefix) bool { return p.Contains(dst) }) {
		return
	}
	if a := m.hits.hit(src, dst, proto, port, m.now().UnixNano()); a != nil {
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

// configWarnings returns the config's warnings as they apply to the
// daemon's modes: PORT_BANNER is used by the classic TCP mode, so conf's
// "accepted but not used" is dropped there; a classic UDP daemon alone says
// why it sends no banner; other modes keep conf's warning.
func configWarnings(c *conf.Config, m modeSet) []string {
	const unused = ": PORT_BANNER: accepted but not used"
	var out []string
	for _, w := range c.Warnings {
		if !strings.Contains(w, unused) {
			out = append(out, w)
			continue
		}
		switch {
		case slices.Contains(m.classic, "tcp"):
		case slices.Contains(m.classic, "udp"):
			out = append(out, fmt.Sprintf("%s:%d: PORT_BANNER: not sent by the classic UDP mode: scanwarden never answers a datagram "+
				"(a reply to a forged source would make it a reflector); the classic TCP mode (-tcp) sends it", c.Path, c.Line("PORT_BANNER")))
		default:
			out = append(out, w)
		}
	}
	return out
}

// classicHits counts the hits of each source on the classic ports, with
// PortSentry 1.2's SCAN_TRIGGER (the Nth hit within DETECT_WINDOW raises
// the alert), and remembers which sources' alerts went to the block manager
// (admit). It holds at most max sources; the one that came first makes
// room. Safe for concurrent use.
type classicHits struct {
	mu      sync.Mutex
	window  int64
	trigger uint32
	srcs    map[netip.Addr]*classicSource
	order   []netip.Addr // ring of the sources in srcs, oldest at next
	next    int
}

// classicSource is what classicHits keeps of one source.
type classicSource struct {
	first   int64 // first hit counted in the window
	hits    uint32
	claimed int64 // when an alert of it was admitted, if claim
	claim   bool
	// rearm, when not 0, is when a source whose alert the block manager
	// refused (rate limit) raises one again, as the engine's Rearm; with
	// rearmNew, its first hit of a port it had not hit yet does so at once.
	rearm    int64
	rearmNew bool
	ports    []detect.PortRef
	dsts     []netip.Addr
}

func newClassicHits(max int) *classicHits {
	return &classicHits{
		window: int64(detect.DefaultWindow), trigger: 1,
		srcs: make(map[netip.Addr]*classicSource, max), order: make([]netip.Addr, 0, max),
	}
}

// configure sets the window and the hits that raise an alert (>= 1).
func (h *classicHits) configure(window time.Duration, trigger int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.window, h.trigger = int64(window), uint32(max(trigger, 1))
}

// get returns src's entry, making one (and room for it) when needed.
func (h *classicHits) get(src netip.Addr) *classicSource {
	if s := h.srcs[src]; s != nil {
		return s
	}
	s := &classicSource{}
	if len(h.order) < cap(h.order) {
		h.order = append(h.order, src)
	} else {
		delete(h.srcs, h.order[h.next])
		h.order[h.next] = src
		h.next = (h.next + 1) % len(h.order)
	}
	h.srcs[src] = s
	return s
}

// hit counts a hit of src on proto/port of dst at now (ns) and returns the
// alert it raises: a connect (TCP) or udp scan by the trap trigger, once
// the source has made SCAN_TRIGGER hits within the window. A source whose
// alert was admitted within the window raises none.
func (h *classicHits) hit(src, dst netip.Addr, proto uint8, port uint16, now int64) *detect.Alert {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.get(src)
	if s.claim && now-s.claimed <= h.window {
		return nil
	}
	if s.hits == 0 || now-s.first > h.window {
		s.hits, s.first, s.ports, s.dsts = 0, now, s.ports[:0], s.dsts[:0]
	}
	s.hits++
	ref := detect.PortRef{Proto: proto, Port: port}
	fresh := !slices.Contains(s.ports, ref)
	if fresh && len(s.ports) < classicMaxPorts {
		s.ports = append(s.ports, ref)
	}
	if dst.IsValid() && len(s.dsts) < classicMaxDsts && !slices.Contains(s.dsts, dst) {
		s.dsts = append(s.dsts, dst)
	}
	if s.hits < h.trigger {
		return nil
	}
	if s.rearm != 0 {
		if now < s.rearm && !(s.rearmNew && fresh) {
			return nil
		}
		s.rearm, s.rearmNew = 0, false
	}
	typ := detect.TypeConnect
	if proto == detect.ProtoUDP {
		typ = detect.TypeUDP
	}
	a := &detect.Alert{
		Src: src, Type: typ, Trigger: detect.TriggerTrap, Time: now, First: s.first, Probes: s.hits,
		// each distinct trap target weighs WeightClosed, as in the engine
		Score: len(s.ports) * detect.WeightClosed,
		Proto: proto, Port: port,
		Ports: slices.Clone(s.ports), Dst: slices.Clone(s.dsts),
		Connected: true,
	}
	slices.SortFunc(a.Ports, func(x, y detect.PortRef) int {
		if x.Proto != y.Proto {
			return int(x.Proto) - int(y.Proto)
		}
		return int(x.Port) - int(y.Port)
	})
	return a
}

// admit reports whether an alert of src may go to the block manager at
// now: not when one was admitted within the window.
func (h *classicHits) admit(src netip.Addr, now int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.get(src)
	if s.claim && now-s.claimed <= h.window {
		return false
	}
	s.claimed, s.claim = now, true
	return true
}

// unclaim lets src's next alert through admit again: the block manager
// refused the last one (rate limit), so the engine reports it anew (see
// detect.Engine.Rearm). Its classic hits raise one again from at (ns) on,
// or with onNew on its first hit of another port, not on every further
// connection.
func (h *classicHits) unclaim(src netip.Addr, at int64, onNew bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.srcs[src]; s != nil {
		s.claim = false
		s.rearm, s.rearmNew = max(at, 1), onNew
	}
}

// unclaim is classicHits.unclaim; safe on a nil *classicMode.
func (m *classicMode) unclaim(src netip.Addr, at int64, onNew bool) {
	if m != nil {
		m.hits.unclaim(src, at, onNew)
	}
}
