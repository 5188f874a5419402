package block

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestNamesAnswered: a resolver that answers gives the name (trailing dot
// dropped), looked up once and then cached; no name gives the address.
func TestNamesAnswered(t *testing.T) {
	var calls atomic.Int32
	n := newNames(func(_ context.Context, addr string) ([]string, error) {
		calls.Add(1)
		if addr == "198.51.100.66" {
			return []string{"scanner.example.net."}, nil
		}
		return nil, nil
	}, time.Now)
	a, b := netip.MustParseAddr("198.51.100.66"), netip.MustParseAddr("198.51.100.67")
	for range 3 {
		if got := n.name(context.Background(), a); got != "scanner.example.net" {
			t.Fatalf("name %q", got)
		}
		if got := n.name(context.Background(), b); got != b.String() {
			t.Fatalf("no name: %q", got)
		}
	}
	if calls.Load() != 2 {
		t.Fatalf("%d lookups, want 2 (the rest cached)", calls.Load())
	}
}

// TestNamesSilentResolver: a resolver that never answers holds a decision
// for nameWait at most, and after nameSilentAfter such misses not at all:
// a flood of forged sources cannot slow decisions to one per lookup
// timeout. The lookups still run, at most nameInflight at once.
func TestNamesSilentResolver(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var running, most atomic.Int32
	var mu sync.Mutex
	n := newNames(func(ctx context.Context, _ string) ([]string, error) {
		mu.Lock()
		if r := running.Add(1); r > most.Load() {
			most.Store(r)
		}
		mu.Unlock()
		defer running.Add(-1)
		// no answer within nameWait, but the lookup ends soon after:
		// the in-flight bound never fills, so only the resolver's
		// silence keeps decisions from waiting
		select {
		case <-ctx.Done():
		case <-release:
		case <-time.After(2 * nameWait):
		}
		return nil, context.DeadlineExceeded
	}, time.Now)
	src := netip.MustParseAddr("198.51.100.100")
	start := time.Now()
	const sources = 200
	for range sources {
		if got := n.name(context.Background(), src); got != src.String() {
			t.Fatalf("name %q, want the address", got)
		}
		src = src.Next()
	}
	// waiting for every lookup would take sources*nameWait (20 s); the
	// first nameSilentAfter misses only are waited for
	if el := time.Since(start); el > time.Duration(nameSilentAfter+5)*nameWait {
		t.Errorf("%d decisions took %v with a silent resolver: they waited", sources, el)
	}
	if m := most.Load(); m > nameInflight {
		t.Errorf("%d lookups at once, bound %d", m, nameInflight)
	}
}
