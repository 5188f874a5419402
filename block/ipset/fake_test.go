package ipset

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// fakeSets is setOps in memory, behaving as the kernel does for what the
// backend uses: timeouts run on the clock now (and expired elements are
// not listed), a full hash set refuses new elements, a set without
// timeouts refuses a timeout, a set is created once, swapped only with one
// of its type and family. It records one call per kernel message.
type fakeSets struct {
	closes atomic.Int32 // close calls
	mu     sync.Mutex
	now    func() time.Time
	sets   map[string]*fakeSet
	calls  []string
}

type fakeSet struct {
	h     header
	elems map[member]time.Time // members without timeout: expiry (zero: permanent)
}

func newFakeSets(now func() time.Time) *fakeSets {
	return &fakeSets{now: now, sets: map[string]*fakeSet{}}
}

func (f *fakeSets) record(format string, a ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, a...))
}

// Calls returns the calls so far and forgets them.
func (f *fakeSets) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func noSet(name string) error { return fmt.Errorf("fake set %s: %w", name, unix.ENOENT) }

// live returns the set's members that have not expired, with their
// remaining timeouts rounded down as the kernel reports them (at least 1).
func (f *fakeSets) live(s *fakeSet) []member {
	now := f.now()
	var out []member
	for m, exp := range s.elems {
		if !exp.IsZero() {
			if !now.Before(exp) {
				continue
			}
			m.timeout = max(1, uint32(exp.Sub(now)/time.Second))
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b member) int {
		if c := a.prefix.Addr().Compare(b.prefix.Addr()); c != 0 {
			return c
		}
		return int(a.port) - int(b.port)
	})
	return out
}

func (f *fakeSets) list(name string, headerOnly bool) (header, []member, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("list %s", name)
	s := f.sets[name]
	if s == nil {
		return header{}, nil, false, nil
	}
	ms := f.live(s)
	h := s.h
	h.entries = uint32(len(ms))
	if headerOnly {
		ms = nil
	}
	return h, ms, true, nil
}

func (f *fakeSets) create(name string, h header) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("create %s %s", name, h)
	if f.sets[name] != nil {
		return fmt.Errorf("fake create %s: %w", name, unix.EEXIST)
	}
	f.sets[name] = &fakeSet{h: h, elems: map[member]time.Time{}}
	return nil
}

func (f *fakeSets) destroy(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("destroy %s", name)
	delete(f.sets, name)
	return nil
}

func (f *fakeSets) swap(a, b string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("swap %s %s", a, b)
	sa, sb := f.sets[a], f.sets[b]
	switch {
	case sa == nil:
		return noSet(a)
	case sb == nil:
		return noSet(b)
	case !sa.h.sameKind(sb.h):
		return fmt.Errorf("fake swap %s %s: %w", a, b, nl.IPSetError(nl.IPSET_ERR_TYPE_MISMATCH))
	}
	f.sets[a], f.sets[b] = sb, sa
	return nil
}

func (f *fakeSets) add(name string, timeouts bool, ms []member) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("add %s %d", name, len(ms))
	s := f.sets[name]
	if s == nil {
		return noSet(name)
	}
	now := f.now()
	for _, m := range ms {
		if timeouts && !s.h.timeout {
			return fmt.Errorf("fake add to %s: %w", name, nl.IPSetError(errTimeout))
		}
		k := m
		k.timeout = 0
		if _, ok := s.elems[k]; !ok && s.h.typ != typeBitmapPort && uint32(len(f.live(s))) >= s.h.maxElem {
			return fmt.Errorf("fake add %v to %s: %w", m.prefix, name, nl.IPSetError(errHashFull))
		}
		var exp time.Time
		if timeouts && m.timeout > 0 {
			exp = now.Add(time.Duration(m.timeout) * time.Second)
		}
		s.elems[k] = exp
	}
	return nil
}

func (f *fakeSets) del(name string, ms []member) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("del %s %d", name, len(ms))
	s := f.sets[name]
	if s == nil {
		return noSet(name)
	}
	for _, m := range ms {
		m.timeout = 0
		delete(s.elems, m)
	}
	return nil
}

func (f *fakeSets) close() error {
	f.closes.Add(1)
	return nil
}

// members returns set name's live members (nil for a missing set).
func (f *fakeSets) members(name string) []member {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.sets[name]; s != nil {
		return f.live(s)
	}
	return nil
}

// names returns the sets that exist, sorted.
func (f *fakeSets) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.sets))
}

// header returns set name's header.
func (f *fakeSets) header(name string) (header, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.sets[name]; s != nil {
		return s.h, true
	}
	return header{}, false
}
