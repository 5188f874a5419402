package detect

// Whether a source is real: what the traffic itself teaches about each
// address (Origins), and the judgement of an alert's source against it and
// against the link's neighbours (Judge). Pure logic on packet timestamps,
// like the engine: a replay learns from the capture what the daemon
// learns from the wire.

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"strings"
)

// LinkSeen is what a source's own probes said about who put them on the
// wire: the frames' link-layer source address and the hop counts their
// TTLs imply (see Hops). The engine keeps it per source and hands it over
// with the alert; the classifier never reads it.
type LinkSeen struct {
	// MAC is the link-layer source address of the source's first probe
	// that had one; MACs is 0 when none had, 1 when all that had one
	// had MAC, 2 when they came from more than one. MAC2 is then the
	// second one seen (a framed host's own frames and its forger's are
	// two).
	MAC  [6]byte
	MACs uint8
	MAC2 [6]byte
	// Hops has bit h set when one of the source's probes came from h
	// hops away (bit 63: 63 or more; see Hops); 0 when none said. A
	// source's own packets come from one or two hop counts; forged ones
	// mixed in come from the forger's.
	Hops uint64
}

// hopBit is the bit of LinkSeen.Hops for hops.
func hopBit(hops int) uint64 { return 1 << min(hops, 63) }

// macs returns the MACs l knows, the first n of m: none, MAC, or MAC
// and MAC2 (of two or more).
func (l *LinkSeen) macs() (m [2][6]byte, n int) {
	return [2][6]byte{l.MAC, l.MAC2}, int(min(l.MACs, 2))
}

// note adds one probe of the source to l.
func (l *LinkSeen) note(p *Probe) {
	if p.HasMAC {
		switch {
		case l.MACs == 0:
			l.MAC, l.MACs = p.SrcMAC, 1
		case l.MACs == 1 && l.MAC != p.SrcMAC:
			l.MAC2, l.MACs = p.SrcMAC, 2
		}
	}
	if p.TTL != 0 {
		h, _ := Hops(p.TTL)
		l.Hops |= hopBit(h)
	}
}

// Verdict is what the judge made of a source.
type Verdict uint8

const (
	// Unjudged: no judge looked at the alert (the zero value).
	Unjudged Verdict = iota
	// Unknown: no evidence either way; the source is treated as today,
	// as real.
	Unknown
	// Genuine: the evidence says the source sent the probes itself.
	Genuine
	// Forged: the evidence says someone else sent them in its name; the
	// source is never blocked.
	Forged
	// Pending: the evidence is on its way (the kernel is resolving the
	// source's link-layer address); ask again.
	Pending
)

var verdictNames = [...]string{"unjudged", "unknown", "genuine", "forged", "pending"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", v)
}

// Judgement is a verdict and the evidence for it, in words for the log
// ("frames from 02:00:00:00:00:66, the MAC of 198.51.100.66").
type Judgement struct {
	Verdict  Verdict
	Evidence string
}

// NeighState is what is known of an address on the link.
type NeighState uint8

const (
	// NeighUnknown: no entry, or one being resolved.
	NeighUnknown NeighState = iota
	// NeighBound: the address resolves to MAC.
	NeighBound
	// NeighFailed: resolution failed: no host answered for the address.
	NeighFailed
)

// NeighInfo is what a Neighbourhood says of one address.
type NeighInfo struct {
	// OnLink: the address is on a directly connected network (its
	// packets come from its own link-layer address, not a router's).
	OnLink bool
	State  NeighState
	MAC    [6]byte // when State is NeighBound
}

// Neighbourhood is what the judge asks of the network around the host:
// the live daemon answers from the kernel's neighbour and routing tables,
// a replay from the capture's own ARP and NDP (Origins itself). Its
// methods must not block: a neighbour being resolved is NeighUnknown.
type Neighbourhood interface {
	// Neighbour returns what is known of addr on the link.
	Neighbour(addr netip.Addr) NeighInfo
	// Owner returns the address whose link-layer address mac is, when
	// one is known, and whether that address routes for others (a
	// gateway of the host's routes): frames from a router carry
	// off-link sources, frames from any other host only its own.
	Owner(mac [6]byte) (addr netip.Addr, router, ok bool)
}

// Origins learns, from the traffic itself, what each address's genuine
// packets look like, and judges alerts by it (Judge):
//
//   - from two-way TCP traffic: a segment with ACK that acknowledges the
//     initial sequence number of a SYN-ACK the other side sent (which only
//     a host that received the SYN-ACK knows; an off-path forger does
//     not) teaches its sender's hop count and link-layer address;
//   - from ARP and NDP messages in a capture (KindNeigh): an address's
//     link-layer binding, as the kernel's neighbour table holds it live;
//   - from the probes themselves: several sources probing the same port
//     at the same instant from one link-layer address, step after step,
//     are decoys of one sender (nmap -D).
//
// Every table is allocated in NewOrigins and bounded; Observe never
// allocates. Like Engine it is not safe for concurrent use: the goroutine
// that feeds the engine feeds it, and Judge runs there too.
type Origins struct {
	seeds seeds
	hs    []handshake
	known []knownAddr
	steps []stepGroup
}

// handshake is a SYN-ACK awaiting its acknowledgment: the hash of its
// connection (as the acknowledging side sends it) and the SYN-ACK's
// sequence number.
type handshake struct {
	key uint64
	isn uint32
	// poisoned: two SYN-ACKs of one connection disagreed (a forger
	// sending one in the host's name): nothing is learned from it.
	poisoned bool
	ts       int64
}

// knownAddr is what is known of one address.
type knownAddr struct {
	addr Addr
	ts   int64 // last learned (packet time); 0: free slot
	// own is what its validated traffic showed: the hop counts it came
	// from (more than knownHops distinct ones are no evidence: routes
	// that change) and its link-layer address (MACs 1), or several
	// (MACs 2: a router's, or a change).
	own LinkSeen
	// neigh is the binding an ARP or NDP message gave (hasNeigh).
	neigh    [6]byte
	hasNeigh bool
}

// stepGroup follows the probes of one link-layer address: the last one,
// and the sources seen probing in step with another.
type stepGroup struct {
	mac     [6]byte
	used    bool
	lastTS  int64
	lastSrc Addr
	port    uint16
	proto   uint8
	members [stepMembers]stepMember
}

type stepMember struct {
	addr  Addr
	steps uint16
	ts    int64
}

// NewOrigins returns an Origins with its tables allocated.
func NewOrigins() *Origins {
	return &Origins{
		seeds: newSeeds(),
		hs:    make([]handshake, handshakeSlots),
		known: make([]knownAddr, knownSlots),
		steps: make([]stepGroup, stepSlots),
	}
}

func (o *Origins) mix(x, y uint64) uint64 { return o.seeds.mix(x, y) }

func (o *Origins) hashAddr(k Addr) uint64 { return o.seeds.key(k) }

// connKey hashes the connection from a:ap to b:bp (directed).
func (o *Origins) connKey(a, b Addr, ap, bp uint16) uint64 {
	h := o.hashAddr(a)
	h = o.mix(h^uint64(ap)<<32^uint64(bp), o.hashAddr(b))
	return h | 1 // 0 marks a free slot
}

// Observe learns from one packet. It never allocates.
func (o *Origins) Observe(p *Probe) {
	switch p.Kind {
	case KindNeigh:
		if p.HasMAC && p.Src.IsValid() {
			k := o.slot(p.Src, p.TS)
			k.neigh, k.hasNeigh = p.SrcMAC, true
		}
	case KindTCP:
		o.tcp(p)
	case KindUDP:
		o.step(p)
	}
}

func (o *Origins) tcp(p *Probe) {
	f := p.Flags
	switch {
	case f&(FlagSYN|FlagACK) == FlagSYN|FlagACK:
		// A SYN-ACK is remembered only as its sender's own stack sent
		// it: captured on the host that sent it, with the TTL it left
		// with (one that came through a router, or a forged one in the
		// host's name from elsewhere, has lost some).
		if _, init := Hops(p.TTL); p.TTL != init {
			return
		}
		key := o.connKey(p.Dst, p.Src, p.DstPort, p.SrcPort)
		h := &o.hs[key&(handshakeSlots-1)]
		if h.key == key && p.TS-h.ts <= int64(handshakeLife) {
			if h.isn != p.Seq {
				h.poisoned = true
			}
			return
		}
		*h = handshake{key: key, isn: p.Seq, ts: p.TS}
	case f&FlagACK != 0 && f&FlagSYN == 0:
		key := o.connKey(p.Src, p.Dst, p.SrcPort, p.DstPort)
		h := &o.hs[key&(handshakeSlots-1)]
		if h.key != key || h.poisoned || p.TS-h.ts > int64(handshakeLife) {
			return
		}
		// It acknowledges the SYN-ACK (its ISN + 1) or data sent
		// after it: its sender received what the host sent.
		if p.Ack-(h.isn+1) >= ackWindow {
			return
		}
		o.learn(p)
	case f&FlagACK == 0:
		o.step(p)
	}
}

// learn records what a validated packet of p.Src says of it.
func (o *Origins) learn(p *Probe) {
	o.slot(p.Src, p.TS).own.note(p)
}

// slot returns the entry of k, taking the oldest of its bucket when k has
// none (an entry older than knownLife is as good as none).
func (o *Origins) slot(k Addr, ts int64) *knownAddr {
	bucket := o.bucket(k)
	victim := &bucket[0]
	for i := range bucket {
		e := &bucket[i]
		if e.ts != 0 && e.addr == k {
			if ts-e.ts > int64(knownLife) {
				*e = knownAddr{addr: k}
			}
			e.ts = max(e.ts, ts, 1)
			return e
		}
		if e.ts < victim.ts {
			victim = e
		}
	}
	*victim = knownAddr{addr: k, ts: max(ts, 1)}
	return victim
}

// bucket returns the knownWays entries k may be in.
func (o *Origins) bucket(k Addr) []knownAddr {
	b := int(o.hashAddr(k)&(knownSlots/knownWays-1)) * knownWays
	return o.known[b : b+knownWays]
}

// group returns the step group mac falls in (which may be another MAC's).
func (o *Origins) group(mac [6]byte) *stepGroup {
	h := o.mix(uint64(binary.LittleEndian.Uint32(mac[:4])), uint64(binary.LittleEndian.Uint16(mac[4:])))
	return &o.steps[h&(stepSlots-1)]
}

// find returns the entry of a when one is known and not too old, else nil.
func (o *Origins) find(a netip.Addr, now int64) *knownAddr {
	k := AddrOf(a)
	bucket := o.bucket(k)
	for i := range bucket {
		e := &bucket[i]
		if e.ts != 0 && e.addr == k && (now == anyAge || now-e.ts <= int64(knownLife)) {
			return e
		}
	}
	return nil
}

// step follows a probe (a TCP segment without ACK, a UDP datagram) of its
// frame's link-layer address: one to the same port as that address's
// previous probe, from another source, within stepGap, is a step in
// unison, counted for both sources.
func (o *Origins) step(p *Probe) {
	if !p.HasMAC {
		return
	}
	m := p.SrcMAC
	g := o.group(m)
	src := p.Src
	if !g.used || g.mac != m {
		*g = stepGroup{mac: m, used: true}
	} else if g.lastSrc != src && g.port == p.DstPort && g.proto == p.Proto && p.TS-g.lastTS <= int64(stepGap) {
		g.count(g.lastSrc, p.TS)
		g.count(src, p.TS)
	}
	g.lastTS, g.lastSrc, g.port, g.proto = p.TS, src, p.DstPort, p.Proto
}

// count adds a step to a's member entry, taking a free entry, else the
// stalest, when a has none.
func (g *stepGroup) count(a Addr, ts int64) {
	victim := &g.members[0]
	for i := range g.members {
		m := &g.members[i]
		if m.steps > 0 && m.addr == a {
			if ts-m.ts > int64(stepLife) {
				m.steps = 0
			}
			m.steps = min(m.steps+1, 1<<15)
			m.ts = ts
			return
		}
		if victim.steps != 0 && (m.steps == 0 || m.ts < victim.ts) {
			victim = m
		}
	}
	*victim = stepMember{addr: a, steps: 1, ts: ts}
}

// stepsOf returns the group of mac and the step count of a in it, when a
// has stepped there lately.
func (o *Origins) stepsOf(mac [6]byte, a netip.Addr, now int64) (*stepGroup, uint16) {
	g := o.group(mac)
	if !g.used || g.mac != mac {
		return nil, 0
	}
	k := AddrOf(a)
	for i := range g.members {
		m := &g.members[i]
		if m.steps > 0 && m.addr == k && now-m.ts <= int64(stepLife) {
			return g, m.steps
		}
	}
	return g, 0
}

// Neighbour and Owner make Origins the Neighbourhood of a replay: what
// the capture's ARP and NDP messages bound. An address is known to be on
// the link only when such a message named it; none ever failed.
func (o *Origins) Neighbour(addr netip.Addr) NeighInfo {
	if k := o.find(addr, anyAge); k != nil && k.hasNeigh {
		return NeighInfo{OnLink: true, State: NeighBound, MAC: k.neigh}
	}
	return NeighInfo{}
}

// Owner is not known in a replay: a capture does not say which hosts
// route.
func (o *Origins) Owner([6]byte) (netip.Addr, bool, bool) { return netip.Addr{}, false, false }

// anyAge makes find ignore age (a replay's neighbour bindings are the
// capture's, whenever in it they were made).
const anyAge = int64(-1 << 63)

// FormatMAC writes m as Linux tools do (02:00:00:00:00:66).
func FormatMAC(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// Judge says whether a's source sent its probes itself, from what a's
// probes showed (a.Link), what o learned and what n knows of the link.
// In order:
//
//  1. A completed TCP connection (a classic port's Connect) is genuine:
//     the handshake proves the source received the host's SYN-ACK.
//  2. A source on the link is judged by its link-layer address: frames
//     that carry the address it resolves to (the neighbour table, else
//     its own validated traffic) are genuine, frames that carry another
//     are forged, and so is an address whose resolution failed (no host
//     answers for it: nmap's unused decoys).
//  3. A source that probed in step with another source from the other's
//     own link-layer address is one of its decoys: forged.
//  4. Off the link, frames from a host's MAC that routes nothing here are
//     forged: a router's frames carry others' addresses, a host's only its
//     own.
//  5. Hop counts: probes that all came from a hop count the source's own
//     validated traffic never came from are forged (a source whose hop
//     counts vary more than knownHops values gives no evidence).
//  6. A source on the link whose address is being resolved is Pending;
//     anything else is Unknown.
//
// Judge does not allocate unless it returns evidence.
func (o *Origins) Judge(a *Alert, n Neighbourhood) Judgement {
	if a.Connected && a.Proto == ProtoTCP {
		return Judgement{Genuine, "completed a TCP handshake"}
	}
	src, l, now := a.Src, &a.Link, a.Time
	k := o.find(src, now)
	ni := n.Neighbour(src)
	if l.MACs > 0 {
		onLink := ni.OnLink || k != nil && k.hasNeigh
		bound, has := ni.MAC, ni.State == NeighBound
		if !has && k != nil && k.hasNeigh {
			bound, has = k.neigh, true
		}
		if !has && onLink && k != nil && k.own.MACs == 1 {
			bound, has = k.own.MAC, true
		}
		if onLink && has {
			return byBinding(a, bound, n)
		}
		if onLink && ni.State == NeighFailed {
			return Judgement{Forged, fmt.Sprintf("no host answers for %s on the link; %s", src, framesFrom(l, n))}
		}
		if j, ok := o.decoy(a, n); ok {
			return j
		}
		if !onLink {
			// frames from a neighbour that routes nothing, in the name
			// of an address off the link, are forged: whether or not the
			// address's own frames (through a router) came too
			macs, nm := l.macs()
			for _, m := range macs[:nm] {
				if owner, router, ok := n.Owner(m); ok && !router && owner != src {
					return Judgement{Forged, fmt.Sprintf("frames from %s, the MAC of %s, which routes nothing here", FormatMAC(m), owner)}
				}
			}
		}
		if onLink {
			if j, ok := o.hops(a, k); ok && j.Verdict == Forged {
				return j
			}
			return Judgement{Pending, fmt.Sprintf("resolving %s on the link", src)}
		}
	}
	if j, ok := o.hops(a, k); ok {
		return j
	}
	return Judgement{Unknown, ""}
}

// byBinding judges a, on the link, by the link-layer address its source
// resolves to.
func byBinding(a *Alert, bound [6]byte, n Neighbourhood) Judgement {
	l := &a.Link
	if l.MACs == 1 && l.MAC == bound {
		return Judgement{Genuine, fmt.Sprintf("frames from %s, its own MAC", FormatMAC(l.MAC))}
	}
	return Judgement{Forged, framesFrom(l, n) + fmt.Sprintf("; %s is at %s", a.Src, FormatMAC(bound))}
}

// JudgeResolved judges again an alert Judge left Pending, from what n now
// knows of its source on the link: its own frames' MAC (Genuine),
// another's or none at all (Forged: resolution failed), or Pending still.
func JudgeResolved(a *Alert, n Neighbourhood) Judgement {
	switch ni := n.Neighbour(a.Src); ni.State {
	case NeighBound:
		return byBinding(a, ni.MAC, n)
	case NeighFailed:
		return Judgement{Forged, fmt.Sprintf("no host answers for %s on the link; %s", a.Src, framesFrom(&a.Link, n))}
	}
	return Judgement{Pending, fmt.Sprintf("resolving %s on the link", a.Src)}
}

// Unresolved is the judgement of an alert whose source was still being
// resolved after wait: no host answered for it in time.
func Unresolved(a *Alert, n Neighbourhood, wait string) Judgement {
	return Judgement{Forged, fmt.Sprintf("no host answered for %s on the link within %s; %s", a.Src, wait, framesFrom(&a.Link, n))}
}

// framesFrom describes a's frames: their MAC, and whose it is.
func framesFrom(l *LinkSeen, n Neighbourhood) string {
	if l.MACs == 2 {
		return fmt.Sprintf("frames from several MACs (first %s)", FormatMAC(l.MAC))
	}
	if owner, _, ok := n.Owner(l.MAC); ok {
		return fmt.Sprintf("frames from %s, the MAC of %s", FormatMAC(l.MAC), owner)
	}
	return fmt.Sprintf("frames from %s", FormatMAC(l.MAC))
}

// decoy judges a by the decoy pattern: a probed in step with another
// source of its frames' MAC that owns the MAC (its neighbour entry, or
// its own validated traffic).
func (o *Origins) decoy(a *Alert, n Neighbourhood) (Judgement, bool) {
	l := &a.Link
	if l.MACs != 1 {
		return Judgement{}, false
	}
	g, steps := o.stepsOf(l.MAC, a.Src, a.Time)
	if g == nil || steps < minSteps {
		return Judgement{}, false
	}
	self := AddrOf(a.Src)
	for i := range g.members {
		m := &g.members[i]
		if m.steps < minSteps || m.addr == self || a.Time-m.ts > int64(stepLife) {
			continue
		}
		other := m.addr.Netip()
		if !o.owns(other, l.MAC, a.Time, n) {
			continue
		}
		return Judgement{Forged, fmt.Sprintf("frames from %s, the MAC of %s, probing in step with it (%d steps): a decoy",
			FormatMAC(l.MAC), other, steps)}, true
	}
	return Judgement{}, false
}

// owns says whether mac is a's own link-layer address.
func (o *Origins) owns(a netip.Addr, mac [6]byte, now int64, n Neighbourhood) bool {
	if ni := n.Neighbour(a); ni.State == NeighBound {
		return ni.MAC == mac
	}
	if k := o.find(a, now); k != nil {
		return k.hasNeigh && k.neigh == mac || k.own.MACs == 1 && k.own.MAC == mac
	}
	return false
}

// hops judges a by hop counts, when its source has learned ones: probes
// from a hop count its own validated traffic never came from were sent by
// someone else, and the alert rests on them at least in part (the
// source's own connections count among its probes too, and weigh nothing
// on their own).
func (o *Origins) hops(a *Alert, k *knownAddr) (Judgement, bool) {
	l := &a.Link
	if k == nil || l.Hops == 0 || k.own.Hops == 0 || bits.OnesCount64(k.own.Hops) > knownHops {
		return Judgement{}, false
	}
	own := k.own.Hops
	other := l.Hops &^ own
	if other == 0 {
		return Judgement{Unknown, ""}, true // consistent: proves nothing
	}
	return Judgement{Forged, fmt.Sprintf("probes from %s hops away; %s's own connections come from %s",
		hopList(other), a.Src, hopList(own))}, true
}

// hopList writes the hop counts of a LinkSeen.Hops bitmap, runs as
// ranges: "2", "1, 3", "5-27", "63 or more".
func hopList(set uint64) string {
	var b strings.Builder
	for h := 0; h < 64; h++ {
		if set&(1<<h) == 0 {
			continue
		}
		end := h
		for end < 62 && set&(1<<(end+1)) != 0 {
			end++
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		switch {
		case h == 63:
			b.WriteString("63 or more")
		case end > h:
			fmt.Fprintf(&b, "%d-%d", h, end)
		default:
			fmt.Fprint(&b, h)
		}
		h = end
	}
	return b.String()
}
