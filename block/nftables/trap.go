package nftables

import (
	"context"
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
// rules, and keeps the sources already trapped (input still drops them
// until their timeouts run out). An Enabled trap needs a Hold of more
// than 0.
//
// When t.Size (0: keep the size in force) differs from the trap sets'
// size, they are rebuilt with that size, keeping their elements with the
// time they had left (when more than t.Size, those that would expire
// first are dropped). Afterwards, the elements of trap4 and trap6 that
// t.Exempt covers are removed, and, when t has a Hold, those with more
// than it left (or no timeout: an older version held trapped sources for
// the ban's length) get the timeout t's Hold, their delete and add in one
// transaction so that the source is not let through meanwhile. Nothing
// already as t wants it is rewritten, so installing the same trap again
// changes nothing. The trap_overflow counter is not reset (see
// TrapOverflows).
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
// family's trap set: one DELSETELEM message over Block's kept socket.
// The ban set is not touched. An address not in the trap set, and a trap
// set or table that does not exist, are no error.
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
	if err := b.del(f.trap, keyOf(a)); err != nil && !isNotExist(err) {
		return opError("release", a, fmt.Errorf("set %s: %w", f.trap, err))
	}
	return nil
}

// TrapOverflows returns the packets counted by the trap_overflow counter:
// first hits that found their trap set full, and were dropped without
// being added. The counter lives as long as the table (it is created with
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
