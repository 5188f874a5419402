package detect

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"
	"unsafe"
)

var (
	victim   = netip.MustParseAddr("198.51.100.10")
	attacker = netip.MustParseAddr("198.51.100.66")
	benign   = netip.MustParseAddr("198.51.100.20")
)

const ms = int64(time.Millisecond)

// t0 is an arbitrary packet time: the engine only ever looks at differences.
const t0 = int64(1_700_000_000) * int64(time.Second)

func tcp(ts int64, src netip.Addr, sport uint16, dst netip.Addr, dport uint16, flags uint8) *Probe {
	return &Probe{TS: ts, Src: AddrOf(src), Dst: AddrOf(dst), SrcPort: sport, DstPort: dport, Kind: KindTCP, Proto: ProtoTCP, Flags: flags}
}

func udp(ts int64, src netip.Addr, sport uint16, dst netip.Addr, dport uint16) *Probe {
	return &Probe{TS: ts, Src: AddrOf(src), Dst: AddrOf(dst), SrcPort: sport, DstPort: dport, Kind: KindUDP, Proto: ProtoUDP}
}

// unreach is the ICMP port unreachable the host sends about a datagram
// from prober:sport to host:port (already turned around, as the decoder
// does).
func unreach(ts int64, host netip.Addr, port uint16, prober netip.Addr, sport uint16, proto uint8) *Probe {
	return &Probe{TS: ts, Src: AddrOf(host), Dst: AddrOf(prober), SrcPort: port, DstPort: sport, Kind: KindUnreach, Proto: proto, Code: 3}
}

// newEngine returns an engine for cfg that knows the lab's victims as the
// host's own addresses (SetOwn): their trap hits count at once, as a
// daemon's do. newReplayEngine leaves that out.
func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e := newReplayEngine(t, cfg)
	e.SetOwn([]netip.Addr{victim, netip.MustParseAddr("fd00:77::10")})
	return e
}

// newReplayEngine returns an engine for cfg that, as in a replay, knows no
// host's own addresses: trap hits wait for the host's answer.
func newReplayEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func ports(ps ...uint16) *PortSet {
	var s PortSet
	for _, p := range ps {
		s.Add(p)
	}
	return &s
}

// run feeds packets and returns the alerts, failing on a second alert for
// the same source.
func run(t testing.TB, e *Engine, pkts ...*Probe) []*Alert {
	t.Helper()
	var out []*Alert
	seen := map[netip.Addr]bool{}
	for _, p := range pkts {
		if a := e.Process(p); a != nil {
			if seen[a.Src] {
				t.Fatalf("second alert for %v", a.Src)
			}
			seen[a.Src] = true
			out = append(out, a.Clone())
		}
	}
	return out
}

// synScan builds an nmap -sS-like exchange: a SYN to each port, answered by
// RST+ACK (closed) or SYN+ACK then the scanner's RST (open).
func synScan(start int64, gap int64, src netip.Addr, dst netip.Addr, open map[uint16]bool, ps ...uint16) []*Probe {
	var out []*Probe
	ts := start
	for _, p := range ps {
		out = append(out, tcp(ts, src, 40000, dst, p, FlagSYN))
		if open[p] {
			out = append(out, tcp(ts+ms/10, dst, p, src, 40000, FlagSYN|FlagACK))
			out = append(out, tcp(ts+ms/5, src, 40000, dst, p, FlagRST))
		} else {
			out = append(out, tcp(ts+ms/10, dst, p, src, 40000, FlagRST|FlagACK))
		}
		ts += gap
	}
	return out
}

func seq(from, n uint16) []uint16 {
	var out []uint16
	for i := uint16(0); i < n; i++ {
		out = append(out, from+i)
	}
	return out
}

func TestSYNScanByScore(t *testing.T) {
	e := newEngine(t, Config{})
	pkts := synScan(t0, ms, attacker, victim, nil, seq(2000, 40)...)
	alerts := run(t, e, pkts...)
	if len(alerts) != 1 {
		t.Fatalf("got %d alerts, want 1", len(alerts))
	}
	a := alerts[0]
	if a.Src != attacker || a.Type != TypeSYN || a.Trigger != TriggerScore {
		t.Fatalf("alert %+v", a)
	}
	// 3 closed ports reach the default threshold of 12: the 3rd RST raises it.
	if a.Probes != 3 || a.Score != 12 || a.Port != 2002 || a.Time != t0+2*ms+ms/10 {
		t.Fatalf("alert probes=%d score=%d port=%d time=%d", a.Probes, a.Score, a.Port, a.Time-t0)
	}
	if want := []PortRef{{6, 2000}, {6, 2001}, {6, 2002}}; !slices.Equal(a.Ports, want) {
		t.Fatalf("ports %v", a.Ports)
	}
	if !slices.Equal(a.Dst, []netip.Addr{victim}) {
		t.Fatalf("dst %v", a.Dst)
	}
}

func TestUnansweredSYNsNeedMorePorts(t *testing.T) {
	// a host that drops everything: only the weight of unanswered probes
	e := newEngine(t, Config{})
	var pkts []*Probe
	for i, p := range seq(3000, 20) {
		pkts = append(pkts, tcp(t0+int64(i)*ms, attacker, 40000, victim, p, FlagSYN))
	}
	alerts := run(t, e, pkts...)
	if len(alerts) != 1 || alerts[0].Probes != DefaultThreshold/WeightUnanswered {
		t.Fatalf("alerts %+v", alerts)
	}
}

func TestTrapPortsAndScanTrigger(t *testing.T) {
	trap := ports(1, 11, 15, 79, 111)
	for _, tc := range []struct {
		trigger int
		want    uint32 // probes at the alert
	}{{0, 1}, {1, 1}, {2, 2}, {3, 3}} {
		t.Run(fmt.Sprint(tc.trigger), func(t *testing.T) {
			e := newEngine(t, Config{ScanTrigger: tc.trigger, TrapTCP: trap})
			// the SYNs go unanswered so the score stays low (3 each,
			// below 12 for three hits)
			var pkts []*Probe
			for i, p := range []uint16{1, 11, 15, 79, 111} {
				pkts = append(pkts, tcp(t0+int64(i)*ms, attacker, 40000, victim, p, FlagSYN))
			}
			alerts := run(t, e, pkts...)
			if len(alerts) != 1 || alerts[0].Trigger != TriggerTrap || alerts[0].Probes != tc.want {
				t.Fatalf("alerts %+v", alerts)
			}
		})
	}
	// hits on trap ports that fall out of the window do not add up
	e := newEngine(t, Config{ScanTrigger: 2, TrapTCP: trap, Window: 10 * time.Second})
	if a := run(t, e, tcp(t0, attacker, 1, victim, 1, FlagSYN), tcp(t0+11*int64(time.Second), attacker, 1, victim, 11, FlagSYN)); len(a) != 0 {
		t.Fatalf("hits 11 s apart with a 10 s window alerted: %+v", a[0])
	}
}

func TestUDPTrapAndScore(t *testing.T) {
	e := newEngine(t, Config{TrapUDP: ports(161)})
	alerts := run(t, e, udp(t0, attacker, 5000, victim, 161))
	if len(alerts) != 1 || alerts[0].Type != TypeUDP || alerts[0].Trigger != TriggerTrap || alerts[0].Proto != ProtoUDP {
		t.Fatalf("alerts %+v", alerts)
	}
	// without traps: ICMP port unreachable marks closed ports
	e = newEngine(t, Config{})
	var pkts []*Probe
	for i, p := range seq(7000, 10) {
		ts := t0 + int64(i)*ms
		pkts = append(pkts, udp(ts, attacker, 5000, victim, p))
		if i%2 == 0 { // Linux rate-limits its ICMP errors: only some come back
			pkts = append(pkts, unreach(ts+ms/10, victim, p, attacker, 5000, ProtoUDP))
		}
	}
	alerts = run(t, e, pkts...)
	// closed: 7000, 7002 (8) + unanswered 7001, 7003 (2) + closed 7004 (4)
	// = 14 at the answer about 7004
	if len(alerts) != 1 || alerts[0].Type != TypeUDP || alerts[0].Trigger != TriggerScore || alerts[0].Port != 7004 {
		t.Fatalf("alerts %+v", alerts)
	}
}

func TestStealthTypes(t *testing.T) {
	for _, tc := range []struct {
		flags uint8
		want  ScanType
	}{
		{FlagFIN, TypeFIN},
		{0, TypeNULL},
		{FlagFIN | FlagPSH | FlagURG, TypeXMAS},
		{FlagSYN | FlagFIN, TypeOdd},
		{FlagURG, TypeOdd},
		{FlagECE | FlagCWR, TypeOdd},
		{FlagSYN | FlagECE | FlagCWR, TypeSYN},
	} {
		t.Run(tc.want.String(), func(t *testing.T) {
			e := newEngine(t, Config{})
			var pkts []*Probe
			// no answers at all (open or filtered ports ignore these):
			// the probe itself is the evidence, except for SYN
			for i, p := range seq(100, 20) {
				pkts = append(pkts, tcp(t0+int64(i)*ms, attacker, 40000, victim, p, tc.flags))
			}
			alerts := run(t, e, pkts...)
			if len(alerts) != 1 || alerts[0].Type != tc.want {
				t.Fatalf("alerts %+v", alerts)
			}
			wantProbes := uint32(2) // WeightStealth: two are a scan
			if tc.want == TypeSYN {
				wantProbes = 12
			}
			if alerts[0].Probes != wantProbes {
				t.Fatalf("alert after %d probes, want %d", alerts[0].Probes, wantProbes)
			}
		})
	}
}

func TestACKScanSeenThroughBareRSTs(t *testing.T) {
	e := newEngine(t, Config{})
	var pkts []*Probe
	for i, p := range seq(500, 10) {
		ts := t0 + int64(i)*ms
		pkts = append(pkts, tcp(ts, attacker, 41000, victim, p, FlagACK)) // dropped by the filter; ignored here too
		pkts = append(pkts, tcp(ts+ms/10, victim, p, attacker, 41000, FlagRST))
	}
	alerts := run(t, e, pkts...)
	if len(alerts) != 1 || alerts[0].Type != TypeACK || alerts[0].Src != attacker || alerts[0].Probes != 3 {
		t.Fatalf("alerts %+v", alerts)
	}
}

func TestMaimonScan(t *testing.T) {
	e := newEngine(t, Config{})
	var pkts []*Probe
	for i, p := range seq(600, 10) {
		ts := t0 + int64(i)*ms
		pkts = append(pkts, tcp(ts, attacker, 42000, victim, p, FlagFIN|FlagACK))
		pkts = append(pkts, tcp(ts+ms/10, victim, p, attacker, 42000, FlagRST))
	}
	alerts := run(t, e, pkts...)
	if len(alerts) != 1 || alerts[0].Type != TypeMaimon || alerts[0].Probes != 3 {
		t.Fatalf("alerts %+v", alerts)
	}
}

func TestConnectScan(t *testing.T) {
	e := newEngine(t, Config{})
	var pkts []*Probe
	for i, p := range seq(800, 10) {
		ts := t0 + int64(i)*ms
		syn := tcp(ts, attacker, uint16(43000+i), victim, p, FlagSYN)
		syn.StackSYN = true
		pkts = append(pkts, syn, tcp(ts+ms/10, victim, p, attacker, uint16(43000+i), FlagRST|FlagACK))
	}
	alerts := run(t, e, pkts...)
	if len(alerts) != 1 || alerts[0].Type != TypeConnect {
		t.Fatalf("alerts %+v", alerts)
	}
}

func TestHalfOpenOnOpenPorts(t *testing.T) {
	// a SYN scan of open ports only: SYN, SYN+ACK, RST from the scanner
	open := map[uint16]bool{}
	for _, p := range seq(900, 20) {
		open[p] = true
	}
	e := newEngine(t, Config{})
	alerts := run(t, e, synScan(t0, ms, attacker, victim, open, seq(900, 20)...)...)
	if len(alerts) != 1 || alerts[0].Type != TypeSYN || alerts[0].Probes != 12 {
		t.Fatalf("alerts %+v", alerts)
	}
}

// benignTraffic: a client making new HTTP connections to an open port, DNS
// queries answered by the host, the host's own outbound connections and
// UDP, and a closed port tried a few times.
func benignTraffic(start int64, n int) []*Probe {
	server := netip.MustParseAddr("198.51.100.20")
	var out []*Probe
	for i := 0; i < n; i++ {
		ts := start + int64(i)*100*ms
		cport := uint16(32768 + i)
		syn := tcp(ts, benign, cport, victim, 80, FlagSYN)
		syn.StackSYN = true
		out = append(out, syn,
			tcp(ts+1, victim, 80, benign, cport, FlagSYN|FlagACK),
			tcp(ts+2, benign, cport, victim, 80, FlagACK),
			tcp(ts+3, benign, cport, victim, 80, FlagACK|FlagPSH),
			tcp(ts+4, victim, 80, benign, cport, FlagACK|FlagPSH|FlagFIN),
			tcp(ts+5, benign, cport, victim, 80, FlagACK|FlagFIN),
			tcp(ts+6, victim, 80, benign, cport, FlagACK),
			// DNS-like: a new source port each time, some of them
			// PortSentry trap ports (32771..32774)
			udp(ts+7, benign, cport, victim, 53),
			udp(ts+8, victim, 53, benign, cport),
			// the victim's own outbound connection and query
			tcp(ts+9, victim, cport, server, 8080, FlagSYN),
			tcp(ts+10, server, 8080, victim, cport, FlagSYN|FlagACK),
			tcp(ts+11, victim, cport, server, 8080, FlagACK|FlagFIN),
			tcp(ts+12, server, 8080, victim, cport, FlagACK|FlagFIN),
			udp(ts+13, victim, cport, server, 5353),
			udp(ts+14, server, 5353, victim, cport),
		)
		if i%10 == 0 { // a client retrying a closed port now and then
			out = append(out, tcp(ts+15, benign, cport+1, victim, 8443, FlagSYN), tcp(ts+16, victim, 8443, benign, cport+1, FlagRST|FlagACK))
		}
	}
	return out
}

func TestBenignNeverAlerts(t *testing.T) {
	trapTCP := ports(1, 11, 15, 79, 111, 32771, 32772, 32773, 32774, 40421, 49724, 54320)
	trapUDP := ports(1, 7, 9, 69, 161, 32770, 32771, 32772, 32773, 32774, 31337, 54321)
	e := newEngine(t, Config{TrapTCP: trapTCP, TrapUDP: trapUDP})
	if alerts := run(t, e, benignTraffic(t0, 2000)...); len(alerts) != 0 {
		t.Fatalf("benign traffic alerted: %+v", alerts[0])
	}
	st := e.Stats()
	if st.Replies == 0 || st.Probes == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBenignDuringScan(t *testing.T) {
	e := newEngine(t, Config{TrapTCP: ports(1, 111)})
	pkts := append(benignTraffic(t0, 300), synScan(t0+5*int64(time.Second), ms, attacker, victim, map[uint16]bool{80: true}, append([]uint16{80, 22, 443}, seq(1000, 50)...)...)...)
	slices.SortStableFunc(pkts, func(a, b *Probe) int { return int(a.TS - b.TS) })
	alerts := run(t, e, pkts...)
	if len(alerts) != 1 || alerts[0].Src != attacker {
		t.Fatalf("alerts %+v", alerts)
	}
}

func TestWindow(t *testing.T) {
	// nmap -T2 spacing (0.4 s) is caught with the default window
	e := newEngine(t, Config{})
	if alerts := run(t, e, synScan(t0, 400*ms, attacker, victim, nil, seq(2000, 30)...)...); len(alerts) != 1 {
		t.Fatal("-T2 spacing not caught")
	}
	// nmap -T1 spacing (15 s) against a host that answers nothing (a
	// firewall dropping probes) is not caught by default: twelve unanswered
	// probes take 165 s...
	slow := func() []*Probe {
		var out []*Probe
		for i, p := range seq(2000, 30) {
			out = append(out, tcp(t0+int64(i)*15*int64(time.Second), attacker, 40000, victim, p, FlagSYN))
		}
		return out
	}
	e = newEngine(t, Config{})
	if alerts := run(t, e, slow()...); len(alerts) != 0 {
		t.Fatalf("-T1 spacing caught with a 60 s window: %+v", alerts[0])
	}
	// ...but is with the documented DETECT_WINDOW of 600 s
	e = newEngine(t, Config{Window: 600 * time.Second})
	alerts := run(t, e, slow()...)
	if len(alerts) != 1 || alerts[0].Probes != 12 {
		t.Fatalf("-T1 with 600 s window: %+v", alerts)
	}
	// and closed ports (RST answers) are caught by default even at -T1
	// spacing: three in 30 s
	e = newEngine(t, Config{})
	if alerts := run(t, e, synScan(t0, 15*int64(time.Second), attacker, victim, nil, seq(2000, 30)...)...); len(alerts) != 1 || alerts[0].Probes != 3 {
		t.Fatalf("-T1 spacing on closed ports: %+v", alerts)
	}
}

func TestSweepOnePortManyHosts(t *testing.T) {
	e := newEngine(t, Config{})
	var pkts []*Probe
	for i := 0; i < 6; i++ {
		h := netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)})
		pkts = append(pkts, synScan(t0+int64(i)*ms, ms, attacker, h, nil, 23)...)
	}
	alerts := run(t, e, pkts...)
	if len(alerts) != 1 || len(alerts[0].Dst) != 3 || !slices.Equal(alerts[0].Ports, []PortRef{{6, 23}}) {
		t.Fatalf("alerts %+v", alerts)
	}
}

func TestHomeNetworks(t *testing.T) {
	e := newEngine(t, Config{Home: []netip.Prefix{netip.MustParsePrefix("198.51.100.10/32")}})
	other := netip.MustParseAddr("198.51.100.30")
	if alerts := run(t, e, synScan(t0, ms, attacker, other, nil, seq(1, 50)...)...); len(alerts) != 0 {
		t.Fatalf("scan of an unprotected host alerted: %+v", alerts[0])
	}
	if alerts := run(t, e, synScan(t0, ms, attacker, victim, nil, seq(1, 50)...)...); len(alerts) != 1 {
		t.Fatal("scan of the protected host not caught")
	}
}

func TestIPv6Scan(t *testing.T) {
	v6victim := netip.MustParseAddr("fd00:77::10")
	v6attacker := netip.MustParseAddr("fd00:77::66")
	e := newEngine(t, Config{})
	alerts := run(t, e, synScan(t0, ms, v6attacker, v6victim, nil, seq(100, 20)...)...)
	if len(alerts) != 1 || alerts[0].Src != v6attacker || alerts[0].Type != TypeSYN {
		t.Fatalf("alerts %+v", alerts)
	}
}

func TestMulticastAndBroadcastIgnored(t *testing.T) {
	e := newEngine(t, Config{TrapUDP: ports(1900, 5353)})
	var pkts []*Probe
	for i := 0; i < 50; i++ {
		ts := t0 + int64(i)*ms
		pkts = append(pkts,
			udp(ts, benign, 5353, netip.MustParseAddr("224.0.0.251"), 5353),
			udp(ts, benign, uint16(50000+i), netip.MustParseAddr("239.255.255.250"), 1900),
			udp(ts, netip.IPv4Unspecified(), 68, netip.MustParseAddr("255.255.255.255"), 67),
			udp(ts, netip.MustParseAddr("fe80::1"), 5353, netip.MustParseAddr("ff02::fb"), uint16(5000+i)),
		)
	}
	if alerts := run(t, e, pkts...); len(alerts) != 0 {
		t.Fatalf("multicast alerted: %+v", alerts[0])
	}
}

func TestDominantType(t *testing.T) {
	e := newEngine(t, Config{Threshold: 50})
	var pkts []*Probe
	for i, p := range seq(100, 30) {
		f := FlagFIN
		if i%3 == 0 {
			f = FlagSYN
		}
		pkts = append(pkts, tcp(t0+int64(i)*ms, attacker, 40000, victim, p, f))
	}
	alerts := run(t, e, pkts...)
	if len(alerts) != 1 || alerts[0].Type != TypeFIN {
		t.Fatalf("alerts %+v", alerts)
	}
}

func TestBoundedSourcesUnderForgedFlood(t *testing.T) {
	const max = 1024
	e := newEngine(t, Config{MaxSources: max, TrapTCP: ports(1)})
	var alerts []*Alert
	flood := 200_000
	for i := 0; i < flood; i++ {
		src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		ts := t0 + int64(i)*int64(time.Microsecond)
		if a := e.Process(tcp(ts, src, 1234, victim, 80, FlagSYN)); a != nil {
			t.Fatalf("forged SYN to an open port alerted: %+v", a)
		}
		// a slow real scanner (one closed port every 10,000 flood
		// packets, i.e. 10 ms) survives eviction thanks to its score
		if i%10_000 == 0 {
			port := uint16(2000 + i/10_000)
			e.Process(tcp(ts, attacker, 40000, victim, port, FlagSYN))
			if a := e.Process(tcp(ts+1, victim, port, attacker, 40000, FlagRST|FlagACK)); a != nil {
				alerts = append(alerts, a.Clone())
			}
		}
	}
	// max sources and max first sights (sources seen once) at most
	st := e.Stats()
	if st.Sources > 2*max || st.Evicted < uint64(flood-2*max) {
		t.Fatalf("stats %+v", st)
	}
	if len(alerts) != 1 || alerts[0].Src != attacker {
		t.Fatalf("scanner during flood: alerts %+v", alerts)
	}
}

// TestAnsweredFloodKeepsTheScanner: a forged flood to a closed port, each
// SYN answered with the host's RST, makes each forged source a source of
// one probe scoring a closed port; a real scanner that has sent several
// unanswered probes (a lower score) is not evicted for them, and is
// reported when it goes on.
func TestAnsweredFloodKeepsTheScanner(t *testing.T) {
	e := newEngine(t, Config{MaxSources: 64})
	for i := range 3 {
		run(t, e, tcp(t0+int64(i)*ms, attacker, 40000, victim, uint16(5000+i), FlagSYN))
	}
	for i := range 2000 {
		src := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		ts := t0 + 10*ms + int64(i)*1000
		run(t, e, tcp(ts, src, 1234, victim, 81, FlagSYN), tcp(ts+100, victim, 81, src, 1234, FlagRST|FlagACK))
	}
	if e.Stats().Evicted < 1000 {
		t.Fatalf("the flood evicted nothing: %+v", e.Stats())
	}
	var alerts []*Alert
	for i := 3; i < 12; i++ {
		alerts = append(alerts, run(t, e, tcp(t0+20*ms+int64(i)*ms, attacker, 40000, victim, uint16(5000+i), FlagSYN))...)
	}
	if len(alerts) != 1 || alerts[0].Src != attacker || alerts[0].Probes != 12 {
		t.Errorf("twelve unanswered probes within the window, during an answered flood: alerts %+v", alerts)
	}
}

func TestTableAgainstMap(t *testing.T) {
	// every tracked source must stay findable through inserts and
	// evictions, and evicted ones must be gone
	e := newEngine(t, Config{MaxSources: 64})
	live := map[Addr]bool{}
	for i := 0; i < 20000; i++ {
		a := AddrFrom4([4]byte{10, 0, byte(i % 97), byte(i % 251)})
		before := e.stats.Evicted
		e.get(a, int64(i))
		live[a] = true
		if e.stats.Evicted != before {
			// find which one went
			for x := range live {
				if e.lookup(x) == nil {
					delete(live, x)
				}
			}
		}
		if len(live) > 64 {
			t.Fatalf("%d live sources", len(live))
		}
		for x := range live {
			if s := e.lookup(x); s == nil || s.addr != x {
				t.Fatalf("step %d: %v lost", i, x)
			}
		}
	}
	if e.Stats().Sources != len(live) {
		t.Fatalf("LRU has %d sources, table %d", e.Stats().Sources, len(live))
	}
}

func TestSameVerdictsWhateverTheSeed(t *testing.T) {
	pkts := append(benignTraffic(t0, 200), synScan(t0, ms, attacker, victim, nil, seq(1, 100)...)...)
	slices.SortStableFunc(pkts, func(a, b *Probe) int { return int(a.TS - b.TS) })
	var first []Alert
	for range 5 {
		e := newEngine(t, Config{TrapTCP: ports(1, 111)})
		var got []Alert
		for _, a := range run(t, e, pkts...) {
			got = append(got, *a)
		}
		if first == nil {
			first = got
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(first) {
			t.Fatalf("verdicts differ:\n%v\n%v", got, first)
		}
	}
	if len(first) != 1 {
		t.Fatalf("alerts %v", first)
	}
}

func TestProcessDoesNotAllocate(t *testing.T) {
	e := newEngine(t, Config{Threshold: 1 << 20, TrapTCP: ports(1)})
	pkts := append(benignTraffic(t0, 50), synScan(t0, ms, attacker, victim, map[uint16]bool{80: true}, seq(1, 200)...)...)
	for i := range 5000 {
		src := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		pkts = append(pkts, tcp(t0+int64(i), src, 1, victim, 80, FlagSYN), udp(t0+int64(i), src, 1, victim, 53))
	}
	// the trap port alerts once (allocating); warm that up first
	for _, p := range pkts {
		e.Process(p)
	}
	allocs := testing.AllocsPerRun(10, func() {
		for _, p := range pkts {
			e.Process(p)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run of %d packets", allocs, len(pkts))
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, c := range []Config{{Window: -1}, {Threshold: -1}, {ScanTrigger: -2}, {MaxSources: 3}} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

func TestScanTypeNames(t *testing.T) {
	for ty := ScanType(0); ty < numTypes; ty++ {
		got, err := ParseScanType(ty.String())
		if err != nil || got != ty {
			t.Errorf("%v: %v %v", ty, got, err)
		}
	}
	if _, err := ParseScanType("bogus"); err == nil {
		t.Error("bogus type parsed")
	}
}

func TestRunningScoreMatchesRecount(t *testing.T) {
	// a mixed workload with expiry, replacement of the oldest target,
	// state changes of every kind; after every packet the running score of
	// every source must equal a recount
	e := newEngine(t, Config{Threshold: 1000, Window: 2 * time.Second, TrapTCP: ports(1, 2, 3)})
	var pkts []*Probe
	for i := 0; i < 3000; i++ {
		ts := t0 + int64(i)*7*ms
		src := netip.AddrFrom4([4]byte{198, 51, 100, byte(100 + i%5)})
		port := uint16(i*7919%90 + 1)
		switch i % 7 {
		case 0:
			pkts = append(pkts, tcp(ts, src, 40000, victim, port, FlagSYN), tcp(ts+1, victim, port, src, 40000, FlagRST|FlagACK))
		case 1:
			pkts = append(pkts, tcp(ts, src, 40000, victim, port, FlagSYN), tcp(ts+1, victim, port, src, 40000, FlagSYN|FlagACK), tcp(ts+2, src, 40000, victim, port, FlagRST))
		case 2:
			pkts = append(pkts, tcp(ts, src, 40000, victim, port, FlagFIN))
		case 3:
			pkts = append(pkts, tcp(ts, src, 40000, victim, port, FlagFIN|FlagACK), tcp(ts+1, victim, port, src, 40000, FlagRST))
		case 4:
			pkts = append(pkts, udp(ts, src, 5000, victim, port), unreach(ts+1, victim, port, src, 5000, ProtoUDP))
		case 5:
			pkts = append(pkts, udp(ts, src, 5000, victim, port), udp(ts+1, victim, port, src, 5000))
		case 6:
			pkts = append(pkts, tcp(ts, victim, port, src, 41000, FlagRST))
		}
	}
	for i, p := range pkts {
		e.Process(p)
		for j := range e.srcs[:e.used] {
			s := &e.srcs[j]
			if s.score != s.sumWeights() {
				t.Fatalf("packet %d: %v score %d, recount %d", i, s.addr, s.score, s.sumWeights())
			}
		}
	}
}

func TestSetTrapsAndForget(t *testing.T) {
	e := newEngine(t, Config{TrapTCP: ports(111)})
	if a := e.Process(tcp(t0, attacker, 1, victim, 111, FlagSYN)); a == nil {
		t.Fatal("trap hit did not alert")
	}
	// a service binds 111: the daemon takes it out of the traps and
	// forgets the source
	e.SetTraps(ports(1), nil)
	e.Forget(attacker)
	if e.Stats().Sources != 0 || e.lookup(AddrOf(attacker)) != nil {
		t.Fatal("source not forgotten")
	}
	if a := e.Process(tcp(t0+ms, attacker, 1, victim, 111, FlagSYN)); a != nil {
		t.Fatalf("port no longer watched still alerted: %+v", a)
	}
	if a := e.Process(tcp(t0+2*ms, attacker, 1, victim, 1, FlagSYN)); a == nil || a.Trigger != TriggerTrap {
		t.Fatalf("new trap port: %+v", a)
	}
	// a forgotten slot is reused
	e2 := newEngine(t, Config{MaxSources: 64})
	for i := 0; i < 64; i++ {
		e2.get(AddrFrom4([4]byte{10, 0, 0, byte(i)}), t0)
	}
	e2.Forget(netip.AddrFrom4([4]byte{10, 0, 0, 5}))
	for i := 64; i < 200; i++ {
		e2.get(AddrFrom4([4]byte{10, 0, 0, byte(i)}), t0)
		if e2.Stats().Sources > 64 {
			t.Fatal("table grew past its size")
		}
	}
}

func TestRearm(t *testing.T) {
	e := newEngine(t, Config{TrapTCP: ports(111, 1)})
	a := e.Process(tcp(t0, attacker, 1, victim, 111, FlagSYN))
	if a == nil || a.Probes != 1 {
		t.Fatalf("first hit: %+v", a)
	}
	// alerted: its further probes raise nothing
	if a := e.Process(tcp(t0+ms, attacker, 1, victim, 22, FlagSYN)); a != nil {
		t.Fatalf("alerted source alerted again: %+v", a)
	}
	// the blocker refused it: judged again from 5 s on, not before
	e.Rearm(attacker, t0+5*int64(time.Second), false)
	if a := e.Process(tcp(t0+2*int64(time.Second), attacker, 1, victim, 23, FlagSYN)); a != nil {
		t.Fatalf("re-alerted before its time: %+v", a)
	}
	a = e.Process(tcp(t0+6*int64(time.Second), attacker, 1, victim, 24, FlagSYN))
	if a == nil || a.Trigger != TriggerTrap || a.Probes != 4 {
		t.Fatalf("rearmed source: %+v", a)
	}
	if a := e.Process(tcp(t0+7*int64(time.Second), attacker, 1, victim, 25, FlagSYN)); a != nil {
		t.Fatalf("one rearm gave two alerts: %+v", a)
	}
	// unknown and not alerted sources are left alone
	other := netip.MustParseAddr("198.51.100.67")
	e.Rearm(other, t0, true)
	if a := e.Process(tcp(t0+8*int64(time.Second), other, 1, victim, 22, FlagSYN)); a != nil {
		t.Fatalf("one closed-port probe alerted: %+v", a)
	}
}

// A source refused on a single probe is judged again at once on its first
// probe of a new target (the daemon's rearm for the single-probe budget),
// and only then: repeats of what it probed already wait for the time.
func TestRearmOnNewTarget(t *testing.T) {
	e := newEngine(t, Config{TrapTCP: ports(111)})
	if a := e.Process(tcp(t0, attacker, 1, victim, 111, FlagSYN)); a == nil || a.Probes != 1 {
		t.Fatalf("first hit: %+v", a)
	}
	e.Rearm(attacker, t0+5*int64(time.Second), true)
	// the same target again, from another source port: nothing new
	if a := e.Process(tcp(t0+ms, attacker, 2, victim, 111, FlagSYN)); a != nil {
		t.Fatalf("repeat of a probed target re-alerted: %+v", a)
	}
	a := e.Process(tcp(t0+2*ms, attacker, 1, victim, 80, FlagSYN))
	if a == nil || a.Probes != 3 || a.Trigger != TriggerTrap {
		t.Fatalf("probe of a new port: %+v", a)
	}
	// one rearm, one alert; and the flag does not outlive it
	if a := e.Process(tcp(t0+3*ms, attacker, 1, victim, 81, FlagSYN)); a != nil {
		t.Fatalf("one rearm gave two alerts: %+v", a)
	}
	e.Rearm(attacker, t0+5*int64(time.Second), false)
	if a := e.Process(tcp(t0+4*ms, attacker, 1, victim, 82, FlagSYN)); a != nil {
		t.Fatalf("a rearm without onNew judged a new port before its time: %+v", a)
	}
	if a := e.Process(tcp(t0+6*int64(time.Second), attacker, 1, victim, 82, FlagSYN)); a == nil {
		t.Fatal("rearmed source not judged again after its time")
	}
}

// A source is whole cache lines, and what every packet of a reported
// source touches lies in its first two (see sourceHead).
func TestSourceLayout(t *testing.T) {
	var s source
	if n := unsafe.Sizeof(s); n%64 != 0 {
		t.Errorf("a source is %d bytes (padding %d): not whole 64-byte lines", n, sourcePad)
	}
	if sourcePad >= 64 {
		t.Errorf("padding %d is a line or more", sourcePad)
	}
	for name, end := range map[string]uintptr{
		"addr":    unsafe.Offsetof(s.addr) + unsafe.Sizeof(s.addr),
		"last":    unsafe.Offsetof(s.last) + unsafe.Sizeof(s.last),
		"rearmAt": unsafe.Offsetof(s.rearmAt) + unsafe.Sizeof(s.rearmAt),
		"link":    unsafe.Offsetof(s.link) + unsafe.Sizeof(s.link),
		"probes":  unsafe.Offsetof(s.probes) + unsafe.Sizeof(s.probes),
		"alerted": unsafe.Offsetof(s.alerted) + unsafe.Sizeof(s.alerted),
	} {
		if end > 64 {
			t.Errorf("%s ends at byte %d, past the first line", name, end)
		}
	}
	if end := unsafe.Offsetof(s.types) + unsafe.Sizeof(s.types); end > 128 {
		t.Errorf("types ends at byte %d, past the second line", end)
	}
}

// The engine hands out its own alert, reused from alert to alert; Clone
// keeps one.
func TestAlertReusedCloneKeeps(t *testing.T) {
	e := newEngine(t, Config{TrapTCP: ports(111)})
	a1 := e.Process(tcp(t0, attacker, 1, victim, 111, FlagSYN))
	if a1 == nil || a1.Src != attacker {
		t.Fatalf("first alert %+v", a1)
	}
	kept := a1.Clone()
	other := netip.MustParseAddr("fd00:77::99")
	a2 := e.Process(tcp(t0+ms, other, 1, netip.MustParseAddr("fd00:77::10"), 111, FlagSYN))
	if a2 == nil || a2.Src != other {
		t.Fatalf("second alert %+v", a2)
	}
	if a1 != a2 {
		t.Error("the engine allocated a second alert")
	}
	if kept.Src != attacker || len(kept.Dst) != 1 || kept.Dst[0] != victim || len(kept.Ports) != 1 || kept.Ports[0].Port != 111 {
		t.Errorf("the clone changed with the engine's alert: %+v", kept)
	}
	if len(a2.Dst) != 1 || a2.Dst[0] != netip.MustParseAddr("fd00:77::10") {
		t.Errorf("second alert's destinations %v", a2.Dst)
	}
}

// Neither a packet nor an alert allocates.
func TestProcessAllocatesNothing(t *testing.T) {
	e := newEngine(t, Config{TrapTCP: ports(111), MaxSources: 1024})
	o := NewOrigins()
	n := 0
	allocs := testing.AllocsPerRun(5000, func() {
		n++
		src := AddrFrom4([4]byte{100, 64, byte(n >> 8), byte(n)})
		p := Probe{TS: t0 + int64(n)*1000, Src: src, Dst: AddrOf(victim), SrcPort: 40000, DstPort: 111,
			Kind: KindTCP, Proto: ProtoTCP, Flags: FlagSYN, TTL: 50, HasMAC: true, SrcMAC: [6]byte{2, 0, 0, 0, 0, 1}}
		o.Observe(&p)
		if a := e.Process(&p); a == nil {
			t.Fatal("no alert on a trap hit")
		} else {
			a.Origin = o.Judge(a, o)
		}
		p.DstPort = 80 // and a plain probe of a known source
		p.TS++
		e.Process(&p)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per packet pair with an alert", allocs)
	}
}

// rankKey orders sources as the comparison it replaces: sources that
// have shown only one plain probe first, then by score, then by time, for
// every score a source can have and times within its span.
func TestRankKeyOrder(t *testing.T) {
	if maxTargets*max(WeightClosed, WeightStealth, WeightUnanswered, WeightHalfOpen) > 255 {
		t.Fatal("a score can exceed the 8 bits rankKey keeps")
	}
	r := rand.New(rand.NewPCG(5, 6))
	base := t0 - 1<<(rankTimeBits-1)
	for i := 0; i < 200000; i++ {
		s1, s2 := int32(r.IntN(200)), int32(r.IntN(200))
		if r.IntN(3) == 0 {
			s2 = s1
		}
		m1, m2 := r.IntN(2) == 0, r.IntN(2) == 0
		l1 := t0 + r.Int64N(1<<50) - 1<<49
		l2 := l1 + r.Int64N(2000) - 1000
		want := !m1 && m2 || m1 == m2 && (s1 < s2 || s1 == s2 && l1 < l2)
		if got := rankKey(s1, m1, l1, base) < rankKey(s2, m2, l2, base); got != want {
			t.Fatalf("(shown %v, %d, %d) < (shown %v, %d, %d): key says %v", m1, s1, l1, m2, s2, l2, got)
		}
	}
	// out of range: the nearest end, never a wrap-around
	if rankKey(3, false, math.MinInt64, base) != 3<<rankTimeBits || rankKey(3, false, math.MaxInt64, base) != 3<<rankTimeBits|(1<<rankTimeBits-1) {
		t.Fatal("times out of range are not clamped")
	}
}

// TestStatsTypes: each probe is counted under its type, and the types add
// up to the probes; answers and ignored packets count under none.
func TestStatsTypes(t *testing.T) {
	e := newEngine(t, Config{})
	other := netip.MustParseAddr("198.51.100.77")
	run(t, e,
		tcp(t0, attacker, 40000, victim, 81, FlagSYN),
		tcp(t0+ms, victim, 81, attacker, 40000, FlagRST|FlagACK), // an answer
		tcp(t0+2*ms, attacker, 40000, victim, 82, FlagFIN),
		tcp(t0+3*ms, attacker, 40000, victim, 83, 0),
		tcp(t0+4*ms, attacker, 40000, victim, 84, FlagFIN|FlagPSH|FlagURG),
		udp(t0+5*ms, other, 40001, victim, 85),
		udp(t0+6*ms, other, 40001, victim, 86),
	)
	st := e.Stats()
	want := map[ScanType]uint64{TypeSYN: 1, TypeFIN: 1, TypeNULL: 1, TypeXMAS: 1, TypeUDP: 2}
	var sum uint64
	for i, n := range st.Types {
		sum += n
		if n != want[ScanType(i)] {
			t.Errorf("%s: %d probes, want %d", ScanType(i), n, want[ScanType(i)])
		}
	}
	if sum != st.Probes || st.Probes != 6 {
		t.Errorf("types add up to %d, probes %d, want 6", sum, st.Probes)
	}
}

// TestStatsAdd: every counter adds up (a field left out of Add would
// show as a difference).
func TestStatsAdd(t *testing.T) {
	one := func(v uint64) Stats {
		s := Stats{Packets: v, Probes: v, Replies: v, Ignored: v, Sources: int(v), Evicted: v, Alerts: v}
		for i := range s.Types {
			s.Types[i] = v
		}
		return s
	}
	s := one(2)
	s.Add(one(3))
	if s != one(5) {
		t.Fatalf("%+v, want %+v", s, one(5))
	}
}

// TestFootprint checks Footprint against what New and NewOrigins really
// allocate, for the default table and a larger one.
func TestFootprint(t *testing.T) {
	for _, cfg := range []Config{{}, {MaxSources: 100_000}, {HugePages: true}, {MaxSources: 100_000, HugePages: true}} {
		n := cfg.MaxSources
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		o := NewOrigins()
		runtime.ReadMemStats(&after)
		got := int64(after.TotalAlloc - before.TotalAlloc)
		want := Footprint(cfg)
		if got < want*98/100 || got > want*102/100 {
			t.Errorf("MaxSources %d, huge pages %v: New and NewOrigins allocated %d bytes, Footprint says %d", n, cfg.HugePages, got, want)
		}
		t.Logf("MaxSources %d, huge pages %v: %d bytes allocated, Footprint %d", n, cfg.HugePages, got, want)
		runtime.KeepAlive(e)
		runtime.KeepAlive(o)
	}
}
