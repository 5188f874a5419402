package crowdsec

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// MaxLinked bounds the addresses the puller follows decisions of (and so
// the fleet's bans it asks to enforce): a LAPI that holds more is not a
// fleet's own scanners but a block list, which a firewall bouncer is for.
// Decisions for further addresses are skipped, with a log line.
const MaxLinked = 65536

// Pulled is one of the fleet's ban decisions for an address, to enforce.
type Pulled struct {
	Addr netip.Addr
	// Until is when the longest of the address's new decisions ends.
	Until time.Time
	// Scenario and Origin are the decision's (for the log and the ban's
	// reason).
	Scenario, Origin string
}

// Type is the scan type a scanwarden scenario names ("syn" for
// scanwarden/portscan-syn), or "" for another scenario.
func (p *Pulled) Type() string {
	t, ok := strings.CutPrefix(p.Scenario, ScenarioPrefix)
	if !ok {
		return ""
	}
	return t
}

// Enforcer enforces what the puller reads. The puller calls it from its
// own goroutine, one call at a time.
type Enforcer interface {
	// Enforce bans each address of bans until its Until, unless it may
	// not be blocked or is banned already (its ban then stands as it is).
	Enforce(ctx context.Context, bans []Pulled)
	// Lift lifts the bans of addrs: the LAPI deleted (or let expire) the
	// last decision that stood for each, as of asOf, when the pull that
	// saw them go was asked for. A decision the LAPI took after asOf may
	// be missing from that pull: this host's own, just pushed, among
	// them.
	Lift(ctx context.Context, addrs []netip.Addr, asOf time.Time)
	// Reconcile is called after the first pull of a run with every
	// address the LAPI has an active decision for: a ban the fleet
	// imposed in an earlier run whose decisions were deleted meanwhile is
	// to be lifted.
	Reconcile(ctx context.Context, active map[netip.Addr]bool)
}

// Puller reads the fleet's decisions from the LAPI's decision stream
// every interval and hands them to an Enforcer. It follows which
// decisions stand for which address, so that an address is lifted when
// the last of them goes, and a decision for an address banned already
// (this host's own, pushed by its Pusher and read back) is not applied
// twice.
type Puller struct {
	c     *client
	log   logrus.FieldLogger
	every time.Duration
	enf   Enforcer
	now   func() time.Time

	// mu guards links, which Standing reads from other goroutines; the
	// puller's goroutine alone writes it, and never calls the Enforcer
	// holding mu
	mu      sync.Mutex
	links   map[netip.Addr]map[int64]linked
	started bool // the startup pull is done
	// resync asks the next pull for every active decision again (the
	// puller's goroutine alone uses it): a pull failed, and the LAPI may
	// count the changes it answered with as delivered all the same
	resync bool
	// ctx ends with Close; done is closed when the puller has stopped
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// PullOptions configure a Puller.
type PullOptions struct {
	// URL is the LAPI's, Key the bouncer's API key.
	URL, Key string
	// Every is the time between two pulls.
	Every    time.Duration
	Enforcer Enforcer
	Log      logrus.FieldLogger
	Now      func() time.Time
	// Version is scanwarden's, for the User-Agent (scanwarden/VERSION).
	Version string
}

// NewPuller starts pulling: at once, then every o.Every.
func NewPuller(o PullOptions) (*Puller, error) {
	c, err := newClient(o.URL, o.Version)
	if err != nil {
		return nil, err
	}
	if o.Every <= 0 {
		return nil, fmt.Errorf("crowdsec: pull interval %v", o.Every)
	}
	c.key = o.Key
	p := &Puller{c: c, log: o.Log, every: o.Every, enf: o.Enforcer, now: o.Now,
		links: map[netip.Addr]map[int64]linked{}, done: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if p.now == nil {
		p.now = time.Now
	}
	go p.run()
	return p, nil
}

// Close stops pulling and returns once the puller has stopped.
func (p *Puller) Close() {
	p.cancel()
	<-p.done
}

func (p *Puller) run() {
	defer close(p.done)
	ctx := p.ctx
	down := false // an outage is in progress (and logged)
	tick := time.NewTicker(p.every)
	defer tick.Stop()
	for {
		asked := p.now()
		full := !p.started || p.resync
		s, err := p.c.pullStream(ctx, full)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			// the LAPI moves the bouncer's last pull on when it has written
			// its answer, whether it was read or not: the changes it held
			// are in no later delta
			p.resync = true
			if !down {
				p.log.Warnf("adminalert: crowdsec: cannot read the LAPI's decisions: %v%s; trying again every %v", err, keyHint(err), p.every)
			}
			down = true
		default:
			if down {
				p.log.Warnf("adminalert: crowdsec: the LAPI at %s answers again", p.c.base)
				down = false
			}
			p.resync = false
			p.apply(ctx, s, asked)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// keyHint says what to do about a refused bouncer key.
func keyHint(err error) string {
	var se *StatusError
	if errors.As(err, &se) && (se.Code == http.StatusForbidden || se.Code == http.StatusUnauthorized) {
		return " (the bouncer key was refused: make one with `cscli bouncers add NAME -o raw` and put it in CROWDSEC_BOUNCER_KEY_FILE)"
	}
	return ""
}

// linked is what the puller keeps of one decision.
type linked struct {
	until            time.Time
	scenario, origin string
}

// Standing returns the fleet's decision that bans a the longest, as the
// pulls so far have read the LAPI, when one stands at now: a ban here
// that runs out before it is to be held by it. Safe for concurrent use.
func (p *Puller) Standing(a netip.Addr, now time.Time) (Pulled, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best Pulled
	for _, l := range p.links[a.Unmap()] {
		if l.until.After(now) && l.until.After(best.Until) {
			best = Pulled{Addr: a.Unmap(), Until: l.until, Scenario: l.scenario, Origin: l.origin}
		}
	}
	return best, best.Addr.IsValid()
}

// apply follows one answer of the stream, asked for at asked: the
// deleted decisions first, then the new ones; an address whose last
// decision went is lifted, unless a new decision stands for it again.
//
// A full answer (startup=true, asked for again after a failed pull) lifts
// nothing it lacks: a decision deleted while an answer was lost keeps its
// ban until the ban's own end (a restart's Reconcile lifts it sooner), so
// that an answer cut short, or a broken one that reads as empty, never
// lifts the fleet's bans.
func (p *Puller) apply(ctx context.Context, s stream, asked time.Time) {
	now := p.now()
	p.mu.Lock()
	var gone []netip.Addr
	for _, d := range s.Deleted {
		a, ok := decisionAddr(d)
		if !ok {
			continue
		}
		if ids := p.links[a]; ids != nil {
			if _, ok := ids[d.ID]; !ok {
				continue
			}
			delete(ids, d.ID)
			if len(ids) == 0 {
				delete(p.links, a)
				gone = append(gone, a)
			}
		}
	}
	want := map[netip.Addr]*Pulled{}
	var order []netip.Addr
	skipped := 0
	for _, d := range s.New {
		a, ok := decisionAddr(d)
		if !ok || !strings.EqualFold(d.Type, "ban") {
			continue
		}
		left, err := time.ParseDuration(d.Duration)
		if err != nil || left <= 0 {
			continue
		}
		ids := p.links[a]
		if ids == nil {
			if len(p.links) >= MaxLinked {
				skipped++
				continue
			}
			ids = map[int64]linked{}
			p.links[a] = ids
		}
		until := now.Add(left)
		ids[d.ID] = linked{until: until, scenario: d.Scenario, origin: d.Origin}
		if w := want[a]; w == nil {
			want[a] = &Pulled{Addr: a, Until: until, Scenario: d.Scenario, Origin: d.Origin}
			order = append(order, a)
		} else if until.After(w.Until) {
			w.Until, w.Scenario, w.Origin = until, d.Scenario, d.Origin
		}
	}
	var lift []netip.Addr
	for _, a := range gone {
		if p.links[a] == nil {
			lift = append(lift, a)
		}
	}
	var active map[netip.Addr]bool // for the startup pull's Reconcile
	if !p.started {
		active = make(map[netip.Addr]bool, len(p.links))
		for a := range p.links {
			active[a] = true
		}
	}
	p.mu.Unlock()
	if skipped > 0 {
		p.log.Warnf("crowdsec: %d decisions skipped: scanwarden follows the decisions of %d addresses at most (a block list is a firewall bouncer's business)", skipped, MaxLinked)
	}
	if len(lift) > 0 {
		p.enf.Lift(ctx, lift, asked)
	}
	if len(order) > 0 {
		bans := make([]Pulled, len(order))
		for i, a := range order {
			bans[i] = *want[a]
		}
		p.enf.Enforce(ctx, bans)
	}
	if !p.started {
		p.started = true
		p.enf.Reconcile(ctx, active)
	}
}

// decisionAddr is the address a decision of scope Ip is for.
func decisionAddr(d Decision) (netip.Addr, bool) {
	if !strings.EqualFold(d.Scope, "ip") {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(d.Value)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
