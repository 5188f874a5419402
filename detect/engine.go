package detect

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
	"unsafe"
)

// Config sets up an Engine. The zero value of a field means its default.
type Config struct {
	// Window is the length of the per-source sliding window
	// (DefaultWindow).
	Window time.Duration
	// Threshold is the score at which a source is reported
	// (DefaultThreshold).
	Threshold int
	// ScanTrigger is PortSentry's SCAN_TRIGGER: the number of hits on trap
	// ports within the window that makes an alert; 0 and 1 both mean the
	// first hit, as in PortSentry 1.2.
	ScanTrigger int
	// MaxSources bounds the sources tracked at once (DefaultMaxSources).
	MaxSources int
	// TrapTCP and TrapUDP are the watched ports (TCP_PORTS, UDP_PORTS, or
	// the advanced-mode ranges). A nil set watches nothing.
	TrapTCP, TrapUDP *PortSet
	// Home lists the protected addresses: only probes aimed at them count.
	// Empty means every destination is protected.
	Home []netip.Prefix
	// HugePages lays the source and first-sight tables out for
	// transparent huge pages, each that is a huge page (2 MiB) or larger:
	// at the default MaxSources the source table only. Far fewer page
	// faults as they fill, for less than a huge page more resident each
	// (see makeTable). Replay asks for it; the daemon fills its tables
	// once, over time.
	HugePages bool
}

// Stats counts what the engine has seen.
type Stats struct {
	Packets uint64 // packets given to Process
	Probes  uint64 // packets counted as probes
	// Types counts the probes by type (index: ScanType).
	Types   [numTypes]uint64
	Replies uint64 // answers of probed hosts matched to a probe
	Ignored uint64 // packets that were neither (established traffic, multicast, unprotected destinations)
	Sources int    // sources tracked now
	Evicted uint64 // sources dropped to make room for new ones
	Alerts  uint64 // alerts raised
}

// Target states.
const (
	stUnanswered uint8 = iota // probed, no answer yet
	stClosed                  // the host said closed (RST, ICMP unreachable), or answered an ACK probe
	stOpen                    // the service answered (SYN-ACK, UDP reply)
	stHalfOpen                // answered, then reset by the source
	stPending                 // FIN+ACK outside a known connection, waiting for the host's RST
	stMask       uint8 = 0x07
	bitTrap      uint8 = 0x08 // a probe hit a trap port here
	bitStealth   uint8 = 0x10 // a probe no legitimate client sends (FIN, NULL, XMAS, odd)
	bitAwait     uint8 = 0x20 // with bitTrap: a trap hit waiting for the host's answer (services.go)
)

// target is one distinct (destination, protocol, port) a source touched.
// The destination is kept as a 32-bit hash: a collision merges two targets,
// which can only lower a score.
type target struct {
	ts    int64
	dsth  uint32
	port  uint16
	proto uint8
	st    uint8
}

func (t *target) weight() int32 {
	if t.st&bitStealth != 0 {
		return WeightStealth
	}
	var w int32
	switch t.st & stMask {
	case stOpen, stPending:
		return 0
	case stClosed:
		w = WeightClosed
	case stHalfOpen:
		w = WeightHalfOpen
	default:
		w = WeightUnanswered
	}
	if t.st&(bitTrap|bitAwait) == bitTrap && w < WeightClosed {
		w = WeightClosed
	}
	return w
}

// credit reports whether t counts for its source's innocence: a service
// answered it and nothing odd was sent to it (see WeightOpen).
func (t *target) credit() bool { return t.st&(stMask|bitStealth) == stOpen }

// source is everything kept about one source address. Sources live in one
// slice allocated up front; a source is a whole number of 64-byte cache
// lines (sourcePad), and the slice, a large allocation, starts on a page,
// so that every source starts on a line of its own.
type source struct {
	sourceHead
	// read up to ntargets and ndst only: a new source leaves them as
	// they were (see reset)
	targets [maxTargets]target
	dsts    [maxDsts]Addr
	_       [sourcePad]byte
}

// sourcePad rounds a source up to whole cache lines (a test checks it).
const sourcePad = 16

// sourceHead is what a new source sets up: its counts and times. What
// every packet of a reported source touches (its address, latest time,
// rearm, link, probe count and, in the second line, its per-type counts)
// comes first, so that such packets (a blocked scanner goes on sending)
// touch two cache lines of it; a new source's first probe touches four
// (the head, its first target and its first destination).
type sourceHead struct {
	// first cache line
	addr Addr
	last int64 // time of its latest probe
	// rearmAt, when not 0, is the packet time from which an alerted
	// source is judged again (see Rearm).
	rearmAt int64
	// link is what its probes' frames and TTLs showed (see Origins).
	link    LinkSeen
	probes  uint32
	alerted bool
	// rearmNew: while rearmAt is pending, a probe to a target the source
	// has not probed before re-judges it at once (see Rearm).
	rearmNew bool
	ntargets uint8
	ndst     uint8
	awaiting uint8 // targets with bitAwait
	opens    uint8 // targets with credit
	score    int32
	// second cache line
	types     [numTypes]uint32
	trapHits  uint32
	first     int64
	trapFirst int64
	oldest    int64 // no target is older than this
	// awaitFirst is the time of the oldest target with bitAwait.
	awaitFirst int64
	// stealthLast is the time of the latest probe of each stealth kind
	// (see stealthKinds), for types[kind] > 0.
	stealthLast [len(stealthTypes)]int64
}

// reset makes s a new source a first seen at ts: only its head is
// written, the targets and destinations beyond its (zero) counts are
// never read.
func (s *source) reset(a Addr, ts int64) {
	s.sourceHead = sourceHead{addr: a, first: ts, last: ts}
}

// Engine classifies packets and scores sources. It is not safe for
// concurrent use: one goroutine feeds it (the capture loop), which keeps
// the per-packet path free of locks.
type Engine struct {
	window    int64
	threshold int32
	trigger   uint32
	trapTCP   PortSet
	trapUDP   PortSet
	home      []prefix
	own       ownSet
	svcs      svcTable
	seeds     seeds

	srcs  []source
	used  int32   // sources handed out of srcs so far
	free  []int32 // forgotten slots below used, to be handed out again
	live  int     // sources in the table
	hand  int32   // where the next eviction starts looking in srcs
	table []slot
	mask  uint64
	// firsts are the sources seen once so far (firsts.go): fused handed
	// out, ffree forgotten below fused, flive in the table, fhand the
	// oldest when they are all taken
	firsts []firstSight
	fused  int32
	ffree  []int32
	flive  int
	fhand  int32
	// noFirsts makes every source a full record from its first probe
	// (tests compare the two)
	noFirsts bool
	ranks    []rank // per source, as eviction compares them (see rank)
	// rankBase is what rank keys count time from (see rankKey), once
	// rankBaseSet
	rankBase    int64
	rankBaseSet bool
	// touched lists the sources looked at in this call, whose ranks
	// syncRanks writes back at its end (a call looks at three at most)
	touched  [4]int32
	ntouched int
	stats    Stats

	// alert is the one Process and Hit return, reused (with its Ports and
	// Dst backing arrays) from alert to alert.
	alert    Alert
	alertPts [maxTargets]PortRef
	alertDst [maxDsts]netip.Addr
}

// New returns an engine for cfg, with every table allocated up front.
func New(cfg Config) (*Engine, error) {
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Threshold == 0 {
		cfg.Threshold = DefaultThreshold
	}
	if cfg.MaxSources == 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	switch {
	case cfg.Window < 0:
		return nil, fmt.Errorf("detect: window %v is negative", cfg.Window)
	case cfg.Threshold < 0:
		return nil, fmt.Errorf("detect: threshold %d is negative", cfg.Threshold)
	case cfg.ScanTrigger < 0:
		return nil, fmt.Errorf("detect: scan trigger %d is negative", cfg.ScanTrigger)
	case cfg.MaxSources < minMaxSources:
		return nil, fmt.Errorf("detect: max sources %d is below %d", cfg.MaxSources, minMaxSources)
	case cfg.MaxSources > 1<<26:
		return nil, errors.New("detect: max sources above 67108864")
	}
	e := &Engine{
		window:    int64(cfg.Window),
		threshold: int32(cfg.Threshold),
		trigger:   uint32(max(cfg.ScanTrigger, 1)),
		seeds:     newSeeds(),
		svcs:      newSvcTable(),
		srcs:      makeTable[source](cfg.MaxSources, cfg.HugePages),
		firsts:    makeTable[firstSight](cfg.MaxSources, cfg.HugePages),
		ffree:     make([]int32, 0, cfg.MaxSources),
		ranks:     make([]rank, cfg.MaxSources),
		free:      make([]int32, 0, cfg.MaxSources),
	}
	if cfg.TrapTCP != nil {
		e.trapTCP = *cfg.TrapTCP
	}
	if cfg.TrapUDP != nil {
		e.trapUDP = *cfg.TrapUDP
	}
	n := tableSlots(cfg.MaxSources)
	e.table = make([]slot, n)
	for i := range e.table {
		e.table[i].idx = emptySlot
	}
	for _, p := range cfg.Home {
		e.home = append(e.home, prefixOf(p))
	}
	e.mask = uint64(n - 1)
	return e, nil
}

// tableSlots is the size of the source table for maxSources: room for
// as many sources and as many first sights, half full at most, rounded up
// to a power of two.
func tableSlots(maxSources int) int {
	n := 1
	for n < 2*(maxSources+maxSources) {
		n <<= 1
	}
	return n
}

// Footprint is the memory, in bytes, that New(cfg) and NewOrigins
// allocate up front: what one engine and its Origins hold for their
// whole life, since neither allocates afterwards. cfg is taken as New
// takes it (MaxSources 0 is DefaultMaxSources).
func Footprint(cfg Config) int64 {
	n := int64(cfg.MaxSources)
	if n <= 0 {
		n = DefaultMaxSources
	}
	perSource := unsafe.Sizeof(rank{}) + 2*unsafe.Sizeof(int32(0)) // free and ffree
	engine := tableBytes(n, unsafe.Sizeof(source{}), cfg.HugePages) + tableBytes(n, unsafe.Sizeof(firstSight{}), cfg.HugePages) +
		n*int64(perSource) + int64(tableSlots(int(n)))*int64(unsafe.Sizeof(slot{})) +
		serviceSlots*int64(unsafe.Sizeof(svcSlot{})) + int64(unsafe.Sizeof(Engine{}))
	origins := handshakeSlots*int64(unsafe.Sizeof(handshake{})) + knownSlots*int64(unsafe.Sizeof(knownAddr{})) +
		stepSlots*int64(unsafe.Sizeof(stepGroup{})) + int64(unsafe.Sizeof(Origins{}))
	return engine + origins
}

// Add adds o's counters to s (several engines' counters as one).
func (s *Stats) Add(o Stats) {
	s.Packets += o.Packets
	s.Probes += o.Probes
	s.Replies += o.Replies
	s.Ignored += o.Ignored
	s.Sources += o.Sources
	s.Evicted += o.Evicted
	s.Alerts += o.Alerts
	for i := range s.Types {
		s.Types[i] += o.Types[i]
	}
}

// Stats returns the counters so far.
func (e *Engine) Stats() Stats {
	s := e.stats
	s.Sources = e.live + e.flive
	return s
}

// Process classifies one packet and returns an alert when this packet makes
// its source a scanner, nil otherwise. It allocates nothing. The alert is
// the engine's own, valid until the next call of Process or Hit: a caller
// that keeps it past that takes a copy (Alert.Clone).
func (e *Engine) Process(p *Probe) *Alert {
	a := e.process(p)
	e.syncRanks()
	return a
}

func (e *Engine) process(p *Probe) *Alert {
	e.stats.Packets++
	if !p.Src.IsValid() || !p.Dst.IsValid() || p.Src == p.Dst {
		e.stats.Ignored++
		return nil
	}
	switch p.Kind {
	case KindTCP:
		return e.tcp(p)
	case KindUDP:
		return e.udp(p)
	case KindUnreach:
		if p.Proto == ProtoTCP || p.Proto == ProtoUDP {
			return e.answered(p, p.Proto, stClosed)
		}
	}
	e.stats.Ignored++
	return nil
}

// classify names the probe a TCP segment without ACK or RST is.
func classify(flags uint8, stack bool) (ScanType, bool) {
	switch {
	case flags&^(FlagECE|FlagCWR) == FlagSYN:
		if stack {
			return TypeConnect, false
		}
		return TypeSYN, false
	case flags == FlagFIN:
		return TypeFIN, true
	case flags == 0:
		return TypeNULL, true
	case flags == FlagFIN|FlagPSH|FlagURG:
		return TypeXMAS, true
	}
	return TypeOdd, true
}

func (e *Engine) tcp(p *Probe) *Alert {
	f := p.Flags
	if f&FlagACK == 0 {
		if f&FlagRST != 0 {
			return e.bareRST(p)
		}
		typ, stealth := classify(f, p.StackSYN)
		return e.probe(p, typ, ProtoTCP, stealth, stUnanswered, false)
	}
	switch {
	case f&FlagRST != 0:
		return e.answered(p, ProtoTCP, stClosed)
	case f&FlagSYN != 0:
		return e.answered(p, ProtoTCP, stOpen)
	case f&FlagFIN != 0:
		return e.finACK(p)
	}
	// ACK with neither SYN, FIN nor RST: established traffic, or an ACK
	// probe that only the host's bare RST reveals. The live BPF filter
	// drops these, so the engine ignores them too: live and replay agree.
	e.stats.Ignored++
	return nil
}

func (e *Engine) udp(p *Probe) *Alert {
	// A datagram from a port that the receiver itself probed is the
	// answer to it.
	if s := e.lookup(p.Dst); s != nil {
		if t := s.find(e.hash32(p.Src), p.SrcPort, ProtoUDP); t != nil {
			e.stats.Replies++
			if t.st&stMask == stUnanswered {
				e.settle(s, t, true, p.TS)
				s.set(t, t.st&^stMask|stOpen)
			}
			return nil
		}
	}
	return e.probe(p, TypeUDP, ProtoUDP, false, stUnanswered, false)
}

// answered handles an answer of a probed host (p.Src) to a prober (p.Dst):
// RST+ACK or ICMP unreachable (closed), SYN+ACK (open).
func (e *Engine) answered(p *Probe, proto, st uint8) *Alert {
	s := e.lookup(p.Dst)
	if s == nil {
		e.stats.Ignored++
		return nil
	}
	if s.alerted {
		e.stats.Replies++
		return nil
	}
	t := s.find(e.hash32(p.Src), p.SrcPort, proto)
	if t == nil {
		e.stats.Ignored++
		return nil
	}
	e.stats.Replies++
	switch t.st & stMask {
	case stUnanswered, stPending:
		if t.st&stMask == stPending && st == stClosed {
			// "closed" for a FIN+ACK (an ICMP unreachable of a REJECT
			// rule, a RST+ACK)
			e.closePending(s, t, p.TS)
		} else {
			e.settle(s, t, st == stOpen, p.TS)
			s.set(t, t.st&^stMask|st)
		}
	default:
		// An answer after an earlier one (a server resetting an open
		// connection, a retransmitted RST) changes nothing.
		return nil
	}
	e.expire(s, p.TS)
	e.overdue(s, p.TS)
	return e.check(s, p.TS, proto, p.SrcPort)
}

// closePending marks the FIN+ACK probe target t of s closed, on the
// host's answer: only then is it known to be a probe (nmap -sM, Maimon's
// scan), and it is counted as one.
func (e *Engine) closePending(s *source, t *target, ts int64) {
	s.set(t, t.st&^stMask|stClosed)
	s.probes++
	s.types[TypeMaimon]++
	e.stats.Probes++
	e.stats.Types[TypeMaimon]++
	if e.trapTCP.Has(t.port) {
		// a closed trap port, whatever host it is on
		s.set(t, t.st|bitTrap)
		e.trapHit(s, ts)
	}
}

// bareRST handles a RST without ACK. Either the probed host answers an
// ACK-bearing probe (nmap -sA, -sM) with it, or a SYN scanner's kernel
// resets the half-open connection the host had answered.
func (e *Engine) bareRST(p *Probe) *Alert {
	if s := e.lookup(p.Dst); s != nil {
		if t := s.find(e.hash32(p.Src), p.SrcPort, ProtoTCP); t != nil {
			e.stats.Replies++
			switch t.st & stMask {
			case stPending: // the host's answer to a FIN+ACK probe
				e.closePending(s, t, p.TS)
			case stUnanswered:
				e.settle(s, t, false, p.TS)
				s.set(t, t.st&^stMask|stClosed)
			default:
				return nil
			}
			e.expire(s, p.TS)
			e.overdue(s, p.TS)
			return e.check(s, p.TS, ProtoTCP, p.SrcPort)
		}
	}
	if s := e.lookup(p.Src); s != nil {
		if s.alerted {
			// a reported scanner's kernel resetting what the host
			// answered (its probes are no longer kept as targets): no
			// ACK probe of the host's
			e.stats.Ignored++
			return nil
		}
		if t := s.find(e.hash32(p.Dst), p.DstPort, ProtoTCP); t != nil {
			if t.st&stMask == stOpen {
				s.set(t, t.st&^stMask|stHalfOpen)
				t.ts = p.TS
				e.expire(s, p.TS)
				return e.check(s, p.TS, ProtoTCP, p.DstPort)
			}
			e.stats.Ignored++
			return nil
		}
	}
	// No context: the host's answer to an ACK probe we could not see (the
	// filter drops bare ACKs). Count it as that probe, already closed.
	if !e.protected(p.Src) {
		e.stats.Ignored++
		return nil
	}
	q := Probe{TS: p.TS, Src: p.Dst, Dst: p.Src, SrcPort: p.DstPort, DstPort: p.SrcPort, Kind: KindTCP, Proto: ProtoTCP, Flags: FlagACK}
	return e.probe(&q, TypeACK, ProtoTCP, false, stClosed, false)
}

// finACK handles a FIN with ACK: the close of a connection, or a Maimon
// probe when no connection is known; the probed host's RST decides.
func (e *Engine) finACK(p *Probe) *Alert {
	if !e.protected(p.Dst) {
		e.stats.Ignored++
		return nil
	}
	if s := e.lookup(p.Src); s != nil {
		if t := s.find(e.hash32(p.Dst), p.DstPort, ProtoTCP); t != nil {
			t.ts = p.TS
			e.stats.Ignored++
			return nil
		}
	}
	if s := e.lookup(p.Dst); s != nil && s.find(e.hash32(p.Src), p.SrcPort, ProtoTCP) != nil {
		// the server side closing a connection the other side opened
		e.stats.Ignored++
		return nil
	}
	if !usable(p) {
		e.stats.Ignored++
		return nil
	}
	s := e.get(p.Src, p.TS)
	if p.HasMAC || p.TTL != 0 { // the source's own frame, as in probe
		s.link.note(p)
	}
	e.expire(s, p.TS)
	s.add(e.hash32(p.Dst), p.DstPort, ProtoTCP, p.TS, stPending)
	s.addDst(p.Dst)
	return nil
}

// usable rules out packets that are no probe of a host: multicast and
// broadcast destinations (mDNS, SSDP, DHCP) and unspecified or multicast
// sources.
func usable(p *Probe) bool {
	return !(p.Dst.IsMulticast() || p.Src.IsMulticast() || p.Src.IsUnspecified() || p.Dst.IsUnspecified() || p.Dst.isBroadcast4())
}

// probe counts one probe from p.Src to p.Dst:p.DstPort and raises its
// source's alert when it has earned one. A hit (see Hit) is a probe of a
// trap port whatever the trap sets hold, whose destination the caller has
// checked and may be unknown.
func (e *Engine) probe(p *Probe, typ ScanType, proto uint8, stealth bool, st uint8, hit bool) *Alert {
	trap, await := hit, false
	var dh uint32 // the destination's hash, once computed
	if !hit {
		if !e.protected(p.Dst) || !usable(p) {
			e.stats.Ignored++
			return nil
		}
		if proto == ProtoTCP {
			trap = e.trapTCP.Has(p.DstPort)
		} else {
			trap = e.trapUDP.Has(p.DstPort)
		}
		if trap && !stealth && st == stUnanswered && !e.own.has(p.Dst) {
			// another host's port: its answer tells (services.go); an
			// ACK probe seen through the host's RST is answered already
			dh = e.hash32(p.Dst)
			trap = !e.svcs.has(dh, proto, p.DstPort, p.TS)
			await = trap
		}
	}
	e.stats.Probes++
	e.stats.Types[typ]++
	h := e.hash(p.Src)
	pos, sl, found := e.find(p.Src, h)
	if !found && e.mayWait(stealth, st, trap) {
		if dh == 0 {
			dh = e.hash32(p.Dst)
		}
		e.admit(p, h, pos, typ, proto, dh)
		return nil
	}
	s := e.getAt(p.Src, h, pos, sl, found, p.TS)
	s.probes++
	s.types[typ]++
	if stealth {
		s.noteStealth(typ, p.TS)
	}
	if p.HasMAC || p.TTL != 0 { // a packet of the source's (not a Hit, nor a probe inferred from a reply)
		s.link.note(p)
	}
	if s.alerted {
		if s.rearmAt == 0 || p.TS < s.rearmAt && !(s.rearmNew && e.newTarget(s, p, proto)) {
			// Its verdict is in: only the counts matter now. A
			// blocked scanner keeps sending (the capture sees packets
			// before the firewall drops them), so this path is kept
			// short: newTarget only looks when a rearm asks for it.
			return nil
		}
		s.alerted, s.rearmAt, s.rearmNew = false, 0, false
	}
	e.expire(s, p.TS)
	e.overdue(s, p.TS)
	if dh == 0 {
		dh = e.hash32(p.Dst)
	}
	t := s.find(dh, p.DstPort, proto)
	if t == nil {
		t = s.add(dh, p.DstPort, proto, p.TS, st)
	}
	t.ts = p.TS
	if stealth {
		s.set(t, t.st|bitStealth)
	}
	switch {
	case await:
		switch {
		case t.st&(bitTrap|bitAwait) == 0 && t.st&stMask == stUnanswered:
			// the first probe waits for the host's answer
			s.set(t, t.st|bitTrap|bitAwait)
			if s.awaiting == 0 {
				s.awaitFirst = p.TS
			}
			s.awaiting++
		case t.st&(bitTrap|bitAwait) == bitTrap:
			// The host answered closed, or not at all: a probe repeated
			// after that is a hit at once, as repeated probes of the
			// host's own trap ports are. A retransmission during the
			// wait waits no more than the first probe did.
			e.trapHit(s, p.TS)
		}
	case trap:
		if t.st&bitAwait != 0 { // now without the wait (a stealth probe)
			s.awaiting--
		}
		s.set(t, t.st&^bitAwait|bitTrap)
		e.trapHit(s, p.TS)
	}
	if p.Dst.IsValid() {
		s.addDst(p.Dst)
	}
	return e.check(s, p.TS, proto, p.DstPort)
}

// Hit counts a hit of src on a trap port that the caller has seen itself
// rather than through a capture: a completed TCP connection or a datagram
// read at a bound socket (PortSentry's classic modes, whose listeners make
// the trap ports look open). It is judged as a probe of type TypeConnect
// (TCP) or TypeUDP to a trap port, whatever the engine's trap sets hold,
// with the engine's window, SCAN_TRIGGER, bounded table and Rearm; dst may
// be unknown (the zero Addr), and a known dst outside Home does not count.
// ts is the hit's time in nanoseconds. It returns the alert, with
// Connected set, when this hit makes src a scanner; like Process's, it is
// the engine's own, valid until the next call of Process or Hit.
func (e *Engine) Hit(srcIP, dstIP netip.Addr, proto uint8, port uint16, ts int64) *Alert {
	e.stats.Packets++
	src, dst := AddrOf(srcIP), AddrOf(dstIP)
	if !src.IsValid() || src == dst || dst.IsValid() && !e.protected(dst) {
		e.stats.Ignored++
		return nil
	}
	typ := TypeConnect
	if proto == ProtoUDP {
		typ = TypeUDP
	}
	p := Probe{TS: ts, Src: src, Dst: dst, DstPort: port, Proto: proto}
	a := e.probe(&p, typ, proto, false, stUnanswered, true)
	e.syncRanks()
	if a != nil {
		a.Connected = true
	}
	return a
}

// check raises the source's alert when it has earned one.
func (e *Engine) check(s *source, ts int64, proto uint8, port uint16) *Alert {
	if s.alerted {
		return nil
	}
	var why Trigger
	switch {
	case s.trapHits >= e.trigger:
		why = TriggerTrap
	case s.evidence() >= e.threshold, e.threshold <= 2*WeightStealth && s.stealthKinds(ts, e.window) >= 2:
		why = TriggerScore
	default:
		return nil
	}
	s.alerted = true
	e.stats.Alerts++
	a := &e.alert
	*a = Alert{
		Src:     s.addr.Netip(),
		Type:    s.dominant(),
		Trigger: why,
		Time:    ts,
		First:   s.first,
		Probes:  s.probes,
		Score:   int(s.evidence()),
		Proto:   proto,
		Port:    port,
		Link:    s.link,
		Ports:   e.alertPts[:0],
		Dst:     e.alertDst[:0],
	}
	for _, d := range s.dsts[:s.ndst] {
		a.Dst = append(a.Dst, d.Netip())
	}
	for i := range s.targets[:s.ntargets] {
		t := &s.targets[i]
		a.Ports = append(a.Ports, PortRef{Proto: t.proto, Port: t.port})
	}
	sortPorts(a.Ports)
	a.Ports = slices.Compact(a.Ports)
	return a
}

func (e *Engine) protected(a Addr) bool {
	if len(e.home) == 0 {
		return true
	}
	for i := range e.home {
		if e.home[i].contains(a) {
			return true
		}
	}
	return false
}

// expire drops the source's targets that have left the window.
func (e *Engine) expire(s *source, now int64) {
	if s.trapHits > 0 && now-s.trapFirst > e.window {
		s.trapHits = 0
	}
	// oldest is a lower bound of the targets' times (a target's time only
	// moves forward), so most packets skip the walk.
	if now-s.oldest <= e.window {
		return
	}
	oldest := now
	for i := 0; i < int(s.ntargets); {
		t := &s.targets[i]
		if now-t.ts > e.window {
			s.drop(t)
			s.ntargets--
			*t = s.targets[s.ntargets]
			continue
		}
		oldest = min(oldest, t.ts)
		i++
	}
	s.oldest = oldest
}

func (s *source) find(dsth uint32, port uint16, proto uint8) *target {
	for i := range s.targets[:s.ntargets] {
		t := &s.targets[i]
		if t.port == port && t.dsth == dsth && t.proto == proto {
			return t
		}
	}
	return nil
}

// add appends a target in state st, replacing the oldest when the source
// has maxTargets already.
func (s *source) add(dsth uint32, port uint16, proto uint8, ts int64, st uint8) *target {
	i := int(s.ntargets)
	if i == maxTargets {
		i = 0
		for j := 1; j < maxTargets; j++ {
			if s.targets[j].ts < s.targets[i].ts {
				i = j
			}
		}
		s.drop(&s.targets[i])
	} else {
		s.ntargets++
	}
	t := &s.targets[i]
	*t = target{ts: ts, dsth: dsth, port: port, proto: proto, st: st}
	s.score += t.weight()
	if t.credit() {
		s.opens++
	}
	if s.ntargets == 1 || ts < s.oldest {
		s.oldest = ts
	}
	return t
}

// set changes a target's state and bits, keeping the score and the
// credit in step.
func (s *source) set(t *target, st uint8) {
	s.score -= t.weight()
	if t.credit() {
		s.opens--
	}
	t.st = st
	s.score += t.weight()
	if t.credit() {
		s.opens++
	}
}

// drop takes t's weight, credit and wait out of the source's counts (t is
// leaving the window or making room).
func (s *source) drop(t *target) {
	s.score -= t.weight()
	if t.credit() {
		s.opens--
	}
	if t.st&bitAwait != 0 {
		s.awaiting--
	}
}

// stealthTypes are the kinds of probe no client sends.
var stealthTypes = [...]ScanType{TypeFIN, TypeNULL, TypeXMAS, TypeOdd}

// noteStealth notes a probe of type typ at ts, when typ is a stealth
// kind.
func (s *source) noteStealth(typ ScanType, ts int64) {
	for i, k := range stealthTypes {
		if k == typ {
			s.stealthLast[i] = ts
		}
	}
}

// stealthKinds counts the kinds of probe no client sends (FIN, NULL, XMAS,
// odd flags) the source has sent within window of now: two kinds are as
// telling as two targets of one (WeightStealth), even to a single port
// (nmap -O's NULL and SYN+FIN+PSH+URG to its one open port).
func (s *source) stealthKinds(now, window int64) int {
	n := 0
	for i, k := range stealthTypes {
		if s.types[k] > 0 && now-s.stealthLast[i] <= window {
			n++
		}
	}
	return n
}

// evidence is the source's score less the credit of its answered
// connections: the log-likelihood ratio of TRW's sequential test (see
// WeightOpen).
func (s *source) evidence() int32 {
	return s.score - WeightOpen*int32(min(s.opens, maxOpenCredit))
}

func (s *source) addDst(a Addr) {
	if s.ndst == maxDsts {
		return
	}
	for _, d := range s.dsts[:s.ndst] {
		if d == a {
			return
		}
	}
	s.dsts[s.ndst] = a
	s.ndst++
}

// sumWeights recomputes the score from scratch (tests check that the
// running score agrees with it).
func (s *source) sumWeights() int32 {
	var sum int32
	for i := range s.targets[:s.ntargets] {
		sum += s.targets[i].weight()
	}
	return sum
}

func (s *source) dominant() ScanType {
	best := ScanType(0)
	for t := ScanType(1); t < numTypes; t++ {
		if s.types[t] > s.types[best] {
			best = t
		}
	}
	return best
}

// SetTraps replaces the watched ports (the daemon drops ports that a
// service has bound since, and follows a reload). Like Process, it must be
// called from the goroutine that feeds the engine.
func (e *Engine) SetTraps(tcp, udp *PortSet) {
	e.trapTCP, e.trapUDP = PortSet{}, PortSet{}
	if tcp != nil {
		e.trapTCP = *tcp
	}
	if udp != nil {
		e.trapUDP = *udp
	}
}

// Rearm makes an alerted src be judged again from packet time at on, with
// what is known of it kept: its next probe from then on that still
// earns an alert (it has, unless its window ran out) raises a new one,
// carrying its probes so far. With onNew, its first probe of a target
// (address, port, protocol) it had not probed yet is judged at once, even
// before at. The daemon uses it when the blocker could not act on an alert
// (the rate limit refused it), so that a scanner that goes on probing is
// reported again rather than never; onNew for a source refused on a
// single probe, which more evidence takes out of the budget forged
// sources use up. An unknown or not alerted src is left alone.
func (e *Engine) Rearm(src netip.Addr, at int64, onNew bool) {
	a := AddrOf(src)
	// a first sight is no alerted source: find, not lookup, which would
	// make it a source
	if _, sl, found := e.find(a, e.hash(a)); found && sl.idx >= 0 {
		if s := &e.srcs[sl.idx]; s.alerted {
			s.rearmAt, s.rearmNew = max(at, 1), onNew
		}
	}
}

// newTarget reports whether p, from the alerted source s, is its first
// probe of a target it has not probed yet (asked only while its rearm
// wants that: not inlined, the call stays off the common path).
func (e *Engine) newTarget(s *source, p *Probe, proto uint8) bool {
	return s.find(e.hash32(p.Dst), p.DstPort, proto) == nil
}

// Forget drops everything known about src, so that its next probes are
// judged afresh (used when an alert turns out to concern a port a service
// has just bound).
func (e *Engine) Forget(src netip.Addr) {
	a := AddrOf(src)
	_, sl, found := e.find(a, e.hash(a))
	switch {
	case !found:
		return
	case sl.idx < 0:
		e.remove(sl.idx, sl.tag)
		e.freeFirst(sl.firstIdx())
	default:
		e.remove(sl.idx, sl.tag)
		e.live--
		e.srcs[sl.idx].reset(Addr{}, 0)
		e.free = append(e.free, sl.idx)
	}
}
