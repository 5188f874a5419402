package daemon

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/detect"
)

// TestHandOffNeverWaits: with the blocking thread behind (the queue full
// but its reserve), a capture thread drops its alert rather than wait,
// counts it, and re-arms the source in its engine, so that the source is
// reported again on its next probe of another port.
func TestHandOffNeverWaits(t *testing.T) {
	eng, err := detect.New(detect.Config{MaxSources: 64, TrapTCP: &detect.PortSet{}})
	if err != nil {
		t.Fatal(err)
	}
	var traps detect.PortSet
	traps.AddRange(1, 1000)
	eng.SetTraps(&traps, nil)
	d := &daemon{alerts: make(chan alertItem, alertQueue)}
	for len(d.alerts) < alertQueue { // full: a send would wait
		d.alerts <- alertItem{}
	}
	src, dst := netip.MustParseAddr("198.51.100.66"), netip.MustParseAddr("198.51.100.10")
	eng.SetOwn([]netip.Addr{dst}) // the daemon's own address: hits count at once
	probe := func(port uint16, ts int64) *detect.Alert {
		p := detect.Probe{TS: ts, Src: detect.AddrOf(src), Dst: detect.AddrOf(dst), SrcPort: 40000, DstPort: port, Kind: detect.KindTCP, Proto: detect.ProtoTCP, Flags: detect.FlagSYN}
		return eng.Process(&p)
	}
	a := probe(1, 1)
	if a == nil {
		t.Fatal("no alert on a trap hit")
	}
	done := make(chan struct{})
	go func() { d.handOff(context.Background(), a, eng.Rearm); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("handOff waited for the blocking thread")
	}
	if d.dropped.Load() != 1 || len(d.alerts) != alertQueue {
		t.Fatalf("dropped %d, queue %d", d.dropped.Load(), len(d.alerts))
	}
	if probe(1, 2) != nil {
		t.Fatal("the same port again raised an alert at once")
	}
	if probe(2, 3) == nil {
		t.Fatal("the dropped source was not reported again on its next port")
	}
}

// TestLogFold: past foldBudget decisions per interval, decisions that
// block nothing are folded into one summary line with their counts; the
// summary of an interval with nothing folded is empty.
func TestLogFold(t *testing.T) {
	f := newLogFold(time.Unix(0, 0))
	src := netip.MustParseAddr("198.51.100.100")
	quiet := 0
	for i := 0; i < foldBudget+200; i++ {
		q := f.quiet(block.RateLimited)
		if q {
			quiet++
		}
		f.note(src, block.Decision{Outcome: block.RateLimited, Quiet: q})
		src = src.Next()
	}
	f.note(src, block.Decision{Outcome: block.Blocked})
	if quiet != 200 {
		t.Fatalf("%d folded, want 200", quiet)
	}
	line := f.summary(time.Unix(10, 0), 7)
	for _, want := range []string{"200 further alerts from 200 sources in the last 10 s", "1 blocked", "200 refused by the rate limit", "7 alerts dropped"} {
		if !strings.Contains(line, want) {
			t.Errorf("summary %q lacks %q", line, want)
		}
	}
	if f.quiet(block.Ignored) {
		t.Error("a new interval starts folded")
	}
	if line := f.summary(time.Unix(20, 0), 7); line != "" {
		t.Errorf("nothing folded, summary %q", line)
	}
}

// TestStuck: the watchdog is fed only while every capture thread comes
// back from its reads and the blocking thread is not held by one alert.
func TestStuck(t *testing.T) {
	d := &daemon{}
	lc := &liveCapture{iface: "eth9"}
	now := time.Unix(1000, 0)
	lc.alive.Store(now.UnixNano())
	if why := d.stuck([]*liveCapture{lc}, now.Add(time.Second)); why != "" {
		t.Fatalf("alive: %q", why)
	}
	if why := d.stuck([]*liveCapture{lc}, now.Add(captureStuckAfter+time.Second)); !strings.Contains(why, "eth9") {
		t.Fatalf("capture stuck: %q", why)
	}
	d.blockingBusy.Store(now.UnixNano())
	if why := d.stuck(nil, now.Add(blockingStuckAfter+time.Second)); !strings.Contains(why, "blocking thread") {
		t.Fatalf("blocking stuck: %q", why)
	}
	d.blockingBusy.Store(0)
	if why := d.stuck(nil, now.Add(time.Hour)); why != "" {
		t.Fatalf("idle blocking thread counted stuck: %q", why)
	}
}
