package block

import (
	"sync"
	"time"
)

// rateLimiter allows at most limit new blocks in any sliding minute: it
// keeps the times of the last limit blocks in a ring, and a new block is
// allowed when the oldest of them is a minute old. A flood of forged
// sources can then add at most limit rules a minute however many alerts
// it causes, with no burst beyond the limit. Safe for concurrent use: a
// reload hands it to the new config's manager (see Options.Previous)
// while the old one may still finish an alert.
type rateLimiter struct {
	mu     sync.Mutex
	times  []time.Time // ring of the last len(times) allowed blocks
	next   int
	biting bool // the limit is refusing blocks (and it was logged)
}

func newRateLimiter(limit int) *rateLimiter {
	return &rateLimiter{times: make([]time.Time, limit)}
}

// carried returns the limiter of limit blocks a minute that follows r: r
// itself when the limit is the same, else a new one that holds r's most
// recent blocks (as many as it has room for), so that a reload neither
// resets the limit nor lets a burst through.
func (r *rateLimiter) carried(limit int) *rateLimiter {
	if r == nil {
		return newRateLimiter(limit)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.times) == limit {
		return r
	}
	n := newRateLimiter(limit)
	// r's ring from its newest block backwards, into n's from its end
	for i, j := 0, limit-1; i < len(r.times) && j >= 0; i++ {
		t := r.times[(r.next-1-i+2*len(r.times))%len(r.times)]
		if t.IsZero() {
			break
		}
		n.times[j] = t
		j--
	}
	n.biting = r.biting
	return n
}

// allow records a block at now when the limit permits it. first is true on
// the first refusal of a run of refusals, so that the caller says so in
// the log once.
func (r *rateLimiter) allow(now time.Time) (ok, first bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	oldest := r.times[r.next]
	if oldest.IsZero() || now.Sub(oldest) >= time.Minute {
		r.times[r.next] = now
		r.next = (r.next + 1) % len(r.times)
		r.biting = false
		return true, false
	}
	first = !r.biting
	r.biting = true
	return false, first
}
