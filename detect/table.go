package detect

import (
	"math/bits"
	"math/rand/v2"
)

// The source table: an open-addressing hash table (linear probing,
// backward-shift deletion) of slots that each hold a source's index in
// Engine.srcs, or a first sight's in Engine.firsts (firsts.go), and 32
// bits of its hash (the low ones, which are its home slot: the table has
// at most 2^28 slots). Probing, inserting and removing read only the
// slots, never the sources, whose records are large: a lookup touches a source only when its slot's hash matches, and
// a new source from a flood of forged ones costs the slots it probes and
// the one record it takes over. Everything is allocated in New; lookups,
// inserts and evictions never allocate. Eviction is a clock: a hand walks
// over srcs and picks, among the next evictSample sources, the one with
// the lowest score (the least recently seen among equals). Unlike an LRU
// list it costs no pointer updates per packet, which at ten thousand
// active sources are cache misses.

// seeds is a random key that the engine's and Origins' tables hash
// with, so that forged sources cannot be chosen to collide.
type seeds struct{ s0, s1 uint64 }

func newSeeds() seeds { return seeds{rand.Uint64(), rand.Uint64()} }

// mix hashes two words with the key.
func (s seeds) mix(x, y uint64) uint64 {
	hi, lo := bits.Mul64(x^s.s0, y^s.s1)
	return hi ^ lo
}

// key hashes an address with the key.
func (s seeds) key(a Addr) uint64 { return s.mix(a.hi, a.lo) }

// slot is one entry of the source table: a source's index in Engine.srcs
// (idx >= 0), a first sight's in Engine.firsts (idx <= firstSlot, see
// firstIdx), or empty (emptySlot).
type slot struct {
	tag uint32 // the low 32 bits of the source's hash
	idx int32
}

const (
	emptySlot = -1
	firstSlot = -2 // firsts[0]; firsts[i] is firstSlot - i
)

// firstIdx returns the index in Engine.firsts of a first sight's slot.
func (sl slot) firstIdx() int32 { return firstSlot - sl.idx }

// rank is what eviction compares of a source, kept apart from the
// source's record in Engine.ranks so that the clock hand reads two cache
// lines for its evictSample candidates rather than one per candidate.
// It is a copy of the record's fields, written back (syncRanks) at the end
// of every Process and Hit for the sources the call looked at. A call
// changes a source only after the lookups that may evict (getAt, and
// promote, which writes the rank of the source it makes at once), so no
// eviction reads a rank its own call has left stale.
type rank struct {
	// key orders sources as evict takes them: sources of one plain
	// probe first, then by score, then by the time of their latest probe
	// (see rankKey)
	key uint64
	tag uint32 // its slot's tag, so that removing it reads no record
}

// rankKey packs, from the top bit down: whether the source has shown more
// than one forged packet can (shown: a second probe, or a trap hit; a
// source of a single plain probe goes first whatever its score: each
// source of a forged flood is one, and the host's answer can give it the
// score of a closed port, which must not make it outlast a real scanner's
// unanswered probes), its score (8 bits: a score is at most maxTargets
// times the largest weight, checked by a test), and the time of its
// latest probe relative to base (the low 55 bits, some 1.1 years of
// nanoseconds around the engine's first packet, out-of-range times taken
// to the nearest end), so that evict compares each candidate in one
// instruction, without a branch to mispredict.
func rankKey(score int32, shown bool, last, base int64) uint64 {
	const span = 1<<rankTimeBits - 1
	t := last - base
	switch {
	case t < 0 || last < base && t > 0: // before base, or wrapped around
		t = 0
	case t > span || last > base && t < 0:
		t = span
	}
	key := uint64(min(max(score, 0), 255))<<rankTimeBits | uint64(t)
	if shown {
		key |= 1 << 63
	}
	return key
}

// shown reports whether s has shown more than one forged packet can (see
// rankKey).
func (s *source) shown() bool { return s.probes > 1 || s.trapHits > 0 }

// rankTimeBits is the width of a rank key's time.
const rankTimeBits = 55

// touch notes that source idx may change in this call (see rank).
func (e *Engine) touch(idx int32) {
	if e.ntouched == len(e.touched) {
		e.syncRanks()
	}
	e.touched[e.ntouched] = idx
	e.ntouched++
}

// syncRanks writes the touched sources' ranks back.
func (e *Engine) syncRanks() {
	for _, idx := range e.touched[:e.ntouched] {
		s := &e.srcs[idx]
		e.ranks[idx].key = rankKey(s.score, s.shown(), s.last, e.rankBase)
	}
	e.ntouched = 0
}

func (e *Engine) hash(a Addr) uint64 { return e.seeds.key(a) }

func (e *Engine) hash32(a Addr) uint32 {
	h := e.hash(a)
	return uint32(h ^ h>>32)
}

// find returns where a is in the table: found, and the position of its
// slot; not found, and the position of the empty slot that ends its probe
// run (where it would go).
func (e *Engine) find(a Addr, h uint64) (pos uint64, sl slot, found bool) {
	tag := uint32(h)
	for i := h & e.mask; ; i = (i + 1) & e.mask {
		sl := e.table[i]
		switch {
		case sl.idx == emptySlot:
			return i, sl, false
		case sl.tag != tag:
		case sl.idx >= 0:
			if e.srcs[sl.idx].addr == a {
				return i, sl, true
			}
		case e.firsts[sl.firstIdx()].addr == a:
			return i, sl, true
		}
	}
}

// lookup returns the source for a, or nil. A source seen once so far
// (a first sight) is made a source first (promote).
func (e *Engine) lookup(a Addr) *source {
	h := e.hash(a)
	_, sl, found := e.find(a, h)
	switch {
	case !found:
		return nil
	case sl.idx < 0:
		return e.promote(sl.firstIdx(), h)
	}
	e.touch(sl.idx)
	return &e.srcs[sl.idx]
}

// get returns the source for a, making a fresh one (and evicting to make
// room) when a is not tracked, and notes ts as its latest time.
func (e *Engine) get(a Addr, ts int64) *source {
	h := e.hash(a)
	pos, sl, found := e.find(a, h)
	return e.getAt(a, h, pos, sl, found, ts)
}

// getAt is get once find has said where a is (pos, sl, found).
func (e *Engine) getAt(a Addr, h uint64, pos uint64, sl slot, found bool, ts int64) *source {
	if found {
		var s *source
		if sl.idx < 0 {
			s = e.promote(sl.firstIdx(), h)
		} else {
			s = &e.srcs[sl.idx]
			e.touch(sl.idx)
		}
		s.last = ts
		return s
	}
	idx, moved := e.alloc()
	if moved {
		// the eviction may have shifted entries into our run: probe again
		pos, _, _ = e.find(a, h)
	}
	e.table[pos] = slot{tag: uint32(h), idx: idx}
	return e.take(idx, a, uint32(h), ts)
}

// take sets up record idx, whose slot the caller has written, for a new
// source a (its slot's tag) first seen at ts.
func (e *Engine) take(idx int32, a Addr, tag uint32, ts int64) *source {
	e.live++
	e.setRankBase(ts)
	e.ranks[idx].tag = tag
	s := &e.srcs[idx]
	s.reset(a, ts)
	e.touch(idx)
	return s
}

// setRankBase makes the first source's time, less half the keys' span,
// what rank keys count time from (see rankKey).
func (e *Engine) setRankBase(ts int64) {
	if !e.rankBaseSet {
		e.rankBase, e.rankBaseSet = ts-1<<(rankTimeBits-1), true
	}
}

// alloc takes a record of srcs for a new source: a forgotten one, one
// never used, or an evicted one (moved: the table's entries may have
// shifted).
func (e *Engine) alloc() (idx int32, moved bool) {
	if n := len(e.free); n > 0 {
		idx = e.free[n-1]
		e.free = e.free[:n-1]
		return idx, false
	}
	if int(e.used) < len(e.srcs) {
		e.used++
		return e.used - 1, false
	}
	return e.evict(), true
}

// evict removes the source with the lowest score among the next
// evictSample ones under the clock hand (the least recently seen among
// equal scores) and returns its index for reuse.
func (e *Engine) evict() int32 {
	n := int32(len(e.srcs))
	hand := e.hand
	victim := hand
	if hand+evictSample <= n {
		// the common case, without a wrap-around or bounds checks
		r := e.ranks[hand : hand+evictSample : hand+evictSample]
		best, v := r[0].key, 0
		for k := 1; k < evictSample; k++ {
			if key := r[k].key; key < best {
				best, v = key, k
			}
		}
		victim += int32(v)
		if hand += evictSample; hand == n {
			hand = 0
		}
	} else {
		best := e.ranks[hand].key
		for k := 0; k < evictSample; k++ {
			if key := e.ranks[hand].key; key < best {
				victim, best = hand, key
			}
			if hand++; hand == n {
				hand = 0
			}
		}
	}
	e.hand = hand
	e.remove(victim, e.ranks[victim].tag)
	e.live--
	e.stats.Evicted++
	return victim
}

// remove takes the entry idx (a source's index, or a first sight's slot
// index), whose slot's tag is tag, out of the hash table.
func (e *Engine) remove(idx int32, tag uint32) {
	i := uint64(tag) & e.mask
	for e.table[i].idx != idx {
		i = (i + 1) & e.mask
	}
	// backward-shift deletion: pull later members of the probe run into
	// the hole when their home slot allows it.
	for {
		e.table[i].idx = emptySlot
		j := i
		for {
			j = (j + 1) & e.mask
			sl := e.table[j]
			if sl.idx == emptySlot {
				return
			}
			home := uint64(sl.tag) & e.mask
			// the entry at j may move to i unless its home lies
			// cyclically in (i, j]
			if (i <= j && (home <= i || home > j)) || (i > j && home <= i && home > j) {
				e.table[i] = sl
				i = j
				break
			}
		}
	}
}
