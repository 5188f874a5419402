package daemon

// The daemon's side of CrowdSec (package crowdsec): each block pushed to
// the Local API, and the fleet's decisions enforced and lifted through the
// block manager in force.

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/crowdsec"
	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/metrics"
)

// fleetLogMax is how many of the fleet's bans one pull logs line by line;
// the rest of a large pull (the first, after a restart, holds every
// active decision) is summed up in one line.
const fleetLogMax = 20

// startCrowdSec starts the push and the pull c asks for. An unreadable
// credentials or key file, or a damaged queue, stops the start: the
// administrator asked for the fleet, and running without it silently
// would be a lie.
func (d *daemon) startCrowdSec(c *conf.Config) error {
	var url string
	if c.CrowdSecCredentials != "" {
		cred, err := crowdsec.ReadCredentials(c.CrowdSecCredentials)
		if err != nil {
			return c.KeyError("CROWDSEC_CREDENTIALS", err.Error())
		}
		url = cred.URL
		p, err := crowdsec.NewPusher(crowdsec.PushOptions{Credentials: cred, StateDir: c.StateDir, Log: d.log, Version: d.version,
			Notify: func(ev crowdsec.PushEvent, n int) {
				if ev == crowdsec.Sent {
					d.metrics.CrowdSecSent(n)
				} else {
					d.metrics.CrowdSecDropped(n)
				}
			}})
		if err != nil {
			return c.KeyError("CROWDSEC_CREDENTIALS", err.Error())
		}
		d.pusher = p
		d.log.Infof("crowdsec: pushing blocks to the LAPI at %s as machine %s", cred.URL, cred.Login)
	}
	if c.CrowdSecBouncerKeyFile != "" {
		key, err := crowdsec.ReadBouncerKey(c.CrowdSecBouncerKeyFile)
		if err != nil {
			return c.KeyError("CROWDSEC_BOUNCER_KEY_FILE", err.Error())
		}
		if c.CrowdSecLAPIURL != "" && c.CrowdSecCredentials == "" {
			url = c.CrowdSecLAPIURL
		}
		p, err := crowdsec.NewPuller(crowdsec.PullOptions{URL: url, Key: key, Every: c.CrowdSecPullInterval,
			Enforcer: fleet{d}, Log: d.log, Version: d.version})
		if err != nil {
			return c.KeyError("CROWDSEC_BOUNCER_KEY_FILE", err.Error())
		}
		d.puller = p
		d.log.Infof("crowdsec: enforcing the ban decisions of the LAPI at %s, read every %v", url, c.CrowdSecPullInterval)
	}
	return nil
}

// stopCrowdSec stops the pull, then the push (its queue written for the
// next run).
func (d *daemon) stopCrowdSec() {
	if d.puller != nil {
		d.puller.Close()
	}
	if d.pusher != nil {
		if err := d.pusher.Close(); err != nil {
			d.log.Errorf("%v: the blocks not yet sent are lost", err)
		}
	}
}

// pushBlock tells the LAPI of a block this host made (blocking thread;
// it never waits for the LAPI).
func (d *daemon) pushBlock(a *detect.Alert, until time.Time) {
	if d.pusher == nil {
		return
	}
	ports := make([]uint16, 0, len(a.Ports))
	for _, p := range a.Ports {
		if p.Proto == a.Type.Proto() {
			ports = append(ports, p.Port)
		}
	}
	d.pusher.Push(crowdsec.Block{Addr: a.Src.Unmap(), Type: a.Type.String(), Probes: int(a.Probes), Ports: ports,
		First: time.Unix(0, a.First), Last: time.Unix(0, a.Time), Until: until, Host: hostname()})
}

// hostname names this host in the alerts' messages.
func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
}

// fleet enforces the fleet's decisions with the block manager in force
// (crowdsec.Enforcer). The puller's goroutine calls it; the manager
// serialises its work with the blocking thread's.
type fleet struct{ d *daemon }

func (f fleet) Enforce(ctx context.Context, bans []crowdsec.Pulled) {
	f.d.withManager(func(m *block.Manager) { f.enforce(ctx, m, bans) })
}

func (f fleet) enforce(ctx context.Context, m *block.Manager, bans []crowdsec.Pulled) {
	d := f.d
	logged, counts := 0, map[string]int{}
	for _, p := range bans {
		dec, err := m.Impose(ctx, fleetBan(p))
		label := fleetLabel(dec)
		counts[label]++
		d.metrics.CrowdSecDecision(label)
		until := p.Until.UTC().Format(time.RFC3339)
		log := d.log.WithFields(logrus.Fields{"src": p.Addr.String(), "scenario": p.Scenario, "origin": p.Origin,
			"until": until, "outcome": label})
		switch {
		case err != nil:
			log.Errorf("crowdsec: blocking %s on the fleet's decision: %v", p.Addr, err)
		case dec.Outcome != block.Blocked || logged >= fleetLogMax:
		default:
			logged++
			log.Warnf("attackalert: Host %s has been blocked on a decision of the CrowdSec fleet: %s (%s), until %s",
				p.Addr, p.Scenario, p.Origin, until)
		}
		if dec.Outcome == block.Ignored && dec.Why != "" && dec.Why != block.ReasonExpired {
			log.Infof("crowdsec: the fleet's decision for %s not enforced: %s", p.Addr, dec.Why)
		}
	}
	if n := counts[metrics.Blocked]; n > logged {
		d.log.Warnf("attackalert: %d hosts blocked on decisions of the CrowdSec fleet (%d of them logged above)", n, logged)
	}
	if n := len(bans); n > 0 {
		d.log.Infof("crowdsec: %d decisions of the fleet: %d blocked, %d banned already, %d never blocked", n,
			counts[metrics.Blocked], counts[metrics.AlreadyBlocked], counts[metrics.NeverBlock]+counts[metrics.IgnoreFile])
	}
	d.askRecount()
}

// fleetBan is the ban that enforces a decision of the fleet.
func fleetBan(p crowdsec.Pulled) block.Ban {
	typ := p.Type()
	b := block.Ban{Addr: p.Addr, Proto: "tcp", Type: typ, Until: p.Until, Source: block.SourceCrowdSec,
		Reason: fmt.Sprintf("CrowdSec decision: %s (%s)", p.Scenario, p.Origin)}
	if typ == "" {
		b.Type = "crowdsec"
	}
	if typ == detect.TypeUDP.String() {
		b.Proto = "udp"
	}
	return b
}

// fleetOutlast is block.Options.Outlast: the fleet's decision that still
// bans addr, as the pulls so far read the LAPI, holds a ban of this host
// that runs out before it.
func (d *daemon) fleetOutlast(addr netip.Addr, now time.Time) (block.Ban, bool) {
	if d.puller == nil {
		return block.Ban{}, false
	}
	p, ok := d.puller.Standing(addr, now)
	if !ok {
		return block.Ban{}, false
	}
	return fleetBan(p), true
}

// fleetLabel is the metrics' outcome of a fleet decision.
func fleetLabel(dec block.Decision) string {
	if dec.Outcome == block.Ignored && dec.Why == block.ReasonExpired {
		return metrics.Expired
	}
	return outcomeLabel(dec)
}

// Lift lifts the bans of addrs but this host's own that the LAPI may not
// have known of when the pull was asked for (see liftable).
func (f fleet) Lift(ctx context.Context, addrs []netip.Addr, asOf time.Time) {
	f.d.withManager(func(m *block.Manager) { f.liftDeleted(ctx, m, addrs, asOf) })
}

func (f fleet) liftDeleted(ctx context.Context, m *block.Manager, addrs []netip.Addr, asOf time.Time) {
	d := f.d
	bans, err := m.List()
	if err != nil {
		d.log.Errorf("crowdsec: reading the bans before lifting those the LAPI deleted (they stand until they expire): %v", err)
		return
	}
	addrs, kept := liftable(addrs, bans, func(a netip.Addr) (bool, string) {
		switch {
		case d.pusher == nil:
			return true, "this host does not push its bans to the LAPI"
		case d.pusher.Unconfirmed(a, asOf):
			return true, "its own decision has not reached the LAPI yet"
		}
		return false, ""
	})
	for _, k := range kept {
		d.log.WithField("src", k.addr.String()).Infof("crowdsec: the fleet's last decision for %s is gone, but this host's own ban stands: %s", k.addr, k.why)
	}
	f.lift(ctx, m, addrs)
}

// lift lifts, with m, the bans of addrs, whose decisions the LAPI
// deleted.
func (f fleet) lift(ctx context.Context, m *block.Manager, addrs []netip.Addr) {
	if len(addrs) == 0 {
		return
	}
	d := f.d
	notBanned, err := m.Unblock(ctx, addrs...)
	if err != nil {
		d.log.Errorf("crowdsec: lifting the bans the LAPI deleted: %v", err)
	}
	n := len(addrs) - len(notBanned)
	d.metrics.CrowdSecLifted(n)
	if n > 0 {
		d.log.Infof("crowdsec: %d bans lifted: the LAPI deleted their decisions", n)
	}
	d.askRecount()
}

// keptBan is a ban Lift leaves in force, and why.
type keptBan struct {
	addr netip.Addr
	why  string
}

// liftable splits addrs, whose last decision the LAPI no longer holds,
// into the bans to lift and those to keep: a ban the fleet imposed goes,
// and so does this host's own once its own decision was in the LAPI (an
// administrator deleting it there means it, and its expiry there is the
// ban's own). This host's own ban stays when keepOwn says the LAPI may
// never have held its decision: the decision that went was another's.
func liftable(addrs []netip.Addr, bans []block.Ban, keepOwn func(netip.Addr) (bool, string)) (lift []netip.Addr, kept []keptBan) {
	own := map[netip.Addr]bool{}
	for _, b := range bans {
		if b.Source != block.SourceCrowdSec {
			own[b.Addr] = true
		}
	}
	for _, a := range addrs {
		if own[a] {
			if keep, why := keepOwn(a); keep {
				kept = append(kept, keptBan{a, why})
				continue
			}
		}
		lift = append(lift, a)
	}
	return lift, kept
}

// Reconcile lifts the bans the fleet imposed in an earlier run whose
// decisions are gone from the LAPI (deleted while scanwarden was down).
func (f fleet) Reconcile(ctx context.Context, active map[netip.Addr]bool) {
	f.d.withManager(func(m *block.Manager) { f.reconcile(ctx, m, active) })
}

func (f fleet) reconcile(ctx context.Context, m *block.Manager, active map[netip.Addr]bool) {
	d := f.d
	bans, err := m.List()
	if err != nil {
		d.log.Errorf("crowdsec: reading the bans to reconcile with the LAPI: %v", err)
		return
	}
	var gone []netip.Addr
	for _, b := range bans {
		if b.Source == block.SourceCrowdSec && !active[b.Addr] {
			gone = append(gone, b.Addr)
		}
	}
	if len(gone) > 0 {
		d.log.Infof("crowdsec: %d bans of the fleet have no decision in the LAPI any more: lifting them", len(gone))
		f.lift(ctx, m, gone)
	}
}
