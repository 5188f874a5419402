package detect

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
)

// The source table: an open-addressing hash table (linear probing,
// backward-shift deletion) of indexes into Engine.srcs. Everything is
// allocated in New; lookups, inserts and evictions never allocate.
// Eviction is a clock: a hand walks over srcs and picks, among the next
// evictSample sources, the one with the lowest score (the least recently
// seen among equals). Unlike an LRU list it costs no pointer updates per
// packet, which at ten thousand active sources are cache misses.

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
func (s seeds) key(k addrKey) uint64 {
	y := binary.LittleEndian.Uint64(k.b[8:])
	if k.is4 {
		y ^= 0x9e3779b97f4a7c15 // keep 1.2.3.4 and ::ffff:1.2.3.4 apart
	}
	return s.mix(binary.LittleEndian.Uint64(k.b[:8]), y)
}

// hash mixes an address with the engine's random seed.
func (e *Engine) hash(a netip.Addr) uint64 { return e.hashKey(keyOf(a)) }

func (e *Engine) hashKey(k addrKey) uint64 { return e.seeds.key(k) }

func (e *Engine) hash32(a netip.Addr) uint32 {
	h := e.hash(a)
	return uint32(h ^ h>>32)
}

// lookup returns the source for a, or nil.
func (e *Engine) lookup(a netip.Addr) *source {
	k := keyOf(a)
	h := e.hashKey(k)
	for i := h & e.mask; ; i = (i + 1) & e.mask {
		idx := e.table[i]
		if idx < 0 {
			return nil
		}
		if s := &e.srcs[idx]; s.hash == h && s.addr == k {
			return s
		}
	}
}

// get returns the source for a, making a fresh one (and evicting to make
// room) when a is not tracked, and notes ts as its latest time.
func (e *Engine) get(a netip.Addr, ts int64) *source {
	k := keyOf(a)
	h := e.hashKey(k)
	i := h & e.mask
	for ; ; i = (i + 1) & e.mask {
		idx := e.table[i]
		if idx < 0 {
			break
		}
		if s := &e.srcs[idx]; s.hash == h && s.addr == k {
			s.last = ts
			return s
		}
	}
	var idx int32
	if n := len(e.free); n > 0 {
		idx = e.free[n-1]
		e.free = e.free[:n-1]
	} else if int(e.used) < len(e.srcs) {
		idx = e.used
		e.used++
	} else {
		idx = e.evict()
		// the eviction may have shifted entries into our slot: probe again
		for i = h & e.mask; e.table[i] >= 0; i = (i + 1) & e.mask {
		}
	}
	e.table[i] = idx
	e.live++
	s := &e.srcs[idx]
	*s = source{addr: k, hash: h, first: ts, last: ts}
	return s
}

// evict removes the source with the lowest score among the next
// evictSample ones under the clock hand (the least recently seen among
// equal scores) and returns its index for reuse.
func (e *Engine) evict() int32 {
	n := int32(len(e.srcs))
	victim := e.hand
	for k := 0; k < evictSample; k++ {
		i := e.hand
		if e.hand++; e.hand == n {
			e.hand = 0
		}
		c, v := &e.srcs[i], &e.srcs[victim]
		if c.score < v.score || (c.score == v.score && c.last < v.last) {
			victim = i
		}
	}
	e.remove(victim)
	e.live--
	e.stats.Evicted++
	return victim
}

// remove takes source idx out of the hash table.
func (e *Engine) remove(idx int32) {
	s := &e.srcs[idx]
	i := s.hash & e.mask
	for e.table[i] != idx {
		i = (i + 1) & e.mask
	}
	// backward-shift deletion: pull later members of the probe run into
	// the hole when their home slot allows it.
	for {
		e.table[i] = -1
		j := i
		for {
			j = (j + 1) & e.mask
			jdx := e.table[j]
			if jdx < 0 {
				return
			}
			home := e.srcs[jdx].hash & e.mask
			// the entry at j may move to i unless its home lies
			// cyclically in (i, j]
			if (i <= j && (home <= i || home > j)) || (i > j && home <= i && home > j) {
				e.table[i] = jdx
				i = j
				break
			}
		}
	}
}
