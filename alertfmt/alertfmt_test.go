package alertfmt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/daemon"
	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/replay"
)

// reference is the oracle's output for a, in one format.
func reference(t testing.TB, a *detect.Alert, file string, asJSON bool) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := writeAlert(&b, a, file, asJSON); err != nil {
		t.Fatalf("reference: %v", err)
	}
	return b.Bytes()
}

// check compares both formats of a, with and without file, with the
// oracle's; what describes the alert in a failure.
func check(t testing.TB, what string, a *detect.Alert, file string) {
	t.Helper()
	// appended after something, into a buffer too small: the prefix stays
	// and growing works
	prefix := []byte("prefix:")
	for _, f := range []string{"", file} {
		for _, asJSON := range []bool{false, true} {
			want := reference(t, a, f, asJSON)
			var got []byte
			if asJSON {
				got = AppendJSON(slices.Clip(prefix), a, f)
			} else {
				got = AppendText(slices.Clip(prefix), a, f)
			}
			if !bytes.HasPrefix(got, prefix) {
				t.Fatalf("%s: the prefix is lost: %q", what, got)
			}
			if got := got[len(prefix):]; !bytes.Equal(got, want) {
				t.Errorf("%s, file %q, json %v:\n got %q\nwant %q", what, f, asJSON, got, want)
				return
			}
		}
	}
}

// cloneAlert returns a copy of a that shares nothing with it (the engine
// may reuse its alert from call to call).
func cloneAlert(a *detect.Alert) *detect.Alert {
	c := *a
	c.Ports = slices.Clone(a.Ports)
	c.Dst = slices.Clone(a.Dst)
	return &c
}

// The recorded captures: testdata/pcaps (scans and their benign traffic)
// and testdata/captures (an IMAP client, everyday traffic, nmap -O, ACK
// and Maimon scans), as cmd/scanwarden's golden test replays them.
func captureFiles(t testing.TB) []string {
	t.Helper()
	a, err := filepath.Glob(filepath.Join("..", "testdata", "pcaps", "*.pcap*"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := filepath.Glob(filepath.Join("..", "testdata", "captures", "*.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	files := append(a, b...)
	if len(a) < 10 || len(b) < 5 {
		t.Fatalf("recorded captures missing: %v", files)
	}
	return files
}

// engineConfigs are the engines the captures are replayed with: the
// shipped defaults (replay's without a config file), the same with the
// lab's protected networks named (the golden test's --home), and one
// that flags nearly everything (every port a trap port, the first probe
// an alert), so that benign sources' alerts are formatted too.
func engineConfigs() map[string]detect.Config {
	def := daemon.EngineConfig(conf.Default())
	home := def
	home.Home = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("fd00:77::/64")}
	var all detect.PortSet
	all.AddRange(0, math.MaxUint16)
	touchy := def
	touchy.Threshold, touchy.ScanTrigger, touchy.TrapTCP, touchy.TrapUDP = 1, 1, &all, &all
	return map[string]detect.Config{"defaults": def, "home": home, "touchy": touchy}
}

// capturedAlert is an alert of a recorded capture and the file it came
// from.
type capturedAlert struct {
	a    *detect.Alert
	file string
}

var captured struct {
	once   sync.Once
	alerts []capturedAlert
	err    error
}

// capturedAlerts replays every recorded capture with every engine
// configuration, once per test binary, checking each alert as it is
// handed over against the oracle, and returns copies of them all.
func capturedAlerts(t testing.TB) []capturedAlert {
	t.Helper()
	files := captureFiles(t)
	captured.once.Do(func() {
		cfgs := engineConfigs()
		names := slices.Sorted(func(yield func(string) bool) {
			for n := range cfgs {
				if !yield(n) {
					return
				}
			}
		})
		for _, name := range names {
			for _, merge := range []bool{false, true} {
				opt := replay.Options{Engine: cfgs[name], Merge: merge}
				_, err := replay.Files(context.Background(), files, opt, func(a *detect.Alert, file string) error {
					check(t, fmt.Sprintf("%s (%s, merge %v): alert of %s", filepath.Base(file), name, merge, a.Src), a, file)
					captured.alerts = append(captured.alerts, capturedAlert{cloneAlert(a), file})
					return nil
				})
				if err != nil {
					captured.err = fmt.Errorf("replay (%s, merge %v): %w", name, merge, err)
					return
				}
			}
		}
	})
	if captured.err != nil {
		t.Fatal(captured.err)
	}
	return captured.alerts
}

// TestAlertCaptures: every alert of every recorded capture, as replay
// hands it over and as kept, is formatted exactly as the oracle formats
// it, in both formats, with and without a file name; and the captures
// give alerts of every kind the formats tell apart.
func TestAlertCaptures(t *testing.T) {
	alerts := capturedAlerts(t)
	var forged, genuine, v6, udp, noDst, multiProto int
	for _, c := range alerts {
		check(t, fmt.Sprintf("%s: kept alert of %s", filepath.Base(c.file), c.a.Src), c.a, c.file)
		switch c.a.Origin.Verdict {
		case detect.Forged:
			forged++
		case detect.Genuine:
			genuine++
		}
		if c.a.Src.Is6() {
			v6++
		}
		if c.a.Proto == detect.ProtoUDP {
			udp++
		}
		if len(c.a.Dst) == 0 {
			noDst++
		}
		if len(c.a.Ports) > 1 && c.a.Ports[0].Proto != c.a.Ports[len(c.a.Ports)-1].Proto {
			multiProto++
		}
	}
	t.Logf("%d alerts: %d forged, %d genuine, %d IPv6, %d UDP, %d without destinations, %d with TCP and UDP ports",
		len(alerts), forged, genuine, v6, udp, noDst, multiProto)
	if len(alerts) < 100 || forged == 0 || genuine == 0 || v6 == 0 || udp == 0 {
		t.Errorf("the captures' alerts miss a kind: %d alerts, %d forged, %d genuine, %d IPv6, %d UDP",
			len(alerts), forged, genuine, v6, udp)
	}
}

// trickyStrings are pieces of strings that encoding/json escapes, or
// passes as they are while an escaper could get them wrong.
var trickyStrings = []string{
	"", "a", "plain words 0123", `"`, `\`, `\"`, "<", ">", "&", "</script>", "a&b",
	"\x00", "\x01", "\x07", "\b", "\t", "\n", "\v", "\f", "\r", "\x1b", "\x1f", " ", "\x7f",
	"\u2028", "\u2029", "\u2027", "\u202a", "\ufffd", "\ufeff", "é", "日本", "😀", "\U0010ffff",
	"\xff", "\xfe", "\x80", "\xbf", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xe2\x80", "\xe2\x80\xa8\xa8",
	"\xed\xa0\x80", "\xed\xbf\xbf", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf0\x9f\x98",
	"%", "%25", "'", "/", "{", "}", "[", "]", ",", ":",
}

// trickyString joins a few random pieces, with random bytes now and then.
func trickyString(r *rand.Rand) string {
	var b strings.Builder
	for n := r.IntN(6); n > 0; n-- {
		if r.IntN(8) == 0 {
			b.WriteByte(byte(r.UintN(256)))
			continue
		}
		b.WriteString(trickyStrings[r.IntN(len(trickyStrings))])
	}
	return b.String()
}

// randomAddr is one of every kind netip has: the zero Addr, IPv4, IPv6,
// IPv4-mapped IPv6, the latter two with a zone of any bytes.
func randomAddr(r *rand.Rand) netip.Addr {
	var b16 [16]byte
	for i := range b16 {
		if r.IntN(3) > 0 { // zeros, for :: compaction
			b16[i] = byte(r.UintN(256))
		}
	}
	var a netip.Addr
	switch r.IntN(8) {
	case 0:
		return netip.Addr{}
	case 1, 2, 3:
		return netip.AddrFrom4([4]byte(b16[:4]))
	case 4:
		b16 = [16]byte{10: 0xff, 11: 0xff, 12: b16[12], 13: b16[13], 14: b16[14], 15: b16[15]}
		a = netip.AddrFrom16(b16)
	default:
		a = netip.AddrFrom16(b16)
	}
	if r.IntN(3) == 0 {
		a = a.WithZone(trickyString(r))
	}
	return a
}

var interestingInts = []int64{0, 1, -1, 9, 10, math.MaxInt64, math.MinInt64, math.MaxInt32, math.MinInt32,
	1_700_000_000_123_456_789, 1_700_000_000_000_000_000, -1_000_000_000, 946_684_799_999_999_999}

func randomInt(r *rand.Rand) int64 {
	if r.IntN(2) == 0 {
		return interestingInts[r.IntN(len(interestingInts))]
	}
	return int64(r.Uint64())
}

// randomPorts: none, a few, more than appendPortNumbers looks back over,
// sorted or not, with runs, repeats (one number under two protocols),
// the wrap from 65535 to 0 and protocols other than TCP and UDP.
func randomPorts(r *rand.Rand) []detect.PortRef {
	var n int
	switch r.IntN(6) {
	case 0:
		return nil
	case 1:
		return []detect.PortRef{}
	case 2:
		n = smallPorts + r.IntN(3) - 1
	case 3:
		n = r.IntN(300)
	default:
		n = r.IntN(12)
	}
	ps := make([]detect.PortRef, n)
	protos := []uint8{detect.ProtoTCP, detect.ProtoUDP, detect.ProtoTCP, detect.ProtoUDP, 0, 1, 255}
	port := uint16(r.UintN(65536))
	if r.IntN(4) == 0 {
		port = math.MaxUint16 - uint16(r.IntN(3))
	}
	for i := range ps {
		switch r.IntN(5) {
		case 0:
			port = uint16(r.UintN(65536))
		case 1:
			port = uint16(r.IntN(8))
		default:
			port++ // runs, and the wrap
		}
		ps[i] = detect.PortRef{Proto: protos[r.IntN(len(protos))], Port: port}
		if i > 0 && r.IntN(3) == 0 {
			ps[i].Proto = ps[i-1].Proto
		}
	}
	if r.IntN(2) == 0 {
		slices.SortFunc(ps, func(x, y detect.PortRef) int {
			if x.Proto != y.Proto {
				return int(x.Proto) - int(y.Proto)
			}
			return int(x.Port) - int(y.Port)
		})
	}
	return ps
}

// randomAlert is any alert a detect.Alert can hold, not only one the
// engine raises: types, triggers and verdicts out of range too.
func randomAlert(r *rand.Rand) *detect.Alert {
	a := &detect.Alert{
		Src:     randomAddr(r),
		Type:    detect.ScanType(r.IntN(12)),
		Trigger: detect.Trigger(r.IntN(4)),
		Time:    randomInt(r),
		First:   randomInt(r),
		Probes:  uint32(randomInt(r)),
		Score:   int(randomInt(r)),
		Proto:   []uint8{detect.ProtoTCP, detect.ProtoUDP, 0, 1, 255}[r.IntN(5)],
		Port:    uint16(r.UintN(65536)),
		Ports:   randomPorts(r),
		Origin:  detect.Judgement{Verdict: detect.Verdict(r.IntN(7)), Evidence: trickyString(r)},
	}
	if r.IntN(4) == 0 {
		a.Type = detect.ScanType(r.UintN(256))
	}
	switch r.IntN(4) {
	case 0:
	case 1:
		a.Dst = []netip.Addr{}
	default:
		for n := r.IntN(10); n > 0; n-- {
			a.Dst = append(a.Dst, randomAddr(r))
		}
	}
	return a
}

// TestAlertRandom: generated alerts of every shape, addresses of every
// kind netip has, and strings encoding/json escapes (or must not) in the
// evidence, the zones and the file name.
func TestAlertRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 0x5ca9))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for i := range n {
		a := randomAlert(r)
		check(t, fmt.Sprintf("alert %d %+v", i, *a), a, trickyString(r))
		if t.Failed() {
			return
		}
	}
}

// TestAlertEscapes: each tricky piece alone, where an alert carries a
// string: the evidence, the file name, the zone of the source and of a
// destination; and every single byte and every rune around the special
// ones.
func TestAlertEscapes(t *testing.T) {
	var pieces []string
	pieces = append(pieces, trickyStrings...)
	for b := range 256 {
		pieces = append(pieces, string([]byte{byte(b)}), "x"+string([]byte{byte(b)})+"y")
	}
	for _, c := range []rune{0x7f, 0x80, 0x7ff, 0x800, 0x2027, 0x2028, 0x2029, 0x202a, 0xd7ff, 0xe000, 0xfffd, 0xffff, 0x10000, 0x10ffff} {
		pieces = append(pieces, string(c), "<"+string(c)+">")
	}
	for _, s := range pieces {
		for _, v := range []detect.Verdict{detect.Forged, detect.Genuine, detect.Unjudged} {
			a := &detect.Alert{
				Src:    netip.MustParseAddr("fe80::1").WithZone(s),
				Dst:    []netip.Addr{netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("::ffff:1.2.3.4").WithZone(s)},
				Ports:  []detect.PortRef{{Proto: detect.ProtoTCP, Port: 22}},
				Origin: detect.Judgement{Verdict: v, Evidence: s},
			}
			check(t, fmt.Sprintf("piece %q, %v", s, v), a, s)
		}
	}
}

// TestAlertJSONValid: the JSON is one valid object per line whatever the
// alert (that its strings are the oracle's, byte for byte, the other tests
// check).
func TestAlertJSONValid(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 0x5ca9))
	for range 2000 {
		a := randomAlert(r)
		line := AppendJSON(nil, a, "f")
		if !json.Valid(line) || bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("not one JSON line: %q", line)
		}
	}
}

// allocAlerts are alerts that take every path of the formats: an
// engine's, a forged one with escapes in its evidence and a zone, one
// with more ports than appendPortNumbers looks back over.
func allocAlerts(t testing.TB) []*detect.Alert {
	alerts := []*detect.Alert{}
	for _, c := range capturedAlerts(t) {
		alerts = append(alerts, c.a)
	}
	many := make([]detect.PortRef, 200)
	for i := range many {
		many[i] = detect.PortRef{Proto: detect.ProtoTCP, Port: uint16(i / 2 * 3)}
		if i%2 == 1 {
			many[i].Proto = detect.ProtoUDP
		}
	}
	return append(alerts, &detect.Alert{
		Src:    netip.MustParseAddr("fe80::66").WithZone("eth<0>\u2028\xff"),
		Type:   detect.TypeUDP,
		Ports:  many,
		Dst:    []netip.Addr{{}, netip.MustParseAddr("fd00:77::10")},
		Origin: detect.Judgement{Verdict: detect.Forged, Evidence: "frames from \"02:00\" & <\x01>\t\xfe\u2029"},
	})
}

// TestAlertAllocs: neither format allocates when the buffer has room.
func TestAlertAllocs(t *testing.T) {
	alerts := allocAlerts(t)
	buf := make([]byte, 0, 64<<10)
	for _, f := range []struct {
		name   string
		append func([]byte, *detect.Alert, string) []byte
	}{{"AppendText", AppendText}, {"AppendJSON", AppendJSON}} {
		i := 0
		allocs := testing.AllocsPerRun(len(alerts), func() {
			buf = f.append(buf[:0], alerts[i%len(alerts)], "../testdata/pcaps/<syn>.pcap")
			i++
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per alert, want 0", f.name, allocs)
		}
	}
}

func benchAlerts(b *testing.B) []*detect.Alert {
	var alerts []*detect.Alert
	for _, c := range capturedAlerts(b) {
		alerts = append(alerts, c.a)
	}
	return alerts
}

// BenchmarkAppendJSON formats the recorded captures' alerts in turn, as
// --json does (a file name given: several files replayed), against the
// oracle (json.Marshal then fmt.Fprintf into a reused buffer).
func BenchmarkAppendJSON(b *testing.B) { benchFormat(b, true, AppendJSON) }

// BenchmarkAppendText is BenchmarkAppendJSON for the readable line.
func BenchmarkAppendText(b *testing.B) { benchFormat(b, false, AppendText) }

func benchFormat(b *testing.B, asJSON bool, format func([]byte, *detect.Alert, string) []byte) {
	alerts := benchAlerts(b)
	const file = "../testdata/pcaps/syn.pcap"
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 4096)
		i := 0
		for b.Loop() {
			buf = format(buf[:0], alerts[i%len(alerts)], file)
			i++
		}
	})
	b.Run("reference", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		i := 0
		for b.Loop() {
			buf.Reset()
			if err := writeAlert(&buf, alerts[i%len(alerts)], file, asJSON); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// FuzzAppendJSON builds an alert from the fuzzer's values (both formats
// are checked against the oracle, the JSON's validity too).
func FuzzAppendJSON(f *testing.F) {
	r := rand.New(rand.NewPCG(16, 0x5ca9))
	for i, s := range trickyStrings {
		f.Add(s, trickyStrings[(i+1)%len(trickyStrings)], trickyStrings[(i+7)%len(trickyStrings)],
			[]byte{1, 2, 3, 4}, uint8(detect.Forged), uint8(i), uint8(detect.TriggerTrap), uint8(detect.ProtoTCP),
			uint16(i), []byte{detect.ProtoTCP, 0, 22, detect.ProtoUDP, 0, 22, detect.ProtoTCP, 0, 23},
			randomInt(r), randomInt(r), uint32(i), randomInt(r))
	}
	for range 32 {
		a := randomAlert(r)
		var src []byte
		if a.Src.IsValid() {
			src = a.Src.AsSlice()
		}
		var ports []byte
		for _, p := range a.Ports {
			ports = append(ports, p.Proto, byte(p.Port>>8), byte(p.Port))
		}
		f.Add(a.Origin.Evidence, trickyString(r), a.Src.Zone(), src, uint8(a.Origin.Verdict), uint8(a.Type),
			uint8(a.Trigger), a.Proto, a.Port, ports, a.Time, a.First, a.Probes, int64(a.Score))
	}
	f.Fuzz(func(t *testing.T, evidence, file, zone string, src []byte, verdict, typ, trigger, proto uint8,
		port uint16, ports []byte, tm, first int64, probes uint32, score int64) {
		a := &detect.Alert{
			Type: detect.ScanType(typ), Trigger: detect.Trigger(trigger), Time: tm, First: first,
			Probes: probes, Score: int(score), Proto: proto, Port: port,
			Origin: detect.Judgement{Verdict: detect.Verdict(verdict), Evidence: evidence},
		}
		if ip, ok := netip.AddrFromSlice(src); ok {
			a.Src = ip.WithZone(zone)
		}
		for i := 0; i+3 <= len(ports); i += 3 {
			a.Ports = append(a.Ports, detect.PortRef{Proto: ports[i], Port: uint16(ports[i+1])<<8 | uint16(ports[i+2])})
		}
		if len(src) > 0 {
			a.Dst = append(a.Dst, a.Src, netip.AddrFrom16([16]byte{15: src[0]}).WithZone(file))
		}
		check(t, fmt.Sprintf("%+v", *a), a, file)
		if line := AppendJSON(nil, a, file); !json.Valid(line) {
			t.Errorf("invalid JSON: %q", line)
		}
	})
}

// TestAppendTime: appendTime writes what time's AppendFormat writes with
// detect.TimeLayout, for the edges of days, months, leap years and
// centuries, negative times, and a million random times across years 0
// to 9999 and beyond.
func TestAppendTime(t *testing.T) {
	want := func(ns int64) string { return time.Unix(0, ns).UTC().Format(detect.TimeLayout) }
	check := func(ns int64) {
		t.Helper()
		if got := string(appendTime(nil, ns)); got != want(ns) {
			t.Fatalf("%d: %q, want %q", ns, got, want(ns))
		}
	}
	for _, ns := range []int64{0, 1, -1, 999999999, 1e9, -1e9, -1e9 - 1, 86400e9 - 1, 86400e9, -86400e9, -86400e9 + 1,
		math.MaxInt64, math.MinInt64, math.MinInt64 + 1} {
		check(ns)
	}
	for _, d := range []time.Time{
		time.Date(2000, 2, 28, 23, 59, 59, 999999999, time.UTC), time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC),
		time.Date(2000, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(1900, 2, 28, 12, 0, 0, 0, time.UTC),
		time.Date(1900, 3, 1, 12, 0, 0, 0, time.UTC), time.Date(2100, 3, 1, 0, 0, 0, 1, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(2026, 12, 31, 23, 59, 59, 5, time.UTC),
		time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2262, 4, 11, 23, 47, 16, 854775807, time.UTC),
	} {
		check(d.UnixNano())
	}
	r := rand.New(rand.NewPCG(7, 14))
	for range 1000000 {
		check(int64(r.Uint64()))
	}
}
