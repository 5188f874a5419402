package detect

// First sights: sources seen once so far.
//
// Most sources a flood of forged packets brings send one probe each, and a
// full source record (13 cache lines, see source) costs a new source
// several cache misses and an eviction scan. A source whose first probe
// is plain (a SYN or datagram to a port that is no trap, counted
// unanswered, that cannot by itself raise an alert: see mayWait) is kept
// instead as a first sight: what that probe said, in one record of its
// own (firstSight, 80 bytes), in the same hash table as the sources. Its
// next packet, or an answer to its probe, or anything else that looks it
// up, makes it a source (promote) with exactly the state its first probe
// would have given it, so that verdicts are those of a table of sources
// alone as long as neither pool is full. When the first sights are all
// taken, the oldest makes room (a FIFO: every first sight has one probe,
// scored alike), so a flood evicts its own first sights and never a
// source that has sent a second packet; sources are evicted by score as
// before, among themselves.

// firstSight is a source's first probe, as probe would have counted it.
type firstSight struct {
	addr Addr
	dst  Addr // the probe's destination (the zero Addr: unknown)
	ts   int64
	link LinkSeen
	dsth uint32 // the destination's hash, as targets keep it
	tag  uint32 // its slot's tag
	port uint16
	// proto, typ: the probe's protocol and scan type
	proto uint8
	typ   ScanType
	live  bool
}

// mayWait reports whether a first probe may be kept as a first sight: a
// plain probe, unanswered so far, to no trap port (a Hit, and a trap port
// awaiting its host's answer, count as trap ports), whose weight alone
// cannot reach the threshold.
func (e *Engine) mayWait(stealth bool, st uint8, trap bool) bool {
	return !e.noFirsts && !stealth && st == stUnanswered && !trap && WeightUnanswered < e.threshold
}

// admit keeps p's first probe from a source the table does not hold (pos
// is where find ended) as a first sight, taking the oldest's place when
// they are all taken.
func (e *Engine) admit(p *Probe, h uint64, pos uint64, typ ScanType, proto uint8, dsth uint32) {
	var fi int32
	switch n := len(e.ffree); {
	case n > 0:
		fi = e.ffree[n-1]
		e.ffree = e.ffree[:n-1]
	case int(e.fused) < len(e.firsts):
		fi = e.fused
		e.fused++
	default:
		fi = e.evictFirst()
		pos, _, _ = e.find(p.Src, h) // the removal may have shifted our run
	}
	f := &e.firsts[fi]
	*f = firstSight{addr: p.Src, ts: p.TS, dsth: dsth, tag: uint32(h), port: p.DstPort, proto: proto, typ: typ, live: true}
	if p.HasMAC || p.TTL != 0 {
		f.link.note(p)
	}
	if p.Dst.IsValid() {
		f.dst = p.Dst
	}
	e.table[pos] = slot{tag: uint32(h), idx: firstSlot - fi}
	e.flive++
}

// evictFirst removes the oldest first sight (the next live one under
// fhand, in the order they were taken) and returns its index for reuse.
func (e *Engine) evictFirst() int32 {
	n := int32(len(e.firsts))
	for {
		fi := e.fhand
		if e.fhand++; e.fhand == n {
			e.fhand = 0
		}
		if f := &e.firsts[fi]; f.live {
			e.remove(firstSlot-fi, f.tag)
			f.live = false
			e.flive--
			e.stats.Evicted++
			return fi
		}
	}
}

// freeFirst forgets first sight fi, whose slot the caller has taken out
// of the table or given to a source.
func (e *Engine) freeFirst(fi int32) {
	e.firsts[fi].live = false
	e.ffree = append(e.ffree, fi)
	e.flive--
}

// promote makes first sight fi (of an address that hashes to h) a source,
// with the state probe would have given it on its first probe, and
// returns it.
func (e *Engine) promote(fi int32, h uint64) *source {
	f := &e.firsts[fi]
	idx, _ := e.alloc()
	// its slot, looked for after alloc, whose eviction may shift it
	pos, _, _ := e.find(f.addr, h)
	e.table[pos].idx = idx
	s := e.take(idx, f.addr, f.tag, f.ts)
	s.probes = 1
	s.types[f.typ] = 1
	s.link = f.link
	s.add(f.dsth, f.port, f.proto, f.ts, stUnanswered)
	if f.dst.IsValid() {
		s.addDst(f.dst)
	}
	// its rank now, not at the end of the call: the call may evict again
	e.ranks[idx].key = rankKey(s.score, s.shown(), s.last, e.rankBase)
	e.freeFirst(fi)
	return s
}
