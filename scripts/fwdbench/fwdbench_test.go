package main

// Kernel tests run as root only, in namespaces of their own
// (swfwdt-PID-N-gen/-vic/-far), deleted when each ends; they only use
// fd00:77::/64 and fd00:78::/64 on veth pairs between them.

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

// TestMain runs `fwdbench step`, which the loaders run in a namespace
// through this very binary (os.Executable), instead of the tests.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == stepCmd {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

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
	want := "-A SCANWARDEN -s fd00:77:0:0:1::/128 -m comment --comment scanwarden -j DROP\n" +
		"-A SCANWARDEN -s fd00:77::32/128 -m comment --comment scanwarden -j DROP\n"
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
	none, empty, full := config{backendNone, 0, pathLocal}, config{"nftables", 0, pathLocal}, config{"nftables", 10, pathLocal}
	fnone, fempty, ffull := config{backendNone, 0, pathForward}, config{"nftables", 0, pathForward}, config{"nftables", 10, pathForward}
	if _, ok := r.baseline(empty); ok {
		t.Error("a baseline was found with no runs")
	}
	// the forward path first: the table still lists local first
	r.add(fnone, runResult{Sent: 100, GenCPU: 200 * time.Microsecond, Wall: time.Second})
	r.add(fempty, runResult{Sent: 100, GenCPU: 250 * time.Microsecond, Wall: time.Second})
	r.add(ffull, runResult{Sent: 100, GenCPU: 250 * time.Microsecond, Wall: time.Second})
	r.add(none, runResult{Sent: 100, GenCPU: 100 * time.Microsecond, Wall: time.Second})
	r.add(empty, runResult{Sent: 100, GenCPU: 110 * time.Microsecond, Wall: time.Second})
	r.add(full, runResult{Sent: 100, GenCPU: 121 * time.Microsecond, Wall: time.Second})
	r.loads["nftables"] = []time.Duration{time.Second}
	for c, want := range map[config]config{empty: none, full: empty, fempty: fnone, ffull: fempty} {
		if got, ok := r.baseline(c); !ok || got != want {
			t.Errorf("baseline(%v) = %v, %v; want %v", c, got, ok, want)
		}
	}
	if _, ok := r.baseline(none); ok {
		t.Error("no firewall has a baseline")
	}
	var b strings.Builder
	r.print(&b, fwdOptions{Bans: 10, Duration: time.Second, Rounds: 1, Backends: []string{"nftables"}, Paths: pathNames})
	for _, want := range []string{"no firewall", "nftables, 10 bans", "+10.0%", "1000.0", "1210.0", "1.00", "+25.0%", "+0.0%", "2500.0"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, b.String())
		}
	}
	local, forward := strings.Index(b.String(), "nftables, 10 bans        local"), strings.Index(b.String(), "nftables, 10 bans        forward")
	if local < 0 || forward < 0 || local > forward {
		t.Errorf("the table does not list the local path, then the forward one:\n%s", b.String())
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
	if got, err := parsePaths("forward, local"); err != nil || strings.Join(got, ",") != "local,forward" {
		t.Errorf("parsePaths = %v, %v", got, err)
	}
	for _, bad := range []string{"", "local,sideways"} {
		if _, err := parsePaths(bad); err == nil {
			t.Errorf("parsePaths(%q) accepted it", bad)
		}
	}
	if err := run(context.Background(), []string{"fwd", "-paths", "up"}); !errors.Is(err, errUsage) {
		t.Errorf("fwd -paths up: %v, want a usage error", err)
	}
	if _, err := newLoader("nftables", ""); err == nil {
		t.Error("newLoader accepted the current namespace")
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

// TestLoaders: each backend's structure, made by the backend in the
// victim, passes everything, on both paths, when empty; loaded, drops the
// banned source and passes the generator, on both paths (the bans act at
// prerouting, forwarded traffic included); torn down, leaves nothing of
// the backend's and the banned source passing again; and traffic is
// measured through it.
func TestLoaders(t *testing.T) {
	ctx := context.Background()
	for _, b := range backendNames {
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
			each := func(what string, dropped bool) {
				t.Helper()
				for _, pt := range pathNames {
					if err := verify(p, p.path(pt), dropped); err != nil {
						t.Errorf("%s: %v", what, err)
					}
				}
			}
			each("before anything is loaded", false)
			if err := l.Prepare(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = l.Teardown(ctx) })
			each("empty", false)
			if err := verify(p, p.path(pathForward), true); err == nil {
				t.Error("empty: verify(dropped) passed, so it cannot tell a load from none")
			}
			if n, err := l.Count(ctx); err != nil || n != 0 {
				t.Errorf("empty: Count = %d, %v; want 0", n, err)
			}
			took, err := l.Fill(ctx, banAddrs(5000))
			if err != nil {
				t.Fatal(err)
			}
			if took <= 0 {
				t.Errorf("Fill took %v", took)
			}
			if n, err := l.Count(ctx); err != nil || n != 5000 {
				t.Errorf("loaded: Count = %d, %v; want 5000", n, err)
			}
			each("loaded", true)
			for _, pt := range pathNames {
				res, err := measure(p, p.path(pt), 200*time.Millisecond)
				if err != nil {
					t.Fatal(err)
				}
				if res.Sent == 0 || res.Delivered == 0 || res.Delivered > res.Sent || res.GenCPU <= 0 {
					t.Errorf("loaded, %s path: measured %+v", pt, res)
				}
			}
			if err := l.Teardown(ctx); err != nil {
				t.Fatal(err)
			}
			each("after teardown", false)
			if out, err := runIn(ctx, p.victim, nil, "ip6tables-save"); err == nil && strings.Contains(strings.ToLower(out), "scanwarden") {
				t.Errorf("after teardown, ip6tables-save still shows scanwarden's:\n%s", out)
			}
			if out, err := runIn(ctx, p.victim, nil, "nft", "list", "ruleset"); err == nil && strings.Contains(out, "scanwarden") {
				t.Errorf("after teardown, nft still lists scanwarden's:\n%s", out)
			}
		})
	}
}

// TestLoadStep: `fwdbench step` and `load` refuse the host's namespace
// (or the test's, which is not one of /run/netns).
func TestLoadStep(t *testing.T) {
	if checkNotHostNS() == nil {
		t.Skip("the test runs in a namespace of /run/netns, where load and step would change the firewall")
	}
	ctx := context.Background()
	for _, args := range [][]string{
		{"load", "-backend", "nftables", "-n", "1"},
		{stepCmd, "-backend", "nftables", "-op", "prepare"},
	} {
		if err := run(ctx, args); !errors.Is(err, errHostNS) {
			t.Errorf("%v in this namespace: %v, want errHostNS", args, err)
		}
	}
}
