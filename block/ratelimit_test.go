package block

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/detect"
)

// TestRateLimitCarried: a reload's new limiter follows the old one: with
// the same limit it is the old one; with another it holds the old one's
// newest blocks, so that the limit still bites at once.
func TestRateLimitCarried(t *testing.T) {
	now := time.Unix(1000, 0)
	r := newRateLimiter(3)
	for i := range 3 {
		if ok, _ := r.allow(now.Add(time.Duration(i) * time.Second)); !ok {
			t.Fatal("refused within the limit")
		}
	}
	if r.carried(3) != r {
		t.Fatal("same limit: not the same limiter")
	}
	smaller := r.carried(2)
	if ok, _ := smaller.allow(now.Add(10 * time.Second)); ok {
		t.Fatal("a smaller limit let a block through after 3 in the minute")
	}
	if ok, _ := smaller.allow(now.Add(61*time.Second + time.Millisecond)); !ok {
		t.Fatal("a minute after the second-newest block, refused")
	}
	larger := r.carried(5)
	for i, want := range []bool{true, true, false} {
		if ok, _ := larger.allow(now.Add(20 * time.Second)); ok != want {
			t.Fatalf("larger limit, block %d: %v, want %v", i+4, ok, want)
		}
	}
	var none *rateLimiter
	if l := none.carried(4); len(l.times) != 4 {
		t.Fatal("no previous limiter")
	}
}

// TestPreviousManagerKeepsRateLimit: a manager built for a reload
// (Options.Previous) keeps the old one's rate-limit history: a reload
// does not open the limit again.
func TestPreviousManagerKeepsRateLimit(t *testing.T) {
	p := defaultPolicy()
	p.RateLimit = 1
	r := newRig(t, p)
	ctx := context.Background()
	if d, _ := r.m.Decide(ctx, alert(netip.MustParseAddr("198.51.100.100"), detect.TypeSYN, 111), "stcp"); d.Outcome != Blocked {
		t.Fatalf("first: %v", d.Outcome)
	}
	o := r.m.o
	o.Previous = r.m
	m2, err := NewManager(o)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := m2.Decide(ctx, alert(netip.MustParseAddr("198.51.100.101"), detect.TypeSYN, 111), "stcp"); d.Outcome != RateLimited {
		t.Fatalf("after the reload: %v, want rate limited", d.Outcome)
	}
	o.Previous = nil
	m3, _ := NewManager(o)
	if d, _ := m3.Decide(ctx, alert(netip.MustParseAddr("198.51.100.102"), detect.TypeSYN, 111), "stcp"); d.Outcome != Blocked {
		t.Fatalf("a manager of its own (no Previous): %v, want a fresh limit", d.Outcome)
	}
}
