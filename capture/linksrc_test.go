package capture

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/scanwarden/scanwarden/detect"
)

// The evidence of who sent a probe: its TTL or hop limit and its frame's
// link-layer source (detect.Probe's TTL, HasMAC and SrcMAC).

// TTLs other than testTTL, so that a test sees which header they came from.
const (
	ttl4 = 57  // an IPv4 probe seven hops from a Linux sender
	ttl6 = 118 // an IPv6 probe ten hops from a Windows sender
)

// sender is what a probe should say of its sender.
type sender struct {
	ttl    uint8
	hasMAC bool
	mac    net.HardwareAddr
}

func checkSender(t *testing.T, p detect.Probe, want sender) {
	t.Helper()
	var mac [6]byte
	if want.hasMAC {
		mac = [6]byte(want.mac)
	}
	if p.TTL != want.ttl || p.HasMAC != want.hasMAC || p.SrcMAC != mac {
		t.Errorf("TTL %d HasMAC %v SrcMAC %v, want TTL %d HasMAC %v SrcMAC %v",
			p.TTL, p.HasMAC, net.HardwareAddr(p.SrcMAC[:]), want.ttl, want.hasMAC, net.HardwareAddr(mac[:]))
	}
}

// withSLLType is withSLL for a device of ARP hardware type hatype with a
// link-layer address addr (of any length up to 8).
func withSLLType(ipPkt []byte, hatype uint16, addr []byte) []byte {
	f := withSLL(ipPkt)
	binary.BigEndian.PutUint16(f[2:], hatype)
	binary.BigEndian.PutUint16(f[4:], uint16(len(addr)))
	clear(f[6:14])
	copy(f[6:14], addr)
	return f
}

// withSLL2Type is withSLL2 for a device of ARP hardware type hatype with a
// link-layer address addr (of any length up to 8).
func withSLL2Type(ipPkt []byte, hatype uint16, addr []byte) []byte {
	f := withSLL2(ipPkt)
	binary.BigEndian.PutUint16(f[8:], hatype)
	f[11] = byte(len(addr))
	clear(f[12:20])
	copy(f[12:20], addr)
	return f
}

// ARP hardware types of Linux devices without an Ethernet address.
const (
	arphrdTunnel   = 768 // ipip: the 4-byte outer IPv4 address
	arphrdLoopback = 772 // lo: a 6-byte address, all zero
	arphrdIPGRE    = 778 // gre: the 4-byte outer IPv4 address
	arphrdNone     = 0xfffe
)

// TestDecodeSender: every link type, IPv4 and IPv6, TCP and UDP.
func TestDecodeSender(t *testing.T) {
	syn4 := withTTL(ip4TCP(t, v4A, v4B, 40000, 22, detect.FlagSYN, nmapSYNOpts), ttl4)
	udp4 := withTTL(ip4UDP(t, v4A, v4B, 40000, 161, []byte("public")), ttl4)
	syn6 := withTTL(ip6TCP(t, v6A, v6B, 40000, 22, detect.FlagSYN, nmapSYNOpts), ttl6)
	udp6 := withTTL(ip6UDP(t, v6A, v6B, 40000, 53, []byte("q")), ttl6)
	mac4 := sender{ttl4, true, macA}
	mac6 := sender{ttl6, true, macA}
	none4 := sender{ttl: ttl4}
	none6 := sender{ttl: ttl6}

	cases := []struct {
		name string
		link layers.LinkType
		data []byte
		want sender
	}{
		{"ethernet ipv4 tcp", layers.LinkTypeEthernet, withEth(t, syn4), mac4},
		{"ethernet ipv4 udp", layers.LinkTypeEthernet, withEth(t, udp4), mac4},
		{"ethernet ipv6 tcp", layers.LinkTypeEthernet, withEth(t, syn6), mac6},
		{"ethernet ipv6 udp", layers.LinkTypeEthernet, withEth(t, udp6), mac6},
		{"802.1Q ipv4", layers.LinkTypeEthernet, withVLAN(t, syn4), mac4},
		{"802.1Q ipv6", layers.LinkTypeEthernet, withVLAN(t, udp6), mac6},
		{"sll ipv4", layers.LinkTypeLinuxSLL, withSLL(syn4), mac4},
		{"sll ipv6", layers.LinkTypeLinuxSLL, withSLL(udp6), mac6},
		{"sll2 ipv4", layers.LinkTypeLinuxSLL2, withSLL2(udp4), mac4},
		{"sll2 ipv6", layers.LinkTypeLinuxSLL2, withSLL2(syn6), mac6},
		{"raw ipv4", layers.LinkTypeRaw, syn4, none4},
		{"raw ipv6", layers.LinkTypeRaw, udp6, none6},
		{"raw12 ipv4", 12, udp4, none4},
		{"linktype ipv6", layers.LinkTypeIPv6, syn6, none6},
		{"null ipv4", layers.LinkTypeNull, withNull(syn4), none4},
		{"loop ipv6", layers.LinkTypeLoop, withLoop(syn6), none6},
		// tcpdump -i any: devices with no Ethernet address.
		{"sll loopback", layers.LinkTypeLinuxSLL, withSLLType(syn4, arphrdLoopback, make([]byte, 6)), none4},
		{"sll2 loopback", layers.LinkTypeLinuxSLL2, withSLL2Type(syn6, arphrdLoopback, make([]byte, 6)), none6},
		{"sll gre tunnel", layers.LinkTypeLinuxSLL, withSLLType(syn4, arphrdIPGRE, v4A.To4()), none4},
		{"sll2 ipip tunnel", layers.LinkTypeLinuxSLL2, withSLL2Type(udp4, arphrdTunnel, v4A.To4()), none4},
		{"sll2 tun (no address)", layers.LinkTypeLinuxSLL2, withSLL2Type(udp6, arphrdNone, nil), none6},
		{"sll 8-byte address", layers.LinkTypeLinuxSLL, withSLLType(udp6, 1, []byte{1, 2, 3, 4, 5, 6, 7, 8}), none6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := mustDecoder(t, c.link)
			var p detect.Probe
			if !d.Decode(c.data, ts0, &p) {
				t.Fatalf("Decode = false, stats %+v", d.Stats())
			}
			checkSender(t, p, c.want)
		})
	}

	t.Run("the source, not the destination", func(t *testing.T) {
		other := net.HardwareAddr{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef}
		frame := serialize(t, &layers.Ethernet{SrcMAC: other, DstMAC: macA, EthernetType: layers.EthernetTypeIPv4},
			gopacket.Payload(syn4))
		d := mustDecoder(t, layers.LinkTypeEthernet)
		var p detect.Probe
		if !d.Decode(frame, ts0, &p) {
			t.Fatal("not decoded")
		}
		checkSender(t, p, sender{ttl4, true, other})
	})
	t.Run("nothing is left of the previous frame", func(t *testing.T) {
		d := mustDecoder(t, layers.LinkTypeLinuxSLL)
		var p detect.Probe
		if !d.Decode(withSLL(syn4), ts0, &p) || !p.HasMAC {
			t.Fatalf("first frame: %+v", p)
		}
		if !d.Decode(withSLLType(syn6, arphrdLoopback, make([]byte, 6)), ts0, &p) {
			t.Fatal("second frame not decoded")
		}
		checkSender(t, p, none6)
	})
}

// TestDecodeSenderUnreachable: an ICMP error carries the TTL of the packet
// that carried it, not the one of the packet it quotes.
func TestDecodeSenderUnreachable(t *testing.T) {
	const outer4, outer6 = 250, 61
	udp4 := ip4UDP(t, v4A, v4B, 40000, 161, []byte("snmp?"))
	syn6 := ip6TCP(t, v6A, v6B, 40003, 443, detect.FlagSYN, nil)
	unreach4 := withTTL(icmp4Unreach(t, v4B, v4A, 3, udp4), outer4)
	unreach6 := withTTL(icmp6Unreach(t, v6B, v6A, 1, syn6), outer6)

	cases := []struct {
		name string
		link layers.LinkType
		data []byte
		want sender
	}{
		{"icmp ethernet", layers.LinkTypeEthernet, withEth(t, unreach4), sender{outer4, true, macA}},
		{"icmp raw", layers.LinkTypeRaw, unreach4, sender{ttl: outer4}},
		{"icmp sll", layers.LinkTypeLinuxSLL, withSLL(unreach4), sender{outer4, true, macA}},
		{"icmpv6 ethernet", layers.LinkTypeEthernet, withEth(t, unreach6), sender{outer6, true, macA}},
		{"icmpv6 sll2", layers.LinkTypeLinuxSLL2, withSLL2(unreach6), sender{outer6, true, macA}},
		{"icmpv6 raw", layers.LinkTypeRaw, unreach6, sender{ttl: outer6}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := mustDecoder(t, c.link)
			var p detect.Probe
			if !d.Decode(c.data, ts0, &p) || p.Kind != detect.KindUnreach {
				t.Fatalf("not decoded as unreachable: %+v, stats %+v", p, d.Stats())
			}
			checkSender(t, p, c.want)
		})
	}
}

// TestDecodeSenderTunnel: a tunnelled probe carries its inner header's TTL
// (the header its addresses come from) and the frame's link source.
func TestDecodeSenderTunnel(t *testing.T) {
	inner6 := withTTL(ip6TCP(t, v6A, v6B, 1000, 22, detect.FlagSYN, nil), ttl6)
	sixIn4 := withTTL(serialize(t, ip4Layer(v4A, v4B, layers.IPProtocolIPv6), gopacket.Payload(inner6)), 200)
	inner4 := withTTL(ip4UDP(t, v4A, v4B, 1000, 53, nil), ttl4)
	fourIn6 := withTTL(serialize(t, ip6Layer(v6A, v6B, layers.IPProtocolIPv4), gopacket.Payload(inner4)), 200)

	for _, c := range []struct {
		name string
		link layers.LinkType
		data []byte
		want sender
	}{
		{"6in4 raw", layers.LinkTypeRaw, sixIn4, sender{ttl: ttl6}},
		{"6in4 ethernet", layers.LinkTypeEthernet, withEth(t, sixIn4), sender{ttl6, true, macA}},
		{"4in6 sll2", layers.LinkTypeLinuxSLL2, withSLL2(fourIn6), sender{ttl4, true, macA}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := mustDecoder(t, c.link)
			var p detect.Probe
			if !d.Decode(c.data, ts0, &p) {
				t.Fatalf("not decoded, stats %+v", d.Stats())
			}
			checkSender(t, p, c.want)
		})
	}
}

// TestDecodeSenderFragments: a reassembled datagram carries the TTL and
// link source of the fragment that completed it, like its timestamp.
func TestDecodeSenderFragments(t *testing.T) {
	macs := []net.HardwareAddr{
		{0x02, 0, 0, 0, 0xf0, 0},
		{0x02, 0, 0, 0, 0xf0, 1},
		{0x02, 0, 0, 0, 0xf0, 2},
	}
	ttls := []uint8{40, 41, 42}
	frame := func(i int, f []byte) []byte {
		typ := layers.EthernetTypeIPv4
		if f[0]>>4 == 6 {
			typ = layers.EthernetTypeIPv6
		}
		return serialize(t, &layers.Ethernet{SrcMAC: macs[i], DstMAC: macB, EthernetType: typ}, gopacket.Payload(withTTL(f, ttls[i])))
	}
	f4 := fragment4(ip4TCP(t, v4A, v4B, 40000, 22, detect.FlagSYN, nmapSYNOpts), 8)
	f6 := fragment6(ip6TCP(t, v6A, v6B, 40000, 443, detect.FlagSYN, nmapSYNOpts), 8, 0xfeed)
	if len(f4) != 3 || len(f6) != 3 {
		t.Fatalf("%d and %d fragments", len(f4), len(f6))
	}

	for _, c := range []struct {
		name  string
		frags [][]byte
		order []int
	}{
		{"ipv4 in order", f4, []int{0, 1, 2}},
		{"ipv4 reversed", f4, []int{2, 1, 0}},
		{"ipv4 last first", f4, []int{2, 0, 1}},
		{"ipv6 in order", f6, []int{0, 1, 2}},
		{"ipv6 reversed", f6, []int{2, 1, 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := mustDecoder(t, layers.LinkTypeEthernet)
			var pkts [][]byte
			for _, i := range c.order {
				pkts = append(pkts, frame(i, c.frags[i]))
			}
			got := feed(d, pkts...)
			if len(got) != 1 || !got[0].Frag {
				t.Fatalf("got %+v, stats %+v", got, d.Stats())
			}
			last := c.order[len(c.order)-1]
			checkSender(t, got[0], sender{ttls[last], true, macs[last]})
		})
	}

	t.Run("raw ip", func(t *testing.T) {
		d := mustDecoder(t, layers.LinkTypeRaw)
		got := feed(d, withTTL(f4[1], 33), withTTL(f4[0], 34), withTTL(f4[2], 35))
		if len(got) != 1 {
			t.Fatalf("got %+v", got)
		}
		checkSender(t, got[0], sender{ttl: 35})
	})
}
