package capture

import "hash/maphash"

// Fragment reassembly, reduced to what a scan detector needs: the first
// FragKeep bytes of each fragmented TCP or UDP datagram, enough for its
// transport header. nmap -f cuts a probe's TCP header into 8-byte
// fragments precisely so that a filter looking at one packet at a time
// sees no ports and no flags; this table puts the header back together.
//
// The table has FragSlots slots allocated once, so its memory is fixed
// whatever the input. A slot is keyed by (source, destination,
// identification, protocol, IP version) like the kernel's own queues and
// found through a hash index (seeded per table, so nobody can aim
// collisions at it): a fragment costs the same whatever the table holds.
// A slot lives FragTimeout on packet timestamps from its datagram's first
// fragment. Slots are handed out in turn round the table, so a new
// datagram always takes the slot handed out longest ago: once the table
// has filled, the oldest slot is evicted. If its datagram was still
// incomplete, that counts in Stats.Evicted (or in Stats.Expired if it had
// timed out anyway).
//
// Overlaps are resolved deterministically: the first copy of each byte
// wins, and a later fragment only fills bytes still missing. Likewise the
// first last-fragment (MF clear) fixes the datagram's length. Linux drops
// overlapping datagrams outright, so such a probe never reaches a socket,
// but whoever sends one is still probing, and we report what the first
// fragments said.
//
// A datagram is complete when bytes 0 up to its transport header's length
// (the TCP data offset, or 8 for UDP) are present, or when its last
// fragment has closed it and every byte up to that length (at most
// FragKeep) is present. It is reported once; later fragments of it are
// ignored while its slot lasts, unless their bytes differ from those held:
// that is a new datagram reusing the identification (a prober with a
// fixed IP ID; Linux frees a queue once its datagram is complete and
// reassembles the next one as well), which starts the slot over. A
// fragment that starts at or beyond
// FragKeep and belongs to no slot takes none: it holds nothing we keep.

// Compile-time check: a slot's byte mask is one uint64.
const _ = uint(64 - FragKeep)

// fragIndexSize is the hash index's size: a power of two at least twice
// FragSlots, so probe sequences stay short and always reach an empty entry.
const fragIndexSize = 2 * FragSlots

// Compile-time check: fragIndexSize is a power of two.
const _ = uint(0 - fragIndexSize&(fragIndexSize-1))

// Slot states.
const (
	slotFree uint8 = iota
	slotPending
	slotDone
)

// fragKey identifies a datagram: source (16 bytes, IPv4 in the first 4),
// destination (16), identification (4, big-endian), protocol, IP version.
type fragKey [38]byte

func makeFragKey(src, dst []byte, id uint32, proto uint8, v6 bool) fragKey {
	var k fragKey
	copy(k[0:16], src)
	copy(k[16:32], dst)
	k[32], k[33], k[34], k[35] = byte(id>>24), byte(id>>16), byte(id>>8), byte(id)
	k[36] = proto
	if v6 {
		k[37] = 6
	} else {
		k[37] = 4
	}
	return k
}

func (k *fragKey) proto() uint8 { return k[36] }

type fragSlot struct {
	key   fragKey
	hash  uint64
	first int64  // timestamp of the datagram's first fragment seen
	have  uint64 // bit i set: byte i of the transport payload is in buf
	total int32  // transport payload length once the last fragment was seen, else -1
	state uint8
	buf   [FragKeep]byte
}

type fragTable struct {
	seed  maphash.Seed
	next  int                  // the slot handed out next (the oldest)
	index [fragIndexSize]int16 // slot number + 1; 0 is empty
	slots [FragSlots]fragSlot
}

func (t *fragTable) init() { t.seed = maphash.MakeSeed() }

// lookup returns the index position of key k (hash h) and its slot, or the
// empty position where it would go and -1.
func (t *fragTable) lookup(k *fragKey, h uint64) (int, int) {
	const mask = fragIndexSize - 1
	for i := int(h & mask); ; i = (i + 1) & mask {
		e := t.index[i]
		if e == 0 {
			return i, -1
		}
		if t.slots[e-1].hash == h && t.slots[e-1].key == *k {
			return i, int(e - 1)
		}
	}
}

// unindex removes the entry at index position i, shifting later entries of
// the probe sequence back (linear probing's deletion without tombstones).
func (t *fragTable) unindex(i int) {
	const mask = fragIndexSize - 1
	j := i
	for {
		t.index[i] = 0
		for {
			j = (j + 1) & mask
			e := t.index[j]
			if e == 0 {
				return
			}
			home := int(t.slots[e-1].hash & mask)
			// The entry at j may stay if its home lies cyclically in (i, j].
			if i <= j {
				if i < home && home <= j {
					continue
				}
			} else if i < home || home <= j {
				continue
			}
			break
		}
		t.index[i] = t.index[j]
		i = j
	}
}

// release takes slot n out of the table.
func (t *fragTable) release(n int, ts int64, st *Stats) {
	s := &t.slots[n]
	if s.state == slotFree {
		return
	}
	if s.state == slotPending {
		if ts-s.first > int64(FragTimeout) {
			st.Expired++
		} else {
			st.Evicted++
		}
	}
	if pos, m := t.lookup(&s.key, s.hash); m == n {
		t.unindex(pos)
	}
	s.state = slotFree
}

// add records one fragment: off is its offset in the transport payload
// (bytes), more its more-fragments flag, data the captured bytes of its
// payload and realLen the payload length its IP header announces. When the
// fragment completes its datagram's transport header, add returns that
// header (valid until the next call) and true.
func (t *fragTable) add(k *fragKey, ts int64, off int, more bool, data []byte, realLen int, st *Stats) ([]byte, bool) {
	s := t.slot(k, ts, off, st)
	if s == nil {
		return nil, false
	}
	if s.state == slotDone {
		if !s.differs(off, data) {
			return nil, false // a copy of a fragment reported already
		}
		s.first, s.have, s.total, s.state = ts, 0, -1, slotPending
	}
	s.fill(off, more, data, realLen)
	return s.header(k.proto(), st)
}

// slot returns the slot of the datagram k whose fragment at off arrives at
// ts, taking the next slot round the table for a datagram it does not
// hold (or holds from longer than FragTimeout ago: a new datagram with
// the same key). It returns nil when the datagram has no slot and the
// fragment needs none (it starts at or beyond FragKeep).
func (t *fragTable) slot(k *fragKey, ts int64, off int, st *Stats) *fragSlot {
	h := maphash.Bytes(t.seed, k[:])
	pos, n := t.lookup(k, h)
	if n >= 0 && ts-t.slots[n].first > int64(FragTimeout) {
		// The same key, but long after: a new datagram.
		t.release(n, ts, st)
		pos, n = t.lookup(k, h)
	}
	if n >= 0 {
		return &t.slots[n]
	}
	if off >= FragKeep {
		// Nothing of the header is in this fragment, and its end can
		// only matter for a datagram shorter than FragKeep, which it
		// is not: no slot needed.
		return nil
	}
	n = t.next
	t.next = (t.next + 1) % FragSlots
	if t.slots[n].state != slotFree {
		t.release(n, ts, st)
		pos, _ = t.lookup(k, h) // the release may have moved entries
	}
	t.index[pos] = int16(n + 1)
	s := &t.slots[n]
	s.key, s.hash = *k, h
	s.first = ts
	s.have = 0
	s.total = -1
	s.state = slotPending
	return s
}

// differs reports whether the fragment at off (its captured bytes data)
// has a byte that s holds otherwise.
func (s *fragSlot) differs(off int, data []byte) bool {
	for i := off; i < min(off+len(data), FragKeep); i++ {
		if s.have&(1<<uint(i)) != 0 && s.buf[i] != data[i-off] {
			return true
		}
	}
	return false
}

// fill copies the bytes of the fragment at off that s still misses (the
// first copy of each byte wins) and, for the datagram's first last
// fragment, sets its length.
func (s *fragSlot) fill(off int, more bool, data []byte, realLen int) {
	if off < FragKeep {
		end := min(off+len(data), FragKeep)
		for i := off; i < end; i++ {
			if s.have&(1<<uint(i)) == 0 {
				s.buf[i] = data[i-off]
				s.have |= 1 << uint(i)
			}
		}
	}
	if !more && s.total < 0 && realLen >= 0 {
		s.total = int32(min(off+realLen, 1<<20))
	}
}

// header reports whether s now holds its datagram's transport header
// (proto's: TCP or UDP), or the whole datagram when it is shorter than
// FragKeep. When it does, s is done and header returns the bytes and
// true, counting a reassembled datagram; a header that can never be whole
// (a TCP data offset below 5, a datagram shorter than its header) is done
// too, counted as malformed, and returns false.
func (s *fragSlot) header(proto uint8, st *Stats) ([]byte, bool) {
	minHdr := 8
	if proto == ipProtoTCP {
		minHdr = 20
	}
	need := minHdr
	if minHdr == 20 && s.have&lowBits(13) == lowBits(13) {
		need = int(s.buf[12]>>4) * 4
		if need < 20 {
			s.state = slotDone
			st.Malformed++ // a TCP data offset below 5
			return nil, false
		}
	}
	if s.have&lowBits(need) == lowBits(need) {
		s.state = slotDone
		st.Reassembled++
		return s.buf[:need], true
	}
	if s.total >= 0 {
		n := min(int(s.total), FragKeep)
		if s.have&lowBits(n) == lowBits(n) {
			s.state = slotDone
			if n < minHdr {
				st.Malformed++ // a datagram shorter than its header
				return nil, false
			}
			st.Reassembled++
			return s.buf[:n], true
		}
	}
	return nil, false
}

// lowBits returns a mask of the n lowest bits (n at most 64).
func lowBits(n int) uint64 {
	if n >= 64 {
		return ^uint64(0)
	}
	return 1<<uint(n) - 1
}
