package iptables

// Real-kernel tests of where the rules act: the victim is a router with a
// host behind it ("inner"), a port of its own published to that host by
// DNAT, and the earlier versions' layout to move. As root only, in
// namespaces of the test's own; the inside is on 203.0.113.0/24 and
// fd00:77::1:0/112.

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/netnstest"
)

// The router lab's inside, and the victim's published port.
var (
	gate4  = netip.MustParsePrefix("203.0.113.1/24") // the victim's inside addresses
	gate6  = netip.MustParsePrefix("fd00:77::1:1/112")
	inner4 = netip.MustParsePrefix("203.0.113.2/24") // the host behind it
	inner6 = netip.MustParsePrefix("fd00:77::1:2/112")
)

const (
	// publishedPort is the victim's port DNATed to the inner host's
	// labPort.
	publishedPort = 8080
	// floodSize is how many packets (each a connection of its own) a
	// flood sends: enough that a tracked flood shows beyond doubt, few enough
	// to take a fraction of a second.
	floodSize = 300
	// settleTraffic is how long after a flood the counters are read: the
	// veth delivers in softirq, microseconds after the send.
	settleTraffic = 200 * time.Millisecond
)

// newRouterLab is the lab of wire(), with a host "inner" behind the
// victim, which routes between the two.
func newRouterLab(t *testing.T) *lab {
	t.Helper()
	l := newLab(t, "attacker", "victim", "benign", "inner")
	l.wire()
	l.WireInside(netnstest.Inside{Role: "inner", Port: "vi", Victim: []netip.Prefix{gate4, gate6}, Addrs: []netip.Prefix{inner4, inner6}},
		[]netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("fd00:77::/64")},
		[]netip.Addr{victim4, victim6}, "attacker", "benign")
	return l
}

// publish publishes the victim's publishedPort, of each family, to the
// inner host's labPort.
func (l *lab) publish() {
	l.t.Helper()
	l.Publish(victim4, publishedPort, netip.AddrPortFrom(inner4.Addr(), labPort))
	l.Publish(victim6, publishedPort, netip.AddrPortFrom(inner6.Addr(), labPort))
}

// TestKernelForwardedAndPublished: a blocked source's packets forwarded
// through the victim to the host behind it are dropped, and so are those
// to a port the victim publishes to that host by DNAT; the benign
// client's are forwarded as before, in both families.
func TestKernelForwardedAndPublished(t *testing.T) {
	l := newRouterLab(t)
	s := l.ServeIn("inner", labPort)
	l.publish()
	type path struct {
		dst  netip.Addr
		port int
	}
	paths := []path{{inner4.Addr(), labPort}, {inner6.Addr(), labPort}, {victim4, publishedPort}, {victim6, publishedPort}}
	for _, p := range paths {
		l.WantReach(s, "attacker", netip.Addr{}, p.dst, p.port, true)
		l.WantReach(s, "benign", netip.Addr{}, p.dst, p.port, true)
	}
	if t.Failed() {
		t.FailNow()
	}
	l.backend("block "+attacker4.String(), "block "+attacker6.String())
	for _, p := range paths {
		l.WantReach(s, "attacker", netip.Addr{}, p.dst, p.port, false)
		l.WantReach(s, "benign", netip.Addr{}, p.dst, p.port, true)
	}
}

// dropCount returns the packet counter of the DROP rule of a in the
// backend's chain, read by the backend's runner (CounterLister).
func (l *lab) dropCount(a netip.Addr) uint64 {
	l.t.Helper()
	fam := "4"
	if a.Is6() {
		fam = "6"
	}
	out := l.backend("counters " + fam)
	for line := range strings.Lines(out) {
		spec, ok := RuleOf(strings.TrimSpace(line), ChainScanwarden)
		if !ok || len(spec) < 2 || spec[1] != netip.PrefixFrom(a, a.BitLen()).String() {
			continue
		}
		if i := slices.Index(spec, "-c"); i > 0 && i+1 < len(spec) {
			n, err := strconv.ParseUint(spec[i+1], 10, 64)
			if err != nil {
				l.t.Fatalf("counters of %q: %v", line, err)
			}
			return n
		}
	}
	l.t.Fatalf("no counted DROP rule of %v in:\n%s", a, out)
	return 0
}

// TestKernelBannedFloodNotTracked: a SYN flood and a UDP flood from a
// blocked source, to the host behind the victim, to its published port
// and to the victim itself, never reach connection tracking in the
// victim: no packet of theirs has a conntrack entry after conntrack's
// hook, the victim's count of connections does not grow, and the DROP
// rule in the raw table counted them all. The same UDP flood from the
// benign client is tracked, one entry a datagram, which shows that
// conntrack is at work there.
func TestKernelBannedFloodNotTracked(t *testing.T) {
	l := newRouterLab(t)
	l.publish() // NAT: the victim tracks connections
	l.WatchTracked(attacker4, attacker6, benign4)
	l.backend("block "+attacker4.String(), "block "+attacker6.String())
	before := l.ConntrackCount("victim")
	for _, proto := range []string{"tcp", "udp"} {
		l.Flood("attacker", proto, attacker4, inner4.Addr(), labPort, floodSize)
		l.Flood("attacker", proto, attacker4, victim4, publishedPort, floodSize)
		l.Flood("attacker", proto, attacker4, victim4, labPort, floodSize)
		l.Flood("attacker", proto, attacker6, inner6.Addr(), labPort, floodSize)
		l.Flood("attacker", proto, attacker6, victim6, publishedPort, floodSize)
	}
	time.Sleep(settleTraffic)
	after := l.ConntrackCount("victim")
	if after > before {
		t.Errorf("the blocked source's floods made %d conntrack entries (%d before, %d after), want none", after-before, before, after)
	}
	for _, a := range []netip.Addr{attacker4, attacker6} {
		if n := l.Tracked(a); n != 0 {
			t.Errorf("conntrack had an entry for %d packets of the blocked %v, want none", n, a)
		}
	}
	if n := l.dropCount(attacker4); n < 6*floodSize {
		t.Errorf("the raw table's DROP rule of %v counted %d packets, want the %d of the floods", attacker4, n, 6*floodSize)
	}
	if n := l.dropCount(attacker6); n < 4*floodSize {
		t.Errorf("the raw table's DROP rule of %v counted %d packets, want the %d of the floods", attacker6, n, 4*floodSize)
	}
	l.Flood("benign", "udp", benign4, inner4.Addr(), labPort, floodSize)
	time.Sleep(settleTraffic)
	if control := l.ConntrackCount("victim"); control-after < floodSize*9/10 || l.Tracked(benign4) < floodSize {
		t.Fatalf("the benign client's flood made %d conntrack entries and %d tracked packets, want about %d: conntrack is not at work, the test proves nothing",
			control-after, l.Tracked(benign4), floodSize)
	}
}

// TestKernelMigratesEarlierLayout: an earlier version's layout (the chain
// in the filter table, jumped to from INPUT), which cuts the attacker off
// from the victim but not from the host behind it, is moved by a new
// process's Prepare (a daemon restarted after the upgrade): the filter
// table holds nothing of scanwarden's any more, the raw table the
// attacker's rule, and the attacker is cut off from both.
func TestKernelMigratesEarlierLayout(t *testing.T) {
	l := newRouterLab(t)
	inner := l.ServeIn("inner", labPort)
	own := l.Serve(labPort)
	for _, c := range []struct {
		bin string
		a   netip.Addr
	}{{"iptables", attacker4}, {"ip6tables", attacker6}} {
		l.Run("victim", c.bin, "-N", "SCANWARDEN")
		l.Run("victim", c.bin, append([]string{"-A", "SCANWARDEN"}, dropSpec(c.a)...)...)
		l.Run("victim", c.bin, append([]string{"-I", "INPUT", "1"}, legacyJump...)...)
	}
	for _, v := range []netip.Addr{victim4, victim6} {
		l.WantReach(own, "attacker", netip.Addr{}, v, labPort, false)
	}
	for _, in := range []netip.Addr{inner4.Addr(), inner6.Addr()} {
		l.WantReach(inner, "attacker", netip.Addr{}, in, labPort, true)
	}
	if t.Failed() {
		t.FailNow()
	}

	if out := l.backend("prepare", "list"); out != "list 198.51.100.222 fd00:77::222\n" {
		t.Errorf("list after the move: %q", out)
	}
	for _, c := range []struct {
		bin  string
		drop string
	}{{"iptables", dropA4}, {"ip6tables", dropA6}} {
		if got := l.MustRules(c.bin); !slices.Equal(got, filterPolicies) {
			t.Errorf("%s -S (filter) after the move: %q, want nothing of scanwarden's", c.bin, got)
		}
		if got, want := l.MustRulesIn(c.bin, "raw"), []string{"-P PREROUTING ACCEPT", "-P OUTPUT ACCEPT", "-N SCANWARDEN", jumpLine, c.drop}; !slices.Equal(got, want) {
			t.Errorf("%s -t raw -S after the move:\n%s\nwant:\n%s", c.bin, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	for _, v := range []netip.Addr{victim4, victim6} {
		l.WantReach(own, "attacker", netip.Addr{}, v, labPort, false)
		l.WantReach(own, "benign", netip.Addr{}, v, labPort, true)
	}
	for _, in := range []netip.Addr{inner4.Addr(), inner6.Addr()} {
		l.WantReach(inner, "attacker", netip.Addr{}, in, labPort, false)
		l.WantReach(inner, "benign", netip.Addr{}, in, labPort, true)
	}
}
