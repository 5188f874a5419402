package daemon

// The capture threads: one per interface, each with its own engine,
// supervised so that an interface that comes and goes is captured again.

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/capture"
	"github.com/scanwarden/scanwarden/detect"
)

// rearmReq asks a capture loop's engine to judge src again from packet
// time at.
type rearmReq struct {
	src netip.Addr
	at  int64
	// onNew: judged at once on a probe of a new target, too (see
	// rearmAfter).
	onNew bool
	// forget: rather than re-arm it, forget what the engine knows of
	// src (it was judged forged: its next probes are judged afresh).
	forget bool
}

// openCaptures opens a capture per configured interface (libpcap's "any"
// when none is); one that cannot be opened yet is retried by its
// supervisor. It fails only when none could be opened.
func (d *daemon) openCaptures() ([]*liveCapture, error) {
	ifaces := d.cfg.Interfaces
	if len(ifaces) == 0 {
		ifaces = []string{"any"}
	}
	filter := capture.Filter(capture.FilterOptions{TCP: d.modes.TCP, UDP: d.modes.UDP})
	caps := make([]*liveCapture, len(ifaces))
	opened := 0
	var firstErr error
	for i, iface := range ifaces {
		caps[i] = &liveCapture{iface: iface, filter: filter}
		if err := caps[i].open(); err != nil {
			d.log.Errorf("%v: retrying every %v", err, reopenEvery)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		opened++
	}
	if opened == 0 {
		return nil, firstErr
	}
	return caps, nil
}

// startCaptures starts a capture thread per capture, each with its own
// engine and rearm queue.
func (d *daemon) startCaptures(ctx context.Context, caps []*liveCapture, wg *sync.WaitGroup) error {
	engs := make([]*detect.Engine, len(caps))
	for i := range caps { // all of them before any thread starts
		var err error
		if engs[i], err = detect.New(EngineConfig(d.cfg)); err != nil {
			return err
		}
	}
	for range caps {
		d.rearms = append(d.rearms, make(chan rearmReq, rearmQueue))
	}
	for i, lc := range caps {
		eng, org, rearm := engs[i], detect.NewOrigins(), d.rearms[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.supervise(ctx, lc, eng, org, rearm)
		}()
	}
	wg.Add(1)
	go func() { // it hands off too: done before the alert queue closes
		defer wg.Done()
		d.resolveLoop(ctx)
	}()
	return nil
}

// captureLoop feeds one capture's packets to its engine, and to its
// Origins (what the traffic teaches of whether a source is real), and
// queues the alerts, judged (judge; those waiting for their source's
// resolution go to resolveLoop). Nothing here logs or locks per packet: the trap set is an
// atomic load, compared by generation. Per alert (not per packet), the
// loop checks a trap hit against the bound ports (a cached view) and
// begins the block (begin: two locks, Manager.Begin's pending line and
// netlink message), then queues the rest for the blocking thread,
// without ever waiting for it (handOff). rt's checks, at every read
// timeout and every rtCheckEvery probes, tell the watchdog it is alive.
func (d *daemon) captureLoop(ctx context.Context, src *capture.LiveSource, eng *detect.Engine, org *detect.Origins, rearm <-chan rearmReq, rt *rtThread, pub *engineStats) {
	var p detect.Probe
	var gen uint64
	for {
		if t := d.traps.Load(); t.gen != gen {
			eng.SetTraps(t.tcp, t.udp)
			eng.SetOwn(t.own)
			gen = t.gen
		}
		select { // a receive that finds the queue empty takes no lock
		case r := <-rearm:
			if r.forget {
				eng.Forget(r.src)
			} else {
				eng.Rearm(r.src, r.at, r.onNew)
			}
		default:
		}
		err := src.Next(&p)
		switch {
		case err == nil:
		case errors.Is(err, capture.ErrTimeout):
			if ctx.Err() != nil {
				return
			}
			rt.check()
			pub.publish(eng)
			continue
		case errors.Is(err, io.EOF):
			return
		default:
			if ctx.Err() == nil {
				d.log.Errorf("capture on %s: %v", src.Interface(), err)
			}
			return
		}
		org.Observe(&p)
		a := eng.Process(&p)
		if rt.tick(p.TS) { // every rtCheckEvery probes or rtBeatEvery: the counters for a scrape
			pub.publish(eng)
		}
		if a == nil {
			continue
		}
		// the engine reuses its alert; this one goes to other threads
		// (per alert, not per packet)
		a = a.Clone()
		if a.Trigger == detect.TriggerTrap {
			// PortSentry checks again, on a hit, that no service has
			// bound the port since: a hit on a real service is no scan
			if bound, err := d.serviceHas(a.Proto, a.Port); err == nil && bound {
				d.log.Infof("%s port %d is bound by a service now: hit from %s not counted", detect.ProtoName(a.Proto), a.Port, a.Src)
				eng.Forget(a.Src)
				d.askRefresh() // the housekeeping reads the bound ports again
				if d.trap.trapped(a, d.currentNever()) {
					select { // the kernel trapped it meanwhile: let it out
					case d.releases <- a.Src:
					default:
					}
				}
				continue
			}
		}
		if d.judge(org, a) {
			if a.Origin.Verdict == detect.Forged {
				// its next probes are judged afresh: a forger cannot
				// make the engine deaf to the address's own scan later
				eng.Forget(a.Src)
			}
			d.handOff(ctx, a, eng.Rearm)
		}
	}
}

// handOff queues a for the blocking thread without ever waiting for it;
// every producer (a capture thread, a classic port's reader or handler)
// goes through it. When the queue has no room left but its reserve (the
// blocking thread is behind), the alert is dropped before anything of its
// block is begun, counted, and its source re-armed where it was raised
// (rearm: the engine's Rearm): it is reported again on its next probe of
// another target, or after rearmAfter, rather than lost, while a forged
// source, which sends no more, is not. Probes keep being read meanwhile,
// so a real scanner in a flood is still seen.
func (d *daemon) handOff(ctx context.Context, a *detect.Alert, rearm func(src netip.Addr, at int64, onNew bool)) {
	d.metrics.Alert(a)
	if len(d.alerts) >= cap(d.alerts)-alertReserve {
		d.dropped.Add(1)
		rearm(a.Src, a.Time+int64(rearmAfter), true)
		return
	}
	d.alerts <- d.begin(ctx, a)
}

// reopenEvery is how often a capture whose interface is gone (or not
// there yet) is tried again.
const reopenEvery = 5 * time.Second

// liveCapture is one configured interface's capture, which may come and
// go with the interface.
type liveCapture struct {
	iface, filter string
	mu            sync.Mutex
	src           *capture.LiveSource
	closed        bool
	// alive is when its thread last came back from a read (UnixNano),
	// for the watchdog.
	alive atomic.Int64
	// eng is its engine's counters as its thread last published them.
	eng engineStats
}

func (lc *liveCapture) open() error {
	s, err := capture.OpenLive(lc.iface, capture.LiveOptions{Filter: lc.filter})
	if err != nil {
		return err
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.closed {
		s.Close()
		return errors.New("capture closed")
	}
	lc.src = s
	return nil
}

func (lc *liveCapture) current() *capture.LiveSource {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.src
}

func (lc *liveCapture) close() {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.closed = true
	if lc.src != nil {
		lc.src.Close()
	}
}

// supervise runs the capture loop of lc and, when its interface goes away
// or was not there, opens it again every reopenEvery until ctx ends. The
// engine (and so what it knows of each source) survives a reopen.
func (d *daemon) supervise(ctx context.Context, lc *liveCapture, eng *detect.Engine, org *detect.Origins, rearm <-chan rearmReq) {
	rt := d.rt.thread("the capture on " + lc.iface)
	rt.alive = &lc.alive
	for ctx.Err() == nil {
		rt.beat(time.Now()) // alive while it waits for its interface too
		if s := lc.current(); s != nil {
			d.captureLoop(ctx, s, eng, org, rearm, rt, &lc.eng)
			lc.mu.Lock()
			if lc.src == s {
				s.Close()
				lc.src = nil
			}
			lc.mu.Unlock()
			if ctx.Err() != nil {
				return
			}
			d.log.Warnf("capture on %s ended: reopening it every %v", lc.iface, reopenEvery)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(reopenEvery):
		}
		if err := lc.open(); err == nil {
			d.log.Warnf("adminalert: capturing on %s again", lc.iface)
		}
	}
}

// rearm asks every engine to report a's source again after rearmAfter, if
// it goes on probing (and, refused on a single probe, on its next probe of
// another port): the block manager refused this alert (rate limit).
// The engine that does not know the source ignores the request.
func (d *daemon) rearm(a *detect.Alert) {
	r := rearmReq{src: a.Src, at: a.Time + int64(rearmAfter), onNew: block.SingleProbe(a)}
	d.once.forget(a.Src)
	d.classic.Rearm(a.Src, r.at, r.onNew)
	d.tellEngines(r)
}

// tellEngines queues r for every capture loop's engine, without waiting:
// a queue that is full drops it (the source is then judged as it stands).
func (d *daemon) tellEngines(r rearmReq) {
	for _, q := range d.rearms {
		select {
		case q <- r:
		default:
		}
	}
}
