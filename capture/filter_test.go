package capture

import (
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"

	"github.com/scanwarden/scanwarden/detect"
)

func compile(t *testing.T, link layers.LinkType, expr string) *pcap.BPF {
	t.Helper()
	bpf, err := pcap.NewBPF(link, 65535, expr)
	if err != nil {
		t.Fatalf("compile %q for %v: %v", expr, link, err)
	}
	return bpf
}

func TestFilterCompiles(t *testing.T) {
	for _, opt := range []FilterOptions{{TCP: true, UDP: true}, {TCP: true}, {UDP: true}, {}} {
		expr := Filter(opt)
		for _, link := range []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2,
			layers.LinkTypeNull, layers.LinkTypeLoop, linkTypeRawDLT12} {
			compile(t, link, expr)
		}
	}
	if Filter(FilterOptions{}) != Filter(FilterOptions{TCP: true, UDP: true}) {
		t.Error("no protocol should mean both")
	}
	if strings.Contains(Filter(FilterOptions{UDP: true}), "tcp[13]") || strings.Contains(Filter(FilterOptions{TCP: true}), "udp") {
		t.Error("a disabled protocol's part is still in the filter")
	}
}

func TestFilterMatches(t *testing.T) {
	type pkt struct {
		name string
		ip   []byte // network-layer packet
		tcp  bool   // passes when TCP is watched
		udp  bool   // passes when UDP is watched
	}
	tcp4 := func(flags uint8, payload int) []byte {
		return serialize(t, ip4Layer(v4A, v4B, layers.IPProtocolTCP), tcpLayer(40000, 22, flags, nil), gopacket.Payload(make([]byte, payload)))
	}
	tcp6 := func(flags uint8, payload int) []byte {
		return serialize(t, ip6Layer(v6A, v6B, layers.IPProtocolTCP), tcpLayer(40000, 22, flags, nil), gopacket.Payload(make([]byte, payload)))
	}
	const (
		S = detect.FlagSYN
		F = detect.FlagFIN
		R = detect.FlagRST
		P = detect.FlagPSH
		A = detect.FlagACK
		U = detect.FlagURG
	)
	frags4 := fragment4(ip4TCP(t, v4A, v4B, 40000, 22, S, nmapSYNOpts), 8)
	frags6 := fragment6(ip6TCP(t, v6A, v6B, 40000, 22, S, nmapSYNOpts), 8, 3)
	udp4 := ip4UDP(t, v4A, v4B, 40000, 161, []byte("x"))
	udp6 := ip6UDP(t, v6A, v6B, 40000, 53, []byte("x"))
	pkts := []pkt{
		{"syn", tcp4(S, 0), true, false},
		{"fin", tcp4(F, 0), true, false},
		{"null", tcp4(0, 0), true, false},
		{"xmas", tcp4(F|P|U, 0), true, false},
		{"fin+ack", tcp4(F|A, 0), true, false},
		{"rst", tcp4(R, 0), true, false},
		{"rst+ack", tcp4(R|A, 0), true, false},
		{"syn+ack", tcp4(S|A, 0), true, false},
		{"psh only", tcp4(P, 10), true, false},
		{"pure ack", tcp4(A, 0), false, false},
		{"ack+psh with data", tcp4(A|P, 100), false, false},
		{"ack+urg", tcp4(A|U, 1), false, false},
		{"ipv6 syn", tcp6(S, 0), true, false},
		{"ipv6 null", tcp6(0, 0), true, false},
		{"ipv6 xmas", tcp6(F|P|U, 0), true, false},
		{"ipv6 rst+ack", tcp6(R|A, 0), true, false},
		{"ipv6 syn+ack", tcp6(S|A, 0), true, false},
		{"ipv6 pure ack", tcp6(A, 0), false, false},
		{"ipv6 ack+psh with data", tcp6(A|P, 100), false, false},
		{"ipv4 first fragment", frags4[0], true, true},
		{"ipv4 second fragment", frags4[1], true, true},
		{"ipv4 last fragment", frags4[2], true, true},
		{"ipv6 first fragment", frags6[0], true, true},
		{"ipv6 later fragment", frags6[1], true, true},
		{"udp", udp4, false, true},
		{"ipv6 udp", udp6, false, true},
		{"icmp echo", serialize(t, ip4Layer(v4A, v4B, layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}), false, false},
		{"icmp port unreachable", icmp4Unreach(t, v4B, v4A, 3, udp4), true, true},
		{"icmp admin prohibited", icmp4Unreach(t, v4B, v4A, 13, tcp4(S, 0)), true, true},
		{"icmpv6 echo", serialize(t, ip6Layer(v6A, v6B, layers.IPProtocolICMPv6), &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}, gopacket.Payload([]byte{0, 1, 0, 1})), false, false},
		{"icmpv6 neighbor solicitation", serialize(t, ip6Layer(v6A, v6B, layers.IPProtocolICMPv6), &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(135, 0)}, gopacket.Payload(make([]byte, 20))), false, false},
		{"icmpv6 port unreachable", icmp6Unreach(t, v6B, v6A, 4, udp6), true, true},
		{"ipv6 destination options", serialize(t, ip6Layer(v6A, v6B, layers.IPProtocolIPv6Destination), gopacket.Payload(append([]byte{6, 0, 1, 4, 0, 0, 0, 0}, tcp6(A, 0)[40:]...))), true, true},
		{"gre", serialize(t, ip4Layer(v4A, v4B, layers.IPProtocolGRE), gopacket.Payload(make([]byte, 8))), false, false},
	}
	arp := serialize(t, eth(layers.EthernetTypeARP), &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: 1, SourceHwAddress: macA, SourceProtAddress: v4A, DstHwAddress: make([]byte, 6), DstProtAddress: v4B})

	for _, opt := range []FilterOptions{{TCP: true, UDP: true}, {TCP: true}, {UDP: true}} {
		expr := Filter(opt)
		for _, lk := range []struct {
			link layers.LinkType
			wrap func([]byte) []byte
		}{
			{layers.LinkTypeEthernet, func(b []byte) []byte { return withEth(t, b) }},
			{layers.LinkTypeLinuxSLL, withSLL},
			{linkTypeRawDLT12, func(b []byte) []byte { return b }},
		} {
			bpf := compile(t, lk.link, expr)
			for _, p := range pkts {
				data := lk.wrap(p.ip)
				ci := gopacket.CaptureInfo{CaptureLength: len(data), Length: len(data)}
				want := opt.TCP && p.tcp || opt.UDP && p.udp
				if got := bpf.Matches(ci, data); got != want {
					t.Errorf("%+v on %v: %s: passes=%v, want %v", opt, lk.link, p.name, got, want)
				}
			}
			if lk.link == layers.LinkTypeEthernet {
				if bpf.Matches(gopacket.CaptureInfo{CaptureLength: len(arp), Length: len(arp)}, arp) {
					t.Errorf("%+v: ARP passes", opt)
				}
			}
		}
	}
}
