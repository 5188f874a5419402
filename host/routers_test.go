package host

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestReadRoutes reads a namespace's routes of several tables: every
// next hop is a router, and of the routed prefixes only the ones inside a
// connected network, more specific than it, are kept.
func TestReadRoutes(t *testing.T) {
	if os.Getenv(childEnv) == "routes" {
		connected := []Connected{
			{Prefix: netip.MustParsePrefix("198.51.100.0/24")},
			{Prefix: netip.MustParsePrefix("fd00:77::/64")},
		}
		r, err := ReadRoutes(connected)
		if err != nil {
			t.Fatal(err)
		}
		var next, within []string
		for a := range r.Next {
			next = append(next, a.String())
		}
		for _, p := range r.Within {
			within = append(within, p.String())
		}
		slices.Sort(next)
		slices.Sort(within)
		fmt.Printf("next: %s\nwithin: %s\n", strings.Join(next, " "), strings.Join(within, " "))
		for _, c := range []struct {
			addr   string
			routed bool
		}{{"198.51.100.130", true}, {"198.51.100.20", false}, {"fd00:77::1:0:5", true}, {"fd00:77::20", false}, {"203.0.113.5", false}} {
			if got := r.Routed(netip.MustParseAddr(c.addr)); got != c.routed {
				t.Errorf("Routed(%s) = %v", c.addr, got)
			}
		}
		return
	}
	ns := newNetns(t, "rt")
	ipns(t, ns, "addr", "add", "198.51.100.2/24", "dev", "d0")
	ipns(t, ns, "addr", "add", "fd00:77::2/64", "dev", "d0", "nodad")
	ipns(t, ns, "route", "add", "198.51.100.128/28", "via", "198.51.100.1")
	ipns(t, ns, "route", "add", "203.0.113.0/24", "via", "198.51.100.3", "table", "100")
	ipns(t, ns, "-6", "route", "add", "fd00:77::1:0:0/96", "via", "fd00:77::1")
	ipns(t, ns, "route", "add", "default", "via", "198.51.100.4")
	out, err := child(ns, "TestReadRoutes", "routes").Output()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	want := "next: 198.51.100.1 198.51.100.3 198.51.100.4 fd00:77::1\nwithin: 198.51.100.128/28 fd00:77::1:0:0/96\n"
	if !strings.Contains(string(out), want) {
		t.Errorf("child said %q, want %q", out, want)
	}
}
