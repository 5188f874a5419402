package detect

import "testing"

func TestHops(t *testing.T) {
	cases := []struct {
		ttl     uint8
		hops    int
		initial uint8
	}{
		{0, 32, 32}, // expired on the way in: still read against 32
		{1, 31, 32},
		{30, 2, 32},
		{32, 0, 32},
		{33, 31, 64},
		{50, 14, 64},
		{63, 1, 64}, // Linux, one router away
		{64, 0, 64}, // Linux, macOS, BSD: same link
		{65, 63, 128},
		{113, 15, 128}, // Windows, across the Internet
		{127, 1, 128},
		{128, 0, 128}, // Windows: same link
		{129, 126, 255},
		{240, 15, 255}, // an initial 255 (routers, some stacks' ICMP)
		{254, 1, 255},
		{255, 0, 255},
	}
	for _, c := range cases {
		hops, initial := Hops(c.ttl)
		if hops != c.hops || initial != c.initial {
			t.Errorf("Hops(%d) = %d, %d; want %d, %d", c.ttl, hops, initial, c.hops, c.initial)
		}
	}
	// Every TTL: the initial value is the nearest at or above it.
	for ttl := 0; ttl <= 255; ttl++ {
		hops, initial := Hops(uint8(ttl))
		if int(initial) < ttl || hops != int(initial)-ttl {
			t.Fatalf("Hops(%d) = %d, %d", ttl, hops, initial)
		}
		for _, lower := range []int{32, 64, 128} {
			if lower >= ttl && lower < int(initial) {
				t.Fatalf("Hops(%d): initial %d, but %d is nearer", ttl, initial, lower)
			}
		}
	}
}
