package crowdsec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/internal/bounded"
	"github.com/scanwarden/scanwarden/internal/safefile"
)

// Tunables of the push.
const (
	// QueueMax bounds the blocks kept for a LAPI that is down: past it,
	// the oldest goes (with a log line and a count) so that an outage
	// during a flood cannot grow the queue file or memory. 10,000 blocks
	// are about 3 MB of queue file, and more than an hour of blocks at
	// the most BLOCK_RATE_LIMIT lets through (twice 60 a minute at its
	// default); a block sent after its ban ended goes without a decision.
	QueueMax = 10000
	// pushBatch is how many alerts go in one request.
	pushBatch = 100
	// retryFirst and retryMax bound the wait before a send is tried again
	// after a failure (doubling from the first to the most).
	retryFirst = time.Second
	retryMax   = time.Minute
	// ackedKeep is how long the pusher remembers when the LAPI took each
	// address's block (Unconfirmed): far longer than a pull interval, and
	// ackedMax bounds the addresses remembered.
	ackedKeep = 10 * time.Minute
	ackedMax  = QueueMax
	// neverDuration is the duration a ban that never expires is given in
	// the LAPI, which needs one: ten years.
	neverDuration = 10 * 365 * 24 * time.Hour
	// ScenarioPrefix starts the scenario of every alert scanwarden pushes:
	// "scanwarden/portscan-syn", "scanwarden/portscan-udp", ...
	ScenarioPrefix = "scanwarden/portscan-"
)

// Block is a block to tell the LAPI of.
type Block struct {
	Addr netip.Addr `json:"addr"`
	// Type is the scan type (syn, fin, udp...): the scenario is
	// ScenarioPrefix + Type.
	Type string `json:"type"`
	// Probes and Ports are what the alert counted.
	Probes int      `json:"probes"`
	Ports  []uint16 `json:"ports,omitempty"`
	// First and Last are the times of the first and latest probes.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// Until is when the ban ends here (the zero time: never); the
	// decision sent lasts what remains of it when it is sent.
	Until time.Time `json:"until,omitzero"`
	// Host names this host in the message (its name, as the LAPI's
	// operators know it).
	Host string `json:"host,omitempty"`
}

// Scenario is the scenario the block is sent under.
func (b *Block) Scenario() string { return ScenarioPrefix + b.Type }

// alert turns b into the LAPI's alert at now: a ban decision for what
// remains of the ban, none for a ban that has ended meanwhile (the alert
// is still worth its record).
func (b *Block) alert(now time.Time) Alert {
	ports := make([]string, len(b.Ports))
	for i, p := range b.Ports {
		ports[i] = fmt.Sprint(p)
	}
	msg := fmt.Sprintf("scanwarden: %s scan from %s: %d probes", b.Type, b.Addr, b.Probes)
	if len(ports) > 0 {
		msg += ", ports " + strings.Join(ports, ",")
	}
	if b.Host != "" {
		msg += ", blocked on " + b.Host
	}
	a := Alert{
		Scenario: b.Scenario(), Message: msg, EventsCount: int32(min(b.Probes, 1<<30)),
		StartAt: b.First.UTC().Format(time.RFC3339Nano), StopAt: b.Last.UTC().Format(time.RFC3339Nano),
		Leakspeed: "0", Remediation: true, Events: []struct{}{},
		Source:    Source{Scope: "Ip", Value: b.Addr.String(), IP: b.Addr.String()},
		Decisions: []Decision{},
	}
	left := neverDuration
	if !b.Until.IsZero() {
		left = b.Until.Sub(now).Truncate(time.Second)
	}
	if left > 0 {
		a.Decisions = append(a.Decisions, Decision{
			Duration: left.String(), Origin: "crowdsec", Scenario: b.Scenario(),
			Scope: "Ip", Type: "ban", Value: b.Addr.String(),
		})
	}
	return a
}

// PushEvent is something the pusher reports for the metrics.
type PushEvent int

// Push events.
const (
	Sent    PushEvent = iota // an alert the LAPI took
	Dropped                  // an alert dropped: the queue was full, or the LAPI refused it for good
)

// Pusher sends blocks to the LAPI as alerts, oldest first, from a queue
// kept in a file (QueueFile in STATE_DIR) so that none is lost while the
// LAPI is down or scanwarden restarts. Push never waits for the LAPI.
type Pusher struct {
	c      *client
	path   string
	log    logrus.FieldLogger
	now    func() time.Time
	notify func(PushEvent, int)

	mu      sync.Mutex
	q       []Block
	seq0    uint64 // the sequence number of q[0]: blocks leave q at its front only
	dirty   bool   // q differs from the file
	dropped int    // dropped since the last log line
	max     int    // the most blocks q holds (QueueMax)
	// flightEnd is the sequence number after the batch being sent (none:
	// at most seq0); flightDropped counts the blocks of that batch Push
	// dropped meanwhile, reported with the batch's outcome (the LAPI may
	// take them yet)
	flightEnd     uint64
	flightDropped int
	// acked is when the LAPI took the latest block of each address sent
	// lately (see Unconfirmed)
	acked map[netip.Addr]time.Time
	// unsent holds the addresses whose latest block was dropped without
	// the LAPI taking it (the queue full, or the LAPI refused it), until a
	// later block of the address is taken. At most ackedMax, the oldest
	// forgotten first.
	unsent *bounded.Map[netip.Addr, struct{}]
	wake   chan struct{}
	// ctx ends with Close; done is closed when the sender has stopped
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// QueueFile is the queue's file name in STATE_DIR.
const QueueFile = "crowdsec-queue.json"

// PushOptions configure a Pusher.
type PushOptions struct {
	Credentials Credentials
	// StateDir holds the queue file.
	StateDir string
	Log      logrus.FieldLogger
	// Notify, when set, is told of each alert sent or dropped (for the
	// metrics); it must not block.
	Notify func(ev PushEvent, n int)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Version is scanwarden's, for the User-Agent (scanwarden/VERSION).
	Version string
	// queueMax is QueueMax, smaller in tests.
	queueMax int
}

// NewPusher loads the queue left by the last run (a damaged queue file is
// an error: it is not overwritten; past QueueMax, its oldest blocks are
// dropped) and starts sending.
func NewPusher(o PushOptions) (*Pusher, error) {
	c, err := newClient(o.Credentials.URL, o.Version)
	if err != nil {
		return nil, err
	}
	c.login, c.password = o.Credentials.Login, o.Credentials.Password
	p := &Pusher{c: c, path: filepath.Join(o.StateDir, QueueFile), log: o.Log, now: o.Now, notify: o.Notify,
		wake: make(chan struct{}, 1), done: make(chan struct{}), acked: map[netip.Addr]time.Time{}, max: o.queueMax,
		unsent: bounded.New[netip.Addr, struct{}](ackedMax)}
	if p.max <= 0 {
		p.max = QueueMax
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if p.now == nil {
		p.now = time.Now
	}
	if p.notify == nil {
		p.notify = func(PushEvent, int) {}
	}
	if err := p.load(); err != nil {
		p.cancel()
		return nil, err
	}
	if n := len(p.q); n > 0 {
		p.log.Infof("crowdsec: %d blocks from the last run still to send to the LAPI (%s)", n, p.path)
	}
	go p.run()
	return p, nil
}

func (p *Pusher) load() error {
	b, _, err := safefile.ReadFile(p.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("crowdsec queue: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, &p.q); err != nil {
		return fmt.Errorf("crowdsec queue %s: %w (move it away to start with an empty queue)", p.path, err)
	}
	if n := len(p.q) - p.max; n > 0 { // written under a larger bound: the oldest go, as Push drops them
		p.markUnsent(p.q[:n])
		p.q = p.q[n:]
		p.dropped += n
		p.dirty = true
		p.notify(Dropped, n)
	}
	return nil
}

// Push queues b to be sent; it never waits for the LAPI or the disk (the
// sending goroutine writes the queue file). Past QueueMax the oldest
// queued block is dropped.
func (p *Pusher) Push(b Block) {
	p.mu.Lock()
	if len(p.q) >= p.max {
		inFlight := p.seq0 < p.flightEnd // the oldest is in the batch being sent
		p.markUnsent(p.q[:1])
		p.q = p.q[1:]
		p.seq0++
		p.dropped++
		if inFlight {
			p.flightDropped++
		} else {
			p.notify(Dropped, 1)
		}
	}
	p.q = append(p.q, b)
	p.dirty = true
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Pending is how many blocks wait to be sent.
func (p *Pusher) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.q)
}

// Unconfirmed reports whether the LAPI may not have held this host's
// decision for a at asOf: a block for a is still queued (or being sent),
// its latest block was dropped unsent or refused (of the last ackedMax
// such addresses), or the LAPI took it at asOf or later. A pull asked
// for at asOf may then lack that decision, and another decision's end
// says nothing of it.
func (p *Pusher) Unconfirmed(a netip.Addr, asOf time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.q {
		if p.q[i].Addr == a {
			return true
		}
	}
	if _, unsent := p.unsent.Get(a); unsent {
		return true // the LAPI never took its latest block
	}
	t, ok := p.acked[a]
	return ok && !t.Before(asOf)
}

// markUnsent notes that blocks leave the queue without the LAPI taking
// them (the caller holds p.mu).
func (p *Pusher) markUnsent(blocks []Block) {
	for i := range blocks {
		p.unsent.Put(blocks[i].Addr, struct{}{})
	}
}

// confirm notes that the LAPI took batch at now.
func (p *Pusher) confirm(batch []Block, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.acked)+len(batch) > ackedMax {
		for a, t := range p.acked {
			if now.Sub(t) > ackedKeep {
				delete(p.acked, a)
			}
		}
		if len(p.acked)+len(batch) > ackedMax {
			clear(p.acked) // a flood of blocks: forget the older ones at once
		}
	}
	for i := range batch {
		p.acked[batch[i].Addr] = now
		p.unsent.Delete(batch[i].Addr)
	}
}

// Close stops sending (a request in flight is abandoned, its blocks kept)
// and writes what is left to the queue file, for the next run.
func (p *Pusher) Close() error {
	p.cancel()
	<-p.done
	return p.save()
}

// save writes the queue file when the queue changed since.
func (p *Pusher) save() error {
	p.mu.Lock()
	if !p.dirty {
		p.mu.Unlock()
		return nil
	}
	// a copy under the lock, the encoding without it: Push never waits
	// for more than a copy
	q := make([]Block, len(p.q)) // "[]", never "null", for an empty queue
	copy(q, p.q)
	p.dirty = false
	p.mu.Unlock()
	b, err := json.Marshal(q)
	if err != nil {
		return err
	}
	if _, err := safefile.Replace(p.path, b, safefile.Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
		p.mu.Lock()
		p.dirty = true
		p.mu.Unlock()
		return fmt.Errorf("crowdsec queue: %w", err)
	}
	return nil
}

// run sends the queue, oldest first, until Close.
func (p *Pusher) run() {
	defer close(p.done)
	ctx := p.ctx
	wait := time.Duration(0)
	down := false // an outage is in progress (and logged)
	// the blocks before sequence number solo go one to a request: the
	// LAPI refused a batch of them whole, for one alert or more
	solo := uint64(0)
	for {
		if wait > 0 && !p.pause(wait) {
			return
		}
		if err := p.save(); err != nil {
			p.log.Errorf("%v (the blocks stay queued in memory)", err)
		}
		p.logDropped()
		p.mu.Lock()
		n := pushBatch
		if p.seq0 < solo {
			n = 1
		}
		batch := append([]Block(nil), p.q[:min(len(p.q), n)]...)
		end := p.seq0 + uint64(len(batch)) // the sequence number after the batch
		p.flightEnd = end
		p.mu.Unlock()
		if len(batch) == 0 {
			wait = 0
			select {
			case <-ctx.Done():
				return
			case <-p.wake:
			}
			continue
		}
		err := p.send(ctx, batch)
		// refused: the LAPI refused the alerts for their content, which no
		// retry will change
		var se *StatusError
		refused := errors.As(err, &se) && se.Path == alertsPath &&
			(se.Code == http.StatusBadRequest || se.Code == http.StatusUnprocessableEntity)
		switch {
		case err == nil:
			if down {
				p.log.Warnf("adminalert: crowdsec: the LAPI at %s takes alerts again; sending the %d queued", p.c.base, p.Pending())
				down = false
			}
			p.confirm(batch, p.now())
			p.land(end, Sent)
			wait = 0
		case ctx.Err() != nil:
			return
		case refused && len(batch) > 1:
			// the LAPI refuses a request whole: its alerts are sent again
			// one by one, so that only those it refuses are dropped
			p.log.Warnf("crowdsec: the LAPI refused a batch of %d alerts (%v): sending them one by one", len(batch), err)
			p.land(0, Dropped) // blocks of the batch dropped meanwhile are lost
			solo = end
			wait = 0
		case refused:
			p.log.Errorf("crowdsec: the LAPI refused the alert for %s, dropped: %v", batch[0].Addr, err)
			p.mu.Lock()
			p.markUnsent(batch)
			p.mu.Unlock()
			p.land(end, Dropped)
			wait = 0
		default:
			p.land(0, Dropped) // blocks of the batch dropped meanwhile are lost
			if !down {
				p.log.Warnf("adminalert: crowdsec: cannot send alerts to the LAPI: %v; %d blocks kept in %s, sent in order when it answers", err, p.Pending(), p.path)
				down = true
			}
			wait = min(max(2*wait, retryFirst), retryMax)
		}
	}
}

// pause waits d before the next try, writing the queue file meanwhile
// whenever a block is pushed (a crash then loses none); false when Close
// was called.
func (p *Pusher) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return false
		case <-t.C:
			return true
		case <-p.wake:
			if err := p.save(); err != nil {
				p.log.Errorf("%v (the blocks stay queued in memory)", err)
			}
		}
	}
}

// send pushes batch in one request.
func (p *Pusher) send(ctx context.Context, batch []Block) error {
	now := p.now()
	alerts := make([]Alert, len(batch))
	scenarios := map[string]bool{}
	for i := range batch {
		alerts[i] = batch[i].alert(now)
		scenarios[batch[i].Scenario()] = true
	}
	names := make([]string, 0, len(scenarios))
	for s := range scenarios {
		names = append(names, s)
	}
	return p.c.pushAlerts(ctx, alerts, names)
}

// land ends the send of the batch in flight: the blocks before sequence
// number end (the batch, when it was sent or refused; 0 when it stays
// queued) leave the queue, and they and those of the batch Push dropped
// meanwhile are reported as ev.
func (p *Pusher) land(end uint64, ev PushEvent) {
	p.mu.Lock()
	n := p.flightDropped
	p.flightDropped, p.flightEnd = 0, 0
	if end > p.seq0 {
		k := min(end-p.seq0, uint64(len(p.q)))
		p.q = p.q[k:]
		p.seq0 += k
		p.dirty = true
		n += int(k)
	}
	p.mu.Unlock()
	if n > 0 {
		p.notify(ev, n)
	}
}

// logDropped logs, once per burst, the blocks the full queue dropped.
func (p *Pusher) logDropped() {
	p.mu.Lock()
	n := p.dropped
	p.dropped = 0
	p.mu.Unlock()
	if n > 0 {
		p.log.Warnf("adminalert: crowdsec: the queue of blocks for the LAPI is full (%d): the %d oldest were dropped unsent", p.max, n)
	}
}
