package nftables

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"slices"

	nft "github.com/google/nftables"

	"github.com/scanwarden/scanwarden/block"
)

// SetTrap installs t, replacing the trap in force, and prepares the rest of
// the table as Prepare does. In one transaction (when, as usual, the
// changed set contents fit in one): tcp_traps and udp_traps get exactly
// t's ports, never4 and never6 exactly t's exemptions (merged into
// disjoint intervals; an IPv4-mapped prefix exempts the IPv4 addresses
// too), and the trap chain exactly the rules for t's timeouts, jumped to
// from input when t is Enabled. A trap that is not Enabled has no jump
// and no trap rules, and keeps the sources already trapped (input still
// drops them until their timeouts run out).
//
// When t.Size (0: keep the size in force) differs from the trap sets'
// size, they are rebuilt with that size, keeping their elements with the
// time they had left (when more than t.Size, those that would expire
// first are dropped). Afterwards, the elements of trap4 and trap6 that
// t.Exempt covers are removed. Nothing already as t wants it is
// rewritten, so installing the same trap again changes nothing. The
// trap_overflow counter is not reset (see TrapOverflows).
func (b *Backend) SetTrap(ctx context.Context, t block.Trap) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.Size < 0 || t.Size > math.MaxUint32 {
		return opError("set trap", netip.Addr{}, fmt.Errorf("bad trap set size %d", t.Size))
	}
	if t.TimeoutTCP < 0 || t.TimeoutUDP < 0 {
		return opError("set trap", netip.Addr{}, fmt.Errorf("negative trap timeout"))
	}
	t.TCP = slices.Compact(slices.Sorted(slices.Values(t.TCP)))
	t.UDP = slices.Compact(slices.Sorted(slices.Values(t.UDP)))
	t.Exempt = slices.Clone(t.Exempt)
	if err := b.ensure(ctx, &t); err != nil {
		return opError("set trap", netip.Addr{}, err)
	}
	b.trap = &t
	if err := b.removeExempt(ctx, t.Exempt); err != nil {
		return opError("set trap", netip.Addr{}, fmt.Errorf("removing exempt sources from the trap sets: %w", err))
	}
	return nil
}

// removeExempt deletes from trap4 and trap6 the elements exempt covers,
// starting over from a fresh read when one expires under it.
func (b *Backend) removeExempt(ctx context.Context, exempt []netip.Prefix) error {
	v4, v6 := exemptRanges(exempt)
	if len(v4)+len(v6) == 0 {
		return nil
	}
	for attempt := 1; ; attempt++ {
		err := b.removeCovered(ctx, v4, v6)
		if err == nil || !isNotExist(err) || attempt == changeAttempts {
			return err
		}
	}
}

func (b *Backend) removeCovered(ctx context.Context, v4, v6 []addrRange) error {
	c, err := b.conn()
	if err != nil {
		return err
	}
	q := &batch{ctx: ctx, c: c}
	for _, f := range families {
		rs := v4
		if f.nfproto == fam6.nfproto {
			rs = v6
		}
		if len(rs) == 0 {
			continue
		}
		es, err := b.elements(f.trap)
		if err != nil {
			return err
		}
		var del []nft.SetElement
		for a := range elemsByAddr(es) {
			if covered(rs, a) {
				del = append(del, nft.SetElement{Key: keyOf(a)})
			}
		}
		if err := q.each(true, ref(b.table, setSpec{name: f.trap, kind: kindTrap, key: f.key}), del); err != nil {
			return err
		}
	}
	return q.flush()
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
