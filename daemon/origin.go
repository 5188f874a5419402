package daemon

// Whether an alert's source is real (detect.Origins.Judge) against the
// kernel's neighbour table and routes, and the alerts that wait for the
// kernel to resolve their source on the link.

import (
	"context"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/host"
)

const (
	// resolveWait is how long an alert whose on-link source has no
	// neighbour entry waits for the kernel to resolve it (host.Resolve):
	// a real host answers ARP or NDP within milliseconds; an address
	// nobody holds fails after the kernel's solicitations (3 s by
	// default: mcast_solicit 3, retrans_time 1 s). Past it the source is
	// taken as forged. It is below TRAP_HOLD's default (5 s), so that the
	// kernel trap still holds such a source when the verdict comes.
	resolveWait = 4 * time.Second
	// resolvePoll is how often the waiting alerts look at the neighbour
	// table again (a map lookup each), and resolvePollFast how often while
	// one of them has waited less than resolveFast. A real neighbour is
	// usually in the table within a millisecond (the router of a scan
	// through it resolved the scanner to forward its answers, the event
	// only had to reach us), and every millisecond of waiting is some 25
	// probes of an nmap scan answered; past resolveFast the source is
	// being resolved by ARP/NDP retries, seconds apart.
	resolvePoll     = 20 * time.Millisecond
	resolvePollFast = time.Millisecond
	resolveFast     = 50 * time.Millisecond
	// waitingMax bounds the alerts waiting for a resolution: a flood of
	// forged on-link sources with no neighbour entry fills it; past it an
	// alert is not blocked (it could not be checked) and its source is
	// forgotten by the engine, so that a real scanner that goes on
	// probing is judged again (a real one nearly always has an entry:
	// it resolved us).
	waitingMax = 256
)

// linkView is the daemon's detect.Neighbourhood: the kernel's neighbour
// table, followed by subscription, and the next hops of its routes. Safe
// for concurrent use; a nil neighbour table knows nothing (every source
// then judged by hop counts and the decoy pattern alone).
type linkView struct {
	n      *host.Neighbours
	routes atomic.Pointer[host.Routes]
}

// Neighbour says what the kernel knows of addr on the link.
func (v *linkView) Neighbour(addr netip.Addr) detect.NeighInfo {
	if v == nil || v.n == nil {
		return detect.NeighInfo{}
	}
	ni := detect.NeighInfo{OnLink: v.n.OnLink(addr) && !v.routes.Load().Routed(addr)}
	if e, ok := v.n.Lookup(addr); ok {
		switch {
		case e.State.Resolved() && e.HasMAC:
			ni.State, ni.MAC = detect.NeighBound, e.MAC
		case e.State == host.NeighFailed:
			ni.State = detect.NeighFailed
		}
	}
	return ni
}

// Owner says whose MAC mac is, and whether that neighbour is a next hop
// of one of the host's routes.
func (v *linkView) Owner(mac [6]byte) (netip.Addr, bool, bool) {
	if v == nil || v.n == nil {
		return netip.Addr{}, false, false
	}
	e, ok := v.n.ByMAC(mac)
	if !ok || !e.State.Resolved() {
		return netip.Addr{}, false, false
	}
	_, router := v.routes.Load().Next[e.Addr]
	return e.Addr, router, true
}

// readRoutes reads the routes again: their next hops, and the prefixes
// within connected networks that they route elsewhere.
func (v *linkView) readRoutes(log logrus.FieldLogger) {
	r, err := host.ReadRoutes(v.n.Connected())
	if err != nil {
		log.Warnf("reading the routes (routers, routed prefixes): %v", err)
	}
	v.routes.Store(&r)
}

// startLinkView follows the kernel's neighbour table and routes until ctx
// ends. Without them (no netlink), forged sources are still told by hop
// counts and the decoy pattern, and the daemon says so.
func (d *daemon) startLinkView(ctx context.Context) {
	v := &linkView{}
	v.routes.Store(&host.Routes{})
	d.link = v
	n, err := host.WatchNeighbours(ctx, func(err error) { d.log.Warnf("neighbour table: %v", err) })
	if err != nil {
		d.log.Errorf("not following the neighbour table (%v): sources on the link are judged by hop counts and decoy patterns only", err)
		return
	}
	v.n = n
	v.readRoutes(d.log)
	if err := host.Watch(ctx, func() { v.readRoutes(d.log) }, func(err error) { d.log.Warnf("routes: %v", err) }); err != nil {
		d.log.Warnf("not following route changes (routers read once): %v", err)
	}
}

// judge gives a its verdict on the capture thread: a Pending one goes to
// resolveLoop and is not handed off here (past waitingMax waiting, counted
// until resolveLoop hands them off, it is not blocked: Forged, for want
// of a check); it reports whether a is to be handed off now.
func (d *daemon) judge(org *detect.Origins, a *detect.Alert) bool {
	if d.isNever(a.Src) {
		return true // never blocked whatever the evidence (the host's own addresses among them)
	}
	a.Origin = org.Judge(a, d.link)
	if a.Origin.Verdict != detect.Pending {
		return true
	}
	// at most cap(d.waits) wait, in the channel or in resolveLoop's list
	if d.waiting.Add(1) > int32(cap(d.waits)) {
		d.waiting.Add(-1)
		a.Origin = detect.Judgement{Verdict: detect.Forged,
			Evidence: "not checked: too many sources were being resolved on the link (a flood of forged ones); judged again if it goes on probing"}
		return true // and forgotten by the engine, as every forged one
	}
	d.waits <- a // never blocks: the count keeps it from filling
	return false
}

// waiting is an alert waiting for its source's resolution.
type waiting struct {
	a     *detect.Alert
	since time.Time // when it began to wait
	until time.Time
}

// resolveLoop asks the kernel to resolve the sources of the alerts judge
// put aside and hands each off once its verdict is in (or resolveWait has
// passed: forged), until ctx ends.
func (d *daemon) resolveLoop(ctx context.Context) {
	var list []waiting
	var tick *time.Ticker
	var tc <-chan time.Time
	var period time.Duration
	defer func() {
		if tick != nil {
			tick.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-d.waits:
			if d.link.n != nil {
				if err := d.link.n.Resolve(a.Src); err != nil {
					d.log.Warnf("%v", err)
				}
			}
			now := time.Now()
			list = append(list, waiting{a: a, since: now, until: now.Add(resolveWait)})
			if tick == nil {
				tick = time.NewTicker(resolvePollFast)
				tc = tick.C
			} else if period != resolvePollFast {
				tick.Reset(resolvePollFast)
			}
			period = resolvePollFast
		case now := <-tc:
			list = d.settle(ctx, list, now)
			if len(list) == 0 {
				tick.Stop()
				tick, tc = nil, nil
				continue
			}
			if p := pollPeriod(list, now); p != period {
				tick.Reset(p)
				period = p
			}
		}
	}
}

// pollPeriod is how often the waiting alerts (in the order they came,
// which settle keeps) are looked at: fast while the newest is young (see
// resolvePollFast).
func pollPeriod(list []waiting, now time.Time) time.Duration {
	if len(list) > 0 && now.Sub(list[len(list)-1].since) < resolveFast {
		return resolvePollFast
	}
	return resolvePoll
}

// settle hands off the waiting alerts whose verdict is in, and returns
// the others.
func (d *daemon) settle(ctx context.Context, list []waiting, now time.Time) []waiting {
	keep := list[:0]
	for _, w := range list {
		j := detect.JudgeResolved(w.a, d.link)
		if j.Verdict == detect.Pending {
			if now.Before(w.until) {
				keep = append(keep, w)
				continue
			}
			j = detect.Unresolved(w.a, d.link, resolveWait.String())
		}
		w.a.Origin = j
		if j.Verdict == detect.Forged {
			// as the capture loop does for the verdicts it gives
			d.tellEngines(rearmReq{src: w.a.Src, forget: true})
		}
		d.handOff(ctx, w.a, d.rearmQueued)
		d.waiting.Add(-1)
	}
	clear(list[len(keep):])
	return keep
}

// rearmQueued asks the capture loops to re-arm src, as handOff does on
// the capture thread with the engine's own Rearm (the resolver does not
// own an engine).
func (d *daemon) rearmQueued(src netip.Addr, at int64, onNew bool) {
	d.tellEngines(rearmReq{src: src, at: at, onNew: onNew})
}

// releaseForged lets addr, judged forged, out of the kernel trap at once
// (it holds it provisionally for TRAP_HOLD otherwise), and spares it from
// the trap for block.SpareFor, so that decoys cannot keep it trapped. A ban
// it has for another reason stays: Release touches the trap's sets only.
func (d *daemon) releaseForged(ctx context.Context, m *block.Manager, addr netip.Addr) {
	t := m.Trapper()
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, trapCallTimeout)
	defer cancel()
	if err := t.Release(ctx, addr); err != nil {
		d.log.Warnf("releasing %s, judged forged, from the kernel trap: %v (it leaves when its hold ends)", addr, err)
	}
}

// isNever reports whether addr is on the current never-block list (false
// before the start has built one).
func (d *daemon) isNever(addr netip.Addr) bool {
	d.mu.Lock()
	p := d.parts
	d.mu.Unlock()
	return p != nil && p.never.Reason(addr) != ""
}
