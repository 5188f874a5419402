package block

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ReasonExpired is Impose's Why for a decision that had ended when it
// came.
const ReasonExpired = "expired"

// Impose bans b.Addr on a decision made elsewhere (b.Source says where:
// the fleet's CrowdSec Local API), until b.Until: the ban goes into the
// state and every backend. Nothing of an alert's path is done: no rate
// limit (the decision was made, and limited, where it was made), no
// history or blocked-file line (fail2ban would read it as a scan seen
// here), no KILL_ROUTE or KILL_RUN_CMD, no attackalert line (the caller
// logs the decision). An address on the never-block list is refused
// (Ignored, with the reason in Why); one banned already keeps its ban,
// whatever its expiry (AlreadyBlocked); a ban that has already expired
// is refused (Ignored, Why ReasonExpired); a ban the state cannot record
// is Failed, with the error. The backends are changed under the
// state's lock, as Resync does; a backend that fails leaves the ban in the
// state for the next re-sync to put in place, and its error is returned.
func (m *Manager) Impose(ctx context.Context, b Ban) (Decision, error) {
	b.Addr = b.Addr.WithZone("").Unmap()
	if why := m.o.Never.Reason(b.Addr); why != "" {
		return Decision{Outcome: Ignored, Why: why}, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.o.Now()
	if b.Since.IsZero() {
		b.Since = now
	}
	if b.Expired(now) {
		return Decision{Outcome: Ignored, Why: ReasonExpired}, nil
	}
	var dec Decision
	var errs []error
	err := m.o.State.Update(func(bans []Ban) ([]Ban, bool, error) {
		i := findBan(bans, b.Addr)
		if i >= 0 && !bans[i].Expired(now) {
			dec.Outcome = AlreadyBlocked
			return bans, false, nil
		}
		if i >= 0 { // an expired ban Expire has not lifted yet
			bans = append(bans[:i], bans[i+1:]...)
		}
		for _, bl := range m.o.Blockers {
			if err := bl.Block(ctx, b); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", bl.Name(), err))
			} else if dec.RuleAt.IsZero() {
				dec.RuleAt = time.Now()
			}
		}
		dec.Outcome, dec.Until = Blocked, b.Until
		return append(bans, b), true, nil
	})
	if err != nil {
		return Decision{Outcome: Failed}, fmt.Errorf("recording the ban of %s: %w", b.Addr, err)
	}
	return dec, errors.Join(errs...)
}
