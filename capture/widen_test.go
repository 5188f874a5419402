package capture

import "testing"

// TestWideCounter: libpcap's 32-bit counters wrap after 2^32 packets (some
// hours of a flood); the capture's totals go on counting, so that the
// metrics' _total counters never go backwards.
func TestWideCounter(t *testing.T) {
	var c wideCounter
	steps := []struct {
		raw  int
		want uint64
	}{
		{0, 0},
		{1000, 1000},
		{1<<32 - 10, 1<<32 - 10},
		{5, 1<<32 + 5}, // wrapped: 15 more
		{5, 1<<32 + 5},
		{1 << 31, 1<<32 + 1<<31},
		{3, 2<<32 + 3}, // wrapped again
	}
	for i, s := range steps {
		if got := c.widen(s.raw); got != s.want {
			t.Fatalf("step %d: reading %d gives %d, want %d", i, s.raw, got, s.want)
		}
	}
	// libpcap's int holding a 32-bit value read as negative on 32-bit
	// platforms: the same bits
	var d wideCounter
	if got := d.widen(-1); got != 1<<32-1 {
		t.Errorf("reading -1 gives %d, want %d", got, uint64(1<<32-1))
	}
}
