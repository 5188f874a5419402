// Package bounded is a map that holds at most a fixed number of entries:
// past it, the entry put in first makes room (first in, first out). It is
// how the daemon's per-source memories stay bounded under a flood of
// forged sources. Not safe for concurrent use: its users lock around it.
package bounded

// Map maps keys to values, at most Cap of them. The zero value is not
// usable; make one with New.
type Map[K comparable, V any] struct {
	m map[K]entry[V]
	// order is a ring of the keys put, oldest at next once full. A slot
	// whose key was deleted (or deleted and put again, in a later slot)
	// is stale: the entry's at names the one slot that is its own.
	order []K
	next  int
}

type entry[V any] struct {
	v  V
	at int // the entry's slot in order
}

// New returns an empty Map of at most max entries (max >= 0; one of 0
// entries keeps none), its memory allocated up front.
func New[K comparable, V any](max int) *Map[K, V] {
	return &Map[K, V]{m: make(map[K]entry[V], max), order: make([]K, 0, max)}
}

// Get returns k's value and whether k is there.
func (b *Map[K, V]) Get(k K) (V, bool) {
	e, ok := b.m[k]
	return e.v, ok
}

// Put sets k's value. A new key takes the oldest slot once every slot
// was used, evicting that slot's entry (when it is still there);
// updating a key keeps its place in the order.
func (b *Map[K, V]) Put(k K, v V) {
	if e, ok := b.m[k]; ok {
		b.m[k] = entry[V]{v: v, at: e.at}
		return
	}
	if cap(b.order) == 0 {
		return // a bound of 0: nothing is kept
	}
	at := len(b.order)
	if at < cap(b.order) {
		b.order = append(b.order, k)
	} else {
		at = b.next
		if old := b.order[at]; b.m[old].at == at {
			delete(b.m, old)
		}
		b.order[at] = k
		b.next = (b.next + 1) % len(b.order)
	}
	b.m[k] = entry[V]{v: v, at: at}
}

// Delete removes k, if it is there. Its slot in the order stays used
// until its turn comes, so the Map may then hold fewer than its bound.
func (b *Map[K, V]) Delete(k K) {
	delete(b.m, k)
}

// Len returns the number of entries.
func (b *Map[K, V]) Len() int { return len(b.m) }
