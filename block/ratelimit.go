package block

import "time"

// rateLimiter allows at most limit new blocks in any sliding minute: it
// keeps the times of the last limit blocks in a ring, and a new block is
// allowed when the oldest of them is a minute old. A flood of forged
// sources can then add at most limit rules a minute however many alerts
// it causes, with no burst beyond the limit.
type rateLimiter struct {
	times  []time.Time // ring of the last len(times) allowed blocks
	next   int
	biting bool // the limit is refusing blocks (and it was logged)
}

func newRateLimiter(limit int) *rateLimiter {
	return &rateLimiter{times: make([]time.Time, limit)}
}

// allow records a block at now when the limit permits it. first is true on
// the first refusal of a run of refusals, so that the caller says so in
// the log once.
func (r *rateLimiter) allow(now time.Time) (ok, first bool) {
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
