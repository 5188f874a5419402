package nftables

import (
	"context"
	"errors"
	"net/netip"
	"time"

	nft "github.com/google/nftables"

	"github.com/scanwarden/scanwarden/block"
)

// Sync makes ban4 and ban6 hold exactly the bans of want that have not run
// out, with their running timeouts: a missing address is added with the
// time its ban has left; an element of an address not wanted is removed;
// an element whose remaining timeout differs from the ban's by more than
// timeoutTolerance, or that has a timeout the ban has not (or lacks one it
// has), is replaced, its delete and add in one transaction so that the
// address is never let through. Of several bans of one address the longest
// counts. The trap sets are left alone: their elements are the kernel's.
//
// Changes go in messages of elemsPerMsg elements, msgsPerBatch messages a
// transaction, so that 100,000 bans load in a fraction of a second. When
// an element expires between the read and the write (the transaction is
// then refused whole), Sync starts over from a fresh read, up to
// changeAttempts times. An invalid address in want is reported in the
// joined error and the others are synced still.
func (b *Backend) Sync(ctx context.Context, want []block.Ban) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	until := make(map[netip.Addr]time.Time, len(want))
	for _, w := range want {
		a, _, err := normalize(w.Addr)
		if err != nil {
			errs = append(errs, opError("sync", w.Addr, err))
			continue
		}
		if u, ok := until[a]; ok && (u.IsZero() || (!w.Until.IsZero() && w.Until.Before(u))) {
			continue
		}
		until[a] = w.Until
	}
	err := b.prepared(ctx)
	for attempt := 1; err == nil; attempt++ {
		err = b.syncOnce(ctx, until)
		if err == nil || !isNotExist(err) || attempt == changeAttempts {
			break
		}
		// An element went (expired, or was deleted) between the read and
		// the write, or the table did: again, from a fresh read.
		err = b.ensure(ctx, b.trap)
	}
	if err != nil {
		errs = append(errs, opError("sync", netip.Addr{}, err))
	}
	return errors.Join(errs...)
}

// syncOnce reads each ban set once and writes the differences.
func (b *Backend) syncOnce(ctx context.Context, until map[netip.Addr]time.Time) error {
	c, err := b.conn()
	if err != nil {
		return err
	}
	q := &batch{ctx: ctx, c: c}
	for _, f := range families {
		start := time.Now()
		es, err := b.elements(f.ban)
		if err != nil {
			return err
		}
		have := elemsByAddr(es)
		now := time.Now()
		// the kernel reported each element's time left as it dumped it:
		// a long dump (100,000 elements on a loaded machine) is as much
		// uncertainty again
		tolerance := timeoutTolerance + now.Sub(start)
		var add, repl []nft.SetElement
		wanted := make(map[netip.Addr]bool, len(until))
		for a, u := range until {
			if a.Is4() != (f.nfproto == fam4.nfproto) {
				continue
			}
			d, ok := elemTimeout(u, now)
			if !ok {
				continue // run out: not wanted
			}
			wanted[a] = true
			e := nft.SetElement{Key: keyOf(a), Timeout: d}
			if k, in := have[a]; !in {
				add = append(add, e)
			} else if needsReplace(k, d, tolerance) {
				repl = append(repl, e)
			}
		}
		var del []nft.SetElement
		for a := range have {
			if !wanted[a] {
				del = append(del, nft.SetElement{Key: keyOf(a)})
			}
		}
		s := ref(b.table, setSpec{name: f.ban, kind: kindBan, key: f.key})
		for len(repl) > 0 {
			n := min(len(repl), elemsPerMsg)
			keys := make([]nft.SetElement, n)
			for i, e := range repl[:n] {
				keys[i] = nft.SetElement{Key: e.Key}
			}
			if err := q.group(op{del: true, s: s, elems: keys}, op{s: s, elems: repl[:n]}); err != nil {
				return err
			}
			repl = repl[n:]
		}
		if err := q.each(false, s, add); err != nil {
			return err
		}
		if err := q.each(true, s, del); err != nil {
			return err
		}
	}
	return q.flush()
}
