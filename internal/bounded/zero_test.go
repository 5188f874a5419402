package bounded

import "testing"

// TestZero: a Map of at most 0 entries holds none; Put must not
// panic (an index into the empty ring).
func TestZero(t *testing.T) {
	m := New[int, int](0)
	m.Put(1, 1)
	m.Put(2, 2)
	if m.Len() != 0 {
		t.Errorf("%d entries, bound 0", m.Len())
	}
	if _, ok := m.Get(1); ok {
		t.Error("a key kept in a map of 0 entries")
	}
}

// TestBound: exactly max entries are kept, the oldest goes first,
// round after round of the ring.
func TestBound(t *testing.T) {
	for max := 1; max <= 4; max++ {
		m := New[int, int](max)
		for i := range 3*max + 1 {
			m.Put(i, i)
			if want := min(i+1, max); m.Len() != want {
				t.Fatalf("max %d, after %d puts: %d entries, want %d", max, i+1, m.Len(), want)
			}
			for k := 0; k <= i; k++ {
				if _, ok := m.Get(k); ok != (k > i-max) {
					t.Fatalf("max %d, after key %d: key %d there=%v", max, i, k, ok)
				}
			}
		}
	}
}
