package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/host"
	"github.com/scanwarden/scanwarden/metrics"
)

// releaseQueue bounds the sources waiting to be let out of the kernel trap
// because the port they hit turned out to be a service's: such hits are
// rare, and a burst beyond this is caught by the next refresh's
// exemption-free trap anyway (their bans expire, and unblock lifts them).
const releaseQueue = 64

// TrapPlan returns the kernel trap that c asks for in the default stealth
// modes over all of its trap ports, or a disabled trap and why there is
// none: what check-config reports, before bound ports are known.
func TrapPlan(c *conf.Config) (block.Trap, string) {
	all := &traps{tcp: &c.TCPPorts, udp: &c.UDPPorts}
	return trapFor(c, Modes{TCP: true, UDP: true}, all, block.NewNeverBlock(nil))
}

// trapFor returns the kernel trap that c asks for in the daemon's modes,
// over the trap ports of t and the never-block list, or a disabled trap and
// why there is none. The trap is provisional: it holds a first hit's
// source for TRAP_HOLD, in a set of TRAP_SET_SIZE entries at most, while
// the daemon promotes it to a ban (BAN_EXPIRY_TCP/_UDP) or releases it.
// A trap that is off still carries the exemptions, the hold and the size:
// a backend is given it to remove the rules an earlier run may have left.
func trapFor(c *conf.Config, m Modes, t *traps, never *block.NeverBlock) (block.Trap, string) {
	tr := block.Trap{Hold: c.TrapHold, Size: c.TrapSetSize}
	tr.Exempt = never.Prefixes()
	switch {
	case !c.KernelTrap:
		return tr, "KERNEL_TRAP is 0"
	case !c.BlockBackend.HasSets():
		return tr, fmt.Sprintf("BLOCK_BACKEND %q has no kernel sets", c.BlockBackend)
	case c.TriggerHits() != 1:
		return tr, fmt.Sprintf("SCAN_TRIGGER is %d: the kernel only reacts on a first hit", c.ScanTrigger)
	}
	if m.TCP && c.BlockTCP == conf.BlockAct {
		tr.TCP = t.tcp.Ports()
	}
	if m.UDP && c.BlockUDP == conf.BlockAct {
		tr.UDP = t.udp.Ports()
	}
	if !tr.Enabled() {
		return tr, "no trap port is blocked on the first hit (BLOCK_TCP/BLOCK_UDP, modes, bound ports)"
	}
	return tr, ""
}

// sameTrap reports whether a and b would put the same rules in place.
func sameTrap(a, b *block.Trap) bool {
	return slices.Equal(a.TCP, b.TCP) && slices.Equal(a.UDP, b.UDP) && slices.Equal(a.Exempt, b.Exempt) &&
		a.Hold == b.Hold && a.Size == b.Size
}

// kernelTrap keeps the backend's kernel trap in line with the config, the
// trap ports and the never-block list. Only the daemon's housekeeping
// goroutine calls update and checkOverflow; trapped is safe anywhere.
type kernelTrap struct {
	log     logrus.FieldLogger
	backend block.Trapper // nil: no set backend
	why     string        // why the trap is off, as last logged
	seen    uint64        // overflows already reported
	metrics *metrics.Metrics
	// live is the trap the backend has, nil when unknown (none applied
	// yet, or the last SetTrap failed).
	live atomic.Pointer[block.Trap]
}

// update installs the trap c asks for when it differs from what is in
// place, or when the backend changed (a reload builds new backends).
func (k *kernelTrap) update(ctx context.Context, backend block.Trapper, want block.Trap, why string) {
	if backend != k.backend {
		k.backend, k.seen = backend, 0
		k.live.Store(nil)
	}
	if k.backend == nil {
		return
	}
	cur := k.live.Load()
	if cur != nil && sameTrap(&want, cur) {
		return
	}
	if err := k.backend.SetTrap(ctx, want); err != nil {
		k.live.Store(nil)
		k.log.Errorf("kernel trap: %v (userspace detection and blocking go on; retrying)", err)
		return
	}
	var was block.Trap
	if cur != nil {
		was = *cur
	}
	k.live.Store(&want)
	switch {
	case want.Enabled() && (!was.Enabled() || len(was.TCP) != len(want.TCP) || len(was.UDP) != len(want.UDP) || was.Size != want.Size):
		k.log.Warnf("adminalert: kernel trap set: the first probe to any of %d TCP and %d UDP trap ports holds its source in the kernel for %v, until scanwarden promotes it to a ban or releases it (at most %d sources held at once per family, TRAP_SET_SIZE; %d never-block exemptions)",
			len(want.TCP), len(want.UDP), want.Hold, want.Size, len(want.Exempt))
	case want.Enabled():
		k.log.Infof("kernel trap updated: %d TCP and %d UDP trap ports, %d never-block exemptions", len(want.TCP), len(want.UDP), len(want.Exempt))
	case why != k.why:
		k.log.Infof("kernel trap off: %s", why)
	}
	k.why = why
}

// checkOverflow logs when first hits found the trap set full since the
// last check.
func (k *kernelTrap) checkOverflow(ctx context.Context) {
	t := k.live.Load()
	if k.backend == nil || t == nil || !t.Enabled() {
		return
	}
	n, err := k.backend.TrapOverflows(ctx)
	if err != nil {
		k.log.Warnf("kernel trap: reading its overflow counter: %v", err)
		return
	}
	if n > k.seen {
		k.metrics.KernelTrapOverflows(n - k.seen)
		k.log.Warnf("adminalert: the kernel trap set is full (TRAP_SET_SIZE=%d sources held at once): %d first hits since the last check were dropped without holding their source; scanwarden still judges each of them and blocks real scanners (BLOCK_RATE_LIMIT applies)",
			t.Size, n-k.seen)
	}
	k.seen = n
}

// trapped reports whether the kernel trap blocked the alert's source
// itself, on its hit of a trap port: the alert then only records a block
// already in place.
func (k *kernelTrap) trapped(a *detect.Alert, never *block.NeverBlock) bool {
	t := k.live.Load()
	if t == nil || a.Trigger != detect.TriggerTrap ||
		a.Type == detect.TypeACK || a.Type == detect.TypeMaimon || // the kernel traps no segment with ACK set
		never.Reason(a.Src) != "" {
		return false
	}
	ports := t.TCP
	if a.Proto == detect.ProtoUDP {
		ports = t.UDP
	}
	_, found := slices.BinarySearch(ports, a.Port)
	return found
}

// release lets addr out of the kernel trap after its hit turned out to be
// on a port a service had just bound: it is no scanner.
func release(ctx context.Context, m *block.Manager, addr netip.Addr, log logrus.FieldLogger) {
	bans, err := m.List()
	if err != nil {
		log.Warnf("releasing %s from the kernel trap: %v", addr, err)
		return
	}
	for _, b := range bans {
		if b.Addr == addr {
			return // banned for another reason: keep it
		}
	}
	if _, err := m.Unblock(ctx, addr); err != nil {
		log.Warnf("releasing %s from the kernel trap: %v", addr, err)
		return
	}
	log.Infof("released %s from the kernel trap: the port it hit is a service's now", addr)
}

// traps are the watched ports, replaced as a whole when they change; gen
// tells the capture loops to pick up a new set.
type traps struct {
	tcp, udp *detect.PortSet
	// own are the host's addresses, whose bound ports tcp and udp leave
	// out (detect.Engine.SetOwn), sorted.
	own []netip.Addr
	gen uint64
}

// computeTraps returns the watched ports of c in the daemon's modes, less
// the ports services have bound and the classic ports scanwarden has bound
// itself (their listeners are the traps there).
func (d *daemon) computeTraps(c *conf.Config, gen uint64) (*traps, error) {
	btcp, budp, err := host.BoundBoth(d.bound)
	otcp, oudp := d.classic.Owned()
	btcp, budp = *btcp.Union(&otcp), *budp.Union(&oudp)
	t := trapPorts(c, d.modes, &btcp, &budp, gen)
	own, aerr := host.InterfaceAddrs()
	if aerr != nil {
		aerr = fmt.Errorf("reading the host's addresses: %w", aerr)
	}
	slices.SortFunc(own, netip.Addr.Compare)
	t.own = own
	return t, errors.Join(err, aerr)
}

// trapPorts returns the watched ports of c in modes m, less the bound
// ones.
func trapPorts(c *conf.Config, m Modes, btcp, budp *detect.PortSet, gen uint64) *traps {
	pick := func(on, adv bool, list *detect.PortSet, advSet *detect.PortSet, bound *detect.PortSet) *detect.PortSet {
		switch {
		case !on:
			return &detect.PortSet{}
		case adv:
			return advSet.Minus(bound)
		}
		return list.Minus(bound)
	}
	return &traps{
		gen: gen,
		tcp: pick(m.TCP, m.AdvTCP, &c.TCPPorts, c.AdvancedWatchTCP(), btcp),
		udp: pick(m.UDP, m.AdvUDP, &c.UDPPorts, c.AdvancedWatchUDP(), budp),
	}
}

// askRefresh asks the housekeeping loop to read the bound ports again
// and publish the trap set (refreshTraps), without waiting: a request
// already pending covers this one.
func (d *daemon) askRefresh() {
	select {
	case d.refresh <- struct{}{}:
	default:
	}
}

// refreshTraps re-reads the bound ports and publishes a new trap set when
// they changed. It runs from several goroutines (the housekeeping loop, a
// capture loop on a trap hit): a set is published only over the one it was
// computed from (CompareAndSwap), else computed again, so that no two
// different sets carry the same generation (a capture loop that took one
// would never take the other) and the last read of the ports wins.
func (d *daemon) refreshTraps() {
	for {
		d.mu.Lock()
		c := d.cfg // again each time: a reload may be what came meanwhile
		d.mu.Unlock()
		old := d.traps.Load()
		t, err := d.computeTraps(c, old.gen+1)
		if err != nil {
			d.log.Warnf("reading bound ports: %v", err)
			return
		}
		if *t.tcp == *old.tcp && *t.udp == *old.udp && slices.Equal(t.own, old.own) {
			if d.traps.Load() == old {
				return
			}
			continue // another set came meanwhile: ours is the newer read
		}
		if d.traps.CompareAndSwap(old, t) {
			return
		}
	}
}

// applyTrap brings the kernel trap in line with the config, the trap ports
// and the never-block list (housekeeping loop only).
func (d *daemon) applyTrap(ctx context.Context) {
	d.mu.Lock()
	c, m, never := d.cfg, d.parts.mgr, d.parts.never
	d.mu.Unlock()
	want, why := trapFor(c, d.modes, d.traps.Load(), never)
	d.trap.update(ctx, m.Trapper(), want, why)
}

// removeTrap takes the kernel trap out at exit: without the daemon,
// trapped sources would be neither recorded nor written to hosts.deny.
// The bans themselves stay.
func (d *daemon) removeTrap() {
	d.mu.Lock()
	c, m, never := d.cfg, d.parts.mgr, d.parts.never
	d.mu.Unlock()
	off, _ := trapFor(c, d.modes, d.traps.Load(), never)
	off.TCP, off.UDP = nil, nil
	ctx, cancel := context.WithTimeout(context.Background(), trapCallTimeout)
	defer cancel()
	d.trap.update(ctx, m.Trapper(), off, "scanwarden stopped")
}
