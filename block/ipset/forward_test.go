package ipset

// Real-kernel tests of where the rules act: the victim is a router with a
// host behind it ("inner"), a port of its own published to that host by
// DNAT, the trap's catch on the way to the victim itself only, and the
// earlier versions' layout to move. As root only, in namespaces of the
// test's own; the inside is on 203.0.113.0/24 and fd00:77::1:0/112.

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/block"
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
	// openPort; the trap tests make it a trap port of the victim too
	// (nothing of the victim's own listens there).
	publishedPort = 8080
	// floodSize is how many packets (each a connection of its own) a
	// flood sends: enough that a tracked flood shows beyond doubt, few
	// enough to take a fraction of a second.
	floodSize = 300
)

// newRouterLab is the lab of wire(), with a host "inner" behind the
// victim, which routes between the two.
func newRouterLab(t *testing.T) *lab {
	t.Helper()
	l := newLab(t, "victim", "attacker", "benign", "inner")
	l.wire()
	l.WireInside(netnstest.Inside{Role: "inner", Port: "vi", Victim: []netip.Prefix{gate4, gate6}, Addrs: []netip.Prefix{inner4, inner6}},
		[]netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("fd00:77::/64")},
		[]netip.Addr{victim4, victim6}, "attacker", "benign")
	return l
}

// publish publishes the victim's publishedPort, of each family, to the
// inner host's openPort.
func (l *lab) publish() {
	l.t.Helper()
	l.Publish(victim4, publishedPort, netip.AddrPortFrom(inner4.Addr(), openPort))
	l.Publish(victim6, publishedPort, netip.AddrPortFrom(inner6.Addr(), openPort))
}

// TestKernelForwardedAndPublished: a blocked source's packets forwarded
// through the victim to the host behind it are dropped, and so are those
// to a port the victim publishes to that host by DNAT; the benign
// client's are forwarded as before, in both families.
func TestKernelForwardedAndPublished(t *testing.T) {
	l := newRouterLab(t)
	s := l.ServeIn("inner", openPort)
	l.publish()
	type path struct {
		dst  netip.Addr
		port int
	}
	paths := []path{{inner4.Addr(), openPort}, {inner6.Addr(), openPort}, {victim4, publishedPort}, {victim6, publishedPort}}
	for _, p := range paths {
		l.WantReach(s, "attacker", netip.Addr{}, p.dst, p.port, true)
		l.WantReach(s, "benign", netip.Addr{}, p.dst, p.port, true)
	}
	if t.Failed() {
		t.FailNow()
	}
	until := time.Now().Add(time.Hour)
	l.backend("block "+banArg(attacker4, until), "block "+banArg(attacker6, until))
	for _, p := range paths {
		l.WantReach(s, "attacker", netip.Addr{}, p.dst, p.port, false)
		l.WantReach(s, "benign", netip.Addr{}, p.dst, p.port, true)
	}
}

// setDropCount returns the packet counter of the raw table's rule that
// drops the sources of set, as bin -t raw -v -S prints it.
func (l *lab) setDropCount(bin, set string) uint64 {
	l.t.Helper()
	out := l.Run("victim", bin, "-t", "raw", "-v", "-S", string(ChainSets))
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if !slices.Contains(f, set) || !slices.Contains(f, "DROP") {
			continue
		}
		if i := slices.Index(f, "-c"); i > 0 && i+1 < len(f) {
			n, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				l.t.Fatalf("counters of %q: %v", line, err)
			}
			return n
		}
	}
	l.t.Fatalf("no counted rule of %s in:\n%s", set, out)
	return 0
}

// TestKernelBannedFloodNotTracked: a SYN flood and a UDP flood from a
// blocked source, to the host behind the victim, to its published port
// and to the victim itself, never reach connection tracking in the
// victim: no packet of theirs has a conntrack entry after conntrack's
// hook, the victim's count of connections does not grow, and the raw
// table's rule of the ban set counted them all. The same UDP flood from
// the benign client is tracked, one entry a datagram, which shows that
// conntrack is at work there.
func TestKernelBannedFloodNotTracked(t *testing.T) {
	l := newRouterLab(t)
	l.publish() // NAT: the victim tracks connections
	l.WatchTracked(attacker4, attacker6, benign4)
	until := time.Now().Add(time.Hour)
	l.backend("block "+banArg(attacker4, until), "block "+banArg(attacker6, until))
	before := l.ConntrackCount("victim")
	for _, proto := range []string{"tcp", "udp"} {
		l.Flood("attacker", proto, attacker4, inner4.Addr(), openPort, floodSize)
		l.Flood("attacker", proto, attacker4, victim4, publishedPort, floodSize)
		l.Flood("attacker", proto, attacker4, victim4, openPort, floodSize)
		l.Flood("attacker", proto, attacker6, inner6.Addr(), openPort, floodSize)
		l.Flood("attacker", proto, attacker6, victim6, publishedPort, floodSize)
	}
	time.Sleep(settle)
	after := l.ConntrackCount("victim")
	if after > before {
		t.Errorf("the blocked source's floods made %d conntrack entries (%d before, %d after), want none", after-before, before, after)
	}
	for _, a := range []netip.Addr{attacker4, attacker6} {
		if n := l.Tracked(a); n != 0 {
			t.Errorf("conntrack had an entry for %d packets of the blocked %v, want none", n, a)
		}
	}
	if n := l.setDropCount("iptables", SetBan4); n < 6*floodSize {
		t.Errorf("the raw table's drop of %s counted %d packets, want the %d of the floods", SetBan4, n, 6*floodSize)
	}
	if n := l.setDropCount("ip6tables", SetBan6); n < 4*floodSize {
		t.Errorf("the raw table's drop of %s counted %d packets, want the %d of the floods", SetBan6, n, 4*floodSize)
	}
	l.Flood("benign", "udp", benign4, inner4.Addr(), openPort, floodSize)
	time.Sleep(settle)
	if control := l.ConntrackCount("victim"); control-after < floodSize*9/10 || l.Tracked(benign4) < floodSize {
		t.Fatalf("the benign client's flood made %d conntrack entries and %d tracked packets, want about %d: conntrack is not at work, the test proves nothing",
			control-after, l.Tracked(benign4), floodSize)
	}
}

// TestKernelTrapCatchesOnlyTheHost: with the trap on the victim, a probe
// that the victim forwards (to the host behind it, on a port that is a
// trap port of the victim, or to a trap port of the victim that it
// publishes to that host by DNAT) is answered there and traps nothing; a
// probe to a trap port of the victim itself is caught, and the source
// held is then dropped whatever it sends, forwarded traffic included.
func TestKernelTrapCatchesOnlyTheHost(t *testing.T) {
	l := newRouterLab(t)
	s := l.ServeIn("inner", openPort, trapTCP, trapUDP)
	l.publish()
	l.backend(trapArg(block.Trap{TCP: []uint16{trapTCP, publishedPort}, UDP: []uint16{trapUDP, publishedPort}, Hold: time.Hour, Size: 64}))

	for _, c := range []struct {
		src, dst netip.Addr
		port     int
		set      string
	}{
		{attacker4, inner4.Addr(), trapTCP, SetTrap4},
		{attacker6, inner6.Addr(), trapTCP, SetTrap6},
		{attacker4, victim4, publishedPort, SetTrap4},
		{attacker6, victim6, publishedPort, SetTrap6},
	} {
		if code := l.Dial("attacker", c.src, c.dst, c.port, netnstest.OpenWait); code != netnstest.ExitConnected {
			t.Errorf("TCP from %v to %v port %d (forwarded): exit %d, want a connection", c.src, c.dst, c.port, code)
		}
		if token := l.SendUDP("attacker", c.src, c.dst, c.port); !s.Wait(token, netnstest.OpenWait) {
			t.Errorf("UDP from %v to %v port %d (forwarded): not received", c.src, c.dst, c.port)
		}
		// a stateless SYN (nmap -sS); a FIN probe only where routing
		// forwards it: to the published port, connection tracking
		// finds it INVALID (no connection to close), so DNAT leaves it
		// addressed to the victim itself, whose trap port it is
		l.raw(c.src, c.dst, c.port, "S")
		if c.dst != victim4 && c.dst != victim6 {
			l.raw(c.src, c.dst, c.port, "F")
		}
		l.wantIn(c.set, c.src, false)
	}
	if token := l.SendUDP("attacker", attacker4, inner4.Addr(), trapUDP); !s.Wait(token, netnstest.OpenWait) {
		t.Errorf("UDP to the inner host's trap port %d (forwarded): not received", trapUDP)
	}
	l.wantIn(SetTrap4, attacker4, false)

	// the victim's own trap port: caught, and the source held is cut
	// off from the inside too
	l.raw(extra4[0], victim4, trapTCP, "S")
	l.wantIn(SetTrap4, extra4[0], true)
	l.WantReach(s, "attacker", extra4[0], inner4.Addr(), openPort, false)
	l.WantReach(s, "attacker", attacker4, inner4.Addr(), openPort, true)
}

// TestKernelMigratesEarlierLayout: an earlier version's layout
// (SCANWARDEN-SETS in the filter table, jumped to from INPUT, jumping on
// to the trap), which cuts the blocked attacker off from the victim but
// not from the host behind it, is moved by a new process's Prepare (a
// daemon restarted after the upgrade): the filter table holds only the
// trap's catch and its jump from INPUT, the raw table the drops; the
// attacker is cut off from both, and the trap still catches.
func TestKernelMigratesEarlierLayout(t *testing.T) {
	l := newRouterLab(t)
	inner := l.ServeIn("inner", openPort)
	own := l.Serve(openPort)
	until := time.Now().Add(time.Hour)
	l.backend(trapArg(block.Trap{TCP: []uint16{trapTCP}, Hold: time.Hour, Size: 64}),
		"block "+banArg(attacker4, until), "block "+banArg(attacker6, until))
	for _, c := range []struct{ bin, v string }{{"iptables", "4"}, {"ip6tables", "6"}} {
		l.Run("victim", c.bin, append([]string{"-t", "raw", "-D", "PREROUTING"}, jumpSpec...)...)
		l.Run("victim", c.bin, "-t", "raw", "-F", "SCANWARDEN-SETS")
		l.Run("victim", c.bin, "-t", "raw", "-X", "SCANWARDEN-SETS")
		l.Run("victim", c.bin, "-N", "SCANWARDEN-SETS")
		for _, set := range []string{"scanwarden-ban" + c.v, "scanwarden-trap" + c.v} {
			l.Run("victim", c.bin, append([]string{"-A", "SCANWARDEN-SETS"}, setDrop(set)...)...)
		}
		l.Run("victim", c.bin, append([]string{"-A", "SCANWARDEN-SETS"}, trapJumpSpec...)...)
		l.Run("victim", c.bin, append([]string{"-D", "INPUT"}, trapJumpSpec...)...)
		l.Run("victim", c.bin, append([]string{"-I", "INPUT", "1"}, legacyJump...)...)
	}
	for _, v := range []netip.Addr{victim4, victim6} {
		l.WantReach(own, "attacker", netip.Addr{}, v, openPort, false)
	}
	for _, in := range []netip.Addr{inner4.Addr(), inner6.Addr()} {
		l.WantReach(inner, "attacker", netip.Addr{}, in, openPort, true)
	}
	if t.Failed() {
		t.FailNow()
	}

	l.backend("prepare")
	for _, c := range []struct{ bin, v string }{{"iptables", "4"}, {"ip6tables", "6"}} {
		filter := l.MustRules(c.bin)
		if !slices.Contains(filter, trapJmp) || slices.ContainsFunc(filter, func(r string) bool { return strings.Contains(r, "SCANWARDEN-SETS") }) {
			t.Errorf("%s -S after the move:\n%s\nwant the jump to the trap and no SCANWARDEN-SETS", c.bin, strings.Join(filter, "\n"))
		}
		if got, want := l.MustRulesIn(c.bin, "raw"), slices.Concat([]string{"-P PREROUTING ACCEPT", "-P OUTPUT ACCEPT", "-N SCANWARDEN-SETS", jumpLine}, setsLines(c.v)[1:]); !slices.Equal(got, want) {
			t.Errorf("%s -t raw -S after the move:\n%s\nwant:\n%s", c.bin, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	for _, v := range []netip.Addr{victim4, victim6} {
		l.WantReach(own, "attacker", netip.Addr{}, v, openPort, false)
		l.WantReach(own, "benign", netip.Addr{}, v, openPort, true)
	}
	for _, in := range []netip.Addr{inner4.Addr(), inner6.Addr()} {
		l.WantReach(inner, "attacker", netip.Addr{}, in, openPort, false)
		l.WantReach(inner, "benign", netip.Addr{}, in, openPort, true)
	}
	l.raw(extra4[0], victim4, trapTCP, "S")
	l.wantIn(SetTrap4, extra4[0], true)
}
