package capture

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/scanwarden/scanwarden/detect"
)

// Test addresses: documentation ranges only.
var (
	v4A = net.IP{198, 51, 100, 201}
	v4B = net.IP{198, 51, 100, 202}
	v6A = net.ParseIP("fd00:77::201")
	v6B = net.ParseIP("fd00:77::202")

	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
)

// testTTL is the IPv4 TTL and IPv6 hop limit of the packets ip4Layer and
// ip6Layer build.
const testTTL = 64

func addr(ip net.IP) detect.Addr {
	if v4 := ip.To4(); v4 != nil {
		return detect.AddrFrom4([4]byte(v4))
	}
	return detect.AddrFrom16([16]byte(ip))
}

// Options of the SYN nmap -sS sends (MSS only) and of a Linux connect().
var (
	nmapSYNOpts  = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}
	linuxSYNOpts = []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
		{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
	}
)

// Sequence and acknowledgment numbers of the segments tcpLayer builds
// (every byte distinct and the top bit set, so that a byte-order or
// sign slip shows). The acknowledgment number is only set with ACK.
const (
	testSeq uint32 = 0x8badf00d
	testAck uint32 = 0xc0ffee01
)

// testAckOf is the acknowledgment number tcpLayer gives a segment with
// flags.
func testAckOf(flags uint8) uint32 {
	if flags&detect.FlagACK != 0 {
		return testAck
	}
	return 0
}

func tcpLayer(sport, dport uint16, flags uint8, opts []layers.TCPOption) *layers.TCP {
	return &layers.TCP{
		SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport),
		Seq: testSeq, Ack: testAckOf(flags), Window: 1024,
		FIN: flags&0x01 != 0, SYN: flags&0x02 != 0, RST: flags&0x04 != 0, PSH: flags&0x08 != 0,
		ACK: flags&0x10 != 0, URG: flags&0x20 != 0, ECE: flags&0x40 != 0, CWR: flags&0x80 != 0,
		Options: opts,
	}
}

func ip4Layer(src, dst net.IP, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: testTTL, Id: 4321, Protocol: proto, SrcIP: src, DstIP: dst}
}

func ip6Layer(src, dst net.IP, next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: testTTL, NextHeader: next, SrcIP: src, DstIP: dst}
}

func eth(t layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: t}
}

// serialize builds a packet, fixing lengths and checksums.
func serialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	for _, l := range ls {
		switch x := l.(type) {
		case *layers.TCP:
			for _, n := range ls {
				if nl, ok := n.(gopacket.NetworkLayer); ok {
					x.SetNetworkLayerForChecksum(nl)
				}
			}
		case *layers.UDP:
			for _, n := range ls {
				if nl, ok := n.(gopacket.NetworkLayer); ok {
					x.SetNetworkLayerForChecksum(nl)
				}
			}
		case *layers.ICMPv6:
			for _, n := range ls {
				if nl, ok := n.(gopacket.NetworkLayer); ok {
					x.SetNetworkLayerForChecksum(nl)
				}
			}
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// Network-layer packets (no link header).

func ip4TCP(tb testing.TB, src, dst net.IP, sport, dport uint16, flags uint8, opts []layers.TCPOption) []byte {
	return serialize(tb, ip4Layer(src, dst, layers.IPProtocolTCP), tcpLayer(sport, dport, flags, opts))
}

func ip6TCP(tb testing.TB, src, dst net.IP, sport, dport uint16, flags uint8, opts []layers.TCPOption) []byte {
	return serialize(tb, ip6Layer(src, dst, layers.IPProtocolTCP), tcpLayer(sport, dport, flags, opts))
}

func ip4UDP(tb testing.TB, src, dst net.IP, sport, dport uint16, payload []byte) []byte {
	return serialize(tb, ip4Layer(src, dst, layers.IPProtocolUDP),
		&layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}, gopacket.Payload(payload))
}

func ip6UDP(tb testing.TB, src, dst net.IP, sport, dport uint16, payload []byte) []byte {
	return serialize(tb, ip6Layer(src, dst, layers.IPProtocolUDP),
		&layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}, gopacket.Payload(payload))
}

// icmp4Unreach is the ICMPv4 destination-unreachable that from sends
// about the quoted IPv4 packet (of which it quotes the header and 8 bytes).
func icmp4Unreach(tb testing.TB, from, to net.IP, code uint8, quoted []byte) []byte {
	ihl := int(quoted[0]&0x0f) * 4
	q := quoted[:min(len(quoted), ihl+8)]
	return serialize(tb, ip4Layer(from, to, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, code)}, gopacket.Payload(q))
}

// icmp6Unreach is the ICMPv6 destination-unreachable about a quoted IPv6
// packet (quoted whole, as IPv6 stacks do).
func icmp6Unreach(tb testing.TB, from, to net.IP, code uint8, quoted []byte) []byte {
	body := append(make([]byte, 4), quoted...) // 4 unused bytes, then the quote
	return serialize(tb, ip6Layer(from, to, layers.IPProtocolICMPv6),
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(1, code)}, gopacket.Payload(body))
}

// Link-layer wrappers around a network-layer packet. Those of Ethernet
// and Linux cooked captures give the frame macA as its source.

func withEth(tb testing.TB, ipPkt []byte) []byte {
	t := layers.EthernetTypeIPv4
	if ipPkt[0]>>4 == 6 {
		t = layers.EthernetTypeIPv6
	}
	return serialize(tb, eth(t), gopacket.Payload(ipPkt))
}

func withVLAN(tb testing.TB, ipPkt []byte) []byte {
	t := layers.EthernetTypeIPv4
	if ipPkt[0]>>4 == 6 {
		t = layers.EthernetTypeIPv6
	}
	return serialize(tb, eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 42, Type: t}, gopacket.Payload(ipPkt))
}

func etherType(ipPkt []byte) uint16 {
	if ipPkt[0]>>4 == 6 {
		return 0x86dd
	}
	return 0x0800
}

// withSLL prepends a Linux cooked v1 header (16 bytes).
func withSLL(ipPkt []byte) []byte {
	h := make([]byte, 16, 16+len(ipPkt))
	binary.BigEndian.PutUint16(h[0:], 0) // to us
	binary.BigEndian.PutUint16(h[2:], 1) // ARPHRD_ETHER
	binary.BigEndian.PutUint16(h[4:], 6)
	copy(h[6:], macA)
	binary.BigEndian.PutUint16(h[14:], etherType(ipPkt))
	return append(h, ipPkt...)
}

// withSLL2 prepends a Linux cooked v2 header (20 bytes).
func withSLL2(ipPkt []byte) []byte {
	h := make([]byte, 20, 20+len(ipPkt))
	binary.BigEndian.PutUint16(h[0:], etherType(ipPkt))
	binary.BigEndian.PutUint32(h[4:], 2) // ifindex
	binary.BigEndian.PutUint16(h[8:], 1) // ARPHRD_ETHER
	h[10] = 0                            // to us
	h[11] = 6
	copy(h[12:], macA)
	return append(h, ipPkt...)
}

// withNull prepends a DLT_NULL header (address family in host order,
// little-endian here as on x86).
func withNull(ipPkt []byte) []byte {
	fam := uint32(2)
	if ipPkt[0]>>4 == 6 {
		fam = 10
	}
	h := binary.LittleEndian.AppendUint32(nil, fam)
	return append(h, ipPkt...)
}

// withLoop prepends a DLT_LOOP header (address family in network order).
func withLoop(ipPkt []byte) []byte {
	fam := uint32(2)
	if ipPkt[0]>>4 == 6 {
		fam = 24
	}
	h := binary.BigEndian.AppendUint32(nil, fam)
	return append(h, ipPkt...)
}

// fragment4 splits an IPv4 packet (without options) into fragments of at
// most size payload bytes (a multiple of 8), as nmap -f does.
func fragment4(ipPkt []byte, size int) [][]byte {
	ihl := int(ipPkt[0]&0x0f) * 4
	payload := ipPkt[ihl:]
	var out [][]byte
	for off := 0; off < len(payload); off += size {
		end := min(off+size, len(payload))
		out = append(out, ip4Frag(ipPkt[:ihl], off, end < len(payload), payload[off:end]))
	}
	return out
}

// ip4Frag builds one IPv4 fragment from a template header.
func ip4Frag(hdr []byte, off int, more bool, data []byte) []byte {
	f := append(append([]byte(nil), hdr...), data...)
	binary.BigEndian.PutUint16(f[2:], uint16(len(f)))
	fo := uint16(off / 8)
	if more {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(f[6:], fo)
	f[10], f[11] = 0, 0
	binary.BigEndian.PutUint16(f[10:], ipChecksum(f[:len(hdr)]))
	return f
}

func ipChecksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// fragment6 splits an IPv6 packet (fixed header, then the transport
// header) into fragments carrying a fragment header, as nmap -6 -f does.
func fragment6(ipPkt []byte, size int, id uint32) [][]byte {
	payload := ipPkt[40:]
	next := ipPkt[6]
	var out [][]byte
	for off := 0; off < len(payload); off += size {
		end := min(off+size, len(payload))
		out = append(out, ip6Frag(ipPkt[:40], next, id, off, end < len(payload), payload[off:end]))
	}
	return out
}

func ip6Frag(hdr []byte, next uint8, id uint32, off int, more bool, data []byte) []byte {
	f := append([]byte(nil), hdr...)
	f[6] = 44
	fh := make([]byte, 8)
	fh[0] = next
	fo := uint16(off/8) << 3
	if more {
		fo |= 1
	}
	binary.BigEndian.PutUint16(fh[2:], fo)
	binary.BigEndian.PutUint32(fh[4:], id)
	f = append(append(f, fh...), data...)
	binary.BigEndian.PutUint16(f[4:], uint16(len(f)-40))
	return f
}

// onLink returns p as Decode reports it from a frame of link type link
// made by the wrappers above: with macA as its link-layer source on the
// links that have one.
func onLink(p detect.Probe, link layers.LinkType) detect.Probe {
	switch link {
	case layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2:
		p.SrcMAC, p.HasMAC = [6]byte(macA), true
	}
	return p
}

// withTTL returns a copy of an IPv4 or IPv6 packet with its TTL or hop
// limit set to ttl (and the IPv4 header checksum fixed).
func withTTL(ipPkt []byte, ttl uint8) []byte {
	f := append([]byte(nil), ipPkt...)
	if f[0]>>4 == 6 {
		f[7] = ttl
		return f
	}
	ihl := int(f[0]&0x0f) * 4
	f[8] = ttl
	f[10], f[11] = 0, 0
	binary.BigEndian.PutUint16(f[10:], ipChecksum(f[:ihl]))
	return f
}
