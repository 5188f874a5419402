package block

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/sirupsen/logrus"
)

// DryRun is the backend that changes nothing: it logs the block and unblock
// it would make and remembers them, so that List and Sync behave as a real
// backend's would (within one process).
type DryRun struct {
	log logrus.FieldLogger
	mu  sync.Mutex
	set map[netip.Addr]bool
}

var _ Blocker = (*DryRun)(nil)

// NewDryRun returns a dry-run backend logging to log.
func NewDryRun(log logrus.FieldLogger) *DryRun {
	return &DryRun{log: log, set: map[netip.Addr]bool{}}
}

// Traits: Prompt, a dry run only logs (its one line per block is then
// written on the capture thread, by Manager.Begin).
func (d *DryRun) Traits() Traits { return Traits{Prompt: true} }

// Prepare needs nothing.
func (d *DryRun) Prepare(context.Context) error { return nil }

// Close holds nothing.
func (d *DryRun) Close() error { return nil }

// Name is "dry-run".
func (d *DryRun) Name() string { return "dry-run" }

// Block logs the block it would make.
func (d *DryRun) Block(_ context.Context, b Ban) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.set[b.Addr] {
		d.log.Infof("dry-run: would block %s", b.Addr)
		d.set[b.Addr] = true
	}
	return nil
}

// Unblock logs the unblock it would make.
func (d *DryRun) Unblock(_ context.Context, a netip.Addr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.set[a] {
		d.log.Infof("dry-run: would unblock %s", a)
		delete(d.set, a)
	}
	return nil
}

// List returns what it pretends to block.
func (d *DryRun) List(context.Context) ([]netip.Addr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.SortedFunc(maps.Keys(d.set), netip.Addr.Compare), nil
}

// Sync pretends to block exactly want.
func (d *DryRun) Sync(ctx context.Context, want []Ban) error {
	keep := map[netip.Addr]bool{}
	for _, b := range want {
		keep[b.Addr] = true
		d.Block(ctx, b)
	}
	cur, _ := d.List(ctx)
	for _, a := range cur {
		if !keep[a] {
			d.Unblock(ctx, a)
		}
	}
	return nil
}

// Flush forgets everything.
func (d *DryRun) Flush(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.set) > 0 {
		d.log.Infof("dry-run: would remove %d block(s)", len(d.set))
	}
	clear(d.set)
	return nil
}

// Describe says that nothing is done.
func (d *DryRun) Describe(addr netip.Addr) string {
	return "dry-run (no rule written for " + addr.String() + ")"
}
