package crowdsec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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

	"github.com/sirupsen/logrus/hooks/test"
)

// pushEvents counts what a Pusher notifies.
type pushEvents struct {
	mu sync.Mutex
	n  map[PushEvent]int
}

func (e *pushEvents) notify(ev PushEvent, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == nil {
		e.n = map[PushEvent]int{}
	}
	e.n[ev] += n
}

func (e *pushEvents) get(ev PushEvent) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n[ev]
}

func logged(hook *test.Hook, s string) bool {
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, s) {
			return true
		}
	}
	return false
}

// TestRedirectedAlerts: a LAPI URL that answers POST /v1/alerts
// with a redirect (a proxy sending http to https, say) must not count
// the alerts as sent: the client follows a 301 with a GET, which a LAPI
// answers 200 with a list of alerts, and the blocks are lost unsent.
func TestRedirectedAlerts(t *testing.T) {
	l := &lapi{up: true}
	var mu sync.Mutex
	moved := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/alerts":
			http.Redirect(w, r, "/elsewhere/v1/alerts", http.StatusMovedPermanently)
		case "/elsewhere/v1/alerts":
			mu.Lock()
			moved++
			mu.Unlock()
			w.Write([]byte("[]")) // GET /v1/alerts: the alerts the LAPI holds
		default:
			l.ServeHTTP(w, r)
		}
	}))
	defer srv.Close()
	p, hook, ev := watchedPusher(t, srv.URL)
	defer p.Close()
	p.Push(block(1, time.Now().Add(time.Hour)))
	waitFor(t, "the send's outcome", func() bool {
		return ev.get(Sent) > 0 || ev.get(Dropped) > 0 || logged(hook, "cannot send alerts")
	})
	mu.Lock()
	defer mu.Unlock()
	if ev.get(Sent) != 0 || p.Pending() != 1 || moved != 0 {
		t.Fatalf("redirected alerts: %d sent, %d pending, %d requests to the redirect's target; want 0, 1, 0", ev.get(Sent), p.Pending(), moved)
	}
	if !logged(hook, "301") {
		t.Errorf("the redirect is not named in the log: %v", hook.AllEntries())
	}
}

// TestLoginRefused: a login the LAPI (or a proxy before it)
// answers 400 says nothing of the alerts, which never left: they stay
// queued, they are not dropped as refused for their content.
func TestLoginRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "400 Bad Request: The plain HTTP request was sent to HTTPS port", http.StatusBadRequest)
	}))
	defer srv.Close()
	p, hook, ev := watchedPusher(t, srv.URL)
	defer p.Close()
	for i := range 3 {
		p.Push(block(i+1, time.Now().Add(time.Hour)))
	}
	waitFor(t, "the send's outcome", func() bool {
		return ev.get(Dropped) > 0 || logged(hook, "cannot send alerts")
	})
	if ev.get(Dropped) != 0 || p.Pending() != 3 {
		t.Fatalf("login refused: %d dropped, %d pending; want 0 and 3", ev.get(Dropped), p.Pending())
	}
}

// TestLoadOverMax: a queue file holding more blocks than the
// queue's bound (one a larger bound wrote, or one edited by hand) keeps
// the newest within the bound, as Push does.
func TestLoadOverMax(t *testing.T) {
	const max = 5
	dir := t.TempDir()
	until := time.Now().Add(time.Hour)
	var q []Block
	for i := range 2 * max {
		q = append(q, block(i+1, until))
	}
	b, _ := json.Marshal(q)
	if err := os.WriteFile(filepath.Join(dir, QueueFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	log, _ := test.NewNullLogger()
	var ev pushEvents
	p, err := NewPusher(PushOptions{Credentials: Credentials{URL: "http://127.0.0.1:1", Login: "a", Password: "b"}, StateDir: dir, Log: log, Notify: ev.notify, queueMax: max})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Push(block(99, until))
	if n := p.Pending(); n > max {
		t.Fatalf("%d blocks queued, over the bound %d", n, max)
	}
	p.mu.Lock()
	last := p.q[len(p.q)-1].Addr.String()
	first := p.q[0].Addr.String()
	p.mu.Unlock()
	if last != "198.51.100.99" || first != fmt.Sprintf("198.51.100.%d", max+2) {
		t.Fatalf("kept %s to %s, want the newest", first, last)
	}
	if ev.get(Dropped) != max+1 {
		t.Errorf("%d dropped, want %d", ev.get(Dropped), max+1)
	}
	// the dropped blocks (at load and by Push) never reach the LAPI
	for _, i := range []int{1, max + 1} {
		if a := netip.MustParseAddr(fmt.Sprintf("198.51.100.%d", i)); !p.Unconfirmed(a, time.Now()) {
			t.Errorf("the dropped block of %s counts as confirmed", a)
		}
	}
}

// TestRefusedBatch: the LAPI refuses a request whole when one of
// its alerts is invalid; the other alerts of the batch must still reach
// it, only the refused one is dropped.
func TestRefusedBatch(t *testing.T) {
	l := &lapi{up: true}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/alerts" {
			b, _ := io.ReadAll(r.Body)
			if bytes.Contains(b, []byte(`"198.51.100.66"`)) {
				http.Error(w, `{"message":"validation failure"}`, http.StatusUnprocessableEntity)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		l.ServeHTTP(w, r)
	}))
	defer srv.Close()
	dir := t.TempDir()
	until := time.Now().Add(time.Hour)
	q := []Block{block(1, until), block(2, until), block(66, until), block(3, until), block(4, until)}
	b, _ := json.Marshal(q)
	if err := os.WriteFile(filepath.Join(dir, QueueFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	log, _ := test.NewNullLogger()
	var ev pushEvents
	p, err := NewPusher(PushOptions{Credentials: Credentials{URL: srv.URL, Login: "web1", Password: "pw"}, StateDir: dir, Log: log, Notify: ev.notify})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	waitFor(t, "the queue emptied", func() bool { return p.Pending() == 0 })
	want := []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"}
	if got := l.sources(); !slices.Equal(got, want) || ev.get(Dropped) != 1 || ev.get(Sent) != 4 {
		t.Fatalf("sent %q (%d sent, %d dropped), want %q, 4 and 1", got, ev.get(Sent), ev.get(Dropped), want)
	}
	// the refused block never reached the LAPI: whatever a pull says of
	// the address, this host's own ban must not be lifted on it
	later := time.Now().Add(time.Minute)
	if !p.Unconfirmed(netip.MustParseAddr("198.51.100.66"), later) {
		t.Error("the refused block's address counts as confirmed")
	}
	if p.Unconfirmed(netip.MustParseAddr("198.51.100.1"), later) {
		t.Error("a block the LAPI took counts as unconfirmed after it")
	}
}

// bouncerLAPI serves /v1/decisions/stream as the LAPI does: a startup
// pull gets every active decision, a delta what changed since the
// bouncer's last pull, and the last pull is the time of the latest
// answer the LAPI wrote out, whether the bouncer could read it or not.
type bouncerLAPI struct {
	mu        sync.Mutex
	active    map[int64]Decision
	deleted   []Decision // since the last pull
	added     []Decision // since the last pull
	garble    bool       // cut the next answer short
	pulls     int
	startups  int
	badHeader int
}

func (l *bouncerLAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.Header.Get("X-Api-Key") != "k" {
		l.badHeader++
		http.Error(w, `{"message":"access forbidden"}`, http.StatusForbidden)
		return
	}
	l.pulls++
	var s stream
	if r.URL.Query().Get("startup") == "true" {
		l.startups++
		for _, d := range l.active {
			s.New = append(s.New, d)
		}
	} else {
		s.New, s.Deleted = l.added, l.deleted
	}
	l.added, l.deleted = nil, nil
	b, _ := json.Marshal(s)
	if l.garble {
		l.garble = false
		b = b[:len(b)/2]
	}
	w.Write(b)
}

// add and del change the LAPI's decisions.
func (l *bouncerLAPI) add(d Decision) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active[d.ID] = d
	l.added = append(l.added, d)
}

func (l *bouncerLAPI) del(id int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.active[id]
	delete(l.active, id)
	d.Duration = "-1s"
	l.deleted = append(l.deleted, d)
}

func (l *bouncerLAPI) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pulls
}

// TestPullLostAnswer: an answer the puller could not read (cut
// short, too slow, too large) was a delta the LAPI now counts as
// delivered: the next pull must ask for everything again, or the
// decisions added meanwhile are never enforced. Those deleted meanwhile
// keep their bans until they end: a full answer lifts nothing it lacks.
func TestPullLostAnswer(t *testing.T) {
	l := &bouncerLAPI{active: map[int64]Decision{}}
	l.add(ban(1, "198.51.100.1", "1h", "a"))
	srv := httptest.NewServer(l)
	defer srv.Close()
	e := &enforcer{}
	log, _ := test.NewNullLogger()
	p, err := NewPuller(PullOptions{URL: srv.URL, Key: "k", Every: 20 * time.Millisecond, Enforcer: e, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	waitFor(t, "the startup pull", func() bool { return l.count() >= 1 })
	waitFor(t, "the startup pull applied", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return slices.Contains(e.calls, "reconcile")
	})
	e.take()
	// the fleet changes, and the answer that tells of it is lost
	l.mu.Lock()
	l.garble = true
	l.mu.Unlock()
	l.add(ban(2, "198.51.100.2", "1h", "b"))
	l.del(1)
	n := l.count()
	waitFor(t, "three more pulls", func() bool { return l.count() >= n+3 })
	time.Sleep(50 * time.Millisecond)
	var enforced, lifted bool
	for _, c := range e.take() {
		enforced = enforced || strings.HasPrefix(c, "enforce 198.51.100.2 ")
		lifted = lifted || strings.HasPrefix(c, "lift ")
	}
	if !enforced {
		t.Fatal("after a lost answer: the decision it held was never enforced")
	}
	// what a full answer lacks is not taken for deleted: an answer cut
	// short must not lift the fleet's bans
	if lifted {
		t.Error("a full answer lifted a ban it did not mention")
	}
}

// watchedPusher returns a pusher to the LAPI at url, with its log and its
// events (the caller closes it).
func watchedPusher(t *testing.T, url string) (*Pusher, *test.Hook, *pushEvents) {
	t.Helper()
	log, hook := test.NewNullLogger()
	ev := &pushEvents{}
	p, err := NewPusher(PushOptions{Credentials: Credentials{URL: url, Login: "web1", Password: "pw"}, StateDir: t.TempDir(), Log: log, Notify: ev.notify})
	if err != nil {
		t.Fatal(err)
	}
	return p, hook, ev
}
