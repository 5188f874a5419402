package bounded

import "testing"

// TestMap: at most max entries, the oldest put making room for a new one;
// an update keeps its place.
func TestMap(t *testing.T) {
	m := New[int, string](3)
	m.Put(1, "a")
	m.Put(2, "b")
	m.Put(3, "c")
	m.Put(1, "A") // update: 1 stays the oldest
	m.Put(4, "d") // evicts 1
	if _, ok := m.Get(1); ok {
		t.Fatal("the oldest key was not evicted")
	}
	for k, want := range map[int]string{2: "b", 3: "c", 4: "d"} {
		if v, ok := m.Get(k); !ok || v != want {
			t.Errorf("Get(%d) = %q %v, want %q", k, v, ok, want)
		}
	}
	for i := 5; i < 1000; i++ {
		m.Put(i, "x")
		if m.Len() > 3 {
			t.Fatalf("%d entries, bound 3", m.Len())
		}
	}
	if _, ok := m.Get(999); !ok {
		t.Fatal("the newest key is gone")
	}
}
