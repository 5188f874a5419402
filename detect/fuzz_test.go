package detect

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// FuzzEngine feeds the engine arbitrary sequences of probes (and of the
// calls the daemon makes between them: Hit, Rearm, Forget, SetTraps) on a
// table of 64 sources, and checks its invariants after each step: the
// table never holds more than MaxSources sources, every tracked source is
// found where the hash table says, each source's running score equals the
// recount of its targets' weights, an alert is well formed; and nothing
// panics.
//
// The input is a 4-byte header (window, threshold, trigger, home, trap
// ports, hash seed) and then 6 bytes a step, decoded by fuzzStep, for at
// most maxFuzzSteps steps.
func FuzzEngine(f *testing.F) {
	for _, seed := range [][]byte{
		{},
		{0, 0, 0, 0},
		// a SYN scan of closed ports: SYN, RST+ACK, ...
		append([]byte{2, 0, 0, 0},
			0, FlagSYN, 1, 2, 0x01, 1, 0, FlagRST|FlagACK, 2, 1, 0x10, 1,
			0, FlagSYN, 1, 2, 0x02, 1, 0, FlagRST|FlagACK, 2, 1, 0x20, 1,
			0, FlagSYN, 1, 2, 0x03, 1, 0, FlagRST|FlagACK, 2, 1, 0x30, 1,
			0, FlagSYN, 1, 2, 0x04, 1, 0, FlagRST|FlagACK, 2, 1, 0x40, 1),
		// stealth probes, a UDP probe and its ICMP answer, a trap hit,
		// a rearm and a forget, timestamps jumping back and far ahead
		{1, 3, 1, 7,
			0, FlagFIN, 3, 2, 0x05, 1, 0, 0, 3, 2, 0x06, 1, 0, FlagFIN | FlagPSH | FlagURG, 3, 2, 0x07, 0x81,
			1, 0, 4, 2, 0x08, 1, 2, 0, 2, 4, 0x80, 1, 2, 1, 2, 4, 0x80, 0xc1,
			0, FlagSYN, 5, 2, 0x03, 0xfe, 5 << 5, 0, 5, 2, 0x03, 1, 6 << 5, 0, 5, 0, 0, 0xff,
			7 << 5, 0, 5, 0, 0, 1, 0, FlagSYN, 5, 2, 0x03, 0xc3},
		// FIN+ACK (Maimon) and its RST, a half-open port, IPv6
		{3, 1, 2, 2,
			0, FlagFIN | FlagACK, 0x81, 0x82, 0x01, 1, 0, FlagRST, 0x82, 0x81, 0x10, 1,
			0, FlagSYN, 0x81, 0x82, 0x02, 1, 0, FlagSYN | FlagACK, 0x82, 0x81, 0x20, 1, 0, FlagRST, 0x81, 0x82, 0x02, 1},
	} {
		f.Add(seed)
	}
	// a flood of sources, past the table's size
	flood := []byte{0, 0, 0, 0}
	for i := range maxFuzzSteps {
		flood = append(flood, 0, FlagSYN, byte(i), byte(i+1), byte(i), 1)
	}
	f.Add(flood)

	f.Fuzz(func(t *testing.T, data []byte) {
		var hdr [4]byte
		data = data[copy(hdr[:], data):]
		e := fuzzEngine(t, hdr, 64)
		ts := int64(1_700_000_000) * int64(time.Second)
		// at most maxFuzzSteps steps: enough to fill the table twice over,
		// few enough that the fuzzer tries many sequences
		for step := 0; len(data) >= 6 && step < maxFuzzSteps; step++ {
			ts, _ = fuzzStep(t, e, data[:6], ts)
			data = data[6:]
			checkEngine(t, e, step)
		}
	})
}

// fuzzEngine makes the engine of a fuzz input's 4-byte header: window,
// threshold, trigger, home, trap ports, own addresses and hash seed, with
// a table of maxSources.
func fuzzEngine(t *testing.T, hdr [4]byte, maxSources int) *Engine {
	cfg := Config{
		Window:      []time.Duration{0, time.Millisecond, time.Second, 600 * time.Second}[hdr[0]&3],
		Threshold:   []int{0, 1, 3, 12, 40, 1000, 7, 2}[hdr[0]>>2&7],
		ScanTrigger: int(hdr[0] >> 5 & 3),
		MaxSources:  maxSources,
	}
	switch hdr[1] & 3 {
	case 1:
		cfg.Home = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/26")}
	case 2:
		cfg.Home = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/25"), netip.MustParsePrefix("2001:db8::/120")}
	}
	if hdr[1]&4 != 0 {
		cfg.TrapTCP = fuzzTraps(hdr[2])
	}
	if hdr[1]&8 != 0 {
		cfg.TrapUDP = fuzzTraps(hdr[2] >> 4)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if hdr[1]&16 != 0 { // trap hits to these count at once, others await answers
		e.SetOwn([]netip.Addr{fuzzAddr(2), fuzzAddr(0x82)})
	}
	// fixed seeds: a failure replays the same way
	e.seeds = seeds{uint64(hdr[3]) * 0x9e3779b97f4a7c15, uint64(hdr[3]) ^ 0x5ca4}
	return e
}

// maxFuzzSteps bounds the steps of one input.
const maxFuzzSteps = 160

// fuzzTraps is one of a few trap sets over the fuzz's ports.
func fuzzTraps(sel byte) *PortSet {
	var s PortSet
	for i, p := range fuzzPorts {
		if sel>>(i%4)&1 != 0 {
			s.Add(p)
		}
	}
	return &s
}

// fuzzPorts is the fuzz's port space: small, so that answers meet probes.
var fuzzPorts = [16]uint16{1, 22, 80, 111, 443, 1024, 31337, 65535, 0, 53, 123, 161, 2049, 40000, 40001, 8080}

// fuzzAddr maps a byte to an address: 10.0.0.0/25 and 2001:db8::/121,
// with a few odd ones among them (invalid, unspecified, multicast,
// broadcast, IPv4-mapped IPv6, zoned).
func fuzzAddr(b byte) netip.Addr {
	switch b {
	case 0x7f:
		return netip.Addr{}
	case 0x7e:
		return netip.IPv4Unspecified()
	case 0x7d:
		return netip.AddrFrom4([4]byte{224, 0, 0, 251})
	case 0x7c:
		return netip.AddrFrom4([4]byte{255, 255, 255, 255})
	case 0xff:
		return netip.IPv6Unspecified()
	case 0xfe:
		return netip.MustParseAddr("::ffff:10.0.0.1")
	case 0xfd:
		return netip.MustParseAddr("ff02::1")
	case 0xfc:
		return netip.MustParseAddr("2001:db8::1%eth0")
	}
	if b&0x80 == 0 {
		return netip.AddrFrom4([4]byte{10, 0, 0, b})
	}
	a := netip.MustParseAddr("2001:db8::").As16()
	a[15] = b & 0x7f
	return netip.AddrFrom16(a)
}

// fuzzStep decodes 6 bytes into one step and runs it; it returns the
// step's timestamp.
//
//	d[0]: bits 7-5 the operation (0-4 Process, 5 Hit, 6 Rearm, 7 Forget or
//	      SetTraps), bits 1-0 the kind (TCP, UDP, unreach, none), bit 2 the
//	      protocol of an unreach (TCP/UDP), bit 3 StackSYN, bit 4 Frag
//	d[1]: TCP flags (an unreach's code)
//	d[2], d[3]: source and destination (fuzzAddr)
//	d[4]: destination port (low 4 bits) and source port (high 4 bits)
//	d[5]: time: bits 7-6 say how it moves, bits 5-0 by how much
func fuzzStep(t *testing.T, e *Engine, d []byte, ts int64) (int64, *Alert) {
	amount := int64(d[5] & 63)
	switch d[5] >> 6 {
	case 0: // forward by microseconds
		ts += amount * int64(time.Microsecond)
	case 1: // forward by seconds
		ts += amount * int64(time.Second)
	case 2: // backward by milliseconds
		ts -= amount * int64(time.Millisecond)
	case 3: // a jump
		switch amount & 7 {
		case 0:
			ts = 0
		case 1:
			ts = math.MaxInt64 - int64(amount)
		case 2:
			ts = math.MinInt64 + int64(amount)
		case 3:
			ts = -int64(amount) * int64(time.Hour)
		default:
			ts += int64(amount) * int64(time.Hour)
		}
	}
	src, dst := fuzzAddr(d[2]), fuzzAddr(d[3])
	dport, sport := fuzzPorts[d[4]&15], fuzzPorts[d[4]>>4]
	switch op := d[0] >> 5; op {
	case 5:
		proto := ProtoTCP
		if d[0]&4 != 0 {
			proto = ProtoUDP
		}
		a := e.Hit(src, dst, proto, dport, ts)
		checkAlert(t, a, ts)
		return ts, a
	case 6:
		e.Rearm(src, ts+int64(d[1])*int64(time.Millisecond), d[0]&1 != 0)
	case 7:
		if d[0]&1 == 0 {
			e.Forget(src)
		} else {
			e.SetTraps(fuzzTraps(d[1]), fuzzTraps(d[1]>>4))
		}
	default:
		p := Probe{TS: ts, Src: AddrOf(src), Dst: AddrOf(dst), SrcPort: sport, DstPort: dport, Flags: d[1],
			StackSYN: d[0]&8 != 0, Frag: d[0]&16 != 0}
		switch d[0] & 3 {
		case 0:
			p.Kind, p.Proto = KindTCP, ProtoTCP
		case 1:
			p.Kind, p.Proto, p.Flags = KindUDP, ProtoUDP, 0
		case 2:
			p.Kind, p.Proto, p.Flags, p.Code = KindUnreach, ProtoTCP, 0, d[1]
			if d[0]&4 != 0 {
				p.Proto = ProtoUDP
			}
		}
		if d[0]&3 < 2 && d[0]&4 != 0 { // a frame's evidence (see LinkSeen)
			p.HasMAC, p.SrcMAC, p.TTL = true, [6]byte{2, 0, 0, 0, d[2] >> 4, d[1]}, 64-d[5]&63
		}
		a := e.Process(&p)
		checkAlert(t, a, ts)
		return ts, a
	}
	return ts, nil
}

// checkAlert checks what an alert must hold.
func checkAlert(t *testing.T, a *Alert, ts int64) {
	t.Helper()
	if a == nil {
		return
	}
	if !a.Src.IsValid() || a.Time != ts || a.Probes == 0 || len(a.Dst) > maxDsts || len(a.Ports) > maxTargets {
		t.Fatalf("alert %+v at %d", a, ts)
	}
	for i := 1; i < len(a.Ports); i++ {
		if x, y := a.Ports[i-1], a.Ports[i]; x.Proto > y.Proto || x.Proto == y.Proto && x.Port >= y.Port {
			t.Fatalf("alert ports not sorted and distinct: %+v", a.Ports)
		}
	}
}

// checkEngine checks the engine's invariants after a step.
func checkEngine(t *testing.T, e *Engine, step int) {
	t.Helper()
	st := e.Stats()
	if st.Sources > len(e.srcs)+len(e.firsts) || st.Sources < 0 {
		t.Fatalf("step %d: %d sources tracked, at most %d", step, st.Sources, len(e.srcs)+len(e.firsts))
	}
	// the hash table holds exactly the live sources, each found by lookup
	inTable := 0
	for _, sl := range e.table {
		if sl.idx < 0 {
			continue
		}
		inTable++
		if sl.idx >= e.used {
			t.Fatalf("step %d: table entry %d beyond the %d sources handed out", step, sl.idx, e.used)
		}
		s := &e.srcs[sl.idx]
		if sl.tag != uint32(e.hash(s.addr)) {
			t.Fatalf("step %d: source %v has a stale hash in its slot", step, s.addr)
		}
		if got := e.lookup(s.addr); got != s {
			t.Fatalf("step %d: source %v in the table, not found by lookup", step, s.addr)
		}
	}
	if inTable != e.live {
		t.Fatalf("step %d: %d sources in the hash table, %d live", step, inTable, e.live)
	}
	// and exactly the live first sights, each found where its slot is
	inFirsts := 0
	for i, sl := range e.table {
		if sl.idx > firstSlot {
			continue
		}
		inFirsts++
		fi := sl.firstIdx()
		if fi >= e.fused || !e.firsts[fi].live {
			t.Fatalf("step %d: slot %d names first sight %d of %d, live %v", step, i, fi, e.fused, fi < e.fused && e.firsts[fi].live)
		}
		f := &e.firsts[fi]
		if sl.tag != uint32(e.hash(f.addr)) || f.tag != sl.tag {
			t.Fatalf("step %d: first sight %v has a stale hash in its slot", step, f.addr)
		}
		if pos, _, found := e.find(f.addr, e.hash(f.addr)); !found || pos != uint64(i) {
			t.Fatalf("step %d: first sight %v in slot %d, not found there", step, f.addr, i)
		}
	}
	if inFirsts != e.flive || e.flive+len(e.ffree) != int(e.fused) {
		t.Fatalf("step %d: %d first sights in the table, %d live, %d free of %d handed out", step, inFirsts, e.flive, len(e.ffree), e.fused)
	}
	if e.live+len(e.free) != int(e.used) {
		t.Fatalf("step %d: %d live and %d free of %d handed out", step, e.live, len(e.free), e.used)
	}
	for i := range e.srcs[:e.used] {
		s := &e.srcs[i]
		if s.score != s.sumWeights() {
			t.Fatalf("step %d: %v score %d, recount %d", step, s.addr, s.score, s.sumWeights())
		}
		if s.score < 0 || int(s.ntargets) > maxTargets || int(s.ndst) > maxDsts {
			t.Fatalf("step %d: %v score %d, %d targets, %d destinations", step, s.addr, s.score, s.ntargets, s.ndst)
		}
		var opens, awaiting uint8
		for j := range s.targets[:s.ntargets] {
			if s.targets[j].credit() {
				opens++
			}
			if s.targets[j].st&bitAwait != 0 {
				awaiting++
			}
		}
		if opens != s.opens || awaiting != s.awaiting {
			t.Fatalf("step %d: %v counts %d open and %d awaiting targets, has %d and %d", step, s.addr, s.opens, s.awaiting, opens, awaiting)
		}
	}
}

// A Maimon scan (FIN+ACK) of a host whose firewall REJECTs with ICMP port
// unreachable, or whose stack answers RST+ACK, counts its probes as the
// bare RST answer does (FuzzEngine found the alert of such a scan saying
// "syn", 0 probes).
func TestMaimonScanAnsweredOtherwise(t *testing.T) {
	for _, answer := range []string{"icmp", "rst+ack"} {
		e := newEngine(t, Config{})
		var pkts []*Probe
		for i, p := range seq(600, 10) {
			ts := t0 + int64(i)*ms
			pkts = append(pkts, tcp(ts, attacker, 42000, victim, p, FlagFIN|FlagACK))
			if answer == "icmp" {
				pkts = append(pkts, unreach(ts+ms/10, victim, p, attacker, 42000, ProtoTCP))
			} else {
				pkts = append(pkts, tcp(ts+ms/10, victim, p, attacker, 42000, FlagRST|FlagACK))
			}
		}
		alerts := run(t, e, pkts...)
		if len(alerts) != 1 || alerts[0].Type != TypeMaimon || alerts[0].Probes != 3 {
			t.Fatalf("%s: alerts %+v", answer, alerts)
		}
	}
}

// FuzzFirstSights runs FuzzEngine's steps on two engines whose tables
// are never full, one keeping sources seen once as first sights and one
// making every source a full record at once: each step must give the
// same alert and the same counts (first sights change nothing but speed
// until the table is full).
func FuzzFirstSights(f *testing.F) {
	flood := []byte{0, 0, 0, 0}
	for i := range maxFuzzSteps {
		flood = append(flood, 0, FlagSYN, byte(i), byte(i+1), byte(i), 1)
	}
	f.Add(flood)
	f.Add([]byte{2, 0, 0, 0,
		0, FlagSYN, 1, 2, 0x01, 1, 0, FlagRST | FlagACK, 2, 1, 0x10, 1,
		1, 0, 4, 2, 0x08, 1, 2, 0, 2, 4, 0x80, 1, 0, FlagSYN, 1, 2, 0x02, 1})
	f.Add([]byte{1, 3, 1, 7, 0, FlagSYN, 5, 2, 0x03, 0xfe, 6 << 5, 0, 5, 0, 0, 0xff, 7 << 5, 0, 5, 0, 0, 1, 0, FlagSYN, 5, 2, 0x04, 0xc3})
	f.Fuzz(compareFirstSights)
}

// TestFirstSightsRandom is FuzzFirstSights over 2,000 random inputs, so
// that every go test compares the two.
func TestFirstSightsRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 2000; i++ {
		data := make([]byte, 4+6*r.IntN(maxFuzzSteps))
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		// mostly probes and answers among a few addresses, as a scan
		for j := 4; j+6 <= len(data); j += 6 {
			if r.IntN(4) != 0 {
				data[j] &= 0x1f
				data[j+2] &= 0x87
				data[j+3] &= 0x87
			}
		}
		compareFirstSights(t, data)
	}
}

func compareFirstSights(t *testing.T, data []byte) {
	var hdr [4]byte
	data = data[copy(hdr[:], data):]
	// more sources than the fuzz's 256 addresses: never full
	es := [2]*Engine{fuzzEngine(t, hdr, 512), fuzzEngine(t, hdr, 512)}
	es[1].noFirsts = true
	ts := int64(1_700_000_000) * int64(time.Second)
	for step := 0; len(data) >= 6 && step < maxFuzzSteps; step++ {
		ts0, a0 := fuzzStep(t, es[0], data[:6], ts)
		_, a1 := fuzzStep(t, es[1], data[:6], ts)
		ts = ts0
		data = data[6:]
		if (a0 == nil) != (a1 == nil) || a0 != nil && !reflect.DeepEqual(a0, a1) {
			t.Fatalf("step %d: with first sights %+v, without %+v", step, a0, a1)
		}
		if s0, s1 := es[0].Stats(), es[1].Stats(); s0 != s1 {
			t.Fatalf("step %d: with first sights %+v, without %+v", step, s0, s1)
		}
		checkEngine(t, es[0], step)
	}
}
