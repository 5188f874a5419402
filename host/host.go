// Package host reads the facts of the machine scanwarden protects: the
// ports its services have bound (sock_diag, /proc/net), its own addresses,
// its default gateways and its resolvers, and follows their changes. It
// only reads: it changes nothing on the host, and it knows nothing of the
// config file, alerts or blocks (the daemon hands what it reads to package
// block and to the engine).
//
// The never-block facts (Addrs):
//   - the host's own addresses, from the kernel's interface list;
//   - the default gateways of every routing table, both families, through
//     netlink (github.com/vishvananda/netlink): the main table, the
//     tables of policy routing and of VRFs, each next hop of a multipath
//     route, and an RTA_VIA next hop (an IPv4 route through an IPv6
//     router). Only when netlink fails are /proc/net/route and
//     /proc/net/ipv6_route read instead, which show the main table alone;
//     they are read as well when a default route's next hop is a nexthop
//     object the dump leaves out (net.ipv4.nexthop_compat_mode=0);
//   - the resolvers of /etc/resolv.conf and, under systemd-resolved (whose
//     stub, 127.0.0.53, is all /etc/resolv.conf then lists), the upstream
//     servers resolved uses, from /run/systemd/resolve/resolv.conf.
//
// Watch follows the changes of links, addresses and routes (rtnetlink
// subscriptions). The resolv.conf files are not watched: resolved and
// DHCP clients rewrite them when the network changes, which comes with
// address or route changes, and every change Watch reports makes the
// daemon read them again.
//
// Neighbours is the kernel's neighbour table (ARP and NDP: each
// neighbour's state and link-layer address) with the host's connected
// networks, kept current by WatchNeighbours the same way.
package host

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Addrs reads the addresses a scan blocker must never block because
// they are this host's or its network's lifelines: its own addresses and,
// when asked, its default gateways and resolvers. The zero value reads
// nothing; NewAddrs gives the system's sources.
type Addrs struct {
	Gateway   bool // include the default gateways
	Resolvers bool // include the resolvers
	// Routes lists routes of every routing table, both families
	// (NewAddrs: netlink, the default routes only). Of what it returns
	// only the default routes count: their gateways, RTA_VIA next hops
	// and multipath next hops. nil, or an error, reads RouteV4 and
	// RouteV6 instead.
	Routes  func() ([]netlink.Route, error)
	RouteV4 string // /proc/net/route: the main table only
	RouteV6 string // /proc/net/ipv6_route: the main table only
	// ResolvConf and ResolvedConf are read for nameserver lines, both,
	// each address once (its reason names the first file listing it); a
	// missing file or an empty path is no resolver.
	ResolvConf   string // /etc/resolv.conf
	ResolvedConf string // /run/systemd/resolve/resolv.conf: resolved's upstream servers
	// Interfaces lists the host's addresses (net.InterfaceAddrs).
	Interfaces func() ([]netip.Addr, error)
}

// NewAddrs returns the system's sources, with the gateways and the
// resolvers included as asked.
func NewAddrs(gateway, resolvers bool) *Addrs {
	return &Addrs{
		Gateway:      gateway,
		Resolvers:    resolvers,
		Routes:       netlinkDefaultRoutes,
		RouteV4:      "/proc/net/route",
		RouteV6:      "/proc/net/ipv6_route",
		ResolvConf:   "/etc/resolv.conf",
		ResolvedConf: "/run/systemd/resolve/resolv.conf",
		Interfaces:   InterfaceAddrs,
	}
}

// Read returns every address with why it is protected ("an address of
// this host", "a default gateway", "a resolver in /etc/resolv.conf").
// On error the map holds what could be read; the error says what could
// not (a failed netlink route dump is an error even when /proc served:
// only the main table was read).
func (s *Addrs) Read() (map[netip.Addr]string, error) {
	out := map[netip.Addr]string{}
	var errs []error
	if s.Interfaces != nil {
		if addrs, err := s.Interfaces(); err != nil {
			errs = append(errs, fmt.Errorf("host addresses: %w", err))
		} else {
			for _, a := range addrs {
				out[a.Unmap()] = "an address of this host"
			}
		}
	}
	if s.Gateway {
		gws, err := s.gateways()
		if err != nil {
			errs = append(errs, err)
		}
		for _, a := range gws {
			out[a] = "a default gateway"
		}
	}
	if s.Resolvers {
		seen := map[netip.Addr]bool{}
		for _, path := range []string{s.ResolvConf, s.ResolvedConf} {
			if path == "" {
				continue
			}
			rs, err := resolvers(path)
			if err != nil {
				errs = append(errs, err)
			}
			for _, a := range rs {
				if !seen[a] {
					seen[a] = true
					out[a] = "a resolver in " + path
				}
			}
		}
	}
	return out, errors.Join(errs...)
}

// gateways returns the next hops of the default routes: from Routes, or
// from the /proc files when Routes is nil or fails, or from both when a
// default route's next hop is hidden from Routes.
func (s *Addrs) gateways() ([]netip.Addr, error) {
	var out []netip.Addr
	var errs []error
	proc := s.Routes == nil
	if s.Routes != nil {
		rs, err := s.Routes()
		if err != nil {
			errs = append(errs, fmt.Errorf("routes from netlink (the main table read from /proc instead): %w", err))
			proc = true
		}
		gws, hidden := routeGateways(rs)
		out = append(out, gws...)
		proc = proc || hidden
	}
	if proc {
		gws, err := defaultGateways(s.RouteV4, s.RouteV6)
		if err != nil {
			errs = append(errs, err)
		}
		out = append(out, gws...)
	}
	return out, errors.Join(errs...)
}

// routeGateways returns the next hops of the default routes among rs
// (a destination of length 0, any table): gateways, RTA_VIA addresses
// and the next hops of multipath routes. hidden says that a default
// unicast route through a router (scope universe) names no next hop: it
// uses a nexthop object (ip nexthop, as FRR installs routes) and the
// kernel leaves the object's gateway out of route messages when
// net.ipv4.nexthop_compat_mode is 0. (An IPv6 route through a device
// alone, default dev wg0, says so too, IPv6 routes being all of scope
// universe: /proc is then read for nothing, which is harmless.)
func routeGateways(rs []netlink.Route) (gws []netip.Addr, hidden bool) {
	for _, r := range rs {
		if !isDefault(r) {
			continue
		}
		named := nextHops(&r, func(a netip.Addr) { gws = append(gws, a) })
		if !named && r.Type == unix.RTN_UNICAST && r.Scope == netlink.SCOPE_UNIVERSE {
			hidden = true
		}
	}
	return gws, hidden
}

// nextHops hands add the next hops r names (unmapped): its gateway, its
// RTA_VIA address and its multipath next hops' own; it says whether it
// named any.
func nextHops(r *netlink.Route, add func(netip.Addr)) bool {
	named := false
	put := func(ip net.IP) {
		if a, ok := netip.AddrFromSlice(ip); ok && !a.Unmap().IsUnspecified() {
			add(a.Unmap())
			named = true
		}
	}
	via := func(d netlink.Destination) {
		if v, ok := d.(*netlink.Via); ok && v != nil {
			put(v.Addr)
		}
	}
	put(r.Gw)
	via(r.Via)
	for _, nh := range r.MultiPath {
		if nh != nil {
			put(nh.Gw)
			via(nh.Via)
		}
	}
	return named
}

// isDefault says whether r is a default route: no destination, or one of
// length 0 (netlink reports 0.0.0.0/0 or ::/0).
func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

// dumpTries is how many times a route dump the kernel interrupted (the
// routes changed during it: NLM_F_DUMP_INTR) is tried before its partial
// result is taken with the error.
const dumpTries = 3

// netlinkDefaultRoutes lists the default routes of every routing table
// (RT_TABLE_UNSPEC with RT_FILTER_TABLE), IPv4 and IPv6. It keeps the
// default routes only, as the dump goes: a router's full table may hold a
// million routes.
func netlinkDefaultRoutes() ([]netlink.Route, error) {
	return dumpRoutes(isDefault)
}

// dumpRoutes lists the routes of every routing table, both families, that
// keep says to keep, as the dump goes. A dump the kernel interrupted (the
// routes changed during it: NLM_F_DUMP_INTR) is done again, dumpTries
// times in all; the last one's routes are then taken with the error.
func dumpRoutes(keep func(netlink.Route) bool) ([]netlink.Route, error) {
	var out []netlink.Route
	var errs []error
	filter := &netlink.Route{Table: unix.RT_TABLE_UNSPEC}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		for try := 1; ; try++ {
			var rs []netlink.Route
			err := netlink.RouteListFilteredIter(family, filter, netlink.RT_FILTER_TABLE, func(r netlink.Route) bool {
				if keep(r) {
					rs = append(rs, r)
				}
				return true
			})
			if errors.Is(err, netlink.ErrDumpInterrupted) && try < dumpTries {
				continue
			}
			out = append(out, rs...)
			if err != nil {
				errs = append(errs, fmt.Errorf("route dump (family %d): %w", family, err))
			}
			break
		}
	}
	return out, errors.Join(errs...)
}

// InterfaceAddrs returns the addresses of the host's interfaces (IPv4-mapped
// ones unmapped), in the kernel's order.
func InterfaceAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out, nil
}

// defaultGateways reads the next hops of the default routes of the main
// table from /proc (/proc/net/route: hex little-endian IPv4;
// /proc/net/ipv6_route: hex IPv6). A missing IPv6 table (IPv6 disabled)
// is not an error.
func defaultGateways(v4, v6 string) ([]netip.Addr, error) {
	var out []netip.Addr
	var errs []error
	if err := eachLine(v4, func(f []string) {
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...:
		// a default route is destination 0 under mask 0 (0.0.0.0/1, a
		// VPN's half of the address space, is not one)
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			return
		}
		b, err := hex.DecodeString(f[2])
		if err != nil || len(b) != 4 {
			return
		}
		a := netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]})
		if !a.IsUnspecified() {
			out = append(out, a)
		}
	}); err != nil {
		errs = append(errs, err)
	}
	if err := eachLine(v6, func(f []string) {
		// dest destlen src srclen nexthop metric refcnt use flags iface
		if len(f) < 5 || f[1] != "00" || strings.Trim(f[0], "0") != "" {
			return
		}
		b, err := hex.DecodeString(f[4])
		if err != nil || len(b) != 16 {
			return
		}
		a := netip.AddrFrom16([16]byte(b))
		if !a.IsUnspecified() {
			out = append(out, a)
		}
	}); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// resolvers reads the nameserver lines of resolv.conf. A missing file is
// no resolver.
func resolvers(path string) ([]netip.Addr, error) {
	var out []netip.Addr
	err := eachLine(path, func(f []string) {
		if len(f) >= 2 && f[0] == "nameserver" {
			// a zone (fe80::1%eth0) is allowed there
			s, _, _ := strings.Cut(f[1], "%")
			if a, err := netip.ParseAddr(s); err == nil {
				out = append(out, a.Unmap())
			}
		}
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return out, err
}

func eachLine(path string, fn func(fields []string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fn(strings.Fields(sc.Text()))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
