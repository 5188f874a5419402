package detect

import (
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// hitEngine is an engine as PortSentry's classic modes use it: only the
// trap trigger (the score never alerts), trigger hits within window.
func hitEngine(t *testing.T, window time.Duration, trigger int) *Engine {
	t.Helper()
	e, err := New(Config{Window: window, ScanTrigger: trigger, Threshold: math.MaxInt32, MaxSources: minMaxSources,
		Home: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/25")}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestHit: SCAN_TRIGGER as PortSentry 1.2 reads it (0 and 1 react on the
// first hit, N on the Nth within the window), the alert's fields, one
// alert per source until Rearm, and a destination outside Home ignored.
func TestHit(t *testing.T) {
	sec := int64(time.Second)
	src, dst := netip.MustParseAddr("198.51.100.50"), netip.MustParseAddr("198.51.100.10")
	for _, trig := range []int{0, 1} {
		e := hitEngine(t, time.Minute, trig)
		a := e.Hit(src, dst, ProtoTCP, 111, 5*sec)
		if a == nil {
			t.Fatalf("SCAN_TRIGGER %d: no alert on the first hit", trig)
		}
		if a.Src != src || a.Type != TypeConnect || a.Trigger != TriggerTrap || a.Time != 5*sec || a.First != 5*sec ||
			a.Probes != 1 || a.Score != WeightClosed || a.Proto != ProtoTCP || a.Port != 111 || !a.Connected ||
			!slices.Equal(a.Ports, []PortRef{{Proto: ProtoTCP, Port: 111}}) || !slices.Equal(a.Dst, []netip.Addr{dst}) {
			t.Fatalf("alert %+v", a)
		}
		if e.Hit(src, dst, ProtoTCP, 111, 6*sec) != nil {
			t.Fatal("a second alert of the same source")
		}
	}

	e := hitEngine(t, time.Minute, 3)
	if e.Hit(src, dst, ProtoUDP, 31337, 0) != nil || e.Hit(src, dst, ProtoUDP, 7, 10*sec) != nil {
		t.Fatal("alert before the third hit")
	}
	// the third hit comes after the first has left the window: it is the
	// first of a new count
	if e.Hit(src, dst, ProtoUDP, 9, 61*sec) != nil || e.Hit(src, dst, ProtoUDP, 9, 62*sec) != nil {
		t.Fatal("hits outside the window counted together")
	}
	a := e.Hit(src, dst, ProtoUDP, 7, 63*sec)
	if a == nil || a.Type != TypeUDP || a.Probes != 5 || a.Port != 7 || !slices.Equal(a.Dst, []netip.Addr{dst}) ||
		!slices.Equal(a.Ports, []PortRef{{Proto: ProtoUDP, Port: 7}, {Proto: ProtoUDP, Port: 9}}) || a.Score != 2*WeightClosed {
		t.Fatalf("third hit in the window: %+v", a)
	}

	// rearmed (the blocker refused the alert): again from the rearm time
	// on, or at once on another port with onNew
	e = hitEngine(t, time.Minute, 1)
	if e.Hit(src, dst, ProtoTCP, 111, 0) == nil {
		t.Fatal("first hit")
	}
	e.Rearm(src, 5*sec, true)
	if e.Hit(src, dst, ProtoTCP, 111, sec) != nil {
		t.Fatal("the same port re-reported before the rearm time")
	}
	if a := e.Hit(src, dst, ProtoTCP, 143, 2*sec); a == nil || len(a.Ports) != 2 {
		t.Fatalf("another port not re-reported at once with onNew: %+v", a)
	}

	// an unknown destination still counts
	e = hitEngine(t, time.Minute, 1)
	if a := e.Hit(src, netip.Addr{}, ProtoUDP, 7, 0); a == nil || len(a.Dst) != 0 {
		t.Fatalf("unknown destination: %+v", a)
	}

	// outside HOME_NETWORKS: no count
	out := netip.MustParseAddr("198.51.100.200")
	e = hitEngine(t, time.Minute, 1)
	if e.Hit(src, out, ProtoUDP, 7, 0) != nil || e.Stats().Probes != 0 {
		t.Fatal("a hit outside HOME_NETWORKS counted")
	}
}
