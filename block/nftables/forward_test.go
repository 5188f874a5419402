package nftables

// Real-kernel tests of where the rules act: the victim is a router with a
// host behind it ("inner"), a port of its own published to that host by
// DNAT, the trap's catch on the way to the victim itself only, and the
// earlier versions' table (drops at the input hook) to move. As root
// only, in namespaces of the test's own; the inside is on 203.0.113.0/24
// and fd00:77::1:0/112.

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	nft "github.com/google/nftables"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/internal/netnstest"
)

// The router lab's benign client and inside, and the victim's published
// port.
var (
	benign4 = netip.MustParseAddr("198.51.100.200")
	benign6 = netip.MustParseAddr("fd00:77::200")
	gate4   = netip.MustParsePrefix("203.0.113.1/24") // the victim's inside addresses
	gate6   = netip.MustParsePrefix("fd00:77::1:1/112")
	inner4  = netip.MustParsePrefix("203.0.113.2/24") // the host behind it
	inner6  = netip.MustParsePrefix("fd00:77::1:2/112")
)

const (
	// publishedPort is the victim's port DNATed to the inner host's
	// openPort; the trap test makes it a trap port of the victim too
	// (nothing of the victim's own listens there).
	publishedPort = 8080
	// floodSize is how many packets (each a connection of its own) a
	// flood sends: enough that a tracked flood shows beyond doubt, few
	// enough to take a fraction of a second.
	floodSize = 300
	// settleTraffic is how long after a flood or probe the counters and
	// sets are read: the veth delivers in softirq, microseconds after
	// the send.
	settleTraffic = 200 * time.Millisecond
)

// newRouterLab is a lab whose victim holds a bridge with the attacker and
// a benign client (198.51.100.0/24, fd00:77::/64) and routes to a host
// "inner" behind it.
func newRouterLab(t *testing.T) *lab {
	t.Helper()
	l := newLab(t, "attacker", "benign", "victim", "inner")
	var addrs []netip.Addr
	for i := range nAttackerAddrs {
		addrs = append(addrs, attacker4(i), attacker6(i))
	}
	l.WireBridge([]netip.Addr{victim4, victim6},
		netnstest.Link{Role: "attacker", Port: "va", Addrs: addrs},
		netnstest.Link{Role: "benign", Port: "vb", Addrs: []netip.Addr{benign4, benign6}})
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
	b := l.backend()
	ctx := context.Background()
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
	for _, a := range []netip.Addr{attacker4(0), attacker6(0)} {
		if err := b.Block(ctx, block.Ban{Addr: a, Until: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range paths {
		src := attacker4(0)
		if p.dst.Is6() {
			src = attacker6(0)
		}
		l.WantReach(s, "attacker", src, p.dst, p.port, false)
		l.WantReach(s, "attacker", src.Next(), p.dst, p.port, true)
		l.WantReach(s, "benign", netip.Addr{}, p.dst, p.port, true)
	}
}

// TestKernelBannedFloodNotTracked: a SYN flood and a UDP flood from a
// blocked source, to the host behind the victim, to its published port
// and to the victim itself, never reach connection tracking in the
// victim: no packet of theirs has a conntrack entry after conntrack's
// hook, and the victim's count of connections does not grow. The same
// UDP flood from the benign client is tracked, one entry a datagram,
// which shows that conntrack is at work there.
func TestKernelBannedFloodNotTracked(t *testing.T) {
	l := newRouterLab(t)
	l.publish() // NAT: the victim tracks connections
	a4, a6 := attacker4(0), attacker6(0)
	l.WatchTracked(a4, a6, benign4)
	b := l.backend()
	ctx := context.Background()
	for _, a := range []netip.Addr{a4, a6} {
		if err := b.Block(ctx, block.Ban{Addr: a, Until: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	before := l.ConntrackCount("victim")
	for _, proto := range []string{"tcp", "udp"} {
		l.Flood("attacker", proto, a4, inner4.Addr(), openPort, floodSize)
		l.Flood("attacker", proto, a4, victim4, publishedPort, floodSize)
		l.Flood("attacker", proto, a4, victim4, openPort, floodSize)
		l.Flood("attacker", proto, a6, inner6.Addr(), openPort, floodSize)
		l.Flood("attacker", proto, a6, victim6, publishedPort, floodSize)
	}
	time.Sleep(settleTraffic)
	after := l.ConntrackCount("victim")
	if after > before {
		t.Errorf("the blocked source's floods made %d conntrack entries (%d before, %d after), want none", after-before, before, after)
	}
	for _, a := range []netip.Addr{a4, a6} {
		if n := l.Tracked(a); n != 0 {
			t.Errorf("conntrack had an entry for %d packets of the blocked %v, want none", n, a)
		}
	}
	l.Flood("benign", "udp", benign4, inner4.Addr(), openPort, floodSize)
	time.Sleep(settleTraffic)
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
	b := l.backend()
	ctx := context.Background()
	if err := b.SetTrap(ctx, block.Trap{TCP: []uint16{trapTCP, publishedPort}, UDP: []uint16{trapUDP, publishedPort}, Hold: time.Hour, Size: 64}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		src, dst netip.Addr
		port     int
	}{
		{attacker4(0), inner4.Addr(), trapTCP},
		{attacker6(0), inner6.Addr(), trapTCP},
		{attacker4(0), inner4.Addr(), trapUDP},
		{attacker6(0), inner6.Addr(), trapUDP},
		{attacker4(0), victim4, publishedPort},
		{attacker6(0), victim6, publishedPort},
	} {
		if code := l.dial(c.src, c.dst, c.port, netnstest.OpenWait); c.port != trapUDP && code != netnstest.ExitConnected {
			t.Errorf("TCP from %v to %v port %d (forwarded): exit %d, want a connection", c.src, c.dst, c.port, code)
		}
		if token := l.sendUDP(c.src, c.dst, c.port); c.port != trapTCP && !s.Wait(token, netnstest.OpenWait) {
			t.Errorf("UDP from %v to %v port %d (forwarded): not received", c.src, c.dst, c.port)
		}
		// a stateless SYN (nmap -sS); a FIN probe only where routing
		// forwards it: to the published port, connection tracking
		// finds it INVALID (no connection to close), so DNAT leaves it
		// addressed to the victim itself, whose trap port it is
		l.raw(c.src, c.dst, c.port, flagSYN)
		if c.dst != victim4 && c.dst != victim6 {
			l.raw(c.src, c.dst, c.port, flagFIN)
		}
		time.Sleep(settleTraffic)
		if len(mustList(t, b)) > 0 {
			t.Errorf("a probe from %v to %v port %d (forwarded) trapped: %v", c.src, c.dst, c.port, mustList(t, b))
		}
	}
	// the victim's own trap port: caught, and the source held is cut
	// off from the inside too
	held := attacker4(1)
	l.raw(held, victim4, trapTCP, flagSYN)
	time.Sleep(settleTraffic)
	if !inSet(t, b, setTrap4, held) {
		t.Fatalf("a SYN from %v to the victim's trap port: not caught", held)
	}
	l.WantReach(s, "attacker", held, inner4.Addr(), openPort, false)
	l.WantReach(s, "attacker", attacker4(0), inner4.Addr(), openPort, true)
}

// writeInputHookTable turns b's table into the one of the versions that
// dropped the banned sources at the input hook: no prerouting chain, and
// input dropping what the ban and trap sets hold, then jumping to the
// trap chain (as SetTrap left it), one transaction.
func writeInputHookTable(t *testing.T, b *Backend) {
	t.Helper()
	c, err := b.conn()
	if err != nil {
		t.Fatal(err)
	}
	pre := b.chain(preroutingBase)
	c.FlushChain(pre)
	c.DelChain(pre)
	in := b.chain(inputBase)
	c.FlushChain(in)
	for _, r := range preroutingRules() {
		if r.name != "accept-lo" {
			c.AddRule(&nft.Rule{Table: b.table, Chain: in, Exprs: r.exprs, UserData: r.userData()})
		}
	}
	c.AddRule(&nft.Rule{Table: b.table, Chain: in, Exprs: jumpRule().exprs, UserData: jumpRule().userData()})
	if err := c.Flush(); err != nil {
		t.Fatalf("writing the input-hook table: %v", err)
	}
}

// TestKernelMigratesEarlierLayout: the table of an earlier version, which
// drops the banned attacker at the input hook and so cuts it off from
// the victim but not from the host behind it, is moved by a new
// Backend's Prepare (a daemon restarted after the upgrade): prerouting
// drops, input only jumps to the trap, the bans and their timeouts are
// kept, the attacker is cut off from both, and the trap still catches.
func TestKernelMigratesEarlierLayout(t *testing.T) {
	l := newRouterLab(t)
	inner := l.ServeIn("inner", openPort)
	own := l.serve()
	ctx := context.Background()
	b := l.backend()
	if err := b.SetTrap(ctx, block.Trap{TCP: []uint16{trapTCP}, Hold: time.Hour, Size: 64}); err != nil {
		t.Fatal(err)
	}
	a4, a6 := attacker4(0), attacker6(0)
	for _, a := range []netip.Addr{a4, a6} {
		if err := b.Block(ctx, block.Ban{Addr: a, Until: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	writeInputHookTable(t, b)
	timeout := elems(t, b, setBan4)[a4].Timeout
	for _, c := range []struct{ src, own, in netip.Addr }{{a4, victim4, inner4.Addr()}, {a6, victim6, inner6.Addr()}} {
		l.WantReach(own, "attacker", c.src, c.own, openPort, false)
		l.WantReach(inner, "attacker", c.src, c.in, openPort, true)
	}
	if t.Failed() {
		t.FailNow()
	}

	b2 := l.backend()
	if err := b2.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := rules(t, b2, chainPrerouting); !slices.Equal(got, tags(preroutingRules())) {
		t.Errorf("prerouting after the move: %v, want %v", got, tags(preroutingRules()))
	}
	if got, _ := rules(t, b2, chainInput); !slices.Equal(got, tags(inputRules(true))) {
		t.Errorf("input after the move: %v, want the jump to the trap alone, %v", got, tags(inputRules(true)))
	}
	if e := elems(t, b2, setBan4)[a4]; e.Timeout != timeout {
		t.Errorf("ban4's %v after the move: timeout %v, was %v: rewritten", a4, e.Timeout, timeout)
	}
	for _, c := range []struct{ src, own, in netip.Addr }{{a4, victim4, inner4.Addr()}, {a6, victim6, inner6.Addr()}} {
		l.WantReach(own, "attacker", c.src, c.own, openPort, false)
		l.WantReach(inner, "attacker", c.src, c.in, openPort, false)
		l.WantReach(inner, "benign", netip.Addr{}, c.in, openPort, true)
	}
	held := attacker4(1)
	l.raw(held, victim4, trapTCP, flagSYN)
	time.Sleep(settleTraffic)
	if !inSet(t, b2, setTrap4, held) {
		t.Errorf("a SYN from %v to the victim's trap port after the move: not caught", held)
	}
}

// TestKernelBridged: frames the victim bridges between two of its ports
// (as between VMs on a host's bridge) meet the prerouting chain only when
// br_netfilter passes them to the IP hooks: then a blocked source's are
// dropped on their way to the benign client, whose own get through; with
// it off, the bridge forwards them unseen.
func TestKernelBridged(t *testing.T) {
	l := newRouterLab(t)
	s := l.ServeIn("benign", openPort)
	b := l.backend()
	ctx := context.Background()
	a := attacker4(0)
	if err := b.Block(ctx, block.Ban{Addr: a, Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	l.BridgeNetfilter("victim", true)
	l.WantReach(s, "attacker", a, benign4, openPort, false)
	l.WantReach(s, "attacker", a.Next(), benign4, openPort, true)
	l.BridgeNetfilter("victim", false)
	l.WantReach(s, "attacker", a, benign4, openPort, true)
}
