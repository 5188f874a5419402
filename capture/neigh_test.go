package capture

import (
	"encoding/binary"
	"fmt"
	"net"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/scanwarden/scanwarden/detect"
)

// Neighbour messages: ARP and NDP that bind an address to a link-layer
// address (detect.KindNeigh).

// macC is the link-layer address the messages give, unlike the frame
// source (macA) the link wrappers put on every frame: a neighbour probe
// must carry macC.
var macC = net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0x00, 0x07}

// Link-layer addresses a neighbour message must not bind.
var (
	macZero      = net.HardwareAddr{0, 0, 0, 0, 0, 0}
	macBroadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	macMulticast = net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb}
	macIPv6Mcast = net.HardwareAddr{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}
)

const etherTypeARP = 0x0806

// neighLink is a link type and a wrapper that puts a payload of an
// EtherType in one of its frames, with macA as the frame's source.
type neighLink struct {
	name string
	link layers.LinkType
	hdr  int // the link header's length
	wrap func(tb testing.TB, etype uint16, payload []byte) []byte
}

// neighLinks are the links ARP travels on: Ethernet, 802.1Q-tagged
// Ethernet (both written by gopacket) and Linux cooked v1 and v2 (built
// by hand: gopacket cannot write them).
var neighLinks = []neighLink{
	{"ethernet", layers.LinkTypeEthernet, 14, func(tb testing.TB, etype uint16, payload []byte) []byte {
		return serialize(tb, eth(layers.EthernetType(etype)), gopacket.Payload(payload))
	}},
	{"802.1Q", layers.LinkTypeEthernet, 18, func(tb testing.TB, etype uint16, payload []byte) []byte {
		return serialize(tb, eth(layers.EthernetTypeDot1Q),
			&layers.Dot1Q{VLANIdentifier: 42, Type: layers.EthernetType(etype)}, gopacket.Payload(payload))
	}},
	{"sll", layers.LinkTypeLinuxSLL, 16, func(_ testing.TB, etype uint16, payload []byte) []byte {
		f := withSLL([]byte{0x45})[:16]
		binary.BigEndian.PutUint16(f[14:], etype)
		return append(f, payload...)
	}},
	{"sll2", layers.LinkTypeLinuxSLL2, 20, func(_ testing.TB, etype uint16, payload []byte) []byte {
		f := withSLL2([]byte{0x45})[:20]
		binary.BigEndian.PutUint16(f[0:], etype)
		return append(f, payload...)
	}},
}

// arpLayer is an IPv4-over-Ethernet ARP message from sha/spa about tpa.
func arpLayer(op uint16, sha net.HardwareAddr, spa, tpa net.IP) *layers.ARP {
	tha := make([]byte, 6)
	if op == layers.ARPReply {
		tha = macB
	}
	return &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: op, SourceHwAddress: sha, SourceProtAddress: spa.To4(), DstHwAddress: tha, DstProtAddress: tpa.To4(),
	}
}

// arpBody is an ARP message serialized by gopacket, without a link header.
func arpBody(tb testing.TB, a *layers.ARP) []byte { return serialize(tb, a) }

// arpEth is an ARP message in an Ethernet frame, both written by gopacket.
func arpEth(tb testing.TB, a *layers.ARP) []byte {
	return serialize(tb, eth(layers.EthernetTypeARP), a)
}

func neighProbe(src, dst detect.Addr, mac net.HardwareAddr, ttl uint8) detect.Probe {
	return detect.Probe{TS: ts0, Src: src, Dst: dst, Kind: detect.KindNeigh, TTL: ttl, HasMAC: true, SrcMAC: [6]byte(mac)}
}

// decodeOne decodes one frame with a new decoder and returns whether it
// was a probe, the probe and the decoder's counters.
func decodeOne(t *testing.T, link layers.LinkType, frame []byte) (bool, detect.Probe, Stats) {
	t.Helper()
	d := mustDecoder(t, link)
	p := detect.Probe{TS: 99, Kind: detect.KindTCP, Seq: 1} // must be overwritten or cleared
	ok := d.Decode(frame, ts0, &p)
	return ok, p, d.Stats()
}

// TestDecodeARP: requests and replies on every link that carries ARP
// bind the sender's address to the sender's hardware address from the
// message body, not the frame's source.
func TestDecodeARP(t *testing.T) {
	request := arpBody(t, arpLayer(layers.ARPRequest, macC, v4A, v4B))
	reply := arpBody(t, arpLayer(layers.ARPReply, macC, v4A, v4B))
	gratuitous := arpBody(t, arpLayer(layers.ARPRequest, macC, v4A, v4A))
	for _, l := range neighLinks {
		for _, c := range []struct {
			name string
			body []byte
			want detect.Probe
		}{
			{"request", request, neighProbe(addr(v4A), addr(v4B), macC, 0)},
			{"reply", reply, neighProbe(addr(v4A), addr(v4B), macC, 0)},
			{"gratuitous", gratuitous, neighProbe(addr(v4A), addr(v4A), macC, 0)},
		} {
			t.Run(l.name+" "+c.name, func(t *testing.T) {
				ok, p, s := decodeOne(t, l.link, l.wrap(t, etherTypeARP, c.body))
				if !ok {
					t.Fatalf("Decode = false, stats %+v", s)
				}
				if p != c.want {
					t.Errorf("probe\n got %+v\nwant %+v", p, c.want)
				}
				if s.Packets != 1 || s.Decoded != 1 || s.Ignored != 0 || s.Malformed != 0 {
					t.Errorf("stats %+v", s)
				}
			})
		}
	}

	t.Run("written whole by gopacket", func(t *testing.T) {
		ok, p, s := decodeOne(t, layers.LinkTypeEthernet, arpEth(t, arpLayer(layers.ARPReply, macC, v4B, v4A)))
		if want := neighProbe(addr(v4B), addr(v4A), macC, 0); !ok || p != want {
			t.Errorf("got %v %+v (stats %+v)\nwant %+v", ok, p, s, want)
		}
	})
}

// TestDecodeARPSkips: ARP that binds nothing usable is ignored, never a
// probe, never malformed.
func TestDecodeARPSkips(t *testing.T) {
	mutate := func(a *layers.ARP, f func(b []byte)) []byte {
		b := arpBody(t, a)
		f(b)
		return b
	}
	req := func() *layers.ARP { return arpLayer(layers.ARPRequest, macC, v4A, v4B) }
	cases := []struct {
		name string
		body []byte
	}{
		{"arp probe from 0.0.0.0", arpBody(t, arpLayer(layers.ARPRequest, macC, net.IPv4zero, v4B))},
		{"zero sender mac", arpBody(t, arpLayer(layers.ARPReply, macZero, v4A, v4B))},
		{"broadcast sender mac", arpBody(t, arpLayer(layers.ARPReply, macBroadcast, v4A, v4B))},
		{"multicast sender mac", arpBody(t, arpLayer(layers.ARPRequest, macMulticast, v4A, v4B))},
		{"rarp request (op 3)", mutate(req(), func(b []byte) { b[7] = 3 })},
		{"inarp reply (op 9)", mutate(req(), func(b []byte) { b[7] = 9 })},
		{"hardware ieee802 (6)", mutate(req(), func(b []byte) { b[1] = 6 })},
		{"protocol not ipv4", mutate(req(), func(b []byte) { b[2], b[3] = 0x86, 0xdd })},
		// The sizes change where the addresses lie; the frame is long
		// enough (padding) for what they announce.
		{"hlen 8", append(mutate(req(), func(b []byte) { b[4] = 8 }), make([]byte, 8)...)},
		{"plen 16", append(mutate(req(), func(b []byte) { b[5] = 16 }), make([]byte, 24)...)},
	}
	for _, l := range neighLinks {
		for _, c := range cases {
			t.Run(l.name+" "+c.name, func(t *testing.T) {
				ok, p, s := decodeOne(t, l.link, l.wrap(t, etherTypeARP, c.body))
				if ok {
					t.Fatalf("Decode = true: %+v", p)
				}
				if p != (detect.Probe{}) {
					t.Errorf("probe not cleared: %+v", p)
				}
				if s.Packets != 1 || s.Ignored != 1 || s.Malformed != 0 || s.Decoded != 0 {
					t.Errorf("stats %+v, want one ignored", s)
				}
			})
		}
	}
}

// TestDecodeARPTruncated: an ARP message cut short (by the snap length)
// is malformed, like any other truncated packet, and no panic.
func TestDecodeARPTruncated(t *testing.T) {
	body := arpBody(t, arpLayer(layers.ARPRequest, macC, v4A, v4B))
	for _, l := range neighLinks {
		whole := l.wrap(t, etherTypeARP, body)
		for _, n := range []int{0, 1, 7, 8, 13, 20, 27} {
			t.Run(fmt.Sprintf("%s %d bytes", l.name, n), func(t *testing.T) {
				ok, p, s := decodeOne(t, l.link, whole[:l.hdr+n])
				if ok || p != (detect.Probe{}) {
					t.Fatalf("Decode = %v: %+v", ok, p)
				}
				if s.Packets != 1 || s.Malformed != 1 || s.Ignored != 0 {
					t.Errorf("stats %+v, want one malformed", s)
				}
			})
		}
	}
	t.Run("sizes announcing more than the frame holds", func(t *testing.T) {
		b := append([]byte(nil), body...)
		b[4] = 200 // hlen: 8+400+8 bytes
		ok, p, s := decodeOne(t, layers.LinkTypeLinuxSLL2, neighLinks[3].wrap(t, etherTypeARP, b))
		if ok || s.Malformed != 1 {
			t.Errorf("Decode = %v %+v, stats %+v", ok, p, s)
		}
	})
}

// TestReplayARP: a replay reads through ARP, truncated or not, without
// an error, and reports the bindings among its probes.
func TestReplayARP(t *testing.T) {
	body := arpBody(t, arpLayer(layers.ARPReply, macC, v4B, v4A))
	syn := withEth(t, ip4TCP(t, v4A, v4B, 40000, 22, detect.FlagSYN, nil))
	recs := []record{
		{tBase, arpEth(t, arpLayer(layers.ARPRequest, macC, v4A, v4B))[:14+12]},  // truncated
		{tBase, arpEth(t, arpLayer(layers.ARPRequest, macC, net.IPv4zero, v4B))}, // ARP probe
		{tBase, neighLinks[0].wrap(t, etherTypeARP, body)},
		{tBase, syn},
	}
	path := filepath.Join(t.TempDir(), "arp.pcap")
	writePcap(t, path, layers.LinkTypeEthernet, false, recs)
	got, s, err := readAll(t, path)
	if err != nil {
		t.Fatalf("replay stopped: %v", err)
	}
	if len(got) != 2 || got[0].Kind != detect.KindNeigh || got[0].Src != addr(v4B) || got[0].SrcMAC != [6]byte(macC) ||
		got[1].Kind != detect.KindTCP {
		t.Fatalf("probes %+v", got)
	}
	if st := s.Stats(); st.Packets != 4 || st.Malformed != 1 || st.Ignored != 1 || st.Decoded != 2 {
		t.Errorf("stats %+v", st)
	}
}

// NDP: neighbour solicitations and advertisements.

// ndpHop is the hop limit of a genuine NDP message.
const ndpHop = 255

var (
	v6Target    = net.ParseIP("fd00:77::203")
	v6AllNodes  = net.ParseIP("ff02::1")
	v6Solicited = net.ParseIP("ff02::1:ff00:203") // v6Target's solicited-node group
	v6LinkLocal = net.ParseIP("fe80::42:acff:fe11:7")
)

// nsPacket is an IPv6 neighbour solicitation (hop limit hop) from src to
// dst about target, with the given options; written by gopacket.
func nsPacket(tb testing.TB, src, dst, target net.IP, hop uint8, opts ...layers.ICMPv6Option) []byte {
	ip := ip6Layer(src, dst, layers.IPProtocolICMPv6)
	ip.HopLimit = hop
	return serialize(tb, ip, &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)},
		&layers.ICMPv6NeighborSolicitation{TargetAddress: target, Options: opts})
}

// naPacket is an IPv6 neighbour advertisement (solicited, override) from
// src to dst for target, with the given options; written by gopacket.
func naPacket(tb testing.TB, src, dst, target net.IP, hop uint8, opts ...layers.ICMPv6Option) []byte {
	ip := ip6Layer(src, dst, layers.IPProtocolICMPv6)
	ip.HopLimit = hop
	return serialize(tb, ip, &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0)},
		&layers.ICMPv6NeighborAdvertisement{Flags: 0x60, TargetAddress: target, Options: opts})
}

// ndpRaw is an ICMPv6 NDP message of type typ built by hand: the 4
// reserved (or flag) bytes, target, then opts as given (gopacket writes
// several options in reverse order and cannot write broken ones).
func ndpRaw(tb testing.TB, typ uint8, src, dst, target net.IP, hop uint8, opts []byte) []byte {
	ip := ip6Layer(src, dst, layers.IPProtocolICMPv6)
	ip.HopLimit = hop
	body := append(append(make([]byte, 4), target.To16()...), opts...)
	return serialize(tb, ip, &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}, gopacket.Payload(body))
}

func slla(mac net.HardwareAddr) layers.ICMPv6Option {
	return layers.ICMPv6Option{Type: layers.ICMPv6OptSourceAddress, Data: mac}
}

func tlla(mac net.HardwareAddr) layers.ICMPv6Option {
	return layers.ICMPv6Option{Type: layers.ICMPv6OptTargetAddress, Data: mac}
}

// TestDecodeNDP: solicitations with a source link-layer address option
// and advertisements with a target link-layer address option, on every
// link, bind the address to the option's link-layer address.
func TestDecodeNDP(t *testing.T) {
	ns := nsPacket(t, v6A, v6Solicited, v6Target, ndpHop, slla(macC))
	nsLL := nsPacket(t, v6LinkLocal, v6Solicited, v6Target, ndpHop, slla(macC))
	na := naPacket(t, v6Target, v6A, v6Target, ndpHop, tlla(macC))
	unsolicited := naPacket(t, v6Target, v6AllNodes, v6Target, ndpHop, tlla(macC))
	// An advertisement for another address of the sender (proxy NDP):
	// the target is what gets bound, not the IPv6 source.
	proxy := naPacket(t, v6B, v6A, v6Target, ndpHop, tlla(macC))
	// A nonce option (type 14, RFC 3971) before the address option.
	nonce := ndpRaw(t, 135, v6A, v6Solicited, v6Target, ndpHop,
		[]byte{14, 1, 1, 2, 3, 4, 5, 6, 1, 1, 0x02, 0x42, 0xac, 0x11, 0x00, 0x07})
	// Two address options: the first counts.
	twoOpts := ndpRaw(t, 136, v6Target, v6A, v6Target, ndpHop,
		[]byte{2, 1, 0x02, 0x42, 0xac, 0x11, 0x00, 0x07, 2, 1, 0x02, 0, 0, 0, 0, 0x99})
	// A source option in an advertisement is not its target's address:
	// the target option after it counts.
	naBoth := ndpRaw(t, 136, v6Target, v6A, v6Target, ndpHop,
		[]byte{1, 1, 0x02, 0, 0, 0, 0, 0x99, 2, 1, 0x02, 0x42, 0xac, 0x11, 0x00, 0x07})

	cases := []struct {
		name string
		pkt  []byte
		want detect.Probe
	}{
		{"ns", ns, neighProbe(addr(v6A), addr(v6Target), macC, ndpHop)},
		{"ns from link-local", nsLL, neighProbe(addr(v6LinkLocal), addr(v6Target), macC, ndpHop)},
		{"na", na, neighProbe(addr(v6Target), addr(v6A), macC, ndpHop)},
		{"unsolicited na", unsolicited, neighProbe(addr(v6Target), addr(v6AllNodes), macC, ndpHop)},
		{"proxy na", proxy, neighProbe(addr(v6Target), addr(v6A), macC, ndpHop)},
		{"ns nonce first", nonce, neighProbe(addr(v6A), addr(v6Target), macC, ndpHop)},
		{"na two options", twoOpts, neighProbe(addr(v6Target), addr(v6A), macC, ndpHop)},
		{"na source then target option", naBoth, neighProbe(addr(v6Target), addr(v6A), macC, ndpHop)},
	}
	links := []struct {
		name string
		link layers.LinkType
		wrap func([]byte) []byte
	}{
		{"ethernet", layers.LinkTypeEthernet, func(b []byte) []byte { return withEth(t, b) }},
		{"802.1Q", layers.LinkTypeEthernet, func(b []byte) []byte { return withVLAN(t, b) }},
		{"sll", layers.LinkTypeLinuxSLL, withSLL},
		{"sll2", layers.LinkTypeLinuxSLL2, withSLL2},
		// No frame address, but the message gives one.
		{"raw", layers.LinkTypeRaw, func(b []byte) []byte { return b }},
	}
	for _, l := range links {
		for _, c := range cases {
			t.Run(l.name+" "+c.name, func(t *testing.T) {
				ok, p, s := decodeOne(t, l.link, l.wrap(c.pkt))
				if !ok {
					t.Fatalf("Decode = false, stats %+v", s)
				}
				if p != c.want {
					t.Errorf("probe\n got %+v\nwant %+v", p, c.want)
				}
				if s.Packets != 1 || s.Decoded != 1 {
					t.Errorf("stats %+v", s)
				}
			})
		}
	}
}

// TestDecodeNDPSkips: NDP that binds nothing, or that a router forwarded
// (or someone off-link forged), is ignored; a broken one is malformed.
func TestDecodeNDPSkips(t *testing.T) {
	cases := []struct {
		name      string
		pkt       []byte
		malformed bool
	}{
		{"ns without slla", nsPacket(t, v6A, v6Target, v6Target, ndpHop), false},
		{"ns with tlla only", nsPacket(t, v6A, v6Target, v6Target, ndpHop, tlla(macC)), false},
		{"ns dad from ::", nsPacket(t, net.IPv6unspecified, v6Solicited, v6Target, ndpHop, slla(macC)), false},
		{"ns hop limit 64", nsPacket(t, v6A, v6Solicited, v6Target, 64, slla(macC)), false},
		{"ns hop limit 254", nsPacket(t, v6A, v6Solicited, v6Target, 254, slla(macC)), false},
		{"ns zero mac", nsPacket(t, v6A, v6Solicited, v6Target, ndpHop, slla(macZero)), false},
		{"ns multicast mac", nsPacket(t, v6A, v6Solicited, v6Target, ndpHop, slla(macIPv6Mcast)), false},
		{"ns multicast target", nsPacket(t, v6A, v6AllNodes, v6AllNodes, ndpHop, slla(macC)), false},
		{"ns slla of length 2 (not ethernet)", ndpRaw(t, 135, v6A, v6Solicited, v6Target, ndpHop,
			[]byte{1, 2, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0}), false},
		{"ns code 1", func() []byte {
			b := nsPacket(t, v6A, v6Solicited, v6Target, ndpHop, slla(macC))
			b[41] = 1
			return b
		}(), false},
		{"na without tlla", naPacket(t, v6Target, v6A, v6Target, ndpHop), false},
		{"na with slla only", naPacket(t, v6Target, v6A, v6Target, ndpHop, slla(macC)), false},
		{"na hop limit 64", naPacket(t, v6Target, v6A, v6Target, 64, tlla(macC)), false},
		{"na broadcast mac", naPacket(t, v6Target, v6A, v6Target, ndpHop, tlla(macBroadcast)), false},
		{"na multicast target", naPacket(t, v6Target, v6A, v6AllNodes, ndpHop, tlla(macC)), false},
		{"ns ipv4-mapped target", nsPacket(t, v6A, v6Solicited, net.ParseIP("::ffff:198.51.100.9").To16(), ndpHop, slla(macC)), false},
		{"na ipv4-mapped target", naPacket(t, v6A, v6AllNodes, net.ParseIP("::ffff:198.51.100.9").To16(), ndpHop, tlla(macC)), false},
		{"na unspecified target", naPacket(t, v6A, v6AllNodes, net.IPv6unspecified, ndpHop, tlla(macC)), false},
		{"router solicitation", ndpRaw(t, 133, v6A, v6AllNodes, nil, ndpHop, nil), false},
		{"ns cut before the target's end", nsPacket(t, v6A, v6Solicited, v6Target, ndpHop, slla(macC))[:40+4+19], true},
		{"ns option of length 0", ndpRaw(t, 135, v6A, v6Solicited, v6Target, ndpHop,
			[]byte{1, 1, 0x02, 0x42, 0xac, 0x11, 0x00, 0x07, 14, 0, 0, 0, 0, 0, 0, 0}), true},
		{"na option past the end", ndpRaw(t, 136, v6Target, v6A, v6Target, ndpHop,
			[]byte{2, 1, 0x02, 0x42, 0xac, 0x11, 0x00, 0x07, 14, 2, 0, 0, 0, 0, 0, 0}), true},
		{"na option cut by the snap length", naPacket(t, v6Target, v6A, v6Target, ndpHop, tlla(macC))[:40+4+20+5], true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ok, p, s := decodeOne(t, layers.LinkTypeEthernet, withEth(t, c.pkt))
			if ok {
				t.Fatalf("Decode = true: %+v", p)
			}
			if p != (detect.Probe{}) {
				t.Errorf("probe not cleared: %+v", p)
			}
			if c.malformed && (s.Malformed != 1 || s.Ignored != 0) || !c.malformed && (s.Ignored != 1 || s.Malformed != 0) {
				t.Errorf("stats %+v, want malformed=%v", s, c.malformed)
			}
		})
	}

	t.Run("tunnelled", func(t *testing.T) {
		// An advertisement with hop limit 255 inside a tunnel packet that
		// crossed routers (6in4, IPv6 in IPv6): anyone could have sent
		// it, so it binds nothing.
		na := naPacket(t, v6Target, v6A, v6Target, ndpHop, tlla(macC))
		out4 := ip4Layer(v4A, v4B, layers.IPProtocolIPv6)
		out4.TTL = 40
		out6 := ip6Layer(v6B, v6A, layers.IPProtocolIPv6)
		out6.HopLimit = 40
		for name, outer := range map[string]gopacket.SerializableLayer{"6in4": out4, "6in6": out6} {
			ok, p, s := decodeOne(t, layers.LinkTypeEthernet, withEth(t, serialize(t, outer, gopacket.Payload(na))))
			if ok || s.Ignored != 1 {
				t.Errorf("%s: Decode = %v %+v, stats %+v", name, ok, p, s)
			}
		}
	})

	t.Run("icmpv6 over ipv4", func(t *testing.T) {
		// Protocol 58 in an IPv4 header: no hop limit, no NDP.
		ns := nsPacket(t, v6A, v6Solicited, v6Target, ndpHop, slla(macC))
		pkt := serialize(t, ip4Layer(v4A, v4B, layers.IPProtocolICMPv6), gopacket.Payload(ns[40:]))
		ok, p, s := decodeOne(t, layers.LinkTypeRaw, withTTL(pkt, 255))
		if ok || s.Ignored != 1 {
			t.Errorf("Decode = %v %+v, stats %+v", ok, p, s)
		}
	})
}

// TestNDLinkAddr: ndLinkAddr's walk of an option list, on its own.
func TestNDLinkAddr(t *testing.T) {
	mac := []byte{0x02, 0x42, 0xac, 0x11, 0x00, 0x07}
	opt := func(typ, n uint8, data ...byte) []byte {
		b := append([]byte{typ, n}, data...)
		return append(b, make([]byte, int(n)*8-len(b))...)
	}
	cases := []struct {
		name    string
		opts    []byte
		want    []byte
		wantOK  bool
		wantTyp uint8
	}{
		{"empty", nil, nil, true, 1},
		{"slla", opt(1, 1, mac...), mac, true, 1},
		{"slla wanted tlla", opt(1, 1, mac...), nil, true, 2},
		{"after a long option", append(opt(14, 3), opt(2, 1, mac...)...), mac, true, 2},
		{"length 2 skipped", opt(1, 2, mac...), nil, true, 1},
		{"zero length", []byte{1, 0, 1, 2, 3, 4, 5, 6}, nil, false, 1},
		{"zero length after the address", append(opt(1, 1, mac...), 3, 0), nil, false, 1},
		{"one byte left", append(opt(1, 1, mac...), 3), nil, false, 1},
		{"past the end", opt(1, 1, mac...)[:7], nil, false, 1},
	}
	for _, c := range cases {
		got, ok := ndLinkAddr(c.opts, c.wantTyp)
		if ok != c.wantOK || string(got) != string(c.want) {
			t.Errorf("%s: ndLinkAddr(% x, %d) = % x, %v; want % x, %v", c.name, c.opts, c.wantTyp, got, ok, c.want, c.wantOK)
		}
	}
}

// TestDecodeNeighAllocs: neighbour messages, bound or skipped, allocate
// nothing, and neither do truncated ones.
func TestDecodeNeighAllocs(t *testing.T) {
	arpReq := arpEth(t, arpLayer(layers.ARPRequest, macC, v4A, v4B))
	arpVLAN := neighLinks[1].wrap(t, etherTypeARP, arpBody(t, arpLayer(layers.ARPReply, macC, v4A, v4B)))
	arpSLL2 := neighLinks[3].wrap(t, etherTypeARP, arpBody(t, arpLayer(layers.ARPReply, macC, v4A, v4B)))
	ns := withEth(t, nsPacket(t, v6A, v6Solicited, v6Target, ndpHop, slla(macC)))
	na := withSLL(naPacket(t, v6Target, v6A, v6Target, ndpHop, tlla(macC)))
	skipped := [][]byte{
		arpEth(t, arpLayer(layers.ARPRequest, macC, net.IPv4zero, v4B)),
		withEth(t, nsPacket(t, v6A, v6Solicited, v6Target, 64, slla(macC))),
		withEth(t, nsPacket(t, v6A, v6Solicited, v6Target, ndpHop)),
	}
	malformed := [][]byte{
		arpReq[:14+20],
		arpReq[:14],
		withEth(t, ndpRaw(t, 136, v6Target, v6A, v6Target, ndpHop, []byte{2, 0, 0, 0, 0, 0, 0, 0})),
	}
	for _, c := range []struct {
		name  string
		link  layers.LinkType
		pkts  [][]byte
		probe bool
	}{
		{"arp ethernet", layers.LinkTypeEthernet, [][]byte{arpReq}, true},
		{"arp 802.1Q", layers.LinkTypeEthernet, [][]byte{arpVLAN}, true},
		{"arp sll2", layers.LinkTypeLinuxSLL2, [][]byte{arpSLL2}, true},
		{"ns", layers.LinkTypeEthernet, [][]byte{ns}, true},
		{"na sll", layers.LinkTypeLinuxSLL, [][]byte{na}, true},
		{"skipped", layers.LinkTypeEthernet, skipped, false},
		{"malformed", layers.LinkTypeEthernet, malformed, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := mustDecoder(t, c.link)
			var p detect.Probe
			n := 0
			allocs := testing.AllocsPerRun(200, func() {
				for _, pkt := range c.pkts {
					if d.Decode(pkt, ts0, &p) {
						n++
					}
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per run", allocs)
			}
			if c.probe && n != 201*len(c.pkts) || !c.probe && n != 0 {
				t.Errorf("%d probes in 201 runs, stats %+v", n, d.Stats())
			}
		})
	}
}
