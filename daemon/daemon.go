// Package daemon is the live pipeline of `scanwarden run`: the capture
// threads (one per interface, each with its own detection engine), the
// hand-off of alerts to the blocking thread, the blocking thread, the
// classic listeners, the kernel trap, reload (SIGHUP), supervision of
// captures whose interface comes and goes, real-time scheduling and
// systemd's notifications. It is the one package besides the CLI that
// reads the config (package conf): it turns it into the plain values the
// engine, the classic mode and the block manager take.
//
// Threads, and what each may wait on:
//   - a capture thread per interface (captureLoop): reads packets, runs its
//     engine, and per alert begins the block (block.Manager.Begin, which
//     never waits for a lock or a process); it waits only on the kernel
//     for packets, never on the blocking thread (handOff drops and re-arms
//     an alert that finds the queue full);
//   - the blocking thread (blockLoop): finishes each alert's decision
//     (records, hosts.deny, commands, log lines), and may wait on files,
//     commands and name lookups;
//   - the housekeeping loop (Run's own goroutine): reload, expiry and
//     re-sync, bound ports and the kernel trap, stats, the watchdog;
//   - the classic mode's handlers (package classic), which hand their
//     alerts to the same queue, the same way.
package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/backends"
	"github.com/scanwarden/scanwarden/classic"
	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/crowdsec"
	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/host"
	"github.com/scanwarden/scanwarden/metrics"
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
	// alertReserve is the room the producers of alerts leave in the alert
	// queue: past alertQueue-alertReserve waiting alerts they drop theirs
	// rather than wait (see handOff). The reserve is for producers that
	// found room at the same instant.
	alertReserve = 128
	// captureStuckAfter is how long a capture thread may go without
	// coming back from a read (which times out every 100 ms when no
	// packet comes) before the watchdog counts it as stuck.
	captureStuckAfter = 10 * time.Second
	// blockingStuckAfter is how long the blocking thread may spend on
	// one alert before the watchdog counts it as stuck: above what a
	// decision may legitimately take (KILL_ROUTE and KILL_RUN_CMD, 30 s
	// each at most, and iptables runs).
	blockingStuckAfter = 90 * time.Second
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
	// recountEvery is how often at most the bans in force are counted
	// again for the metrics after blocks (each count lists every
	// backend's entries under the manager's lock); a count due sooner
	// waits for the next boundEvery tick, and every expireEvery re-sync
	// counts too.
	recountEvery = time.Second
	// trapCallTimeout bounds the kernel trap's removal at exit.
	trapCallTimeout = 5 * time.Second
	// onceMaxSources bounds the sources whose last alert alertOnce
	// remembers in the classic modes; the oldest makes room.
	onceMaxSources = 4096
)

// Modes are which of PortSentry's modes are on.
type Modes struct {
	TCP, UDP       bool // watch TCP / UDP
	AdvTCP, AdvUDP bool // advanced mode: every port below ADVANCED_PORTS_*
	// ClassicTCP, ClassicUDP: PortSentry's -tcp / -udp, the trap ports
	// bound so that they look open (package classic)
	ClassicTCP, ClassicUDP bool
}

// Name is PortSentry's mode name of proto for the record files and
// $MODE$: tcp, udp, stcp, sudp, atcp or audp.
func (m Modes) Name(proto uint8) string {
	if proto == detect.ProtoUDP {
		switch {
		case m.AdvUDP:
			return "audp"
		case m.ClassicUDP:
			return "udp"
		}
		return "sudp"
	}
	switch {
	case m.AdvTCP:
		return "atcp"
	case m.ClassicTCP:
		return "tcp"
	}
	return "stcp"
}

// Options are what `scanwarden run` hands the daemon.
type Options struct {
	// ConfigPath is the config file, re-read on SIGHUP (at a reload a
	// missing file is always refused).
	ConfigPath string
	// Config is the config as read at start.
	Config *conf.Config
	Modes  Modes
	Log    *logrus.Logger
	// Version is the program's, for the start-up line.
	Version string
	// ControlSocket is where the daemon answers `scanwarden reload`
	// (DefaultControlSocket); empty: nowhere.
	ControlSocket string
}

type daemon struct {
	cfgPath string
	version string
	modes   Modes
	log     *logrus.Logger

	mu    sync.Mutex // guards cfg and parts, replaced on reload
	cfg   *conf.Config
	parts *parts

	traps atomic.Pointer[traps]
	// rt puts the capture and blocking threads at real-time priority
	// (realtime.go).
	rt    *rtPolicy
	bound host.PortLister
	// boundNow is the cached view of bound that trap hits are checked
	// against.
	boundNow *boundCache
	alerts   chan alertItem
	// classic binds and serves the ports of -tcp/-udp; nil in the other
	// modes.
	classic *classic.Mode
	// once passes one alert per source and window between the capture's
	// and the classic ports' alerts (classic modes only).
	once *alertOnce
	// rearms has one queue per capture loop (see rearmAfter).
	rearms []chan rearmReq
	// releases are sources to let out of the kernel trap (see release).
	releases chan netip.Addr
	// trap keeps the kernel trap; only the housekeeping loop updates it.
	trap kernelTrap
	// fold keeps the log bounded under a flood (fold.go).
	fold *logFold
	// dropped counts the alerts the capture threads dropped rather than
	// wait for the blocking thread (handOff).
	dropped atomic.Uint64
	// refresh asks the housekeeping loop to read the bound ports again
	// now (a trap hit found a port a service holds): the capture thread
	// does not read them itself.
	refresh chan struct{}
	// blockingBusy is when the blocking thread took its current alert
	// (UnixNano; 0 while it waits for one), for the watchdog.
	blockingBusy atomic.Int64
	// link is the kernel's neighbour table and routes, which judge
	// whether a source is real (origin.go).
	link *linkView
	// waits are alerts whose on-link source is being resolved
	// (resolveLoop).
	waits chan *detect.Alert
	// waiting counts the alerts judge put aside that resolveLoop has not
	// handed off yet (in waits or in its list): at most cap(waits)
	waiting atomic.Int32
	// choose picks the backend of BLOCK_BACKEND="auto", at start and on
	// each reload (resolve).
	choose chooser
	// caps are the captures, one per interface (set before any thread
	// that reads them starts).
	caps []*liveCapture
	// metrics counts what the threads see for Prometheus (metrics.go);
	// metricsSrv serves them on METRICS_LISTEN (nil when it is empty;
	// housekeeping only).
	metrics    *metrics.Metrics
	metricsSrv *metrics.Server
	// bans is the bans in force per backend as last counted (census);
	// recount asks the housekeeping for a new count (a block was made).
	bans    atomic.Pointer[[]metrics.Bans]
	recount chan struct{}
	// pusher sends blocks to the CrowdSec LAPI and puller enforces its
	// decisions (crowdsec.go); nil when not configured.
	pusher *crowdsec.Pusher
	puller *crowdsec.Puller
	// control is the control socket's path; reloads are the reloads its
	// clients ask for, done by the housekeeping.
	control string
	reloads chan reloadReq
}

// Run runs the daemon until ctx ends (SIGTERM, SIGINT): it captures,
// detects and blocks as o.Config says, and re-reads the config on SIGHUP.
// The blocks stay when it returns. It returns an error only when it
// cannot start (no capture could be opened, the block manager or the
// never-block list could not be built).
func Run(ctx context.Context, o Options) error {
	c := o.Config
	for _, w := range ConfigWarnings(c, o.Modes) {
		o.Log.Warn(w)
	}
	d := &daemon{cfgPath: o.ConfigPath, version: o.Version, modes: o.Modes, log: o.Log, cfg: c,
		fold: newLogFold(time.Now()), refresh: make(chan struct{}, 1), recount: make(chan struct{}, 1),
		bound:  host.SockDiag{Proc: "/proc/net"},
		alerts: make(chan alertItem, alertQueue), releases: make(chan netip.Addr, releaseQueue),
		waits: make(chan *detect.Alert, waitingMax), choose: backends.Choose,
		control: o.ControlSocket, reloads: make(chan reloadReq)}
	d.boundNow = &boundCache{l: d.bound, now: time.Now}
	d.metrics = metrics.New(o.Version, d.snapshot)
	// every error path logs: the log's error lines are the error count
	o.Log.AddHook(d.metrics.ErrorHook())
	d.trap.log = o.Log
	d.trap.metrics = d.metrics
	d.rt = &rtPolicy{log: o.Log}
	d.rt.want.Store(c.CaptureRealtime)
	return d.run(ctx)
}

func (d *daemon) run(ctx context.Context) error {
	d.log.Warnf("adminalert: scanwarden %s is starting.", d.version)
	if line := defaultsNote(d.cfg, d.cfgPath); line != "" {
		d.log.Warn(line)
	}
	if err := d.start(ctx); err != nil {
		return err
	}
	defer d.stopParts()
	defer d.removeTrap()
	if err := d.startCrowdSec(d.cfg); err != nil {
		d.stopCrowdSec()
		return err
	}
	// after the blocking thread's last block, before the parts close
	defer d.stopCrowdSec()
	caps, err := d.openCaptures()
	if err != nil {
		return err
	}
	d.caps = caps
	srv, err := d.listenMetrics(d.cfg)
	if err != nil {
		for _, lc := range caps {
			lc.close()
		}
		return err
	}
	d.switchMetrics(d.cfg, srv)
	defer func() { d.metricsSrv.Close() }()
	lctx, stopLink := context.WithCancel(ctx)
	defer stopLink()
	d.startLinkView(lctx)
	var wg sync.WaitGroup
	if err := d.startCaptures(ctx, caps, &wg); err != nil {
		for _, lc := range caps {
			lc.close()
		}
		wg.Wait()
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.blockLoop(ctx)
	}()
	if ln, err := listenControl(d.control); err != nil {
		d.log.Warnf("%v: `scanwarden reload` cannot reach this daemon (SIGHUP still reloads it)", err)
	} else if ln != nil {
		cctx, stopControl := context.WithCancel(ctx)
		defer stopControl()
		go d.serveControl(cctx, ln)
	}
	d.announce(caps)
	d.housekeeping(ctx, caps)
	sdNotify("STOPPING=1")
	d.log.Warnf("adminalert: scanwarden is stopping; blocks are kept")
	d.logStats(caps)
	for _, lc := range caps {
		lc.close()
	}
	wg.Wait()
	d.classic.Close()
	close(d.alerts)
	<-done
	return nil
}

// start checks the config's files, resolves BLOCK_BACKEND="auto", binds
// the classic ports, builds the block manager and the never-block list of
// the config, restores the bans, and puts the first trap set and the
// kernel trap in place.
func (d *daemon) start(ctx context.Context) error {
	c := d.cfg
	if err := d.checkFiles(c); err != nil {
		return err
	}
	if err := d.resolve(ctx, c); err != nil {
		return err
	}
	d.sayAuto(c, nil)
	// classic ports are bound first: they are no traps of the capture
	d.classic = classic.New(d.modes.ClassicTCP, d.modes.ClassicUDP, d.log, func(a *detect.Alert) {
		d.handOff(context.Background(), a, d.classic.Rearm)
	})
	if d.classic != nil {
		d.once = newAlertOnce(onceMaxSources, int64(c.DetectWindow))
		d.classic.Sync(classicSettings(c))
	}
	p, err := d.newParts(ctx, c, nil)
	if err != nil {
		return err
	}
	d.parts = p
	removeOtherBackends(ctx, c, d.log)
	if err := p.mgr.Restore(ctx); err != nil {
		d.log.Errorf("restoring blocks: %v", err)
	}
	d.census(ctx, p.mgr)
	t, err := d.computeTraps(c, 1)
	if err != nil {
		d.log.Warnf("reading bound ports: %v", err)
	}
	d.traps.Store(t)
	d.applyTrap(ctx)
	return nil
}

// announce logs the trap ports and that the daemon is active, and tells
// systemd it is ready.
func (d *daemon) announce(caps []*liveCapture) {
	t := d.traps.Load()
	for _, p := range []struct {
		proto string
		set   *detect.PortSet
	}{{"TCP", t.tcp}, {"UDP", t.udp}} {
		d.log.Infof("adminalert: watching %d %s trap ports (stealth detection on every port)", p.set.Len(), p.proto)
	}
	ifaces := make([]string, len(caps))
	for i, lc := range caps {
		ifaces[i] = lc.iface
	}
	d.log.Warnf("adminalert: scanwarden is now active and listening.")
	sdNotify("READY=1\nSTATUS=watching " + strings.Join(ifaces, ","))
}

// housekeeping runs until ctx ends: reload on SIGHUP, expiry and re-sync,
// bound ports and the kernel trap, the stats line, systemd's watchdog.
func (d *daemon) housekeeping(ctx context.Context, caps []*liveCapture) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	expire := time.NewTicker(expireEvery)
	bound := time.NewTicker(boundEvery)
	stats := time.NewTicker(statsEvery)
	fold := time.NewTicker(foldEvery)
	defer expire.Stop()
	defer bound.Stop()
	defer stats.Stop()
	defer fold.Stop()
	var stuck string // the stuck thread, as last logged
	// counted is when the bans were last counted; owed, that a count
	// asked for came too soon after it and is owed to the next tick
	var counted time.Time
	owed := false
	count := func(m *block.Manager) {
		d.census(ctx, m)
		counted, owed = time.Now(), false
	}
	var watchdog <-chan time.Time
	if iv := watchdogInterval(); iv > 0 {
		tk := time.NewTicker(iv)
		defer tk.Stop()
		watchdog = tk.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			d.reload(ctx)
		case req := <-d.reloads:
			req.done <- d.reload(ctx)
		case <-expire.C:
			m := d.manager()
			if _, err := m.Resync(ctx); err != nil {
				d.log.Errorf("resyncing blocks: %v", err)
			}
			count(m)
		case <-d.recount:
			if time.Since(counted) < recountEvery {
				owed = true
			} else {
				count(d.manager())
			}
		case <-d.refresh:
			d.refreshTraps()
			d.applyTrap(ctx)
		case <-bound.C:
			d.refreshTraps()
			d.applyTrap(ctx)
			d.trap.checkOverflow(ctx)
			if owed {
				count(d.manager())
			}
		case <-stats.C:
			d.logStats(caps)
		case now := <-fold.C:
			if line := d.fold.summary(now, d.dropped.Load()); line != "" {
				d.log.Warn(line)
			}
		case <-watchdog:
			// systemd restarts a daemon whose capture or blocking
			// thread is stuck, not only one whose main loop is
			why := d.stuck(caps, time.Now())
			if why == "" {
				sdNotify("WATCHDOG=1")
			} else if why != stuck {
				d.log.Errorf("adminalert: %s: no watchdog ping to systemd until it recovers", why)
			}
			stuck = why
		}
	}
}

// stuck names a capture or blocking thread that is stuck at now, or
// returns "" when every one is alive.
func (d *daemon) stuck(caps []*liveCapture, now time.Time) string {
	for _, lc := range caps {
		if t := lc.alive.Load(); t != 0 && now.Sub(time.Unix(0, t)) > captureStuckAfter {
			return fmt.Sprintf("the capture on %s has not come back from a read for %v", lc.iface, now.Sub(time.Unix(0, t)).Round(time.Second))
		}
	}
	if t := d.blockingBusy.Load(); t != 0 && now.Sub(time.Unix(0, t)) > blockingStuckAfter {
		return fmt.Sprintf("the blocking thread has been on one alert for %v", now.Sub(time.Unix(0, t)).Round(time.Second))
	}
	return ""
}

// reload re-reads the config and the ignore file (SIGHUP), and chooses
// the backend of BLOCK_BACKEND="auto" again (resolve): a backend other
// than the running one, chosen or named, replaces it as a whole (what the
// others left in the kernel removed, the bans restored into it). Blocks
// and the detection state are kept; a config with errors is refused as a
// whole and the running one stays. The parts of the old config (backends,
// journal, state files, address watch) are closed once the last alert
// begun with them is finished (parts.retire): nothing of a config
// outlives it, however many reloads come.
func (d *daemon) reload(ctx context.Context) error {
	err := d.tryReload(ctx)
	d.metrics.Reload(err)
	if err != nil {
		d.log.Errorf("reload refused, keeping the running config: %v", err)
	}
	return err
}

// tryReload is reload; an error is a refusal, before anything changed.
func (d *daemon) tryReload(ctx context.Context) error {
	// a file that is gone refuses the reload, given with -c or not: the
	// built-in defaults are for a start without one, not for an
	// administrator's config moved away under a running daemon
	c, err := LoadConfig(d.cfgPath, true)
	if err != nil {
		return err
	}
	if err := d.checkFiles(c); err != nil {
		return err
	}
	// auto is chosen again: a kernel that gained nf_tables, or a new
	// KILL_ROUTE, may make it another backend
	if err := d.resolve(ctx, c); err != nil {
		return err
	}
	// the new metrics address is bound before anything changes: one
	// that cannot be had refuses the reload
	srv, err := d.listenMetrics(c)
	if err != nil {
		return err
	}
	p, err := d.newParts(ctx, c, d.manager())
	if err != nil {
		srv.Close()
		return err
	}
	d.mu.Lock()
	oldP, old := d.parts, d.cfg
	d.cfg, d.parts = c, p
	d.rt.want.Store(c.CaptureRealtime)
	d.mu.Unlock()
	go oldP.retire()
	d.sayAuto(c, old)
	// the backends in force, "auto" resolved: a new choice switches as a
	// changed BLOCK_BACKEND does
	if c.BlockBackend != old.BlockBackend {
		removeOtherBackends(ctx, c, d.log)
	}
	if err := p.mgr.Restore(ctx); err != nil {
		d.log.Errorf("restoring blocks after reload: %v", err)
	}
	d.classic.Sync(classicSettings(c))
	d.once.setWindow(int64(c.DetectWindow))
	d.refreshTraps()
	d.applyTrap(ctx)
	d.switchMetrics(c, srv)
	d.census(ctx, p.mgr)
	d.log.Warnf("adminalert: configuration reloaded from %s", d.cfgPath)
	return nil
}

// stopParts closes the parts in force at exit.
func (d *daemon) stopParts() {
	d.mu.Lock()
	p := d.parts
	d.mu.Unlock()
	p.close()
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
	if n := d.dropped.Load(); n > 0 {
		d.log.WithField("alerts_dropped", n).Warnf("%d alerts dropped since the start because the blocking thread was behind (their sources are reported again if they go on probing)", n)
	}
}

// acquire returns the parts in force, counted as in use until their
// users.Done; nil before the start is done. A reload swaps the parts
// under d.mu, so no parts it replaced are acquired after it.
func (d *daemon) acquire() *parts {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.parts != nil {
		d.parts.users.Add(1)
	}
	return d.parts
}

// withManager runs fn with the block manager of the config in force,
// counted as in use until fn returns (a reload retires its parts only
// after that); it does nothing before the start is done. Goroutines other
// than housekeeping (the blocking thread, the CrowdSec puller) take the
// manager through it: a reload runs on housekeeping and may retire the
// parts, closing the manager's backends and journal, at any moment of
// theirs.
func (d *daemon) withManager(fn func(m *block.Manager)) {
	p := d.acquire()
	if p == nil {
		return
	}
	defer p.users.Done()
	fn(p.mgr)
}

// manager is the block manager of the config in force; nil before the
// start is done. Housekeeping only, the goroutine that reloads: any other
// takes it with withManager.
func (d *daemon) manager() *block.Manager {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.parts == nil {
		return nil
	}
	return d.parts.mgr
}

// currentNever returns the never-block list in force.
func (d *daemon) currentNever() *block.NeverBlock {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.parts.never
}
