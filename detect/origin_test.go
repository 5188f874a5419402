package detect

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

var (
	macVictim   = [6]byte{2, 0, 0, 0, 0, 0x10}
	macBenign   = [6]byte{2, 0, 0, 0, 0, 0x20}
	macAttacker = [6]byte{2, 0, 0, 0, 0, 0x66}
	macRouter   = [6]byte{2, 0, 0, 0, 0, 0x01}
)

// lan is a Neighbourhood for tests: fixed entries, 198.51.100.0/24 on
// the link, routers by address.
type lan struct {
	entries map[netip.Addr]NeighInfo
	routers map[netip.Addr]bool
}

func (n *lan) Neighbour(a netip.Addr) NeighInfo {
	ni := n.entries[a]
	ni.OnLink = netip.MustParsePrefix("198.51.100.0/24").Contains(a)
	return ni
}

func (n *lan) Owner(mac [6]byte) (netip.Addr, bool, bool) {
	for a, ni := range n.entries {
		if ni.State == NeighBound && ni.MAC == mac {
			return a, n.routers[a], true
		}
	}
	return netip.Addr{}, false, false
}

func bound(mac [6]byte) NeighInfo { return NeighInfo{State: NeighBound, MAC: mac} }

var (
	unused = netip.MustParseAddr("198.51.100.201")
	router = netip.MustParseAddr("198.51.100.1")
	far    = netip.MustParseAddr("203.0.113.20")
)

// handshake feeds o a connection from client (frames from mac, arriving
// with ttl) to victim:80 that the client completes and closes: the
// victim's SYN-ACK and the client's FIN+ACK acknowledging it.
func handshakeOf(o *Origins, client netip.Addr, mac [6]byte, ttl uint8, ts int64, ack uint32) {
	o.Observe(&Probe{TS: ts, Src: AddrOf(client), Dst: AddrOf(victim), SrcPort: 40000, DstPort: 80, Kind: KindTCP, Proto: ProtoTCP,
		Flags: FlagSYN, Seq: 1000, TTL: ttl, HasMAC: true, SrcMAC: mac})
	o.Observe(&Probe{TS: ts + 1e5, Src: AddrOf(victim), Dst: AddrOf(client), SrcPort: 80, DstPort: 40000, Kind: KindTCP, Proto: ProtoTCP,
		Flags: FlagSYN | FlagACK, Seq: 5000, Ack: 1001, TTL: 64, HasMAC: true, SrcMAC: macVictim})
	o.Observe(&Probe{TS: ts + 2e6, Src: AddrOf(client), Dst: AddrOf(victim), SrcPort: 40000, DstPort: 80, Kind: KindTCP, Proto: ProtoTCP,
		Flags: FlagFIN | FlagACK, Seq: 1200, Ack: ack, TTL: ttl, HasMAC: true, SrcMAC: mac})
}

func alertOf(src netip.Addr, mac [6]byte, hasMAC bool, ttls ...uint8) *Alert {
	a := &Alert{Src: src, Time: t0 + int64(time.Second), Proto: ProtoTCP}
	for _, ttl := range ttls {
		a.Link.note(&Probe{TTL: ttl, HasMAC: hasMAC, SrcMAC: mac})
	}
	return a
}

func TestOriginsLearnsFromValidatedTraffic(t *testing.T) {
	o := NewOrigins()
	handshakeOf(o, far, macRouter, 63, t0, 5001) // acknowledges the SYN-ACK
	k := o.find(far, t0)
	if k == nil || k.own.Hops != 1<<1 || k.own.MACs != 1 || k.own.MAC != macRouter {
		t.Fatalf("learned %+v, want 1 hop from the router's MAC", k)
	}
	// A FIN+ACK that acknowledges nothing the host sent teaches nothing.
	o2 := NewOrigins()
	handshakeOf(o2, far, macRouter, 63, t0, 1<<31)
	if k := o2.find(far, t0); k != nil {
		t.Fatalf("learned %+v from a segment acknowledging nothing", k)
	}
}

func TestOriginsIgnoresForgedSynAck(t *testing.T) {
	// a SYN-ACK in the host's name that arrived through a router (TTL
	// lowered) is not the host's own: nothing acknowledges it
	o := NewOrigins()
	o.Observe(&Probe{TS: t0, Src: AddrOf(victim), Dst: AddrOf(far), SrcPort: 80, DstPort: 40000, Kind: KindTCP, Proto: ProtoTCP,
		Flags: FlagSYN | FlagACK, Seq: 5000, TTL: 60})
	o.Observe(&Probe{TS: t0 + 1e6, Src: AddrOf(far), Dst: AddrOf(victim), SrcPort: 40000, DstPort: 80, Kind: KindTCP, Proto: ProtoTCP,
		Flags: FlagFIN | FlagACK, Ack: 5001, TTL: 60})
	if k := o.find(far, t0); k != nil {
		t.Fatalf("learned %+v from a routed SYN-ACK", k)
	}
	// two SYN-ACKs of one connection that disagree poison it
	o = NewOrigins()
	for _, isn := range []uint32{5000, 9000} {
		o.Observe(&Probe{TS: t0, Src: AddrOf(victim), Dst: AddrOf(far), SrcPort: 80, DstPort: 40000, Kind: KindTCP, Proto: ProtoTCP,
			Flags: FlagSYN | FlagACK, Seq: isn, TTL: 64})
	}
	o.Observe(&Probe{TS: t0 + 1e6, Src: AddrOf(far), Dst: AddrOf(victim), SrcPort: 40000, DstPort: 80, Kind: KindTCP, Proto: ProtoTCP,
		Flags: FlagFIN | FlagACK, Ack: 9001, TTL: 60})
	if k := o.find(far, t0); k != nil {
		t.Fatalf("learned %+v from a connection with two SYN-ACKs", k)
	}
}

func TestJudge(t *testing.T) {
	n := &lan{
		entries: map[netip.Addr]NeighInfo{
			benign:   bound(macBenign),
			attacker: bound(macAttacker),
			router:   bound(macRouter),
			unused:   {State: NeighFailed},
		},
		routers: map[netip.Addr]bool{router: true},
	}
	withHistory := NewOrigins()
	handshakeOf(withHistory, far, macRouter, 63, t0, 5001)
	cases := []struct {
		name    string
		o       *Origins
		a       *Alert
		want    Verdict
		mention string
	}{
		{"attacker's own MAC", NewOrigins(), alertOf(attacker, macAttacker, true, 45, 50), Genuine, "its own MAC"},
		{"benign's address from the attacker's MAC", NewOrigins(), alertOf(benign, macAttacker, true, 64), Forged,
			"frames from 02:00:00:00:00:66, the MAC of 198.51.100.66; 198.51.100.20 is at 02:00:00:00:00:20"},
		{"unused address", NewOrigins(), alertOf(unused, macAttacker, true, 64), Forged, "no host answers for 198.51.100.201"},
		{"on-link address being resolved", NewOrigins(), alertOf(netip.MustParseAddr("198.51.100.150"), macAttacker, true, 64), Pending, "resolving"},
		{"off-link from a router, no history", NewOrigins(), alertOf(netip.MustParseAddr("192.0.2.66"), macRouter, true, 62), Unknown, ""},
		{"off-link from a host that routes nothing", NewOrigins(), alertOf(netip.MustParseAddr("192.0.2.99"), macAttacker, true, 64), Forged,
			"the MAC of 198.51.100.66, which routes nothing here"},
		// an off-link host's own frame (through the router) first, then
		// probes in its name from a neighbour that routes nothing: the
		// mix does not hide the forger
		{"off-link through the router and from a host that routes nothing", NewOrigins(), func() *Alert {
			a := alertOf(netip.MustParseAddr("192.0.2.99"), macRouter, true, 50)
			a.Link.note(&Probe{TTL: 64, HasMAC: true, SrcMAC: macAttacker})
			return a
		}(), Forged, "frames from 02:00:00:00:00:66, the MAC of 198.51.100.66, which routes nothing here"},
		{"off-link from two routers", NewOrigins(), func() *Alert {
			a := alertOf(netip.MustParseAddr("192.0.2.99"), macRouter, true, 50)
			a.Link.note(&Probe{TTL: 50, HasMAC: true, SrcMAC: [6]byte{2, 0, 0, 0, 0, 0x77}}) // a MAC nobody owns
			return a
		}(), Unknown, ""},
		{"off-link, hops as learned", withHistory, alertOf(far, macRouter, true, 63), Unknown, ""},
		{"off-link, other hops than learned", withHistory, alertOf(far, macRouter, true, 62, 62), Forged,
			"probes from 2 hops away; 203.0.113.20's own connections come from 1"},
		{"no link-layer address, other hops", withHistory, alertOf(far, [6]byte{}, false, 40, 55, 54, 53), Forged, "probes from 9-11, 24 hops away"},
		{"its own connections and forged probes", withHistory, alertOf(far, macRouter, true, 63, 63, 62), Forged,
			"probes from 2 hops away; 203.0.113.20's own connections come from 1"},
		{"several MACs on the link", NewOrigins(), func() *Alert {
			a := alertOf(attacker, macAttacker, true, 64)
			a.Link.note(&Probe{TTL: 64, HasMAC: true, SrcMAC: macBenign})
			return a
		}(), Forged, "several MACs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := c.o.Judge(c.a, n)
			if j.Verdict != c.want || !strings.Contains(j.Evidence, c.mention) {
				t.Fatalf("Judge = %v %q, want %v mentioning %q", j.Verdict, j.Evidence, c.want, c.mention)
			}
		})
	}
	connect := &Alert{Src: benign, Proto: ProtoTCP, Connected: true}
	if j := NewOrigins().Judge(connect, n); j.Verdict != Genuine {
		t.Fatalf("a completed connection judged %v", j.Verdict)
	}
}

// nmap -D: each probe goes out from every decoy and the real source
// back to back, all from the sender's MAC.
func decoyScan(o *Origins, mac [6]byte, srcs []netip.Addr, ports int) {
	ts := t0
	for port := 1; port <= ports; port++ {
		for _, s := range srcs {
			o.Observe(&Probe{TS: ts, Src: AddrOf(s), Dst: AddrOf(victim), SrcPort: 50000, DstPort: uint16(port), Kind: KindTCP, Proto: ProtoTCP,
				Flags: FlagSYN, TTL: 50, HasMAC: true, SrcMAC: mac})
			ts += 20e3
		}
		ts += 1e6
	}
}

func TestJudgeDecoys(t *testing.T) {
	d1, d2 := netip.MustParseAddr("198.51.100.202"), netip.MustParseAddr("198.51.100.203")
	// nothing is known of the decoys: no entry, not even a failed one
	n := &lan{entries: map[netip.Addr]NeighInfo{attacker: bound(macAttacker)}}
	o := NewOrigins()
	decoyScan(o, macAttacker, []netip.Addr{d1, attacker, d2}, 10)
	for _, d := range []netip.Addr{d1, d2} {
		j := o.Judge(alertOf(d, macAttacker, true, 50), n)
		if j.Verdict != Forged || !strings.Contains(j.Evidence, "a decoy") {
			t.Errorf("%s: %v %q, want forged as a decoy", d, j.Verdict, j.Evidence)
		}
	}
	if j := o.Judge(alertOf(attacker, macAttacker, true, 50), n); j.Verdict != Genuine {
		t.Errorf("the real source among decoys: %v %q", j.Verdict, j.Evidence)
	}
	// two probes in step are no pattern yet
	o = NewOrigins()
	decoyScan(o, macAttacker, []netip.Addr{d1, attacker}, 1)
	if j := o.Judge(alertOf(d1, macAttacker, true, 50), n); j.Verdict == Forged {
		t.Errorf("one step made a decoy: %q", j.Evidence)
	}
}

// In a replay the capture's ARP and NDP are the neighbour table.
func TestOriginsReplayNeighbours(t *testing.T) {
	o := NewOrigins()
	o.Observe(&Probe{TS: t0, Kind: KindNeigh, Src: AddrOf(benign), Dst: AddrOf(victim), HasMAC: true, SrcMAC: macBenign})
	if ni := o.Neighbour(benign); !ni.OnLink || ni.State != NeighBound || ni.MAC != macBenign {
		t.Fatalf("Neighbour = %+v", ni)
	}
	if j := o.Judge(alertOf(benign, macAttacker, true, 64), o); j.Verdict != Forged {
		t.Fatalf("benign from the attacker's MAC in a replay: %v", j.Verdict)
	}
	if j := o.Judge(alertOf(attacker, macAttacker, true, 64), o); j.Verdict != Unknown {
		t.Fatalf("attacker with no ARP in the capture: %v, want unknown", j.Verdict)
	}
}

func TestOriginsObserveAllocates(t *testing.T) {
	o := NewOrigins()
	ps := []Probe{
		{TS: t0, Src: AddrOf(victim), Dst: AddrOf(far), SrcPort: 80, DstPort: 4000, Kind: KindTCP, Proto: ProtoTCP, Flags: FlagSYN | FlagACK, TTL: 64},
		{TS: t0, Src: AddrOf(far), Dst: AddrOf(victim), SrcPort: 4000, DstPort: 80, Kind: KindTCP, Proto: ProtoTCP, Flags: FlagFIN | FlagACK, Ack: 1, TTL: 60},
		{TS: t0, Src: AddrOf(attacker), Dst: AddrOf(victim), DstPort: 22, Kind: KindTCP, Proto: ProtoTCP, Flags: FlagSYN, TTL: 60, HasMAC: true},
		{TS: t0, Src: AddrOf(benign), Kind: KindNeigh, HasMAC: true},
	}
	if n := testing.AllocsPerRun(100, func() {
		for i := range ps {
			o.Observe(&ps[i])
		}
	}); n != 0 {
		t.Fatalf("Observe allocates %v times", n)
	}
}

// The engine hands over what a source's probes showed, not what the
// probed host's replies did.
func TestEngineLinkSeen(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	var a *Alert
	for port := uint16(1); port <= 12 && a == nil; port++ {
		a = e.Process(&Probe{TS: t0 + int64(port), Src: AddrOf(attacker), Dst: AddrOf(victim), SrcPort: 5000, DstPort: port,
			Kind: KindTCP, Proto: ProtoTCP, Flags: FlagFIN, TTL: 40 + uint8(port), HasMAC: true, SrcMAC: macAttacker})
		if a == nil {
			// the victim's RST, from its own MAC with TTL 64
			a = e.Process(&Probe{TS: t0 + int64(port) + 1, Src: AddrOf(victim), Dst: AddrOf(attacker), SrcPort: port, DstPort: 5000,
				Kind: KindTCP, Proto: ProtoTCP, Flags: FlagRST | FlagACK, TTL: 64, HasMAC: true, SrcMAC: macVictim})
		}
	}
	if a == nil {
		t.Fatal("no alert")
	}
	var want uint64
	for port := 1; port <= len(a.Ports); port++ {
		want |= 1 << (64 - 40 - port) // the probes' own, not the victim's RSTs (0 hops)
	}
	if a.Link.MACs != 1 || a.Link.MAC != macAttacker || a.Link.Hops != want {
		t.Fatalf("Link = %+v, want hops %b", a.Link, want)
	}
}

// TestMaimonLinkSeen: a Maimon probe (FIN+ACK) is the source's own frame,
// so a Maimon scan forged in a neighbour's name from another MAC is
// judged forged, as a SYN scan is.
func TestMaimonLinkSeen(t *testing.T) {
	e := newEngine(t, Config{})
	var a *Alert
	for i, p := range seq(600, 10) {
		ts := t0 + int64(i)*ms
		fa := tcp(ts, benign, 42000, victim, p, FlagFIN|FlagACK)
		fa.HasMAC, fa.SrcMAC, fa.TTL = true, macAttacker, 64
		if x := e.Process(fa); x != nil && a == nil {
			a = x.Clone()
		}
		if x := e.Process(tcp(ts+ms/10, victim, p, benign, 42000, FlagRST)); x != nil && a == nil {
			a = x.Clone()
		}
	}
	if a == nil || a.Type != TypeMaimon {
		t.Fatalf("alert %+v, want a Maimon scan", a)
	}
	if a.Link.MACs != 1 || a.Link.MAC != macAttacker {
		t.Errorf("Link = %+v, want the FIN+ACK frames' MAC", a.Link)
	}
	n := &lan{entries: map[netip.Addr]NeighInfo{benign: bound(macBenign), attacker: bound(macAttacker)}}
	if j := NewOrigins().Judge(a, n); j.Verdict != Forged {
		t.Errorf("Maimon scan in %v's name from %v's MAC judged %v (%s), want forged", benign, attacker, j.Verdict, j.Evidence)
	}
}
