package capture

import (
	"encoding/binary"

	"github.com/gopacket/gopacket/layers"

	"github.com/scanwarden/scanwarden/detect"
)

// The fast path: the frames a scan is made of (an untagged Ethernet, Linux
// cooked or raw IP frame carrying an unfragmented IPv4 header without
// options, or an IPv6 header followed directly by TCP or UDP) are decoded
// by reading the bytes in place, without the DecodingLayerParser, which
// costs most of a replay's decoding time. The fast path decodes a frame
// only when it is certain that the parser path would report the very same
// Probe and count the frame the same way (as Decoded); for anything else
// it gives up, touching nothing, and the parser path decodes the frame
// from scratch. Every check below mirrors one of the parser path's,
// noted where it is made; what the fast path leaves to the parser path is
// exactly what it does not check for:
//
//   - 802.1Q/802.1ad tags, ARP, other EtherTypes, and SLL/SLL2 frames of
//     devices whose header changes what follows it (Frame Relay, GRE,
//     radiotap) or whose address length is invalid;
//   - BSD loopback (DLT_NULL, DLT_LOOP): rare, and its header's byte
//     order is guessed by gopacket's layer;
//   - IPv4 options, fragments, an IPv4 total length shorter than the
//     header, IPv6 extension headers and fragments, tunnels, ICMP, other
//     protocols, IPv6 packets with an IPv4-mapped address;
//   - every truncated or inconsistent header, which the parser path
//     counts as malformed or ignored.
//
// FuzzFastPath and the capture replays of fast_test.go hold the two paths
// to the same Probes and Stats.

// fastLink is how the fast path finds the network header of a frame.
type fastLink uint8

const (
	fastNone     fastLink = iota // every frame takes the parser path
	fastEthernet                 // Ethernet II, untagged
	fastSLL                      // Linux cooked capture v1
	fastSLL2                     // Linux cooked capture v2
	fastRaw                      // raw IP: the version nibble says which
)

// Header sizes and field values the fast path reads (fixed by the formats,
// not tunable).
const (
	ethHeaderLen  = 14 // destination, source, EtherType
	sllHeaderLen  = 16 // LINKTYPE_LINUX_SLL
	sll2HeaderLen = 20 // LINKTYPE_LINUX_SLL2
	sllMaxAddrLen = 8  // the address field's size in both cooked headers: gopacket refuses more
	macLen        = 6  // an Ethernet address: the only link source a Probe carries

	ip4HeaderLen = 20 // IHL 5: no options
	ip6HeaderLen = 40
	tcpMinLen    = 20 // data offset 5
	udpHeaderLen = 8

	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd

	ip4VersionIHL5 = 0x45   // version 4, IHL 5: the first byte of an IPv4 header without options
	ip4FragMask    = 0x3fff // more-fragments flag and fragment offset
)

// ARP hardware types of the cooked headers that the fast path must heed:
// the loopback device's all-zero address is no link source (see sender),
// and on SLL2 the other three make the protocol field mean something else
// (gopacket's LinuxSLL2.NextLayerType).
const (
	hwLoopback = uint16(layers.ARPHardwareTypeLoopback)
	hwFRAD     = uint16(layers.ARPHardwareTypeFRAD)
	hwIPGRE    = uint16(layers.ARPHardwareTypeIPGRE)
	hwRadiotap = uint16(layers.ARPHardwareTypeDot11Radiotap)
)

// decodeFast decodes a frame of the Decoder's link type into p (zeroed by
// Decode) and counts it in Decoded, when the frame is a TCP segment or a
// UDP datagram of the shapes described above; p and the counters are then
// exactly what the parser path would have made of it. For any other frame
// it returns false and has written nothing, to p or to the Decoder. It
// never panics and allocates nothing.
func (d *Decoder) decodeFast(data []byte, ts int64, p *detect.Probe) bool {
	// The link header: where the IP header starts, which version it must
	// be, and the link-layer source (mac nil: none).
	var ip, mac []byte
	var etype uint16
	switch d.fast {
	case fastEthernet: // ethHeader: any frame of 14 bytes or more
		if len(data) < ethHeaderLen {
			return false
		}
		etype, ip, mac = binary.BigEndian.Uint16(data[12:]), data[ethHeaderLen:], ethSource(data)
	case fastSLL: // layers.LinuxSLL: the protocol is the EtherType whatever the device
		if len(data) < sllHeaderLen || data[4] != 0 || data[5] > sllMaxAddrLen {
			return false
		}
		etype, ip = binary.BigEndian.Uint16(data[14:]), data[sllHeaderLen:]
		if data[5] == macLen && binary.BigEndian.Uint16(data[2:]) != hwLoopback {
			mac = data[6:12]
		}
	case fastSLL2: // layers.LinuxSLL2
		if len(data) < sll2HeaderLen || data[11] > sllMaxAddrLen {
			return false
		}
		switch hw := binary.BigEndian.Uint16(data[8:]); hw {
		case hwFRAD, hwIPGRE, hwRadiotap:
			return false
		case hwLoopback: // its all-zero address is no link source
		default:
			if data[11] == macLen {
				mac = data[12:18]
			}
		}
		etype, ip = binary.BigEndian.Uint16(data[0:]), data[sll2HeaderLen:]
	case fastRaw: // Decode picks the IPv6 parser by the version nibble, else IPv4
		if len(data) == 0 {
			return false
		}
		etype, ip = etherTypeIPv4, data
		if data[0]>>4 == 6 {
			etype = etherTypeIPv6
		}
	default:
		return false
	}

	// The IP header: seg is the transport header and what follows, cut
	// where the header's length says, as ipv4Header and ipv6Header cut
	// their payload.
	var seg []byte
	var proto, ttl uint8
	var v6 bool
	switch etype {
	case etherTypeIPv4:
		if len(ip) < ip4HeaderLen || ip[0] != ip4VersionIHL5 || binary.BigEndian.Uint16(ip[6:])&ip4FragMask != 0 {
			return false
		}
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if total == 0 {
			total = len(ip) // TCP segmentation offload, as ipv4Header
		}
		if total < ip4HeaderLen {
			return false // ipv4Header: errIPv4HeaderLen
		}
		if total < len(ip) {
			ip = ip[:total] // a link-layer trailer
		}
		proto, ttl, seg = ip[9], ip[8], ip[ip4HeaderLen:]
	case etherTypeIPv6:
		if len(ip) < ip6HeaderLen || ip[0]>>4 != 6 || noHost6(ip[8:24]) || noHost6(ip[24:40]) {
			return false
		}
		seg = ip[ip6HeaderLen:]
		if n := int(binary.BigEndian.Uint16(ip[4:])); n <= len(seg) {
			seg = seg[:n] // a link-layer trailer; 0 leaves nothing, which fails below
		}
		proto, ttl, v6 = ip[6], ip[7], true
	default:
		return false
	}

	// The transport header, checked as tcpHeader and layers.UDP check it
	// (a TCP header cut by the snap length is kept, as tcpHeader keeps
	// it); from here on the frame is decoded.
	switch proto {
	case ipProtoTCP:
		if len(seg) < tcpMinLen || seg[12]>>4 < tcpMinLen/4 {
			return false
		}
		fillTCP(p, seg[:min(int(seg[12]>>4)*4, len(seg))])
	case ipProtoUDP:
		// layers.UDP refuses a length field of 1 to 7 (0 is a jumbogram).
		if len(seg) < udpHeaderLen || binary.BigEndian.Uint16(seg[4:]) != 0 && binary.BigEndian.Uint16(seg[4:]) < udpHeaderLen {
			return false
		}
		fillUDP(p, seg[:udpHeaderLen])
	default:
		return false
	}
	p.TS = ts
	p.TTL = ttl
	if v6 {
		p.Src = detect.AddrFrom16([16]byte(ip[8:24]))
		p.Dst = detect.AddrFrom16([16]byte(ip[24:40]))
	} else {
		p.Src = detect.AddrFrom4([4]byte(ip[12:16]))
		p.Dst = detect.AddrFrom4([4]byte(ip[16:20]))
	}
	if mac != nil {
		p.SrcMAC, p.HasMAC = [6]byte(mac), true
	}
	d.stats.Decoded++
	return true
}
