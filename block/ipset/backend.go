package ipset

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/iptables"
)

// Options are what a Backend works with.
type Options struct {
	// V4 and V6 are the iptables and ip6tables runners the matching rules
	// are written with (iptables.NewRunner, or iptables.NewFake in tests).
	// Either may be nil: that family is then unsupported, as with
	// iptables.New (blocking one of its addresses fails with an error
	// wrapping iptables.ErrUnsupportedFamily; its sets are neither made
	// nor removed).
	V4, V6 iptables.Runner
	// Netns is the network namespace whose sets are managed, as a file
	// (/run/netns/NAME, /proc/PID/ns/net); "" is the caller's own. The
	// runners must act in the same namespace.
	Netns string
	// Now is the clock ban expiry is measured with (time.Now when nil).
	Now func() time.Time

	// sets replaces the kernel's sets in tests.
	sets setOps
}

// Backend is the ipset block.Blocker and
// block.Trapper: the sources it blocks are elements of hash:ip sets with
// per-element timeouts, added and removed over netlink (one message per
// block, batches for Sync), and dropped by one iptables rule per set and
// family in the chain SCANWARDEN-SETS of the raw table, before routing
// and connection tracking; the kernel trap's catch is in the chain
// SCANWARDEN-TRAP of the filter table, for packets addressed to this host
// (see the package documentation for the layout). It never changes a
// rule, chain or set it did not write, apart from removing every jump to
// its chains from raw PREROUTING and filter INPUT (Flush, and the removal
// of an earlier version's layout: a chain cannot be deleted while one
// exists).
//
// Its methods are safe for concurrent use (they are serialised).
type Backend struct {
	mu   sync.Mutex
	fams []*family // IPv4, IPv6
	sets setOps
	now  func() time.Time
	// prepared says a family's sets and rules were made sure of since the
	// last Flush or failure.
	prepared map[iptables.Family]bool
	// trap is the trap in force as SetTrap installed it; nil while it is
	// not known (a new Backend before SetTrap, or after Flush): the
	// kernel's trap rules are then left as they are.
	trap *block.Trap
	// cleanup closes sets when the Backend is garbage and was not closed.
	cleanup runtime.Cleanup
	// spareOverflows counts the Releases that found the spared set full
	// (SpareOverflows).
	spareOverflows atomic.Uint64
}

var (
	_ block.Blocker = (*Backend)(nil)
	_ block.Trapper = (*Backend)(nil)
)

// New returns a Backend over o's runners and the sets of o's network
// namespace, after checking that the kernel answers ipset requests. It
// changes nothing: sets and rules are made by Prepare, SetTrap or the
// first Block. Close releases its netlink sockets.
func New(o Options) (*Backend, error) {
	sets := o.sets
	if sets == nil {
		s, err := newNetlinkSets(o.Netns)
		if err != nil {
			return nil, fmt.Errorf("ipset: %w", err)
		}
		sets = s
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	b := &Backend{
		fams: []*family{
			{f: iptables.IPv4, nfproto: unix.AF_INET, ban: SetBan4, trap: SetTrap4, spared: SetSpared4, nevr: SetNever4, r: o.V4},
			{f: iptables.IPv6, nfproto: unix.AF_INET6, ban: SetBan6, trap: SetTrap6, spared: SetSpared6, nevr: SetNever6, r: o.V6},
		},
		sets: sets, now: now, prepared: map[iptables.Family]bool{},
	}
	// a Backend a reload replaced is not closed (a decision may still be
	// using it): its sockets go when it is garbage (Close stops this)
	b.cleanup = runtime.AddCleanup(b, func(s setOps) { s.close() }, sets)
	for _, fam := range b.fams {
		if fam.r == nil {
			fam.why = fmt.Errorf("no %s runner configured", map[iptables.Family]string{iptables.IPv4: "iptables", iptables.IPv6: "ip6tables"}[fam.f])
		}
	}
	return b, nil
}

// NewDefault returns a Backend over the host's iptables and ip6tables
// (iptables.NewRunner chooses nf_tables or legacy) and the sets of the
// caller's network namespace, after checking that each runner can read
// the filter table and that the kernel answers ipset requests. Without a
// working iptables or ipset it fails; without a working ip6tables it
// leaves IPv6 unsupported, the reason in String and in the error of any
// IPv6 block.
func NewDefault() (*Backend, error) {
	v4, err := iptables.NewRunner(iptables.IPv4)
	if err == nil {
		err = probe(v4)
	}
	if err != nil {
		return nil, fmt.Errorf("ipset: iptables %s: %w", iptables.IPv4, err)
	}
	v6, why6 := iptables.NewRunner(iptables.IPv6)
	if why6 == nil {
		why6 = probe(v6)
	}
	o := Options{V4: v4}
	if why6 == nil {
		o.V6 = v6
	}
	b, err := New(o)
	if err != nil {
		return nil, err
	}
	if why6 != nil {
		b.fams[1].why = why6
	}
	return b, nil
}

// probe checks that r can read the raw table (the drops) and the filter
// table (the trap's catch).
func probe(r iptables.Runner) error {
	for _, c := range []struct {
		t iptables.Table
		c iptables.Chain
	}{{setsTable, setsHook}, {trapTable, trapHook}} {
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

// Close releases the Backend's netlink sockets; it changes nothing in the
// kernel. The Backend is not to be used afterwards.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cleanup.Stop()
	return b.sets.close()
}

// Name returns "ipset".
func (b *Backend) Name() string { return "ipset" }

// String describes the runner of each family, or why it has none.
func (b *Backend) String() string {
	s := "ipset:"
	for i, fam := range b.fams {
		if i > 0 {
			s += ";"
		}
		switch r := fam.r.(type) {
		case nil:
			s += fmt.Sprintf(" %s: unsupported (%v)", fam.f, fam.why)
		case fmt.Stringer:
			s += " " + r.String()
		default:
			s += fmt.Sprintf(" %s: %T", fam.f, r)
		}
	}
	return s
}

// Describe says where Block puts addr, for the attackalert line: "ipset:
// 198.51.100.66 in scanwarden-ban4".
func (b *Backend) Describe(addr netip.Addr) string {
	a, fam, err := b.family(addr)
	if err != nil {
		return "ipset: " + err.Error()
	}
	return fmt.Sprintf("ipset: %s in %s", a, fam.ban)
}

// family returns the address a set holds for addr (IPv4-mapped IPv6
// addresses are IPv4, zones dropped) and its family.
func (b *Backend) family(addr netip.Addr) (netip.Addr, *family, error) {
	if !addr.IsValid() {
		return addr, nil, errors.New("invalid address")
	}
	a := addr.Unmap().WithZone("")
	if a.Is4() {
		return a, b.fams[0], nil
	}
	return a, b.fams[1], nil
}

// opError wraps err with the family, the operation and the address (when
// the operation is about one).
func opError(fam *family, op string, a netip.Addr, err error) error {
	if a.IsValid() {
		return fmt.Errorf("ipset %s: %s %s: %w", fam.f, op, a, err)
	}
	return fmt.Errorf("ipset %s: %s: %w", fam.f, op, err)
}

// unsupported is the error of an operation on a family without a runner.
func unsupported(fam *family) error {
	return fmt.Errorf("%w: %v", iptables.ErrUnsupportedFamily, fam.why)
}

// banTimeout is the element timeout of ban at now (see timeoutSeconds):
// 0, permanent, for a ban without end.
func banTimeout(ban block.Ban, now time.Time) uint32 {
	if ban.Until.IsZero() {
		return 0
	}
	return timeoutSeconds(ban.Until.Sub(now))
}

// Prepare makes sure, in every supported family, of the sets (created
// when missing, rebuilt keeping their elements and remaining timeouts when
// an administrator's or an older version's set differs in size or
// timeout support), the chain SCANWARDEN-SETS of the raw table and its
// rules, and the jump from raw PREROUTING; and, once SetTrap has told it
// the trap, of the trap's rules too (see prepareRules). An earlier
// version's layout (SCANWARDEN-SETS in the filter table) is removed once
// the new one is in force. Existing elements and their timers are never
// lost; what an administrator deleted (a rule, the jump, an unreferenced
// set) is put back. It goes on after a failure and returns every error,
// joined.
func (b *Backend) Prepare(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, fam := range b.fams {
		if fam.r == nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, opError(fam, "prepare", netip.Addr{}, err))...)
		}
		if err := b.prepareFamily(fam); err != nil {
			errs = append(errs, opError(fam, "prepare", netip.Addr{}, err))
		}
	}
	return errors.Join(errs...)
}

// prepareFamily makes sure of fam's sets, the port sets and fam's rules,
// and marks fam prepared when all is well.
func (b *Backend) prepareFamily(fam *family) error {
	b.prepared[fam.f] = false
	var errs []error
	errs = append(errs, b.prepareSets(fam))
	for _, name := range []string{SetTCP, SetUDP} {
		errs = append(errs, b.ensureSet(name, portHeader, false))
	}
	if err := errors.Join(errs...); err != nil {
		return err // the rules refer to the sets: they cannot go in without them
	}
	if err := b.prepareRules(fam); err != nil {
		return err
	}
	b.prepared[fam.f] = true
	return nil
}

// prepareSets makes sure of fam's ban, trap, spared and exemption sets.
// The trap and spared sets have the size of the trap in force, or, before
// SetTrap, the size they have (a spared set that is made: the trap set's;
// defaultTrapSize for a trap set that is made).
func (b *Backend) prepareSets(fam *family) error {
	size, keep := defaultTrapSize, true
	if b.trap != nil {
		size, keep = b.trap.Size, false
	}
	errs := []error{
		b.ensureSet(fam.ban, banHeader(fam), false),
		b.ensureSet(fam.trap, trapHeader(fam, size), keep),
	}
	if keep {
		if h, _, ok, err := b.sets.list(fam.trap, true); err == nil && ok && h.maxElem > 0 {
			size = int(h.maxElem)
		}
	}
	errs = append(errs,
		b.ensureSet(fam.spared, trapHeader(fam, size), keep),
		b.ensureSet(fam.nevr, neverHeader(fam), false))
	return errors.Join(errs...)
}

// ensureSet makes set name as want describes it: created when missing;
// when it exists otherwise, rebuilt with its elements (see rebuild) when
// the kernel can swap the two, and else, since an element of another type
// or family means nothing here, destroyed and made again, after the
// backend's rules that may refer to it are cleared (see unhook; they are
// written again by prepareRules). With keepSize a hash set's maxelem is
// taken as it is.
func (b *Backend) ensureSet(name string, want header, keepSize bool) error {
	h, _, ok, err := b.sets.list(name, true)
	if err != nil {
		return err
	}
	if !ok {
		return b.sets.create(name, want)
	}
	if keepSize && want.typ != typeBitmapPort {
		want.maxElem = h.maxElem
	}
	if h.matches(want) {
		return nil
	}
	if h.sameKind(want) {
		return b.rebuild(name, want)
	}
	if err := b.unhook(want.family); err != nil {
		return fmt.Errorf("set %s is a %s, not a %s: %w", name, h, want, err)
	}
	if err := b.sets.destroy(name); err != nil {
		return fmt.Errorf("set %s is a %s, not a %s: %w", name, h, want, err)
	}
	return b.sets.create(name, want)
}

// rebuild replaces set name by one as want describes, keeping its
// elements and their remaining timeouts (the longest-lasting ones when
// want is smaller than their number): the new set is made and filled
// under a temporary name, then the two are swapped, so that the rules
// referring to the name never see it missing or empty, and the old one is
// destroyed. Timeouts are kept to the second (the kernel lists them in
// whole seconds, rounded down); an element the kernel adds between the
// listing and the swap is lost.
func (b *Backend) rebuild(name string, want header) error {
	tmp := name + tmpSuffix
	if err := b.sets.destroy(tmp); err != nil {
		return err
	}
	if err := b.sets.create(tmp, want); err != nil {
		return err
	}
	_, ms, ok, err := b.sets.list(name, false)
	if err == nil && !ok {
		err = fmt.Errorf("set %s vanished while being rebuilt", name)
	}
	if err == nil && len(ms) > 0 {
		err = b.sets.add(tmp, want.timeout, fit(ms, want))
	}
	if err == nil {
		err = b.sets.swap(name, tmp)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("rebuilding set %s as %s: %w", name, want, err), b.sets.destroy(tmp))
	}
	return b.sets.destroy(tmp)
}

// unhook clears the backend's chains that may refer to a set of family
// nfproto, so that it can be destroyed: ChainSets (in the raw table, and
// an earlier version's in the filter table) and ChainTrap of that
// family, and takes banShowSpec out of filter INPUT, or, for a port set (no family), ChainTrap of every supported
// family (the bans stay enforced). The families are marked unprepared,
// so that their rules are written again (the trap's once it is known).
func (b *Backend) unhook(nfproto uint8) error {
	type chain struct {
		t iptables.Table
		c iptables.Chain
	}
	var errs []error
	for _, fam := range b.fams {
		if fam.r == nil || (nfproto != 0 && nfproto != fam.nfproto) {
			continue
		}
		b.prepared[fam.f] = false
		chains := []chain{{trapTable, ChainTrap}}
		if nfproto != 0 {
			chains = append(chains, chain{setsTable, ChainSets}, chain{legacyTable, ChainSets})
			if err := removeRule(fam.r, showTable, showHook, banShowSpec(fam)); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", fam.f, err))
			}
		}
		for _, c := range chains {
			ok, err := fam.r.ChainExists(c.t, c.c)
			if err == nil && ok {
				err = fam.r.ClearChain(c.t, c.c)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: clearing %s of %s: %w", fam.f, c.c, c.t, err))
			}
		}
	}
	return errors.Join(errs...)
}

// prepareRules makes fam's chains hold what they should, the new before
// the old goes, so that no banned, held or first-hit source gets through
// meanwhile:
//
//  1. ChainTrap (filter) the trap's rules when the trap in force is
//     enabled;
//  2. ChainSets (raw) its drops, and raw PREROUTING its one jump to it;
//  3. filter INPUT its one jump to ChainTrap with an enabled trap or,
//     while the trap is not known, when a jump to ChainTrap is there
//     (from INPUT, or from an earlier version's ChainSets), and, before
//     that, its one banShowSpec (the bans, where iptables -S shows them);
//  4. no ChainSets in the filter table (an earlier version's, jumped to
//     from INPUT), and no ChainTrap when the trap in force is not
//     enabled.
func (b *Backend) prepareRules(fam *family) error {
	r := fam.r
	trapJump := false
	switch {
	case b.trap == nil:
		var err error
		if trapJump, err = trapJumped(r); err != nil {
			return err
		}
	case b.trap.Enabled():
		if err := syncChain(r, trapTable, ChainTrap, trapRules(fam, *b.trap)); err != nil {
			return err
		}
		trapJump = true
	}
	if err := syncChain(r, setsTable, ChainSets, setsRules(fam)); err != nil {
		return err
	}
	if err := ensureJump(r, setsTable, setsHook, jumpSpec); err != nil {
		return err
	}
	if err := ensureJump(r, showTable, showHook, banShowSpec(fam)); err != nil {
		return err
	}
	if trapJump {
		if err := ensureJump(r, trapTable, trapHook, trapJumpSpec); err != nil {
			return err
		}
	}
	if err := removeChain(r, legacyTable, ChainSets, trapHook); err != nil {
		return fmt.Errorf("removing the chain an earlier version left: %w", err)
	}
	if b.trap != nil && !b.trap.Enabled() {
		if err := removeChain(r, trapTable, ChainTrap, trapHook); err != nil {
			return err
		}
	}
	return nil
}

// trapJumped reports whether ChainTrap exists and a jump to it from
// filter INPUT, or from an earlier version's ChainSets of the filter
// table, is there: whether the trap, not known to this Backend yet, is
// on.
func trapJumped(r iptables.Runner) (bool, error) {
	ok, err := r.ChainExists(trapTable, ChainTrap)
	if err != nil || !ok {
		return false, err
	}
	for _, from := range []struct {
		t iptables.Table
		c iptables.Chain
	}{{trapTable, trapHook}, {legacyTable, ChainSets}} {
		have, _, err := chainRules(r, from.t, from.c)
		if err != nil {
			return false, err
		}
		if slices.ContainsFunc(have, func(s []string) bool { return slices.Equal(s, trapJumpSpec) }) {
			return true, nil
		}
	}
	return false, nil
}

// Traits: Prompt, a block is one netlink message once the family is
// prepared (block.Manager.Begin may run it on the capture thread).
func (b *Backend) Traits() block.Traits { return block.Traits{Prompt: true} }

// Block adds ban.Addr to its family's ban set, with a timeout of what
// remains of ban.Until (whole seconds, rounded up; none when Until is
// zero, and none when more than maxElemTimeout remains: the kernel would
// cut it short, and userspace expiry lifts it), in one netlink message.
// An address already there keeps one element, whose timeout is set anew;
// a ban whose Until has passed is not added. An address the trap holds is
// added all the same: that is its promotion to a ban, with the ban's
// timeout, whatever becomes of its trap set element. The family's sets and rules
// are made sure of first on its first block, and again (and the block
// tried once more) when adding fails otherwise than for a full set: the
// ban set vanished, or was made anew without timeouts or of another type. An IPv4-mapped IPv6 address is blocked as the IPv4
// address it maps.
func (b *Backend) Block(ctx context.Context, ban block.Ban) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, fam, err := b.family(ban.Addr)
	if err != nil {
		return fmt.Errorf("ipset: block %v: %w", ban.Addr, err)
	}
	if err := ctx.Err(); err != nil {
		return opError(fam, "block", a, err)
	}
	if fam.r == nil {
		return opError(fam, "block", a, unsupported(fam))
	}
	now := b.now()
	if ban.Expired(now) {
		return nil
	}
	if !b.prepared[fam.f] {
		if err := b.prepareFamily(fam); err != nil {
			return opError(fam, "block", a, err)
		}
	}
	m := []member{addrMember(a, banTimeout(ban, now))}
	err = b.sets.add(fam.ban, true, m)
	if err != nil && !errors.Is(err, nl.IPSetError(errHashFull)) {
		// the set vanished or was made anew otherwise: prepare again
		if err := b.prepareFamily(fam); err != nil {
			return opError(fam, "block", a, err)
		}
		err = b.sets.add(fam.ban, true, m)
	}
	if err != nil {
		return opError(fam, "block", a, err)
	}
	return nil
}

// Unblock removes addr from its family's ban, trap and spared sets (an
// administrator who unblocks wants a clean slate: the address is trapped
// again on its next first hit), one netlink message each. An address in
// none of them, a missing set and an unsupported family are nil.
func (b *Backend) Unblock(ctx context.Context, addr netip.Addr) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, fam, err := b.family(addr)
	if err != nil {
		return fmt.Errorf("ipset: unblock %v: %w", addr, err)
	}
	if err := ctx.Err(); err != nil {
		return opError(fam, "unblock", a, err)
	}
	if fam.r == nil {
		return nil // nothing of that family can have been blocked
	}
	var errs []error
	for _, set := range []string{fam.ban, fam.trap, fam.spared} {
		if err := b.sets.del(set, []member{addrMember(a, 0)}); err != nil && !isNoSet(err) {
			errs = append(errs, opError(fam, "unblock", a, err))
		}
	}
	return errors.Join(errs...)
}

// List returns the addresses in the ban and trap sets of every supported
// family, as the kernel has them now (expired elements are not listed),
// each once, sorted, IPv4 first. A missing set has none. The spared sets
// are not read: a spared address is not blocked.
func (b *Backend) List(ctx context.Context) ([]netip.Addr, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []netip.Addr
	for _, fam := range b.fams {
		if fam.r == nil {
			continue
		}
		for _, set := range []string{fam.ban, fam.trap} {
			if err := ctx.Err(); err != nil {
				return nil, opError(fam, "list", netip.Addr{}, err)
			}
			_, ms, _, err := b.sets.list(set, false)
			if err != nil {
				return nil, opError(fam, "list", netip.Addr{}, err)
			}
			for _, m := range ms {
				out = append(out, m.prefix.Addr())
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

// Sync makes the ban sets hold exactly the addresses of want's bans that
// have not expired, with their remaining timeouts: missing ones are added
// and those whose kernel timeout is more than syncTolerance off replaced
// (both in batches, before anything is removed, so that a wanted address
// is never let through), then the addresses without a ban removed. For
// an address with several bans the longest counts. The trap sets are
// left alone. A family's sets and rules are made sure of first when they
// have not been since the last Flush. Sync goes on after a failure and
// returns every error, joined; an IPv6 address without an IPv6 runner is
// one of them, and IPv4 is synced still.
func (b *Backend) Sync(ctx context.Context, want []block.Ban) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	var errs []error
	wanted := map[iptables.Family]map[netip.Addr]uint32{iptables.IPv4: {}, iptables.IPv6: {}}
	for _, w := range want {
		a, fam, err := b.family(w.Addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("ipset: sync %v: %w", w.Addr, err))
			continue
		}
		if w.Expired(now) {
			continue
		}
		t := banTimeout(w, now)
		if old, ok := wanted[fam.f][a]; ok && (old == 0 || (t != 0 && t < old)) {
			continue
		}
		wanted[fam.f][a] = t
	}
	for _, fam := range b.fams {
		if err := ctx.Err(); err != nil {
			errs = append(errs, opError(fam, "sync", netip.Addr{}, err))
			break
		}
		errs = append(errs, b.syncFamily(fam, wanted[fam.f])...)
	}
	return errors.Join(errs...)
}

func (b *Backend) syncFamily(fam *family, wanted map[netip.Addr]uint32) []error {
	if fam.r == nil {
		var errs []error
		for _, a := range slices.SortedFunc(maps.Keys(wanted), netip.Addr.Compare) {
			errs = append(errs, opError(fam, "sync", a, unsupported(fam)))
		}
		return errs
	}
	var errs []error
	if !b.prepared[fam.f] {
		if err := b.prepareFamily(fam); err != nil {
			errs = append(errs, opError(fam, "sync", netip.Addr{}, err))
		}
	}
	_, ms, ok, err := b.sets.list(fam.ban, false)
	if err == nil && !ok {
		// deleted since it was prepared
		if err = b.prepareFamily(fam); err == nil {
			_, ms, ok, err = b.sets.list(fam.ban, false)
		}
		if err == nil && !ok {
			err = fmt.Errorf("no set %s", fam.ban)
		}
	}
	if err != nil {
		return append(errs, opError(fam, "sync", netip.Addr{}, err))
	}
	have := make(map[netip.Addr]uint32, len(ms))
	for _, m := range ms {
		have[m.prefix.Addr()] = m.timeout
	}
	var add, del []member
	for _, a := range slices.SortedFunc(maps.Keys(wanted), netip.Addr.Compare) {
		t := wanted[a]
		if k, ok := have[a]; !ok || timeoutDiffers(k, t) {
			add = append(add, addrMember(a, t))
		}
	}
	for _, a := range slices.SortedFunc(maps.Keys(have), netip.Addr.Compare) {
		if _, ok := wanted[a]; !ok {
			del = append(del, addrMember(a, 0))
		}
	}
	if len(add) > 0 {
		if err := b.sets.add(fam.ban, true, add); err != nil {
			errs = append(errs, opError(fam, "sync", netip.Addr{}, err))
		}
	}
	if len(del) > 0 {
		if err := b.sets.del(fam.ban, del); err != nil {
			errs = append(errs, opError(fam, "sync", netip.Addr{}, err))
		}
	}
	return errs
}

// timeoutDiffers reports whether a kernel timeout k (seconds, 0 for
// permanent) is not what t asks for, within syncTolerance.
func timeoutDiffers(k, t uint32) bool {
	if (k == 0) != (t == 0) {
		return true
	}
	d := time.Duration(int64(k)-int64(t)) * time.Second
	return d > syncTolerance || d < -syncTolerance
}

// Flush removes everything the backend made, in every supported family:
// filter INPUT's rule that shows the bans (banShowSpec), the jumps from
// raw PREROUTING to SCANWARDEN-SETS and from filter INPUT to
// SCANWARDEN-TRAP (whoever wrote them), those chains, an earlier
// version's SCANWARDEN-SETS of the filter table and its jumps, then the
// sets (with whatever was in them, the trap's and the spared sources
// included). What is already gone is no error; the rest goes on after a
// failure, and the errors are joined. A set that another program's rule
// still refers to cannot be destroyed: the error says so. The trap is not
// known afterwards (SetTrap installs one again).
func (b *Backend) Flush(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.prepared)
	b.trap = nil
	var errs []error
	some := false
	for _, fam := range b.fams {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, opError(fam, "flush", netip.Addr{}, err))...)
		}
		if fam.r == nil {
			continue
		}
		some = true
		if err := errors.Join(
			removeRule(fam.r, showTable, showHook, banShowSpec(fam)),
			removeChain(fam.r, setsTable, ChainSets, setsHook),
			// (an earlier version's ChainSets jumps to ChainTrap too)
			removeChain(fam.r, trapTable, ChainTrap, trapHook, ChainSets),
			removeChain(fam.r, legacyTable, ChainSets, trapHook),
		); err != nil {
			errs = append(errs, opError(fam, "flush", netip.Addr{}, err))
		}
		for _, set := range []string{fam.ban, fam.trap, fam.spared, fam.nevr} {
			for _, name := range []string{set, set + tmpSuffix} {
				if err := b.sets.destroy(name); err != nil {
					errs = append(errs, opError(fam, "flush", netip.Addr{}, err))
				}
			}
		}
	}
	if some {
		for _, set := range []string{SetTCP, SetUDP} {
			for _, name := range []string{set, set + tmpSuffix} {
				if err := b.sets.destroy(name); err != nil {
					errs = append(errs, fmt.Errorf("ipset: flush: %w", err))
				}
			}
		}
	}
	return errors.Join(errs...)
}
