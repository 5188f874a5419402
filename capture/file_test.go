package capture

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/scanwarden/scanwarden/detect"
)

// record is one packet to write into a test capture.
type record struct {
	ts   time.Time
	data []byte
}

var tBase = time.Unix(1_700_000_000, 123_456_000)

// writePcap writes a classic pcap with pcapgo.Writer (little-endian;
// nanosecond timestamps when nano is set).
func writePcap(tb testing.TB, path string, link layers.LinkType, nano bool, recs []record) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	w := pcapgo.NewWriter(bw)
	if nano {
		w = pcapgo.NewWriterNanos(bw)
	}
	if err := w.WriteFileHeader(65535, link); err != nil {
		tb.Fatal(err)
	}
	for _, r := range recs {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: r.ts, CaptureLength: len(r.data), Length: len(r.data)}, r.data); err != nil {
			tb.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		tb.Fatal(err)
	}
}

// pcapBytes builds a classic pcap by hand, in either byte order and in the
// modified (24-byte record header) format too.
func pcapBytes(order binary.AppendByteOrder, magic uint32, link layers.LinkType, recs []record) []byte {
	var b []byte
	b = order.AppendUint32(b, magic)
	b = order.AppendUint16(b, 2)
	b = order.AppendUint16(b, 4)
	b = order.AppendUint32(b, 0)
	b = order.AppendUint32(b, 0)
	b = order.AppendUint32(b, 65535)
	b = order.AppendUint32(b, uint32(link))
	for _, r := range recs {
		frac := uint32(r.ts.Nanosecond() / 1000)
		if magic == 0xa1b23c4d {
			frac = uint32(r.ts.Nanosecond())
		}
		b = order.AppendUint32(b, uint32(r.ts.Unix()))
		b = order.AppendUint32(b, frac)
		b = order.AppendUint32(b, uint32(len(r.data)))
		b = order.AppendUint32(b, uint32(len(r.data)))
		if magic == 0xa1b2cd34 {
			b = append(b, make([]byte, 8)...) // ifindex, protocol, pkt_type, pad
		}
		b = append(b, r.data...)
	}
	return b
}

func writePcapNG(tb testing.TB, path string, link layers.LinkType, recs []record) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	w, err := pcapgo.NewNgWriter(f, link)
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range recs {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: r.ts, CaptureLength: len(r.data), Length: len(r.data)}, r.data); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
}

// readAll reads every probe of a file.
func readAll(tb testing.TB, path string) ([]detect.Probe, *FileSource, error) {
	tb.Helper()
	s, err := OpenFile(path)
	if err != nil {
		return nil, nil, err
	}
	tb.Cleanup(func() { s.Close() })
	var out []detect.Probe
	for {
		var p detect.Probe
		err := s.Next(&p)
		if errors.Is(err, io.EOF) {
			return out, s, nil
		}
		if err != nil {
			return out, s, err
		}
		out = append(out, p)
	}
}

// sampleTraffic is a small mix: probes, things to skip, fragments.
func sampleTraffic(tb testing.TB, wrap func([]byte) []byte) ([]record, []detect.Probe) {
	syn := ip4TCP(tb, v4A, v4B, 40000, 22, detect.FlagSYN, nmapSYNOpts)
	rst := ip4TCP(tb, v4B, v4A, 22, 40000, detect.FlagRST|detect.FlagACK, nil)
	udp6 := ip6UDP(tb, v6A, v6B, 40001, 53, []byte("q"))
	echo := serialize(tb, ip4Layer(v4A, v4B, layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)})
	unreach := icmp6Unreach(tb, v6B, v6A, 4, udp6)
	fsyn := ip4TCP(tb, v4A, v4B, 40002, 80, detect.FlagSYN, nmapSYNOpts)
	frags := fragment4(fsyn, 8)

	at := func(i int) time.Time { return tBase.Add(time.Duration(i) * time.Millisecond) }
	ns := func(i int) int64 { return at(i).UnixNano() }
	recs := []record{
		{at(0), wrap(syn)},
		{at(1), wrap(echo)},
		{at(2), wrap(rst)},
		{at(3), wrap(udp6)},
		{at(4), wrap(frags[0])},
		{at(5), wrap(frags[2])}, // out of order
		{at(6), wrap(frags[1])},
		{at(7), wrap(unreach)},
	}
	want := []detect.Probe{
		{TS: ns(0), Src: addr(v4A), Dst: addr(v4B), SrcPort: 40000, DstPort: 22, Kind: detect.KindTCP, Proto: detect.ProtoTCP, Flags: detect.FlagSYN, TTL: testTTL, Seq: testSeq},
		{TS: ns(2), Src: addr(v4B), Dst: addr(v4A), SrcPort: 22, DstPort: 40000, Kind: detect.KindTCP, Proto: detect.ProtoTCP, Flags: detect.FlagRST | detect.FlagACK, TTL: testTTL, Seq: testSeq, Ack: testAck},
		{TS: ns(3), Src: addr(v6A), Dst: addr(v6B), SrcPort: 40001, DstPort: 53, Kind: detect.KindUDP, Proto: detect.ProtoUDP, TTL: testTTL},
		{TS: ns(6), Src: addr(v4A), Dst: addr(v4B), SrcPort: 40002, DstPort: 80, Kind: detect.KindTCP, Proto: detect.ProtoTCP, Flags: detect.FlagSYN, Frag: true, TTL: testTTL, Seq: testSeq},
		{TS: ns(7), Src: addr(v6B), Dst: addr(v6A), SrcPort: 53, DstPort: 40001, Kind: detect.KindUnreach, Proto: detect.ProtoUDP, Code: 4, TTL: testTTL},
	}
	return recs, want
}

func checkProbes(t *testing.T, got, want []detect.Probe) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d probes, want %d:\n%+v", len(got), len(want), got)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("probe %d\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestFileFormats(t *testing.T) {
	dir := t.TempDir()
	ethWrap := func(b []byte) []byte { return withEth(t, b) }
	raw := func(b []byte) []byte { return b }
	cases := []struct {
		name  string
		link  layers.LinkType
		wrap  func([]byte) []byte
		write func(path string, link layers.LinkType, recs []record)
	}{
		{"ethernet.pcap", layers.LinkTypeEthernet, ethWrap, func(p string, l layers.LinkType, r []record) { writePcap(t, p, l, false, r) }},
		{"ethernet-nano.pcap", layers.LinkTypeEthernet, ethWrap, func(p string, l layers.LinkType, r []record) { writePcap(t, p, l, true, r) }},
		{"sll.pcap", layers.LinkTypeLinuxSLL, withSLL, func(p string, l layers.LinkType, r []record) { writePcap(t, p, l, false, r) }},
		{"sll2.pcap", layers.LinkTypeLinuxSLL2, withSLL2, func(p string, l layers.LinkType, r []record) { writePcap(t, p, l, false, r) }},
		{"raw.pcap", layers.LinkTypeRaw, raw, func(p string, l layers.LinkType, r []record) { writePcap(t, p, l, false, r) }},
		{"null.pcap", layers.LinkTypeNull, withNull, func(p string, l layers.LinkType, r []record) { writePcap(t, p, l, false, r) }},
		{"bigendian.pcap", layers.LinkTypeEthernet, ethWrap, func(p string, l layers.LinkType, r []record) {
			os.WriteFile(p, pcapBytes(binary.BigEndian, 0xa1b2c3d4, l, r), 0o644)
		}},
		{"bigendian-nano.pcap", layers.LinkTypeLoop, withLoop, func(p string, l layers.LinkType, r []record) {
			os.WriteFile(p, pcapBytes(binary.BigEndian, 0xa1b23c4d, l, r), 0o644)
		}},
		{"modified.pcap", layers.LinkTypeEthernet, ethWrap, func(p string, l layers.LinkType, r []record) {
			os.WriteFile(p, pcapBytes(binary.LittleEndian, 0xa1b2cd34, l, r), 0o644)
		}},
		{"ethernet.pcapng", layers.LinkTypeEthernet, ethWrap, func(p string, l layers.LinkType, r []record) { writePcapNG(t, p, l, r) }},
		{"sll2.pcapng", layers.LinkTypeLinuxSLL2, withSLL2, func(p string, l layers.LinkType, r []record) { writePcapNG(t, p, l, r) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs, want := sampleTraffic(t, c.wrap)
			for i := range want {
				want[i] = onLink(want[i], c.link)
			}
			path := filepath.Join(dir, c.name)
			c.write(path, c.link, recs)
			got, s, err := readAll(t, path)
			if err != nil {
				t.Fatal(err)
			}
			checkProbes(t, got, want)
			if s.LinkType() != c.link {
				t.Errorf("LinkType = %v, want %v", s.LinkType(), c.link)
			}
			st := s.Stats()
			if st.Packets != uint64(len(recs)) || st.Decoded != uint64(len(want)) || st.Fragments != 3 || st.Reassembled != 1 || st.Ignored != 1 {
				t.Errorf("stats %+v", st)
			}
			var p detect.Probe
			if err := s.Next(&p); !errors.Is(err, io.EOF) {
				t.Errorf("Next after EOF = %v", err)
			}
		})
	}
}

// TestFilePcapNGMixedLinkTypes: a pcapng with an Ethernet and a raw-IP
// interface, and a third of a link type we do not decode.
func TestFilePcapNGMixedLinkTypes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mixed.pcapng")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcapgo.NewNgWriterInterface(f, pcapgo.NgInterface{Name: "eth0", LinkType: layers.LinkTypeEthernet, SnapLength: 65535}, pcapgo.NgWriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rawID, err := w.AddInterface(pcapgo.NgInterface{Name: "tun0", LinkType: layers.LinkTypeRaw, SnapLength: 65535})
	if err != nil {
		t.Fatal(err)
	}
	wifiID, err := w.AddInterface(pcapgo.NgInterface{Name: "wlan0mon", LinkType: layers.LinkTypeIEEE802_11, SnapLength: 65535})
	if err != nil {
		t.Fatal(err)
	}
	syn := ip4TCP(t, v4A, v4B, 1, 2, detect.FlagSYN, nil)
	udp := ip6UDP(t, v6A, v6B, 3, 4, nil)
	for i, r := range []struct {
		iface int
		data  []byte
	}{{0, withEth(t, syn)}, {wifiID, []byte{8, 0, 0, 0}}, {rawID, udp}} {
		ci := gopacket.CaptureInfo{Timestamp: tBase.Add(time.Duration(i) * time.Second), CaptureLength: len(r.data), Length: len(r.data), InterfaceIndex: r.iface}
		if err := w.WritePacket(ci, r.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	got, s, err := readAll(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].DstPort != 2 || got[1].DstPort != 4 || got[1].TS != tBase.Add(2*time.Second).UnixNano() {
		t.Fatalf("probes %+v", got)
	}
	if st := s.Stats(); st.Packets != 3 || st.Decoded != 2 || st.Ignored != 1 {
		t.Errorf("stats %+v", st)
	}
}

// ngPacket is a packet of a test pcapng, on interface iface.
type ngPacket struct {
	iface int
	data  []byte
}

// pcapNGBytes returns a pcapng section with an interface of each of links,
// in order, and pkts.
func pcapNGBytes(tb testing.TB, links []layers.LinkType, pkts []ngPacket) []byte {
	tb.Helper()
	var b bytes.Buffer
	w, err := pcapgo.NewNgWriterInterface(&b, pcapgo.NgInterface{Name: "if0", LinkType: links[0], SnapLength: 65535}, pcapgo.NgWriterOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	for i, l := range links[1:] {
		if _, err := w.AddInterface(pcapgo.NgInterface{Name: fmt.Sprintf("if%d", i+1), LinkType: l, SnapLength: 65535}); err != nil {
			tb.Fatal(err)
		}
	}
	for i, p := range pkts {
		ci := gopacket.CaptureInfo{Timestamp: tBase.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(p.data), Length: len(p.data), InterfaceIndex: p.iface}
		if err := w.WritePacket(ci, p.data); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// TestFilePcapNGFirstInterfaceUnsupported: the first interface's link type
// is one the Decoder cannot read. Its packets are skipped and counted like
// any other such interface's, the other interfaces are read, and the file
// is refused (naming it) only when none of its interfaces can be read:
// at once when the whole file is in the read buffer, at its end when not.
func TestFilePcapNGFirstInterfaceUnsupported(t *testing.T) {
	dir := t.TempDir()
	write := fileWriter(t, dir)
	const wifi, usb = layers.LinkTypeIEEE802_11, layers.LinkType(220) // USB Linux mmapped
	syn := withEth(t, ip4TCP(t, v4A, v4B, 1, 2, detect.FlagSYN, nil))
	udp := ip6UDP(t, v6A, v6B, 3, 4, nil)
	beacon := []byte{0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	// n packets of the unsupported interface 0, then one of each readable one
	filler := func(n int) []ngPacket {
		out := make([]ngPacket, n)
		for i := range out {
			out[i] = ngPacket{0, beacon}
		}
		return out
	}
	// about 60 bytes a packet: 30000 of them are well past the 1 MiB buffer
	const big = 30000

	t.Run("readable interfaces after it", func(t *testing.T) {
		for _, n := range []int{3, big} {
			pkts := append(filler(n), ngPacket{1, syn}, ngPacket{0, beacon}, ngPacket{2, udp})
			p := write(fmt.Sprintf("first-wifi-%d.pcapng", n), pcapNGBytes(t, []layers.LinkType{wifi, layers.LinkTypeEthernet, layers.LinkTypeRaw}, pkts))
			got, s, err := readAll(t, p)
			if err != nil {
				t.Fatalf("%d packets: %v", n, err)
			}
			if len(got) != 2 || got[0].DstPort != 2 || got[1].DstPort != 4 {
				t.Fatalf("%d packets: probes %+v", n, got)
			}
			if st := s.Stats(); st.Packets != uint64(n+3) || st.Decoded != 2 || st.Ignored != uint64(n+1) {
				t.Errorf("%d packets: stats %+v", n, st)
			}
			if s.LinkType() != wifi {
				t.Errorf("LinkType = %v, want the first interface's", s.LinkType())
			}
		}
	})

	t.Run("a readable interface past the buffer", func(t *testing.T) {
		// the first MiB shows only the unsupported interface; a readable
		// one is described after it (a second section, as cat a.pcapng
		// b.pcapng makes)
		b := pcapNGBytes(t, []layers.LinkType{wifi}, filler(big))
		if len(b) <= FileBufferSize {
			t.Fatalf("%d packets make only %d bytes", big, len(b))
		}
		b = append(b, pcapNGBytes(t, []layers.LinkType{layers.LinkTypeEthernet}, []ngPacket{{0, syn}})...)
		got, s, err := readAll(t, write("sections.pcapng", b))
		if err != nil || len(got) != 1 || got[0].DstPort != 2 {
			t.Fatalf("probes %+v, %v", got, err)
		}
		if st := s.Stats(); st.Packets != big+1 || st.Ignored != big {
			t.Errorf("stats %+v", st)
		}
		// and the other way round: a readable section, then one whose
		// interfaces are all unsupported
		b = pcapNGBytes(t, []layers.LinkType{layers.LinkTypeEthernet}, []ngPacket{{0, syn}})
		b = append(b, pcapNGBytes(t, []layers.LinkType{wifi}, filler(big))...)
		if got, _, err := readAll(t, write("sections2.pcapng", b)); err != nil || len(got) != 1 {
			t.Fatalf("probes %+v, %v", got, err)
		}
	})

	t.Run("no readable interface", func(t *testing.T) {
		// small: refused at open, as a classic pcap of that link type is
		p := write("wifi.pcapng", pcapNGBytes(t, []layers.LinkType{wifi}, filler(3)))
		_, err := OpenFile(p)
		if err == nil || !strings.HasPrefix(err.Error(), p+": unsupported link type") || !strings.Contains(err.Error(), "(105)") {
			t.Fatalf("err = %v", err)
		}
		p = write("wifi-usb.pcapng", pcapNGBytes(t, []layers.LinkType{wifi, usb}, append(filler(3), ngPacket{1, beacon})))
		_, err = OpenFile(p)
		if err == nil || !strings.HasPrefix(err.Error(), p+": no interface of a supported link type (") ||
			!strings.Contains(err.Error(), "(105)") || !strings.Contains(err.Error(), "220") {
			t.Fatalf("err = %v", err)
		}
		// large: read to its end, every packet skipped and counted, then
		// the error naming the file, for good
		p = write("wifi-big.pcapng", pcapNGBytes(t, []layers.LinkType{wifi}, filler(big)))
		got, s, err := readAll(t, p)
		if err == nil || !strings.HasPrefix(err.Error(), p+": unsupported link type") || len(got) != 0 {
			t.Fatalf("probes %+v, err = %v", got, err)
		}
		if st := s.Stats(); st.Packets != big || st.Ignored != big {
			t.Errorf("stats %+v", st)
		}
		var pr detect.Probe
		if again := s.Next(&pr); again != err {
			t.Errorf("Next after the error = %v, want %v", again, err)
		}
	})
}

func TestFileErrors(t *testing.T) {
	dir := t.TempDir()
	syn := withEth(t, ip4TCP(t, v4A, v4B, 1, 2, detect.FlagSYN, nil)) // 54 bytes
	recs := []record{{tBase, syn}, {tBase, syn}, {tBase, syn}}
	full := pcapBytes(binary.LittleEndian, 0xa1b2c3d4, layers.LinkTypeEthernet, recs)
	rec := 16 + len(syn)

	write := fileWriter(t, dir)

	t.Run("truncated record data", func(t *testing.T) {
		p := write("cut.pcap", full[:24+2*rec+16+12])
		got, _, err := readAll(t, p)
		if len(got) != 2 {
			t.Errorf("%d probes before the error", len(got))
		}
		want := fmt.Sprintf("%s: packet 3 at offset %d: truncated record: header says %d bytes, 12 remain", p, 24+2*rec, len(syn))
		if err == nil || err.Error() != want {
			t.Fatalf("err = %v\nwant %s", err, want)
		}
		var fe *FileError
		if !errors.As(err, &fe) || fe.Packet != 3 || fe.Offset != int64(24+2*rec) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("FileError %+v", fe)
		}
	})
	t.Run("truncated record header", func(t *testing.T) {
		p := write("cuthdr.pcap", full[:24+rec+7])
		_, _, err := readAll(t, p)
		want := fmt.Sprintf("%s: packet 2 at offset %d: truncated record header: 7 of 16 bytes", p, 24+rec)
		if err == nil || err.Error() != want {
			t.Fatalf("err = %v\nwant %s", err, want)
		}
	})
	t.Run("corrupt record length", func(t *testing.T) {
		b := append([]byte(nil), full...)
		binary.LittleEndian.PutUint32(b[24+rec+8:], 0x7fffffff)
		p := write("corrupt.pcap", b)
		_, _, err := readAll(t, p)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("packet 2 at offset %d: corrupt record: header says 2147483647 bytes", 24+rec)) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("error is sticky", func(t *testing.T) {
		p := write("sticky.pcap", full[:len(full)-1])
		s, err := OpenFile(p)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var pr detect.Probe
		var first error
		for i := 0; i < 5; i++ {
			if err := s.Next(&pr); err != nil {
				if first == nil {
					first = err
				} else if err != first {
					t.Fatalf("second error %v differs from %v", err, first)
				}
			}
		}
		if first == nil {
			t.Fatal("no error")
		}
	})
	t.Run("not a capture", func(t *testing.T) {
		p := write("x.txt", []byte("hello, world\n"))
		_, err := OpenFile(p)
		if want := p + ": not a pcap or pcapng file (magic 0x68656c6c)"; err == nil || err.Error() != want {
			t.Fatalf("err = %v\nwant %s", err, want)
		}
	})
	t.Run("gzip", func(t *testing.T) {
		p := write("x.pcap.gz", []byte{0x1f, 0x8b, 8, 0, 0, 0})
		_, err := OpenFile(p)
		if err == nil || !strings.Contains(err.Error(), "gzip") || !strings.Contains(err.Error(), "magic 0x1f8b0800") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		p := write("empty.pcap", nil)
		_, err := OpenFile(p)
		if want := p + ": not a pcap or pcapng file (0 bytes long)"; err == nil || err.Error() != want {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("truncated file header", func(t *testing.T) {
		p := write("hdr.pcap", full[:20])
		_, err := OpenFile(p)
		if want := p + ": truncated pcap file header: 20 of 24 bytes"; err == nil || err.Error() != want {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("unknown version", func(t *testing.T) {
		b := append([]byte(nil), full[:24]...)
		binary.LittleEndian.PutUint16(b[4:], 3)
		p := write("v3.pcap", b)
		_, err := OpenFile(p)
		if want := p + ": unsupported pcap version 3.4 (only 2.x exists)"; err == nil || err.Error() != want {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("header only", func(t *testing.T) {
		p := write("hdronly.pcap", full[:24])
		got, _, err := readAll(t, p)
		if err != nil || len(got) != 0 {
			t.Fatalf("%v %v", got, err)
		}
	})
	t.Run("unsupported link type", func(t *testing.T) {
		p := write("wifi.pcap", pcapBytes(binary.LittleEndian, 0xa1b2c3d4, layers.LinkTypeIEEE802_11, nil))
		_, err := OpenFile(p)
		if err == nil || !strings.Contains(err.Error(), p+": unsupported link type") || !strings.Contains(err.Error(), "(105)") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, err := OpenFile(filepath.Join(dir, "nope.pcap"))
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "nope.pcap") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("undecodable records are skipped, not errors", func(t *testing.T) {
		junk := []record{{tBase, []byte{1, 2, 3}}, {tBase, nil}, {tBase, syn}, {tBase, make([]byte, 100)}}
		p := write("junk.pcap", pcapBytes(binary.LittleEndian, 0xa1b2c3d4, layers.LinkTypeEthernet, junk))
		got, s, err := readAll(t, p)
		if err != nil || len(got) != 1 {
			t.Fatalf("%v %v", got, err)
		}
		if st := s.Stats(); st.Packets != 4 || st.Malformed+st.Ignored != 3 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("truncated pcapng", func(t *testing.T) {
		src := filepath.Join(dir, "whole.pcapng")
		writePcapNG(t, src, layers.LinkTypeEthernet, recs)
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := write("cut.pcapng", b[:len(b)-10])
		got, _, err := readAll(t, p)
		if len(got) != 2 {
			t.Errorf("%d probes before the error", len(got))
		}
		var fe *FileError
		if !errors.As(err, &fe) || fe.Packet != 3 || fe.File != p || !strings.Contains(err.Error(), "truncated pcapng block") {
			t.Fatalf("err = %v", err)
		}
		// the offset of the third enhanced packet block, by the blocks'
		// own lengths (pcapgo writes little-endian)
		want, epbs := 0, 0
		for off := 0; off+8 <= len(b); off += int(binary.LittleEndian.Uint32(b[off+4:])) {
			if binary.LittleEndian.Uint32(b[off:]) == ngEnhancedPacketBlock {
				if epbs++; epbs == 3 {
					want = off
					break
				}
			}
		}
		if fe.Offset != int64(want) || want == 0 {
			t.Errorf("offset %d, the third packet block starts at %d", fe.Offset, want)
		}
	})
	t.Run("garbage pcapng", func(t *testing.T) {
		b := []byte{0x0a, 0x0d, 0x0d, 0x0a, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}
		p := write("garbage.pcapng", b)
		_, err := OpenFile(p)
		if err == nil || !strings.HasPrefix(err.Error(), p+": bad pcapng header") {
			t.Fatalf("err = %v", err)
		}
	})
}

func FuzzFile(f *testing.F) {
	syn := withEth(f, ip4TCP(f, v4A, v4B, 1, 2, detect.FlagSYN, nil))
	recs := []record{{tBase, syn}, {tBase, withEth(f, ip6UDP(f, v6A, v6B, 3, 4, nil))}}
	f.Add(pcapBytes(binary.LittleEndian, 0xa1b2c3d4, layers.LinkTypeEthernet, recs))
	f.Add(pcapBytes(binary.BigEndian, 0xa1b23c4d, layers.LinkTypeRaw, []record{{tBase, ip4TCP(f, v4A, v4B, 1, 2, 2, nil)}}))
	f.Add(pcapBytes(binary.LittleEndian, 0xa1b2cd34, layers.LinkTypeLinuxSLL2, []record{{tBase, withSLL2(ip4UDP(f, v4A, v4B, 1, 2, nil))}}))
	f.Add(pcapBytes(binary.LittleEndian, 0xa1b2c3d4, layers.LinkTypeEthernet, []record{
		{tBase, arpEth(f, arpLayer(layers.ARPRequest, macC, v4A, v4B))},
		{tBase, withEth(f, nsPacket(f, v6A, v6Solicited, v6Target, ndpHop, slla(macC)))},
	}))
	var ng bytes.Buffer
	w, _ := pcapgo.NewNgWriter(&ng, layers.LinkTypeEthernet)
	for _, r := range recs {
		w.WritePacket(gopacket.CaptureInfo{Timestamp: r.ts, CaptureLength: len(r.data), Length: len(r.data)}, r.data)
	}
	w.Flush()
	f.Add(ng.Bytes())
	f.Add([]byte("not a capture"))
	dir := f.TempDir()
	n := 0
	f.Fuzz(func(t *testing.T, data []byte) {
		n++
		p := filepath.Join(dir, fmt.Sprintf("f%d", n))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(p)
		s, err := OpenFile(p)
		if err != nil {
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		defer s.Close()
		var pr detect.Probe
		for i := 0; ; i++ {
			err := s.Next(&pr)
			if err != nil {
				if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), p+": packet ") {
					t.Fatalf("error does not name file and packet: %v", err)
				}
				return
			}
			if i > len(data) {
				t.Fatal("more probes than bytes")
			}
		}
	})
}

// writeSYNCapture writes a classic Ethernet pcap of n nmap SYNs (one
// template packet, destination port and IP id varied) and returns its path.
func writeSYNCapture(tb testing.TB, n int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "syn.pcap")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	w := pcapgo.NewWriter(bw)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		tb.Fatal(err)
	}
	pkt := withEth(tb, ip4TCP(tb, v4A, v4B, 40000, 1, detect.FlagSYN, nmapSYNOpts))
	for i := range n {
		binary.BigEndian.PutUint16(pkt[14+4:], uint16(i))      // IP id
		binary.BigEndian.PutUint16(pkt[14+20+2:], uint16(1+i)) // destination port
		ci := gopacket.CaptureInfo{Timestamp: tBase.Add(time.Duration(i) * time.Microsecond), CaptureLength: len(pkt), Length: len(pkt)}
		if err := w.WritePacket(ci, pkt); err != nil {
			tb.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// benchFileNext reads path through FileSource.Next, one record per op,
// reopening the file when it ends; opened, if not nil, is called on each
// FileSource as it is opened.
func benchFileNext(b *testing.B, path string, opened func(*FileSource)) {
	b.ReportAllocs()
	var p detect.Probe
	var s *FileSource
	for b.Loop() {
		if s == nil {
			var err error
			if s, err = OpenFile(path); err != nil {
				b.Fatal(err)
			}
			if opened != nil {
				opened(s)
			}
		}
		if err := s.Next(&p); err != nil {
			if !errors.Is(err, io.EOF) {
				b.Fatal(err)
			}
			s.Close()
			s = nil
		}
	}
	if s != nil {
		s.Close()
	}
}

// fileWriter returns a function that writes b to the file name in dir and
// returns its path, failing tb if it cannot.
func fileWriter(tb testing.TB, dir string) func(name string, b []byte) string {
	return func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			tb.Fatal(err)
		}
		return p
	}
}

// tcpdumpNsPerPacket times `tcpdump -r path -w /dev/null` (best of three),
// the yardstick for replay speed; 0 when tcpdump is not installed.
func tcpdumpNsPerPacket(tb testing.TB, path string, n int) float64 {
	bin, err := exec.LookPath("tcpdump")
	if err != nil {
		return 0
	}
	best := time.Duration(math.MaxInt64)
	for range 3 {
		start := time.Now()
		out, err := exec.Command(bin, "-r", path, "-w", "/dev/null").CombinedOutput()
		if err != nil {
			tb.Logf("tcpdump: %v: %s", err, out)
			return 0
		}
		best = min(best, time.Since(start))
	}
	return float64(best.Nanoseconds()) / float64(n)
}

// BenchmarkFileNext reads a 1,000,000-packet capture of SYNs through
// FileSource.Next: one op is one packet (the file is reopened when it
// ends). It reports tcpdump's own time per packet on the same file as
// tcpdump-ns/pkt: the target is a whole replay (this plus the classifier)
// at no less than half tcpdump's packet rate.
func BenchmarkFileNext(b *testing.B) {
	const n = 1_000_000
	path := writeSYNCapture(b, n)
	tcpdump := tcpdumpNsPerPacket(b, path, n)
	benchFileNext(b, path, nil)
	if tcpdump > 0 {
		b.ReportMetric(tcpdump, "tcpdump-ns/pkt")
	}
}

// BenchmarkFileNextPcapNG is the same through pcapgo's pcapng reader.
func BenchmarkFileNextPcapNG(b *testing.B) {
	const n = 100_000
	path := filepath.Join(b.TempDir(), "syn.pcapng")
	var recs []record
	for i := range n {
		syn := ip4TCP(b, v4A, v4B, 40000, uint16(1+i%1024), detect.FlagSYN, nmapSYNOpts)
		recs = append(recs, record{tBase.Add(time.Duration(i) * time.Microsecond), withEth(b, syn)})
	}
	writePcapNG(b, path, layers.LinkTypeEthernet, recs)
	benchFileNext(b, path, nil)
}

// ngBlock, ngSHB, ngIDB and ngEPB build pcapng blocks by hand, in either
// byte order.
func ngBlock(o binary.AppendByteOrder, typ uint32, body []byte) []byte {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	n := uint32(12 + len(body))
	b := o.AppendUint32(nil, typ)
	b = o.AppendUint32(b, n)
	b = append(b, body...)
	return o.AppendUint32(b, n)
}

func ngSHB(o binary.AppendByteOrder) []byte {
	body := o.AppendUint32(nil, ngByteOrderMagic)
	body = o.AppendUint16(body, 1)
	body = o.AppendUint16(body, 0)
	body = o.AppendUint64(body, ^uint64(0))
	return ngBlock(o, magicPcapNG, body)
}

func ngIDB(o binary.AppendByteOrder, link layers.LinkType) []byte {
	body := o.AppendUint16(nil, uint16(link))
	body = o.AppendUint16(body, 0)
	body = o.AppendUint32(body, 65535)
	return ngBlock(o, 1, body)
}

func ngEPB(o binary.AppendByteOrder, iface uint32, micros uint64, data []byte) []byte {
	body := o.AppendUint32(nil, iface)
	body = o.AppendUint32(body, uint32(micros>>32))
	body = o.AppendUint32(body, uint32(micros))
	body = o.AppendUint32(body, uint32(len(data)))
	body = o.AppendUint32(body, uint32(len(data)))
	body = append(body, data...)
	return ngBlock(o, ngEnhancedPacketBlock, body)
}

// TestFilePcapNGErrorOffsets: the offset an error names is that of the
// packet's own block, past the interface (and section) blocks the reader
// skipped to reach it, in either byte order and across sections of
// different byte orders.
func TestFilePcapNGErrorOffsets(t *testing.T) {
	write := fileWriter(t, t.TempDir())
	syn := withEth(t, ip4TCP(t, v4A, v4B, 1, 2, detect.FlagSYN, nil))
	le, be := binary.LittleEndian, binary.BigEndian
	cut := func(b []byte) []byte { return b[:len(b)-10] }
	for _, c := range []struct {
		name   string
		blocks [][]byte // the last one is the cut packet block
		packet uint64
	}{
		{"first packet, little-endian", [][]byte{ngSHB(le), ngIDB(le, layers.LinkTypeEthernet), cut(ngEPB(le, 0, 1, syn))}, 1},
		{"first packet, big-endian", [][]byte{ngSHB(be), ngIDB(be, layers.LinkTypeEthernet), cut(ngEPB(be, 0, 1, syn))}, 1},
		{"after another interface", [][]byte{ngSHB(le), ngIDB(le, layers.LinkTypeEthernet), ngEPB(le, 0, 1, syn),
			ngIDB(le, layers.LinkTypeEthernet), cut(ngEPB(le, 1, 2, syn))}, 2},
		{"in a big-endian section after a little-endian one", [][]byte{ngSHB(le), ngIDB(le, layers.LinkTypeEthernet), ngEPB(le, 0, 1, syn),
			ngSHB(be), ngIDB(be, layers.LinkTypeEthernet), cut(ngEPB(be, 0, 2, syn))}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			var file []byte
			for _, b := range c.blocks {
				file = append(file, b...)
			}
			want := int64(len(file) - len(c.blocks[len(c.blocks)-1]))
			got, _, err := readAll(t, write("cut.pcapng", file))
			var fe *FileError
			if !errors.As(err, &fe) || len(got) != int(c.packet-1) {
				t.Fatalf("%d probes, err = %v", len(got), err)
			}
			if fe.Packet != c.packet || fe.Offset != want {
				t.Errorf("packet %d at offset %d, want packet %d at %d (%v)", fe.Packet, fe.Offset, c.packet, want, err)
			}
		})
	}
}

// TestFilePcapNGBigEndian: a big-endian pcapng's interfaces are read at
// open as a little-endian one's are: its link type, and the refusal of a
// file none of whose interfaces can be read.
func TestFilePcapNGBigEndian(t *testing.T) {
	write := fileWriter(t, t.TempDir())
	syn := withEth(t, ip4TCP(t, v4A, v4B, 1, 2, detect.FlagSYN, nil))
	for _, o := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
		name := fmt.Sprint(o)
		file := append(append(ngSHB(o), ngIDB(o, layers.LinkTypeEthernet)...), ngEPB(o, 0, 1, syn)...)
		got, s, err := readAll(t, write(name+".pcapng", file))
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: %d probes, err %v", name, len(got), err)
		}
		if s.LinkType() != layers.LinkTypeEthernet {
			t.Errorf("%s: LinkType() = %v, want Ethernet", name, s.LinkType())
		}
		wifi := append(append(ngSHB(o), ngIDB(o, layers.LinkTypeIEEE802_11)...), ngEPB(o, 0, 1, []byte{8, 0, 0, 0})...)
		if s, err := OpenFile(write(name+"-wifi.pcapng", wifi)); err == nil {
			s.Close()
			t.Errorf("%s: a pcapng with no interface it can read was opened", name)
		}
	}
}
