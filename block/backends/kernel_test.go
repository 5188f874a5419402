package backends

// Real-kernel tests of Choose's probes, as root, in a network namespace of
// the test's own (swbk-PID-N-host), deleted when it ends: the probes run
// in a helper process inside it (the test binary again, see TestMain), so
// that they ask that namespace's nf_tables and ip_set, never the host's.
// Nothing is sent anywhere.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/netnstest"
)

const (
	helperEnv = "SWBACKENDS"
	// cmdTimeout bounds every command a test runs.
	cmdTimeout = time.Minute
	// nobody is the user the unprivileged helper becomes.
	nobody = 65534
)

func TestMain(m *testing.M) {
	netnstest.Main(m, helperEnv, map[string]netnstest.Helper{"choose": chooseHelper})
}

// chooseHelper is the choose helper, "PREFERENCE [unprivileged]": it runs
// Choose with the real probes, first dropping to user and group nobody
// (and so every capability) when asked, and prints the Choice as JSON.
func chooseHelper(args []string) error {
	if len(args) < 1 {
		return netnstest.ExitCode(netnstest.ExitBadUse)
	}
	prefer := PreferNftables
	if args[0] == "ipset" {
		prefer = PreferIpset
	}
	if len(args) > 1 && args[1] == "unprivileged" {
		if err := syscall.Setgroups(nil); err != nil {
			return err
		}
		if err := syscall.Setresgid(nobody, nobody, nobody); err != nil {
			return err
		}
		if err := syscall.Setresuid(nobody, nobody, nobody); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	return json.NewEncoder(os.Stdout).Encode(Choose(ctx, prefer))
}

// newLab makes the test's namespace; it skips when not root.
func newLab(t *testing.T) *netnstest.Lab {
	t.Helper()
	return netnstest.New(t, netnstest.Config{
		Prefix:     "swbk",
		Env:        helperEnv,
		Tools:      []string{"ip", "sysctl"},
		Makes:      "ask nf_tables and ip_set",
		CmdTimeout: cmdTimeout,
	}, "host")
}

// choose runs the choose helper in the lab and returns its Choice.
func choose(t *testing.T, l *netnstest.Lab, args ...string) Choice {
	t.Helper()
	out, err := l.TryHelper("host", "choose", nil, args...)
	if err != nil {
		t.Fatalf("choose %v: %v\n%s", args, err, out)
	}
	var ch Choice
	if err := json.Unmarshal([]byte(out), &ch); err != nil {
		t.Fatalf("choose %v: %v\n%s", args, err, out)
	}
	return ch
}

// firewall is what the namespace's firewall holds, as its own tools list
// it (those that are installed).
func firewall(t *testing.T, l *netnstest.Lab) string {
	t.Helper()
	var b strings.Builder
	for _, argv := range [][]string{{"nft", "list", "ruleset"}, {"ipset", "list", "-n"}} {
		if _, err := exec.LookPath(argv[0]); err != nil {
			continue
		}
		out, err := l.Try("host", argv[0], argv[1:]...)
		fmt.Fprintf(&b, "%s: %v\n%s\n", strings.Join(argv, " "), err, out)
	}
	return b.String()
}

// answers reports whether argv succeeds in the lab; it skips the test when
// the tool is missing.
func answers(t *testing.T, l *netnstest.Lab, argv ...string) bool {
	t.Helper()
	if _, err := exec.LookPath(argv[0]); err != nil {
		t.Skipf("%s is missing (scripts/deps.sh installs it): %v", argv[0], err)
	}
	_, err := l.Try("host", argv[0], argv[1:]...)
	return err == nil
}

// TestKernelChoose: in a fresh namespace, as root, Choose takes what the
// kernel offers there, as the administrator's own tools find it (nft,
// ipset, iptables), in each preference's order, is certain of it, and
// leaves the firewall as it found it.
func TestKernelChoose(t *testing.T) {
	l := newLab(t)
	before := firewall(t, l)
	chNft := choose(t, l, "nftables")
	chIps := choose(t, l, "ipset")
	if after := firewall(t, l); after != before {
		t.Errorf("the probes changed the firewall:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// the administrator's tools, after the probes: iptables-nft may make
	// its tables as it lists them
	nftOK := answers(t, l, "nft", "list", "tables")
	ipsetOK := answers(t, l, "ipset", "list", "-n") && answers(t, l, "iptables", "-S", "INPUT") &&
		answers(t, l, "iptables", "-m", "set", "-h")
	if _, err := os.Stat(ipv6Proc); err == nil {
		ipsetOK = ipsetOK && answers(t, l, "ip6tables", "-S", "INPUT") && answers(t, l, "ip6tables", "-m", "set", "-h")
	}
	t.Logf("nf_tables answers: %v; ipset usable: %v", nftOK, ipsetOK)
	t.Logf("default: %+v", chNft)
	t.Logf("KILL_ROUTE: %+v", chIps)

	for _, ch := range []Choice{chNft, chIps} {
		if !ch.Certain() {
			t.Errorf("as root the choice is not certain: %+v", ch)
		}
	}
	want := func(order ...Kind) Kind {
		for _, k := range order {
			if (k == Nftables && nftOK) || (k == Ipset && ipsetOK) {
				return k
			}
		}
		return Iptables
	}
	if w := want(Nftables, Ipset); chNft.Kind != w {
		t.Errorf("default order: chose %s (%s), want %s", chNft.Kind, chNft.Reason, w)
	}
	if w := want(Ipset, Nftables); chIps.Kind != w {
		t.Errorf("KILL_ROUTE order: chose %s (%s), want %s", chIps.Kind, chIps.Reason, w)
	}
	if nftOK && chNft.Reason != "the kernel's nf_tables answers" {
		t.Errorf("default order, nftables: reason %q", chNft.Reason)
	}
	if ipsetOK && chIps.Reason != "KILL_ROUTE is an iptables DROP rule: ipset keeps it visible in iptables -S" {
		t.Errorf("KILL_ROUTE order, ipset: reason %q", chIps.Reason)
	}
}

// TestKernelChooseUnprivileged: without CAP_NET_ADMIN (an unprivileged
// check-config) neither nf_tables nor ip_set can be asked; Choose says so
// for each, falls back to iptables and is not certain.
func TestKernelChooseUnprivileged(t *testing.T) {
	l := newLab(t)
	for _, prefer := range []string{"nftables", "ipset"} {
		ch := choose(t, l, prefer, "unprivileged")
		t.Logf("%s: %+v", prefer, ch)
		if ch.Kind != Iptables || ch.Certain() || len(ch.Unprobed) != 2 {
			t.Errorf("%s, unprivileged: %+v, want iptables with both probes unanswered", prefer, ch)
		}
		for _, name := range []string{"nf_tables: could not probe: operation not permitted", "ipset: could not probe: operation not permitted"} {
			if !strings.Contains(ch.Reason, name) {
				t.Errorf("%s, unprivileged: reason %q lacks %q", prefer, ch.Reason, name)
			}
		}
	}
}
