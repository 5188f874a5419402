package crowdsec

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

func write(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadCredentials(t *testing.T) {
	// as cscli machines add -f writes it
	p := write(t, "creds.yaml", "url: http://127.0.0.1:8080\nlogin: web1\npassword: S3cret\n")
	c, err := ReadCredentials(p)
	if err != nil || c != (Credentials{URL: "http://127.0.0.1:8080", Login: "web1", Password: "S3cret"}) {
		t.Fatalf("%+v %v", c, err)
	}
	p = write(t, "creds.yaml", "---\n# hand-written\nurl: 'https://lapi.example:8443/'\nlogin: \"web1\"\npassword: \"a:b c\"\nca_cert_path: /etc/x.pem\n")
	if c, err := ReadCredentials(p); err != nil || c.URL != "https://lapi.example:8443/" || c.Password != "a:b c" {
		t.Fatalf("%+v %v", c, err)
	}
	for text, want := range map[string]string{
		"url: http://x:1\nlogin: a\n":                 "no password",
		"url: http://x:1\nlogin a\npassword: b\n":     "creds.yaml:2: want \"key: value\"",
		"url: ftp://x\nlogin: a\npassword: b\n":       "LAPI url",
		"url: http://x:1/?a=b\nlogin: a\npassword: b": "LAPI url",
	} {
		p := write(t, "creds.yaml", text)
		if _, err := ReadCredentials(p); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: %v, want an error naming the file and %q", text, err, want)
		}
	}
	if _, err := ReadCredentials(filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "crowdsec credentials") {
		t.Errorf("missing file: %v", err)
	}
}

func TestReadBouncerKey(t *testing.T) {
	if k, err := ReadBouncerKey(write(t, "key", "a85ee5000e9f6999fe003e11bb16df6f\n")); err != nil || k != "a85ee5000e9f6999fe003e11bb16df6f" {
		t.Fatalf("%q %v", k, err)
	}
	for _, text := range []string{"", "\n\n", "two words\n"} {
		if _, err := ReadBouncerKey(write(t, "key", text)); err == nil {
			t.Errorf("%q accepted", text)
		}
	}
}

// enforcer records what a Puller asks.
type enforcer struct {
	mu     sync.Mutex
	calls  []string
	active map[netip.Addr]bool
}

func (e *enforcer) Enforce(_ context.Context, bans []Pulled) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range bans {
		e.calls = append(e.calls, "enforce "+b.Addr.String()+" "+b.Until.Format(time.RFC3339)+" "+b.Scenario)
	}
}

func (e *enforcer) Lift(_ context.Context, addrs []netip.Addr, asOf time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range addrs {
		e.calls = append(e.calls, "lift "+a.String()+" as of "+asOf.Format(time.TimeOnly))
	}
}

func (e *enforcer) Reconcile(_ context.Context, active map[netip.Addr]bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.active = active
	e.calls = append(e.calls, "reconcile")
}

func (e *enforcer) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.calls
	e.calls = nil
	return c
}

func ban(id int64, addr, dur, scenario string) Decision {
	return Decision{ID: id, Duration: dur, Origin: "crowdsec", Scenario: scenario, Scope: "Ip", Type: "ban", Value: addr}
}

// TestPullerLinks: an address is enforced once for all its decisions
// (until the longest), lifted when its last decision goes and not before,
// and a decision deleted and replaced in one answer lifts nothing;
// decisions that are no Ip ban are not followed.
func TestPullerLinks(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	e := &enforcer{}
	log, _ := test.NewNullLogger()
	p := &Puller{log: log, enf: e, now: func() time.Time { return now }, links: map[netip.Addr]map[int64]linked{}}
	ctx := context.Background()
	p.apply(ctx, stream{New: []Decision{
		ban(1, "198.51.100.7", "1h", "scanwarden/portscan-syn"),
		ban(2, "fd00:77::7", "30m", "scanwarden/portscan-fin"),
		ban(3, "fd00:77::7", "2h0m0.5s", "crowdsecurity/ssh-bf"),
		ban(4, "::ffff:198.51.100.8", "1h", "x"),
		{ID: 5, Duration: "1h", Scope: "Range", Type: "ban", Value: "203.0.113.0/24"},
		{ID: 6, Duration: "1h", Scope: "Ip", Type: "captcha", Value: "203.0.113.9"},
		ban(7, "203.0.113.10", "-2s", "expired"),
		ban(8, "not an address", "1h", "x"),
	}}, now)
	want := []string{
		"enforce 198.51.100.7 2026-12-07T11:00:00Z scanwarden/portscan-syn",
		"enforce fd00:77::7 2026-12-07T12:00:00Z crowdsecurity/ssh-bf",
		"enforce 198.51.100.8 2026-12-07T11:00:00Z x",
		"reconcile",
	}
	if got := e.take(); !slices.Equal(got, want) {
		t.Fatalf("startup:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(e.active) != 3 || !e.active[netip.MustParseAddr("198.51.100.8")] {
		t.Fatalf("reconciled with %v", e.active)
	}
	// the decision standing the longest for an address, while it stands
	v6 := netip.MustParseAddr("fd00:77::7")
	if got, ok := p.Standing(v6, now.Add(time.Hour)); !ok || got.Scenario != "crowdsecurity/ssh-bf" || !got.Until.Equal(now.Add(2*time.Hour+time.Second/2)) {
		t.Errorf("standing for %s: %+v %v", v6, got, ok)
	}
	if got, ok := p.Standing(v6, now.Add(3*time.Hour)); ok {
		t.Errorf("standing after every decision ended: %+v", got)
	}
	if got, ok := p.Standing(netip.MustParseAddr("::ffff:198.51.100.8"), now); !ok || got.Addr != netip.MustParseAddr("198.51.100.8") {
		t.Errorf("standing for a mapped address: %+v %v", got, ok)
	}
	// one of two decisions goes: the address stays
	p.apply(ctx, stream{Deleted: []Decision{ban(2, "fd00:77::7", "-1s", "")}}, now)
	if got := e.take(); len(got) != 0 {
		t.Fatalf("one of two decisions deleted: %q", got)
	}
	// the last goes: lifted, once, however often the stream repeats it
	for range 2 {
		p.apply(ctx, stream{Deleted: []Decision{ban(3, "fd00:77::7", "-1s", ""), ban(99, "203.0.113.99", "-1s", "")}}, now.Add(-time.Minute))
	}
	if got := e.take(); !slices.Equal(got, []string{"lift fd00:77::7 as of 09:59:00"}) {
		t.Fatalf("last decision deleted: %q", got)
	}
	if got, ok := p.Standing(v6, now); ok {
		t.Errorf("standing after its decisions were deleted: %+v", got)
	}
	// deleted and replaced in one answer: enforced again, never lifted
	p.apply(ctx, stream{Deleted: []Decision{ban(1, "198.51.100.7", "-1s", "")}, New: []Decision{ban(9, "198.51.100.7", "4h", "cscli")}}, now)
	if got := e.take(); !slices.Equal(got, []string{"enforce 198.51.100.7 2026-12-07T14:00:00Z cscli"}) {
		t.Fatalf("replaced: %q", got)
	}
}

// lapi is a LAPI stand-in for the push tests: machines log in, alerts
// are taken when it is up.
type lapi struct {
	mu     sync.Mutex
	up     bool
	code   int // the answer to alerts when not 0
	tokens int
	forget bool // answer the next alert request 401 (a token it forgot)
	alerts []Alert
	// hold, when set, makes the next alert request say so on entered
	// and wait for it to be closed before it is answered
	hold, entered chan struct{}
}

func (l *lapi) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	if hold := l.hold; hold != nil && r.URL.Path == "/v1/alerts" {
		l.hold = nil
		l.mu.Unlock()
		l.entered <- struct{}{}
		<-hold
		l.mu.Lock()
	}
	defer l.mu.Unlock()
	if !l.up {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	switch r.URL.Path {
	case "/v1/watchers/login":
		var in struct {
			MachineID string `json:"machine_id"`
			Password  string `json:"password"`
		}
		if json.NewDecoder(r.Body).Decode(&in) != nil || in.MachineID != "web1" || in.Password != "pw" {
			http.Error(w, `{"message":"incorrect Username or Password"}`, http.StatusUnauthorized)
			return
		}
		l.tokens++
		json.NewEncoder(w).Encode(map[string]any{"code": 200, "token": "tok" + string(rune('0'+l.tokens))})
	case "/v1/alerts":
		if l.forget || r.Header.Get("Authorization") != "Bearer tok"+string(rune('0'+l.tokens)) {
			l.forget = false
			http.Error(w, `{"message":"token is expired"}`, http.StatusUnauthorized)
			return
		}
		if l.code != 0 {
			http.Error(w, `{"message":"refused"}`, l.code)
			return
		}
		var in []Alert
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		l.alerts = append(l.alerts, in...)
		json.NewEncoder(w).Encode([]string{"1"})
	default:
		http.NotFound(w, r)
	}
}

func (l *lapi) set(f func(l *lapi)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(l)
}

func (l *lapi) sources() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, a := range l.alerts {
		out = append(out, a.Source.Value)
	}
	return out
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func block(i int, until time.Time) Block {
	return Block{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), Type: "syn", Probes: 3, Ports: []uint16{1, 22, 80},
		First: until.Add(-24 * time.Hour), Last: until.Add(-24 * time.Hour), Until: until}
}

// TestPusherOutage: blocks pushed while the LAPI is down wait in the queue
// file, across a restart, and reach it in order once it is up; a token the
// LAPI forgot is renewed; alerts it refuses for their content are dropped.
func TestPusherOutage(t *testing.T) {
	l := &lapi{}
	srv := httptest.NewServer(l)
	defer srv.Close()
	dir := t.TempDir()
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	var mu sync.Mutex
	events := map[PushEvent]int{}
	opt := PushOptions{Credentials: Credentials{URL: srv.URL, Login: "web1", Password: "pw"}, StateDir: dir, Log: log,
		Notify: func(ev PushEvent, n int) { mu.Lock(); events[ev] += n; mu.Unlock() }}
	p, err := NewPusher(opt)
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour)
	for i := 1; i <= 3; i++ {
		p.Push(block(i, until))
	}
	queued := func(n int) func() bool {
		return func() bool {
			b, err := os.ReadFile(filepath.Join(dir, QueueFile))
			var q []Block
			return err == nil && json.Unmarshal(b, &q) == nil && len(q) == n
		}
	}
	waitFor(t, "three blocks in the queue file", queued(3))
	if fi, err := os.Stat(filepath.Join(dir, QueueFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("queue file: %v %v", fi.Mode(), err)
	}
	waitFor(t, "the outage logged", func() bool {
		for _, e := range hook.AllEntries() {
			if strings.Contains(e.Message, "cannot send alerts to the LAPI") {
				return true
			}
		}
		return false
	})
	// a restart while the LAPI is down: the queue is kept
	p.Push(block(4, until))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if !queued(4)() {
		t.Fatal("Close did not keep the four blocks")
	}
	if p, err = NewPusher(opt); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	l.set(func(l *lapi) { l.up = true })
	waitFor(t, "four alerts sent", func() bool { return len(l.sources()) == 4 })
	if got := l.sources(); !slices.Equal(got, []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"}) {
		t.Fatalf("sent out of order: %q", got)
	}
	waitFor(t, "an empty queue file", queued(0))
	a := l.alerts[0]
	if a.Scenario != "scanwarden/portscan-syn" || a.EventsCount != 3 || len(a.Decisions) != 1 || a.Decisions[0].Type != "ban" ||
		a.Decisions[0].Scope != "Ip" || a.Decisions[0].Value != "198.51.100.1" || !strings.Contains(a.Message, "ports 1,22,80") {
		t.Fatalf("alert %+v", a)
	}
	if d, err := time.ParseDuration(a.Decisions[0].Duration); err != nil || d <= 59*time.Minute || d > time.Hour {
		t.Fatalf("decision duration %q: want what remains of the hour", a.Decisions[0].Duration)
	}
	// a forgotten token is renewed; a ban that has ended goes without decision
	l.set(func(l *lapi) { l.forget = true })
	p.Push(block(5, time.Now().Add(-time.Minute)))
	waitFor(t, "the fifth alert", func() bool { return len(l.sources()) == 5 })
	if l.tokens != 2 || len(l.alerts[4].Decisions) != 0 {
		t.Fatalf("tokens %d, decisions of an ended ban %+v", l.tokens, l.alerts[4].Decisions)
	}
	// refused for its content: dropped, the queue goes on
	l.set(func(l *lapi) { l.code = http.StatusBadRequest })
	p.Push(block(6, until))
	waitFor(t, "the refused alert dropped", func() bool { mu.Lock(); defer mu.Unlock(); return events[Dropped] == 1 })
	l.set(func(l *lapi) { l.code = 0 })
	p.Push(block(7, until))
	waitFor(t, "the seventh alert", func() bool { return slices.Contains(l.sources(), "198.51.100.7") })
	mu.Lock()
	if events[Sent] != 6 {
		t.Errorf("%d sent, want 6", events[Sent])
	}
	mu.Unlock()
}

// TestPusherUnconfirmed: a block queued, or taken by the LAPI at or
// after a pull was asked for, may be missing from that pull; one taken
// before it may not.
func TestPusherUnconfirmed(t *testing.T) {
	l := &lapi{}
	srv := httptest.NewServer(l)
	defer srv.Close()
	log, _ := test.NewNullLogger()
	var mu sync.Mutex
	clock := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	p, err := NewPusher(PushOptions{Credentials: Credentials{URL: srv.URL, Login: "web1", Password: "pw"}, StateDir: t.TempDir(), Log: log, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a, b := block(1, clock.Add(time.Hour)), block(2, clock.Add(time.Hour))
	p.Push(a)
	if !p.Unconfirmed(a.Addr, clock.Add(-time.Hour)) {
		t.Error("a queued block is confirmed")
	}
	if p.Unconfirmed(b.Addr, clock.Add(-time.Hour)) {
		t.Error("an address never pushed is unconfirmed")
	}
	l.set(func(l *lapi) { l.up = true })
	waitFor(t, "the block sent", func() bool { return p.Pending() == 0 })
	for _, c := range []struct {
		asOf time.Time
		want bool
	}{{clock.Add(-time.Second), true}, {clock, true}, {clock.Add(time.Second), false}} {
		if got := p.Unconfirmed(a.Addr, c.asOf); got != c.want {
			t.Errorf("sent at %v, pull asked at %v: unconfirmed %v, want %v", clock, c.asOf, got, c.want)
		}
	}
}

// TestPusherQueueBound: past QueueMax, the oldest blocks go.
func TestPusherQueueBound(t *testing.T) {
	l := &lapi{}
	srv := httptest.NewServer(l)
	defer srv.Close()
	log, hook := test.NewNullLogger()
	p, err := NewPusher(PushOptions{Credentials: Credentials{URL: srv.URL, Login: "web1", Password: "pw"}, StateDir: t.TempDir(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	until := time.Now().Add(time.Hour)
	for i := range QueueMax + 5 {
		b := block(i%250, until)
		b.Probes = i
		p.Push(b)
	}
	if n := p.Pending(); n != QueueMax {
		t.Fatalf("%d queued, want %d", n, QueueMax)
	}
	p.mu.Lock()
	first := p.q[0].Probes
	p.mu.Unlock()
	if first != 5 {
		t.Fatalf("the oldest kept is block %d, want 5", first)
	}
	waitFor(t, "the drop logged", func() bool {
		for _, e := range hook.AllEntries() {
			if strings.Contains(e.Message, "the 5 oldest were dropped") {
				return true
			}
		}
		return false
	})
}

// TestPusherInFlightDrops: a block the full queue drops while it is being
// sent counts once: sent when the LAPI takes its batch, dropped when the
// send fails (it is gone from the queue).
func TestPusherInFlightDrops(t *testing.T) {
	const max = 250
	l := &lapi{up: true}
	srv := httptest.NewServer(l)
	defer srv.Close()
	log, _ := test.NewNullLogger()
	var mu sync.Mutex
	events := map[PushEvent]int{}
	count := func() (sent, dropped int) { mu.Lock(); defer mu.Unlock(); return events[Sent], events[Dropped] }
	p, err := NewPusher(PushOptions{Credentials: Credentials{URL: srv.URL, Login: "web1", Password: "pw"}, StateDir: t.TempDir(), Log: log,
		Notify: func(ev PushEvent, n int) { mu.Lock(); events[ev] += n; mu.Unlock() }, queueMax: max})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	until := time.Now().Add(time.Hour)
	// fill the queue behind a batch in flight: that batch's block is
	// dropped from the queue while the LAPI holds the request
	fill := func(code int) {
		hold := make(chan struct{})
		l.set(func(l *lapi) { l.hold, l.entered, l.code = hold, make(chan struct{}), code })
		p.Push(block(1, until))
		<-l.entered
		for range max {
			p.Push(block(2, until))
		}
		if s, d := count(); d != 0 && code == 0 {
			t.Fatalf("dropped %d, sent %d before the batch in flight ended", d, s)
		}
		close(hold)
	}
	fill(0)
	waitFor(t, "the queue sent", func() bool { return p.Pending() == 0 })
	if s, d := count(); s != max+1 || d != 0 {
		t.Fatalf("LAPI took them all: sent %d, dropped %d; want %d and 0", s, d, max+1)
	}
	// the same, the held send failing: the block dropped meanwhile is lost
	fill(http.StatusServiceUnavailable)
	waitFor(t, "the failure counted", func() bool { _, d := count(); return d == 1 })
	l.set(func(l *lapi) { l.code = 0 })
	waitFor(t, "the queue sent", func() bool { return p.Pending() == 0 })
	if s, d := count(); s != 2*max+1 || d != 1 {
		t.Fatalf("after a failed send: sent %d, dropped %d; want %d and 1", s, d, 2*max+1)
	}
}

// TestPusherDamagedQueue: a queue file that is not JSON is an error that
// names it, and stays as it was.
func TestPusherDamagedQueue(t *testing.T) {
	dir := t.TempDir()
	q := filepath.Join(dir, QueueFile)
	os.WriteFile(q, []byte("[{\"addr\":"), 0o600)
	log, _ := test.NewNullLogger()
	_, err := NewPusher(PushOptions{Credentials: Credentials{URL: "http://127.0.0.1:1", Login: "a", Password: "b"}, StateDir: dir, Log: log})
	if err == nil || !strings.Contains(err.Error(), q) {
		t.Fatalf("%v", err)
	}
	if b, _ := os.ReadFile(q); string(b) != "[{\"addr\":" {
		t.Fatalf("the damaged queue was changed: %q", b)
	}
}
