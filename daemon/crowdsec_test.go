package daemon

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/scanwarden/scanwarden/block"
)

// TestLiftable: when the LAPI's last decision for an address goes, a ban
// the fleet imposed is lifted, and this host's own unless the LAPI may
// never have held its decision.
func TestLiftable(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	bans := []block.Ban{
		{Addr: a("198.51.100.1"), Source: block.SourceCrowdSec}, // the fleet's
		{Addr: a("198.51.100.2")},                               // own, its decision confirmed
		{Addr: a("198.51.100.3")},                               // own, its decision still queued
		{Addr: a("fd00:77::4")},                                 // own, queued
	}
	gone := []netip.Addr{a("198.51.100.1"), a("198.51.100.2"), a("198.51.100.3"), a("fd00:77::4"), a("198.51.100.5")}
	queued := map[netip.Addr]bool{a("198.51.100.3"): true, a("fd00:77::4"): true, a("198.51.100.1"): true}
	lift, kept := liftable(gone, bans, func(x netip.Addr) (bool, string) { return queued[x], "queued" })
	if want := []netip.Addr{a("198.51.100.1"), a("198.51.100.2"), a("198.51.100.5")}; !slices.Equal(lift, want) {
		t.Errorf("lift %v, want %v", lift, want)
	}
	if len(kept) != 2 || kept[0].addr != a("198.51.100.3") || kept[1].addr != a("fd00:77::4") || kept[0].why != "queued" {
		t.Errorf("kept %v", kept)
	}
	// a host that does not push keeps every own ban
	lift, kept = liftable(gone, bans, func(netip.Addr) (bool, string) { return true, "no push" })
	if want := []netip.Addr{a("198.51.100.1"), a("198.51.100.5")}; !slices.Equal(lift, want) || len(kept) != 3 {
		t.Errorf("without push: lift %v, kept %v", lift, kept)
	}
}
