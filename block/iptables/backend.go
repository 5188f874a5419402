package iptables

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/scanwarden/scanwarden/block"
)

// ErrUnsupportedFamily is wrapped by the error of an operation on an
// address whose family the Backend has no Runner for (a host without
// ip6tables or without IPv6); the error says why.
var ErrUnsupportedFamily = errors.New("address family not supported")

// Backend is the iptables block.Blocker: one DROP rule per blocked source
// in the chain SCANWARDEN of the raw table, which the first rule of raw
// PREROUTING jumps to (for every interface but loopback); iptables for
// IPv4 sources, ip6tables for IPv6 ones. A blocked source is so dropped
// before routing and connection tracking: traffic addressed to the host
// and traffic it forwards alike, at no conntrack entry. Every rule it
// writes carries the comment "scanwarden". It never changes a rule it did
// not write, apart from removing jumps to SCANWARDEN from raw PREROUTING
// and filter INPUT (Flush, and the move from filter INPUT, where earlier
// versions kept the chain: a chain cannot be deleted while jumps to it
// exist).
//
// Its methods are safe for concurrent use (they are serialised).
type Backend struct {
	mu     sync.Mutex
	v4, v6 Runner
	// ensured says the chain and jump of a family were checked since the
	// last Flush or failure.
	ensured map[Family]bool
	// present holds, per family, the addresses the chain is known to drop
	// since its last listing (Sync, List, Unblock) and the blocks made
	// since; a family without an entry is not known. Block trusts it, so
	// that a block is one iptables run instead of a check and an append;
	// a rule deleted behind its back is put back by the next Sync.
	present map[Family]map[netip.Addr]bool
	// why4, why6 say why a nil runner is nil.
	why4, why6 error
}

var _ block.Blocker = (*Backend)(nil)

// New returns a Backend over the runners of each family. Either may be
// nil: that family is then unsupported, and Block, EnsureChain and Sync
// of its addresses fail with an error wrapping ErrUnsupportedFamily, while
// Unblock of its addresses (which cannot be blocked) is nil and List and
// Flush skip it.
func New(v4, v6 Runner) *Backend {
	b := &Backend{v4: v4, v6: v6, ensured: map[Family]bool{}, present: map[Family]map[netip.Addr]bool{}}
	if v4 == nil {
		b.why4 = errors.New("no iptables runner configured")
	}
	if v6 == nil {
		b.why6 = errors.New("no ip6tables runner configured")
	}
	return b
}

// NewDefault returns a Backend over the host's iptables and ip6tables (see
// NewRunner for which ones), after checking that each can read the filter
// table. Without a working iptables it fails. Without a working ip6tables
// (not installed, no IPv6 in the kernel) it leaves IPv6 unsupported, and
// the reason is in the error of any IPv6 block and in String.
func NewDefault() (*Backend, error) {
	legacy, why := detectLegacy()
	v4, err := newRunner(IPv4, legacy, why)
	if err == nil {
		err = probe(v4)
	}
	if err != nil {
		return nil, fmt.Errorf("iptables %s: %w", IPv4, err)
	}
	b := &Backend{v4: v4, ensured: map[Family]bool{}, present: map[Family]map[netip.Addr]bool{}}
	v6, err := newRunner(IPv6, legacy, why)
	if err == nil {
		err = probe(v6)
	}
	if err != nil {
		b.why6 = err
	} else {
		b.v6 = v6
	}
	return b, nil
}

// probe checks that r can read the raw table, where the rules go, and
// the filter table, where earlier versions' rules may be left.
func probe(r Runner) error {
	for _, c := range []struct {
		t Table
		c Chain
	}{{ownTable, ownHook}, {legacyTable, legacyHook}} {
		ok, err := r.ChainExists(c.t, c.c)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the %s table has no %s chain", c.t, c.c)
		}
	}
	return nil
}

// Name returns "iptables".
func (b *Backend) Name() string { return "iptables" }

// Traits: not Prompt, a block runs the iptables binary (milliseconds, and
// iptables-legacy waits for the xtables lock of whoever holds it).
func (b *Backend) Traits() block.Traits { return block.Traits{} }

// Close holds nothing open: every change is a run of iptables.
func (b *Backend) Close() error { return nil }

// String describes the runner of each family, or why it has none.
func (b *Backend) String() string {
	d := func(f Family, r Runner, why error) string {
		if r == nil {
			return fmt.Sprintf("%s: unsupported (%v)", f, why)
		}
		if s, ok := r.(fmt.Stringer); ok {
			return s.String()
		}
		return fmt.Sprintf("%s: %T", f, r)
	}
	return "iptables: " + d(IPv4, b.v4, b.why4) + "; " + d(IPv6, b.v6, b.why6)
}

// runner returns the runner of f, or an error wrapping
// ErrUnsupportedFamily with the reason.
func (b *Backend) runner(f Family) (Runner, error) {
	switch f {
	case IPv4:
		if b.v4 != nil {
			return b.v4, nil
		}
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedFamily, b.why4)
	case IPv6:
		if b.v6 != nil {
			return b.v6, nil
		}
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedFamily, b.why6)
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupportedFamily, f)
}

// opError wraps err with the family, the operation and the address (when
// the operation is about one).
func opError(f Family, op string, a netip.Addr, err error) error {
	if a.IsValid() {
		return fmt.Errorf("iptables %s: %s %s: %w", f, op, a, err)
	}
	return fmt.Errorf("iptables %s: %s: %w", f, op, err)
}

// EnsureChain makes sure family f has the chain SCANWARDEN in the raw
// table and exactly one jump to it from raw PREROUTING: the chain is
// created when missing; the jump (! -i lo -m comment --comment scanwarden
// -j SCANWARDEN) is inserted as the first rule of PREROUTING when
// missing, and when there are several copies of it all but the last are
// deleted. An existing jump is not moved: an administrator may have put
// rules above it on purpose. Rules of the chain and other rules of
// PREROUTING are left alone.
//
// Then it moves an earlier version's layout (the chain SCANWARDEN in the
// filter table, jumped to from INPUT) into this one, without a moment at
// which a blocked source is let through: scanwarden's DROP rules of the
// old chain are appended to the new one when missing, and only then are
// the jumps from filter INPUT to SCANWARDEN, the old chain's rules and
// the old chain deleted. A failure there is returned (the new chain and
// jump are in place all the same), and the move is tried again by the
// next EnsureChain, Prepare or Sync.
func (b *Backend) EnsureChain(f Family) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, err := b.runner(f)
	if err != nil {
		return opError(f, "ensure chain", netip.Addr{}, err)
	}
	if err := ensureChain(r); err != nil {
		return opError(f, "ensure chain", netip.Addr{}, err)
	}
	b.ensured[f] = true
	moved, err := migrate(r)
	if moved {
		delete(b.present, f)
	}
	if err != nil {
		return opError(f, "ensure chain", netip.Addr{}, err)
	}
	return nil
}

// Prepare makes the chain and its jump exist in every family the host
// supports, and moves an earlier version's layout into them (see
// EnsureChain), so that the first block of each family costs no more than
// the others (the daemon calls it on start and on every resync).
func (b *Backend) Prepare(context.Context) error {
	var errs []error
	for _, f := range []Family{IPv4, IPv6} {
		b.mu.Lock()
		_, err := b.runner(f)
		b.mu.Unlock()
		if err != nil {
			continue // unsupported family: nothing to prepare
		}
		if err := b.EnsureChain(f); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ensureChain makes the chain and its one jump in the raw table (see
// EnsureChain).
func ensureChain(r Runner) error {
	ok, err := r.ChainExists(ownTable, ChainScanwarden)
	if err != nil {
		return err
	}
	if !ok {
		if err := r.NewChain(ownTable, ChainScanwarden); err != nil {
			// Made meanwhile by someone else (another instance)? Fine.
			if ok, e := r.ChainExists(ownTable, ChainScanwarden); e != nil || !ok {
				return fmt.Errorf("creating chain %s in %s: %w", ChainScanwarden, ownTable, err)
			}
		}
	}
	lines, err := r.List(ownTable, ownHook)
	if err != nil {
		return err
	}
	n := 0
	for _, l := range lines {
		if spec, ok := RuleOf(l, ownHook); ok && slices.Equal(spec, jumpSpec) {
			n++
		}
	}
	if n == 0 {
		if err := r.Insert(ownTable, ownHook, 1, jumpSpec...); err != nil {
			return fmt.Errorf("inserting the jump from %s %s to %s: %w", ownTable, ownHook, ChainScanwarden, err)
		}
	}
	// iptables -D deletes the first copy: the last one stays.
	for ; n > 1; n-- {
		if err := r.Delete(ownTable, ownHook, jumpSpec...); err != nil {
			return fmt.Errorf("deleting a duplicate jump from %s %s to %s: %w", ownTable, ownHook, ChainScanwarden, err)
		}
	}
	return nil
}

// migrate moves an earlier version's chain (SCANWARDEN in the filter
// table) into the raw one, which ensureChain has made: the addresses the
// old chain drops that the new one does not are appended to the new one
// first, then the old chain and the jumps to it from INPUT are removed.
// moved says there was an old chain (the new one may have changed).
func migrate(r Runner) (moved bool, err error) {
	old, exists, err := listLegacy(r)
	if err != nil || !exists {
		return false, err
	}
	have, _, err := listOwn(r, ownTable)
	if err != nil {
		return true, err
	}
	for _, a := range slices.SortedFunc(maps.Keys(old), netip.Addr.Compare) {
		if have[a] == 0 {
			if err := r.Append(ownTable, ChainScanwarden, dropSpec(a)...); err != nil {
				return true, fmt.Errorf("moving the rule of %s from %s to %s: %w", a, legacyTable, ownTable, err)
			}
		}
	}
	if err := removeLayout(r, legacyTable, legacyHook); err != nil {
		return true, fmt.Errorf("removing the chain %s an earlier version left in %s: %w", ChainScanwarden, legacyTable, err)
	}
	return true, nil
}

// Block makes sure every packet from ban.Addr is dropped: it ensures the
// chain and the jump (see EnsureChain) of the address's family, then
// appends -s ADDR/32 (or /128) -m comment --comment scanwarden -j DROP to
// SCANWARDEN unless that rule is already there, so that blocking again,
// after a second alert or a restart, changes nothing. Whether it is there
// is taken from the family's last listing (Sync, List, Unblock) and the
// blocks made since, when there is one: a block is then a single iptables
// run. Without one it is checked (iptables -C) first. An IPv4-mapped IPv6
// address is blocked as the IPv4 address it maps.
//
// The first block of a family also moves an earlier version's chain into
// the raw table (see EnsureChain); a failure to remove the old chain does
// not fail the block (its rules are in the new chain by then, and the old
// one drops no less): Prepare and Sync, which the daemon runs on start and
// every 30 s, report it and try again.
func (b *Backend) Block(ctx context.Context, ban block.Ban) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, f, err := normalize(ban.Addr)
	if err != nil {
		return fmt.Errorf("iptables: block %v: %w", ban.Addr, err)
	}
	if err := ctx.Err(); err != nil {
		return opError(f, "block", a, err)
	}
	r, err := b.runner(f)
	if err != nil {
		return opError(f, "block", a, err)
	}
	// The chain and its jump are checked on the first block of a family
	// and again whenever the rule cannot be looked up (the chain was
	// deleted under us), not on every block: each check is an iptables
	// run, and a block must be in place within milliseconds. Sync (on
	// every start and reload) checks them in any case.
	if !b.ensured[f] {
		if err := ensureChain(r); err != nil {
			return opError(f, "block", a, err)
		}
		b.ensured[f] = true
		if moved, _ := migrate(r); moved {
			delete(b.present, f) // reported by Prepare and Sync
		}
	}
	spec := dropSpec(a)
	known, listed := b.present[f]
	switch {
	case listed && known[a]:
		return nil
	case !listed:
		ok, err := r.Exists(ownTable, ChainScanwarden, spec...)
		if err != nil {
			return opError(f, "block", a, err)
		}
		if ok {
			return nil
		}
	}
	if listed {
		known[a] = true
	}
	if err := r.Append(ownTable, ChainScanwarden, spec...); err != nil {
		delete(b.present, f)
		// the chain may have been deleted under us (iptables -X):
		// make it again and retry once
		b.ensured[f] = false
		if err2 := ensureChain(r); err2 != nil {
			return opError(f, "block", a, errors.Join(err, err2))
		}
		b.ensured[f] = true
		if err := r.Append(ownTable, ChainScanwarden, spec...); err != nil {
			return opError(f, "block", a, err)
		}
	}
	return nil
}

// Unblock makes sure scanwarden drops nothing from addr: every copy of
// its DROP rule in SCANWARDEN is deleted, in the raw table and in the
// filter table of an earlier version not moved yet. An address without a
// rule, a family without the chain and a family without a runner are
// nil. An IPv4-mapped IPv6 address is the IPv4 address it maps.
func (b *Backend) Unblock(ctx context.Context, addr netip.Addr) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, f, err := normalize(addr)
	if err != nil {
		return fmt.Errorf("iptables: unblock %v: %w", addr, err)
	}
	if err := ctx.Err(); err != nil {
		return opError(f, "unblock", a, err)
	}
	r, err := b.runner(f)
	if err != nil {
		return nil // nothing of that family can have been blocked
	}
	have, _, err := listOwn(r, ownTable)
	if err != nil {
		delete(b.present, f)
		return opError(f, "unblock", a, err)
	}
	b.learn(f, have)
	old, _, err := listLegacy(r)
	if err != nil {
		return opError(f, "unblock", a, err)
	}
	for _, c := range []struct {
		t Table
		n int
	}{{ownTable, have[a]}, {legacyTable, old[a]}} {
		for n := c.n; n > 0; n-- {
			if err := r.Delete(c.t, ChainScanwarden, dropSpec(a)...); err != nil {
				delete(b.present, f)
				return opError(f, "unblock", a, err)
			}
		}
	}
	delete(b.present[f], a)
	return nil
}

// listOwn lists SCANWARDEN of table once and counts scanwarden's DROP
// rules per address; exists is false (and the error nil) when there is no
// chain. Rules scanwarden did not write are not counted.
func listOwn(r Runner, table Table) (have map[netip.Addr]int, exists bool, err error) {
	lines, err := r.List(table, ChainScanwarden)
	if err != nil {
		if ok, e := r.ChainExists(table, ChainScanwarden); e == nil && !ok {
			return map[netip.Addr]int{}, false, nil
		}
		return nil, false, fmt.Errorf("listing %s of %s: %w", ChainScanwarden, table, err)
	}
	have = map[netip.Addr]int{}
	for _, l := range lines {
		if spec, ok := RuleOf(l, ChainScanwarden); ok {
			if a, ok := dropAddr(spec); ok {
				have[a]++
			}
		}
	}
	return have, true, nil
}

// listLegacy is listOwn of an earlier version's chain in the filter
// table, asking first whether it is there (one iptables run when not, as
// on every host but one just upgraded).
func listLegacy(r Runner) (have map[netip.Addr]int, exists bool, err error) {
	ok, err := r.ChainExists(legacyTable, ChainScanwarden)
	if err != nil {
		return nil, false, fmt.Errorf("looking for %s in %s: %w", ChainScanwarden, legacyTable, err)
	}
	if !ok {
		return map[netip.Addr]int{}, false, nil
	}
	return listOwn(r, legacyTable)
}

// List returns the addresses SCANWARDEN drops now, IPv4 then IPv6, each
// once, sorted, read from the kernel (one listing per family, and one more
// of an earlier version's chain in the filter table while it is there).
// Rules in the chain that scanwarden did not write are not reported. A
// family without a runner or without the chain has none.
func (b *Backend) List(ctx context.Context) ([]netip.Addr, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []netip.Addr
	for _, f := range []Family{IPv4, IPv6} {
		if err := ctx.Err(); err != nil {
			return nil, opError(f, "list", netip.Addr{}, err)
		}
		r, err := b.runner(f)
		if err != nil {
			continue
		}
		have, _, err := listOwn(r, ownTable)
		if err != nil {
			delete(b.present, f)
			return nil, opError(f, "list", netip.Addr{}, err)
		}
		b.learn(f, have)
		old, _, err := listLegacy(r)
		if err != nil {
			return nil, opError(f, "list", netip.Addr{}, err)
		}
		all := maps.Clone(have)
		maps.Copy(all, old)
		// A mistaken family (an IPv6 rule in iptables) cannot be
		// written; skip it rather than report it twice.
		for _, a := range slices.SortedFunc(maps.Keys(all), netip.Addr.Compare) {
			if (f == IPv4) == a.Is4() {
				out = append(out, a)
			}
		}
	}
	return out, nil
}

// Sync makes SCANWARDEN drop exactly the addresses of want, in one listing
// per family: a missing rule is appended, a duplicate deleted, and the
// rules of addresses not in want deleted. Rules scanwarden did not write
// stay. The chain and jump are ensured, and an earlier version's chain
// moved and removed first (see EnsureChain), when the family has
// addresses to block or has either chain; a family with none of them is
// left without. Sync goes on after a failure and returns every error,
// joined; an IPv6 address without an IPv6 runner is one of them, and IPv4
// is synced still.
func (b *Backend) Sync(ctx context.Context, want []block.Ban) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	wanted := map[Family]map[netip.Addr]bool{IPv4: {}, IPv6: {}}
	for _, w := range want {
		a, f, err := normalize(w.Addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("iptables: sync %v: %w", w.Addr, err))
			continue
		}
		wanted[f][a] = true
	}
	for _, f := range []Family{IPv4, IPv6} {
		if err := ctx.Err(); err != nil {
			errs = append(errs, opError(f, "sync", netip.Addr{}, err))
			break
		}
		errs = append(errs, b.syncFamily(ctx, f, wanted[f])...)
	}
	return errors.Join(errs...)
}

func (b *Backend) syncFamily(ctx context.Context, f Family, wanted map[netip.Addr]bool) []error {
	r, err := b.runner(f)
	if err != nil {
		var errs []error
		for _, a := range slices.SortedFunc(maps.Keys(wanted), netip.Addr.Compare) {
			errs = append(errs, opError(f, "sync", a, err))
		}
		return errs
	}
	delete(b.present, f)
	have, exists, err := listOwn(r, ownTable)
	if err != nil {
		return []error{opError(f, "sync", netip.Addr{}, err)}
	}
	legacy, err := r.ChainExists(legacyTable, ChainScanwarden)
	if err != nil {
		return []error{opError(f, "sync", netip.Addr{}, err)}
	}
	if !exists && !legacy && len(wanted) == 0 {
		b.present[f] = map[netip.Addr]bool{}
		return nil
	}
	if err := ensureChain(r); err != nil {
		b.ensured[f] = false
		return []error{opError(f, "sync", netip.Addr{}, err)}
	}
	b.ensured[f] = true
	var errs []error
	if legacy {
		if _, err := migrate(r); err != nil {
			errs = append(errs, opError(f, "sync", netip.Addr{}, err))
		}
		if have, _, err = listOwn(r, ownTable); err != nil {
			return append(errs, opError(f, "sync", netip.Addr{}, err))
		}
	}
	// Add first, so that a wanted address is never let through.
	for _, a := range slices.SortedFunc(maps.Keys(wanted), netip.Addr.Compare) {
		if err := ctx.Err(); err != nil {
			return append(errs, opError(f, "sync", a, err))
		}
		if have[a] == 0 {
			if err := r.Append(ownTable, ChainScanwarden, dropSpec(a)...); err != nil {
				errs = append(errs, opError(f, "sync", a, err))
			}
		}
	}
	for _, a := range slices.SortedFunc(maps.Keys(have), netip.Addr.Compare) {
		extra := have[a]
		if wanted[a] {
			extra--
		}
		for ; extra > 0; extra-- {
			if err := ctx.Err(); err != nil {
				return append(errs, opError(f, "sync", a, err))
			}
			if err := r.Delete(ownTable, ChainScanwarden, dropSpec(a)...); err != nil {
				errs = append(errs, opError(f, "sync", a, err))
				break
			}
		}
	}
	if len(errs) == 0 {
		known := map[netip.Addr]bool{}
		for a := range wanted {
			known[a] = true
		}
		b.present[f] = known
	}
	return errs
}

// learn records the addresses a listing of family f found.
func (b *Backend) learn(f Family, have map[netip.Addr]int) {
	known := make(map[netip.Addr]bool, len(have))
	for a := range have {
		known[a] = true
	}
	b.present[f] = known
}

// Flush removes everything scanwarden added, in both families: every rule
// of raw PREROUTING that jumps to SCANWARDEN, then the raw chain's rules
// and the chain; and the same of an earlier version's layout (filter
// INPUT's jumps to SCANWARDEN, the filter chain). Nothing else is
// touched; in particular, a jump to SCANWARDEN from another chain is
// left, and then that chain cannot be deleted: the error says so. A
// family without the chains (or without a runner) is nil. Both families
// and both layouts are flushed even when one fails; the errors are
// joined.
func (b *Backend) Flush(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.ensured)
	clear(b.present)
	var errs []error
	for _, f := range []Family{IPv4, IPv6} {
		if err := ctx.Err(); err != nil {
			errs = append(errs, opError(f, "flush", netip.Addr{}, err))
			break
		}
		r, err := b.runner(f)
		if err != nil {
			continue
		}
		if err := errors.Join(removeLayout(r, ownTable, ownHook), removeLayout(r, legacyTable, legacyHook)); err != nil {
			errs = append(errs, opError(f, "flush", netip.Addr{}, err))
		}
	}
	return errors.Join(errs...)
}

// removeLayout deletes every rule of table's built-in chain hook that
// jumps to SCANWARDEN (whoever wrote it), then table's SCANWARDEN with its
// rules. A table without the chain is nil.
func removeLayout(r Runner, table Table, hook Chain) error {
	lines, err := r.List(table, hook)
	if err != nil {
		return err
	}
	for _, l := range lines {
		if spec, ok := RuleOf(l, hook); ok && isJump(spec) {
			if err := r.Delete(table, hook, spec...); err != nil {
				return fmt.Errorf("deleting the jump %q of %s: %w", l, table, err)
			}
		}
	}
	ok, err := r.ChainExists(table, ChainScanwarden)
	if err != nil || !ok {
		return err
	}
	if err := r.ClearChain(table, ChainScanwarden); err != nil {
		return err
	}
	if err := r.DeleteChain(table, ChainScanwarden); err != nil {
		return fmt.Errorf("deleting chain %s of %s (is a rule of another chain than %s still jumping to it?): %w",
			ChainScanwarden, table, hook, err)
	}
	return nil
}

// Describe returns the rule Block writes for addr, as an iptables command
// line, for the attackalert log line ("blocked via dropped route using
// command: ...").
func (b *Backend) Describe(addr netip.Addr) string {
	a, f, err := normalize(addr)
	if err != nil {
		return "iptables: " + err.Error()
	}
	tool := "iptables"
	if f == IPv6 {
		tool = "ip6tables"
	}
	return tool + " -t " + string(ownTable) + " -A " + string(ChainScanwarden) + " " + strings.Join(dropSpec(a), " ")
}
