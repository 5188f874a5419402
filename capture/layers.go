package capture

import (
	"encoding/binary"
	"errors"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Lean DecodingLayers for the headers every packet goes through. They plug
// into the same DecodingLayerParser as gopacket's own layers (which still
// decode 802.1Q, Linux cooked v1/v2, loopback, IPv6 extension and fragment
// headers, UDP and ICMP), but read only the fields a probe needs and keep
// the rest as raw bytes. Profiling a replay showed why each exists:
//
//   - layers.Ethernet stores its BaseLayer through a stack temporary that
//     the CPU cannot forward from the preceding narrower stores: 13 of the
//     63 ns of an Ethernet/IPv4/TCP decode went to that one stall.
//   - layers.IPv4 checks its next layer against the IPv6 extension class
//     and parses IP options into a slice; we need neither.
//   - layers.IPv6 decodes a hop-by-hop header itself, allocating one struct
//     per option (every MLD report has one); here the hop-by-hop header is
//     left to the extension skipper like the others.
//   - layers.TCP parses every option into a ~100-byte struct (and allocates
//     for MPTCP ones); we scan the raw options once for three kinds.
//   - layers.ARP formats a new error for every truncated message: a replay
//     of a capture cut at a short snap length would allocate per packet.
//
// Their errors are preallocated values, so even a malformed packet costs
// no allocation in these layers; gopacket's layers that remain are
// guarded the same way (guard).

var (
	errShortEthernet = errors.New("ethernet header shorter than 14 bytes")
	errShortIPv4     = errors.New("IPv4 header shorter than 20 bytes")
	errIPv4Version   = errors.New("IPv4 header with a version other than 4")
	errIPv4HeaderLen = errors.New("IPv4 header length below 20 bytes or beyond the packet")
	errShortIPv6     = errors.New("IPv6 header shorter than 40 bytes")
	errIPv6Version   = errors.New("IPv6 header with a version other than 6")
	errShortTCP      = errors.New("TCP header shorter than 20 bytes")
	errTCPOffset     = errors.New("TCP data offset below 5")
	errShortARP      = errors.New("ARP message shorter than its address sizes say")
)

// guard puts a check in front of one of gopacket's layers. Those format a
// new error for malformed input (a short UDP, ICMP, 802.1Q, cooked or
// loopback header, a UDP length field of 1 to 7, an IPv6 extension or
// fragment header cut short), which is an allocation per packet for
// anyone who sends such packets. check refuses exactly that input first,
// with a preallocated error, and marks it truncated where the layer would
// have; what it lets through the layer decodes without an error.
type guard struct {
	gopacket.DecodingLayer
	check func(data []byte, df gopacket.DecodeFeedback) error
}

func (g guard) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if err := g.check(data, df); err != nil {
		return err
	}
	return g.DecodingLayer.DecodeFromBytes(data, df)
}

var (
	errShortUDP    = errors.New("UDP header shorter than 8 bytes")
	errUDPLength   = errors.New("UDP length field of 1 to 7 bytes")
	errShortICMPv4 = errors.New("ICMPv4 header shorter than 8 bytes")
	errShortICMPv6 = errors.New("ICMPv6 header shorter than 4 bytes")
	errShortDot1Q  = errors.New("802.1Q tag shorter than 4 bytes")
	errShortSLL    = errors.New("linux cooked capture header cut short")
	errSLLAddrLen  = errors.New("linux cooked capture address longer than 8 bytes")
	errShortLoop   = errors.New("loopback header shorter than 4 bytes")
	errLoopFamily  = errors.New("loopback protocol family above 255")
	errShortExt6   = errors.New("IPv6 extension header cut short")
	errShortFrag6  = errors.New("IPv6 fragment header shorter than 8 bytes")
)

// The checks of the guards, each as the layer it guards reads its header.

// shorterThan is the check of a header of at least n bytes, which the
// layer marks truncated when it is shorter.
func shorterThan(n int, err error) func([]byte, gopacket.DecodeFeedback) error {
	return func(data []byte, df gopacket.DecodeFeedback) error { return short(data, n, df, err) }
}

// short is err, the packet marked truncated, when data is shorter than n.
func short(data []byte, n int, df gopacket.DecodeFeedback, err error) error {
	if len(data) < n {
		df.SetTruncated()
		return err
	}
	return nil
}

func checkUDP(data []byte, df gopacket.DecodeFeedback) error {
	if err := short(data, 8, df, errShortUDP); err != nil {
		return err
	}
	if n := binary.BigEndian.Uint16(data[4:6]); n != 0 && n < 8 {
		return errUDPLength
	}
	return nil
}

func checkSLL(data []byte, _ gopacket.DecodeFeedback) error {
	if len(data) < 16 {
		return errShortSLL
	}
	if binary.BigEndian.Uint16(data[4:6]) > 8 {
		return errSLLAddrLen
	}
	return nil
}

func checkSLL2(data []byte, _ gopacket.DecodeFeedback) error {
	if len(data) < 20 {
		return errShortSLL
	}
	if data[11] > 8 {
		return errSLLAddrLen
	}
	return nil
}

func checkLoopback(data []byte, _ gopacket.DecodeFeedback) error {
	if len(data) < 4 {
		return errShortLoop
	}
	// as layers.Loopback tells the byte order
	prot := binary.LittleEndian.Uint32(data[:4])
	if data[0] == 0 && data[1] == 0 {
		prot = binary.BigEndian.Uint32(data[:4])
	}
	if prot > 0xff {
		return errLoopFamily
	}
	return nil
}

func checkExt6(data []byte, df gopacket.DecodeFeedback) error {
	if err := short(data, 2, df, errShortExt6); err != nil {
		return err
	}
	if len(data) < int(data[1])*8+8 {
		return errShortExt6
	}
	return nil
}

// etherTypeLayer maps the EtherTypes we follow to their layers; any other
// ends decoding (the packet is then ignored).
func etherTypeLayer(t uint16) gopacket.LayerType {
	switch t {
	case 0x0800:
		return layers.LayerTypeIPv4
	case 0x86dd:
		return layers.LayerTypeIPv6
	case 0x0806:
		return layers.LayerTypeARP
	case 0x8100, 0x88a8: // 802.1Q, 802.1ad (QinQ)
		return layers.LayerTypeDot1Q
	}
	return gopacket.LayerTypeZero
}

// ipProtoLayer maps the IP protocols we follow to their layers.
func ipProtoLayer(p uint8) gopacket.LayerType {
	switch p {
	case ipProtoTCP:
		return layers.LayerTypeTCP
	case ipProtoUDP:
		return layers.LayerTypeUDP
	case 1:
		return layers.LayerTypeICMPv4
	case 58:
		return layers.LayerTypeICMPv6
	case 4: // IPv4 in IP
		return layers.LayerTypeIPv4
	case 41: // IPv6 in IP
		return layers.LayerTypeIPv6
	case ipProtoHopByHop:
		return layers.LayerTypeIPv6HopByHop
	case ipProtoRouting:
		return layers.LayerTypeIPv6Routing
	case ipProtoFragment:
		return layers.LayerTypeIPv6Fragment
	case ipProtoDestOpts:
		return layers.LayerTypeIPv6Destination
	}
	return gopacket.LayerTypeZero
}

// ethHeader is Ethernet II (an 802.3 length field ends decoding: LLC
// frames carry no IP).
type ethHeader struct {
	typ     uint16
	payload []byte
}

// ethSource returns the source address of an Ethernet frame whose header
// an ethHeader has decoded. The address is read from the frame when a
// probe needs it rather than kept by every header decoded.
func ethSource(frame []byte) []byte { return frame[6:12] }

func (e *ethHeader) DecodeFromBytes(data []byte, _ gopacket.DecodeFeedback) error {
	if len(data) < 14 {
		return errShortEthernet
	}
	e.typ = uint16(data[12])<<8 | uint16(data[13])
	e.payload = data[14:]
	return nil
}

func (e *ethHeader) CanDecode() gopacket.LayerClass    { return layers.LayerTypeEthernet }
func (e *ethHeader) NextLayerType() gopacket.LayerType { return etherTypeLayer(e.typ) }
func (e *ethHeader) LayerPayload() []byte              { return e.payload }

// ipv4Header is the IPv4 header; options are skipped, not parsed.
type ipv4Header struct {
	src, dst []byte
	id       uint16
	proto    uint8
	ttl      uint8
	more     bool   // more-fragments flag
	fragOff  uint16 // fragment offset in 8-byte units
	realLen  int    // payload length from the header (which the capture may cut short)
	payload  []byte // bounded by the header's total length, and by the capture
}

func (h *ipv4Header) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 20 {
		df.SetTruncated()
		return errShortIPv4
	}
	if data[0]>>4 != 4 {
		return errIPv4Version
	}
	ihl := int(data[0]&0x0f) * 4
	total := int(data[2])<<8 | int(data[3])
	if total == 0 {
		// TCP segmentation offload hands the capture a super-packet
		// whose length field is 0: the capture's length is the truth.
		total = len(data)
	}
	if ihl < 20 || ihl > total || ihl > len(data) {
		return errIPv4HeaderLen
	}
	if total < len(data) {
		data = data[:total] // drop a link-layer trailer
	} else if total > len(data) {
		df.SetTruncated()
	}
	ff := uint16(data[6])<<8 | uint16(data[7])
	h.more = ff&0x2000 != 0
	h.fragOff = ff & 0x1fff
	h.id = uint16(data[4])<<8 | uint16(data[5])
	h.ttl, h.proto = data[8], data[9]
	h.src, h.dst = data[12:16], data[16:20]
	h.realLen = total - ihl
	h.payload = data[ihl:]
	return nil
}

func (h *ipv4Header) fragment() bool { return h.more || h.fragOff != 0 }

func (h *ipv4Header) CanDecode() gopacket.LayerClass { return layers.LayerTypeIPv4 }
func (h *ipv4Header) NextLayerType() gopacket.LayerType {
	if h.fragment() {
		return gopacket.LayerTypeFragment
	}
	switch h.proto {
	case ipProtoHopByHop, ipProtoRouting, ipProtoFragment, ipProtoDestOpts:
		return gopacket.LayerTypeZero // IPv6 extension numbers mean nothing in IPv4
	}
	return ipProtoLayer(h.proto)
}
func (h *ipv4Header) LayerPayload() []byte { return h.payload }

// ipv6Header is the fixed IPv6 header.
type ipv6Header struct {
	src, dst []byte
	next     uint8
	hopLimit uint8
	length   uint16 // payload length from the header (0: jumbogram, not followed)
	payload  []byte // bounded by length, and by the capture
}

func (h *ipv6Header) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 40 {
		df.SetTruncated()
		return errShortIPv6
	}
	if data[0]>>4 != 6 {
		return errIPv6Version
	}
	h.length = uint16(data[4])<<8 | uint16(data[5])
	h.next, h.hopLimit = data[6], data[7]
	h.src, h.dst = data[8:24], data[24:40]
	h.payload = data[40:]
	if int(h.length) <= len(h.payload) {
		h.payload = h.payload[:h.length] // drop a link-layer trailer
	} else {
		df.SetTruncated()
	}
	return nil
}

func (h *ipv6Header) CanDecode() gopacket.LayerClass    { return layers.LayerTypeIPv6 }
func (h *ipv6Header) NextLayerType() gopacket.LayerType { return ipProtoLayer(h.next) }
func (h *ipv6Header) LayerPayload() []byte              { return h.payload }

// tcpHeader keeps the raw TCP header, options included.
type tcpHeader struct {
	hdr     []byte // the header (cut short if the capture was)
	payload []byte
}

func (t *tcpHeader) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 20 {
		df.SetTruncated()
		return errShortTCP
	}
	hl := int(data[12]>>4) * 4
	if hl < 20 {
		return errTCPOffset
	}
	if hl > len(data) {
		// Options cut off by the snap length: ports and flags are there.
		df.SetTruncated()
		hl = len(data)
	}
	t.hdr, t.payload = data[:hl], data[hl:]
	return nil
}

func (t *tcpHeader) CanDecode() gopacket.LayerClass    { return layers.LayerTypeTCP }
func (t *tcpHeader) NextLayerType() gopacket.LayerType { return gopacket.LayerTypePayload }
func (t *tcpHeader) LayerPayload() []byte              { return t.payload }

// arpHeader is an ARP message (RFC 826) of any hardware and protocol:
// its fixed fields, and its four addresses as raw bytes of the sizes the
// message announces. A message shorter than that is truncated.
type arpHeader struct {
	htype, ptype uint16 // hardware type, protocol type (an EtherType)
	hlen, plen   uint8  // hardware and protocol address sizes
	op           uint16 // 1 request, 2 reply
	sha, spa     []byte // sender hardware and protocol addresses
	tpa          []byte // target protocol address (the target hardware one is not kept)
	payload      []byte // what follows the message (Ethernet padding)
}

func (a *arpHeader) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 8 {
		df.SetTruncated()
		return errShortARP
	}
	a.htype = uint16(data[0])<<8 | uint16(data[1])
	a.ptype = uint16(data[2])<<8 | uint16(data[3])
	a.hlen, a.plen = data[4], data[5]
	a.op = uint16(data[6])<<8 | uint16(data[7])
	h, p := int(a.hlen), int(a.plen)
	n := 8 + 2*h + 2*p
	if len(data) < n {
		df.SetTruncated()
		return errShortARP
	}
	a.sha = data[8 : 8+h]
	a.spa = data[8+h : 8+h+p]
	a.tpa = data[8+2*h+p : n]
	a.payload = data[n:]
	return nil
}

func (a *arpHeader) CanDecode() gopacket.LayerClass { return layers.LayerTypeARP }

// NextLayerType ends decoding: nothing we read follows an ARP message.
func (a *arpHeader) NextLayerType() gopacket.LayerType { return gopacket.LayerTypeZero }
func (a *arpHeader) LayerPayload() []byte              { return a.payload }
