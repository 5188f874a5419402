package host

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// TestAddrsRead reads the kernel's route tables and resolv.conf from
// fixture files: the default routes' next hops (IPv4 little-endian hex,
// IPv6 hex) and the nameservers (a zone allowed) are protected with their
// reasons, a non-default route's gateway is not.
func TestAddrsRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	local := netip.MustParseAddr("198.51.100.10")
	s := NewAddrs(true, true)
	s.RouteV4 = write("route", "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"+
		"eth0\t00000000\t016433C6\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"+
		"eth0\t006433C6\t026433C6\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
	s.RouteV6 = write("ipv6_route", "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000077000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n")
	s.ResolvConf = write("resolv.conf", "# generated\nsearch example.net\nnameserver 198.51.100.53\nnameserver fe80::53%eth0\n")
	s.Interfaces = func() ([]netip.Addr, error) { return []netip.Addr{local}, nil }
	got, err := s.Read()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"198.51.100.10": "an address of this host",
		"198.51.100.1":  "a default gateway",
		"fd00:77::1":    "a default gateway",
		"198.51.100.53": "a resolver in " + s.ResolvConf,
		"fe80::53":      "a resolver in " + s.ResolvConf,
	}
	if len(got) != len(want) {
		t.Errorf("read %v, want %v", got, want)
	}
	for a, why := range want {
		if got[netip.MustParseAddr(a)] != why {
			t.Errorf("%s: %q, want %q", a, got[netip.MustParseAddr(a)], why)
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
	if err == nil || got[netip.MustParseAddr("198.51.100.1")] == "" {
		t.Errorf("failed read: %v %v", got, err)
	}
	// a missing resolv.conf or IPv6 table is no error
	s.Interfaces = func() ([]netip.Addr, error) { return nil, nil }
	s.RouteV6, s.ResolvConf, s.Resolvers = filepath.Join(dir, "none"), filepath.Join(dir, "none"), true
	if _, err := s.Read(); err != nil {
		t.Errorf("missing optional files: %v", err)
	}
}
