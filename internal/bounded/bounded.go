// Package bounded is a map that holds at most a fixed number of entries:
// past it, the entry put in first makes room (first in, first out). It is
// how the daemon's per-source memories stay bounded under a flood of
// forged sources. Not safe for concurrent use: its users lock around it.
package bounded

// Map maps keys to values, at most Cap of them. The zero value is not
// usable; make one with New.
type Map[K comparable, V any] struct {
	m     map[K]V
	order []K // ring of the keys in m, oldest at next once full
	next  int
}

// New returns an empty Map of at most max entries (max >= 0; one of 0
// entries keeps none), its memory allocated up front.
func New[K comparable, V any](max int) *Map[K, V] {
	return &Map[K, V]{m: make(map[K]V, max), order: make([]K, 0, max)}
}

// Get returns k's value and whether k is there.
func (b *Map[K, V]) Get(k K) (V, bool) {
	v, ok := b.m[k]
	return v, ok
}

// Put sets k's value. A new key, when the map is full, takes the place of
// the oldest one; updating a key keeps its place in the order.
func (b *Map[K, V]) Put(k K, v V) {
	if _, ok := b.m[k]; !ok {
		if cap(b.order) == 0 {
			return // a bound of 0: nothing is kept
		}
		if len(b.order) < cap(b.order) {
			b.order = append(b.order, k)
		} else {
			delete(b.m, b.order[b.next])
			b.order[b.next] = k
			b.next = (b.next + 1) % len(b.order)
		}
	}
	b.m[k] = v
}

// Len returns the number of entries.
func (b *Map[K, V]) Len() int { return len(b.m) }
