package detect

import (
	"cmp"
	"encoding/binary"
	"net/netip"
)

// Addr is an IP address as the decoder hands it to the engine: its 16
// bytes in IPv6 form (an IPv4 address mapped into ::ffff:0:0/96) as two
// machine words, high then low. The engine hashes and compares those two
// words on every packet; a netip.Addr would cost a copy through As16 each
// time, and its zone pointer would make the engine's tables memory the
// garbage collector scans.
//
// An IPv4 address and the IPv4-mapped IPv6 address of the same four bytes
// are the same Addr. The decoder keeps them apart by refusing IPv6 packets
// with a mapped source or destination (RFC 4291 2.5.5.2: they are never
// sent on the wire; Linux drops them on input), so an Addr in ::ffff:0:0/96
// always came from an IPv4 header. The zero Addr is ::, which no packet
// comes from: it stands for no address (IsValid).
type Addr struct{ hi, lo uint64 }

// v4Prefix is the low word's upper half of an IPv4 address in IPv6 form.
const v4Prefix = 0xffff << 32

// AddrFrom4 returns the Addr of an IPv4 address.
func AddrFrom4(b [4]byte) Addr {
	return Addr{0, v4Prefix | uint64(binary.BigEndian.Uint32(b[:]))}
}

// AddrFrom16 returns the Addr of 16 bytes in IPv6 form (an IPv4-mapped
// address gives the IPv4 address's Addr).
func AddrFrom16(b [16]byte) Addr {
	return Addr{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// AddrOf returns the Addr of a (its zone, if any, is dropped; an
// IPv4-mapped IPv6 address gives its IPv4 address's Addr).
func AddrOf(a netip.Addr) Addr {
	if !a.IsValid() {
		return Addr{}
	}
	return AddrFrom16(a.As16())
}

// Netip returns a as a netip.Addr: an IPv4 one when a is in ::ffff:0:0/96,
// the zero (invalid) netip.Addr for the zero Addr.
func (a Addr) Netip() netip.Addr {
	switch {
	case a.Is4():
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(a.lo))
		return netip.AddrFrom4(b)
	case !a.IsValid():
		return netip.Addr{}
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], a.hi)
	binary.BigEndian.PutUint64(b[8:], a.lo)
	return netip.AddrFrom16(b)
}

// String returns a's text form, as netip.Addr writes it.
func (a Addr) String() string { return a.Netip().String() }

// IsValid reports whether a is an address (not the zero Addr).
func (a Addr) IsValid() bool { return a != Addr{} }

// Is4 reports whether a is an IPv4 address.
func (a Addr) Is4() bool { return a.hi == 0 && a.lo>>32 == 0xffff }

// IsMulticast reports whether a is an IPv4 (224.0.0.0/4) or IPv6
// (ff00::/8) multicast address.
func (a Addr) IsMulticast() bool {
	if a.Is4() {
		return a.lo>>28&0xf == 0xe
	}
	return a.hi>>56 == 0xff
}

// IsUnspecified reports whether a is 0.0.0.0 or ::.
func (a Addr) IsUnspecified() bool { return a == Addr{} || a == Addr{0, v4Prefix} }

// isBroadcast4 reports whether a is 255.255.255.255.
func (a Addr) isBroadcast4() bool { return a == Addr{0, v4Prefix | 0xffffffff} }

func (a Addr) compare(b Addr) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// prefix is a netip.Prefix as masks over an Addr's words, so that the
// engine tests HOME_NETWORKS without building a netip.Addr per packet.
type prefix struct {
	hi, lo   uint64 // the prefix's address, masked
	mhi, mlo uint64 // its mask
	is4      bool
}

func prefixOf(p netip.Prefix) prefix {
	if !p.IsValid() {
		// contains nothing, as netip's invalid Prefix: no IPv4 address
		// has a low word of 0
		return prefix{is4: true, mlo: ^uint64(0)}
	}
	p = p.Masked()
	a := AddrOf(p.Addr())
	bits := p.Bits()
	is4 := p.Addr().Is4()
	if is4 {
		bits += 96
	}
	var mhi, mlo uint64
	switch {
	case bits >= 128:
		mhi, mlo = ^uint64(0), ^uint64(0)
	case bits > 64:
		mhi, mlo = ^uint64(0), ^uint64(0)<<(128-bits)
	case bits > 0:
		mhi = ^uint64(0) << (64 - bits)
	}
	return prefix{hi: a.hi & mhi, lo: a.lo & mlo, mhi: mhi, mlo: mlo, is4: is4}
}

// contains reports whether a is in p; like netip.Prefix.Contains, an IPv4
// address is never in an IPv6 prefix, nor the other way round.
func (p *prefix) contains(a Addr) bool {
	return a.Is4() == p.is4 && a.hi&p.mhi == p.hi && a.lo&p.mlo == p.lo
}
