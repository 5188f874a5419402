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

// TestDelete: a deleted key is gone; put again, it lives out its new
// slot, not the stale one (whose turn must not evict it early).
func TestDelete(t *testing.T) {
	m := New[int, string](3)
	m.Put(1, "a")
	m.Put(2, "b")
	m.Delete(1)
	m.Delete(7) // not there: nothing happens
	if _, ok := m.Get(1); ok || m.Len() != 1 {
		t.Fatalf("after Delete(1): Get(1) there=%v, %d entries, want gone and 1", ok, m.Len())
	}
	m.Put(1, "A") // slot 2; slot 0 is stale
	m.Put(4, "d") // takes stale slot 0: 1 must stay
	if v, ok := m.Get(1); !ok || v != "A" {
		t.Fatalf("the stale slot's turn evicted the key put again: Get(1) = %q %v", v, ok)
	}
	m.Put(5, "e") // takes slot 1: evicts 2
	if _, ok := m.Get(2); ok {
		t.Error("the oldest key was not evicted")
	}
	m.Put(6, "f") // takes slot 2: evicts 1, now the oldest
	if _, ok := m.Get(1); ok {
		t.Error("the key put again outlived its own slot")
	}
	for k, want := range map[int]string{4: "d", 5: "e", 6: "f"} {
		if v, ok := m.Get(k); !ok || v != want {
			t.Errorf("Get(%d) = %q %v, want %q", k, v, ok, want)
		}
	}
	// deleting every key of a full ring: the next round refills it whole
	for k := range 7 {
		m.Delete(k)
	}
	for k := 10; k < 13; k++ {
		m.Put(k, "x")
	}
	if m.Len() != 3 {
		t.Errorf("%d entries after refilling, want 3", m.Len())
	}
}
