package host

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
)

// routesMax bounds what ReadRoutes keeps of each kind: a router's full
// table may hold a million routes, through a handful of next hops, and
// hardly any of them within a connected network.
const routesMax = 4096

// Routes is what the routing tables say about the host's neighbours.
type Routes struct {
	// Next are the next hops of every route of every table, both
	// families (gateways, RTA_VIA addresses, multipath next hops): the
	// neighbours that forward traffic for the host, and so whose frames
	// may carry others' addresses.
	Next map[netip.Addr]struct{}
	// Within are the destinations of routes through a next hop that lie
	// within a connected network (a more specific route: a /96 of a /64
	// routed elsewhere). Their addresses are not on the link, though the
	// connected network's prefix holds them.
	Within []netip.Prefix
}

// Routed reports whether addr lies within one of r's Within prefixes.
func (r *Routes) Routed(addr netip.Addr) bool {
	a := addr.Unmap()
	for _, p := range r.Within {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ReadRoutes reads every routing table, both families, for the next hops
// and the routed prefixes within connected (see Routes). Past routesMax
// of either, the rest are left out, with an error. A dump the kernel
// interrupted is tried again, dumpTries times in all.
func ReadRoutes(connected []Connected) (Routes, error) {
	r := Routes{Next: map[netip.Addr]struct{}{}}
	full := false
	// the next hops as the dump goes (an interrupted dump's add nothing
	// wrong to a set); of the routes, only those within a connected
	// network are kept: a router's full table may hold a million
	routed, err := dumpRoutes(func(rt netlink.Route) bool {
		via := nextHops(&rt, func(a netip.Addr) {
			if len(r.Next) < routesMax {
				r.Next[a] = struct{}{}
			} else if _, ok := r.Next[a]; !ok {
				full = true
			}
		})
		p, ok := prefixOf(rt.Dst)
		return via && ok && within(p, connected)
	})
	for _, rt := range routed {
		p, _ := prefixOf(rt.Dst)
		if slices.Contains(r.Within, p) {
			continue // the same prefix in another table
		}
		if len(r.Within) < routesMax {
			r.Within = append(r.Within, p)
		} else {
			full = true
		}
	}
	if full {
		err = errors.Join(err, fmt.Errorf("more than %d next hops or routed prefixes within connected networks: the others are left out", routesMax))
	}
	return r, err
}

// prefixOf turns a route's destination into a masked, unmapped prefix;
// false for none or a default route.
func prefixOf(dst *net.IPNet) (netip.Prefix, bool) {
	if dst == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(dst.IP)
	ones, _ := dst.Mask.Size()
	if !ok || ones == 0 {
		return netip.Prefix{}, false
	}
	if a.Is4In6() {
		a, ones = a.Unmap(), max(ones-96, 0)
	}
	return netip.PrefixFrom(a, ones).Masked(), true
}

// within reports whether p lies inside a connected network, and is more
// specific than it.
func within(p netip.Prefix, connected []Connected) bool {
	for _, c := range connected {
		if c.Prefix.Bits() < p.Bits() && c.Prefix.Contains(p.Addr()) {
			return true
		}
	}
	return false
}
