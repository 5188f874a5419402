// Package detect is scanwarden's detection engine: pure logic over decoded
// packets, with no I/O and no wall clock. Every decision is taken on packet
// timestamps, so a live capture and a replay of the same packets give the
// same verdicts. It also judges whether an alert's source sent its probes
// itself (Origins, Judge), from what the traffic teaches and what the
// caller's Neighbourhood knows of the link. It owns the vocabulary every
// other package speaks (Probe, Alert, scan types, PortSet) and imports no
// other package of scanwarden.
package detect

// Packet kinds a Probe can carry.
const (
	KindNone    uint8 = iota
	KindTCP           // a TCP segment: Flags, ports and StackSYN are set
	KindUDP           // a UDP datagram: ports are set
	KindUnreach       // an ICMP/ICMPv6 destination-unreachable about an earlier datagram or segment
	// KindNeigh is an ARP or NDP message that binds an address to a
	// link-layer address: Src is the address, SrcMAC (HasMAC set) the
	// link-layer address the message gives for it (not the frame's), Dst
	// the address asked about or answered to when the message has one.
	// Only capture files carry them (the live filter passes none: the
	// daemon reads the kernel's neighbour table instead); the classifier
	// ignores them and Origins learns from them.
	KindNeigh
)

// IP protocol numbers used in Probe.Proto.
const (
	ProtoTCP uint8 = 6
	ProtoUDP uint8 = 17
)

// TCP flag bits as they stand in byte 13 of the TCP header.
const (
	FlagFIN uint8 = 0x01
	FlagSYN uint8 = 0x02
	FlagRST uint8 = 0x04
	FlagPSH uint8 = 0x08
	FlagACK uint8 = 0x10
	FlagURG uint8 = 0x20
	FlagECE uint8 = 0x40
	FlagCWR uint8 = 0x80
)

// Probe is one decoded packet, reduced to what the classifier needs. It is a
// plain value: the capture layer fills one in place per packet and the engine
// reads it, so nothing is allocated per packet.
//
// For KindTCP and KindUDP the fields describe the packet as it was sent:
// Src:SrcPort -> Dst:DstPort.
//
// For KindUnreach they describe the packet quoted inside the ICMP error,
// turned around so that it reads like a reply from the probed host: Src and
// SrcPort are the quoted packet's destination address and port (the host and
// port that were probed), Dst and DstPort its source (the prober), Proto the
// quoted packet's protocol, and Code the ICMP code.
//
// TTL, HasMAC and SrcMAC are evidence about who put the packet on the wire
// (its hop count, see Hops, and the last hop's link-layer address), for
// judging whether Src is forged; the classifier does not read them.
type Probe struct {
	TS       int64 // packet timestamp, nanoseconds since the Unix epoch
	Src, Dst Addr
	SrcPort  uint16
	DstPort  uint16
	Kind     uint8 // KindTCP, KindUDP or KindUnreach
	Proto    uint8 // ProtoTCP or ProtoUDP
	Flags    uint8 // TCP flags (KindTCP only)
	Code     uint8 // ICMP code (KindUnreach only)
	// StackSYN is set on a SYN whose options only an operating system's TCP
	// stack sends (SACK-permitted, window scale or timestamps): the mark of
	// a connect() call rather than a crafted half-open probe.
	StackSYN bool
	// Frag is set when the packet's transport header was reassembled from
	// IPv4 or IPv6 fragments.
	Frag bool
	// TTL is the IPv4 time-to-live or IPv6 hop limit of the IP header the
	// probe was read from: the last one of the packet (the inner header of
	// a tunnel), which for KindUnreach is the header carrying the ICMP
	// error itself, not the quoted one. For a reassembled datagram it is
	// the completing fragment's. Hops turns it into a hop count.
	TTL uint8
	// HasMAC is set when the frame had a link-layer source address and
	// SrcMAC holds it: Ethernet (tagged or not), and Linux cooked capture
	// v1 and v2 when the address is 6 bytes long and the device is not a
	// loopback. It is false for raw IP, BSD loopback, the Linux loopback
	// and tunnels (no address, or not 6 bytes).
	HasMAC bool
	// SrcMAC is the frame's link-layer source address when HasMAC is set
	// (the last hop's, not the sender's when the packet was routed), zero
	// otherwise. For a reassembled datagram it is the completing
	// fragment's.
	SrcMAC [6]byte
	// Seq and Ack are the TCP sequence and acknowledgment numbers
	// (KindTCP only; Ack is meaningful when Flags has FlagACK). Origins
	// checks them to tell a host's own two-way traffic (it acknowledges
	// what the protected host sent it) from what a forger can send.
	Seq, Ack uint32
}
