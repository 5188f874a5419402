package daemon

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/crowdsec"
	"github.com/scanwarden/scanwarden/metrics"
)

// gateBlocker is a firewall backend whose Block and Unblock wait for
// gate, having said so on entered.
type gateBlocker struct{ entered, gate chan struct{} }

func (g *gateBlocker) Name() string                            { return "gate" }
func (g *gateBlocker) Traits() block.Traits                    { return block.Traits{} }
func (g *gateBlocker) Describe(a netip.Addr) string            { return "gate " + a.String() }
func (g *gateBlocker) Prepare(context.Context) error           { return nil }
func (g *gateBlocker) Sync(context.Context, []block.Ban) error { return nil }
func (g *gateBlocker) Flush(context.Context) error             { return nil }
func (g *gateBlocker) Close() error                            { return nil }
func (g *gateBlocker) List(context.Context) ([]netip.Addr, error) {
	return nil, nil
}
func (g *gateBlocker) wait() { g.entered <- struct{}{}; <-g.gate }
func (g *gateBlocker) Block(context.Context, block.Ban) error {
	g.wait()
	return nil
}
func (g *gateBlocker) Unblock(context.Context, netip.Addr) error {
	g.wait()
	return nil
}

// TestReloadWaitsForTheFleet: the CrowdSec puller enforces and lifts the
// fleet's decisions with the manager in force, on its own goroutine. A
// reload meanwhile must not close that manager's parts (its backends,
// journal and state file) under it: they are retired once the puller is
// done with them.
func TestReloadWaitsForTheFleet(t *testing.T) {
	ctx := context.Background()
	log, _ := test.NewNullLogger()
	d := &daemon{log: log}
	d.metrics = metrics.New("test", d.snapshot)
	g := &gateBlocker{entered: make(chan struct{}), gate: make(chan struct{})}
	st, err := block.OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := block.NewManager(block.Options{Blockers: []block.Blocker{g}, Never: block.NewNeverBlock(nil), State: st, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	var closed atomic.Bool
	x := netip.MustParseAddr("203.0.113.7")

	for _, tc := range []struct {
		name string
		run  func()
	}{
		{"enforce", func() {
			fleet{d}.Enforce(ctx, []crowdsec.Pulled{{Addr: x, Until: time.Now().Add(time.Hour), Scenario: "crowdsecurity/ssh-bf", Origin: "crowdsec"}})
		}},
		{"lift", func() { fleet{d}.Lift(ctx, []netip.Addr{x}, time.Now()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			closed.Store(false)
			g.gate = make(chan struct{})
			d.parts = &parts{mgr: m, never: block.NewNeverBlock(nil), closeAll: func() { closed.Store(true) }}
			finished := make(chan struct{})
			go func() { tc.run(); close(finished) }()
			<-g.entered // the puller is inside the backend
			// a reload swaps the parts and retires the old ones
			d.mu.Lock()
			old := d.parts
			d.parts = &parts{mgr: m, never: old.never, closeAll: func() {}}
			d.mu.Unlock()
			retired := make(chan struct{})
			go func() { old.retire(); close(retired) }()
			var early bool
			select {
			case <-retired:
				early = true
			case <-time.After(100 * time.Millisecond):
			}
			close(g.gate)
			<-finished
			<-retired
			if early {
				t.Fatal("the reload closed the manager's parts while the puller was using them")
			}
			if !closed.Load() {
				t.Fatal("the old parts were not closed once the puller was done")
			}
		})
	}
}
