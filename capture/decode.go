// Package capture turns packets, from a live interface or a capture file,
// into detect.Probe values: the commonest frames (TCP and UDP over
// untagged Ethernet, Linux cooked or raw IP, in IPv4 without options or
// fragmentation or IPv6 without extension headers) are read in place by a
// fast path (fast.go), and everything else has its link and network
// layers peeled off by gopacket's DecodingLayerParser over preallocated
// layers, to the same result; fragmented transport headers are
// reassembled in a fixed table, ICMP errors are turned around to read as
// the probed host's answer, and ARP and NDP messages that bind an address
// to an Ethernet address become neighbour probes. Nothing is allocated per
// packet, nothing is logged: problems come back as errors, and what was
// skipped is counted in Stats. It owns the pcap handles and the kernel
// filter; it neither classifies (package detect does) nor blocks.
package capture

import (
	"encoding/binary"
	"fmt"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"

	"github.com/scanwarden/scanwarden/detect"
)

// Stats counts what a Decoder did with the packets it was given. Every
// packet counts in Packets and in one of Decoded, Ignored, Malformed and
// Fragments, except the fragment that completes a datagram's header: it
// counts in Fragments and also in Decoded and Reassembled (or in
// Malformed, if the reassembled header makes no sense). Evicted and
// Expired count datagrams, not packets.
type Stats struct {
	// Packets is every packet handed to Decode.
	Packets uint64
	// Decoded is every Probe produced: TCP segments, UDP datagrams, ICMP
	// destination-unreachable errors, reassembled datagrams and ARP and
	// NDP neighbour messages.
	Decoded uint64
	// Ignored is well-formed traffic the classifier has no use for: ARP
	// and NDP messages that bind no usable address (see Decode), ICMP of
	// other types, other IP protocols and EtherTypes, and IPv6 packets
	// with an IPv4-mapped or unspecified (::) source or destination (see
	// noHost6).
	Ignored uint64
	// Malformed is packets skipped because a header was truncated or
	// inconsistent (including reassembled headers that made no sense).
	Malformed uint64
	// Fragments is every IPv4 or IPv6 fragment of a TCP or UDP datagram.
	Fragments uint64
	// Reassembled is datagrams whose transport header was put together
	// from fragments (each is also counted in Decoded).
	Reassembled uint64
	// Evicted is incomplete datagrams dropped from the fragment table to
	// make room for a newer one: probes that may have been lost.
	Evicted uint64
	// Expired is incomplete datagrams dropped after FragTimeout without
	// their missing fragments (counted when their slot is next looked up
	// or reused).
	Expired uint64
}

// Decoder decodes the frames of one link type into Probes. It holds its
// parser, layers and fragment table, all allocated once by NewDecoder, so
// Decode allocates nothing. A Decoder is not safe for concurrent use; use
// one per capture.
type Decoder struct {
	link    layers.LinkType
	parser  *gopacket.DecodingLayerParser // starts at the link layer (IPv4 for raw IP)
	parser6 *gopacket.DecodingLayerParser // raw IP only: starts at IPv6
	raw     bool
	decoded []gopacket.LayerType
	// fast is how decodeFast reads this link type's frames (fast.go),
	// set by NewDecoder: fastNone (BSD loopback) sends every frame to the
	// parser, as the tests that compare the two paths set it.
	fast fastLink

	eth   ethHeader
	arp   arpHeader
	dot1q layers.Dot1Q
	sll   layers.LinuxSLL
	sll2  layers.LinuxSLL2
	loop  layers.Loopback
	ip4   ipv4Header
	ip6   ipv6Header
	ext   layers.IPv6ExtensionSkipper
	frag6 layers.IPv6Fragment
	tcp   tcpHeader
	udp   layers.UDP
	icmp4 layers.ICMPv4
	icmp6 layers.ICMPv6

	frags fragTable
	stats Stats
}

// Link types whose frames start directly with an IPv4 or IPv6 header.
const (
	linkTypeRawDLT12 layers.LinkType = 12 // DLT_RAW on most systems
	linkTypeRawDLT14 layers.LinkType = 14 // DLT_RAW on OpenBSD
)

// NewDecoder returns a Decoder for frames of the given link type: Ethernet
// (with 802.1Q/802.1ad tags), Linux cooked capture v1 and v2 (tcpdump -i
// any), BSD loopback (DLT_NULL, DLT_LOOP) and raw IP (DLT_RAW 12, 14 and
// 101, LINKTYPE_IPV4 228, LINKTYPE_IPV6 229). Any other link type is an
// error that names it.
func NewDecoder(link layers.LinkType) (*Decoder, error) {
	d := &Decoder{link: link, decoded: make([]gopacket.LayerType, 0, 16)}
	d.frags.init()
	var first gopacket.LayerType
	switch link {
	case layers.LinkTypeEthernet:
		first, d.fast = layers.LayerTypeEthernet, fastEthernet
	case layers.LinkTypeLinuxSLL:
		first, d.fast = layers.LayerTypeLinuxSLL, fastSLL
	case layers.LinkTypeLinuxSLL2:
		first, d.fast = layers.LayerTypeLinuxSLL2, fastSLL2
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		first = layers.LayerTypeLoopback
	case linkTypeRawDLT12, linkTypeRawDLT14, layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6:
		first, d.fast = layers.LayerTypeIPv4, fastRaw
		d.raw = true
	default:
		return nil, fmt.Errorf("unsupported link type %s: scanwarden reads Ethernet, Linux cooked (SLL, SLL2), BSD loopback and raw IP captures", linkTypeDesc(link))
	}

	// DecodingLayerSparse indexes the layers by type in a slice: the
	// fastest container, and small since every type here is below 200.
	var dlc gopacket.DecodingLayerContainer = gopacket.DecodingLayerSparse(nil)
	for _, l := range []gopacket.DecodingLayer{
		&d.eth, guard{&d.dot1q, shorterThan(4, errShortDot1Q)}, guard{&d.sll, checkSLL}, guard{&d.sll2, checkSLL2}, guard{&d.loop, checkLoopback}, &d.arp,
		&d.ip4, &d.ip6,
		guard{&d.ext, checkExt6},                       // hop-by-hop, routing and destination options are skipped...
		guard{&d.frag6, shorterThan(8, errShortFrag6)}, // ...and the fragment header, registered after, replaces the skipper for its type
		&d.tcp, guard{&d.udp, checkUDP}, guard{&d.icmp4, shorterThan(8, errShortICMPv4)}, guard{&d.icmp6, shorterThan(4, errShortICMPv6)},
	} {
		dlc = dlc.Put(l)
	}
	d.parser = newParser(first, dlc)
	if d.raw {
		d.parser6 = newParser(layers.LayerTypeIPv6, dlc)
	}
	return d, nil
}

func newParser(first gopacket.LayerType, dlc gopacket.DecodingLayerContainer) *gopacket.DecodingLayerParser {
	p := gopacket.NewDecodingLayerParser(first)
	p.SetDecodingLayerContainer(dlc)
	// A layer we have no decoder for (ARP, LLC, payloads) ends decoding
	// without an error: what was decoded so far says what the packet is.
	// Panics inside gopacket stay recovered (IgnorePanic false).
	p.IgnoreUnsupported = true
	return p
}

// LinkType returns the link type the Decoder was made for.
func (d *Decoder) LinkType() layers.LinkType { return d.link }

// Stats returns the Decoder's counters so far.
func (d *Decoder) Stats() Stats { return d.stats }

// Decode decodes one frame captured at ts (nanoseconds since the Unix
// epoch) into p and reports whether p now holds a probe: a TCP segment
// (with its sequence and acknowledgment numbers), a UDP datagram, an
// ICMPv4/ICMPv6 destination-unreachable about a TCP or UDP packet (turned
// around as detect.Probe describes), or a neighbour message (KindNeigh,
// see neighARP and neighNDP): an ARP request or reply, or an NDP
// neighbour solicitation or advertisement, that gives a unicast Ethernet
// address for an IP address. It returns false, and leaves p zeroed, for
// anything else: other protocols, ICMP of other types, ARP and NDP that
// bind nothing usable, malformed or truncated frames (a truncated ARP
// message included), and fragments of a datagram whose transport header
// is not complete yet. A datagram reassembled from fragments is reported
// once, when its header becomes complete, with p.Frag set.
//
// Every TCP, UDP and unreachable probe also carries the TTL or hop limit
// of the IP header it was read from and, on links that have one, the
// frame's link-layer source (detect.Probe's TTL, HasMAC and SrcMAC). A
// reassembled datagram takes them, like its timestamp and addresses, from
// the fragment that completed it. A neighbour probe's SrcMAC is the
// address the message gives, never the frame's.
//
// Decode never panics on any input and allocates nothing. It does not keep
// data: the frame may be reused as soon as Decode returns.
func (d *Decoder) Decode(data []byte, ts int64, p *detect.Probe) bool {
	*p = detect.Probe{}
	d.stats.Packets++
	// The common frames are read in place (fast.go); the parser decodes
	// the rest, to the same result.
	if d.decodeFast(data, ts, p) {
		return true
	}
	parser := d.parser
	if d.raw && len(data) > 0 && data[0]>>4 == 6 {
		parser = d.parser6
	}
	if err := parser.DecodeLayers(data, &d.decoded); err != nil {
		d.stats.Malformed++
		return false
	}
	if len(d.decoded) == 0 {
		d.stats.Malformed++
		return false
	}

	// The network layer is the last IPv4 or IPv6 header decoded (the inner
	// one of a tunnel: both share a struct, so the inner one is what the
	// struct now holds).
	var v6 bool
	var ipHeaders int
	for _, t := range d.decoded {
		switch t {
		case layers.LayerTypeIPv4:
			v6 = false
			ipHeaders++
		case layers.LayerTypeIPv6:
			v6 = true
			ipHeaders++
		}
	}
	last := d.decoded[len(d.decoded)-1]
	if ipHeaders == 0 {
		return d.linkOnly(p, ts, last)
	}
	if v6 && (noHost6(d.ip6.src) || noHost6(d.ip6.dst)) {
		d.stats.Ignored++
		return false
	}
	var ok, whole bool
	switch last {
	case layers.LayerTypeTCP:
		ok = fillTCP(p, d.tcp.hdr)
	case layers.LayerTypeUDP:
		ok = fillUDP(p, d.udp.Contents)
	case layers.LayerTypeICMPv6:
		if t := d.icmp6.TypeCode.Type(); t == layers.ICMPv6TypeNeighborSolicitation || t == layers.ICMPv6TypeNeighborAdvertisement {
			return d.neighNDP(p, ts, v6 && ipHeaders == 1)
		}
		fallthrough
	default:
		if ok, whole = d.decodeOther(p, ts, last); !ok {
			return false
		}
		p.Frag = !whole // else an ICMP error, turned around: its addresses are set
	}
	if !ok { // fillTCP and fillUDP wrote nothing: p is still zero
		d.stats.Malformed++
		return false
	}
	p.TS = ts
	switch {
	case whole:
	case v6:
		p.Src = detect.AddrFrom16([16]byte(d.ip6.src))
		p.Dst = detect.AddrFrom16([16]byte(d.ip6.dst))
	default:
		p.Src = detect.AddrFrom4([4]byte(d.ip4.src))
		p.Dst = detect.AddrFrom4([4]byte(d.ip4.dst))
	}
	d.stats.Decoded++
	d.sender(p, data, v6)
	return true
}

// sender fills the evidence of who sent the frame just decoded into p:
// the TTL or hop limit of its last IP header (v6: an IPv6 one), which for
// an ICMP error is the header carrying the error, not the quoted one, and
// the link-layer source address when the link has a 6-byte one. The link
// header is always the frame's first, so the layer holding it is this
// frame's. A Linux loopback device seen through a cooked capture has a
// 6-byte address too, always zero: it gets none.
func (d *Decoder) sender(p *detect.Probe, frame []byte, v6 bool) {
	if v6 {
		p.TTL = d.ip6.hopLimit
	} else {
		p.TTL = d.ip4.ttl
	}
	var a []byte
	switch d.link {
	case layers.LinkTypeEthernet:
		a = ethSource(frame)
	case layers.LinkTypeLinuxSLL:
		if d.sll.AddrType != uint16(layers.ARPHardwareTypeLoopback) {
			a = d.sll.Addr
		}
	case layers.LinkTypeLinuxSLL2:
		if d.sll2.ARPHardwareType != layers.ARPHardwareTypeLoopback {
			a = d.sll2.Addr
		}
	}
	if len(a) == 6 {
		p.SrcMAC, p.HasMAC = [6]byte(a), true
	}
}

// decodeOther decodes a packet whose last layer is neither TCP nor UDP:
// an ICMP or ICMPv6 destination-unreachable (turned around to read as the
// probed host's answer: whole, p is complete), or a fragment (kept for
// reassembly; ok once it completes a datagram's transport header, whose
// fields are then in p and whose addresses, time and count are Decode's
// to set); anything else is ignored.
func (d *Decoder) decodeOther(p *detect.Probe, ts int64, last gopacket.LayerType) (ok, whole bool) {
	switch last {
	case layers.LayerTypeICMPv4:
		if d.icmp4.TypeCode.Type() != layers.ICMPv4TypeDestinationUnreachable {
			d.stats.Ignored++
			return false, false
		}
		return d.unreach(p, d.icmp4.Payload, d.icmp4.TypeCode.Code(), false), true
	case layers.LayerTypeICMPv6:
		if d.icmp6.TypeCode.Type() != layers.ICMPv6TypeDestinationUnreachable {
			d.stats.Ignored++
			return false, false
		}
		// Four unused bytes follow the ICMPv6 header, then the quote.
		if len(d.icmp6.Payload) < 4 {
			d.stats.Malformed++
			return false, false
		}
		return d.unreach(p, d.icmp6.Payload[4:], d.icmp6.TypeCode.Code(), true), true
	case layers.LayerTypeIPv4:
		if d.ip4.fragment() {
			return d.fragment4(p, ts), false
		}
	case layers.LayerTypeIPv6Fragment:
		if d.frag6.MoreFragments || d.frag6.FragmentOffset != 0 {
			return d.fragment6(p, ts), false
		}
	}
	d.stats.Ignored++
	return false, false
}

// fillTCP fills p's TCP fields (ports, sequence and acknowledgment
// numbers, flags, StackSYN) from a TCP header of at least 20 bytes
// (options may be cut short); it writes nothing to p and returns false
// for a shorter one.
func fillTCP(p *detect.Probe, h []byte) bool {
	if len(h) < 20 {
		return false
	}
	p.Kind = detect.KindTCP
	p.Proto = detect.ProtoTCP
	p.SrcPort = uint16(h[0])<<8 | uint16(h[1])
	p.DstPort = uint16(h[2])<<8 | uint16(h[3])
	p.Seq = uint32(h[4])<<24 | uint32(h[5])<<16 | uint32(h[6])<<8 | uint32(h[7])
	p.Ack = uint32(h[8])<<24 | uint32(h[9])<<16 | uint32(h[10])<<8 | uint32(h[11])
	p.Flags = h[13]
	if p.Flags&(detect.FlagSYN|detect.FlagACK) == detect.FlagSYN {
		p.StackSYN = stackOptions(h[20:])
	}
	return true
}

// linkOnly decides a frame in which no IP header was decoded (last is
// the last layer that was): an ARP message goes to neighARP; a link
// header that announces ARP and ends the frame is a truncated ARP message
// (malformed, like a truncated one the ARP layer refused); anything else
// is ignored. It returns neighARP's verdict, else false with p untouched.
func (d *Decoder) linkOnly(p *detect.Probe, ts int64, last gopacket.LayerType) bool {
	var next gopacket.LayerType
	switch last {
	case layers.LayerTypeARP:
		return d.neighARP(p, ts)
	case layers.LayerTypeEthernet:
		next = d.eth.NextLayerType()
	case layers.LayerTypeDot1Q:
		next = d.dot1q.NextLayerType()
	case layers.LayerTypeLinuxSLL:
		next = d.sll.NextLayerType()
	case layers.LayerTypeLinuxSLL2:
		next = d.sll2.NextLayerType()
	}
	if next == layers.LayerTypeARP {
		d.stats.Malformed++
	} else {
		d.stats.Ignored++
	}
	return false
}

// ARP field values of an IPv4-over-Ethernet request or reply (RFC 826).
const (
	arpHWEthernet = 1
	arpProtoIPv4  = 0x0800
	arpRequest    = 1
	arpReply      = 2
)

// neighARP fills p with the neighbour binding of the ARP message just
// decoded, counts it and returns true when the message is an IPv4 over
// Ethernet request or reply that binds a sender address to a sender
// hardware address: Src the sender IPv4 address, SrcMAC (HasMAC) the
// sender hardware address from the message body (not the frame's), Dst
// the target IPv4 address, TS ts; TTL stays 0. Any other ARP message
// (other hardware or protocol, other operation), an ARP probe (sender
// 0.0.0.0, RFC 5227) and a sender hardware address that is all-zero,
// multicast or broadcast are counted as ignored, and p is left zero.
func (d *Decoder) neighARP(p *detect.Probe, ts int64) bool {
	a := &d.arp
	if a.htype != arpHWEthernet || a.ptype != arpProtoIPv4 || a.hlen != 6 || a.plen != 4 ||
		a.op != arpRequest && a.op != arpReply {
		d.stats.Ignored++
		return false
	}
	src := [4]byte(a.spa)
	if src == [4]byte{} || !unicastMAC(a.sha) {
		d.stats.Ignored++
		return false
	}
	p.Kind = detect.KindNeigh
	p.TS = ts
	p.Src = detect.AddrFrom4(src)
	p.Dst = detect.AddrFrom4([4]byte(a.tpa))
	p.SrcMAC, p.HasMAC = [6]byte(a.sha), true
	d.stats.Decoded++
	return true
}

// NDP option types that carry a link-layer address (RFC 4861 4.6.1).
const (
	ndOptSourceLL = 1
	ndOptTargetLL = 2
)

// ndpHopLimit is the only hop limit a genuine NDP message has: RFC 4861
// has every sender set it and every receiver drop anything else, since a
// message that crossed a router (or was forged off-link) arrives lower.
const ndpHopLimit = 255

// neighNDP fills p with the neighbour binding of the ICMPv6 neighbour
// solicitation or advertisement just decoded (direct: its IP header is
// IPv6 and the frame's only one), counts it and returns true when the
// message binds an address to an Ethernet address:
//
//   - a solicitation from a specified source with a Source Link-Layer
//     Address option: Src the IPv6 source, SrcMAC the option's address,
//     Dst the target address asked about;
//   - an advertisement with a Target Link-Layer Address option: Src the
//     target address advertised, SrcMAC the option's address, Dst the
//     IPv6 destination.
//
// TS is ts, TTL the hop limit, HasMAC set. Only options of length 1 (a
// 6-byte address) count; the first one of the type is used. These are
// ignored:
//   - a message inside a tunnel (its hop limit then proves nothing of
//     where it was sent from);
//   - one with a hop limit other than 255 or a code other than 0;
//   - one whose target is multicast, IPv4-mapped or unspecified;
//   - one without such an option, or whose option address is all-zero,
//     multicast or broadcast;
//   - a solicitation from :: (duplicate address detection binds nothing;
//     Decode ignores it before, as every packet from ::).
//
// One too short for its target, or with an option of length zero or
// running past the end, is malformed. Either way p is left zero and false
// returned.
func (d *Decoder) neighNDP(p *detect.Probe, ts int64, direct bool) bool {
	typ := d.icmp6.TypeCode.Type()
	if !direct || d.ip6.hopLimit != ndpHopLimit || d.icmp6.TypeCode.Code() != 0 {
		d.stats.Ignored++
		return false
	}
	// After type, code and checksum: 4 reserved (or flag) bytes, the
	// target address, then the options.
	body := d.icmp6.Payload
	if len(body) < 20 {
		d.stats.Malformed++
		return false
	}
	target := [16]byte(body[4:20])
	want := uint8(ndOptSourceLL)
	if typ == layers.ICMPv6TypeNeighborAdvertisement {
		want = ndOptTargetLL
	}
	mac, ok := ndLinkAddr(body[20:], want)
	if !ok {
		d.stats.Malformed++
		return false
	}
	if mac == nil || !unicastMAC(mac) || target[0] == 0xff || noHost6(target[:]) {
		d.stats.Ignored++
		return false
	}
	if typ == layers.ICMPv6TypeNeighborSolicitation {
		// (one from ::, duplicate address detection, binds nothing:
		// Decode ignores every packet from :: before)
		p.Src, p.Dst = detect.AddrFrom16([16]byte(d.ip6.src)), detect.AddrFrom16(target)
	} else {
		p.Src, p.Dst = detect.AddrFrom16(target), detect.AddrFrom16([16]byte(d.ip6.dst))
	}
	p.Kind = detect.KindNeigh
	p.TS = ts
	p.TTL = d.ip6.hopLimit
	p.SrcMAC, p.HasMAC = [6]byte(mac), true
	d.stats.Decoded++
	return true
}

// ndLinkAddr walks an NDP option list and returns the 6-byte address of
// its first option of type want with length 1 (8 bytes: the Ethernet
// form), or nil when it has none. ok is false when the list is malformed
// (an option of length zero, or one that runs past the end), which voids
// the whole message (RFC 4861 4.6).
func ndLinkAddr(opts []byte, want uint8) (mac []byte, ok bool) {
	for len(opts) > 0 {
		if len(opts) < 2 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			return nil, false
		}
		if mac == nil && opts[0] == want && opts[1] == 1 {
			mac = opts[2:8]
		}
		opts = opts[int(opts[1])*8:]
	}
	return mac, true
}

// unicastMAC reports whether a 6-byte link-layer address can be a host's:
// not all-zero, and not a group (multicast or broadcast) address, whose
// first byte has its low bit set.
func unicastMAC(m []byte) bool {
	return len(m) == 6 && m[0]&1 == 0 && [6]byte(m) != [6]byte{}
}

// fillUDP fills p's UDP fields from a UDP header of at least 8 bytes.
func fillUDP(p *detect.Probe, h []byte) bool {
	if len(h) < 8 {
		return false
	}
	p.Kind = detect.KindUDP
	p.Proto = detect.ProtoUDP
	p.SrcPort = uint16(h[0])<<8 | uint16(h[1])
	p.DstPort = uint16(h[2])<<8 | uint16(h[3])
	return true
}

// TCP option kinds that mark an operating system's SYN.
const (
	tcpOptEnd       = 0
	tcpOptNop       = 1
	tcpOptWScale    = 3
	tcpOptSACKPerm  = 4
	tcpOptTimestamp = 8
)

// stackOptions reports whether TCP options carry SACK-permitted, window
// scale or timestamps: what Linux, BSD, macOS and Windows put in the SYN of
// every connect(), and what nmap's raw -sS SYN (MSS only) lacks. A
// malformed option list ends the scan with what was found so far.
func stackOptions(opts []byte) bool {
	for len(opts) > 0 {
		switch opts[0] {
		case tcpOptEnd:
			return false
		case tcpOptNop:
			opts = opts[1:]
			continue
		case tcpOptWScale, tcpOptSACKPerm, tcpOptTimestamp:
			return true
		}
		if len(opts) < 2 || opts[1] < 2 || int(opts[1]) > len(opts) {
			return false
		}
		opts = opts[opts[1]:]
	}
	return false
}

// IPv6 extension headers that may stand between an IPv6 header and the
// transport header of a quoted packet.
const (
	ipProtoHopByHop = 0
	ipProtoTCP      = 6
	ipProtoUDP      = 17
	ipProtoRouting  = 43
	ipProtoFragment = 44
	ipProtoDestOpts = 60
)

// unreach fills p from the packet quoted in an ICMP destination-unreachable
// error, turned around: the quoted destination (the probed host and port)
// becomes the source. It accepts quotes of TCP and UDP packets whose
// transport ports are present (RFC 792 guarantees 8 bytes of them).
func (d *Decoder) unreach(p *detect.Probe, q []byte, code uint8, v6 bool) bool {
	var proto uint8
	var src, dst detect.Addr
	var th []byte
	if !v6 {
		if len(q) < 20 || q[0]>>4 != 4 {
			d.stats.Malformed++
			return false
		}
		ihl := int(q[0]&0x0f) * 4
		if ihl < 20 || len(q) < ihl {
			d.stats.Malformed++
			return false
		}
		if (uint16(q[6])<<8|uint16(q[7]))&0x1fff != 0 {
			// A later fragment was quoted: it has no ports.
			d.stats.Ignored++
			return false
		}
		proto = q[9]
		src = detect.AddrFrom4([4]byte(q[12:16]))
		dst = detect.AddrFrom4([4]byte(q[16:20]))
		th = q[ihl:]
	} else {
		if len(q) < 40 || q[0]>>4 != 6 {
			d.stats.Malformed++
			return false
		}
		if noHost6(q[8:24]) || noHost6(q[24:40]) {
			d.stats.Ignored++ // quotes a packet that was never sent
			return false
		}
		src = detect.AddrFrom16([16]byte(q[8:24]))
		dst = detect.AddrFrom16([16]byte(q[24:40]))
		proto = q[6]
		th = q[40:]
		// Walk the extension headers a probe may carry.
	walk:
		for {
			switch proto {
			case ipProtoHopByHop, ipProtoRouting, ipProtoDestOpts:
				if len(th) < 8 || len(th) < int(th[1])*8+8 {
					d.stats.Malformed++
					return false
				}
				proto, th = th[0], th[int(th[1])*8+8:]
			case ipProtoFragment:
				if len(th) < 8 {
					d.stats.Malformed++
					return false
				}
				if (uint16(th[2])<<8|uint16(th[3]))&0xfff8 != 0 {
					d.stats.Ignored++ // a later fragment: no ports
					return false
				}
				proto, th = th[0], th[8:]
			default:
				break walk
			}
		}
	}
	if proto != ipProtoTCP && proto != ipProtoUDP {
		d.stats.Ignored++
		return false
	}
	if len(th) < 4 {
		d.stats.Malformed++
		return false
	}
	p.Kind = detect.KindUnreach
	p.Proto = proto
	p.Code = code
	p.Src, p.SrcPort = dst, uint16(th[2])<<8|uint16(th[3])
	p.Dst, p.DstPort = src, uint16(th[0])<<8|uint16(th[1])
	return true
}

// v4Mapped reports whether the 16-byte IPv6 address a is IPv4-mapped
// (::ffff:0:0/96). Such addresses are never sent on the wire (RFC 4291
// 2.5.5.2; Linux drops an IPv6 packet with such a source), and
// detect.Addr writes IPv4 addresses that way: an IPv6 packet with one is
// ignored rather than taken for IPv4 traffic.
func v4Mapped(a []byte) bool {
	return len(a) == 16 && binary.BigEndian.Uint64(a[:8]) == 0 && binary.BigEndian.Uint32(a[8:12]) == 0xffff
}

// noHost6 reports whether the 16-byte IPv6 address a names no host a
// probe can come from or go to: IPv4-mapped (see v4Mapped), or the
// unspecified address ::, which detect.Addr cannot tell from no address
// at all.
func noHost6(a []byte) bool {
	return v4Mapped(a) || len(a) == 16 && binary.BigEndian.Uint64(a[:8]) == 0 && binary.BigEndian.Uint64(a[8:]) == 0
}

// fragment4 hands an IPv4 fragment to the reassembly table.
func (d *Decoder) fragment4(p *detect.Probe, ts int64) bool {
	ip := &d.ip4
	proto := ip.proto
	if proto != ipProtoTCP && proto != ipProtoUDP {
		d.stats.Ignored++
		return false
	}
	d.stats.Fragments++
	k := makeFragKey(ip.src, ip.dst, uint32(ip.id), proto, false)
	h, ok := d.frags.add(&k, ts, int(ip.fragOff)*8, ip.more, ip.payload, ip.realLen, &d.stats)
	if !ok {
		return false
	}
	return d.fragDone(p, proto, h)
}

// fragment6 hands an IPv6 fragment to the reassembly table. Only fragments
// whose fragmentable part starts with the TCP or UDP header are kept:
// that is how every stack (and nmap -6 -f) fragments.
func (d *Decoder) fragment6(p *detect.Probe, ts int64) bool {
	f := &d.frag6
	proto := uint8(f.NextHeader)
	if proto != ipProtoTCP && proto != ipProtoUDP || d.ip6.length == 0 {
		d.stats.Ignored++
		return false
	}
	d.stats.Fragments++
	k := makeFragKey(d.ip6.src, d.ip6.dst, f.Identification, proto, true)
	// Bytes between the IPv6 header and this fragment's data: extension
	// headers and the fragment header. Both payloads end at the same
	// place, so their lengths differ by exactly that.
	hdrs := len(d.ip6.payload) - len(f.Payload)
	realLen := int(d.ip6.length) - hdrs
	h, ok := d.frags.add(&k, ts, int(f.FragmentOffset)*8, f.MoreFragments, f.Payload, realLen, &d.stats)
	if !ok {
		return false
	}
	return d.fragDone(p, proto, h)
}

// fragDone fills p's transport fields from a reassembled transport
// header; Decode sets the rest, as for an unfragmented one.
func (d *Decoder) fragDone(p *detect.Probe, proto uint8, h []byte) bool {
	var ok bool
	if proto == ipProtoTCP {
		ok = fillTCP(p, h)
	} else {
		ok = fillUDP(p, h)
	}
	if !ok { // cannot happen: the table only completes full headers
		d.stats.Malformed++
	}
	return ok
}

// linkTypeDesc names a link type for an error: libpcap's name (the one
// tcpdump -L prints) and the number, or just the number when nobody knows it.
func linkTypeDesc(l layers.LinkType) string {
	if name := pcap.DatalinkValToName(int(l)); name != "" {
		return fmt.Sprintf("%s (%d)", name, uint16(l))
	}
	if name := l.String(); name != "UnknownLinkType" {
		return fmt.Sprintf("%s (%d)", name, uint16(l))
	}
	return fmt.Sprintf("%d", uint16(l))
}
