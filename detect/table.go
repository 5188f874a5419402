package detect

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// The source table: an open-addressing hash table (linear probing,
// backward-shift deletion) of indexes into Engine.srcs, plus an LRU list
// threaded through the sources. Everything is allocated in New; lookups,
// inserts and evictions never allocate.

// hash mixes an address with the engine's random seed, so that forged
// sources cannot be chosen to collide.
func (e *Engine) hash(a netip.Addr) uint64 {
	b := a.As16()
	x := binary.LittleEndian.Uint64(b[:8])
	y := binary.LittleEndian.Uint64(b[8:])
	if a.Is4() {
		y ^= 0x9e3779b97f4a7c15 // keep 1.2.3.4 and ::ffff:1.2.3.4 apart
	}
	hi, lo := bits.Mul64(x^e.seed0, y^e.seed1)
	return hi ^ lo
}

func (e *Engine) hash32(a netip.Addr) uint32 {
	h := e.hash(a)
	return uint32(h ^ h>>32)
}

// lookup returns the source for a, or nil.
func (e *Engine) lookup(a netip.Addr) *source {
	h := e.hash(a)
	for i := h & e.mask; ; i = (i + 1) & e.mask {
		idx := e.table[i]
		if idx < 0 {
			return nil
		}
		if s := &e.srcs[idx]; s.hash == h && s.addr == a {
			return s
		}
	}
}

// get returns the source for a, making a fresh one (and evicting to make
// room) when a is not tracked, and marks it as the most recently seen.
func (e *Engine) get(a netip.Addr, ts int64) *source {
	h := e.hash(a)
	i := h & e.mask
	for ; ; i = (i + 1) & e.mask {
		idx := e.table[i]
		if idx < 0 {
			break
		}
		if s := &e.srcs[idx]; s.hash == h && s.addr == a {
			e.touch(idx)
			return s
		}
	}
	var idx int32
	if int(e.used) < len(e.srcs) {
		idx = e.used
		e.used++
	} else {
		idx = e.evict()
		// the eviction may have shifted entries into our slot: probe again
		for i = h & e.mask; e.table[i] >= 0; i = (i + 1) & e.mask {
		}
	}
	e.table[i] = idx
	s := &e.srcs[idx]
	*s = source{addr: a, hash: h, first: ts, prev: -1, next: -1}
	e.pushFront(idx)
	return s
}

// evict removes the source with the lowest score among the evictSample
// least recently seen ones and returns its index for reuse.
func (e *Engine) evict() int32 {
	victim := e.tail
	n := 0
	for i := e.tail; i >= 0 && n < evictSample; i = e.srcs[i].prev {
		if e.srcs[i].score < e.srcs[victim].score {
			victim = i
		}
		n++
	}
	e.unlink(victim)
	e.remove(victim)
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

func (e *Engine) pushFront(idx int32) {
	s := &e.srcs[idx]
	s.prev, s.next = -1, e.head
	if e.head >= 0 {
		e.srcs[e.head].prev = idx
	}
	e.head = idx
	if e.tail < 0 {
		e.tail = idx
	}
}

func (e *Engine) unlink(idx int32) {
	s := &e.srcs[idx]
	if s.prev >= 0 {
		e.srcs[s.prev].next = s.next
	} else {
		e.head = s.next
	}
	if s.next >= 0 {
		e.srcs[s.next].prev = s.prev
	} else {
		e.tail = s.prev
	}
	s.prev, s.next = -1, -1
}

func (e *Engine) touch(idx int32) {
	if e.head == idx {
		return
	}
	e.unlink(idx)
	e.pushFront(idx)
}
