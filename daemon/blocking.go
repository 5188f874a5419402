package daemon

// The hand-off of alerts from where they are raised (a capture thread, a
// classic handler) to the blocking thread, and the blocking thread.

import (
	"context"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/host"
	"github.com/scanwarden/scanwarden/metrics"
)

// blockLoop is the blocking thread: it finishes the alerts the capture
// threads and the classic handlers queue, in order, and lets sources out
// of the kernel trap, until the alert queue is closed.
func (d *daemon) blockLoop(ctx context.Context) {
	rt := d.rt.thread("the blocking thread")
	for {
		select {
		case it, ok := <-d.alerts:
			if !ok {
				return
			}
			if a := it.a; it.refused {
				d.metrics.Decision(metrics.Repeated)
				if !d.fold.refusedQuiet(a.Src) {
					d.log.WithField("src", a.Src.String()).Infof("%s: %s scan (%s) not reported again: its alert of this window is in", a.Src, a.Type, a.Trigger)
				}
				continue
			}
			d.blockingBusy.Store(time.Now().UnixNano())
			d.handle(ctx, it)
			d.blockingBusy.Store(0)
			rt.check()
		case addr := <-d.releases:
			d.withManager(func(m *block.Manager) { release(ctx, m, addr, d.log) })
		}
	}
}

// serviceHas reports whether a service has bound port of proto (a socket
// of d.bound that is not one of the classic mode's own listeners, which
// are traps): the check between a trap hit and its block, from a view of
// proto's sockets at most boundFresh old (boundCache).
func (d *daemon) serviceHas(proto uint8, port uint16) (bool, error) {
	bound, err := d.boundNow.has(proto, port)
	if err != nil || !bound {
		return false, err
	}
	return !d.classic.Owns(proto, port), nil
}

// alertItem is an alert on its way to the blocking thread: begun on the
// capture thread (p, block.Manager.Begin: the firewall block done, the
// rest for p.Finish), or to be decided there.
type alertItem struct {
	a *detect.Alert
	p *block.Pending
	// raised is when the alert was raised (wall clock).
	raised time.Time
	// refused: alertOnce said no (the source's alert of this window is
	// in, from the capture or a classic port).
	refused bool
	// parts are the config's parts the alert was begun with (nil when it
	// was raised before the start was done), held until it is finished.
	parts *parts
}

// begin does, where the alert is raised (a capture thread, a classic
// port's handler), the part of the decision that puts the firewall rule in
// place (block.Manager.Begin), when it can do so without waiting, so that
// no hand-over to the blocking thread delays the block; everything else is
// the blocking thread's.
func (d *daemon) begin(ctx context.Context, a *detect.Alert) alertItem {
	it := alertItem{a: a, raised: time.Now()}
	if !d.once.admit(a.Src, it.raised.UnixNano()) {
		it.refused = true
		return it
	}
	if it.parts = d.acquire(); it.parts != nil { // nil: a classic port's hit before the start is done
		it.p = it.parts.mgr.Begin(ctx, a, d.modes.Name(a.Type.Proto()))
	}
	return it
}

// handle finishes a begun alert (or passes it to the block manager) and
// logs the decision.
func (d *daemon) handle(ctx context.Context, it alertItem) {
	a, pt := it.a, it.parts
	if pt == nil {
		pt = d.acquire()
	}
	defer pt.users.Done()
	kernel := d.trap.trapped(a, pt.never)
	var dec block.Decision
	var err error
	if it.p != nil {
		dec, err = it.p.Finish(ctx)
	} else {
		dec, err = pt.mgr.Decide(ctx, a, d.modes.Name(a.Type.Proto()))
	}
	out := dec.Outcome
	d.fold.note(a.Src, dec)
	d.metrics.Decision(outcomeLabel(dec))
	first := time.Unix(0, a.First)
	took := msSince(first, time.Now()) // the decision done: records written
	ruleMs := took
	if !dec.RuleAt.IsZero() {
		ruleMs = msSince(first, dec.RuleAt)
	}
	log := d.log.WithFields(logrus.Fields{
		"src": a.Src.String(), "type": a.Type.String(), "probes": a.Probes, "score": a.Score,
		"trigger": a.Trigger.String(), "port": a.Port, "first_probe": detect.FormatTime(a.First),
		"outcome": out.String(),
	})
	if o := a.Origin; o.Verdict != detect.Unjudged {
		log = log.WithField("origin", o.Verdict.String())
		if o.Evidence != "" {
			log = log.WithField("evidence", o.Evidence)
		}
	}
	switch {
	case out == block.Forged:
		// its source's own alert, later in the window, must go through:
		// a forger must not make it "not reported again"
		d.once.forget(a.Src)
		log = log.WithField("forged", true)
		if kernel {
			// the kernel trap holds it (provisionally): let it out now
			d.releaseForged(ctx, pt.mgr, a.Src)
			log = log.WithField("released_from_trap", true)
		}
		if !dec.Quiet {
			log.Infof("not blocked %s: forged: %s", a.Src, a.Origin.Evidence)
		}
	case out == block.Blocked && kernel:
		d.metrics.KernelTrapHit()
		d.metrics.BlockLatency(0)
		log = log.WithFields(logrus.Fields{"block_ms": 0, "kernel_trap": true, "recorded_ms": took})
		log.Infof("blocked %s: %s scan, trapped by the kernel on its first probe to port %d; recorded %.1f ms later", a.Src, a.Type, a.Port, took)
	case out == block.Blocked:
		// where the time went: to the alert (the capture), and whether
		// the capture thread put the rule in place or the blocking thread
		by := "capture"
		if it.p == nil {
			by = "blocking"
		}
		d.metrics.BlockLatency(time.Duration(ruleMs * float64(time.Millisecond)))
		log = log.WithFields(logrus.Fields{"block_ms": ruleMs, "recorded_ms": took,
			"alert_ms": msSince(first, it.raised), "rule_by": by})
		log.Infof("blocked %s: %s scan, %d probes, rule in place %.1f ms after its first probe (records written at %.1f ms)", a.Src, a.Type, a.Probes, ruleMs, took)
	default:
		if out == block.RateLimited {
			d.rearm(a)
		}
		if !dec.Quiet {
			log.Infof("not blocked %s: %s", a.Src, out)
		}
	}
	if out == block.Blocked {
		d.pushBlock(a, dec.Until)
		d.askRecount()
	}
	if err != nil {
		d.log.WithField("src", a.Src.String()).Errorf("blocking %s: %v", a.Src, err)
	}
}

// msSince is the time from a to b in milliseconds, to the microsecond, as
// the decision line gives it.
func msSince(a, b time.Time) float64 { return float64(b.Sub(a).Microseconds()) / 1000 }

// boundFresh is how long a read of the bound ports serves the check of
// trap hits: PortSentry checks again, on a hit, that no service has bound
// the port since, and a port bound in the last boundFresh may go unseen;
// in return a flood of trap hits costs at most one sock_diag dump per
// boundFresh and protocol, not one per alert on the capture thread.
const boundFresh = 250 * time.Millisecond

// boundCache is the view of the ports services have bound that trap hits
// are checked against, read again when it is older than boundFresh. Safe
// for concurrent use (the capture threads share it).
type boundCache struct {
	l   host.PortLister
	now func() time.Time

	mu       sync.Mutex
	tcp, udp boundView
}

// boundView is one protocol's bound ports as read at at.
type boundView struct {
	at  time.Time
	set detect.PortSet
	err error
}

// has reports whether port of proto is bound, from a read no older than
// boundFresh.
func (c *boundCache) has(proto uint8, port uint16) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := &c.tcp
	if proto == detect.ProtoUDP {
		v = &c.udp
	}
	if now := c.now(); v.at.IsZero() || now.Sub(v.at) > boundFresh || now.Before(v.at) {
		v.set, v.err = c.l.BoundPorts(proto)
		v.at = now
	}
	if v.err != nil {
		return false, v.err
	}
	return v.set.Has(port), nil
}
