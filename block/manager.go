package block

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/block/records"
	"github.com/scanwarden/scanwarden/detect"
)

// Action is an external command run for a ban: a KILL_ROUTE that the
// native backend does not cover, or KILL_RUN_CMD.
type Action interface {
	// Run runs the command for b in mode (tcp, udp, stcp, ...) and returns
	// the command line as logged and its output.
	Run(ctx context.Context, b Ban, mode string) (cmdline string, output []byte, err error)
}

// Journal records what PortSentry recorded: the history file (every
// detection) and the blocked file (every block).
type Journal interface {
	// History appends a history line.
	History(line string) error
	// Blocked appends a line to the blocked file of mode.
	Blocked(mode, line string) error
	// Unblocked removes addr's lines from every blocked file.
	Unblocked(addr netip.Addr) error
}

// Response is what a detection of one protocol leads to: PortSentry
// 1.2's BLOCK_TCP and BLOCK_UDP, with their values.
type Response int

const (
	// LogOnly (0): report the scan, block nothing, run nothing.
	LogOnly Response = 0
	// Act (1): block the scanner (every Blocker, KILL_ROUTE) and run
	// KILL_RUN_CMD if there is one.
	Act Response = 1
	// RunCmdOnly (2): only run KILL_RUN_CMD.
	RunCmdOnly Response = 2
)

// DefaultRateLimit is the limit on new blocks a minute when a Policy
// gives none: enough for every real scanner at once, few enough that a
// flood of forged sources cannot fill the firewall.
const DefaultRateLimit = 60

// Policy is what to do with a detection (the daemon takes it from the
// config).
type Policy struct {
	BlockTCP, BlockUDP Response
	KillRunCmdFirst    bool
	ExpiryTCP          time.Duration // 0: never
	ExpiryUDP          time.Duration
	RateLimit          int // new blocks a minute; DefaultRateLimit when below 1
	ResolveHost        bool
}

// Options are a Manager's parts. Blockers, Route and RunCmd may be empty.
type Options struct {
	Policy   Policy
	Blockers []Blocker // the native firewall backend and hosts.deny
	Route    Action    // KILL_ROUTE, when it is not a native iptables rule
	RunCmd   Action    // KILL_RUN_CMD
	Never    *NeverBlock
	State    *StateFile
	Journal  Journal
	Log      logrus.FieldLogger
	Now      func() time.Time // time.Now when nil
	// Quiet, when not nil, is asked once the outcome of a decision that
	// blocks nothing is known (ignored, already blocked, rate limited,
	// logged or command only; never for a block or an error): true keeps
	// the decision's log lines out, for the caller to count (the log
	// stays bounded under a flood of forged sources). The history file
	// and the commands are not affected.
	Quiet func(Outcome) bool
	// Previous, when not nil, is the manager of the config this one
	// replaces (a reload): the history of its rate limits and its names
	// carry over, so that a reload neither resets BLOCK_RATE_LIMIT nor
	// forgets the names looked up (nor that the resolver is silent). The
	// names, carried over whole, keep Previous's LookupAddr and Now.
	Previous *Manager
	// LookupAddr resolves a name for RESOLVE_HOST (net.DefaultResolver's
	// when nil).
	LookupAddr func(ctx context.Context, addr string) ([]string, error)
	// Outlast, when not nil, is asked by Expire of each ban that has run
	// out: a decision made elsewhere (the fleet's) that bans the address
	// still, which then holds it (its Until, Source and Reason replace
	// the ban's; the rules stay). It is called with the manager's lock
	// held and must not call the manager.
	Outlast func(addr netip.Addr, now time.Time) (Ban, bool)
}

// Manager turns alerts into blocks and keeps them: exactly one block per
// source in every backend, recorded in the state file before the backends
// are touched (so a crash half-way is repaired by Restore), the never-block
// list and the rate limit checked first. Safe for concurrent use; calls are
// serialised, except that Pending.Finish (records and commands) runs
// beside Begin, which never waits.
type Manager struct {
	mu sync.Mutex
	// finishMu orders Pending.Finish calls (their files and commands),
	// which do not hold mu: Begin must never wait for a command.
	finishMu sync.Mutex
	o        Options
	// limitOne and limitMore are the rate limits of sources reported on a
	// single probe (which one forged packet suffices for) and of sources
	// with more evidence: a flood of forged one-packet sources exhausts
	// only the first, and a real scanner in its midst is still blocked.
	limitOne, limitMore *rateLimiter
	// names are RESOLVE_HOST's lookups.
	names *names
}

// NewManager returns a manager with the given parts.
func NewManager(o Options) (*Manager, error) {
	if o.State == nil || o.Never == nil || o.Log == nil {
		return nil, errors.New("block: a manager needs a state file, a never-block list and a logger")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LookupAddr == nil {
		o.LookupAddr = net.DefaultResolver.LookupAddr
	}
	if o.Policy.RateLimit < 1 {
		o.Policy.RateLimit = DefaultRateLimit
	}
	m := &Manager{o: o}
	if prev := o.Previous; prev != nil {
		m.limitOne, m.limitMore = prev.limitOne.carried(o.Policy.RateLimit), prev.limitMore.carried(o.Policy.RateLimit)
		m.names = prev.names
	} else {
		m.limitOne, m.limitMore = newRateLimiter(o.Policy.RateLimit), newRateLimiter(o.Policy.RateLimit)
		m.names = newNames(o.LookupAddr, o.Now)
	}
	m.o.Previous = nil // not kept: the old manager is for the garbage collector
	return m, nil
}

// Outcome is what Handle did with an alert.
type Outcome int

const (
	// Ignored: the source is on the never-block list.
	Ignored Outcome = iota
	// AlreadyBlocked: the source has a ban already.
	AlreadyBlocked
	// LoggedOnly: BLOCK_TCP/BLOCK_UDP is 0.
	LoggedOnly
	// RateLimited: the limit on new blocks refused it.
	RateLimited
	// CommandOnly: BLOCK_x is 2, KILL_RUN_CMD was run.
	CommandOnly
	// Blocked: the source was blocked.
	Blocked
	// Forged: the source was judged forged (detect.Origins.Judge):
	// someone else sent the probes in its name. Nothing is blocked,
	// recorded or run for it.
	Forged
	// Failed: the ban could not be recorded (the state file could not be
	// read or written), so nothing was blocked; the error says why.
	Failed
)

var outcomeNames = [...]string{"ignored", "already blocked", "logged only", "rate limited", "command only", "blocked", "forged", "failed"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Decision is what Handle did with an alert, and when.
type Decision struct {
	Outcome Outcome
	// RuleAt is when the first backend (the firewall, when one is
	// configured) had blocked the source: before Handle returns, as the
	// records and commands come after. Zero unless a backend blocked.
	RuleAt time.Time
	// Quiet says Options.Quiet kept the decision's log lines out (never
	// for a block or an error).
	Quiet bool
	// Until is, for Blocked, when the ban expires (the zero time: never).
	Until time.Time
	// Why is, for Ignored, why the source must not be blocked
	// (NeverBlock.Reason: ReasonIgnoreFile for the ignore file); for
	// Forged, the evidence.
	Why string
}

// Handle is Decide's outcome alone.
func (m *Manager) Handle(ctx context.Context, a *detect.Alert, mode string) (Outcome, error) {
	d, err := m.Decide(ctx, a, mode)
	return d.Outcome, err
}

// Decide acts on one alert, as PortSentry 1.2 would for BLOCK_TCP or
// BLOCK_UDP: log the attackalert line, skip never-block and already
// blocked sources, write the history line, then (mode 1) block with every
// backend, run KILL_ROUTE and KILL_RUN_CMD (first when KILL_RUN_CMD_FIRST),
// or (mode 2) run KILL_RUN_CMD only. mode is PortSentry's mode name for
// the record files (stcp, sudp, ...). A failing backend does not stop the
// others; the ban is recorded anyway so that Restore adds what is missing.
//
// Every decision takes the one path Begin and Finish make: Decide is
// that path on a thread that may wait (for the manager's and the state's
// locks, an iptables run, a command), Begin its first half where the
// alert is raised, which never waits.
func (m *Manager) Decide(ctx context.Context, a *detect.Alert, mode string) (Decision, error) {
	return m.begin(ctx, a, mode, true).Finish(ctx)
}

// Begin is the first half of the decision on a, made to be called where
// the alert is raised (a capture thread) so that no hand-over delays the
// block: the ban's pending line and the Prompt firewall backends, nothing
// else (no name lookup, no log line of its own: only the dry-run backend's
// Block logs; no file but the pending line), and without waiting for a
// lock. When it would have to wait (the manager or the state's lock is
// busy, a backend is not Prompt, KILL_RUN_CMD_FIRST or BLOCK_x other than
// 1 asks for a command or a state read first), and for a never-block
// source, Begin does nothing and returns nil: the alert is then for
// Decide. The rest (the state file,
// hosts.deny, KILL_ROUTE, KILL_RUN_CMD, the records and the log lines,
// and the refusals: already blocked, rate limited) is Pending.Finish's,
// which must follow.
func (m *Manager) Begin(ctx context.Context, a *detect.Alert, mode string) *Pending {
	return m.begin(ctx, a, mode, false)
}

// begin is the first half of every decision: the checks that need the
// manager's lock and, for a block, the state and the firewall. With wait
// false it returns nil rather than wait for anything.
func (m *Manager) begin(ctx context.Context, a *detect.Alert, mode string, wait bool) *Pending {
	if wait {
		m.mu.Lock()
	} else if !m.mu.TryLock() {
		return nil
	}
	defer m.mu.Unlock()
	p := m.newPending(a, mode)
	if why := m.o.Never.Reason(p.addr); why != "" {
		if !wait {
			return nil // rare, and its log lines are all Finish's
		}
		p.decided, p.outcome, p.why = true, Ignored, why
		return p
	}
	if a.Origin.Verdict == detect.Forged {
		// never blocked, whatever BLOCK_x says, and nothing written: not
		// even the history line, which fail2ban reads as a ban to copy.
		// The rate limit is not spent on it either.
		p.decided, p.outcome, p.why = true, Forged, a.Origin.Evidence
		return p
	}
	if p.blockMode != Act {
		if !wait {
			return nil
		}
		p.decided, p.outcome = true, LoggedOnly
		if p.blockMode == RunCmdOnly {
			p.outcome = CommandOnly
		}
		bans, err := m.o.State.Load()
		switch i := findBan(bans, p.addr); {
		case err != nil:
			p.outcome, p.err = Failed, err
		case i >= 0 && !bans[i].Expired(p.now):
			p.outcome = AlreadyBlocked
		}
		return p
	}
	if !wait && m.o.Policy.KillRunCmdFirst {
		return nil
	}
	var firewall []Blocker
	for _, b := range m.o.Blockers {
		switch t := b.Traits(); {
		case t.Records:
			p.records = append(p.records, b)
		case !t.Prompt && !wait:
			return nil // a backend that may keep the capture waiting
		default:
			firewall = append(firewall, b)
		}
	}
	// The ban goes into the state first (a pending line, before the
	// firewall; the state file rewritten by Finish): whatever fails
	// below, a restart (Restore) puts it in place. The check that the
	// source has no ban yet and the rate limit are done under the state's
	// lock, so that two processes (PortSentry's -tcp and -udp pair) never
	// block the same source twice, and the backends are changed under it
	// too, so that another process's Resync cannot add a rule between a
	// backend's check and its append. The log lines wait until the
	// firewall is changed: nothing but the block is on the way from alert
	// to rule.
	p.taken, p.err = m.o.State.Pend(p.ban, p.now, p.admit, func() {
		p.acted = true
		if m.o.Policy.KillRunCmdFirst {
			p.errs = append(p.errs, m.run(ctx, p.logger(), m.o.RunCmd, p.ban, mode))
		}
		p.block(ctx, firewall)
	}, wait)
	if !wait && errors.Is(p.err, ErrBusy) {
		return nil
	}
	return p
}

// Finish completes what Begin (or Decide) started and says what was
// done. Finishes are serialised, and never hold the manager's lock, so
// Begin does not wait for them.
func (p *Pending) Finish(ctx context.Context) (Decision, error) {
	m := p.m
	m.finishMu.Lock()
	defer m.finishMu.Unlock()
	log := p.logger()
	if p.decided {
		return m.finishRefusal(ctx, p, log)
	}
	if p.acted {
		// the state file made to hold the ban, and hosts.deny under the
		// state's lock, only while the ban is there: an unblock in the
		// meantime (another process) stays one
		err := m.o.State.FoldThen(func(bans []Ban) {
			if findBan(bans, p.addr) >= 0 {
				p.block(ctx, p.records)
			}
		})
		if err != nil && p.err == nil {
			p.err = err
		}
	}
	return m.finish(ctx, p, log)
}

// finishRefusal finishes a decision begin took without blocking: a
// never-block source, or BLOCK_x 0 or 2 (the history line, and the
// command for 2, unless the source is blocked already).
func (m *Manager) finishRefusal(ctx context.Context, p *Pending, log logrus.FieldLogger) (Decision, error) {
	if p.outcome == Forged {
		// no name lookup: a forger would choose whose names we look up
		quiet := m.quiet(Forged)
		if !quiet {
			a := p.a
			log.WithFields(logrus.Fields{"forged": true, "evidence": p.why}).Warn(
				records.ForgedAlert(a.Type.PortSentryLabel(), p.addr, detect.ProtoName(a.Type.Proto()), a.Port, p.why))
		}
		return Decision{Outcome: Forged, Quiet: quiet, Why: p.why}, nil
	}
	recorded := p.outcome == LoggedOnly || p.outcome == CommandOnly // a history line
	quiet := p.err == nil && m.quiet(p.outcome)
	m.nameFor(ctx, p, !quiet || recorded)
	if !quiet {
		log.Warn(p.scan)
	}
	switch p.outcome {
	case Failed:
		return Decision{Outcome: Failed}, p.err
	case Ignored:
		if !quiet {
			log.Infof("attackalert: Host: %s/%s is %s: not blocked", p.host, p.addr, p.why)
		}
		return Decision{Outcome: Ignored, Quiet: quiet, Why: p.why}, nil
	case AlreadyBlocked:
		if !quiet {
			log.Info(records.AlreadyBlocked(p.host, p.addr))
		}
		return Decision{Outcome: AlreadyBlocked, Quiet: quiet}, nil
	}
	errs := []error{m.history(p.histLine())}
	if p.outcome == CommandOnly {
		errs = append(errs, m.run(ctx, log, m.o.RunCmd, p.ban, p.mode))
	}
	return Decision{Outcome: p.outcome, Quiet: quiet}, errors.Join(errs...)
}

// quiet asks Options.Quiet whether a decision of outcome out, other than
// a block, is to be logged.
func (m *Manager) quiet(out Outcome) bool {
	return m.o.Quiet != nil && m.o.Quiet(out)
}

// nameFor names p's source for its lines and records: its host name
// (RESOLVE_HOST) when lookup is set and the lines or records need it,
// else the address.
func (m *Manager) nameFor(ctx context.Context, p *Pending, lookup bool) {
	if lookup {
		p.name(m.hostName(ctx, p.addr)) // RESOLVE_HOST's lookup, after the block
	} else {
		p.name(p.addr.String())
	}
}

// Pending is an alert's decision between its two halves (begin and
// Finish).
type Pending struct {
	m    *Manager
	a    *detect.Alert
	mode string
	now  time.Time
	addr netip.Addr
	ban  Ban
	host string
	scan string
	lim  *rateLimiter
	// blockMode is BLOCK_TCP or BLOCK_UDP, by the scan's protocol.
	blockMode Response
	limOf     string
	errs      []error
	later     []func(log logrus.FieldLogger) // log lines of the blocks
	ruleAt    time.Time
	// records are the backends that record rather than block
	// (hosts.deny), left to Finish.
	records                           []Blocker
	limited, limitFirst, acted, taken bool
	// err is the state's (recording the ban, or reading it).
	err error
	// decided: begin took the decision without blocking (outcome, and
	// why for a never-block source); Finish only reports it.
	decided bool
	outcome Outcome
	why     string
}

func (m *Manager) newPending(a *detect.Alert, mode string) *Pending {
	now := m.o.Now()
	addr := a.Src.Unmap()
	proto := strings.ToLower(detect.ProtoName(a.Type.Proto()))
	expire, blockMode := m.o.Policy.ExpiryTCP, m.o.Policy.BlockTCP
	if proto == "udp" {
		expire, blockMode = m.o.Policy.ExpiryUDP, m.o.Policy.BlockUDP
	}
	p := &Pending{m: m, a: a, mode: mode, now: now, addr: addr, blockMode: blockMode,
		ban: Ban{
			Addr: addr, Proto: proto, Port: a.Port, Type: a.Type.String(),
			Reason: fmt.Sprintf("%s scan (%s): %d probes, score %d", a.Type, a.Trigger, a.Probes, a.Score),
			Since:  now, Until: expiry(now, expire),
		},
		lim: m.limitMore, limOf: "sources of several probes"}
	if SingleProbe(a) {
		p.lim, p.limOf = m.limitOne, "sources seen in a single probe"
	}
	return p
}

// SingleProbe reports whether a is rate limited as a source seen in a
// single probe (the budget one forged packet can spend) rather than as one
// with more evidence.
func SingleProbe(a *detect.Alert) bool { return a.Probes <= 1 }

// logger returns the alert's logger.
func (p *Pending) logger() logrus.FieldLogger {
	return p.m.o.Log.WithFields(logrus.Fields{"src": p.addr.String(), "type": p.a.Type.String()})
}

// name names the source as host for the records and log lines (and writes
// the attackalert line, p.scan).
func (p *Pending) name(host string) {
	a := p.a
	p.host = host
	p.scan = records.ScanAlert(a.Type.PortSentryLabel(), host, p.addr, detect.ProtoName(a.Proto), a.Port)
	if a.Connected {
		p.scan = records.ConnectAlert(host, p.addr, detect.ProtoName(a.Proto), a.Port)
	}
}

// histLine is the history line of the decision. Its port and protocol,
// as the attackalert line's, are the alerting packet's ("Port: 161 UDP"
// for a datagram to 161 from a source that mostly sent SYNs: its type,
// which chooses BLOCK_x and BAN_EXPIRY_x, is still a TCP one).
func (p *Pending) histLine() string {
	return records.HistoryLine(p.now, p.host, p.addr, p.a.Port, detect.ProtoName(p.a.Proto))
}

// admit is the rate limit's say, asked under the state's lock.
func (p *Pending) admit() bool {
	ok, first := p.lim.allow(p.now)
	p.limited, p.limitFirst = !ok, first
	return ok
}

// block blocks the source with bs, keeping when the first succeeded and
// the log lines for later.
func (p *Pending) block(ctx context.Context, bs []Blocker) {
	addr := p.addr
	for _, b := range bs {
		err := b.Block(ctx, p.ban)
		if err == nil && p.ruleAt.IsZero() {
			p.ruleAt = time.Now()
		}
		if err != nil {
			p.later = append(p.later, func(log logrus.FieldLogger) { log.Errorf("blocking %s with %s: %v", addr, b.Name(), err) })
			p.errs = append(p.errs, fmt.Errorf("%s: %w", b.Name(), err))
			continue
		}
		desc := b.Describe(addr)
		if b.Traits().Records {
			p.later = append(p.later, func(log logrus.FieldLogger) { log.Warn(records.WrappersBlocked(addr, desc)) })
		} else {
			p.later = append(p.later, func(log logrus.FieldLogger) { log.Warn(records.RouteBlocked(addr, desc)) })
		}
	}
}

// finish is the end of a decision to block, after the state and the
// backends: the log lines, the refusals, KILL_ROUTE, KILL_RUN_CMD, the
// history and the blocked file.
func (m *Manager) finish(ctx context.Context, p *Pending, log logrus.FieldLogger) (Decision, error) {
	addr, errs := p.addr, p.errs
	quiet := false
	switch {
	case p.limited:
		quiet = m.quiet(RateLimited)
	case p.err == nil && p.taken:
		quiet = m.quiet(AlreadyBlocked)
	}
	m.nameFor(ctx, p, !quiet)
	if !quiet {
		log.Warn(p.scan)
	}
	for _, f := range p.later {
		f(log)
	}
	switch {
	case p.limited:
		if p.limitFirst {
			m.o.Log.Warnf("adminalert: more than %d new blocks a minute of %s: further ones are logged but not blocked until the rate eases", m.o.Policy.RateLimit, p.limOf)
		}
		return Decision{Outcome: RateLimited, Quiet: quiet}, nil
	case p.err != nil && !p.acted:
		return Decision{Outcome: Failed}, fmt.Errorf("recording the ban of %s: %w", addr, p.err)
	case p.err != nil:
		errs = append(errs, fmt.Errorf("recording the ban of %s: %w", addr, p.err))
	case p.taken:
		if !quiet {
			log.Info(records.AlreadyBlocked(p.host, addr))
		}
		return Decision{Outcome: AlreadyBlocked, Quiet: quiet}, nil
	}
	if m.o.Route != nil {
		cmdline, out, err := m.o.Route.Run(ctx, p.ban, p.mode)
		logOutput(log, cmdline, out)
		if err != nil {
			log.Errorf("KILL_ROUTE for %s: %v", addr, err)
			errs = append(errs, fmt.Errorf("KILL_ROUTE: %w", err))
		} else {
			log.Warn(records.RouteBlocked(addr, cmdline))
		}
	}
	if !m.o.Policy.KillRunCmdFirst {
		errs = append(errs, m.run(ctx, log, m.o.RunCmd, p.ban, p.mode))
	}
	histLine := p.histLine()
	errs = append(errs, m.history(histLine))
	if m.o.Journal != nil {
		if err := m.o.Journal.Blocked(p.mode, histLine); err != nil {
			errs = append(errs, err)
		}
	}
	return Decision{Outcome: Blocked, RuleAt: p.ruleAt, Until: p.ban.Until}, errors.Join(errs...)
}

func (m *Manager) history(line string) error {
	if m.o.Journal == nil {
		return nil
	}
	return m.o.Journal.History(line)
}

func (m *Manager) run(ctx context.Context, log logrus.FieldLogger, a Action, b Ban, mode string) error {
	if a == nil {
		return nil
	}
	cmdline, out, err := a.Run(ctx, b, mode)
	logOutput(log, cmdline, out)
	if err != nil {
		log.Errorf("KILL_RUN_CMD for %s: %v", b.Addr, err)
		return fmt.Errorf("KILL_RUN_CMD: %w", err)
	}
	log.Warn(records.CommandRun(b.Addr, cmdline))
	return nil
}

func logOutput(log logrus.FieldLogger, cmdline string, out []byte) {
	if s := strings.TrimSpace(string(out)); s != "" {
		log.Infof("output of %q: %s", cmdline, s)
	}
}

// hostName is the name for the records: the address itself unless
// RESOLVE_HOST asks for a reverse lookup, which never waits more than
// nameWait (see names).
func (m *Manager) hostName(ctx context.Context, addr netip.Addr) string {
	if !m.o.Policy.ResolveHost {
		return addr.String()
	}
	return m.names.name(ctx, addr)
}

// List returns the current bans, sorted by address.
func (m *Manager) List() ([]Ban, error) { return m.o.State.Load() }

// Unblock lifts the bans of addrs from every backend, the state and the
// blocked files; addrs are taken as bans are kept, IPv4-mapped ones as
// IPv4 and without a zone (fe80::66%eth0 is fe80::66). An address that is not banned is still removed from the
// backends (a leftover of a crash) and reported in the returned list of
// addresses that had no ban.
func (m *Manager) Unblock(ctx context.Context, addrs ...netip.Addr) (notBanned []netip.Addr, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := map[netip.Addr]bool{}
	for _, a := range addrs {
		want[a.WithZone("").Unmap()] = true
	}
	var errs []error
	found := map[netip.Addr]bool{}
	// the backends under the state's lock, so that a Resync of another
	// process cannot put a rule back between its removal and the ban's
	if err := m.o.State.Update(func(bans []Ban) ([]Ban, bool, error) {
		for a := range want {
			errs = append(errs, m.unblockBackends(ctx, a)...)
		}
		out := bans[:0]
		for _, b := range bans {
			if want[b.Addr] {
				found[b.Addr] = true
				continue
			}
			out = append(out, b)
		}
		return out, len(found) > 0, nil
	}); err != nil {
		errs = append(errs, err)
	}
	for a := range want {
		if found[a] {
			m.o.Log.WithField("src", a.String()).Warnf("attackalert: Host %s has been unblocked", a)
		} else {
			notBanned = append(notBanned, a)
		}
	}
	slices.SortFunc(notBanned, netip.Addr.Compare)
	return notBanned, errors.Join(errs...)
}

func (m *Manager) unblockBackends(ctx context.Context, a netip.Addr) []error {
	var errs []error
	for _, b := range m.o.Blockers {
		if err := b.Unblock(ctx, a); err != nil {
			errs = append(errs, fmt.Errorf("%s: unblocking %s: %w", b.Name(), a, err))
		}
	}
	if m.o.Journal != nil {
		if err := m.o.Journal.Unblocked(a); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Expire lifts every ban that has run out at now. It returns how many.
func (m *Manager) Expire(ctx context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.o.Now()
	var gone []Ban
	var errs []error
	err := m.o.State.Update(func(bans []Ban) ([]Ban, bool, error) {
		out := bans[:0]
		gone = gone[:0]
		held := false
		for _, b := range bans {
			if !b.Expired(now) {
				out = append(out, b)
				continue
			}
			if nb, ok := m.outlast(b.Addr, now); ok {
				m.o.Log.WithField("src", b.Addr.String()).Infof("block of %s ran out here; %s holds it until %s", b.Addr, nb.Reason, untilText(nb.Until))
				b.Until, b.Source, b.Reason = nb.Until, nb.Source, nb.Reason
				out = append(out, b)
				held = true
				continue
			}
			gone = append(gone, b)
		}
		// the backends first: a ban leaves the state only when every
		// backend has let it go, so a failure is retried next time
		var kept []Ban
		for _, b := range gone {
			if e := m.unblockBackends(ctx, b.Addr); len(e) > 0 {
				errs = append(errs, e...)
				kept = append(kept, b)
				continue
			}
			m.o.Log.WithField("src", b.Addr.String()).Warnf("attackalert: Host %s block expired (%s since %s): unblocked", b.Addr, b.Type, b.Since.Format(time.RFC3339))
		}
		out = append(out, kept...)
		return out, len(gone) > 0 || held, nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return len(gone), errors.Join(errs...)
}

// outlast asks Options.Outlast whether a decision made elsewhere still
// bans addr at now.
func (m *Manager) outlast(addr netip.Addr, now time.Time) (Ban, bool) {
	if m.o.Outlast == nil {
		return Ban{}, false
	}
	b, ok := m.o.Outlast(addr, now)
	return b, ok && !b.Expired(now)
}

// untilText is a ban's end in a log line.
func untilText(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// Restore brings the backends in line with the state on start: expired
// bans are lifted, every backend is synced to the remaining ones (missing
// entries added, entries for addresses without a ban removed, nothing
// duplicated).
func (m *Manager) Restore(ctx context.Context) error {
	n, err := m.Resync(ctx)
	m.o.Log.Infof("restored %d ban(s) from %s", n, m.o.State.Path())
	return err
}

// Resync is Restore without its log line, for the daemon to run
// periodically: it lifts expired bans and puts back what an administrator
// or another tool removed (a flushed chain, a deleted rule, an edited
// hosts.deny). It returns the number of bans in force. The backends are
// synced under the state's exclusive lock, so that two processes sharing
// the state (PortSentry's -tcp and -udp pair) never both add what they
// both found missing.
func (m *Manager) Resync(ctx context.Context) (int, error) {
	var errs []error
	if _, err := m.Expire(ctx); err != nil {
		errs = append(errs, fmt.Errorf("lifting expired bans: %w", err))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	err := m.o.State.Update(func(bans []Ban) ([]Ban, bool, error) {
		n = len(bans)
		for _, b := range m.o.Blockers {
			if err := b.Prepare(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", b.Name(), err))
			}
			if err := b.Sync(ctx, bans); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", b.Name(), err))
			}
		}
		return bans, false, nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}

// Trapper returns the first backend that can hold a kernel trap, or nil.
func (m *Manager) Trapper() Trapper {
	for _, b := range m.o.Blockers {
		if t, ok := b.(Trapper); ok {
			return t
		}
	}
	return nil
}

// Flush removes everything scanwarden added: every backend's entries, the
// state, and the blocked files' lines of the banned sources.
func (m *Manager) Flush(ctx context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	n := 0
	// under the state's lock, as Unblock
	if err := m.o.State.Update(func(bans []Ban) ([]Ban, bool, error) {
		for _, b := range m.o.Blockers {
			if err := b.Flush(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", b.Name(), err))
			}
		}
		n = len(bans)
		for _, b := range bans {
			if m.o.Journal != nil {
				if err := m.o.Journal.Unblocked(b.Addr); err != nil {
					errs = append(errs, err)
				}
			}
		}
		return nil, n > 0, nil
	}); err != nil {
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}

// BackendCount is how many addresses one backend blocks.
type BackendCount struct {
	Backend string
	Count   int
}

// Census returns how many addresses each backend blocks now, as its List
// reads them from the kernel or its file, in the order of BackendNames. A
// backend whose List fails is left out and its error returned with the
// others'. It takes the manager's lock, as Resync does: the housekeeping
// calls it, never the capture thread.
func (m *Manager) Census(ctx context.Context) ([]BackendCount, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []BackendCount
	var errs []error
	for _, b := range m.o.Blockers {
		addrs, err := b.List(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: listing its blocks: %w", b.Name(), err))
			continue
		}
		out = append(out, BackendCount{Backend: b.Name(), Count: len(addrs)})
	}
	return out, errors.Join(errs...)
}

// BackendNames names the manager's backends.
func (m *Manager) BackendNames() []string {
	var out []string
	for _, b := range m.o.Blockers {
		out = append(out, b.Name())
	}
	if len(out) == 0 {
		out = append(out, "no backend")
	}
	return out
}
