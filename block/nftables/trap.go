package nftables

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"

	nft "github.com/google/nftables"

	"github.com/scanwarden/scanwarden/block"
)

// SetTrap installs t, replacing the trap in force, and prepares the rest of
// the table as Prepare does. In one transaction (when, as usual, the
// changed set contents fit in one): tcp_traps and udp_traps get exactly
// t's ports, never4 and never6 exactly t's exemptions (merged into
// disjoint intervals; an IPv4-mapped prefix exempts the IPv4 addresses
// too), and the trap chain exactly the rules for t's Hold (the timeout
// of every element a trap rule adds: holdTimeout), jumped to from input
// when t is Enabled. A trap that is not Enabled has no jump and no trap
// rules, and keeps the sources already trapped (prerouting still drops them
// until their timeouts run out). An Enabled trap needs a Hold of more
// than 0.
//
// When t.Size (0: keep the size in force) differs from the trap sets'
// size, they and the spared sets are rebuilt with that size, keeping
// their elements with the time they had left (when more than t.Size,
// those that would expire first are dropped); the spared sets' elements
// are otherwise left as they are, whatever t, so that a spared source
// stays spared for what remains of its block.SpareFor. Afterwards, the
// elements of trap4 and trap6 that t.Exempt covers are removed, and, when
// t has a Hold, those with more than it left (or no timeout: an older
// version held trapped sources for the ban's length) get the timeout t's
// Hold, their delete and add in one transaction so that the source is not
// let through meanwhile. Nothing already as t wants it is rewritten, so
// installing the same trap again changes nothing. The trap_overflow
// counter is not reset (see TrapOverflows).
func (b *Backend) SetTrap(ctx context.Context, t block.Trap) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.Size < 0 || t.Size > math.MaxUint32 {
		return opError("set trap", netip.Addr{}, fmt.Errorf("bad trap set size %d", t.Size))
	}
	if t.Hold < 0 || (t.Enabled() && t.Hold == 0) {
		return opError("set trap", netip.Addr{}, fmt.Errorf("trap hold %v: an enabled trap must hold its sources for more than 0", t.Hold))
	}
	t.TCP = slices.Compact(slices.Sorted(slices.Values(t.TCP)))
	t.UDP = slices.Compact(slices.Sorted(slices.Values(t.UDP)))
	t.Exempt = slices.Clone(t.Exempt)
	if err := b.ensure(ctx, &t); err != nil {
		return opError("set trap", netip.Addr{}, err)
	}
	b.trap = &t
	if err := b.trimTrap(ctx, t.Exempt, t.Hold); err != nil {
		return opError("set trap", netip.Addr{}, fmt.Errorf("trimming the trap sets: %w", err))
	}
	return nil
}

// trimTrap deletes from trap4 and trap6 the elements exempt covers and,
// with hold more than 0, cuts down to holdTimeout(hold) those that have
// more left, starting over from a fresh read when one expires under it.
func (b *Backend) trimTrap(ctx context.Context, exempt []netip.Prefix, hold time.Duration) error {
	v4, v6 := exemptRanges(exempt)
	if len(v4)+len(v6) == 0 && hold <= 0 {
		return nil
	}
	for attempt := 1; ; attempt++ {
		err := b.trimOnce(ctx, v4, v6, hold)
		if err == nil || !isNotExist(err) || attempt == changeAttempts {
			return err
		}
	}
}

func (b *Backend) trimOnce(ctx context.Context, v4, v6 []addrRange, hold time.Duration) error {
	c, err := b.conn()
	if err != nil {
		return err
	}
	q := &batch{ctx: ctx, c: c}
	timeout := holdTimeout(hold)
	for _, f := range families {
		rs := v4
		if f.nfproto == fam6.nfproto {
			rs = v6
		}
		if len(rs) == 0 && hold <= 0 {
			continue
		}
		es, err := b.elements(f.trap)
		if err != nil {
			return err
		}
		var del, cut []nft.SetElement
		for a, k := range elemsByAddr(es) {
			switch {
			case covered(rs, a):
				del = append(del, nft.SetElement{Key: keyOf(a)})
			case hold > 0 && (!k.timeout || k.left > timeout+holdSlack):
				cut = append(cut, nft.SetElement{Key: keyOf(a), Timeout: timeout})
			}
		}
		s := ref(b.table, setSpec{name: f.trap, kind: kindTrap, key: f.key})
		for len(cut) > 0 {
			n := min(len(cut), elemsPerMsg)
			keys := make([]nft.SetElement, n)
			for i, e := range cut[:n] {
				keys[i] = nft.SetElement{Key: e.Key}
			}
			if err := q.group(op{del: true, s: s, elems: keys}, op{s: s, elems: cut[:n]}); err != nil {
				return err
			}
			cut = cut[n:]
		}
		if err := q.each(true, s, del); err != nil {
			return err
		}
	}
	if q.msgs == 0 {
		return nil
	}
	return q.flush()
}

// Release lets addr (an IPv4-mapped address as the IPv4 one) out of its
// family's trap set and spares it, in one transaction (one batch over
// Block's kept socket):
//
//	delete trap4 { addr }                       (when the trap set holds it)
//	add spared4 { addr timeout SpareFor }       (when it is not spared yet)
//
// or, for an address spared already, delete spared4 { addr } and the add
// again, so that it gets the whole of block.SpareFor anew on every kernel
// (spared6 and trap6 for IPv6). The trap rules return for a source in the
// spared set, so from the commit on the trap neither holds nor drops addr
// (see block.Trap), and no probe can trap it between the two.
//
// Only batches the kernel will accept are sent: a refused one aborts the
// transaction, which costs the kernel milliseconds, and a forged flood
// would pay them for every source. So Release first asks whether the
// trap set holds addr (one element get, outside any transaction), and
// keeps its own account of the spared sets (only it fills them) to know
// whether addr is spared and whether there is room. When the account
// proves wrong (an element that ran out meanwhile, an earlier run's
// spares), each part is done again on its own.
//
// The ban set is not touched. A full spared set leaves addr released but
// not spared, is counted (SpareOverflows) and is no error. A table, trap
// set or spared set that does not exist (Flush, or a table an older
// version wrote that Prepare has not made over yet) is no error either:
// addr is then only let out of the trap set, if there is one. Any other
// failure still lets addr out of the trap set if it can, and is returned.
func (b *Backend) Release(ctx context.Context, addr netip.Addr) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, f, err := normalize(addr)
	if err != nil {
		return opError("release", addr, err)
	}
	if err := ctx.Err(); err != nil {
		return opError("release", a, err)
	}
	if err := b.release(a, f); err != nil {
		return opError("release", a, err)
	}
	return nil
}

// release is Release for a normalized address. Every batch it sends is
// one the kernel will accept: a failed batch costs the kernel's abort of
// the transaction, 8-18 ms here against 25 µs for one that succeeds, and
// under a forged flood the trap and spared sets are full most of the
// time. So it asks the kernel whether the trap set holds addr (a single
// element get, outside any transaction), and keeps its own account of the
// spared set, which only it fills (spares), to know when that is full.
func (b *Backend) release(a netip.Addr, f family) error {
	key := keyOf(a)
	now := time.Now()
	trapped, err := b.has(f.trap, key)
	if err != nil && !isNotExist(err) {
		trapped = true // unknown: try the delete, which says
	}
	var ops []elemOp
	if trapped {
		ops = append(ops, elemOp{del: true, set: f.trap, key: key})
	}
	nt := len(ops)
	switch refresh, room := b.spares.admit(a, now, b.spareCap()); {
	case refresh:
		ops = append(ops, elemOp{del: true, set: f.spared, key: key}, elemOp{set: f.spared, key: key, timeout: spareTimeout})
	case room:
		ops = append(ops, elemOp{set: f.spared, key: key, timeout: spareTimeout})
	default:
		b.spareOverflows.Add(1)
	}
	if len(ops) == 0 {
		return nil
	}
	errs, err := b.apply(ops)
	if err == nil {
		if e := firstErr(errs); e == nil {
			if len(ops) > nt {
				b.spares.note(a, now)
			}
			return nil
		}
	}
	// The account was wrong (an element expired or removed meanwhile,
	// a spared set filled by an earlier run) or the table is gone: each
	// part on its own, the trap's first.
	b.spares.forget(a)
	var errT error
	if trapped {
		errT = b.untrap(f, key)
	}
	if len(ops) > nt {
		if e := b.add(f.spared, key, spareTimeout); e == nil {
			b.spares.note(a, now)
		} else if errors.Is(e, errFull) {
			b.spareOverflows.Add(1)
			b.spares.fullUntil = now.Add(spareFullPause)
		}
	}
	return errT
}

// spareCap is how many elements each spared set holds.
func (b *Backend) spareCap() int {
	if b.trap != nil && b.trap.Size > 0 {
		return b.trap.Size
	}
	return defaultTrapSize
}

// spareBook is Release's account of the spared sets: the addresses it
// spared and until when, so that it neither sends a batch the kernel
// would refuse (a full set) nor deletes an element that is not there.
type spareBook struct {
	until     map[netip.Addr]time.Time
	n4, n6    int
	fullUntil time.Time // a spare found the set full: none tried until then
}

// admit says whether a is spared already (refresh: delete and add again)
// or, if not, whether its family's set has room for it, at now.
func (s *spareBook) admit(a netip.Addr, now time.Time, limit int) (refresh, room bool) {
	if u, ok := s.until[a]; ok {
		if now.Before(u) {
			return true, false
		}
		s.forget(a)
	}
	if now.Before(s.fullUntil) {
		return false, false
	}
	if s.count(a) >= limit {
		s.prune(now)
	}
	return false, s.count(a) < limit
}

func (s *spareBook) count(a netip.Addr) int {
	if a.Is4() {
		return s.n4
	}
	return s.n6
}

// note records that a is spared from now for spareTimeout (a little
// less: the kernel may expire it first, never later).
func (s *spareBook) note(a netip.Addr, now time.Time) {
	if s.until == nil {
		s.until = map[netip.Addr]time.Time{}
	}
	if _, ok := s.until[a]; !ok {
		if a.Is4() {
			s.n4++
		} else {
			s.n6++
		}
	}
	s.until[a] = now.Add(spareTimeout - time.Second)
}

// forget drops a from the account.
func (s *spareBook) forget(a netip.Addr) {
	if _, ok := s.until[a]; !ok {
		return
	}
	delete(s.until, a)
	if a.Is4() {
		s.n4--
	} else {
		s.n6--
	}
}

// prune drops the spares that have run out by now.
func (s *spareBook) prune(now time.Time) {
	for a, u := range s.until {
		if !now.Before(u) {
			s.forget(a)
		}
	}
}

// reset empties the account (the spared sets are gone or unknown).
func (s *spareBook) reset() { *s = spareBook{} }

// untrap deletes key from f's trap set, in a transaction of its own; an
// element, set or table that is not there is no error.
func (b *Backend) untrap(f family, key []byte) error {
	if err := b.del(f.trap, key); err != nil && !isNotExist(err) {
		return fmt.Errorf("set %s: %w", f.trap, err)
	}
	return nil
}

// firstErr returns the first error of errs that is not nil.
func firstErr(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// SpareOverflows returns how many Releases, since the Backend was made,
// found their spared set full (block.Trap.Size sources spared within
// block.SpareFor): the source was let out of the trap set but not spared.
// It is not part of block.Trapper.
func (b *Backend) SpareOverflows() uint64 { return b.spareOverflows.Load() }

// TrapOverflows returns the packets counted by the trap_overflow counter:
// first hits that found their trap set full, and were not added (dropped,
// or let through for an ACK outside any connection, as without the
// trap). The counter lives as long as the table (it is created with
// it and survives restarts, Prepare and SetTrap), so it only grows; no
// table is 0.
func (b *Backend) TrapOverflows(ctx context.Context) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return 0, opError("trap overflows", netip.Addr{}, err)
	}
	c, err := b.conn()
	if err != nil {
		return 0, opError("trap overflows", netip.Addr{}, err)
	}
	ok, err := b.tableExists(c)
	if err != nil {
		return 0, opError("trap overflows", netip.Addr{}, err)
	}
	if !ok {
		return 0, nil
	}
	objs, err := c.GetObjects(b.table)
	if err != nil {
		return 0, opError("trap overflows", netip.Addr{}, err)
	}
	for _, o := range objs {
		if co, ok := o.(*nft.CounterObj); ok && co.Name == counterOverflow {
			return co.Packets, nil
		}
	}
	return 0, nil
}
