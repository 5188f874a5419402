// Package host reads the facts of the machine scanwarden protects: the
// ports its services have bound (sock_diag, /proc/net), its own addresses,
// its default gateways and its resolvers, and follows their changes
// (rtnetlink). It only reads: it changes nothing on the host, and it knows
// nothing of the config file, alerts or blocks (the daemon hands what it
// reads to package block and to the engine).
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
)

// Addrs reads the addresses a scan blocker must never block because
// they are this host's or its network's lifelines: its own addresses and,
// when asked, its default gateways and resolvers. The zero value reads
// nothing; NewAddrs gives the system's sources.
type Addrs struct {
	Gateway    bool   // include the default gateways
	Resolvers  bool   // include the resolvers
	RouteV4    string // /proc/net/route
	RouteV6    string // /proc/net/ipv6_route
	ResolvConf string // /etc/resolv.conf
	// Interfaces lists the host's addresses (net.InterfaceAddrs).
	Interfaces func() ([]netip.Addr, error)
}

// NewAddrs returns the system's sources, with the gateways and the
// resolvers included as asked.
func NewAddrs(gateway, resolvers bool) *Addrs {
	return &Addrs{
		Gateway:    gateway,
		Resolvers:  resolvers,
		RouteV4:    "/proc/net/route",
		RouteV6:    "/proc/net/ipv6_route",
		ResolvConf: "/etc/resolv.conf",
		Interfaces: interfaceAddrs,
	}
}

// Read returns every address with why it is protected ("an address of
// this host", "a default gateway", "a resolver in /etc/resolv.conf").
// On error the map holds what could be read; the error says what could
// not.
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
		gws, err := defaultGateways(s.RouteV4, s.RouteV6)
		if err != nil {
			errs = append(errs, err)
		}
		for _, a := range gws {
			out[a] = "a default gateway"
		}
	}
	if s.Resolvers {
		rs, err := resolvers(s.ResolvConf)
		if err != nil {
			errs = append(errs, err)
		}
		for _, a := range rs {
			out[a] = "a resolver in " + s.ResolvConf
		}
	}
	return out, errors.Join(errs...)
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
