package block

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/scanwarden/scanwarden/detect"
)

// TestQuiet: past the caller's log budget (Options.Quiet), decisions that
// block nothing log nothing and say so in Decision.Quiet; a block is
// always logged, and the history of a log-only decision is still written.
func TestQuiet(t *testing.T) {
	p := defaultPolicy()
	p.RateLimit = 1
	r := newRig(t, p)
	var asked []Outcome
	r.m.o.Quiet = func(o Outcome) bool { asked = append(asked, o); return true }
	ctx := context.Background()
	src := netip.MustParseAddr("198.51.100.100")
	var outs []Decision
	for range 4 {
		d, err := r.m.Decide(ctx, alert(src, detect.TypeSYN, 111), "stcp")
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, d)
		src = src.Next()
	}
	d, _ := r.m.Decide(ctx, alert(netip.MustParseAddr("198.51.100.100"), detect.TypeSYN, 111), "stcp")
	outs = append(outs, d)
	if outs[0].Outcome != Blocked || outs[0].Quiet {
		t.Fatalf("first: %+v, want a logged block", outs[0])
	}
	for i, d := range outs[1:4] {
		if d.Outcome != RateLimited || !d.Quiet {
			t.Errorf("alert %d: %+v, want a quiet refusal", i+1, d)
		}
	}
	if outs[4].Outcome != AlreadyBlocked || !outs[4].Quiet {
		t.Errorf("again: %+v, want quiet", outs[4])
	}
	for _, o := range asked {
		if o == Blocked {
			t.Error("Quiet asked about a block")
		}
	}
	scans := 0
	for _, e := range r.hook.AllEntries() {
		if strings.Contains(e.Message, "attackalert: TCP SYN/Normal scan from host") {
			scans++
		}
	}
	if scans != 1 {
		t.Errorf("%d scan lines, want 1 (the block's)", scans)
	}

	// log only: quiet in the log, the history line written all the same
	p.BlockTCP = LogOnly
	r = newRig(t, p)
	r.m.o.Quiet = func(Outcome) bool { return true }
	if d, err := r.m.Decide(ctx, alert(scanner, detect.TypeSYN, 111), "stcp"); err != nil || d.Outcome != LoggedOnly || !d.Quiet {
		t.Fatalf("log only: %+v %v", d, err)
	}
	if got := r.c.list(); len(got) != 1 || !strings.HasPrefix(got[0], "history ") {
		t.Errorf("log only: %q, want the history line", got)
	}
}
