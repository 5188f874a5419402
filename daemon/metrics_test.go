package daemon

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/metrics"
)

// TestOutcomeLabel: every outcome of the block manager has its own label,
// and the ignore file is told apart from what the host protects.
func TestOutcomeLabel(t *testing.T) {
	for _, c := range []struct {
		dec  block.Decision
		want string
	}{
		{block.Decision{Outcome: block.Blocked}, metrics.Blocked},
		{block.Decision{Outcome: block.AlreadyBlocked}, metrics.AlreadyBlocked},
		{block.Decision{Outcome: block.LoggedOnly}, metrics.LoggedOnly},
		{block.Decision{Outcome: block.CommandOnly}, metrics.CommandOnly},
		{block.Decision{Outcome: block.RateLimited}, metrics.RateLimited},
		{block.Decision{Outcome: block.Forged, Why: "decoy"}, metrics.Forged},
		{block.Decision{Outcome: block.Ignored, Why: block.ReasonIgnoreFile}, metrics.IgnoreFile},
		{block.Decision{Outcome: block.Ignored, Why: "a default gateway"}, metrics.NeverBlock},
		{block.Decision{Outcome: block.Failed}, metrics.Failed},
		{block.Decision{Outcome: block.Outcome(99)}, metrics.Failed},
	} {
		if got := outcomeLabel(c.dec); got != c.want {
			t.Errorf("%v (why %q): %q, want %q", c.dec.Outcome, c.dec.Why, got, c.want)
		}
	}
}

// TestEngineStatsPublished: a capture thread's engine counters reach a
// scrape every rtCheckEvery packets (when its rtThread's tick checks, as
// captureLoop publishes), not before; a scrape that holds the lock makes
// the publication wait for the next one, never the thread.
func TestEngineStatsPublished(t *testing.T) {
	eng, err := detect.New(detect.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var s engineStats
	log, _ := test.NewNullLogger()
	rt := &rtThread{p: &rtPolicy{log: log}, name: "the capture", wall0: time.Now()}
	victim := detect.AddrOf(netip.MustParseAddr("198.51.100.1"))
	feed := func(n int) {
		for i := range n {
			p := detect.Probe{Kind: detect.KindTCP, Proto: detect.ProtoTCP, Flags: detect.FlagSYN,
				Src: detect.AddrOf(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})), Dst: victim,
				SrcPort: 40000, DstPort: uint16(1000 + i), TS: time.Now().UnixNano()}
			eng.Process(&p)
			if rt.tick(p.TS) {
				s.publish(eng)
			}
		}
	}
	feed(rtCheckEvery - 1)
	if got := s.load(); got.Packets != 0 {
		t.Fatalf("published after %d packets: %+v", rtCheckEvery-1, got)
	}
	feed(1)
	if got := s.load(); got.Packets != rtCheckEvery || got.Types[detect.TypeSYN] != rtCheckEvery {
		t.Fatalf("after %d packets: %+v", rtCheckEvery, got)
	}
	s.mu.Lock() // a scrape in progress
	feed(rtCheckEvery)
	s.mu.Unlock()
	if got := s.load(); got.Packets != rtCheckEvery {
		t.Fatalf("published under a scrape's lock: %d", got.Packets)
	}
	s.publish(eng) // the read timeout's publication
	if got := s.load(); got.Packets != 2*rtCheckEvery {
		t.Fatalf("after the timeout's publication: %d", got.Packets)
	}
}

// TestMetricsMoveOnOnePort: a reload that moves METRICS_LISTEN to another
// address on the port the running listener holds (127.0.0.1:P to :P) is
// refused by the kernel; the error says that scanwarden's own listener is
// in the way and that a restart moves it, and the old listener goes on.
func TestMetricsMoveOnOnePort(t *testing.T) {
	d := &daemon{}
	d.metrics = metrics.New("test", d.snapshot)
	old, err := metrics.Listen("127.0.0.1:0", d.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	d.metricsSrv = old
	_, port, _ := net.SplitHostPort(old.Addr())
	c := &conf.Config{MetricsListen: ":" + port}
	srv, err := d.listenMetrics(c)
	if err == nil {
		srv.Close()
		t.Skip("this kernel let :P be bound beside 127.0.0.1:P")
	}
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "own listener on "+old.Addr()) || !strings.Contains(err.Error(), "restart") {
		t.Errorf("error %q: want EADDRINUSE naming our own listener and a restart", err)
	}
	// another program on another port: the plain error
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	c.MetricsListen = other.Addr().String()
	if _, err := d.listenMetrics(c); err == nil || strings.Contains(err.Error(), "own listener") {
		t.Errorf("a port another program holds: %v", err)
	}
}
