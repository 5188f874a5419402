package detect

import (
	"net/netip"
	"slices"
)

// What the engine knows of the services of the hosts it protects.
//
// The trap ports of the host the daemon runs on leave out the ports its
// services have bound (the daemon reads them: SetTraps, SetOwn). Of any
// other protected host (behind a router, with HOME_NETWORKS; every host of
// a replayed capture) nothing is bound that the engine could read, so a
// client of a real service on a watched port (IMAP on tcp/143) would look
// like a trap hit. For those hosts the traffic tells instead: a host that
// answers on a port (SYN-ACK, a UDP reply) runs a service there.
//
//   - A SYN or a datagram to a trap port of such a host awaits the host's
//     answer (bitAwait): closed (RST, ICMP unreachable) makes it a trap
//     hit at once; open (SYN-ACK, UDP reply) makes it an ordinary
//     connection, and the port is remembered as a service; no answer
//     within trapAnswerWait makes it a trap hit, counted at the source's
//     next packet. A probe of the port repeated after that is a trap hit
//     at once; a retransmission during the wait is none.
//   - A SYN or datagram to a port remembered as a service of its host is
//     no trap hit.
//   - Probes no client sends (FIN, NULL, XMAS, odd flags) never wait: one
//     to a trap port is a trap hit whatever answers there.
//
// A scanner gains nothing it would not see anyway: a port that answers is
// open to it already, and a closed answer makes the hit count on the spot.

// svcTable remembers (host, protocol, port) triples that answered as a
// service. It is direct-mapped and allocated once: a collision forgets a
// service, which only makes its next client wait for the answer again.
type svcTable struct {
	slots []svcSlot
}

type svcSlot struct {
	key uint64 // 0: empty
	ts  int64  // when the service last answered
}

func newSvcTable() svcTable { return svcTable{slots: make([]svcSlot, serviceSlots)} }

// svcKey packs a target's host hash, protocol and port, with a marker bit
// so that no key is 0.
func svcKey(dsth uint32, proto uint8, port uint16) uint64 {
	return 1<<56 | uint64(dsth)<<24 | uint64(proto)<<16 | uint64(port)
}

func (t *svcTable) slot(k uint64) *svcSlot {
	x := k * 0x9e3779b97f4a7c15 // the host hash is seeded: a multiply spreads it
	return &t.slots[x>>32&uint64(len(t.slots)-1)]
}

// learn records that the host answered on port at ts.
func (t *svcTable) learn(dsth uint32, proto uint8, port uint16, ts int64) {
	k := svcKey(dsth, proto, port)
	*t.slot(k) = svcSlot{key: k, ts: ts}
}

// forget drops a service whose port answered closed.
func (t *svcTable) forget(dsth uint32, proto uint8, port uint16) {
	k := svcKey(dsth, proto, port)
	if s := t.slot(k); s.key == k {
		*s = svcSlot{}
	}
}

// has reports whether the port answered as a service within serviceLife
// before ts.
func (t *svcTable) has(dsth uint32, proto uint8, port uint16, ts int64) bool {
	k := svcKey(dsth, proto, port)
	s := t.slot(k)
	return s.key == k && ts-s.ts <= int64(serviceLife)
}

// ownSet is the sorted set of the addresses whose bound ports the trap
// sets already leave out (the host's own, see Engine.SetOwn).
type ownSet []Addr

func newOwnSet(addrs []netip.Addr) ownSet {
	s := make(ownSet, 0, len(addrs))
	for _, a := range addrs {
		if a.IsValid() {
			s = append(s, AddrOf(a))
		}
	}
	slices.SortFunc(s, Addr.compare)
	return slices.Compact(s)
}

func (s ownSet) has(a Addr) bool {
	if len(s) == 0 {
		return false
	}
	_, ok := slices.BinarySearchFunc(s, a, Addr.compare)
	return ok
}

// SetOwn tells the engine which destination addresses are the host's own:
// their trap ports (SetTraps) already leave out every port a service has
// bound, so a probe to one of them is a trap hit at once. A probe to a trap
// port of any other protected address waits for that host's answer (see
// the comment at the top of services.go). Without SetOwn (replay) every
// destination is such another host. Like Process, it must be called from
// the goroutine that feeds the engine; it allocates.
func (e *Engine) SetOwn(addrs []netip.Addr) { e.own = newOwnSet(addrs) }

// settle resolves the awaiting trap hit of target t on the host's answer:
// open makes it an ordinary connection to a service (remembered), closed a
// trap hit now. It reports whether a trap hit was counted.
func (e *Engine) settle(s *source, t *target, open bool, ts int64) bool {
	if open {
		e.svcs.learn(t.dsth, t.proto, t.port, ts)
	} else if t.st&stMask == stUnanswered {
		e.svcs.forget(t.dsth, t.proto, t.port)
	}
	if t.st&bitAwait == 0 {
		return false
	}
	s.awaiting--
	if open {
		s.set(t, t.st&^(bitAwait|bitTrap))
		return false
	}
	s.set(t, t.st&^bitAwait)
	e.trapHit(s, ts)
	return true
}

// overdue turns the awaiting trap hits of s that have had no answer for
// trapAnswerWait into trap hits, at packet time now.
func (e *Engine) overdue(s *source, now int64) {
	if s.awaiting == 0 || now-s.awaitFirst < int64(trapAnswerWait) {
		return
	}
	first, waiting := int64(0), false // (not 0 for none: a packet's time may be 0)
	for i := range s.targets[:s.ntargets] {
		t := &s.targets[i]
		if t.st&bitAwait == 0 {
			continue
		}
		if now-t.ts >= int64(trapAnswerWait) {
			s.awaiting--
			s.set(t, t.st&^bitAwait)
			e.trapHit(s, t.ts+int64(trapAnswerWait))
			continue
		}
		if !waiting || t.ts < first {
			first, waiting = t.ts, true
		}
	}
	s.awaitFirst = first
	if !waiting {
		s.awaiting = 0 // targets that left the window took their wait along
	}
}

// trapHit counts one trap hit of s at ts, within SCAN_TRIGGER's window.
func (e *Engine) trapHit(s *source, ts int64) {
	if s.trapHits == 0 || ts-s.trapFirst > e.window {
		s.trapHits, s.trapFirst = 0, ts
	}
	s.trapHits++
}
