package host

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// fixture writes a file of the test's directory and returns its path.
func fixture(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func cidr(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// route is a unicast route of a table as netlink reports it: the default
// routes' destination is 0.0.0.0/0 or ::/0.
func route(table int, dst, gw string) netlink.Route {
	r := netlink.Route{Table: table, Dst: cidr(dst), Type: unix.RTN_UNICAST, Scope: netlink.SCOPE_UNIVERSE, Family: netlink.FAMILY_V4}
	if strings.Contains(dst, ":") {
		r.Family = netlink.FAMILY_V6
	}
	if gw != "" {
		r.Gw = net.ParseIP(gw)
	}
	return r
}

// tableRoutes are routes of several tables: the main one, policy-routing
// tables, a VRF's, IPv4 and IPv6, a multipath route, an IPv4 route
// through an IPv6 router, and routes that are not default ones.
func tableRoutes() []netlink.Route {
	mp := route(1001, "0.0.0.0/0", "") // a VRF's table, two next hops
	mp.MultiPath = []*netlink.NexthopInfo{
		{LinkIndex: 2, Gw: net.ParseIP("203.0.113.1")},
		{LinkIndex: 3, Gw: net.ParseIP("203.0.113.2")},
	}
	mp6 := route(1001, "::/0", "")
	mp6.MultiPath = []*netlink.NexthopInfo{
		{LinkIndex: 2, Gw: net.ParseIP("fd00:77::a")},
		{LinkIndex: 3, Via: &netlink.Via{AddrFamily: netlink.FAMILY_V6, Addr: net.ParseIP("fd00:77::b")}},
	}
	via := route(102, "0.0.0.0/0", "") // RFC 5549: IPv4 through an IPv6 router
	via.Via = &netlink.Via{AddrFamily: netlink.FAMILY_V6, Addr: net.ParseIP("fe80::1")}
	devOnly := route(103, "0.0.0.0/0", "") // default dev wg0: no router
	devOnly.Scope = netlink.SCOPE_LINK
	blackhole := route(104, "0.0.0.0/0", "")
	blackhole.Type = unix.RTN_BLACKHOLE
	noDst := route(105, "0.0.0.0/0", "192.0.2.1") // older form: no RTA_DST at all
	noDst.Dst = nil
	return []netlink.Route{
		route(unix.RT_TABLE_MAIN, "0.0.0.0/0", "198.51.100.1"),
		route(100, "0.0.0.0/0", "198.51.100.254"),
		route(100, "::/0", "fd00:77::1"),
		route(unix.RT_TABLE_MAIN, "198.51.100.0/24", "198.51.100.2"), // not a default route
		route(100, "fd00:77::/64", "fd00:77::2"),                     // nor this
		mp, mp6, via, devOnly, blackhole, noDst,
	}
}

// TestAddrsRead reads the gateways of the default routes of every table
// from an injected route source, and the resolvers from both resolv.conf
// files (the stub one systemd-resolved makes /etc/resolv.conf, and
// resolved's list of upstream servers): each is protected with its
// reason, each resolver once, and the /proc files are not read while the
// route source serves.
func TestAddrsRead(t *testing.T) {
	dir := t.TempDir()
	local := netip.MustParseAddr("198.51.100.10")
	s := NewAddrs(true, true)
	s.Routes = func() ([]netlink.Route, error) { return tableRoutes(), nil }
	s.RouteV4 = fixture(t, dir, "proc/route", "garbage that must not be read\n")
	s.RouteV6 = filepath.Join(dir, "proc/ipv6_route-missing")
	s.ResolvConf = fixture(t, dir, "etc/resolv.conf",
		"# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\n"+
			"nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.net\n")
	s.ResolvedConf = fixture(t, dir, "run/systemd/resolve/resolv.conf",
		"# This is /run/systemd/resolve/resolv.conf managed by man:systemd-resolved(8).\n"+
			"# Third party programs should typically not access this file directly.\n"+
			"nameserver 198.51.100.53\nnameserver fd00:77::53\nnameserver fe80::53%eth0\n"+
			"nameserver 127.0.0.53\nsearch example.net\n")
	s.Interfaces = func() ([]netip.Addr, error) { return []netip.Addr{local}, nil }
	got, err := s.Read()
	if err != nil {
		t.Fatal(err)
	}
	stub, resolved := "a resolver in "+s.ResolvConf, "a resolver in "+s.ResolvedConf
	want := map[string]string{
		"198.51.100.10":  "an address of this host",
		"198.51.100.1":   "a default gateway", // main
		"198.51.100.254": "a default gateway", // table 100
		"fd00:77::1":     "a default gateway", // table 100, IPv6
		"203.0.113.1":    "a default gateway", // multipath, VRF table
		"203.0.113.2":    "a default gateway",
		"fd00:77::a":     "a default gateway", // IPv6 multipath
		"fd00:77::b":     "a default gateway", // its RTA_VIA hop
		"fe80::1":        "a default gateway", // RTA_VIA
		"192.0.2.1":      "a default gateway", // no RTA_DST
		"127.0.0.53":     stub,                // in both files: the first names it
		"198.51.100.53":  resolved,
		"fd00:77::53":    resolved,
		"fe80::53":       resolved,
	}
	if len(got) != len(want) {
		t.Errorf("read %v, want %v", got, want)
	}
	for a, why := range want {
		if got[netip.MustParseAddr(a)] != why {
			t.Errorf("%s: %q, want %q", a, got[netip.MustParseAddr(a)], why)
		}
	}

	// without resolved, /etc/resolv.conf alone; an empty path reads nothing
	for _, other := range []string{filepath.Join(dir, "none"), ""} {
		s.ResolvedConf = other
		got, err = s.Read()
		if err != nil || got[netip.MustParseAddr("127.0.0.53")] != stub || got[netip.MustParseAddr("198.51.100.53")] != "" {
			t.Errorf("no resolved file %q: %v %v", other, got, err)
		}
	}

	// switches off: only the host's own addresses
	s.Gateway, s.Resolvers = false, false
	if got, _ := s.Read(); len(got) != 1 {
		t.Errorf("switches off: %v", got)
	}
	// a failed source is an error, and what could be read is returned
	s.Gateway = true
	s.Interfaces = func() ([]netip.Addr, error) { return nil, errors.New("netlink down") }
	got, err = s.Read()
	if err == nil || got[netip.MustParseAddr("203.0.113.1")] == "" {
		t.Errorf("failed read: %v %v", got, err)
	}
	// missing resolv.conf files are no error
	s.Interfaces = func() ([]netip.Addr, error) { return nil, nil }
	s.ResolvConf, s.ResolvedConf, s.Resolvers = filepath.Join(dir, "none"), filepath.Join(dir, "none2"), true
	if _, err := s.Read(); err != nil {
		t.Errorf("missing optional files: %v", err)
	}
}

// procRoute and procRoute6 are the main table as /proc shows it: a
// default route through 198.51.100.1 (hex little-endian) and one through
// fd00:77::1, and routes that are not default ones: a subnet's, and a
// VPN's two halves of the address space (0.0.0.0/1 and 128.0.0.0/1,
// ::/1 and 8000::/1) through 203.0.113.9 and fd00:77::9.
const (
	procRoute = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t016433C6\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
		"eth0\t006433C6\t026433C6\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"tun0\t00000000\t097100CB\t0003\t0\t0\t0\t00000080\t0\t0\t0\n" +
		"tun0\t00000080\t097100CB\t0003\t0\t0\t0\t00000080\t0\t0\t0\n"
	procRoute6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000077000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n" +
		"00000000000000000000000000000000 01 00000000000000000000000000000000 00 fd000077000000000000000000000009 00000400 00000001 00000000 00000003 tun0\n" +
		"80000000000000000000000000000000 01 00000000000000000000000000000000 00 fd000077000000000000000000000009 00000400 00000001 00000000 00000003 tun0\n"
)

// TestAddrsReadProcFallback: when the route source fails, the main table
// is read from /proc and the read is an error (other tables may be
// missing), with what netlink did give; a nil source reads /proc
// without error; a default route whose next hop netlink leaves out (a
// nexthop object, net.ipv4.nexthop_compat_mode=0) makes /proc read as
// well, without error.
func TestAddrsReadProcFallback(t *testing.T) {
	dir := t.TempDir()
	s := &Addrs{Gateway: true,
		RouteV4: fixture(t, dir, "route", procRoute),
		RouteV6: fixture(t, dir, "ipv6_route", procRoute6)}
	main := []string{"198.51.100.1", "fd00:77::1"}
	check := func(name string, got map[netip.Addr]string, want []string) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: read %v, want %v", name, got, want)
		}
		for _, a := range want {
			if got[netip.MustParseAddr(a)] != "a default gateway" {
				t.Errorf("%s: %s missing: %v", name, a, got)
			}
		}
	}

	got, err := s.Read() // no route source: /proc
	if err != nil {
		t.Fatal(err)
	}
	check("nil source", got, main)

	s.Routes = func() ([]netlink.Route, error) {
		return []netlink.Route{route(100, "0.0.0.0/0", "203.0.113.1")}, errors.New("dump interrupted")
	}
	got, err = s.Read()
	if err == nil || !strings.Contains(err.Error(), "dump interrupted") || !strings.Contains(err.Error(), "/proc") {
		t.Errorf("failed source: error %v", err)
	}
	check("failed source", got, append([]string{"203.0.113.1"}, main...))

	hidden := route(unix.RT_TABLE_MAIN, "0.0.0.0/0", "") // default nhid 7
	s.Routes = func() ([]netlink.Route, error) {
		return []netlink.Route{route(100, "0.0.0.0/0", "203.0.113.1"), hidden}, nil
	}
	got, err = s.Read()
	if err != nil {
		t.Fatal(err)
	}
	check("hidden next hop", got, append([]string{"203.0.113.1"}, main...))

	// a missing IPv6 table (IPv6 disabled) is no error
	s.Routes = nil
	s.RouteV6 = filepath.Join(dir, "none")
	if _, err := s.Read(); err != nil {
		t.Errorf("missing IPv6 table: %v", err)
	}
}

// TestNetlinkDefaultRoutes reads this host's routes through netlink (no
// change made): it must work wherever the daemon runs, and return
// default routes only.
func TestNetlinkDefaultRoutes(t *testing.T) {
	rs, err := netlinkDefaultRoutes()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if !isDefault(r) {
			t.Errorf("not a default route: %v", r)
		}
	}
	t.Logf("%d default routes", len(rs))
}
