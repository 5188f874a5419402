package detect

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// randAddr returns a random IPv4 or IPv6 address, often near the edges
// the predicates care about (multicast, unspecified, broadcast).
func randAddr(r *rand.Rand) netip.Addr {
	if r.IntN(2) == 0 {
		var b [4]byte
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		switch r.IntN(6) {
		case 0:
			b[0] = byte(224 + r.IntN(16)) // multicast
		case 1:
			b = [4]byte{}
		case 2:
			b = [4]byte{255, 255, 255, 255}
		}
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	switch r.IntN(6) {
	case 0:
		b[0] = 0xff
	case 1:
		b = [16]byte{}
	case 2:
		b = [16]byte{0xfd, 0, 0, 0x77}
	}
	a := netip.AddrFrom16(b)
	if a.Is4In6() { // the decoder never hands one over (see Addr)
		return netip.IPv6Loopback()
	}
	return a
}

// Addr agrees with netip.Addr: a round trip, and every predicate the
// engine asks of it.
func TestAddrAgreesWithNetip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100000; i++ {
		n := randAddr(r)
		a := AddrOf(n)
		if n == netip.IPv6Unspecified() {
			// the zero Addr: no address, which no packet comes from
			if a.IsValid() || !a.IsUnspecified() || a.Netip().IsValid() {
				t.Fatalf("::: %v valid %v", a, a.IsValid())
			}
			continue
		}
		if got := a.Netip(); got != n {
			t.Fatalf("%v: round trip gives %v", n, got)
		}
		if a.Is4() != n.Is4() || a.IsMulticast() != n.IsMulticast() || a.IsUnspecified() != n.IsUnspecified() ||
			a.isBroadcast4() != (n == netip.AddrFrom4([4]byte{255, 255, 255, 255})) || !a.IsValid() {
			t.Fatalf("%v: Is4 %v IsMulticast %v IsUnspecified %v broadcast %v valid %v", n, a.Is4(), a.IsMulticast(), a.IsUnspecified(), a.isBroadcast4(), a.IsValid())
		}
		if n.Is4() && a != AddrFrom4(n.As4()) || a != AddrFrom16(n.As16()) {
			t.Fatalf("%v: constructors disagree", n)
		}
		if a.String() != n.String() {
			t.Fatalf("%v: String %q", n, a.String())
		}
		m := randAddr(r)
		if c := a.compare(AddrOf(m)); (c == 0) != (AddrOf(m) == a) {
			t.Fatalf("%v %v: compare %d", n, m, c)
		}
	}
	if (Addr{}).IsValid() || (Addr{}).Netip().IsValid() || AddrOf(netip.Addr{}) != (Addr{}) {
		t.Fatal("the zero Addr is an address")
	}
	// an IPv4-mapped IPv6 address is its IPv4 address (see Addr)
	if AddrOf(netip.MustParseAddr("::ffff:198.51.100.7")) != AddrOf(netip.MustParseAddr("198.51.100.7")) {
		t.Fatal("mapped and IPv4 differ")
	}
}

// prefix.contains agrees with netip.Prefix.Contains, families kept apart.
func TestPrefixAgreesWithNetip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	fixed := []string{"0.0.0.0/0", "::/0", "::ffff:0:0/96", "198.51.100.0/24", "198.51.100.7/32", "fd00:77::/64", "fd00:77::10/128", "224.0.0.0/4", "ff00::/8", "203.0.113.128/25", "2001:db8::/33"}
	var prefixes []netip.Prefix
	for _, s := range fixed {
		prefixes = append(prefixes, netip.MustParsePrefix(s))
	}
	for i := 0; i < 2000; i++ {
		a := randAddr(r)
		prefixes = append(prefixes, netip.PrefixFrom(a, r.IntN(a.BitLen()+1)))
	}
	for _, p := range prefixes {
		q := prefixOf(p)
		for i := 0; i < 200; i++ {
			a := randAddr(r)
			if i%2 == 0 { // an address inside, or just outside, often
				b := p.Addr().As16()
				if p.Addr().Is4() {
					b4 := p.Addr().As4()
					b4[3] ^= byte(r.IntN(4))
					a = netip.AddrFrom4(b4)
				} else {
					b[15] ^= byte(r.IntN(4))
					a = netip.AddrFrom16(b)
				}
			}
			if a.Is4In6() { // never handed over (see Addr)
				continue
			}
			if got, want := q.contains(AddrOf(a)), p.Contains(a); got != want {
				t.Fatalf("%v contains %v: %v, netip says %v", p, a, got, want)
			}
		}
	}
	none := prefixOf(netip.Prefix{})
	for i := 0; i < 1000; i++ {
		if a := randAddr(r); none.contains(AddrOf(a)) {
			t.Fatalf("the invalid prefix contains %v", a)
		}
	}
}
