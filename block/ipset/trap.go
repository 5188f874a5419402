package ipset

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink/nl"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/iptables"
)

// SetTrap installs t in every supported family, or replaces the trap in
// force, in the order that never traps an exempt source nor lets a first
// hit through unhandled (ipset and iptables have no transaction spanning
// both):
//
//  1. the sets are made sure of as by Prepare; a trap or spared set whose
//     maxelem is not t.Size is rebuilt at that size with its elements and
//     their remaining timeouts (see rebuild: the new set is swapped in
//     under the rules, which go on referring to its name); the spared
//     sets' elements are otherwise left as they are, whatever t, so that
//     a spared source stays spared for what remains of its SpareFor;
//  2. t's exemptions are added to the exemption sets;
//  3. the trap sets' elements that t's exemptions cover are removed;
//  4. the trap rules are written with t's Hold, and the jump to
//     SCANWARDEN-TRAP put in place, or, when t is not Enabled, removed
//     with the chain (trapped and spared sources stay, for what is left
//     of their timeouts);
//  5. when t has a Hold, the trap sets' elements with more than it left
//     (or permanent: an older version held trapped sources for the ban's
//     length) get the timeout t's Hold, in place (an add with the
//     "exist" flag, so that the source is not let through meanwhile),
//     after the rules, so that no old rule adds a longer one afterwards;
//  6. the port sets are made to hold exactly t's ports;
//  7. the exemptions that t does not have are removed.
//
// A Size of 0 or less is defaultTrapSize. The Hold is written as whole
// seconds, rounded up (holdSeconds); an Enabled trap needs one of more
// than 0. Exemptions that are IPv4-mapped IPv6 networks are IPv4 ones; /0
// is written as two /1 (hash:net holds no /0). SetTrap goes on after a
// failure and returns every error, joined.
func (b *Backend) SetTrap(ctx context.Context, t block.Trap) error {
	if t.Hold < 0 || (t.Enabled() && t.Hold == 0) {
		return fmt.Errorf("ipset: set trap: trap hold %v: an enabled trap must hold its sources for more than 0", t.Hold)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t = normalTrap(t)
	exempt := exemptions(t.Exempt)
	var errs []error
	var fams []*family
	for _, fam := range b.fams {
		if fam.r != nil {
			fams = append(fams, fam)
		}
	}
	step := func(fam *family, what string, err error) bool {
		if err != nil {
			errs = append(errs, opError(fam, "set trap: "+what, netip.Addr{}, err))
			b.prepared[fam.f] = false
		}
		return err == nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ipset: set trap: %w", err)
	}
	// 1. sets
	b.trap = &t
	ok := map[*family]bool{}
	for _, fam := range fams {
		ok[fam] = step(fam, "sets", b.prepareSets(fam))
	}
	for _, name := range []string{SetTCP, SetUDP} {
		if err := b.ensureSet(name, portHeader, false); err != nil {
			errs = append(errs, fmt.Errorf("ipset: set trap: %w", err))
			clear(ok)
		}
	}
	// 2. and 3. exemptions in, the trapped sources they cover out
	for _, fam := range fams {
		if !ok[fam] {
			continue
		}
		ok[fam] = step(fam, "exemptions", b.syncMembers(fam.nevr, false, exempt[fam.f], false)) &&
			step(fam, "removing exempt sources", b.removeCovered(fam, exempt[fam.f]))
	}
	// 4. rules, and 5. the trapped sources held for t.Hold at most
	for _, fam := range fams {
		if ok[fam] {
			ok[fam] = step(fam, "rules", b.prepareRules(fam)) &&
				step(fam, "holding trapped sources for the trap's hold", b.cutToHold(fam, t.Hold))
		}
	}
	// 6. ports
	for _, p := range []struct {
		set   string
		ports []uint16
	}{{SetTCP, t.TCP}, {SetUDP, t.UDP}} {
		ms := make([]member, len(p.ports))
		for i, port := range p.ports {
			ms[i] = member{port: port}
		}
		if err := b.syncMembers(p.set, false, ms, true); err != nil {
			errs = append(errs, fmt.Errorf("ipset: set trap: ports: %w", err))
		}
	}
	// 7. exemptions out
	for _, fam := range fams {
		if ok[fam] {
			ok[fam] = step(fam, "exemptions", b.syncMembers(fam.nevr, false, exempt[fam.f], true))
		}
		if ok[fam] {
			b.prepared[fam.f] = true
		}
	}
	return errors.Join(errs...)
}

// normalTrap returns a copy of t with its ports sorted and without
// duplicates, and its Size defaultTrapSize when not positive.
func normalTrap(t block.Trap) block.Trap {
	t.TCP = slices.Compact(slices.Sorted(slices.Values(t.TCP)))
	t.UDP = slices.Compact(slices.Sorted(slices.Values(t.UDP)))
	t.Exempt = slices.Clone(t.Exempt)
	if t.Size <= 0 {
		t.Size = defaultTrapSize
	}
	return t
}

// exemptions returns the members of each family's exemption set for
// prefixes: IPv4-mapped IPv6 networks of /96 or longer as IPv4 ones,
// zones dropped, masked, /0 as its two /1 halves, sorted, each once.
// Invalid prefixes are skipped.
func exemptions(prefixes []netip.Prefix) map[iptables.Family][]member {
	out := map[iptables.Family][]member{}
	seen := map[netip.Prefix]bool{}
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		a, bits := p.Addr().WithZone(""), p.Bits()
		if a.Is4In6() && bits >= 96 {
			a, bits = a.Unmap(), bits-96
		}
		q := netip.PrefixFrom(a, bits).Masked()
		qs := []netip.Prefix{q}
		if bits == 0 {
			// the upper half: the first address with the top bit set
			hi := a.AsSlice()
			hi[0] = 0x80
			h, _ := netip.AddrFromSlice(hi)
			qs = []netip.Prefix{netip.PrefixFrom(a, 1), netip.PrefixFrom(h, 1)}
		}
		for _, q := range qs {
			if seen[q] {
				continue
			}
			seen[q] = true
			f := iptables.IPv6
			if q.Addr().Is4() {
				f = iptables.IPv4
			}
			out[f] = append(out[f], member{prefix: q})
		}
	}
	for _, ms := range out {
		slices.SortFunc(ms, func(x, y member) int {
			if c := x.prefix.Addr().Compare(y.prefix.Addr()); c != 0 {
				return c
			}
			return x.prefix.Bits() - y.prefix.Bits()
		})
	}
	return out
}

// syncMembers adds to set name the members of want it lacks and, with
// removeExtra, removes those it has that want does not. Timeouts are not
// compared.
func (b *Backend) syncMembers(name string, timeouts bool, want []member, removeExtra bool) error {
	_, have, ok, err := b.sets.list(name, false)
	if err == nil && !ok {
		err = fmt.Errorf("no set %s", name)
	}
	if err != nil {
		return err
	}
	key := func(m member) member { m.timeout = 0; return m }
	in := map[member]bool{}
	for _, m := range have {
		in[key(m)] = true
	}
	wanted := map[member]bool{}
	var add, del []member
	for _, m := range want {
		wanted[key(m)] = true
		if !in[key(m)] {
			add = append(add, m)
		}
	}
	if removeExtra {
		for _, m := range have {
			if !wanted[key(m)] {
				del = append(del, key(m))
			}
		}
	}
	var errs []error
	if len(add) > 0 {
		errs = append(errs, b.sets.add(name, timeouts, add))
	}
	if len(del) > 0 {
		errs = append(errs, b.sets.del(name, del))
	}
	return errors.Join(errs...)
}

// removeCovered removes from fam's trap set every source that one of
// exempt covers.
func (b *Backend) removeCovered(fam *family, exempt []member) error {
	if len(exempt) == 0 {
		return nil
	}
	_, ms, ok, err := b.sets.list(fam.trap, false)
	if err != nil || !ok {
		return err
	}
	var del []member
	for _, m := range ms {
		a := m.prefix.Addr()
		if slices.ContainsFunc(exempt, func(e member) bool { return e.prefix.Contains(a) }) {
			del = append(del, addrMember(a, 0))
		}
	}
	if len(del) == 0 {
		return nil
	}
	return b.sets.del(fam.trap, del)
}

// cutToHold gives every source of fam's trap set that has more than
// holdSeconds(hold) left, or no timeout, that timeout, in place (the
// kernel's add with the "exist" flag sets the new timeout). Nothing is
// done for a hold of 0. An element that expires between the listing and
// the add is added again, for that hold at most.
func (b *Backend) cutToHold(fam *family, hold time.Duration) error {
	if hold <= 0 {
		return nil
	}
	_, ms, ok, err := b.sets.list(fam.trap, false)
	if err != nil || !ok {
		return err
	}
	secs := holdSeconds(hold)
	var cut []member
	for _, m := range ms {
		if m.timeout == 0 || m.timeout > secs {
			cut = append(cut, addrMember(m.prefix.Addr(), secs))
		}
	}
	if len(cut) == 0 {
		return nil
	}
	return b.sets.add(fam.trap, true, cut)
}

// Release lets addr (an IPv4-mapped address as the IPv4 one) out of its
// family's trap set and spares it, in two netlink messages (ipset has no
// transaction): first an add of addr to the spared set with the timeout
// block.SpareFor (whole seconds; with the "exist" flag, so that an
// address spared already gets the whole of it again), then the delete of
// addr from the trap set. The add goes first so that no probe can trap
// addr again between the two: while it is in both sets, the trap set's
// drop in SCANWARDEN-SETS holds it as before the Release; once the delete
// is done, SCANWARDEN-TRAP returns for it at the spared set's rule.
//
// The ban set is not touched. An address not in the trap set is spared
// all the same. A spared set that is full (Trap.Size) refuses a new
// address: addr is then released but not spared, which is counted
// (SpareOverflows) and is no error. A missing set (Flush, or sets an older
// version made that Prepare has not completed yet) and an unsupported
// family are nil. Another failure of the add does not keep addr in the
// trap set: the delete is made all the same, and the errors joined.
func (b *Backend) Release(ctx context.Context, addr netip.Addr) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, fam, err := b.family(addr)
	if err != nil {
		return fmt.Errorf("ipset: release %v: %w", addr, err)
	}
	if err := ctx.Err(); err != nil {
		return opError(fam, "release", a, err)
	}
	if fam.r == nil {
		return nil // nothing of that family can have been trapped
	}
	var errs []error
	err = b.sets.add(fam.spared, true, []member{addrMember(a, holdSeconds(spareTimeout))})
	switch {
	case err == nil, isNoSet(err):
	case errors.Is(err, nl.IPSetError(errHashFull)):
		b.spareOverflows.Add(1)
	default:
		errs = append(errs, opError(fam, "release: sparing", a, err))
	}
	if err := b.sets.del(fam.trap, []member{addrMember(a, 0)}); err != nil && !isNoSet(err) {
		errs = append(errs, opError(fam, "release", a, err))
	}
	return errors.Join(errs...)
}

// SpareOverflows returns how many Releases, since the Backend was made,
// found their spared set full (block.Trap.Size sources spared within
// block.SpareFor): the source was let out of the trap set but not spared.
// It is not part of block.Trapper.
func (b *Backend) SpareOverflows() uint64 { return b.spareOverflows.Load() }

// TrapOverflows returns the packets counted by the trap's overflow rules
// of every supported family: first hits that found the trap set full,
// dropped and not added, since the rules were written (by the SetTrap
// that installed the trap, or the Prepare that repaired them). A family
// without the trap chain (none yet, or a concurrent Flush removed it)
// counts 0. It fails when a runner cannot read counters (see
// iptables.CounterLister).
//
// It takes no lock of the backend: it only reads the kernel's counters
// through the family's runner (both fixed by New, and safe to use
// concurrently), so that the daemon's 5 s check, which runs iptables,
// never makes a Block on the capture thread wait.
func (b *Backend) TrapOverflows(ctx context.Context) (uint64, error) {
	var n uint64
	for _, fam := range b.fams {
		if fam.r == nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return 0, opError(fam, "trap overflows", netip.Addr{}, err)
		}
		cl, ok := fam.r.(iptables.CounterLister)
		if !ok {
			return 0, opError(fam, "trap overflows", netip.Addr{}, fmt.Errorf("the runner (%T) cannot read rule counters", fam.r))
		}
		// listed at once (one iptables run); only a failure asks
		// whether the chain is there at all
		lines, err := cl.ListWithCounters(trapTable, ChainTrap)
		if err != nil {
			if exists, e := fam.r.ChainExists(trapTable, ChainTrap); e == nil && !exists {
				continue // no trap chain (yet, or flushed meanwhile)
			}
			return 0, opError(fam, "trap overflows", netip.Addr{}, err)
		}
		c, err := overflowCount(lines)
		if err != nil {
			return 0, opError(fam, "trap overflows", netip.Addr{}, err)
		}
		n += c
	}
	return n, nil
}
