package nftables

// Pure conversions between scanwarden's values and set elements.

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	nft "github.com/google/nftables"
)

// normalize returns a as the backend stores it (an IPv4-mapped IPv6
// address as the IPv4 address) and its family, or an error for an address
// that is not valid.
func normalize(a netip.Addr) (netip.Addr, family, error) {
	if !a.IsValid() {
		return netip.Addr{}, family{}, fmt.Errorf("invalid address")
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a, fam4, nil
	}
	return a, fam6, nil
}

// keyOf is a's set key: 4 bytes for IPv4, 16 for IPv6.
func keyOf(a netip.Addr) []byte {
	if a.Is4() {
		b := a.As4()
		return b[:]
	}
	b := a.As16()
	return b[:]
}

// addrOf is the address of a set key, false when the key is neither 4 nor
// 16 bytes long.
func addrOf(k []byte) (netip.Addr, bool) {
	switch len(k) {
	case 4:
		return netip.AddrFrom4([4]byte(k)), true
	case 16:
		return netip.AddrFrom16([16]byte(k)), true
	}
	return netip.Addr{}, false
}

// roundUpMs rounds d up to whole milliseconds, the kernel's unit.
func roundUpMs(d time.Duration) time.Duration {
	return (d + time.Millisecond - 1) / time.Millisecond * time.Millisecond
}

// elemTimeout is the element timeout of a ban that runs until until, seen
// at now: until-now rounded up to whole milliseconds and at least
// minTimeout; 0 (no timeout) when until is zero or more than maxTimeout
// away. ok is false when the ban has run out.
func elemTimeout(until, now time.Time) (d time.Duration, ok bool) {
	if until.IsZero() {
		return 0, true
	}
	d = until.Sub(now)
	switch {
	case d <= 0:
		return 0, false
	case d > maxTimeout:
		return 0, true
	}
	return roundUpMs(max(d, minTimeout)), true
}

// holdTimeout is the element timeout the trap writes for a hold of d:
// d rounded up to whole milliseconds, at least minTimeout and at most
// maxTimeout, so that a trap element always has a timeout.
func holdTimeout(d time.Duration) time.Duration {
	return min(roundUpMs(max(d, minTimeout)), maxTimeout)
}

// kernelElem is an element as the kernel reports it.
type kernelElem struct {
	timeout bool          // it has a timeout
	left    time.Duration // and this much of it left
}

// elemsByAddr indexes a set's elements by address, skipping those that have
// expired (the kernel may still list them until its garbage collection
// runs) and keys that are no address.
func elemsByAddr(es []nft.SetElement) map[netip.Addr]kernelElem {
	out := make(map[netip.Addr]kernelElem, len(es))
	for _, e := range es {
		a, ok := addrOf(e.Key)
		if !ok || e.IntervalEnd {
			continue
		}
		k := kernelElem{timeout: e.Timeout != 0 || e.Expires != 0, left: e.Expires}
		if k.timeout && k.left <= 0 {
			continue
		}
		out[a] = k
	}
	return out
}

// needsReplace reports whether the kernel's element k differs from the
// wanted timeout want (0: none) by more than tolerance, or has or lacks a
// timeout wrongly.
func needsReplace(k kernelElem, want, tolerance time.Duration) bool {
	if k.timeout != (want != 0) {
		return true
	}
	if want == 0 {
		return false
	}
	diff := k.left - want
	return diff > tolerance || diff < -tolerance
}

// addrRange is an inclusive range of addresses of one family.
type addrRange struct{ from, to netip.Addr }

// v4in6 is the IPv4-mapped part of the IPv6 space.
var v4in6 = netip.MustParsePrefix("::ffff:0.0.0.0/96")

// exemptRanges turns prefixes into the merged, sorted, disjoint ranges of
// each family. An IPv6 prefix that covers IPv4-mapped addresses exempts the
// IPv4 addresses it maps as well, since the backend treats a mapped
// address as the IPv4 one.
func exemptRanges(ps []netip.Prefix) (v4, v6 []addrRange) {
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		p = p.Masked()
		if p.Addr().Is4() {
			v4 = append(v4, prefixRange(p))
			continue
		}
		v6 = append(v6, prefixRange(p))
		if p.Overlaps(v4in6) {
			if p.Bits() >= 96 {
				v4 = append(v4, prefixRange(netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)))
			} else {
				v4 = append(v4, prefixRange(netip.MustParsePrefix("0.0.0.0/0")))
			}
		}
	}
	return mergeRanges(v4), mergeRanges(v6)
}

// prefixRange is the range of the masked prefix p.
func prefixRange(p netip.Prefix) addrRange {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	last, _ := netip.AddrFromSlice(b)
	return addrRange{p.Addr(), last}
}

// mergeRanges sorts rs and merges those that overlap or touch: an interval
// set refuses overlapping elements.
func mergeRanges(rs []addrRange) []addrRange {
	slices.SortFunc(rs, func(a, b addrRange) int { return a.from.Compare(b.from) })
	var out []addrRange
	for _, r := range rs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if next := last.to.Next(); !next.IsValid() || r.from.Compare(next) <= 0 {
				if r.to.Compare(last.to) > 0 {
					last.to = r.to
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// intervalElems encodes disjoint sorted ranges of one family as nft does
// for an interval set: an interval end at the zero address when the first
// range does not start there, then each range's start and, unless it runs
// to the last address, an interval end at the address after it.
func intervalElems(rs []addrRange) []nft.SetElement {
	var out []nft.SetElement
	if len(rs) == 0 {
		return out
	}
	if zero := zeroOf(rs[0].from); rs[0].from != zero {
		out = append(out, nft.SetElement{Key: keyOf(zero), IntervalEnd: true})
	}
	for _, r := range rs {
		out = append(out, nft.SetElement{Key: keyOf(r.from)})
		if next := r.to.Next(); next.IsValid() {
			out = append(out, nft.SetElement{Key: keyOf(next), IntervalEnd: true})
		}
	}
	return out
}

func zeroOf(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// covered reports whether a lies in one of the sorted disjoint ranges rs.
func covered(rs []addrRange, a netip.Addr) bool {
	i, found := slices.BinarySearchFunc(rs, a, func(r addrRange, a netip.Addr) int { return r.from.Compare(a) })
	if found {
		return true
	}
	return i > 0 && rs[i-1].to.Compare(a) >= 0
}

// elemKey identifies an element of a set without data: its key and
// whether it ends an interval.
type elemKey struct {
	key string
	end bool
}

// sameElems reports whether a and b hold the same elements, in any order,
// ignoring timeouts.
func sameElems(a, b []nft.SetElement) bool {
	if len(a) != len(b) {
		return false
	}
	ka, kb := elemKeys(a), elemKeys(b)
	return slices.Equal(ka, kb)
}

func elemKeys(es []nft.SetElement) []elemKey {
	out := make([]elemKey, len(es))
	for i, e := range es {
		out[i] = elemKey{string(e.Key), e.IntervalEnd}
	}
	slices.SortFunc(out, func(a, b elemKey) int {
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		switch {
		case a.end == b.end:
			return 0
		case a.end:
			return 1
		}
		return -1
	})
	return out
}
