package capture

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/scanwarden/scanwarden/detect"
)

const ts0 = int64(1_700_000_000_123_456_789)

// mustDecoder returns a Decoder for link whose every Decode is checked
// against the parser path alone (see twinDecoder).
func mustDecoder(tb testing.TB, link layers.LinkType) *twinDecoder {
	tb.Helper()
	return &twinDecoder{Decoder: plainDecoder(tb, link), slow: slowDecoder(tb, link), scratch: plainDecoder(tb, link), tb: tb}
}

// plainDecoder returns a Decoder for link, as NewDecoder makes it.
func plainDecoder(tb testing.TB, link layers.LinkType) *Decoder {
	tb.Helper()
	d, err := NewDecoder(link)
	if err != nil {
		tb.Fatalf("NewDecoder(%v): %v", link, err)
	}
	return d
}

func tcpProbe(src, dst []byte, sport, dport uint16, flags uint8, stack bool) detect.Probe {
	return detect.Probe{TS: ts0, Src: addr(src), Dst: addr(dst), SrcPort: sport, DstPort: dport,
		Kind: detect.KindTCP, Proto: detect.ProtoTCP, Flags: flags, StackSYN: stack, TTL: testTTL,
		Seq: testSeq, Ack: testAckOf(flags)}
}

func udpProbe(src, dst []byte, sport, dport uint16) detect.Probe {
	return detect.Probe{TS: ts0, Src: addr(src), Dst: addr(dst), SrcPort: sport, DstPort: dport,
		Kind: detect.KindUDP, Proto: detect.ProtoUDP, TTL: testTTL}
}

func TestDecodeProbes(t *testing.T) {
	syn4 := ip4TCP(t, v4A, v4B, 40000, 22, detect.FlagSYN, nmapSYNOpts)
	syn6 := ip6TCP(t, v6A, v6B, 40000, 22, detect.FlagSYN, nmapSYNOpts)
	udp4 := ip4UDP(t, v4A, v4B, 5353, 161, []byte("probe"))
	udp6 := ip6UDP(t, v6A, v6B, 5353, 161, nil)
	wantSYN4 := tcpProbe(v4A, v4B, 40000, 22, detect.FlagSYN, false)
	wantSYN6 := tcpProbe(v6A, v6B, 40000, 22, detect.FlagSYN, false)
	wantUDP4 := udpProbe(v4A, v4B, 5353, 161)
	wantUDP6 := udpProbe(v6A, v6B, 5353, 161)

	cases := []struct {
		name string
		link layers.LinkType
		data []byte
		want detect.Probe
	}{
		{"eth ipv4 syn", layers.LinkTypeEthernet, withEth(t, syn4), wantSYN4},
		{"eth ipv6 syn", layers.LinkTypeEthernet, withEth(t, syn6), wantSYN6},
		{"eth ipv4 udp", layers.LinkTypeEthernet, withEth(t, udp4), wantUDP4},
		{"eth ipv6 udp", layers.LinkTypeEthernet, withEth(t, udp6), wantUDP6},
		{"vlan ipv4 syn", layers.LinkTypeEthernet, withVLAN(t, syn4), wantSYN4},
		{"vlan ipv6 udp", layers.LinkTypeEthernet, withVLAN(t, udp6), wantUDP6},
		{"sll ipv4 syn", layers.LinkTypeLinuxSLL, withSLL(syn4), wantSYN4},
		{"sll ipv6 udp", layers.LinkTypeLinuxSLL, withSLL(udp6), wantUDP6},
		{"sll2 ipv4 udp", layers.LinkTypeLinuxSLL2, withSLL2(udp4), wantUDP4},
		{"sll2 ipv6 syn", layers.LinkTypeLinuxSLL2, withSLL2(syn6), wantSYN6},
		{"null ipv4 syn", layers.LinkTypeNull, withNull(syn4), wantSYN4},
		{"null ipv6 syn", layers.LinkTypeNull, withNull(syn6), wantSYN6},
		{"loop ipv4 udp", layers.LinkTypeLoop, withLoop(udp4), wantUDP4},
		{"loop ipv6 udp", layers.LinkTypeLoop, withLoop(udp6), wantUDP6},
		{"raw101 ipv4", layers.LinkTypeRaw, syn4, wantSYN4},
		{"raw101 ipv6", layers.LinkTypeRaw, syn6, wantSYN6},
		{"raw12 ipv4", 12, udp4, wantUDP4},
		{"raw14 ipv6", 14, udp6, wantUDP6},
		{"ipv4 linktype", layers.LinkTypeIPv4, syn4, wantSYN4},
		{"ipv6 linktype", layers.LinkTypeIPv6, syn6, wantSYN6},
		{"linux connect syn", layers.LinkTypeRaw, ip4TCP(t, v4A, v4B, 40001, 80, detect.FlagSYN, linuxSYNOpts),
			tcpProbe(v4A, v4B, 40001, 80, detect.FlagSYN, true)},
		{"syn-ack with stack options is not StackSYN", layers.LinkTypeRaw,
			ip4TCP(t, v4B, v4A, 80, 40001, detect.FlagSYN|detect.FlagACK, linuxSYNOpts),
			tcpProbe(v4B, v4A, 80, 40001, detect.FlagSYN|detect.FlagACK, false)},
		{"xmas", layers.LinkTypeRaw, ip4TCP(t, v4A, v4B, 1, 2, detect.FlagFIN|detect.FlagPSH|detect.FlagURG, nil),
			tcpProbe(v4A, v4B, 1, 2, detect.FlagFIN|detect.FlagPSH|detect.FlagURG, false)},
		{"null scan", layers.LinkTypeRaw, ip6TCP(t, v6A, v6B, 1, 2, 0, nil), tcpProbe(v6A, v6B, 1, 2, 0, false)},
		{"all flags incl. ECE CWR", layers.LinkTypeRaw, ip4TCP(t, v4A, v4B, 1, 2, 0xff, nil), tcpProbe(v4A, v4B, 1, 2, 0xff, false)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := mustDecoder(t, c.link)
			var p detect.Probe
			if !d.Decode(c.data, ts0, &p) {
				t.Fatalf("Decode = false, stats %+v", d.Stats())
			}
			if want := onLink(c.want, c.link); p != want {
				t.Errorf("probe\n got %+v\nwant %+v", p, want)
			}
			if s := d.Stats(); s.Packets != 1 || s.Decoded != 1 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

func TestDecodeSkips(t *testing.T) {
	syn4 := ip4TCP(t, v4A, v4B, 40000, 22, detect.FlagSYN, nil)
	// An ARP probe (RFC 5227): it binds no address (see neigh_test.go for
	// the ARP that does).
	arp := serialize(t, eth(layers.EthernetTypeARP), &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: 1, SourceHwAddress: macA, SourceProtAddress: []byte{0, 0, 0, 0}, DstHwAddress: make([]byte, 6), DstProtAddress: v4B})
	echo4 := serialize(t, eth(layers.EthernetTypeIPv4), ip4Layer(v4A, v4B, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 1})
	echo6 := serialize(t, eth(layers.EthernetTypeIPv6), ip6Layer(v6A, v6B, layers.IPProtocolICMPv6),
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}, gopacket.Payload([]byte{0, 1, 0, 1}))
	gre := serialize(t, eth(layers.EthernetTypeIPv4), ip4Layer(v4A, v4B, layers.IPProtocolGRE), gopacket.Payload(make([]byte, 8)))
	sctp := serialize(t, ip6Layer(v6A, v6B, layers.IPProtocolSCTP), gopacket.Payload(make([]byte, 12)))
	// ICMP unreachable quoting ICMP (not TCP/UDP): no probe.
	unreachICMP := icmp4Unreach(t, v4B, v4A, 3, serialize(t, ip4Layer(v4A, v4B, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}))
	// MLD report: IPv6 hop-by-hop header (router alert) then ICMPv6 143.
	mld := append([]byte(nil), serialize(t, ip6Layer(v6A, v6B, 0), gopacket.Payload(append(
		[]byte{58, 0, 5, 2, 0, 0, 1, 0}, // hop-by-hop: next ICMPv6, router alert, PadN
		143, 0, 0, 0, 0, 0, 0, 0)))...)

	shortTCP := syn4[:30] // IP header says 44 bytes, TCP header cut at 10
	badVersion := append([]byte(nil), syn4...)
	badVersion[0] = 0x55

	cases := []struct {
		name      string
		link      layers.LinkType
		data      []byte
		malformed bool
	}{
		{"arp probe", layers.LinkTypeEthernet, arp, false},
		{"icmp echo", layers.LinkTypeEthernet, echo4, false},
		{"icmpv6 echo", layers.LinkTypeEthernet, echo6, false},
		{"gre", layers.LinkTypeEthernet, gre, false},
		{"sctp", layers.LinkTypeRaw, sctp, false},
		{"unreachable quoting icmp", layers.LinkTypeRaw, unreachICMP, false},
		{"mld with hop-by-hop", layers.LinkTypeRaw, mld, false},
		{"empty", layers.LinkTypeEthernet, nil, true},
		{"short ethernet", layers.LinkTypeEthernet, []byte{1, 2, 3}, true},
		{"truncated tcp", layers.LinkTypeRaw, shortTCP, true},
		{"ip version 5", layers.LinkTypeIPv4, badVersion, true},
		{"short sll2", layers.LinkTypeLinuxSLL2, make([]byte, 10), true},
		{"truncated ipv6", layers.LinkTypeRaw, ip6TCP(t, v6A, v6B, 1, 2, 2, nil)[:30], true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := mustDecoder(t, c.link)
			p := detect.Probe{TS: 99, Kind: detect.KindTCP} // must be cleared
			if d.Decode(c.data, ts0, &p) {
				t.Fatalf("Decode = true: %+v", p)
			}
			if p != (detect.Probe{}) {
				t.Errorf("probe not cleared: %+v", p)
			}
			s := d.Stats()
			if c.malformed && s.Malformed != 1 || !c.malformed && s.Ignored != 1 {
				t.Errorf("stats %+v, want malformed=%v", s, c.malformed)
			}
		})
	}
}

func TestDecodeUnreachable(t *testing.T) {
	// The prober (A) sent these; the probed host (B) answers unreachable.
	udp4 := ip4UDP(t, v4A, v4B, 40000, 161, []byte("snmp?"))
	syn4 := ip4TCP(t, v4A, v4B, 40001, 23, detect.FlagSYN, nmapSYNOpts)
	udp6 := ip6UDP(t, v6A, v6B, 40002, 53, []byte("dns?"))
	syn6 := ip6TCP(t, v6A, v6B, 40003, 443, detect.FlagSYN, nil)
	// An IPv6 probe carrying a destination-options header.
	dst6 := serialize(t, ip6Layer(v6A, v6B, layers.IPProtocolIPv6Destination),
		gopacket.Payload(append([]byte{17, 0, 1, 4, 0, 0, 0, 0}, // dest opts: next UDP, PadN
			0x9c, 0x44, 0x00, 0x35, 0, 8, 0, 0)))

	want := func(src, dst []byte, sport, dport uint16, proto, code uint8) detect.Probe {
		return detect.Probe{TS: ts0, Src: addr(src), Dst: addr(dst), SrcPort: sport, DstPort: dport,
			Kind: detect.KindUnreach, Proto: proto, Code: code, TTL: testTTL}
	}
	cases := []struct {
		name string
		data []byte
		want detect.Probe
	}{
		{"icmp port unreachable", withEth(t, icmp4Unreach(t, v4B, v4A, 3, udp4)), want(v4B, v4A, 161, 40000, detect.ProtoUDP, 3)},
		{"icmp admin prohibited tcp", withEth(t, icmp4Unreach(t, v4B, v4A, 13, syn4)), want(v4B, v4A, 23, 40001, detect.ProtoTCP, 13)},
		{"icmp quoting only 8 bytes of udp", withEth(t, icmp4Unreach(t, v4B, v4A, 3, udp4[:28])), want(v4B, v4A, 161, 40000, detect.ProtoUDP, 3)},
		{"icmpv6 port unreachable", withEth(t, icmp6Unreach(t, v6B, v6A, 4, udp6)), want(v6B, v6A, 53, 40002, detect.ProtoUDP, 4)},
		{"icmpv6 admin prohibited tcp", withEth(t, icmp6Unreach(t, v6B, v6A, 1, syn6)), want(v6B, v6A, 443, 40003, detect.ProtoTCP, 1)},
		{"icmpv6 quoting extension header", withEth(t, icmp6Unreach(t, v6B, v6A, 4, dst6)), want(v6B, v6A, 53, 40004, detect.ProtoUDP, 4)},
		{"icmpv6 in sll2", withSLL2(icmp6Unreach(t, v6B, v6A, 4, udp6)), want(v6B, v6A, 53, 40002, detect.ProtoUDP, 4)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			link := layers.LinkTypeEthernet
			if strings.Contains(c.name, "sll2") {
				link = layers.LinkTypeLinuxSLL2
			}
			d := mustDecoder(t, link)
			var p detect.Probe
			if !d.Decode(c.data, ts0, &p) {
				t.Fatalf("Decode = false, stats %+v", d.Stats())
			}
			if want := onLink(c.want, link); p != want {
				t.Errorf("probe\n got %+v\nwant %+v", p, want)
			}
		})
	}

	t.Run("quote too short for ports", func(t *testing.T) {
		pkt := icmp4Unreach(t, v4B, v4A, 3, udp4[:22])
		d := mustDecoder(t, layers.LinkTypeRaw)
		var p detect.Probe
		if d.Decode(pkt, ts0, &p) || d.Stats().Malformed != 1 {
			t.Errorf("decoded %+v, stats %+v", p, d.Stats())
		}
	})
	t.Run("quote of a non-first fragment", func(t *testing.T) {
		frags := fragment4(udp4, 8)
		pkt := icmp4Unreach(t, v4B, v4A, 3, frags[1])
		d := mustDecoder(t, layers.LinkTypeRaw)
		var p detect.Probe
		if d.Decode(pkt, ts0, &p) || d.Stats().Ignored != 1 {
			t.Errorf("decoded %+v, stats %+v", p, d.Stats())
		}
	})
}

func TestNewDecoderUnsupported(t *testing.T) {
	_, err := NewDecoder(layers.LinkTypeIEEE802_11)
	if err == nil || !strings.Contains(err.Error(), "unsupported link type") || !strings.Contains(err.Error(), "(105)") {
		t.Fatalf("err = %v", err)
	}
	_, err = NewDecoder(layers.LinkType(4242))
	if err == nil || !strings.Contains(err.Error(), "4242") {
		t.Fatalf("err = %v", err)
	}
}

func TestStackOptions(t *testing.T) {
	cases := []struct {
		opts []byte
		want bool
	}{
		{nil, false},
		{[]byte{2, 4, 5, 0xb4}, false},                      // MSS only (nmap -sS)
		{[]byte{2, 4, 5, 0xb4, 4, 2}, true},                 // + SACK-permitted
		{[]byte{1, 1, 3, 3, 7, 0}, true},                    // NOP NOP WS
		{[]byte{1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0}, true}, // timestamps
		{[]byte{2, 4, 5, 0xb4, 0, 4, 2}, false},             // SACK after end of list
		{[]byte{2, 0, 4, 2}, false},                         // zero length: malformed
		{[]byte{2, 40, 4, 2}, false},                        // length past the end
		{[]byte{30, 4, 0, 0, 4}, true},                      // MPTCP then a truncated SACK-permitted kind byte
	}
	for _, c := range cases {
		if got := stackOptions(c.opts); got != c.want {
			t.Errorf("stackOptions(% x) = %v, want %v", c.opts, got, c.want)
		}
	}
}

// TestDecodeTunnel: an IPv6-in-IPv4 (6in4) probe is reported by its inner
// header, which is what the tunnel endpoint's stack sees.
func TestDecodeTunnel(t *testing.T) {
	inner := ip6TCP(t, v6A, v6B, 1000, 22, detect.FlagSYN, nil)
	outer := serialize(t, ip4Layer(v4A, v4B, layers.IPProtocolIPv6), gopacket.Payload(inner))
	d := mustDecoder(t, layers.LinkTypeRaw)
	var p detect.Probe
	if !d.Decode(outer, ts0, &p) {
		t.Fatal("not decoded")
	}
	if want := tcpProbe(v6A, v6B, 1000, 22, detect.FlagSYN, false); p != want {
		t.Errorf("got %+v want %+v", p, want)
	}
}

// TestDecodeTrailer: Ethernet padding after a short IPv4 packet and TCP
// options cut by the snap length.
func TestDecodeTrailerAndSnap(t *testing.T) {
	syn := withEth(t, ip4TCP(t, v4A, v4B, 1, 2, detect.FlagSYN, linuxSYNOpts))
	d := mustDecoder(t, layers.LinkTypeEthernet)
	var p detect.Probe
	cut := syn[:14+20+24] // options cut after MSS+SACKOK... partially
	if !d.Decode(cut, ts0, &p) || p.DstPort != 2 || p.Flags != detect.FlagSYN {
		t.Fatalf("cut SYN: %+v %+v", p, d.Stats())
	}
	padded := append(withEth(t, ip4UDP(t, v4A, v4B, 9, 10, nil)), bytes.Repeat([]byte{0xee}, 20)...)
	if !d.Decode(padded, ts0, &p) || p.DstPort != 10 {
		t.Fatalf("padded UDP: %+v", p)
	}
}

// TestDecodeAllocs asserts that the common paths allocate nothing.
func TestDecodeAllocs(t *testing.T) {
	syn4 := withEth(t, ip4TCP(t, v4A, v4B, 40000, 22, detect.FlagSYN, linuxSYNOpts))
	syn6 := withEth(t, ip6TCP(t, v6A, v6B, 40000, 22, detect.FlagSYN, nmapSYNOpts))
	udpSLL2 := withSLL2(ip6UDP(t, v6A, v6B, 40000, 53, []byte("x")))
	unreach := withEth(t, icmp4Unreach(t, v4B, v4A, 3, ip4UDP(t, v4A, v4B, 1, 2, nil)))
	unreach6 := withEth(t, icmp6Unreach(t, v6B, v6A, 4, ip6UDP(t, v6A, v6B, 1, 2, nil)))
	mld := serialize(t, ip6Layer(v6A, v6B, 0), gopacket.Payload([]byte{58, 0, 5, 2, 0, 0, 1, 0, 143, 0, 0, 0, 0, 0, 0, 0}))
	arp := withEth(t, []byte{0x45})[:14]
	udpLen3 := ip4UDP(t, v4A, v4B, 1, 2, nil)
	binary.BigEndian.PutUint16(udpLen3[20+4:], 3) // a UDP length field of 3
	var frags4, frags6 [][]byte
	for _, f := range fragment4(ip4TCP(t, v4A, v4B, 40000, 22, detect.FlagSYN, nmapSYNOpts), 8) {
		frags4 = append(frags4, withEth(t, f))
	}
	for _, f := range fragment6(ip6TCP(t, v6A, v6B, 40000, 22, detect.FlagSYN, nmapSYNOpts), 8, 77) {
		frags6 = append(frags6, withEth(t, f))
	}

	cases := []struct {
		name string
		link layers.LinkType
		pkts [][]byte
	}{
		{"ethernet ipv4 syn", layers.LinkTypeEthernet, [][]byte{syn4}},
		{"ethernet ipv6 syn", layers.LinkTypeEthernet, [][]byte{syn6}},
		{"sll2 udp", layers.LinkTypeLinuxSLL2, [][]byte{udpSLL2}},
		{"icmp unreachable", layers.LinkTypeEthernet, [][]byte{unreach}},
		{"icmpv6 unreachable", layers.LinkTypeEthernet, [][]byte{unreach6}},
		{"mld hop-by-hop", layers.LinkTypeRaw, [][]byte{mld}},
		{"ipv4 fragments", layers.LinkTypeEthernet, frags4},
		{"ipv6 fragments", layers.LinkTypeEthernet, frags6},
		{"malformed", layers.LinkTypeEthernet, [][]byte{arp, syn4[:40]}},
		// what gopacket's own layers would refuse with a new error each
		// time (see guard)
		{"malformed udp, icmp, ipv6 headers, 802.1Q", layers.LinkTypeEthernet, [][]byte{
			withEth(t, udpLen3),
			withEth(t, serialize(t, ip4Layer(v4A, v4B, layers.IPProtocolICMPv4), gopacket.Payload([]byte{3, 3, 0, 0}))),
			withEth(t, serialize(t, ip6Layer(v6A, v6B, layers.IPProtocolICMPv6), gopacket.Payload([]byte{1, 4}))),
			withEth(t, serialize(t, ip6Layer(v6A, v6B, ipProtoDestOpts), gopacket.Payload([]byte{6, 1, 0, 0, 0, 0, 0, 0}))),
			withEth(t, serialize(t, ip6Layer(v6A, v6B, ipProtoDestOpts), gopacket.Payload([]byte{6}))),
			withEth(t, serialize(t, ip6Layer(v6A, v6B, ipProtoFragment), gopacket.Payload([]byte{6, 0, 0}))),
			append(append(make([]byte, 12), 0x81, 0x00), 0, 1),
		}},
		{"malformed sll", layers.LinkTypeLinuxSLL, [][]byte{make([]byte, 10), append([]byte{0, 0, 0, 1, 0, 9}, make([]byte, 30)...)}},
		{"malformed sll2", layers.LinkTypeLinuxSLL2, [][]byte{make([]byte, 12), append(append(make([]byte, 11), 9), make([]byte, 30)...)}},
		{"malformed loopback", layers.LinkTypeNull, [][]byte{{2, 0}, {1, 2, 3, 4, 0x45, 0, 0, 20}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := mustDecoder(t, c.link)
			var p detect.Probe
			n, run := 0, int64(0)
			allocs := testing.AllocsPerRun(200, func() {
				// Each run is a fresh datagram: the previous run's
				// fragment slots have expired by then.
				run++
				for _, pkt := range c.pkts {
					if d.Decode(pkt, ts0+run*2*int64(FragTimeout), &p) {
						n++
					}
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per run", allocs)
			}
			if want := !strings.HasPrefix(c.name, "malformed") && c.name != "mld hop-by-hop"; want && n < 200 || !want && n != 0 {
				t.Errorf("%d probes decoded in 201 runs, stats %+v", n, d.Stats())
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	seed := func(link layers.LinkType, data []byte) { f.Add(uint16(link), data) }
	seed(layers.LinkTypeEthernet, withEth(f, ip4TCP(f, v4A, v4B, 1, 2, 2, linuxSYNOpts)))
	seed(layers.LinkTypeEthernet, withVLAN(f, ip6UDP(f, v6A, v6B, 1, 2, nil)))
	seed(layers.LinkTypeLinuxSLL2, withSLL2(icmp6Unreach(f, v6B, v6A, 4, ip6UDP(f, v6A, v6B, 1, 2, nil))))
	seed(layers.LinkTypeLinuxSLL, withSLL(icmp4Unreach(f, v4B, v4A, 3, ip4UDP(f, v4A, v4B, 1, 2, nil))))
	seed(layers.LinkTypeNull, withNull(ip6TCP(f, v6A, v6B, 1, 2, 0x29, nil)))
	for _, fr := range fragment4(ip4TCP(f, v4A, v4B, 1, 2, 2, nmapSYNOpts), 8) {
		seed(layers.LinkTypeRaw, fr)
	}
	for _, fr := range fragment6(ip6TCP(f, v6A, v6B, 1, 2, 2, nmapSYNOpts), 8, 5) {
		seed(layers.LinkTypeRaw, fr)
	}
	// Neighbour messages: ARP on Ethernet and SLL2, NDP on Ethernet and
	// 802.1Q.
	seed(layers.LinkTypeEthernet, arpEth(f, arpLayer(layers.ARPRequest, macC, v4A, v4B)))
	seed(layers.LinkTypeLinuxSLL2, neighLinks[3].wrap(f, etherTypeARP, arpBody(f, arpLayer(layers.ARPReply, macC, v4B, v4A))))
	seed(layers.LinkTypeEthernet, withEth(f, nsPacket(f, v6A, v6Solicited, v6Target, ndpHop, slla(macC))))
	seed(layers.LinkTypeEthernet, withVLAN(f, naPacket(f, v6Target, v6A, v6Target, ndpHop, tlla(macC))))
	decs := map[layers.LinkType]*Decoder{}
	f.Fuzz(func(t *testing.T, link uint16, data []byte) {
		lt := []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2,
			layers.LinkTypeNull, layers.LinkTypeLoop, layers.LinkTypeRaw}[int(link)%6]
		d := decs[lt]
		if d == nil {
			d = plainDecoder(t, lt)
			decs[lt] = d // kept across inputs: fragments accumulate in its table
		}
		var p detect.Probe
		before := d.Stats()
		ok := d.Decode(data, int64(len(data)), &p)
		after := d.Stats()
		if after.Packets != before.Packets+1 {
			t.Fatalf("Packets %d -> %d", before.Packets, after.Packets)
		}
		if ok {
			if p.Kind == detect.KindNone || !p.Src.IsValid() || !p.Dst.IsValid() {
				t.Fatalf("decoded an incomplete probe: %+v", p)
			}
			if after.Decoded != before.Decoded+1 {
				t.Fatalf("Decoded not counted")
			}
			if p.Kind != detect.KindTCP && (p.Seq != 0 || p.Ack != 0) {
				t.Fatalf("sequence numbers on a probe of kind %d: %+v", p.Kind, p)
			}
			if p.Kind == detect.KindNeigh {
				checkFuzzNeigh(t, lt, p)
				return
			}
			if p.Proto != detect.ProtoTCP && p.Proto != detect.ProtoUDP {
				t.Fatalf("proto %d", p.Proto)
			}
			noLink := lt == layers.LinkTypeNull || lt == layers.LinkTypeLoop || lt == layers.LinkTypeRaw
			if p.HasMAC && noLink || !p.HasMAC && p.SrcMAC != [6]byte{} {
				t.Fatalf("link source on link type %v: %+v", lt, p)
			}
		} else if p != (detect.Probe{}) {
			t.Fatalf("false with a probe left: %+v", p)
		}
	})
}

// checkFuzzNeigh checks what every neighbour probe guarantees: a unicast
// link-layer address, a specified source of one family with its
// destination, no transport fields, and a hop limit of 255 from NDP or
// none from ARP (which raw IP and loopback links cannot carry).
func checkFuzzNeigh(t *testing.T, lt layers.LinkType, p detect.Probe) {
	t.Helper()
	if !p.HasMAC || !unicastMAC(p.SrcMAC[:]) {
		t.Fatalf("neighbour without a unicast address: %+v", p)
	}
	if p.Src.IsUnspecified() || p.Src.Is4() != p.Dst.Is4() {
		t.Fatalf("neighbour addresses: %+v", p)
	}
	if p.Proto != 0 || p.SrcPort != 0 || p.DstPort != 0 || p.Flags != 0 || p.Code != 0 || p.StackSYN || p.Frag {
		t.Fatalf("neighbour with transport fields: %+v", p)
	}
	switch {
	case p.Src.Is4() && p.TTL != 0:
		t.Fatalf("ARP with a TTL: %+v", p)
	case p.Src.Is4() && (lt == layers.LinkTypeNull || lt == layers.LinkTypeLoop || lt == layers.LinkTypeRaw):
		t.Fatalf("ARP on link type %v: %+v", lt, p)
	case !p.Src.Is4() && p.TTL != ndpHopLimit:
		t.Fatalf("NDP with hop limit %d: %+v", p.TTL, p)
	}
}

func benchDecode(b *testing.B, link layers.LinkType, pkts ...[]byte) {
	d := plainDecoder(b, link)
	var p detect.Probe
	b.ReportAllocs()
	b.SetBytes(int64(len(pkts[0])))
	ok := 0
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if d.Decode(pkts[i%len(pkts)], ts0+int64(i), &p) {
			ok++
		}
	}
	if ok == 0 {
		b.Fatal("nothing decoded")
	}
}

func BenchmarkDecodeIPv4SYN(b *testing.B) {
	benchDecode(b, layers.LinkTypeEthernet, withEth(b, ip4TCP(b, v4A, v4B, 40000, 22, detect.FlagSYN, nmapSYNOpts)))
}

func BenchmarkDecodeIPv4StackSYN(b *testing.B) {
	benchDecode(b, layers.LinkTypeEthernet, withEth(b, ip4TCP(b, v4A, v4B, 40000, 22, detect.FlagSYN, linuxSYNOpts)))
}

func BenchmarkDecodeIPv6SYN(b *testing.B) {
	benchDecode(b, layers.LinkTypeEthernet, withEth(b, ip6TCP(b, v6A, v6B, 40000, 22, detect.FlagSYN, nmapSYNOpts)))
}

func BenchmarkDecodeSLL2UDP(b *testing.B) {
	benchDecode(b, layers.LinkTypeLinuxSLL2, withSLL2(ip4UDP(b, v4A, v4B, 40000, 161, []byte("public"))))
}

func BenchmarkDecodeUnreachable(b *testing.B) {
	benchDecode(b, layers.LinkTypeEthernet, withEth(b, icmp4Unreach(b, v4B, v4A, 3, ip4UDP(b, v4A, v4B, 1, 2, nil))))
}

// BenchmarkDecodeFragments decodes nmap -f SYNs: three 8-byte fragments
// per probe; one op is one fragment.
// Every probe gets a new IP id, so each one takes a slot and the table
// runs full of reported datagrams, as under a long fragmented scan.
func BenchmarkDecodeFragments(b *testing.B) {
	var pkts [][]byte
	for _, f := range fragment4(ip4TCP(b, v4A, v4B, 40000, 1000, detect.FlagSYN, nmapSYNOpts), 8) {
		pkts = append(pkts, withEth(b, f))
	}
	d := plainDecoder(b, layers.LinkTypeEthernet)
	var p detect.Probe
	b.ReportAllocs()
	ok, id := 0, 0
	for i := 0; b.Loop(); i++ {
		k := i % len(pkts)
		if k == 0 {
			id++
			for _, f := range pkts {
				f[14+4], f[14+5] = byte(id>>8), byte(id)
			}
		}
		if d.Decode(pkts[k], ts0+int64(i)*1000, &p) {
			ok++
		}
	}
	if ok < b.N/len(pkts)-1 {
		b.Fatalf("%d probes from %d fragments, stats %+v", ok, b.N, d.Stats())
	}
}
