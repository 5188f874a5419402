package main

// Kernel tests run as root only, in namespaces of their own
// (swfwdt-PID-N-gen/-vic), deleted when each ends; they only use
// fd00:77::/64 on a veth pair between the two.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestBanAddrs(t *testing.T) {
	if got := banAddrs(0); len(got) != 0 {
		t.Errorf("banAddrs(0) = %v, want none", got)
	}
	if got := banAddrs(1); len(got) != 1 || got[0] != bannedAddr {
		t.Errorf("banAddrs(1) = %v, want [%s]", got, bannedAddr)
	}
	const n = 100_000
	got := banAddrs(n)
	if len(got) != n {
		t.Fatalf("banAddrs(%d) made %d addresses", n, len(got))
	}
	lab := netip.MustParsePrefix("fd00:77::/64")
	seen := make(map[netip.Addr]bool, n)
	for i, a := range got {
		if !lab.Contains(a) {
			t.Fatalf("address %d, %s, is outside %s", i, a, lab)
		}
		if seen[a] {
			t.Fatalf("address %d, %s, is there twice", i, a)
		}
		seen[a] = true
	}
	if seen[genAddr] || seen[victimAddr] {
		t.Errorf("the bans contain the generator's %s or the victim's %s", genAddr, victimAddr)
	}
	if got[n-1] != bannedAddr {
		t.Errorf("the last ban is %s, want %s", got[n-1], bannedAddr)
	}
	if got[0] != banBase || got[n-2] != netip.MustParseAddr("fd00:77::1:0:1:869e") {
		t.Errorf("bans run %s..%s, want %s..fd00:77::1:0:1:869e", got[0], got[n-2], banBase)
	}
}

func TestIptRules(t *testing.T) {
	got := iptRules([]netip.Addr{netip.MustParseAddr("fd00:77::1:0:0:0"), bannedAddr})
	want := "-A SWFWD -s fd00:77:0:0:1::/128 -m comment --comment scanwarden -j DROP\n" +
		"-A SWFWD -s fd00:77::32/128 -m comment --comment scanwarden -j DROP\n"
	if got != want {
		t.Errorf("iptRules:\n%s\nwant\n%s", got, want)
	}
}

func TestStatsOf(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want stats
	}{
		{nil, stats{}},
		{[]float64{5}, stats{5, 5, 5}},
		{[]float64{9, 1, 4}, stats{4, 1, 9}},
		{[]float64{4, 1, 3, 10}, stats{3.5, 1, 10}},
	} {
		if got := statsOf(c.in); got != c.want {
			t.Errorf("statsOf(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestReportBaselines(t *testing.T) {
	r := &fwdReport{runs: map[config][]runResult{}, loads: map[string][]time.Duration{}, skipped: map[string]string{}}
	none, empty, full := config{backendNone, 0}, config{"nftables", 0}, config{"nftables", 10}
	if _, ok := r.baseline(empty); ok {
		t.Error("a baseline was found with no runs")
	}
	r.add(none, runResult{Sent: 100, GenCPU: 100 * time.Microsecond, Wall: time.Second})
	r.add(empty, runResult{Sent: 100, GenCPU: 110 * time.Microsecond, Wall: time.Second})
	r.add(full, runResult{Sent: 100, GenCPU: 121 * time.Microsecond, Wall: time.Second})
	r.loads["nftables"] = []time.Duration{time.Second}
	for c, want := range map[config]config{empty: none, full: empty} {
		if got, ok := r.baseline(c); !ok || got != want {
			t.Errorf("baseline(%v) = %v, %v; want %v", c, got, ok, want)
		}
	}
	if _, ok := r.baseline(none); ok {
		t.Error("no firewall has a baseline")
	}
	var b strings.Builder
	r.print(&b, fwdOptions{Bans: 10, Duration: time.Second, Rounds: 1, Backends: []string{"nftables"}})
	for _, want := range []string{"no firewall", "nftables, 10 bans", "+10.0%", "1000.0", "1210.0", "1.00"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestParseBackends(t *testing.T) {
	got, err := parseBackends("nftables, iptables,")
	if err != nil || strings.Join(got, ",") != "nftables,iptables" {
		t.Errorf("parseBackends = %v, %v", got, err)
	}
	if _, err := parseBackends("nftables,pf"); err == nil {
		t.Error("parseBackends accepted pf")
	}
	if err := run(context.Background(), []string{"fwd", "-bans", "0"}); !errors.Is(err, errUsage) {
		t.Errorf("fwd -bans 0: %v, want a usage error", err)
	}
	if err := run(context.Background(), []string{"frobnicate"}); !errors.Is(err, errUsage) {
		t.Errorf("unknown command: %v, want a usage error", err)
	}
}

var testSeq atomic.Int32

// testPair makes a fresh namespace pair for a root-only test.
func testPair(t *testing.T) *pair {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) is not installed")
	}
	prefix := fmt.Sprintf("swfwdt-%d-%d-", os.Getpid(), testSeq.Add(1))
	p, err := newPair(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.delete)
	return p
}

func TestCheckNotHostNS(t *testing.T) {
	p := testPair(t)
	self, err := os.Stat("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	named := false
	all, _ := filepath.Glob("/run/netns/*")
	for _, f := range all {
		if fi, err := os.Stat(f); err == nil && os.SameFile(self, fi) {
			named = true
		}
	}
	if err := checkNotHostNS(); !named && !errors.Is(err, errHostNS) {
		t.Errorf("in the test's own namespace (not one of /run/netns): %v, want errHostNS", err)
	}
	if err := inNS(p.victim, -1, checkNotHostNS); err != nil {
		t.Errorf("in %s: %v", p.victim, err)
	}
}

// TestLoaders: each backend's structure, empty, passes everything; loaded,
// drops the banned source and passes the generator; torn down, leaves the
// banned source passing again; and traffic is measured through it.
func TestLoaders(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			for _, tool := range toolsOf[b] {
				if _, err := exec.LookPath(tool); err != nil {
					t.Skipf("%s is not installed", tool)
				}
			}
			p := testPair(t)
			l, err := newLoader(b, p.victim)
			if err != nil {
				t.Fatal(err)
			}
			if err := verify(p, false); err != nil {
				t.Fatalf("before anything is loaded: %v", err)
			}
			if err := l.Prepare(ctx); err != nil {
				t.Fatal(err)
			}
			if err := verify(p, false); err != nil {
				t.Errorf("empty: %v", err)
			}
			if err := verify(p, true); err == nil {
				t.Error("empty: verify(dropped) passed, so it cannot tell a load from none")
			}
			if n, err := l.Count(ctx); err != nil || n != 0 {
				t.Errorf("empty: Count = %d, %v; want 0", n, err)
			}
			if err := l.Fill(ctx, banAddrs(5000)); err != nil {
				t.Fatal(err)
			}
			if n, err := l.Count(ctx); err != nil || n != 5000 {
				t.Errorf("loaded: Count = %d, %v; want 5000", n, err)
			}
			if err := verify(p, true); err != nil {
				t.Errorf("loaded: %v", err)
			}
			res, err := measure(p, 200*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if res.Sent == 0 || res.Delivered == 0 || res.Delivered > res.Sent || res.GenCPU <= 0 {
				t.Errorf("loaded: measured %+v", res)
			}
			if err := l.Teardown(ctx); err != nil {
				t.Fatal(err)
			}
			if err := verify(p, false); err != nil {
				t.Errorf("after teardown: %v", err)
			}
		})
	}
}
