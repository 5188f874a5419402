package iptables

// Real-kernel tests: as root only, each in network namespaces of its own
// (swipt-PID-N-ROLE), deleted when it ends. The backend runs inside the
// victim namespace (see helper_test.go); nothing is ever sent anywhere but
// between the test's namespaces, on 198.51.100.0/24 and fd00:77::/64, with
// no default route and no link to the host.

import (
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/netnstest"
)

// The lab's addresses and timings.
var (
	victim4   = netip.MustParseAddr("198.51.100.221")
	attacker4 = netip.MustParseAddr("198.51.100.222")
	benign4   = netip.MustParseAddr("198.51.100.223")
	victim6   = netip.MustParseAddr("fd00:77::221")
	attacker6 = netip.MustParseAddr("fd00:77::222")
	benign6   = netip.MustParseAddr("fd00:77::223")
)

const (
	labPort = 8022
	// cmdTimeout bounds every command a test runs.
	cmdTimeout = time.Minute
)

// lab is a test's set of network namespaces, by role.
type lab struct {
	*netnstest.Lab
	t *testing.T
}

// newLab creates one namespace per role (see netnstest.New). It skips
// the test when not root or a tool is missing.
func newLab(t *testing.T, roles ...string) *lab {
	t.Helper()
	return &lab{t: t, Lab: netnstest.New(t, netnstest.Config{
		Prefix:     "swipt",
		Env:        "SWIPT",
		Tools:      []string{"ip", "iptables", "ip6tables", "sysctl"},
		Makes:      "firewall rules",
		CmdTimeout: cmdTimeout,
	}, roles...)}
}

// wire links attacker and benign to the victim: a bridge br0 in the
// victim holds its addresses and one veth per client, whose peer is the
// client's eth0. It waits until every link is up.
func (l *lab) wire() {
	l.t.Helper()
	l.WireBridge([]netip.Addr{victim4, victim6},
		netnstest.Link{Role: "attacker", Port: "va", Addrs: []netip.Addr{attacker4, attacker6}},
		netnstest.Link{Role: "benign", Port: "vb", Addrs: []netip.Addr{benign4, benign6}})
}

// backend runs cmds (see helperBackend) in a new process in the victim
// namespace, that is with a fresh Backend, and returns what it printed.
func (l *lab) backend(cmds ...string) string {
	l.t.Helper()
	return l.backendEnv(nil, cmds...)
}

// backendEnv is backend with env added to the helper's environment.
func (l *lab) backendEnv(env []string, cmds ...string) string {
	l.t.Helper()
	out, err := l.TryHelper("victim", "backend", env, cmds...)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

// serve starts the listener on labPort in the victim, for the rest of
// the test.
func (l *lab) serve() *netnstest.Server {
	l.t.Helper()
	return l.Serve(labPort)
}

// wantReach checks whether role reaches the victim's addr on labPort over
// TCP and UDP (netnstest.Lab.WantReach).
func (l *lab) wantReach(s *netnstest.Server, role string, addr netip.Addr, want bool) {
	l.t.Helper()
	l.WantReach(s, role, netip.Addr{}, addr, labPort, want)
}

// TestKernelBlockStopsTheAttackerOnly: Block drops the attacker's TCP and
// UDP, IPv4 and IPv6, at the victim, and the benign client's still get
// through; Unblock lets the attacker in again.
func TestKernelBlockStopsTheAttackerOnly(t *testing.T) {
	l := newLab(t, "attacker", "victim", "benign")
	l.wire()
	s := l.serve()
	victims := []netip.Addr{victim4, victim6}
	for _, v := range victims {
		l.wantReach(s, "attacker", v, true)
		l.wantReach(s, "benign", v, true)
	}
	if t.Failed() {
		t.FailNow()
	}

	out := l.backend("block "+attacker4.String(), "block "+attacker6.String(), "list", "describe")
	t.Logf("backend in the victim: %s", out)
	if !strings.Contains(out, "list 198.51.100.222 fd00:77::222\n") {
		t.Errorf("List after Block: %q", out)
	}
	// The rules are in the victim's namespace, in the raw table.
	if r := l.MustRulesIn("iptables", "raw", "SCANWARDEN"); !slices.Contains(r, dropA4) {
		t.Errorf("iptables -t raw -S SCANWARDEN in the victim: %q, want %q", r, dropA4)
	}
	if r := l.MustRulesIn("ip6tables", "raw", "SCANWARDEN"); !slices.Contains(r, dropA6) {
		t.Errorf("ip6tables -t raw -S SCANWARDEN in the victim: %q, want %q", r, dropA6)
	}
	for _, v := range victims {
		l.wantReach(s, "attacker", v, false)
		l.wantReach(s, "benign", v, true)
	}

	l.backend("unblock "+attacker4.String(), "unblock "+attacker6.String())
	for _, v := range victims {
		l.wantReach(s, "attacker", v, true)
		l.wantReach(s, "benign", v, true)
	}
}

// TestKernelIdempotentAcrossRestart: blocking twice, then a new process
// (a restart) syncing the same bans, leaves exactly one rule per address
// and one jump in raw PREROUTING, in both families, even with a
// duplicate rule left behind.
func TestKernelIdempotentAcrossRestart(t *testing.T) {
	l := newLab(t, "victim")
	l.backend("block "+attacker4.String(), "block "+attacker4.String(),
		"block "+attacker6.String(), "block "+attacker6.String(),
		"block ::ffff:"+benign4.String())
	// A duplicate, as a crash or a second instance could leave one.
	l.Run("victim", "iptables", "-t", "raw", "-A", "SCANWARDEN", "-s", attacker4.String(), "-m", "comment", "--comment", "scanwarden", "-j", "DROP")
	l.Run("victim", "ip6tables", append([]string{"-t", "raw", "-I", "PREROUTING", "1"}, jumpSpec...)...)

	for range 2 {
		l.backend("sync " + attacker4.String() + " " + attacker6.String() + " " + benign4.String())
		check := func(bin string, want ...string) {
			t.Helper()
			got := l.MustRulesIn(bin, "raw", "SCANWARDEN")
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s -t raw -S SCANWARDEN:\n%s\nwant:\n%s", bin, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if got := l.MustRulesIn(bin, "raw", "PREROUTING"); !slices.Equal(got, []string{"-P PREROUTING ACCEPT", jumpLine}) {
				t.Errorf("%s -t raw -S PREROUTING: %q, want the policy and one jump", bin, got)
			}
			if got := l.MustRules(bin); !slices.Equal(got, filterPolicies) {
				t.Errorf("%s -S (filter): %q, want nothing of scanwarden's", bin, got)
			}
		}
		check("iptables", "-N SCANWARDEN", dropA4, strings.Replace(dropA4, "222", "223", 1))
		check("ip6tables", "-N SCANWARDEN", dropA6)
	}
	if out := l.backend("list"); out != "list 198.51.100.222 198.51.100.223 fd00:77::222\n" {
		t.Errorf("list after the restart: %q", out)
	}
}

// withoutOurs drops scanwarden's chain, its rules and the jump.
func withoutOurs(lines []string) []string {
	return slices.DeleteFunc(slices.Clone(lines), func(s string) bool {
		return s == "-N SCANWARDEN" || strings.HasPrefix(s, "-A SCANWARDEN ") || s == jumpLine
	})
}

// TestKernelLeavesOthersAlone: the administrator's rules in raw
// PREROUTING and filter INPUT and another tool's chain, some of them
// dropping the same address with the same comment, survive Block, Sync,
// Unblock and Flush untouched, and after Flush nothing of scanwarden is
// left.
func TestKernelLeavesOthersAlone(t *testing.T) {
	l := newLab(t, "victim")
	for _, fam := range []struct {
		bin                string
		attacker, adminSrc string
	}{{"iptables", "198.51.100.222/32", "198.51.100.223/32"}, {"ip6tables", "fd00:77::222/128", "fd00:77::223/128"}} {
		for _, rule := range [][]string{
			{"-A", "INPUT", "-i", "lo", "-j", "ACCEPT"},
			{"-A", "INPUT", "-s", fam.adminSrc, "-p", "tcp", "-m", "tcp", "--dport", "22", "-j", "ACCEPT"},
			{"-A", "INPUT", "-s", fam.attacker, "-m", "comment", "--comment", "scanwarden", "-j", "DROP"},
			{"-N", "OTHERTOOL"},
			{"-A", "OTHERTOOL", "-s", fam.attacker, "-j", "DROP"},
			{"-A", "OTHERTOOL", "-s", fam.adminSrc, "-m", "comment", "--comment", "scanwarden", "-j", "DROP"},
			{"-A", "INPUT", "-j", "OTHERTOOL"},
			{"-A", "FORWARD", "-s", fam.attacker, "-j", "DROP"},
			{"-t", "raw", "-A", "PREROUTING", "-s", fam.adminSrc, "-p", "udp", "-m", "udp", "--dport", "53", "-j", "CT", "--notrack"},
			{"-t", "raw", "-N", "OTHERTOOL"},
			{"-t", "raw", "-A", "OTHERTOOL", "-s", fam.attacker, "-m", "comment", "--comment", "scanwarden", "-j", "DROP"},
			{"-t", "raw", "-A", "PREROUTING", "-j", "OTHERTOOL"},
		} {
			l.Run("victim", fam.bin, rule...)
		}
	}
	type tables struct{ filter, raw []string }
	read := func(bin string) tables {
		return tables{l.MustRules(bin), l.MustRulesIn(bin, "raw")}
	}
	before4, before6 := read("iptables"), read("ip6tables")
	untouched := func(step string) {
		t.Helper()
		for _, c := range []struct {
			bin    string
			before tables
		}{{"iptables", before4}, {"ip6tables", before6}} {
			now := read(c.bin)
			if !slices.Equal(now.filter, c.before.filter) {
				t.Errorf("after %s, %s -S (filter):\n%s\nwant it untouched:\n%s", step, c.bin, strings.Join(now.filter, "\n"), strings.Join(c.before.filter, "\n"))
			}
			if got := withoutOurs(now.raw); !slices.Equal(got, c.before.raw) {
				t.Errorf("after %s, %s -t raw -S less scanwarden's rules:\n%s\nwant:\n%s", step, c.bin, strings.Join(got, "\n"), strings.Join(c.before.raw, "\n"))
			}
		}
	}

	l.backend("block "+attacker4.String(), "block "+attacker6.String())
	untouched("Block")
	for _, bin := range []string{"iptables", "ip6tables"} {
		if r := l.MustRulesIn(bin, "raw", "PREROUTING"); len(r) < 2 || r[1] != jumpLine || slices.Index(r[2:], jumpLine) >= 0 {
			t.Errorf("%s -t raw -S PREROUTING after Block: %q, want the jump first and once", bin, r)
		}
	}
	l.backend("sync " + attacker4.String() + " " + benign4.String() + " " + benign6.String())
	untouched("Sync")
	l.backend("unblock "+attacker4.String(), "unblock "+attacker6.String())
	untouched("Unblock")
	if out := l.backend("list"); out != "list 198.51.100.223 fd00:77::223\n" {
		t.Errorf("list: %q", out)
	}
	l.backend("flush")
	untouched("Flush")
	// Exactly as before: no chain, no jump.
	if got := read("iptables"); !slices.Equal(got.raw, before4.raw) {
		t.Errorf("iptables -t raw -S after Flush:\n%s\nwant:\n%s", strings.Join(got.raw, "\n"), strings.Join(before4.raw, "\n"))
	}
	if got := read("ip6tables"); !slices.Equal(got.raw, before6.raw) {
		t.Errorf("ip6tables -t raw -S after Flush:\n%s\nwant:\n%s", strings.Join(got.raw, "\n"), strings.Join(before6.raw, "\n"))
	}
	for _, bin := range []string{"iptables", "ip6tables"} {
		if r, err := l.RulesIn(bin, "raw", "SCANWARDEN"); err == nil {
			t.Errorf("%s -t raw -S SCANWARDEN after Flush: %q, want no such chain", bin, r)
		}
	}
	l.backend("flush") // again: nothing to do, no error
	if out := l.backend("list"); out != "list\n" {
		t.Errorf("list after Flush: %q", out)
	}
}

// TestKernelLegacyHost: in a namespace whose firewall is legacy iptables
// (rules there, none in nf_tables), the backend writes to the legacy
// tables, where the administrator looks.
func TestKernelLegacyHost(t *testing.T) {
	l := newLab(t, "victim")
	for _, c := range []string{"iptables-legacy", "ip6tables-legacy", "iptables-nft", "ip6tables-nft"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s is missing: %v", c, err)
		}
	}
	if _, err := l.Try("victim", "iptables-legacy", "-S"); err != nil {
		t.Skipf("the kernel has no legacy iptables: %v", err)
	}
	admin := []string{"-A", "INPUT", "-s", "198.51.100.223/32", "-j", "ACCEPT"}
	l.Run("victim", "iptables-legacy", admin...)
	out := l.backend("describe", "block "+attacker4.String(), "block "+attacker6.String())
	if !strings.Contains(out, "iptables-legacy") || !strings.Contains(out, "ip6tables-legacy") {
		t.Errorf("describe: %q, want the legacy binaries", out)
	}
	if r := l.MustRulesIn("iptables-legacy", "raw", "PREROUTING"); !slices.Equal(r, []string{"-P PREROUTING ACCEPT", jumpLine}) {
		t.Errorf("iptables-legacy -t raw -S PREROUTING: %q", r)
	}
	if r := l.MustRulesIn("iptables-legacy", "raw", "SCANWARDEN"); !slices.Equal(r, []string{"-N SCANWARDEN", dropA4}) {
		t.Errorf("iptables-legacy -t raw -S SCANWARDEN: %q", r)
	}
	if r := l.MustRulesIn("ip6tables-legacy", "raw", "SCANWARDEN"); !slices.Equal(r, []string{"-N SCANWARDEN", dropA6}) {
		t.Errorf("ip6tables-legacy -t raw -S SCANWARDEN: %q", r)
	}
	for _, bin := range []string{"iptables-nft", "ip6tables-nft"} {
		if r, err := l.RulesIn(bin, "raw", "SCANWARDEN"); err == nil {
			t.Errorf("%s -t raw -S SCANWARDEN: %q, want nothing in nf_tables", bin, r)
		}
	}
	l.backend("flush")
	if r := l.MustRules("iptables-legacy"); !slices.Equal(r, []string{"-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT", "-A INPUT -s 198.51.100.223/32 -j ACCEPT"}) {
		t.Errorf("iptables-legacy -S after Flush: %q", r)
	}
	if r := l.MustRulesIn("iptables-legacy", "raw"); !slices.Equal(r, []string{"-P PREROUTING ACCEPT", "-P OUTPUT ACCEPT"}) {
		t.Errorf("iptables-legacy -t raw -S after Flush: %q", r)
	}
}

// TestKernelWithoutIp6tables: on a host without ip6tables, NewDefault
// still works for IPv4, and blocking an IPv6 address fails saying why.
func TestKernelWithoutIp6tables(t *testing.T) {
	l := newLab(t, "victim")
	// A PATH with the IPv4 commands only.
	dir := t.TempDir()
	for _, c := range []string{"iptables", "iptables-legacy", "iptables-nft", "iptables-legacy-save", "iptables-nft-save"} {
		p, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		if err := os.Symlink(p, dir+"/"+c); err != nil {
			t.Fatal(err)
		}
	}
	out := l.backendEnv([]string{"PATH=" + dir}, "describe", "block "+attacker4.String(), "try-block "+attacker6.String(), "list")
	for _, want := range []string{
		`IPv6: unsupported (exec: "ip6tables": executable file not found in $PATH)`,
		`error: iptables IPv6: block fd00:77::222: address family not supported: exec: "ip6tables": executable file not found`,
		"list 198.51.100.222\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("backend without ip6tables printed:\n%s\nwant %q in it", out, want)
		}
	}
	if r := l.MustRulesIn("iptables", "raw", "SCANWARDEN"); !slices.Equal(r, []string{"-N SCANWARDEN", dropA4}) {
		t.Errorf("iptables -t raw -S SCANWARDEN: %q", r)
	}
	if r, err := l.RulesIn("ip6tables", "raw", "SCANWARDEN"); err == nil {
		t.Errorf("ip6tables -t raw -S SCANWARDEN: %q, want no such chain", r)
	}
}
