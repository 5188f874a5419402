package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/scanwarden/scanwarden/detect"
)

// The fast path (fast.go) against the parser path: the same frames
// through a Decoder with the fast path and through one without it must
// give the same result, the same Probe and the same counters, frame by
// frame.

// decodeBoth decodes one frame with fast (fast path on) and slow (parser
// path only), both given p's value on entry, and returns fast's result
// with an empty string, or a description of how the two differ (result,
// Probe or the change in Stats).
func decodeBoth(fast, slow *Decoder, data []byte, ts int64, p *detect.Probe) (bool, string) {
	q := *p
	fb, sb := fast.Stats(), slow.Stats()
	okSlow := slow.Decode(data, ts, &q)
	ok := fast.Decode(data, ts, p)
	fd, sd := statsDelta(fast.Stats(), fb), statsDelta(slow.Stats(), sb)
	if ok == okSlow && *p == q && fd == sd {
		return ok, ""
	}
	return ok, fmt.Sprintf("fast and parser paths differ on %d bytes [% x]:\n fast %v %+v %+v\n slow %v %+v %+v",
		len(data), data, ok, *p, fd, okSlow, q, sd)
}

// statsDelta returns the counters of a minus those of b.
func statsDelta(a, b Stats) Stats {
	return Stats{
		Packets: a.Packets - b.Packets, Decoded: a.Decoded - b.Decoded, Ignored: a.Ignored - b.Ignored,
		Malformed: a.Malformed - b.Malformed, Fragments: a.Fragments - b.Fragments,
		Reassembled: a.Reassembled - b.Reassembled, Evicted: a.Evicted - b.Evicted, Expired: a.Expired - b.Expired,
	}
}

// slowDecoder returns a Decoder for link that sends every frame to the
// parser path.
func slowDecoder(tb testing.TB, link layers.LinkType) *Decoder {
	tb.Helper()
	d := plainDecoder(tb, link)
	d.fast = fastNone
	return d
}

// twinDecoder is a Decoder whose every Decode is repeated by a twin that
// has the fast path switched off: the test fails on the first frame on
// which they differ (decodeBoth). The tests of this package decode through
// it (mustDecoder), so every frame they build is checked. It also counts
// the frames the fast path took.
type twinDecoder struct {
	*Decoder
	slow     *Decoder
	scratch  *Decoder // runs decodeFast alone, to count the frames it takes
	tb       testing.TB
	frames   int // frames decoded
	fastHits int // ...of which the fast path took
}

// Decode is Decoder.Decode, checked against the parser path.
func (d *twinDecoder) Decode(data []byte, ts int64, p *detect.Probe) bool {
	d.tb.Helper()
	ok, diff := decodeBoth(d.Decoder, d.slow, data, ts, p)
	if diff != "" {
		d.tb.Errorf("%v: %s", d.link, diff)
	}
	d.frames++
	var r detect.Probe
	if d.scratch.decodeFast(data, ts, &r) {
		d.fastHits++
	}
	return ok
}

// TestFastPathTaken: the frames the fast path is for take it, with the
// right Probe; those it leaves alone do not. (Every test that decodes
// checks the two paths agree; this one checks that the fast path is
// actually used, and where it stops.)
func TestFastPathTaken(t *testing.T) {
	syn4 := withTTL(ip4TCP(t, v4A, v4B, 40000, 22, detect.FlagSYN, nmapSYNOpts), ttl4)
	stack4 := ip4TCP(t, v4A, v4B, 40001, 80, detect.FlagSYN, linuxSYNOpts)
	syn6 := withTTL(ip6TCP(t, v6A, v6B, 40000, 22, detect.FlagSYN, nmapSYNOpts), ttl6)
	udp4 := ip4UDP(t, v4A, v4B, 5353, 161, []byte("probe"))
	udp6 := ip6UDP(t, v6A, v6B, 5353, 53, nil)
	mapped := ip6TCP(t, []byte{10: 0xff, 11: 0xff, 12: 198, 13: 51, 14: 100, 15: 9}, v6B, 1, 2, detect.FlagSYN, nil)
	opts4 := append([]byte(nil), syn4...) // IHL 6: one NOP-padded option word
	opts4 = append(append(append([]byte{0x46}, opts4[1:20]...), 1, 1, 1, 0), opts4[20:]...)
	binary.BigEndian.PutUint16(opts4[2:], uint16(len(opts4)))
	tso := append([]byte(nil), syn4...) // total length 0: a TSO super-packet
	tso[2], tso[3] = 0, 0
	udpBadLen := append([]byte(nil), udp4...)
	udpBadLen[20+5] = 5
	tcpOff4 := append([]byte(nil), syn4...)
	tcpOff4[20+12] = 0x40
	trailer := append(withEth(t, udp4), make([]byte, 18)...)
	// Headers whose length fields end the packet within the TCP options
	// of a connect() SYN: the rest is a trailer, not options.
	stackCut4 := append([]byte(nil), stack4...)
	binary.BigEndian.PutUint16(stackCut4[2:], 20+20+4) // the MSS option only
	stack6 := ip6TCP(t, v6A, v6B, 40001, 80, detect.FlagSYN, linuxSYNOpts)
	stackCut6 := append([]byte(nil), stack6...)
	binary.BigEndian.PutUint16(stackCut6[4:], 20+4)
	total16 := append([]byte(nil), udp4...) // total length shorter than the header
	binary.BigEndian.PutUint16(total16[2:], 16)

	cases := []struct {
		name string
		link layers.LinkType
		data []byte
		fast bool
		want detect.Probe // checked when fast (the zero Probe: not checked)
	}{
		{"ethernet ipv4 syn", layers.LinkTypeEthernet, withEth(t, syn4), true,
			detect.Probe{TS: ts0, Src: addr(v4A), Dst: addr(v4B), SrcPort: 40000, DstPort: 22, Kind: detect.KindTCP,
				Proto: detect.ProtoTCP, Flags: detect.FlagSYN, TTL: ttl4, HasMAC: true, SrcMAC: [6]byte(macA), Seq: testSeq}},
		{"ethernet ipv4 connect syn", layers.LinkTypeEthernet, withEth(t, stack4), true, onLink(tcpProbe(v4A, v4B, 40001, 80, detect.FlagSYN, true), layers.LinkTypeEthernet)},
		{"ethernet ipv6 syn", layers.LinkTypeEthernet, withEth(t, syn6), true,
			detect.Probe{TS: ts0, Src: addr(v6A), Dst: addr(v6B), SrcPort: 40000, DstPort: 22, Kind: detect.KindTCP,
				Proto: detect.ProtoTCP, Flags: detect.FlagSYN, TTL: ttl6, HasMAC: true, SrcMAC: [6]byte(macA), Seq: testSeq}},
		{"ethernet ipv4 udp with trailer", layers.LinkTypeEthernet, trailer, true, onLink(udpProbe(v4A, v4B, 5353, 161), layers.LinkTypeEthernet)},
		{"ethernet ipv6 udp", layers.LinkTypeEthernet, withEth(t, udp6), true, onLink(udpProbe(v6A, v6B, 5353, 53), layers.LinkTypeEthernet)},
		{"ethernet tcp options cut by the snap length", layers.LinkTypeEthernet, withEth(t, stack4)[:14+20+22], true, detect.Probe{}},
		{"ethernet tso", layers.LinkTypeEthernet, withEth(t, tso), true, detect.Probe{}},
		{"ipv4 total length within the tcp options", layers.LinkTypeEthernet, withEth(t, stackCut4), true,
			onLink(tcpProbe(v4A, v4B, 40001, 80, detect.FlagSYN, false), layers.LinkTypeEthernet)},
		{"ipv6 payload length within the tcp options", layers.LinkTypeRaw, stackCut6, true, tcpProbe(v6A, v6B, 40001, 80, detect.FlagSYN, false)},
		{"sll ipv4 syn", layers.LinkTypeLinuxSLL, withSLL(syn4), true, detect.Probe{}},
		{"sll ipv6 udp", layers.LinkTypeLinuxSLL, withSLL(udp6), true, onLink(udpProbe(v6A, v6B, 5353, 53), layers.LinkTypeLinuxSLL)},
		{"sll loopback", layers.LinkTypeLinuxSLL, withSLLType(udp4, arphrdLoopback, make([]byte, 6)), true, udpProbe(v4A, v4B, 5353, 161)},
		{"sll 8-byte address", layers.LinkTypeLinuxSLL, withSLLType(udp4, 1, []byte{1, 2, 3, 4, 5, 6, 7, 8}), true, udpProbe(v4A, v4B, 5353, 161)},
		{"sll2 ipv4 udp", layers.LinkTypeLinuxSLL2, withSLL2(udp4), true, onLink(udpProbe(v4A, v4B, 5353, 161), layers.LinkTypeLinuxSLL2)},
		{"sll2 ipv6 syn", layers.LinkTypeLinuxSLL2, withSLL2(syn6), true, detect.Probe{}},
		{"sll2 loopback", layers.LinkTypeLinuxSLL2, withSLL2Type(udp6, arphrdLoopback, make([]byte, 6)), true, udpProbe(v6A, v6B, 5353, 53)},
		{"sll2 tun", layers.LinkTypeLinuxSLL2, withSLL2Type(udp6, arphrdNone, nil), true, udpProbe(v6A, v6B, 5353, 53)},
		{"raw ipv4", layers.LinkTypeRaw, udp4, true, udpProbe(v4A, v4B, 5353, 161)},
		{"raw ipv6", layers.LinkTypeRaw, udp6, true, udpProbe(v6A, v6B, 5353, 53)},
		{"raw12 ipv4", 12, syn4, true, detect.Probe{}},
		{"raw14 ipv6", 14, syn6, true, detect.Probe{}},
		{"linktype ipv4", layers.LinkTypeIPv4, syn4, true, detect.Probe{}},
		{"linktype ipv6", layers.LinkTypeIPv6, syn6, true, detect.Probe{}},

		{"802.1Q", layers.LinkTypeEthernet, withVLAN(t, syn4), false, detect.Probe{}},
		{"ipv4 options", layers.LinkTypeEthernet, withEth(t, opts4), false, detect.Probe{}},
		{"ipv4 fragment", layers.LinkTypeEthernet, withEth(t, fragment4(syn4, 8)[0]), false, detect.Probe{}},
		{"ipv6 fragment", layers.LinkTypeEthernet, withEth(t, fragment6(syn6, 8, 9)[0]), false, detect.Probe{}},
		{"ipv4-mapped ipv6", layers.LinkTypeEthernet, withEth(t, mapped), false, detect.Probe{}},
		{"icmp unreachable", layers.LinkTypeEthernet, withEth(t, icmp4Unreach(t, v4B, v4A, 3, udp4)), false, detect.Probe{}},
		{"6in4 tunnel", layers.LinkTypeRaw, serialize(t, ip4Layer(v4A, v4B, layers.IPProtocolIPv6), gopacket.Payload(syn6)), false, detect.Probe{}},
		{"udp length 5", layers.LinkTypeRaw, udpBadLen, false, detect.Probe{}},
		{"ipv4 total length 16", layers.LinkTypeLinuxSLL, withSLL(total16), false, detect.Probe{}},
		{"ipv6 payload length 0", layers.LinkTypeRaw, func() []byte { f := append([]byte(nil), syn6...); f[4], f[5] = 0, 0; return f }(), false, detect.Probe{}},
		{"tcp data offset 4", layers.LinkTypeRaw, tcpOff4, false, detect.Probe{}},
		{"truncated tcp", layers.LinkTypeRaw, syn4[:30], false, detect.Probe{}},
		{"sll2 gre device", layers.LinkTypeLinuxSLL2, withSLL2Type(udp4, arphrdIPGRE, v4A.To4()), false, detect.Probe{}},
		{"sll address length 9", layers.LinkTypeLinuxSLL, func() []byte { f := withSLL(udp4); f[5] = 9; return f }(), false, detect.Probe{}},
		{"bsd loopback", layers.LinkTypeNull, withNull(syn4), false, detect.Probe{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := mustDecoder(t, c.link)
			var p detect.Probe
			ok := d.Decode(c.data, ts0, &p)
			if got := d.fastHits == 1; got != c.fast {
				t.Errorf("fast path taken: %v, want %v (decoded %v, stats %+v)", got, c.fast, ok, d.Stats())
			}
			if c.want != (detect.Probe{}) && p != c.want {
				t.Errorf("probe\n got %+v\nwant %+v", p, c.want)
			}
		})
	}
}

// frameSource yields the frames of a capture file with their link types,
// undecoded.
type frameSource struct {
	pcap *pcapgo.Reader
	ng   *pcapgo.NgReader
}

func openFrames(tb testing.TB, path string) *frameSource {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	br := bufio.NewReader(f)
	head, _ := br.Peek(4)
	if len(head) == 4 && binary.BigEndian.Uint32(head) == magicPcapNG {
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			tb.Fatalf("%s: %v", path, err)
		}
		return &frameSource{ng: ng}
	}
	r, err := pcapgo.NewReader(br)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return &frameSource{pcap: r}
}

// next returns the next frame, its timestamp and link type, or io.EOF.
func (s *frameSource) next() ([]byte, int64, layers.LinkType, error) {
	if s.pcap != nil {
		data, ci, err := s.pcap.ReadPacketData()
		return data, ci.Timestamp.UnixNano(), s.pcap.LinkType(), err
	}
	data, ci, err := s.ng.ReadPacketData()
	if err != nil {
		return nil, 0, 0, err
	}
	link := s.ng.LinkType()
	if iface, err := s.ng.Interface(ci.InterfaceIndex); err == nil {
		link = iface.LinkType
	}
	return data, ci.Timestamp.UnixNano(), link, nil
}

// replayBoth decodes every frame of a capture file with both paths, one
// twin per link type, failing on the first frame they disagree on, and
// returns how many frames there were and how many took the fast path.
func replayBoth(t *testing.T, path string) (frames, fast int) {
	t.Helper()
	src := openFrames(t, path)
	twins := map[layers.LinkType]*twinDecoder{}
	for {
		data, ts, link, err := src.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: frame %d: %v", path, frames+1, err)
		}
		d := twins[link]
		if d == nil {
			d = mustDecoder(t, link)
			twins[link] = d
		}
		var p detect.Probe
		d.Decode(data, ts, &p)
		if t.Failed() {
			t.Fatalf("%s: frame %d", path, frames+1)
		}
		frames++
	}
	for _, d := range twins {
		fast += d.fastHits
	}
	return frames, fast
}

// TestFastPathCaptures replays every recorded capture through both paths
// and logs how many frames took the fast path.
func TestFastPathCaptures(t *testing.T) {
	var files []string
	for _, glob := range []string{"../testdata/pcaps/*.pcap", "../testdata/pcaps/*.pcapng", "../testdata/captures/*.pcap"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 20 {
		t.Fatalf("only %d captures found: %v", len(files), files)
	}
	var all, allFast int
	for _, path := range files {
		frames, fast := replayBoth(t, path)
		t.Logf("%-40s %5d frames, %5d (%5.1f%%) on the fast path", strings.TrimPrefix(path, "../testdata/"), frames, fast, pct(fast, frames))
		all += frames
		allFast += fast
	}
	t.Logf("all captures: %d frames, %d (%.1f%%) on the fast path", all, allFast, pct(allFast, all))
	if allFast == 0 {
		t.Error("no frame took the fast path")
	}
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// TestFastPathGensyn replays synthetic SYN scans written by
// scripts/gensyn (the benchmarks' capture): the paths agree, and every
// frame takes the fast path.
func TestFastPathGensyn(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs scripts/gensyn")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		if goBin, err = exec.LookPath("/usr/local/go/bin/go"); err != nil {
			t.Skip("no go command to run scripts/gensyn with")
		}
	}
	for _, c := range []struct{ n, sources int }{{20000, 100}, {5000, 5000}} {
		path := filepath.Join(t.TempDir(), "syn.pcap")
		cmd := exec.Command(goBin, "run", "./scripts/gensyn", "-o", path, "-n", strconv.Itoa(c.n), "-sources", strconv.Itoa(c.sources))
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gensyn: %v\n%s", err, out)
		}
		frames, fast := replayBoth(t, path)
		t.Logf("gensyn -n %d -sources %d: %d frames, %d (%.1f%%) on the fast path", c.n, c.sources, frames, fast, pct(fast, frames))
		if frames != c.n || fast != frames {
			t.Errorf("%d frames (want %d), %d on the fast path (want all)", frames, c.n, fast)
		}
	}
}

// fuzzLinks are the link types FuzzFastPath decodes (every one NewDecoder
// accepts), chosen by the fuzzer's first argument.
var fuzzLinks = []layers.LinkType{
	layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2,
	layers.LinkTypeRaw, linkTypeRawDLT12, linkTypeRawDLT14, layers.LinkTypeIPv4, layers.LinkTypeIPv6,
	layers.LinkTypeNull, layers.LinkTypeLoop,
}

func fuzzLinkIndex(l layers.LinkType) uint8 {
	for i, x := range fuzzLinks {
		if x == l {
			return uint8(i)
		}
	}
	panic(l)
}

// FuzzFastPath: for any bytes on any link type, the Decoder with the fast
// path and the one without it give the same result, Probe and change in
// Stats. Each link type's pair of decoders is kept across inputs, so
// fragments accumulate in both tables alike.
func FuzzFastPath(f *testing.F) {
	seed := func(link layers.LinkType, data []byte) { f.Add(fuzzLinkIndex(link), data) }
	syn4 := ip4TCP(f, v4A, v4B, 40000, 22, detect.FlagSYN, nmapSYNOpts)
	syn6 := ip6TCP(f, v6A, v6B, 40000, 22, detect.FlagSYN, linuxSYNOpts)
	udp4 := ip4UDP(f, v4A, v4B, 5353, 161, []byte("probe"))
	udp6 := ip6UDP(f, v6A, v6B, 5353, 53, []byte("q"))
	mapped := ip6TCP(f, []byte{10: 0xff, 11: 0xff, 12: 198, 13: 51, 14: 100, 15: 9}, v6B, 1, 2, detect.FlagSYN, nil)
	for _, pkt := range [][]byte{syn4, syn6, udp4, udp6, mapped, syn4[:30], syn6[:50], fragment4(syn4, 8)[0], fragment6(syn6, 8, 3)[1]} {
		seed(layers.LinkTypeEthernet, withEth(f, pkt))
		seed(layers.LinkTypeEthernet, withVLAN(f, pkt))
		seed(layers.LinkTypeLinuxSLL, withSLL(pkt))
		seed(layers.LinkTypeLinuxSLL, withSLLType(pkt, arphrdLoopback, make([]byte, 6)))
		seed(layers.LinkTypeLinuxSLL2, withSLL2(pkt))
		seed(layers.LinkTypeLinuxSLL2, withSLL2Type(pkt, arphrdIPGRE, v4A.To4()))
		seed(layers.LinkTypeRaw, pkt)
		seed(layers.LinkTypeIPv4, pkt)
		seed(layers.LinkTypeNull, withNull(pkt))
	}
	seed(layers.LinkTypeEthernet, append(withEth(f, udp4), make([]byte, 20)...))
	seed(layers.LinkTypeEthernet, withEth(f, icmp6Unreach(f, v6B, v6A, 4, udp6)))
	seed(layers.LinkTypeLinuxSLL2, withSLL2(icmp4Unreach(f, v4B, v4A, 3, udp4)))

	type pair struct{ fast, slow *Decoder }
	decs := map[layers.LinkType]pair{}
	f.Fuzz(func(t *testing.T, link uint8, data []byte) {
		lt := fuzzLinks[int(link)%len(fuzzLinks)]
		d, ok := decs[lt]
		if !ok {
			d = pair{plainDecoder(t, lt), slowDecoder(t, lt)}
			decs[lt] = d
		}
		p := detect.Probe{TS: 99, Kind: detect.KindTCP, Seq: 7} // Decode must overwrite or clear it
		if _, diff := decodeBoth(d.fast, d.slow, data, int64(len(data))*1e6, &p); diff != "" {
			t.Fatalf("%v: %s", lt, diff)
		}
	})
}

// BenchmarkDecode decodes one frame over and over with the fast path and
// with the parser path alone: an nmap-like SYN (Ethernet, IPv4, TCP with
// an MSS option, as scripts/gensyn writes them) and its IPv6 counterpart.
func BenchmarkDecode(b *testing.B) {
	frames := []struct {
		name  string
		frame []byte
	}{
		{"ipv4-syn", withEth(b, ip4TCP(b, v4A, v4B, 40000, 22, detect.FlagSYN, nmapSYNOpts))},
		{"ipv6-syn", withEth(b, ip6TCP(b, v6A, v6B, 40000, 22, detect.FlagSYN, nmapSYNOpts))},
	}
	for _, fr := range frames {
		for _, path := range []string{"fast", "slow"} {
			b.Run(fr.name+"/"+path, func(b *testing.B) {
				d := plainDecoder(b, layers.LinkTypeEthernet)
				if path == "slow" {
					d.fast = fastNone
				}
				var p detect.Probe
				b.ReportAllocs()
				b.SetBytes(int64(len(fr.frame)))
				for i := 0; b.Loop(); i++ {
					if !d.Decode(fr.frame, ts0+int64(i), &p) {
						b.Fatal("not decoded")
					}
				}
			})
		}
	}
}

// BenchmarkFileNextFile reads the classic pcap file named by
// $SW_BENCH_PCAP (e.g. scripts/gensyn's 1,000,000-packet capture)
// through FileSource.Next, with the fast path and with the parser path
// alone: one op is one record (the file is reopened when it ends). It
// reports the share of the file's records the fast path takes as fast-%.
// Skipped when the variable is not set.
func BenchmarkFileNextFile(b *testing.B) {
	path := os.Getenv("SW_BENCH_PCAP")
	if path == "" {
		b.Skip("set SW_BENCH_PCAP to a classic pcap file")
	}
	var frames, fast int
	src := openFrames(b, path)
	scratch := map[layers.LinkType]*Decoder{}
	for {
		data, ts, link, err := src.next()
		if err != nil {
			break
		}
		if scratch[link] == nil {
			scratch[link] = plainDecoder(b, link)
		}
		var p detect.Probe
		if scratch[link].decodeFast(data, ts, &p) {
			fast++
		}
		frames++
	}
	for _, mode := range []string{"fast", "slow"} {
		b.Run(mode, func(b *testing.B) {
			benchFileNext(b, path, func(s *FileSource) {
				if s.ng != nil {
					b.Fatalf("%s: pcapng, want classic pcap", path)
				}
				if mode == "slow" {
					s.dec.fast = fastNone
				}
			})
			if mode == "fast" {
				b.ReportMetric(pct(fast, frames), "fast-%")
			}
		})
	}
}
