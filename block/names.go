package block

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/scanwarden/scanwarden/internal/bounded"
)

// Tunables of RESOLVE_HOST's name lookups.
const (
	// nameWait is how long a decision waits for a name it does not have
	// yet. A resolver that answers at all answers a reverse lookup in a
	// few milliseconds; past this the decision goes on with the address,
	// and the name, when it comes, serves the source's later lines.
	nameWait = 100 * time.Millisecond
	// nameTimeout bounds one lookup, which goes on in the background
	// after nameWait.
	nameTimeout = 2 * time.Second
	// nameSilentAfter is how many lookups in a row that found no answer
	// within nameWait make the resolver count as silent: then no
	// decision waits at all, for nameSilentFor, though lookups still run
	// in the background (a silent DNS server, or one an attacker
	// floods with forged sources' reverse lookups, must not slow the
	// blocking thread to one alert per timeout).
	nameSilentAfter = 3
	nameSilentFor   = 30 * time.Second
	// nameInflight bounds the lookups running at once; past it a
	// source's name is not looked up (its lines carry the address).
	nameInflight = 8
	// nameCacheSize bounds the names kept (the oldest makes room), and
	// nameTTL and nameNegTTL how long a name, or the lack of one, is.
	nameCacheSize = 4096
	nameTTL       = 10 * time.Minute
	nameNegTTL    = time.Minute
)

// names looks up the host names of RESOLVE_HOST without ever holding up a
// firewall change, and another source's decision for at most nameWait:
// lookups run in goroutines of their own, bounded in number and time, and
// their answers are cached. Safe for concurrent use.
type names struct {
	lookup func(ctx context.Context, addr string) ([]string, error)
	now    func() time.Time

	mu       sync.Mutex
	cache    *bounded.Map[netip.Addr, nameEntry]
	inflight map[netip.Addr]chan struct{}
	misses   int       // lookups in a row that missed nameWait
	silent   time.Time // until when the resolver counts as silent
}

type nameEntry struct {
	name  string // "" when the lookup found none
	until time.Time
}

func newNames(lookup func(ctx context.Context, addr string) ([]string, error), now func() time.Time) *names {
	return &names{lookup: lookup, now: now, cache: bounded.New[netip.Addr, nameEntry](nameCacheSize),
		inflight: map[netip.Addr]chan struct{}{}}
}

// name returns addr's host name when it is known or comes within
// nameWait (not at all while the resolver is silent), else addr itself.
func (n *names) name(ctx context.Context, addr netip.Addr) string {
	n.mu.Lock()
	now := n.now()
	if e, ok := n.cache.Get(addr); ok && now.Before(e.until) {
		n.mu.Unlock()
		if e.name == "" {
			return addr.String()
		}
		return e.name
	}
	done, running := n.inflight[addr]
	if !running {
		if len(n.inflight) >= nameInflight {
			n.mu.Unlock()
			return addr.String()
		}
		done = make(chan struct{})
		n.inflight[addr] = done
		go n.run(addr, done)
	}
	silent := now.Before(n.silent)
	n.mu.Unlock()
	if silent {
		return addr.String()
	}
	t := time.NewTimer(nameWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		n.missed()
		return addr.String()
	case <-ctx.Done():
		return addr.String()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.misses = 0
	if e, _ := n.cache.Get(addr); e.name != "" {
		return e.name
	}
	return addr.String()
}

// missed counts a lookup that missed nameWait, and makes the resolver
// silent after nameSilentAfter of them in a row.
func (n *names) missed() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.misses++; n.misses >= nameSilentAfter {
		n.misses, n.silent = 0, n.now().Add(nameSilentFor)
	}
}

// run looks addr up and caches the answer.
func (n *names) run(addr netip.Addr, done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), nameTimeout)
	defer cancel()
	found, err := n.lookup(ctx, addr.String())
	e := nameEntry{}
	if err == nil && len(found) > 0 {
		e.name = strings.TrimSuffix(found[0], ".")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	ttl := nameTTL
	if e.name == "" {
		ttl = nameNegTTL
	}
	e.until = n.now().Add(ttl)
	n.cache.Put(addr, e)
	delete(n.inflight, addr)
	close(done)
}
