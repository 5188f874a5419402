package capture

import (
	"encoding/binary"
	"slices"
	"testing"
	"unsafe"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/scanwarden/scanwarden/detect"
)

// feed decodes packets in order at ts0+i ms and returns the probes.
func feed(d *twinDecoder, pkts ...[]byte) []detect.Probe {
	var out []detect.Probe
	for i, pkt := range pkts {
		var p detect.Probe
		if d.Decode(pkt, ts0+int64(i)*1e6, &p) {
			out = append(out, p)
		}
	}
	return out
}

func TestFragIPv4(t *testing.T) {
	syn := ip4TCP(t, v4A, v4B, 40000, 22, detect.FlagSYN, nmapSYNOpts) // 24-byte TCP header
	f := fragment4(syn, 8)
	if len(f) != 3 {
		t.Fatalf("%d fragments", len(f))
	}
	want := tcpProbe(v4A, v4B, 40000, 22, detect.FlagSYN, false)
	want.Frag = true

	orders := map[string][]int{"in order": {0, 1, 2}, "reversed": {2, 1, 0}, "last first": {2, 0, 1}, "duplicates": {0, 0, 1, 1, 2, 2, 0}}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			d := mustDecoder(t, layers.LinkTypeRaw)
			var pkts [][]byte
			for _, i := range order {
				pkts = append(pkts, f[i])
			}
			got := feed(d, pkts...)
			if len(got) != 1 {
				t.Fatalf("%d probes: %+v", len(got), got)
			}
			// The probe carries the completing fragment's timestamp.
			complete := 2
			if name == "duplicates" {
				complete = 4
			}
			want.TS = ts0 + int64(complete)*1e6
			if got[0] != want {
				t.Errorf("got %+v\nwant %+v", got[0], want)
			}
			s := d.Stats()
			if s.Fragments != uint64(len(order)) || s.Reassembled != 1 || s.Decoded != 1 || s.Evicted != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}

	t.Run("stack SYN options survive", func(t *testing.T) {
		d := mustDecoder(t, layers.LinkTypeRaw)
		got := feed(d, fragment4(ip4TCP(t, v4A, v4B, 1, 2, detect.FlagSYN, linuxSYNOpts), 16)...)
		if len(got) != 1 || !got[0].StackSYN || !got[0].Frag {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("udp whose first fragment holds the header", func(t *testing.T) {
		d := mustDecoder(t, layers.LinkTypeRaw)
		udp := ip4UDP(t, v4A, v4B, 5000, 161, make([]byte, 100))
		f := fragment4(udp, 48)
		got := feed(d, f...)
		w := udpProbe(v4A, v4B, 5000, 161)
		w.TS, w.Frag = ts0, true
		if len(got) != 1 || got[0] != w {
			t.Fatalf("got %+v", got)
		}
	})
}

// TestFragReusedID: a prober that keeps its IP identification fixed
// (hping3 --id, scapy) sends datagram after datagram under one key; Linux
// reassembles each, and so does the decoder, while copies of a fragment
// already reported still count once.
func TestFragReusedID(t *testing.T) {
	d := mustDecoder(t, layers.LinkTypeEthernet)
	var got []uint16
	for i, port := range []uint16{22, 23, 24} {
		frags := fragment4(ip4TCP(t, v4A, v4B, 40000, port, detect.FlagSYN, nmapSYNOpts), 8)
		// every fragment twice: the copies are no new datagram
		for _, f := range append(frags, frags...) {
			var p detect.Probe
			if d.Decode(withEth(t, f), ts0+int64(i)*1e9, &p) {
				got = append(got, p.DstPort)
			}
		}
	}
	if !slices.Equal(got, []uint16{22, 23, 24}) {
		t.Errorf("ports %v of three datagrams with one IP ID, stats %+v", got, d.Stats())
	}
	if s := d.Stats(); s.Reassembled != 3 {
		t.Errorf("stats %+v", s)
	}
}

func TestFragIPv6(t *testing.T) {
	syn := ip6TCP(t, v6A, v6B, 40000, 443, detect.FlagSYN, nmapSYNOpts)
	f := fragment6(syn, 8, 0xdeadbeef)
	want := tcpProbe(v6A, v6B, 40000, 443, detect.FlagSYN, false)
	want.Frag = true
	for name, order := range map[string][]int{"in order": {0, 1, 2}, "reversed": {2, 1, 0}} {
		t.Run(name, func(t *testing.T) {
			d := mustDecoder(t, layers.LinkTypeEthernet)
			var pkts [][]byte
			for _, i := range order {
				pkts = append(pkts, withEth(t, f[i]))
			}
			got := feed(d, pkts...)
			want.TS = ts0 + 2e6
			if want := onLink(want, layers.LinkTypeEthernet); len(got) != 1 || got[0] != want {
				t.Fatalf("got %+v\nwant %+v", got, want)
			}
		})
	}
	t.Run("same id from another source is another datagram", func(t *testing.T) {
		other := fragment6(ip6TCP(t, v6B, v6A, 1, 2, detect.FlagFIN, nil), 8, 0xdeadbeef)
		d := mustDecoder(t, layers.LinkTypeRaw)
		got := feed(d, f[0], other[0], f[1], other[1], other[2], f[2])
		if len(got) != 2 || got[0].Flags != detect.FlagFIN || got[1].DstPort != 443 {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("udp", func(t *testing.T) {
		d := mustDecoder(t, layers.LinkTypeLinuxSLL2)
		var pkts [][]byte
		for _, fr := range fragment6(ip6UDP(t, v6A, v6B, 53, 5353, make([]byte, 40)), 16, 9) {
			pkts = append(pkts, withSLL2(fr))
		}
		got := feed(d, pkts...)
		if len(got) != 1 || got[0].Kind != detect.KindUDP || got[0].DstPort != 5353 || !got[0].Frag || got[0].TS != ts0 {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("atomic fragment is a plain packet", func(t *testing.T) {
		d := mustDecoder(t, layers.LinkTypeRaw)
		atomic := ip6Frag(syn[:40], 6, 1, 0, false, syn[40:])
		got := feed(d, atomic)
		w := tcpProbe(v6A, v6B, 40000, 443, detect.FlagSYN, false)
		if len(got) != 1 || got[0] != w {
			t.Fatalf("got %+v", got)
		}
	})
}

// TestFragOverlap: the first copy of each byte wins.
func TestFragOverlap(t *testing.T) {
	syn := ip4TCP(t, v4A, v4B, 40000, 22, detect.FlagSYN, nil) // 20-byte header
	hdr := syn[:20]
	tcp := syn[20:]
	evil := append([]byte(nil), tcp...)
	binary.BigEndian.PutUint16(evil[2:], 8080) // another destination port
	evil[13] = detect.FlagFIN

	d := mustDecoder(t, layers.LinkTypeRaw)
	got := feed(d,
		ip4Frag(hdr, 0, true, tcp[:8]),      // ports: 40000 -> 22
		ip4Frag(hdr, 0, true, evil[:16]),    // overlaps 0..7 (ignored), fills 8..15: flags FIN
		ip4Frag(hdr, 8, true, tcp[8:16]),    // all already there: ignored
		ip4Frag(hdr, 16, false, tcp[16:20]), // completes
	)
	if len(got) != 1 || got[0].DstPort != 22 || got[0].Flags != detect.FlagFIN {
		t.Fatalf("got %+v", got)
	}
	// A later copy of the flags byte loses too.
	d = mustDecoder(t, layers.LinkTypeRaw)
	got = feed(d,
		ip4Frag(hdr, 8, true, tcp[8:16]),
		ip4Frag(hdr, 8, true, evil[8:16]),
		ip4Frag(hdr, 16, false, evil[16:20]),
		ip4Frag(hdr, 0, true, evil[:8]),
	)
	if len(got) != 1 || got[0].DstPort != 8080 || got[0].Flags != detect.FlagSYN {
		t.Fatalf("got %+v", got)
	}
}

func TestFragIncomplete(t *testing.T) {
	syn := ip4TCP(t, v4A, v4B, 40000, 22, detect.FlagSYN, nmapSYNOpts)
	f := fragment4(syn, 8)

	t.Run("never completed, then expired", func(t *testing.T) {
		d := mustDecoder(t, layers.LinkTypeRaw)
		var p detect.Probe
		if d.Decode(f[0], ts0, &p) || d.Decode(f[1], ts0+1, &p) {
			t.Fatal("probe from an incomplete datagram")
		}
		// The last fragment comes too late: its datagram has expired, and
		// alone it completes nothing.
		if d.Decode(f[2], ts0+int64(FragTimeout)+2, &p) {
			t.Fatalf("probe from an expired datagram: %+v", p)
		}
		if s := d.Stats(); s.Expired != 1 || s.Decoded != 0 {
			t.Errorf("stats %+v", s)
		}
		// A whole new copy completes normally.
		if got := feed(d, f...); len(got) != 1 {
			t.Errorf("retransmission after expiry: %+v", got)
		}
	})
	t.Run("bounded table evicts the oldest", func(t *testing.T) {
		d := mustDecoder(t, layers.LinkTypeRaw)
		const extra = 10
		frags := make([][][]byte, FragSlots+extra)
		for i := range frags {
			s := append([]byte(nil), syn...)
			binary.BigEndian.PutUint16(s[4:], uint16(i)) // IP id
			frags[i] = fragment4(s, 8)
		}
		var p detect.Probe
		ts := ts0
		for i := range frags { // first fragments of every datagram
			ts++
			if d.Decode(frags[i][0], ts, &p) {
				t.Fatal("probe from a first fragment")
			}
		}
		if s := d.Stats(); s.Evicted != extra {
			t.Fatalf("evicted %d, want %d", s.Evicted, extra)
		}
		// The datagrams still in the table complete...
		n := 0
		for i := extra; i < len(frags); i++ {
			for _, fr := range frags[i][1:] {
				ts++
				if d.Decode(fr, ts, &p) {
					n++
					if p.Src != addr(v4A) || p.DstPort != 22 || !p.Frag {
						t.Fatalf("bad probe %+v", p)
					}
				}
			}
		}
		if s := d.Stats(); n != FragSlots || s.Reassembled != FragSlots {
			t.Errorf("%d probes, stats %+v", n, s)
		}
		// ...the evicted ones cannot, and their remainders take the
		// slots of datagrams already reported, which costs nothing.
		for i := range extra {
			for _, fr := range frags[i][1:] {
				ts++
				if d.Decode(fr, ts, &p) {
					t.Fatalf("probe from an evicted datagram: %+v", p)
				}
			}
		}
		if s := d.Stats(); s.Evicted != extra {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("later fragments alone take no slot", func(t *testing.T) {
		d := mustDecoder(t, layers.LinkTypeRaw)
		udp := ip4UDP(t, v4A, v4B, 1, 2, make([]byte, 400))
		fr := fragment4(udp, 128)
		var p detect.Probe
		for _, x := range fr[1:] {
			d.Decode(x, ts0, &p)
		}
		for i := range d.frags.slots {
			if d.frags.slots[i].state != slotFree {
				t.Fatalf("slot %d taken by a fragment beyond the header", i)
			}
		}
	})
}

func TestFragShortDatagrams(t *testing.T) {
	// TCP header says 32 bytes (options), the datagram ends after 24: the
	// last fragment closes it, and the probe comes with what there is.
	syn := ip4TCP(t, v4A, v4B, 40000, 22, detect.FlagSYN, linuxSYNOpts)
	hdr, tcp := syn[:20], syn[20:]
	cut := append([]byte(nil), tcp[:24]...)
	d := mustDecoder(t, layers.LinkTypeRaw)
	got := feed(d, ip4Frag(hdr, 0, true, cut[:16]), ip4Frag(hdr, 16, false, cut[16:24]))
	if len(got) != 1 || got[0].DstPort != 22 || got[0].Flags != detect.FlagSYN || !got[0].Frag {
		t.Fatalf("got %+v", got)
	}

	// A TCP "datagram" of 12 bytes: shorter than any TCP header.
	d = mustDecoder(t, layers.LinkTypeRaw)
	got = feed(d, ip4Frag(hdr, 0, true, tcp[:8]), ip4Frag(hdr, 8, false, tcp[8:12]))
	if len(got) != 0 || d.Stats().Malformed != 1 {
		t.Fatalf("got %+v, stats %+v", got, d.Stats())
	}

	// TCP data offset 2: malformed.
	bad := append([]byte(nil), tcp[:20]...)
	bad[12] = 2 << 4
	d = mustDecoder(t, layers.LinkTypeRaw)
	got = feed(d, ip4Frag(hdr, 0, true, bad[:16]), ip4Frag(hdr, 16, false, bad[16:20]))
	if len(got) != 0 || d.Stats().Malformed != 1 {
		t.Fatalf("got %+v, stats %+v", got, d.Stats())
	}

	// Fragmented ICMP is not reassembled.
	ping := serialize(t, ip4Layer(v4A, v4B, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}, gopacket.Payload(make([]byte, 64)))
	d = mustDecoder(t, layers.LinkTypeRaw)
	if got := feed(d, fragment4(ping, 32)...); len(got) != 0 || d.Stats().Ignored != 3 || d.Stats().Fragments != 0 {
		t.Fatalf("got %+v, stats %+v", got, d.Stats())
	}
}

// TestFragTableSize: the table is one fixed block, whatever the input.
func TestFragTableSize(t *testing.T) {
	size := unsafe.Sizeof(fragTable{})
	t.Logf("fragment table: %d bytes (%d slots of %d bytes)", size, FragSlots, unsafe.Sizeof(fragSlot{}))
	if size > 36<<10 {
		t.Errorf("fragment table is %d bytes, tunables.go promises 35 KiB", size)
	}
}

// TestFragIndex exercises the hash index's deletions: after many
// datagrams came and went, every slot in use is found and no stale entry
// remains.
func TestFragIndex(t *testing.T) {
	var tab fragTable
	tab.init()
	var st Stats
	first := []byte{0x9c, 0x40, 0, 22, 0, 0, 0, 1}
	second := []byte{0, 0, 0, 0, 0x50, detect.FlagSYN, 4, 0} // data offset 5: 20 bytes needed
	for i := range 10 * FragSlots {
		k := makeFragKey([]byte{198, 51, 100, byte(i)}, []byte{198, 51, 100, 202}, uint32(i*7919), ipProtoTCP, false)
		if _, ok := tab.add(&k, ts0+int64(i), 0, true, first, 100, &st); ok {
			t.Fatal("complete after 8 bytes")
		}
		if i%3 == 0 { // a second fragment for some
			if _, ok := tab.add(&k, ts0+int64(i), 8, true, second, 100, &st); ok {
				t.Fatal("complete after 16 bytes")
			}
		}
	}
	entries := 0
	for _, e := range tab.index {
		if e != 0 {
			entries++
		}
	}
	if entries != FragSlots {
		t.Errorf("%d index entries for %d slots", entries, FragSlots)
	}
	for n := range tab.slots {
		s := &tab.slots[n]
		if _, m := tab.lookup(&s.key, s.hash); m != n {
			t.Errorf("slot %d not found through the index (got %d)", n, m)
		}
	}
	if st.Evicted != uint64(9*FragSlots) {
		t.Errorf("evicted %d", st.Evicted)
	}
}
