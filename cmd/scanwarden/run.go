package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/capture"
	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/detect"
)

// Intervals of the daemon's housekeeping.
const (
	// expireEvery is how often expired bans are lifted and the backends
	// re-synced with the state (a flushed chain or a deleted rule is put
	// back): a ban outlives its BAN_EXPIRY_* by at most this.
	expireEvery = 30 * time.Second
	// boundEvery is how often the ports bound by services are re-read, so
	// that a watched port a service starts to use stops being a trap.
	boundEvery = 5 * time.Second
	// statsEvery is how often capture counters (kernel drops above all)
	// are logged.
	statsEvery = 5 * time.Minute
	// alertQueue is how many alerts may wait for the blocker (each takes
	// a few iptables runs): enough for a burst of scanners, bounded so
	// that a flood cannot grow memory.
	alertQueue = 1024
	// rearmAfter is how long after a refused alert (rate limit) its source
	// may be reported again while it goes on probing: soon enough that a
	// real scanner is blocked once the limit eases, rare enough that a
	// refused source adds at most one log line per this period. A source
	// refused on a single probe is also reported again on its first probe
	// of another port, which takes it to the budget of sources with more
	// evidence: a scanner whose first probe hit a trap port while forged
	// sources had spent the single-probe budget would otherwise finish its
	// scan (nmap's 1,000 ports take about a second) before rearmAfter.
	rearmAfter = 5 * time.Second
	// rearmQueue bounds the rearm requests waiting for a capture loop; a
	// request that finds it full is dropped (that source stays reported
	// once, as without rearming).
	rearmQueue = 256
	// trapCallTimeout bounds the kernel trap's removal at exit.
	trapCallTimeout = 5 * time.Second
)

// rearmReq asks a capture loop's engine to judge src again from packet
// time at.
type rearmReq struct {
	src netip.Addr
	at  int64
	// onNew: judged at once on a probe of a new target, too (see
	// rearmAfter).
	onNew bool
}

// modeSet is which of PortSentry's modes are on.
type modeSet struct {
	tcp, udp       bool // watch TCP / UDP
	advTCP, advUDP bool // advanced mode: every port below ADVANCED_PORTS_*
	classic        []string
}

// name is PortSentry's mode name for the record files and $MODE$.
func (m modeSet) name(proto uint8) string {
	if proto == detect.ProtoUDP {
		switch {
		case m.advUDP:
			return "audp"
		case slices.Contains(m.classic, "udp"):
			return "udp"
		}
		return "sudp"
	}
	switch {
	case m.advTCP:
		return "atcp"
	case slices.Contains(m.classic, "tcp"):
		return "tcp"
	}
	return "stcp"
}

// traps are the watched ports, replaced as a whole when they change; gen
// tells the capture loops to pick up a new set.
type traps struct {
	tcp, udp *detect.PortSet
	gen      uint64
}

type daemon struct {
	cfgPath  string
	explicit bool
	modes    modeSet
	log      *logrus.Logger

	mu    sync.Mutex // guards cfg, mgr, journal, never on reload
	cfg   *conf.Config
	mgr   *block.Manager
	jrnl  *block.FileJournal
	never *block.NeverBlock

	traps atomic.Pointer[traps]
	// rt puts the capture and blocking threads at real-time priority
	// (realtime.go).
	rt     *rtPolicy
	bound  portLister
	alerts chan alertItem
	// classic binds and serves the ports of -tcp/-udp (classic.go); nil
	// in the other modes.
	classic *classicMode
	// rearms has one queue per capture loop (see rearmAfter).
	rearms []chan rearmReq
	// releases are sources to let out of the kernel trap (see release).
	releases chan netip.Addr
	// trap keeps the kernel trap; only the housekeeping loop updates it.
	trap kernelTrap
}

func runRun(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	format := fs.String("log-format", "text", "log format: text (for journald) or json")
	var m modeSet
	flags := map[string]*bool{}
	for _, f := range []struct{ name, usage string }{
		{"stcp", "stealth TCP: watch TCP_PORTS and every other port for probes (the default with -sudp)"},
		{"sudp", "stealth UDP: watch UDP_PORTS and every other port"},
		{"atcp", "advanced TCP: watch every port below ADVANCED_PORTS_TCP except ADVANCED_EXCLUDE_TCP and bound ones"},
		{"audp", "advanced UDP: likewise for UDP"},
		{"tcp", "PortSentry's classic TCP mode: bind TCP_PORTS so that they look open (PORT_BANNER), react to full connections; -stcp detection on the other ports"},
		{"udp", "PortSentry's classic UDP mode: bind UDP_PORTS, react to datagrams at them; -sudp detection on the other ports"},
	} {
		flags[f.name] = fs.Bool(f.name, false, f.usage)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, `usage: scanwarden run [-c CONF] [--log-format text|json] [-stcp] [-sudp] [-atcp] [-audp] [-tcp] [-udp]

Captures on INTERFACES (default: every interface, through libpcap's "any"),
detects scans and blocks the scanners as the config says. Without a mode
flag it watches TCP and UDP in stealth mode. SIGHUP re-reads the config and
the ignore file; SIGTERM and SIGINT stop it, keeping the blocks.

`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: %w", fs.Arg(0), errUsage)
	}
	m.tcp = *flags["stcp"] || *flags["atcp"] || *flags["tcp"]
	m.udp = *flags["sudp"] || *flags["audp"] || *flags["udp"]
	m.advTCP, m.advUDP = *flags["atcp"], *flags["audp"]
	for _, c := range []string{"tcp", "udp"} {
		if *flags[c] {
			m.classic = append(m.classic, c)
		}
	}
	if !m.tcp && !m.udp {
		m.tcp, m.udp = true, true
	}
	path, explicit := cfgPath()
	c, err := loadConfig(path, explicit)
	if err != nil {
		return err
	}
	log, err := newDaemonLogger(stderr, *format, c.Syslog, c.SyslogTag)
	if err != nil {
		return err
	}
	for _, w := range configWarnings(c, m) {
		log.Warn(w)
	}
	d := &daemon{cfgPath: path, explicit: explicit, modes: m, log: log, cfg: c, bound: sockDiag{proc: "/proc/net"},
		alerts: make(chan alertItem, alertQueue), releases: make(chan netip.Addr, releaseQueue)}
	d.trap.log = log
	d.rt = &rtPolicy{log: log}
	d.rt.want.Store(c.CaptureRealtime)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return d.run(ctx)
}

// computeTraps returns the watched ports of c in the daemon's modes, less
// the ports services have bound and the classic ports scanwarden has bound
// itself (their listeners are the traps there).
func (d *daemon) computeTraps(c *conf.Config, gen uint64) (*traps, error) {
	btcp, budp, err := boundBoth(d.bound)
	otcp, oudp := d.classic.owned()
	btcp, budp = *union(&btcp, &otcp), *union(&budp, &oudp)
	pick := func(on, adv bool, list *conf.PortSet, advSet *conf.PortSet, bound *detect.PortSet) *detect.PortSet {
		switch {
		case !on:
			return &detect.PortSet{}
		case adv:
			return minus(portSet(advSet), bound)
		}
		return minus(portSet(list), bound)
	}
	t := &traps{
		gen: gen,
		tcp: pick(d.modes.tcp, d.modes.advTCP, &c.TCPPorts, c.AdvancedWatchTCP(), &btcp),
		udp: pick(d.modes.udp, d.modes.advUDP, &c.UDPPorts, c.AdvancedWatchUDP(), &budp),
	}
	return t, err
}

func (d *daemon) run(ctx context.Context) error {
	c := d.cfg
	d.log.Warnf("adminalert: scanwarden %s is starting.", version)
	// classic ports are bound first: they are no traps of the capture
	d.classic = newClassicMode(d.modes, d.log, func(a *detect.Alert) { d.alerts <- d.begin(context.Background(), a) })
	if d.classic != nil {
		d.classic.sync(c)
	}
	never, err := newNeverBlock(c, d.log)
	if err != nil {
		return err
	}
	mgr, jrnl, err := newManagerWith(c, d.log, never, nil)
	if err != nil {
		return err
	}
	d.mgr, d.jrnl, d.never = mgr, jrnl, never
	defer func() { d.jrnl.Close() }()
	removeOtherBackends(ctx, c, d.log)
	if err := mgr.Restore(ctx); err != nil {
		d.log.Errorf("restoring blocks: %v", err)
	}
	if err := never.Watch(ctx, func(err error) { d.log.Warnf("never-block list: %v", err) }); err != nil {
		d.log.Warnf("not following address changes: %v", err)
	}
	t, err := d.computeTraps(c, 1)
	if err != nil {
		d.log.Warnf("reading bound ports: %v", err)
	}
	d.traps.Store(t)
	d.applyTrap(ctx)
	defer d.removeTrap()

	ifaces := c.Interfaces
	if len(ifaces) == 0 {
		ifaces = []string{"any"}
	}
	filter := capture.Filter(capture.FilterOptions{TCP: d.modes.tcp, UDP: d.modes.udp})
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
		return firstErr
	}
	var wg sync.WaitGroup
	for _, lc := range caps {
		eng, err := detect.New(engineConfig(c))
		if err != nil {
			return err
		}
		rearm := make(chan rearmReq, rearmQueue)
		d.rearms = append(d.rearms, rearm)
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.supervise(ctx, lc, eng, rearm)
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rt := d.rt.thread("the blocking thread")
		for {
			select {
			case it, ok := <-d.alerts:
				if !ok {
					return
				}
				if a := it.a; it.refused {
					d.log.WithField("src", a.Src.String()).Infof("%s: %s scan (%s) not reported again: its alert of this window is in", a.Src, a.Type, a.Trigger)
					continue
				}
				d.handle(ctx, it)
				rt.check()
			case addr := <-d.releases:
				m := d.manager()
				release(ctx, m, addr, d.log)
			}
		}
	}()
	for _, p := range []struct {
		proto string
		set   *detect.PortSet
	}{{"TCP", t.tcp}, {"UDP", t.udp}} {
		n := 0
		for _, w := range p.set {
			n += bits.OnesCount64(w)
		}
		d.log.Infof("adminalert: watching %d %s trap ports (stealth detection on every port)", n, p.proto)
	}
	d.log.Warnf("adminalert: scanwarden is now active and listening.")
	sdNotify("READY=1\nSTATUS=watching " + strings.Join(ifaces, ","))

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	expire := time.NewTicker(expireEvery)
	bound := time.NewTicker(boundEvery)
	stats := time.NewTicker(statsEvery)
	defer expire.Stop()
	defer bound.Stop()
	defer stats.Stop()
	var watchdog <-chan time.Time
	if iv := watchdogInterval(); iv > 0 {
		tk := time.NewTicker(iv)
		defer tk.Stop()
		watchdog = tk.C
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			d.reload(ctx)
		case <-expire.C:
			m := d.manager()
			if _, err := m.Resync(ctx); err != nil {
				d.log.Errorf("resyncing blocks: %v", err)
			}
		case <-bound.C:
			d.refreshTraps()
			d.applyTrap(ctx)
			d.trap.checkOverflow(ctx)
		case <-stats.C:
			d.logStats(caps)
		case <-watchdog:
			sdNotify("WATCHDOG=1")
		}
	}
	sdNotify("STOPPING=1")
	d.log.Warnf("adminalert: scanwarden is stopping; blocks are kept")
	d.logStats(caps)
	for _, lc := range caps {
		lc.close()
	}
	wg.Wait()
	d.classic.close()
	close(d.alerts)
	<-done
	return nil
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
		if *t.tcp == *old.tcp && *t.udp == *old.udp {
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

// captureLoop feeds one capture's packets to its engine and queues the
// alerts. Nothing here logs or locks per packet: the trap set is an
// atomic load, compared by generation. Per alert (not per packet), the
// loop checks a trap hit against the bound ports (sock_diag) and begins
// the block (begin: two locks, Manager.Begin's pending line and netlink
// message), then queues the rest for the blocking thread.
func (d *daemon) captureLoop(ctx context.Context, src *capture.LiveSource, eng *detect.Engine, rearm <-chan rearmReq, rt *rtThread) {
	var p detect.Probe
	var gen uint64
	for {
		if t := d.traps.Load(); t.gen != gen {
			eng.SetTraps(t.tcp, t.udp)
			gen = t.gen
		}
		select { // a receive that finds the queue empty takes no lock
		case r := <-rearm:
			eng.Rearm(r.src, r.at, r.onNew)
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
			continue
		case errors.Is(err, io.EOF):
			return
		default:
			if ctx.Err() == nil {
				d.log.Errorf("capture on %s: %v", src.Interface(), err)
			}
			return
		}
		rt.tick()
		a := eng.Process(&p)
		if a == nil {
			continue
		}
		if a.Trigger == detect.TriggerTrap {
			// PortSentry checks again, on a hit, that no service has
			// bound the port since: a hit on a real service is no scan
			if bound, err := d.serviceHas(a.Proto, a.Port); err == nil && bound {
				d.log.Infof("%s port %d is bound by a service now: hit from %s not counted", detect.ProtoName(a.Proto), a.Port, a.Src)
				eng.Forget(a.Src)
				d.refreshTraps()
				if d.trap.trapped(a, d.currentNever()) {
					select { // the kernel trapped it meanwhile: let it out
					case d.releases <- a.Src:
					default:
					}
				}
				continue
			}
		}
		d.alerts <- d.begin(ctx, a)
	}
}

// alertItem is an alert on its way to the blocking thread: begun on the
// capture thread (p, block.Manager.Begin: the firewall block done, the
// rest for p.Finish), or to be decided there.
type alertItem struct {
	a *detect.Alert
	p *block.Pending
	// raised is when the alert was raised (wall clock).
	raised time.Time
	// refused: the classic mode's admit said no (the source's alert of
	// this window is in).
	refused bool
}

// begin does, where the alert is raised (a capture thread, a classic
// port's handler), the part of the decision that puts the firewall rule in
// place (block.Manager.Begin), when it can do so without waiting, so that
// no hand-over to the blocking thread delays the block; everything else is
// the blocking thread's.
func (d *daemon) begin(ctx context.Context, a *detect.Alert) alertItem {
	it := alertItem{a: a, raised: time.Now()}
	if !d.classic.admit(a) {
		it.refused = true
		return it
	}
	if m := d.manager(); m != nil { // nil: a classic port's hit before the start is done
		it.p = m.Begin(ctx, a, d.modes.name(a.Type.Proto()))
	}
	return it
}

// handle finishes a begun alert (or passes it to the block manager) and
// logs the decision.
func (d *daemon) handle(ctx context.Context, it alertItem) {
	a := it.a
	kernel := d.trap.trapped(a, d.currentNever())
	var dec block.Decision
	var err error
	if it.p != nil {
		dec, err = it.p.Finish(ctx)
	} else {
		dec, err = d.manager().Decide(ctx, a, d.modes.name(a.Type.Proto()))
	}
	out := dec.Outcome
	first := time.Unix(0, a.First)
	took := msSince(first, time.Now()) // the decision done: records written
	ruleMs := took
	if !dec.RuleAt.IsZero() {
		ruleMs = msSince(first, dec.RuleAt)
	}
	log := d.log.WithFields(logrus.Fields{
		"src": a.Src.String(), "type": a.Type.String(), "probes": a.Probes, "score": a.Score,
		"trigger": a.Trigger.String(), "port": a.Port, "first_probe": formatTime(a.First),
		"outcome": out.String(),
	})
	switch {
	case out == block.Blocked && kernel:
		log = log.WithFields(logrus.Fields{"block_ms": 0, "kernel_trap": true, "recorded_ms": took})
		log.Infof("blocked %s: %s scan, trapped by the kernel on its first probe to port %d; recorded %.1f ms later", a.Src, a.Type, a.Port, took)
	case out == block.Blocked:
		// where the time went: to the alert (the capture), and whether
		// the capture thread put the rule in place or the blocking thread
		by := "capture"
		if it.p == nil {
			by = "blocking"
		}
		log = log.WithFields(logrus.Fields{"block_ms": ruleMs, "recorded_ms": took,
			"alert_ms": msSince(first, it.raised), "rule_by": by})
		log.Infof("blocked %s: %s scan, %d probes, rule in place %.1f ms after its first probe (records written at %.1f ms)", a.Src, a.Type, a.Probes, ruleMs, took)
	default:
		if out == block.RateLimited {
			d.rearm(a)
		}
		log.Infof("not blocked %s: %s", a.Src, out)
	}
	if err != nil {
		d.log.WithField("src", a.Src.String()).Errorf("blocking %s: %v", a.Src, err)
	}
}

// msSince is the time from a to b in milliseconds, to the microsecond, as
// the decision line gives it.
func msSince(a, b time.Time) float64 { return float64(b.Sub(a).Microseconds()) / 1000 }

// reload re-reads the config and the ignore file (SIGHUP). Blocks and the
// detection state are kept; a config with errors is refused as a whole
// and the running one stays.
func (d *daemon) reload(ctx context.Context) {
	c, err := loadConfig(d.cfgPath, d.explicit)
	if err != nil {
		d.log.Errorf("reload refused, keeping the running config: %v", err)
		return
	}
	never, err := newNeverBlock(c, d.log)
	if err != nil {
		d.log.Errorf("reload refused, keeping the running config: %v", err)
		return
	}
	mgr, jrnl, err := newManagerWith(c, d.log, never, nil)
	if err != nil {
		d.log.Errorf("reload refused, keeping the running config: %v", err)
		return
	}
	if err := never.Watch(ctx, func(err error) { d.log.Warnf("never-block list: %v", err) }); err != nil {
		d.log.Warnf("not following address changes: %v", err)
	}
	d.mu.Lock()
	oldJ, old := d.jrnl, d.cfg
	d.cfg, d.mgr, d.jrnl, d.never = c, mgr, jrnl, never
	d.rt.want.Store(c.CaptureRealtime)
	d.mu.Unlock()
	oldJ.Close()
	if c.BlockBackend != old.BlockBackend {
		removeOtherBackends(ctx, c, d.log)
	}
	if err := mgr.Restore(ctx); err != nil {
		d.log.Errorf("restoring blocks after reload: %v", err)
	}
	if d.classic != nil {
		d.classic.sync(c)
	}
	d.refreshTraps()
	d.applyTrap(ctx)
	d.log.Warnf("adminalert: configuration reloaded from %s", d.cfgPath)
}

func (d *daemon) logStats(caps []*liveCapture) {
	for _, lc := range caps {
		s := lc.current()
		if s == nil {
			d.log.Warnf("capture on %s: not open", lc.iface)
			continue
		}
		st, err := s.Stats()
		if err != nil {
			d.log.Warnf("capture on %s: stats: %v", s.Interface(), err)
			continue
		}
		l := d.log.WithFields(logrus.Fields{"iface": s.Interface(), "received": st.Received, "dropped": st.Dropped, "if_dropped": st.IfDropped, "decoded": st.Decoded})
		if st.Dropped > 0 || st.IfDropped > 0 {
			l.Warnf("capture on %s: the kernel dropped %d packets (%d by the interface) of %d", s.Interface(), st.Dropped, st.IfDropped, st.Received)
		} else {
			l.Infof("capture on %s: %d packets, none dropped", s.Interface(), st.Received)
		}
	}
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
func (d *daemon) supervise(ctx context.Context, lc *liveCapture, eng *detect.Engine, rearm <-chan rearmReq) {
	rt := d.rt.thread("the capture on " + lc.iface)
	for ctx.Err() == nil {
		if s := lc.current(); s != nil {
			d.captureLoop(ctx, s, eng, rearm, rt)
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
	d.classic.unclaim(a.Src, r.at, r.onNew)
	for _, q := range d.rearms {
		select {
		case q <- r:
		default:
		}
	}
}

// manager is the block manager of the config in force.
func (d *daemon) manager() *block.Manager {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mgr
}

// currentNever returns the never-block list in force.
func (d *daemon) currentNever() *block.NeverBlock {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.never
}

// applyTrap brings the kernel trap in line with the config, the trap ports
// and the never-block list (housekeeping loop only).
func (d *daemon) applyTrap(ctx context.Context) {
	d.mu.Lock()
	c, m, never := d.cfg, d.mgr, d.never
	d.mu.Unlock()
	want, why := trapFor(c, d.modes, d.traps.Load(), never)
	d.trap.update(ctx, m.Trapper(), want, why)
}

// removeTrap takes the kernel trap out at exit: without the daemon,
// trapped sources would be neither recorded nor written to hosts.deny.
// The bans themselves stay.
func (d *daemon) removeTrap() {
	d.mu.Lock()
	c, m, never := d.cfg, d.mgr, d.never
	d.mu.Unlock()
	off, _ := trapFor(c, d.modes, d.traps.Load(), never)
	off.TCP, off.UDP = nil, nil
	ctx, cancel := context.WithTimeout(context.Background(), trapCallTimeout)
	defer cancel()
	d.trap.update(ctx, m.Trapper(), off, "scanwarden stopped")
}
