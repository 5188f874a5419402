package host

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// neighMax bounds the entries a Neighbours holds. The kernel's own table
// is bounded by gc_thresh3 (net.ipv4.neigh.default.gc_thresh3 and its
// IPv6 twin, 1024 each by default), so the bound is only reached on a
// host whose administrator raised those far (a large layer-2 segment, a
// router of a /16): past it, a neighbour the table has no room for is not
// recorded (Lookup says false, as for an address the kernel has no entry
// for) and Refused counts it; the entries held are still updated and
// deleted, and a later message or Refresh about a refused neighbour
// records it once there is room. At the bound the table takes about
// 16 MB, and keeps it (a Go map does not shrink); at 2048 entries, the
// kernel's defaults, about 0.5 MB.
const neighMax = 65536

// userHZ is the unit of the kernel's neighbour cache times (NDA_CACHEINFO,
// clock_t: USER_HZ ticks, 100 a second on every architecture Go runs
// Linux on).
const userHZ = 100

// loopbackIndex is the interface index of lo in every network namespace
// (the kernel's LOOPBACK_IFINDEX).
const loopbackIndex = 1

// neighSources are what WatchNeighbours reads the kernel with; the tests
// replace them.
var neighSources = struct {
	neighSub  func(chan<- netlink.NeighUpdate, <-chan struct{}, netlink.NeighSubscribeOptions) error
	addrSub   func(chan<- netlink.AddrUpdate, <-chan struct{}, netlink.AddrSubscribeOptions) error
	neighList func() ([]netlink.Neigh, error)
	addrList  func() ([]netlink.Addr, error)
	neighUse  func(*netlink.Neigh) error
}{
	netlink.NeighSubscribeWithOptions,
	netlink.AddrSubscribeWithOptions,
	func() ([]netlink.Neigh, error) { return netlink.NeighList(0, netlink.FAMILY_ALL) },
	func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_ALL) },
	netlink.NeighSet,
}

// NeighState is the state of a neighbour entry: the kernel's NUD_* value.
type NeighState uint8

// The states of a neighbour entry (see ip-neighbour(8)).
const (
	NeighNone       NeighState = netlink.NUD_NONE       // made, not yet resolved
	NeighIncomplete NeighState = netlink.NUD_INCOMPLETE // being resolved: solicitations sent, no answer yet
	NeighReachable  NeighState = netlink.NUD_REACHABLE  // resolved and recently confirmed
	NeighStale      NeighState = netlink.NUD_STALE      // resolved, not confirmed lately
	NeighDelay      NeighState = netlink.NUD_DELAY      // resolved, a confirmation awaited
	NeighProbe      NeighState = netlink.NUD_PROBE      // resolved, being probed again
	NeighFailed     NeighState = netlink.NUD_FAILED     // resolution failed: no answer to the solicitations
	NeighNoARP      NeighState = netlink.NUD_NOARP      // never resolved: the link needs no resolution
	NeighPermanent  NeighState = netlink.NUD_PERMANENT  // set by the administrator
)

// Resolved says whether the kernel holds a link-layer address for the
// entry: reachable, stale, delay, probe, permanent or noarp (NUD_VALID).
// Incomplete, failed and none hold none.
func (s NeighState) Resolved() bool {
	return s&(NeighReachable|NeighStale|NeighDelay|NeighProbe|NeighPermanent|NeighNoARP) != 0
}

func (s NeighState) String() string {
	switch s {
	case NeighNone:
		return "none"
	case NeighIncomplete:
		return "incomplete"
	case NeighReachable:
		return "reachable"
	case NeighStale:
		return "stale"
	case NeighDelay:
		return "delay"
	case NeighProbe:
		return "probe"
	case NeighFailed:
		return "failed"
	case NeighNoARP:
		return "noarp"
	case NeighPermanent:
		return "permanent"
	}
	return fmt.Sprintf("state(%#x)", uint8(s))
}

// Neighbour is one entry of the kernel's neighbour table (ARP for IPv4,
// NDP for IPv6).
type Neighbour struct {
	Addr  netip.Addr // the neighbour's address: unmapped, no zone
	Link  int        // the index of the interface the entry is on
	State NeighState
	// MAC is the neighbour's link-layer address when HasMAC: the kernel
	// gave one of 6 bytes (Ethernet, Wi-Fi, veth...). An entry of a
	// resolved state on a link of other addresses (a tunnel, InfiniBand,
	// lo) has none.
	MAC    [6]byte
	HasMAC bool
	// Changed is when the entry was last seen to change state or address:
	// the kernel's time of the change (NDA_CACHEINFO's ndm_updated) when
	// its message said, else when the message was read. A message
	// repeating the state and address leaves it as it was.
	Changed time.Time
}

// Connected is a directly connected network: the prefix of an address of
// the host, on interface Link.
type Connected struct {
	Prefix netip.Prefix // masked, unmapped
	Link   int
}

// neighKey is what the kernel keys its entries by: the address and the
// interface.
type neighKey struct {
	addr netip.Addr
	link int
}

// neighSlot holds the entries of an address: nearly always one, more
// when the address has entries on several interfaces (a link-local
// address, an address on two segments).
type neighSlot struct {
	first Neighbour
	more  []Neighbour
}

// Neighbours is a snapshot of the kernel's neighbour table, for each
// address its state, link-layer address, interface and time of change,
// and of the host's connected networks. It is safe for concurrent use:
// Lookup, LookupOn, OnLink and OnLinkIndex do not allocate; the first two
// take a read lock, the others none.
//
// WatchNeighbours keeps it current through rtnetlink; NewNeighbours makes
// a fixed one. The kernel announces an entry's changes to reachable,
// stale and failed, its new link-layer addresses and its deletion, but
// not its creation as incomplete (as of Linux 6.18; nor, it seems, delay
// and probe, which have an address anyway): an address being resolved is
// absent until it resolves or fails, unless Refresh has asked the kernel
// since. The table holds at most 65536 entries (neighMax: see Refused).
type Neighbours struct {
	mu      sync.RWMutex
	entries map[netip.Addr]neighSlot
	count   int // entries held
	max     int
	refused uint64

	conn atomic.Pointer[[]Connected] // longest prefixes first

	listMu    sync.Mutex // one dump at a time
	listNeigh func() ([]netlink.Neigh, error)
	listAddr  func() ([]netlink.Addr, error)
	now       func() time.Time
	done      chan struct{}
}

func newNeighbours(bound int) *Neighbours {
	n := &Neighbours{
		entries: map[netip.Addr]neighSlot{},
		max:     bound,
		now:     time.Now,
		done:    make(chan struct{}),
	}
	n.conn.Store(&[]Connected{})
	return n
}

// NewNeighbours returns a fixed table of the entries and connected
// networks given (for tests: nothing keeps it current, and Refresh does
// nothing). An entry's address is unmapped and its zone dropped; an entry
// of an address and interface given before replaces the earlier one; an
// entry with no Changed is given the time of the call; entries past the
// bound (65536) are refused as WatchNeighbours refuses them. Done is
// closed.
func NewNeighbours(entries []Neighbour, connected []Connected) *Neighbours {
	n := newNeighbours(neighMax)
	now := n.now()
	n.mu.Lock()
	for _, e := range entries {
		e.Addr = e.Addr.Unmap().WithZone("")
		if e.Changed.IsZero() {
			e.Changed = now
		}
		n.put(e, -1, now)
	}
	n.mu.Unlock()
	n.setConnected(connected)
	close(n.done)
	return n
}

// WatchNeighbours reads the kernel's neighbour table (both families) and
// the host's connected networks (the prefixes of its addresses) and keeps
// them current until ctx ends: rtnetlink subscriptions to neighbour and
// address changes (github.com/vishvananda/netlink), made before the first
// dumps so that no change is missed, followed by a goroutine of its own.
// Neighbour changes are applied as they come; the connected networks are
// read again after a burst of address changes (watchSettle after its
// first message). A lost message (an overrun: ENOBUFS, which ends a
// subscription) makes the subscription again and dumps the table again,
// entries the dump does not list removed. onErr, when not nil, hears of
// failed reads, dumps and renewals (retried every watchRetry) from that
// goroutine, and never once Done is closed. When ctx ends, the goroutine,
// the subscriptions' goroutines and their sockets are gone soon after and
// Done is closed; the table keeps its last contents.
//
// It returns an error only when a subscription cannot be made or a first
// dump fails (one the kernel interrupted dumpTries times in a row is
// taken as it is, told to onErr and retried); it then leaves nothing
// behind.
func WatchNeighbours(ctx context.Context, onErr func(error)) (*Neighbours, error) {
	n := newNeighbours(neighMax)
	n.listNeigh, n.listAddr = neighSources.neighList, neighSources.addrList
	// as Watch: the subscriptions' errors go to the goroutine, or are
	// dropped when it is behind or gone
	errc := make(chan error, 16)
	report := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	nsub := &sub[netlink.NeighUpdate]{name: "neighbour", subscribe: func(ch chan<- netlink.NeighUpdate, done <-chan struct{}) error {
		return neighSources.neighSub(ch, done, netlink.NeighSubscribeOptions{ErrorCallback: report, ListExisting: false})
	}}
	asub := &sub[netlink.AddrUpdate]{name: "address", subscribe: func(ch chan<- netlink.AddrUpdate, done <-chan struct{}) error {
		return neighSources.addrSub(ch, done, netlink.AddrSubscribeOptions{ErrorCallback: report, ListExisting: false})
	}}
	if err := nsub.start(); err != nil {
		return nil, err
	}
	if err := asub.start(); err != nil {
		nsub.stop()
		return nil, err
	}
	var first []error // interrupted dumps: told and retried by the goroutine
	for _, list := range []func() error{n.relistNeigh, n.relistAddrs} {
		if err := list(); errors.Is(err, netlink.ErrDumpInterrupted) {
			first = append(first, err)
		} else if err != nil {
			nsub.stop()
			asub.stop()
			return nil, err
		}
	}
	if onErr == nil {
		onErr = func(error) {}
	}
	go n.watch(ctx, nsub, asub, errc, onErr, first)
	return n, nil
}

// watch is WatchNeighbours's goroutine. first are the errors of the first
// dumps, done again here.
func (n *Neighbours) watch(ctx context.Context, nsub *sub[netlink.NeighUpdate], asub *sub[netlink.AddrUpdate], errc <-chan error, onErr func(error), first []error) {
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	armed := false // the connected networks are to be read when settle fires
	defer func() {
		settle.Stop()
		nsub.stop()
		asub.stop()
		close(n.done)
	}()
	r := &neighResync{n: n, nsub: nsub, asub: asub, onErr: onErr}
	for _, err := range first {
		if errors.Is(err, errNeighDump) {
			r.needNeigh = true
		} else {
			r.needAddr = true
		}
	}
	if len(first) > 0 {
		onErr(errors.Join(first...))
		r.retry = time.After(watchRetry)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case u, ok := <-nsub.ch:
			if nsub.seen(ok) {
				r.needNeigh = true
				r.run()
				continue
			}
			n.apply(&u)
		case _, ok := <-asub.ch:
			if asub.seen(ok) {
				r.needAddr = true
				r.run()
				continue
			}
			if !armed {
				armed = true
				settle.Reset(watchSettle)
			}
		case err := <-errc:
			if !overrun(err) {
				onErr(fmt.Errorf("netlink: %w", err))
			}
		case <-r.retry:
			r.run()
		case <-settle.C:
			armed = false
			r.needAddr = true
			r.run()
		}
	}
}

// neighResync is what watch owes the kernel's view: the subscriptions to
// make again and the dumps to do, and when to try again.
type neighResync struct {
	n                   *Neighbours
	nsub                *sub[netlink.NeighUpdate]
	asub                *sub[netlink.AddrUpdate]
	onErr               func(error)
	needNeigh, needAddr bool // a dump is owed
	retry               <-chan time.Time
}

// run makes again the subscriptions that ended and does the dumps owed,
// each after its subscription is made; what fails is told and retried
// after watchRetry.
func (r *neighResync) run() {
	var errs []error
	for _, s := range []feed{r.nsub, r.asub} {
		if !s.alive() {
			s.stop()
			if err := s.start(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if r.needNeigh && r.nsub.alive() {
		err := r.n.relistNeigh()
		r.needNeigh = err != nil
		errs = append(errs, err)
	}
	if r.needAddr && r.asub.alive() {
		err := r.n.relistAddrs()
		r.needAddr = err != nil
		errs = append(errs, err)
	}
	r.retry = nil
	if err := errors.Join(errs...); err != nil {
		r.onErr(err)
	}
	if r.needNeigh || r.needAddr || !r.nsub.alive() || !r.asub.alive() {
		r.retry = time.After(watchRetry)
	}
}

// Done is closed once WatchNeighbours's goroutine, subscriptions and
// sockets are gone (after its ctx ended); closed from the start for
// NewNeighbours.
func (n *Neighbours) Done() <-chan struct{} { return n.done }

// Lookup returns the entry of the neighbour addr (unmapped; a zone is
// ignored). When the kernel holds entries for addr on several interfaces
// (a link-local address, an address on two segments), it returns a
// resolved one before one that is not, then the one changed last; use
// LookupOn to name the interface. It does not allocate and takes only a
// read lock.
func (n *Neighbours) Lookup(addr netip.Addr) (Neighbour, bool) {
	a := addr.Unmap().WithZone("")
	n.mu.RLock()
	defer n.mu.RUnlock()
	s, ok := n.entries[a]
	if !ok {
		return Neighbour{}, false
	}
	best := s.first
	for _, e := range s.more {
		if e.State.Resolved() && !best.State.Resolved() ||
			e.State.Resolved() == best.State.Resolved() && e.Changed.After(best.Changed) {
			best = e
		}
	}
	return best, true
}

// LookupOn returns the entry of the neighbour addr on the interface of
// index link. It does not allocate and takes only a read lock.
func (n *Neighbours) LookupOn(addr netip.Addr, link int) (Neighbour, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	s, ok := n.entries[addr.Unmap().WithZone("")]
	if !ok {
		return Neighbour{}, false
	}
	if s.first.Link == link {
		return s.first, true
	}
	for _, e := range s.more {
		if e.Link == link {
			return e, true
		}
	}
	return Neighbour{}, false
}

// Len returns how many entries the table holds.
func (n *Neighbours) Len() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.count
}

// Refused returns how many times an entry was not recorded because the
// table was full (neighMax entries).
func (n *Neighbours) Refused() uint64 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.refused
}

// Entries returns a copy of the table, sorted by address then interface.
func (n *Neighbours) Entries() []Neighbour {
	n.mu.RLock()
	out := make([]Neighbour, 0, n.count)
	for _, s := range n.entries {
		out = append(append(out, s.first), s.more...)
	}
	n.mu.RUnlock()
	slices.SortFunc(out, func(a, b Neighbour) int {
		return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Link, b.Link))
	})
	return out
}

// Refresh dumps the kernel's neighbour table now and makes the snapshot
// what it lists (entries it does not list are removed), on the caller's
// goroutine: for a caller that must see the entries being resolved
// (incomplete), which the kernel does not announce. It costs one dump of
// the whole table (as many entries as gc_thresh3 allows, 1024 a family by
// default) and a write lock over its application; dumps are done one at a
// time. A table of NewNeighbours is not refreshed (nil).
func (n *Neighbours) Refresh() error {
	if n.listNeigh == nil {
		return nil
	}
	return n.relistNeigh()
}

// OnLink says whether addr (unmapped; a zone is ignored) is on a directly
// connected network: within the prefix of an address of the host (or of
// its peer, on a point-to-point link). Only then does a neighbour entry
// say anything about it. It does not allocate nor lock.
func (n *Neighbours) OnLink(addr netip.Addr) bool {
	_, ok := n.OnLinkIndex(addr)
	return ok
}

// OnLinkIndex returns the interface of the connected network addr is on,
// the one of the longest prefix that holds it (a link-local address,
// on-link wherever there is one, gives one of them). It does not allocate
// nor lock.
func (n *Neighbours) OnLinkIndex(addr netip.Addr) (link int, ok bool) {
	a := addr.Unmap().WithZone("")
	for _, c := range *n.conn.Load() {
		if c.Prefix.Contains(a) {
			return c.Link, true
		}
	}
	return 0, false
}

// Connected returns a copy of the connected networks, longest prefixes
// first.
func (n *Neighbours) Connected() []Connected {
	return slices.Clone(*n.conn.Load())
}

// setConnected makes cs, masked, unmapped and without duplicates, the
// connected networks.
func (n *Neighbours) setConnected(cs []Connected) {
	out := make([]Connected, 0, len(cs))
	for _, c := range cs {
		if !c.Prefix.IsValid() {
			continue
		}
		a, bits := c.Prefix.Addr(), c.Prefix.Bits()
		if a.Is4In6() {
			a, bits = a.Unmap(), max(bits-96, 0)
		}
		c.Prefix = netip.PrefixFrom(a.WithZone(""), bits).Masked()
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b Connected) int {
		return cmp.Or(cmp.Compare(b.Prefix.Bits(), a.Prefix.Bits()), a.Prefix.Addr().Compare(b.Prefix.Addr()), cmp.Compare(a.Link, b.Link))
	})
	n.conn.Store(&out)
}

// connectedOf returns the connected networks of the host's addresses:
// the prefix of each (of its peer's, when it has one), leaving out those
// of scope host (127.0.0.1/8, ::1) and those on lo.
func connectedOf(addrs []netlink.Addr) []Connected {
	var out []Connected
	for _, a := range addrs {
		if a.Scope == unix.RT_SCOPE_HOST || a.LinkIndex == loopbackIndex {
			continue
		}
		ipn := a.IPNet
		if a.Peer != nil {
			ipn = a.Peer
		}
		if ipn == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		ones, bits := ipn.Mask.Size()
		if !ok || bits != len(ipn.IP)*8 {
			continue // not a CIDR mask
		}
		out = append(out, Connected{Prefix: netip.PrefixFrom(ip, ones), Link: a.LinkIndex})
	}
	return out
}

// errNeighDump marks the errors of neighbour dumps.
var errNeighDump = errors.New("neighbour dump")

// relistNeigh dumps the neighbour table and makes the snapshot what it
// lists. A dump the kernel interrupted (the table changed during it) is
// tried again, dumpTries times in all; the last one's partial list is
// then applied without removing anything, and the error returned.
func (n *Neighbours) relistNeigh() error {
	n.listMu.Lock()
	defer n.listMu.Unlock()
	ms, err := retryDump(n.listNeigh)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("%w: %w", errNeighDump, err)
	}
	complete := err == nil
	now := n.now()
	n.mu.Lock()
	if complete {
		seen := make(map[neighKey]struct{}, len(ms))
		for i := range ms {
			if e, ok := neighOf(&ms[i]); ok {
				seen[neighKey{e.Addr, e.Link}] = struct{}{}
			}
		}
		var gone []neighKey
		for a, s := range n.entries {
			for i := -1; i < len(s.more); i++ {
				k := neighKey{a, s.first.Link}
				if i >= 0 {
					k.link = s.more[i].Link
				}
				if _, ok := seen[k]; !ok {
					gone = append(gone, k)
				}
			}
		}
		for _, k := range gone {
			n.del(k)
		}
	}
	for i := range ms {
		if e, ok := neighOf(&ms[i]); ok {
			n.put(e, int64(ms[i].Updated), now)
		}
	}
	n.mu.Unlock()
	if !complete {
		return fmt.Errorf("%w (interrupted %d times: what it listed was taken, nothing removed): %w", errNeighDump, dumpTries, err)
	}
	return nil
}

// retryDump calls dump again while the kernel says it interrupted it (the
// table changed meanwhile: NLM_F_DUMP_INTR), dumpTries times in all, and
// returns the last call's list and error.
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	for try := 1; ; try++ {
		l, err := dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || try >= dumpTries {
			return l, err
		}
	}
}

// relistAddrs reads the host's addresses and makes their prefixes the
// connected networks. A dump the kernel interrupted dumpTries times adds
// what it listed to the networks known, and the error is returned.
func (n *Neighbours) relistAddrs() error {
	n.listMu.Lock()
	defer n.listMu.Unlock()
	as, err := retryDump(n.listAddr)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("address dump: %w", err)
	}
	cs := connectedOf(as)
	if err != nil {
		cs = append(cs, *n.conn.Load()...)
		err = fmt.Errorf("address dump (interrupted %d times: the networks it listed were added): %w", dumpTries, err)
	}
	n.setConnected(cs)
	return err
}

// neighOf returns the entry of an IPv4 or IPv6 neighbour message; false
// for the others (a bridge's or VXLAN's forwarding entries, which come on
// the same subscription, and proxy entries).
func neighOf(m *netlink.Neigh) (Neighbour, bool) {
	if m.Family != netlink.FAMILY_V4 && m.Family != netlink.FAMILY_V6 || m.Flags&netlink.NTF_PROXY != 0 {
		return Neighbour{}, false
	}
	a, ok := netip.AddrFromSlice(m.IP)
	if !ok {
		return Neighbour{}, false
	}
	e := Neighbour{Addr: a.Unmap(), Link: m.LinkIndex, State: NeighState(m.State)}
	if len(m.HardwareAddr) == len(e.MAC) {
		e.MAC, e.HasMAC = [6]byte(m.HardwareAddr), true
	}
	return e, true
}

// apply applies a message of the subscription: an entry made or changed
// (RTM_NEWNEIGH) or deleted (RTM_DELNEIGH).
func (n *Neighbours) apply(u *netlink.NeighUpdate) {
	e, ok := neighOf(&u.Neigh)
	if !ok {
		return
	}
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	switch u.Type {
	case unix.RTM_NEWNEIGH:
		n.put(e, int64(u.Updated), now)
	case unix.RTM_DELNEIGH:
		n.del(neighKey{e.Addr, e.Link})
	}
}

// put records e, whose state began ticks (USER_HZ) before now: its
// Changed is kept when it repeats the entry's state and address, set to
// now less ticks otherwise (kept as given when ticks < 0). A new entry
// past the bound is refused. n.mu is held.
func (n *Neighbours) put(e Neighbour, ticks int64, now time.Time) {
	s, held := n.entries[e.Addr]
	old := &s.first // the entry of the same interface, nil when none
	if !held || s.first.Link != e.Link {
		old = nil
		for i := range s.more {
			if s.more[i].Link == e.Link {
				old = &s.more[i]
			}
		}
	}
	switch {
	case old != nil && old.State == e.State && old.HasMAC == e.HasMAC && old.MAC == e.MAC:
		e.Changed = old.Changed
	case ticks >= 0:
		e.Changed = now.Add(-time.Duration(ticks) * (time.Second / userHZ))
	}
	switch {
	case old != nil:
		*old = e
	case n.count >= n.max:
		n.refused++
		return
	case !held:
		s.first = e
		n.count++
	default:
		s.more = append(s.more, e)
		n.count++
	}
	n.entries[e.Addr] = s
}

// del removes the entry k. n.mu is held.
func (n *Neighbours) del(k neighKey) {
	s, ok := n.entries[k.addr]
	if !ok {
		return
	}
	if s.first.Link == k.link {
		if len(s.more) == 0 {
			delete(n.entries, k.addr)
			n.count--
			return
		}
		s.first = s.more[0]
		s.more = slices.Delete(s.more, 0, 1)
	} else if i := slices.IndexFunc(s.more, func(e Neighbour) bool { return e.Link == k.link }); i >= 0 {
		s.more = slices.Delete(s.more, i, i+1)
	} else {
		return
	}
	if len(s.more) == 0 {
		s.more = nil
	}
	n.entries[k.addr] = s
	n.count--
}

// ByMAC returns the entry whose link-layer address is mac, a resolved one
// before one that is not, then the one changed last: whose frames carry
// mac. It walks the table under a read lock (as many entries as the
// kernel's gc_thresh3 allows, 1024 a family by default): a cost per
// alert, not per packet.
func (n *Neighbours) ByMAC(mac [6]byte) (Neighbour, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	var best Neighbour
	found := false
	consider := func(e *Neighbour) {
		if !e.HasMAC || e.MAC != mac {
			return
		}
		if !found || e.State.Resolved() && !best.State.Resolved() ||
			e.State.Resolved() == best.State.Resolved() && e.Changed.After(best.Changed) {
			best, found = *e, true
		}
	}
	for _, s := range n.entries {
		consider(&s.first)
		for i := range s.more {
			consider(&s.more[i])
		}
	}
	return best, found
}

// Resolve asks the kernel to resolve addr on the interface of the
// connected network it is on (or to confirm the entry it has), as
// `ip neigh replace ADDR dev DEV use` does (NTF_USE): the kernel sends its
// ARP or NDP solicitations, and the entry becomes reachable, which the
// subscription brings, or failed after ucast_solicit+mcast_solicit
// unanswered tries (3 s by default). It needs CAP_NET_ADMIN. It returns
// an error for an address on no connected network.
func (n *Neighbours) Resolve(addr netip.Addr) error {
	a := addr.Unmap().WithZone("")
	link, ok := n.OnLinkIndex(a)
	if !ok {
		return fmt.Errorf("resolving %s: not on a connected network", a)
	}
	family := netlink.FAMILY_V4
	if a.Is6() {
		family = netlink.FAMILY_V6
	}
	err := neighSources.neighUse(&netlink.Neigh{LinkIndex: link, Family: family, IP: a.AsSlice(),
		State: netlink.NUD_PERMANENT, Flags: netlink.NTF_USE})
	if err != nil {
		return fmt.Errorf("resolving %s: %w", a, err)
	}
	return nil
}
