package block

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/scanwarden/scanwarden/conf"
)

// NeverBlock says which addresses must never be blocked, and why: the
// ignore file, the host's own addresses, loopback, unspecified, multicast
// and broadcast addresses, and (unless configured otherwise) the default
// gateways and the resolvers of resolv.conf. Blocking any of these would
// cut the host off from itself or from its network, which is exactly what
// a forged scan would aim for. Safe for concurrent use.
type NeverBlock struct {
	mu     sync.RWMutex
	ignore *conf.IgnoreList
	fixed  map[netip.Addr]string // host addresses, gateways, resolvers: reason

	// Sources, replaceable in tests.
	Gateway    bool   // include the default gateways
	Resolvers  bool   // include the resolvers
	RouteV4    string // /proc/net/route
	RouteV6    string // /proc/net/ipv6_route
	ResolvConf string
	// Interfaces lists the host's addresses (net.InterfaceAddrs).
	Interfaces func() ([]netip.Addr, error)
}

// NewNeverBlock returns the never-block list of cfg with the system's
// sources; call Refresh to read them.
func NewNeverBlock(ignore *conf.IgnoreList, gateway, resolvers bool) *NeverBlock {
	return &NeverBlock{
		ignore:     ignore,
		fixed:      map[netip.Addr]string{},
		Gateway:    gateway,
		Resolvers:  resolvers,
		RouteV4:    "/proc/net/route",
		RouteV6:    "/proc/net/ipv6_route",
		ResolvConf: "/etc/resolv.conf",
		Interfaces: interfaceAddrs,
	}
}

// SetIgnore replaces the ignore list (on reload).
func (n *NeverBlock) SetIgnore(l *conf.IgnoreList) {
	n.mu.Lock()
	n.ignore = l
	n.mu.Unlock()
}

// Refresh re-reads the host's addresses, gateways and resolvers. On error
// the previous addresses stay in force (and are kept in addition to what
// could be read): an address is never dropped from the list by a failure.
func (n *NeverBlock) Refresh() error {
	fixed := map[netip.Addr]string{}
	var errs []error
	if addrs, err := n.Interfaces(); err != nil {
		errs = append(errs, fmt.Errorf("host addresses: %w", err))
	} else {
		for _, a := range addrs {
			fixed[a.Unmap()] = "an address of this host"
		}
	}
	if n.Gateway {
		gws, err := defaultGateways(n.RouteV4, n.RouteV6)
		if err != nil {
			errs = append(errs, err)
		}
		for _, a := range gws {
			fixed[a] = "a default gateway"
		}
	}
	if n.Resolvers {
		rs, err := resolvers(n.ResolvConf)
		if err != nil {
			errs = append(errs, err)
		}
		for _, a := range rs {
			fixed[a] = "a resolver in " + n.ResolvConf
		}
	}
	n.mu.Lock()
	if len(errs) > 0 {
		for a, why := range n.fixed {
			if _, ok := fixed[a]; !ok {
				fixed[a] = why
			}
		}
	}
	n.fixed = fixed
	n.mu.Unlock()
	return errors.Join(errs...)
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
	out = append(out, n.ignore.Prefixes()...)
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}

// Reason returns why addr must not be blocked, or "" when it may be.
func (n *NeverBlock) Reason(addr netip.Addr) string {
	a := addr.Unmap()
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
	if n.ignore != nil && n.ignore.Contains(a) {
		return "in the ignore file"
	}
	return ""
}

func interfaceAddrs() ([]netip.Addr, error) {
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

// defaultGateways reads the next hops of the default routes from the
// kernel's route tables (/proc/net/route: hex little-endian IPv4;
// /proc/net/ipv6_route: hex IPv6). A missing IPv6 table (IPv6 disabled)
// is not an error.
func defaultGateways(v4, v6 string) ([]netip.Addr, error) {
	var out []netip.Addr
	var errs []error
	if err := eachLine(v4, func(f []string) {
		// Iface Destination Gateway Flags ...
		if len(f) < 3 || f[1] != "00000000" {
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
