package capture

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/scanwarden/scanwarden/detect"
)

// TCP sequence and acknowledgment numbers (detect.Probe's Seq and Ack).

// segment is a TCP segment's flags and numbers, as sent and as a probe
// must report them.
type segment struct {
	name     string
	flags    uint8
	seq, ack uint32
}

// handshake is the segments of a connection's life: the numbers differ
// in every byte, and some have the top bit set.
var handshake = []segment{
	{"syn", detect.FlagSYN, 0x01020304, 0},
	{"syn-ack", detect.FlagSYN | detect.FlagACK, 0xfedcba98, 0x01020305},
	{"fin-ack", detect.FlagFIN | detect.FlagACK, 0x01020305, 0xfedcba99},
	{"rst", detect.FlagRST, 0xfedcba99, 0},
	{"rst-ack", detect.FlagRST | detect.FlagACK, 0, 0x0a0b0c0d},
}

// segmentPkt is an IPv4 or IPv6 packet (v6) carrying s from A to B,
// written by gopacket.
func segmentPkt(tb testing.TB, s segment, v6 bool, opts []layers.TCPOption) []byte {
	tcp := tcpLayer(40000, 22, s.flags, opts)
	tcp.Seq, tcp.Ack = s.seq, s.ack
	if v6 {
		return serialize(tb, ip6Layer(v6A, v6B, layers.IPProtocolTCP), tcp)
	}
	return serialize(tb, ip4Layer(v4A, v4B, layers.IPProtocolTCP), tcp)
}

func checkSeqAck(t *testing.T, p detect.Probe, s segment) {
	t.Helper()
	if p.Kind != detect.KindTCP || p.Flags != s.flags || p.Seq != s.seq || p.Ack != s.ack {
		t.Errorf("kind %d flags %#x seq %#x ack %#x, want kind %d flags %#x seq %#x ack %#x",
			p.Kind, p.Flags, p.Seq, p.Ack, detect.KindTCP, s.flags, s.seq, s.ack)
	}
}

// TestDecodeSeqAck: every TCP probe carries its header's sequence and
// acknowledgment numbers, on every link, IPv4 and IPv6.
func TestDecodeSeqAck(t *testing.T) {
	links := []struct {
		name string
		link layers.LinkType
		wrap func([]byte) []byte
	}{
		{"ethernet", layers.LinkTypeEthernet, func(b []byte) []byte { return withEth(t, b) }},
		{"802.1Q", layers.LinkTypeEthernet, func(b []byte) []byte { return withVLAN(t, b) }},
		{"sll", layers.LinkTypeLinuxSLL, withSLL},
		{"sll2", layers.LinkTypeLinuxSLL2, withSLL2},
		{"raw", layers.LinkTypeRaw, func(b []byte) []byte { return b }},
	}
	for _, l := range links {
		for _, v6 := range []bool{false, true} {
			for _, s := range handshake {
				t.Run(fmt.Sprintf("%s ipv6=%v %s", l.name, v6, s.name), func(t *testing.T) {
					d := mustDecoder(t, l.link)
					var p detect.Probe
					if !d.Decode(l.wrap(segmentPkt(t, s, v6, nil)), ts0, &p) {
						t.Fatalf("not decoded, stats %+v", d.Stats())
					}
					checkSeqAck(t, p, s)
				})
			}
		}
	}

	t.Run("options cut by the snap length", func(t *testing.T) {
		s := handshake[1]
		pkt := withEth(t, segmentPkt(t, s, false, linuxSYNOpts))
		d := mustDecoder(t, layers.LinkTypeEthernet)
		var p detect.Probe
		if !d.Decode(pkt[:14+20+20], ts0, &p) {
			t.Fatalf("not decoded, stats %+v", d.Stats())
		}
		checkSeqAck(t, p, s)
	})
	t.Run("the inner header of a tunnel", func(t *testing.T) {
		s := handshake[2]
		pkt := serialize(t, ip4Layer(v4A, v4B, layers.IPProtocolIPv6), gopacket.Payload(segmentPkt(t, s, true, nil)))
		d := mustDecoder(t, layers.LinkTypeRaw)
		var p detect.Probe
		if !d.Decode(pkt, ts0, &p) {
			t.Fatalf("not decoded, stats %+v", d.Stats())
		}
		checkSeqAck(t, p, s)
	})
}

// TestDecodeSeqAckOtherKinds: only TCP probes carry numbers; nothing is
// left of a previous segment's, and an ICMP error quoting a TCP segment
// does not report the quoted numbers.
func TestDecodeSeqAckOtherKinds(t *testing.T) {
	synack := withEth(t, segmentPkt(t, handshake[1], false, nil))
	quoted := segmentPkt(t, handshake[0], false, nil)
	quoted6 := segmentPkt(t, handshake[0], true, nil)
	for _, c := range []struct {
		name string
		pkt  []byte
		kind uint8
	}{
		{"udp", withEth(t, ip4UDP(t, v4A, v4B, 1, 2, nil)), detect.KindUDP},
		{"icmp quoting tcp", withEth(t, icmp4Unreach(t, v4B, v4A, 13, quoted)), detect.KindUnreach},
		{"icmpv6 quoting tcp", withEth(t, icmp6Unreach(t, v6B, v6A, 1, quoted6)), detect.KindUnreach},
		{"arp", arpEth(t, arpLayer(layers.ARPReply, macC, v4A, v4B)), detect.KindNeigh},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := mustDecoder(t, layers.LinkTypeEthernet)
			var p detect.Probe
			if !d.Decode(synack, ts0, &p) || p.Seq == 0 || p.Ack == 0 {
				t.Fatalf("SYN-ACK first: %+v", p)
			}
			if !d.Decode(c.pkt, ts0, &p) || p.Kind != c.kind {
				t.Fatalf("not decoded as kind %d: %+v, stats %+v", c.kind, p, d.Stats())
			}
			if p.Seq != 0 || p.Ack != 0 {
				t.Errorf("kind %d with seq %#x ack %#x", p.Kind, p.Seq, p.Ack)
			}
		})
	}
}

// TestFragSeqAck: a TCP header reassembled from fragments reports the
// numbers of the reassembled header, however the fragments cut them and
// in whatever order they come; where fragments overlap, the first copy's.
func TestFragSeqAck(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, s := range handshake {
			for _, size := range []int{8, 16} {
				pkt := segmentPkt(t, s, v6, nmapSYNOpts) // 24-byte TCP header
				var frags [][]byte
				if v6 {
					frags = fragment6(pkt, size, 0xc0de)
				} else {
					frags = fragment4(pkt, size)
				}
				orders := [][]int{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}}
				if len(frags) == 2 {
					orders = [][]int{{0, 1}, {1, 0}}
				}
				for _, order := range orders {
					t.Run(fmt.Sprintf("ipv6=%v %s %d-byte fragments order %v", v6, s.name, size, order), func(t *testing.T) {
						d := mustDecoder(t, layers.LinkTypeEthernet)
						var pkts [][]byte
						for _, i := range order {
							pkts = append(pkts, withEth(t, frags[i]))
						}
						got := feed(d, pkts...)
						if len(got) != 1 || !got[0].Frag {
							t.Fatalf("got %+v, stats %+v", got, d.Stats())
						}
						checkSeqAck(t, got[0], s)
					})
				}
			}
		}
	}

	t.Run("overlap: the first copy wins", func(t *testing.T) {
		s := handshake[1]
		pkt := segmentPkt(t, s, false, nil) // 20-byte TCP header
		f := fragment4(pkt, 8)              // ports+seq, ack+flags, rest
		// A forged second fragment with other numbers, arriving after
		// the genuine one.
		evil := append([]byte(nil), pkt[20:]...)
		binary.BigEndian.PutUint32(evil[4:], 0x11111111)
		binary.BigEndian.PutUint32(evil[8:], 0x22222222)
		forged := ip4Frag(pkt[:20], 0, true, evil[:16])
		d := mustDecoder(t, layers.LinkTypeRaw)
		got := feed(d, f[1], forged, f[2])
		if len(got) != 1 {
			t.Fatalf("got %+v, stats %+v", got, d.Stats())
		}
		// Bytes 8-15 (ack) came first from f[1]; bytes 0-7 (seq) only
		// from the forgery.
		checkSeqAck(t, got[0], segment{s.name, s.flags, 0x11111111, s.ack})
	})
	t.Run("udp fragments carry none", func(t *testing.T) {
		d := mustDecoder(t, layers.LinkTypeRaw)
		got := feed(d, fragment4(ip4UDP(t, v4A, v4B, 1, 2, make([]byte, 40)), 8)...)
		if len(got) != 1 || got[0].Kind != detect.KindUDP || got[0].Seq != 0 || got[0].Ack != 0 {
			t.Fatalf("got %+v", got)
		}
	})
}
