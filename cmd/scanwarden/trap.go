package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/detect"
)

// releaseQueue bounds the sources waiting to be let out of the kernel trap
// because the port they hit turned out to be a service's: such hits are
// rare, and a burst beyond this is caught by the next refresh's
// exemption-free trap anyway (their bans expire, and unblock lifts them).
const releaseQueue = 64

// trapFor returns the kernel trap that c asks for in the daemon's modes,
// over the trap ports of t and the never-block list, or a disabled trap and
// why there is none.
// A trap that is off still carries the exemptions and the size: a backend
// is given it to remove the rules an earlier run may have left.
func trapFor(c *conf.Config, m modeSet, t *traps, never *block.NeverBlock) (block.Trap, string) {
	tr := block.Trap{TimeoutTCP: c.BanExpiryTCP, TimeoutUDP: c.BanExpiryUDP, Size: c.TrapSetSize}
	tr.Exempt = never.Prefixes()
	switch {
	case !c.KernelTrap:
		return tr, "KERNEL_TRAP is 0"
	case !c.BlockBackend.HasSets():
		return tr, fmt.Sprintf("BLOCK_BACKEND %q has no kernel sets", c.BlockBackend)
	case c.TriggerHits() != 1:
		return tr, fmt.Sprintf("SCAN_TRIGGER is %d: the kernel only reacts on a first hit", c.ScanTrigger)
	}
	if m.tcp && c.BlockTCP == conf.BlockAct {
		tr.TCP = setPorts(t.tcp)
	}
	if m.udp && c.BlockUDP == conf.BlockAct {
		tr.UDP = setPorts(t.udp)
	}
	if !tr.Enabled() {
		return tr, "no trap port is blocked on the first hit (BLOCK_TCP/BLOCK_UDP, modes, bound ports)"
	}
	return tr, ""
}

// setPorts returns the ports of s in ascending order.
func setPorts(s *detect.PortSet) []uint16 {
	var out []uint16
	for p := 0; p < 65536; p++ {
		if s.Has(uint16(p)) {
			out = append(out, uint16(p))
		}
	}
	return out
}

// sameTrap reports whether a and b would put the same rules in place.
func sameTrap(a, b *block.Trap) bool {
	return slices.Equal(a.TCP, b.TCP) && slices.Equal(a.UDP, b.UDP) && slices.Equal(a.Exempt, b.Exempt) &&
		a.TimeoutTCP == b.TimeoutTCP && a.TimeoutUDP == b.TimeoutUDP && a.Size == b.Size
}

// kernelTrap keeps the backend's kernel trap in line with the config, the
// trap ports and the never-block list. Only the daemon's housekeeping
// goroutine calls update and checkOverflow; trapped is safe anywhere.
type kernelTrap struct {
	log     logrus.FieldLogger
	backend block.Trapper // nil: no set backend
	why     string        // why the trap is off, as last logged
	seen    uint64        // overflows already reported
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
		k.log.Warnf("adminalert: kernel trap set: the first probe to any of %d TCP and %d UDP trap ports blocks its source in the kernel (at most %d trapped sources per family, %d never-block exemptions)",
			len(want.TCP), len(want.UDP), want.Size, len(want.Exempt))
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
		k.log.Warnf("adminalert: the kernel trap set is full (TRAP_SET_SIZE=%d): %d first hits since the last check were dropped without trapping their source; userspace detection still blocks real scanners (BLOCK_RATE_LIMIT applies)",
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
