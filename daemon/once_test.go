package daemon

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/command"
	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/internal/conftest"
	"github.com/scanwarden/scanwarden/metrics"
)

// TestForgedAlertLeavesTheOnceSlot: in the classic modes one alert per
// source and window goes to the block manager. An alert judged forged
// must not take that slot: else a forger who sends one probe in X's name
// makes X's own scan, within the window, "not reported again", and X is
// never blocked.
func TestForgedAlertLeavesTheOnceSlot(t *testing.T) {
	ctx := context.Background()
	c, err := LoadConfig(conftest.DryConfig(t, t.TempDir(), ""), true)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := test.NewNullLogger()
	d := &daemon{log: log, modes: Modes{TCP: true, UDP: true, ClassicTCP: true}, cfg: c, fold: newLogFold(time.Now())}
	d.metrics = metrics.New("test", d.snapshot)
	d.once = newAlertOnce(onceMaxSources, int64(c.DetectWindow))
	never := block.NewNeverBlock(nil)
	m, closeM, err := newManager(c, log, managerParts{never: never, runner: &command.FakeRunner{}, quiet: d.fold.quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeM)
	d.parts = &parts{mgr: m, never: never, closeAll: closeM}
	deliver := func(a *detect.Alert) bool { // as blockLoop does
		it := d.begin(ctx, a)
		if !it.refused {
			d.handle(ctx, it)
		}
		return !it.refused
	}

	x := netip.MustParseAddr("198.51.100.66")
	now := time.Now().UnixNano()
	forged := &detect.Alert{Src: x, Type: detect.TypeSYN, Trigger: detect.TriggerTrap, Proto: detect.ProtoTCP, Port: 1, Probes: 1, Time: now, First: now,
		Origin: detect.Judgement{Verdict: detect.Forged, Evidence: "frames from 02:00:00:00:00:99, the MAC of 198.51.100.99"}}
	deliver(forged)
	if bans, _ := m.List(); len(bans) != 0 {
		t.Fatalf("a forged alert blocked: %+v", bans)
	}
	sec := now + int64(time.Second)
	own := &detect.Alert{Src: x, Type: detect.TypeConnect, Trigger: detect.TriggerTrap, Proto: detect.ProtoTCP, Port: 31337,
		Probes: 1, Time: sec, First: sec, Connected: true}
	if !deliver(own) {
		t.Fatal("X's own connection after a forged probe in its name: not reported again")
	}
	if bans, _ := m.List(); len(bans) != 1 || bans[0].Addr != x {
		t.Fatalf("X's own connection: bans %+v", bans)
	}
}
