package daemon

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/scanwarden/scanwarden/block"
)

// The log's bound under a flood, as scanlogd folds its own: a flood of
// forged sources raises an alert per source, and a line or two per alert
// would push journald past its rate limit (10,000 lines in 30 s per
// service by default), which then drops the lines that matter.
const (
	// foldEvery is the interval over which decisions are counted, and
	// at whose end the summary of the folded ones is logged.
	foldEvery = 10 * time.Second
	// foldBudget is how many decisions that block nothing (refused by
	// the rate limit, already blocked, ignored, log only) are logged in
	// full per interval (two lines each); past it they are counted, and
	// logged as one summary line. A block is always logged in full (four
	// lines), and BLOCK_RATE_LIMIT bounds those: with its default, a
	// flood of forged sources costs at most 240 + 6 * (2 * 10 + 1) lines
	// a minute.
	foldBudget = 10
	// foldSources bounds the distinct sources counted per interval for
	// the summary (past it the count is a lower bound, "at least").
	foldSources = 1 << 16
)

// logFold keeps the daemon's log bounded: it says which decisions are
// logged in full (block.Options.Quiet), and makes the summary line of the
// others at the end of each interval. Safe for concurrent use.
type logFold struct {
	mu      sync.Mutex
	start   time.Time
	logged  int                     // decisions logged in full this interval
	folded  map[block.Outcome]int   // decisions folded, by outcome
	refused int                     // alerts alertOnce refused and folded
	srcs    map[netip.Addr]struct{} // sources of the folded ones
	blocked int                     // blocks this interval (always logged)
	dropped uint64                  // alerts dropped at the hand-off, as last summed
}

func newLogFold(now time.Time) *logFold {
	return &logFold{start: now, folded: map[block.Outcome]int{}, srcs: map[netip.Addr]struct{}{}}
}

// quiet reports whether a decision of outcome o, which blocks nothing,
// is past this interval's budget (and so counts it as folded); the block
// manager asks it (block.Options.Quiet).
func (f *logFold) quiet(o block.Outcome) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.spend() {
		return false
	}
	f.folded[o]++
	return true
}

// refusedQuiet is quiet for an alert of src that alertOnce held back.
func (f *logFold) refusedQuiet(src netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.spend() {
		return false
	}
	f.refused++
	f.source(src)
	return true
}

// spend takes one decision logged in full from this interval's budget,
// if any is left. Called with mu held.
func (f *logFold) spend() bool {
	if f.logged < foldBudget {
		f.logged++
		return true
	}
	return false
}

// source counts src among the folded decisions' sources, up to
// foldSources. Called with mu held.
func (f *logFold) source(src netip.Addr) {
	if len(f.srcs) < foldSources {
		f.srcs[src] = struct{}{}
	}
}

// note records a decided alert of src: a block, or a folded decision's
// source.
func (f *logFold) note(src netip.Addr, dec block.Decision) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case dec.Outcome == block.Blocked:
		f.blocked++
	case dec.Quiet:
		f.source(src)
	}
}

// summary ends the interval at now and returns its summary line, or ""
// when nothing was folded. dropped is the hand-off's drop count so far.
func (f *logFold) summary(now time.Time, dropped uint64) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.refused
	for _, c := range f.folded {
		n += c
	}
	newDrops := dropped - f.dropped
	var line string
	if n > 0 || newDrops > 0 {
		some := ""
		if len(f.srcs) >= foldSources {
			some = "at least "
		}
		line = fmt.Sprintf("adminalert: %d further alerts from %s%d sources in the last %.0f s not logged one by one: %d blocked (logged), %d refused by the rate limit, %d already blocked, %d ignored (never-block list), %d logged or run only, %d judged forged (not blocked), %d reported again within their window; %d alerts dropped because the blocking thread was behind",
			n, some, len(f.srcs), now.Sub(f.start).Seconds(), f.blocked, f.folded[block.RateLimited], f.folded[block.AlreadyBlocked],
			f.folded[block.Ignored], f.folded[block.LoggedOnly]+f.folded[block.CommandOnly], f.folded[block.Forged], f.refused, newDrops)
	}
	f.start, f.logged, f.refused, f.blocked, f.dropped = now, 0, 0, 0, dropped
	clear(f.folded)
	clear(f.srcs)
	return line
}
