package nftables

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

	nft "github.com/google/nftables"

	"github.com/scanwarden/scanwarden/block"
)

// Options configure a Backend.
type Options struct {
	// NetNS is an open file descriptor of the network namespace to work
	// in; 0 is the namespace of the calling process. The descriptor must
	// stay open as long as the Backend is used.
	NetNS int
	// Table names the inet table the backend owns; "" is DefaultTable.
	Table string
}

// Backend is the nftables block.Blocker and
// block.Trapper: sets with per-element timeouts in one inet table of
// its own, reached over netlink (no nft binary). See the package
// documentation for the table's layout.
//
// Its methods are safe for concurrent use (they are serialised). It never
// touches anything outside its table.
type Backend struct {
	mu    sync.Mutex
	netns int
	table *nft.Table
	// trap is the trap last installed by SetTrap, nil before the first
	// and after Flush: Prepare then leaves the trap's rules and set
	// contents as it finds them.
	trap *block.Trap
	// ready says the table was prepared since the last Flush or failure.
	ready bool
	// sock is Block's netlink socket, kept between blocks (add.go).
	sock *addSock
	// spareOverflows counts the Releases that found the spared set full
	// (SpareOverflows).
	spareOverflows atomic.Uint64
	// spares is Release's account of the spared sets (guarded by mu).
	spares spareBook
}

var (
	_ block.Blocker = (*Backend)(nil)
	_ block.Trapper = (*Backend)(nil)
)

// New returns a Backend for o. It does not touch the kernel: Prepare (or
// the first Block or Sync) creates the table.
func New(o Options) (*Backend, error) {
	if o.NetNS < 0 {
		return nil, fmt.Errorf("nftables: bad network namespace descriptor %d", o.NetNS)
	}
	name := o.Table
	if name == "" {
		name = DefaultTable
	}
	if len(name) > 255 || slices.Contains([]byte(name), 0) {
		return nil, fmt.Errorf("nftables: bad table name %q", name)
	}
	b := &Backend{netns: o.NetNS, table: &nft.Table{Name: name, Family: nft.TableFamilyINet}, sock: &addSock{fd: -1}}
	runtime.AddCleanup(b, func(k *addSock) { k.close() }, b.sock)
	return b, nil
}

// Close releases the socket Block keeps; it changes nothing in the
// kernel. A later Block opens another.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sock.close()
	return nil
}

// Name returns "nftables".
func (b *Backend) Name() string { return "nftables" }

// String names the table the backend works on.
func (b *Backend) String() string { return "nftables: table inet " + b.table.Name }

// Describe says where addr is blocked: "nftables: 198.51.100.66 in set
// inet scanwarden ban4". An IPv4-mapped address is described as the IPv4
// address it is stored as.
func (b *Backend) Describe(addr netip.Addr) string {
	a, f, err := normalize(addr)
	if err != nil {
		return fmt.Sprintf("nftables: %v: %v", addr, err)
	}
	return fmt.Sprintf("nftables: %s in set inet %s %s", a, b.table.Name, f.ban)
}

// opError wraps err with the operation and, when there is one, the address.
func opError(op string, a netip.Addr, err error) error {
	if a.IsValid() {
		return fmt.Errorf("nftables: %s %s: %w", op, a, err)
	}
	return fmt.Errorf("nftables: %s: %w", op, err)
}

// Prepare makes the table exist as documented, so that the first block is
// one netlink message: the table, the sets, the counter, the chains and
// their rules are created when missing, and rebuilt when they are not as
// they must be (an administrator deleted or changed one). Elements of the
// ban, trap and spared sets are never lost: a set that must be rebuilt gets its
// elements back with the time they had left, and sets and rules that are
// right are not touched at all, so that a restart keeps every running
// timeout. A set rebuilt with more elements than one transaction carries
// (msgsPerBatch x elemsPerMsg) gets the rest in the transactions that
// follow.
//
// The trap's own rules and the contents of its port and exemption sets
// are those of the last SetTrap of this Backend; before the first, they
// are left as found (a new daemon calls SetTrap after Prepare), except
// that a trap whose sets had to be rebuilt is off until SetTrap.
//
// A table an earlier version wrote, which dropped the bans in the input
// chain, is made over in the one transaction of the chains and rules: the
// prerouting chain's drops come in as the input chain's go, so that no
// banned or held source is let through meanwhile (see the package
// documentation).
func (b *Backend) Prepare(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ensure(ctx, b.trap); err != nil {
		return opError("prepare", netip.Addr{}, err)
	}
	return nil
}

// prepared runs ensure unless the table was prepared already.
func (b *Backend) prepared(ctx context.Context) error {
	if b.ready {
		return nil
	}
	return b.ensure(ctx, b.trap)
}

// Traits: Prompt, a block is one netlink message (block.Manager.Begin may
// run it on the capture thread).
func (b *Backend) Traits() block.Traits { return block.Traits{Prompt: true} }

// Block makes sure every packet from ban.Addr is dropped: the address is
// added to ban4 or ban6 (an IPv4-mapped address as IPv4) in one netlink
// message, with the timeout ban.Until-now rounded up to whole milliseconds
// and at least a second, or none when Until is zero (or more than a
// century away), so that the kernel lifts it on time by itself. A ban
// whose Until has passed is not added. Blocking an address that is in the
// set already leaves one element (recent kernels take the new timeout,
// older ones keep the old one; Sync corrects it in either case). An
// address the trap holds is added all the same: that is its promotion to a
// ban, with the ban's timeout, whatever becomes of its trap4/trap6 element.
// When the table or set was deleted under the backend, it is prepared
// again and the add retried once.
func (b *Backend) Block(ctx context.Context, ban block.Ban) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, f, err := normalize(ban.Addr)
	if err != nil {
		return opError("block", ban.Addr, err)
	}
	timeout, ok := elemTimeout(ban.Until, time.Now())
	if !ok {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return opError("block", a, err)
	}
	if err := b.prepared(ctx); err != nil {
		return opError("block", a, err)
	}
	add := func() error { return b.add(f.ban, keyOf(a), timeout) }
	err = add()
	if isNotExist(err) {
		b.ready = false
		if err = b.ensure(ctx, b.trap); err == nil {
			err = add()
		}
	}
	if err != nil {
		if errors.Is(err, errFull) {
			err = fmt.Errorf("set %s is full (%d elements): %w", f.ban, banSetSize, err)
		}
		return opError("block", a, err)
	}
	return nil
}

// Unblock makes sure the backend drops nothing from addr, and gives it a
// clean slate: the address is removed from its family's ban set, trap set
// and spared set (an unblocked address is trapped again on its next first
// hit). An address in none of them, and a table or set that does not
// exist, are no error.
func (b *Backend) Unblock(ctx context.Context, addr netip.Addr) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, f, err := normalize(addr)
	if err != nil {
		return opError("unblock", addr, err)
	}
	for _, s := range []setSpec{{name: f.ban, kind: kindBan, key: f.key}, {name: f.trap, kind: kindTrap, key: f.key},
		{name: f.spared, kind: kindSpared, key: f.key}} {
		if err := ctx.Err(); err != nil {
			return opError("unblock", a, err)
		}
		c, err := b.conn()
		if err != nil {
			return opError("unblock", a, err)
		}
		if err := c.SetDeleteElements(ref(b.table, s), []nft.SetElement{{Key: keyOf(a)}}); err != nil {
			return opError("unblock", a, err)
		}
		// One element per transaction: ENOENT (not in the set, or no
		// set or table) then means exactly "nothing to remove".
		if err := c.Flush(); err != nil && !isNotExist(err) {
			return opError("unblock", a, fmt.Errorf("set %s: %w", s.name, err))
		}
	}
	b.spares.forget(a)
	return nil
}

// List returns the addresses blocked now, as the kernel has them: the
// union of the ban and trap sets of both families, each address once,
// sorted (IPv4 first), without elements that have expired. The spared
// sets are not read: a spared address is not blocked. No table is no
// address.
func (b *Backend) List(ctx context.Context) ([]netip.Addr, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, err := b.conn()
	if err != nil {
		return nil, opError("list", netip.Addr{}, err)
	}
	ok, err := b.tableExists(c)
	if err != nil {
		return nil, opError("list", netip.Addr{}, err)
	}
	if !ok {
		return nil, nil
	}
	sets, err := c.GetSets(b.table)
	if err != nil {
		return nil, opError("list", netip.Addr{}, err)
	}
	have := map[string]bool{}
	for _, s := range sets {
		have[s.Name] = true
	}
	seen := map[netip.Addr]bool{}
	for _, name := range []string{setBan4, setBan6, setTrap4, setTrap6} {
		if err := ctx.Err(); err != nil {
			return nil, opError("list", netip.Addr{}, err)
		}
		if !have[name] {
			continue
		}
		es, err := b.elements(name)
		if err != nil {
			return nil, opError("list", netip.Addr{}, err)
		}
		for a := range elemsByAddr(es) {
			seen[a] = true
		}
	}
	return slices.SortedFunc(maps.Keys(seen), netip.Addr.Compare), nil
}

// Flush deletes the backend's table, with every set, element, chain, rule
// and the counter in it; a table that does not exist is no error. Nothing
// outside the table is touched.
func (b *Backend) Flush(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return opError("flush", netip.Addr{}, err)
	}
	b.ready, b.trap = false, nil
	b.spares.reset()
	c, err := b.conn()
	if err != nil {
		return opError("flush", netip.Addr{}, err)
	}
	c.DelTable(b.table)
	if err := c.Flush(); err != nil && !isNotExist(err) {
		return opError("flush", netip.Addr{}, err)
	}
	return nil
}
