package block

import (
	"net/netip"
	"slices"
	"sync"
)

// NeverBlock says which addresses must never be blocked, and why: the
// ignore file, the host's own addresses, loopback, unspecified, multicast
// and broadcast addresses, and (unless configured otherwise) the default
// gateways and the resolvers. Blocking any of these would cut the host off
// from itself or from its network, which is exactly what a forged scan
// would aim for. It holds plain values: the daemon reads the ignore file
// (package conf) and the host's addresses (package host) and hands them
// over. Safe for concurrent use.
type NeverBlock struct {
	mu     sync.RWMutex
	ignore []netip.Prefix
	fixed  map[netip.Addr]string // host addresses, gateways, resolvers: reason
}

// NewNeverBlock returns the never-block list of the ignore entries (the
// ignore file's networks; nil for none), with none of the host's
// addresses yet (see SetHost).
func NewNeverBlock(ignore []netip.Prefix) *NeverBlock {
	n := &NeverBlock{fixed: map[netip.Addr]string{}}
	n.SetIgnore(ignore)
	return n
}

// SetIgnore replaces the ignore entries (on reload).
func (n *NeverBlock) SetIgnore(ignore []netip.Prefix) {
	ps := make([]netip.Prefix, 0, len(ignore))
	for _, p := range ignore {
		ps = append(ps, netip.PrefixFrom(p.Addr().WithZone("").Unmap(), p.Bits()-unmapBits(p)).Masked())
	}
	n.mu.Lock()
	n.ignore = ps
	n.mu.Unlock()
}

// unmapBits is how many bits of p's length go when an IPv4-mapped IPv6
// prefix becomes an IPv4 one.
func unmapBits(p netip.Prefix) int {
	if a := p.Addr(); a.Is4In6() {
		return min(96, p.Bits())
	}
	return 0
}

// SetHost replaces the host's own addresses, gateways and resolvers
// (address: why it is protected). complete false says that some of them
// could not be read: the addresses known so far are then kept in
// addition, so that a failed read never drops an address from the list.
func (n *NeverBlock) SetHost(addrs map[netip.Addr]string, complete bool) {
	fixed := make(map[netip.Addr]string, len(addrs))
	for a, why := range addrs {
		fixed[a.Unmap()] = why
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !complete {
		for a, why := range n.fixed {
			if _, ok := fixed[a]; !ok {
				fixed[a] = why
			}
		}
	}
	n.fixed = fixed
}

// alwaysExempt are the networks Reason refuses whatever the config says,
// as prefixes for a kernel exemption list.
var alwaysExempt = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("0.0.0.0/32"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("255.255.255.255/32"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("ff00::/8"),
}

// Prefixes returns every address and network Reason refuses, as prefixes
// (single addresses as /32 or /128), for a kernel trap's exemptions.
func (n *NeverBlock) Prefixes() []netip.Prefix {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := slices.Clone(alwaysExempt)
	for a := range n.fixed {
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	out = append(out, n.ignore...)
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}

// ReasonIgnoreFile is Reason's reason for an address of the ignore file
// (and of nothing the host itself protects).
const ReasonIgnoreFile = "in the ignore file"

// Reason returns why addr must not be blocked, or "" when it may be.
func (n *NeverBlock) Reason(addr netip.Addr) string {
	a := addr.WithZone("").Unmap()
	switch {
	case !a.IsValid():
		return "not a valid address"
	case a.IsLoopback():
		return "a loopback address"
	case a.IsUnspecified():
		return "the unspecified address"
	case a.IsMulticast():
		return "a multicast address"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "the broadcast address"
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	if why, ok := n.fixed[a]; ok {
		return why
	}
	for _, p := range n.ignore {
		if p.Contains(a) {
			return ReasonIgnoreFile
		}
	}
	return ""
}
