package ipset

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/iptables"
)

// env is a Backend over fake runners and fake sets, on a clock the test
// moves.
type env struct {
	t      *testing.T
	now    time.Time
	v4, v6 *iptables.Fake
	sets   *fakeSets
	b      *Backend
}

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func newEnv(t *testing.T, v6 bool) *env {
	t.Helper()
	e := &env{t: t, now: t0, v4: iptables.NewFake()}
	e.sets = newFakeSets(func() time.Time { return e.now })
	o := Options{V4: e.v4, Now: func() time.Time { return e.now }, sets: e.sets}
	if v6 {
		e.v6 = iptables.NewFake()
		o.V6 = e.v6
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.b = b
	return e
}

func (e *env) must(what string, err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}

// dump is the fake's raw table, then its filter table, less the
// built-in policies.
func dump(f *iptables.Fake) []string {
	notPolicy := func(s string) bool { return strings.HasPrefix(s, "-P ") }
	return slices.Concat(slices.DeleteFunc(f.Dump(iptables.TableRaw), notPolicy), slices.DeleteFunc(f.Dump(iptables.TableFilter), notPolicy))
}

func (e *env) wantDump(step string, f *iptables.Fake, want ...string) {
	e.t.Helper()
	if got := dump(f); !slices.Equal(got, want) {
		e.t.Errorf("%s: raw and filter tables:\n%s\nwant:\n%s", step, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// timeouts returns set name's members as "ADDR TIMEOUT" (or "PREFIX" /
// "PORT" for sets without timeouts).
func (e *env) content(name string) []string {
	var out []string
	for _, m := range e.sets.members(name) {
		s := fmt.Sprint(m.port)
		if m.prefix.IsValid() {
			s = m.prefix.String()
			if m.prefix.Bits() == m.prefix.Addr().BitLen() {
				s = m.prefix.Addr().String()
			}
		}
		if h, _ := e.sets.header(name); h.timeout {
			s += fmt.Sprint(" ", m.timeout)
		}
		out = append(out, s)
	}
	return out
}

func (e *env) wantContent(step, name string, want ...string) {
	e.t.Helper()
	if got := e.content(name); !slices.Equal(got, want) {
		e.t.Errorf("%s: set %s holds %q, want %q", step, name, got, want)
	}
}

var (
	a4  = netip.MustParseAddr("198.51.100.7")
	b4  = netip.MustParseAddr("198.51.100.8")
	c4  = netip.MustParseAddr("198.51.100.9")
	d4  = netip.MustParseAddr("198.51.100.10")
	a6  = netip.MustParseAddr("fd00:77::7")
	ctx = context.Background()
)

func ban(a netip.Addr, until time.Duration) block.Ban {
	b := block.Ban{Addr: a, Proto: "tcp", Since: t0}
	if until != 0 {
		b.Until = t0.Add(until)
	}
	return b
}

// The rules Prepare writes, as iptables -S prints them: in the raw
// table, the jump from PREROUTING and the drops; in the filter table,
// the rule that shows the bans in INPUT and, with a trap, the jump from
// INPUT to the catch.
var (
	jump4    = "-A PREROUTING ! -i lo -m comment --comment scanwarden -j SCANWARDEN-SETS"
	banDrop4 = "-A SCANWARDEN-SETS -m set --match-set scanwarden-ban4 src -m comment --comment scanwarden -j DROP"
	trpDrop4 = "-A SCANWARDEN-SETS -m set --match-set scanwarden-trap4 src -m comment --comment scanwarden -j DROP"
	trpJump  = "-A INPUT -m comment --comment scanwarden -j SCANWARDEN-TRAP"
	banShow4 = `-A INPUT ! -i lo -m set --match-set scanwarden-ban4 src -m comment --comment "scanwarden: bans (dropped in raw PREROUTING first)" -j DROP`
	banShow6 = `-A INPUT ! -i lo -m set --match-set scanwarden-ban6 src -m comment --comment "scanwarden: bans (dropped in raw PREROUTING first)" -j DROP`
	rawPrep  = []string{"-N SCANWARDEN-SETS", jump4, banDrop4, trpDrop4}
	prepared = append(slices.Clone(rawPrep), banShow4)
)

// withTrap is prepared and the filter table of a trap of hold: the chain
// of the catch and the jump to it (above the rule that shows the bans).
func withTrap(hold string) []string {
	return slices.Concat(rawPrep, []string{"-N SCANWARDEN-TRAP", trpJump, banShow4}, trapLines(hold))
}

// trapLines is SCANWARDEN-TRAP of IPv4 with hold (seconds) for a trap of
// both TCP and UDP ports (every catch armed).
func trapLines(hold string) []string {
	tcp := "-p tcp -m tcp ! --tcp-flags ACK ACK -m set --match-set scanwarden-tcp dst"
	udp := "-p udp -m set --match-set scanwarden-udp dst"
	stealth := "-p tcp -m tcp --tcp-flags SYN,RST,ACK NONE"
	ack := "-p tcp -m tcp --tcp-flags SYN,RST,ACK ACK -m conntrack --ctstate INVALID,NEW -m set --match-set scanwarden-tcp dst"
	add := " -m comment --comment scanwarden -j SET --add-set scanwarden-trap4 src --exist --timeout " + hold
	drop := " -m set --match-set scanwarden-trap4 src -m comment --comment scanwarden -j DROP"
	over := " -m comment --comment scanwarden-trap-overflow -j DROP"
	return []string{
		"-A SCANWARDEN-TRAP -i lo -m comment --comment scanwarden -j RETURN",
		"-A SCANWARDEN-TRAP -m set --match-set scanwarden-never4 src -m comment --comment scanwarden -j RETURN",
		"-A SCANWARDEN-TRAP -m set --match-set scanwarden-spared4 src -m comment --comment scanwarden -j RETURN",
		"-A SCANWARDEN-TRAP " + tcp + add,
		"-A SCANWARDEN-TRAP " + tcp + drop,
		"-A SCANWARDEN-TRAP " + tcp + over,
		"-A SCANWARDEN-TRAP " + udp + add,
		"-A SCANWARDEN-TRAP " + udp + drop,
		"-A SCANWARDEN-TRAP " + udp + over,
		"-A SCANWARDEN-TRAP " + stealth + add,
		"-A SCANWARDEN-TRAP " + stealth + drop,
		"-A SCANWARDEN-TRAP " + stealth + over,
		"-A SCANWARDEN-TRAP " + ack + add,
		"-A SCANWARDEN-TRAP " + ack + strings.Replace(drop, "DROP", "RETURN", 1),
		"-A SCANWARDEN-TRAP " + ack + strings.Replace(over, "DROP", "RETURN", 1),
	}
}

// changes returns the calls of f that change something, and forgets all.
func changes(f *iptables.Fake) []string {
	var out []string
	for _, c := range f.Calls() {
		switch c.Op {
		case "ChainExists", "Exists", "List":
		default:
			out = append(out, c.String())
		}
	}
	f.ResetCalls()
	return out
}

func TestPrepareLayoutAndIdempotence(t *testing.T) {
	e := newEnv(t, true)
	e.must("Prepare", e.b.Prepare(ctx))
	e.wantDump("Prepare", e.v4, prepared...)
	e.wantDump("Prepare", e.v6,
		"-N SCANWARDEN-SETS", jump4,
		"-A SCANWARDEN-SETS -m set --match-set scanwarden-ban6 src -m comment --comment scanwarden -j DROP",
		"-A SCANWARDEN-SETS -m set --match-set scanwarden-trap6 src -m comment --comment scanwarden -j DROP",
		banShow6)
	if got, want := e.sets.names(), []string{SetBan4, SetBan6, SetNever4, SetNever6, SetSpared4, SetSpared6, SetTCP, SetTrap4, SetTrap6, SetUDP}; !slices.Equal(got, want) {
		t.Errorf("sets after Prepare: %q, want %q", got, want)
	}
	for name, want := range map[string]string{
		SetBan4:    "hash:ip family inet maxelem 1048576 timeout",
		SetBan6:    "hash:ip family inet6 maxelem 1048576 timeout",
		SetTrap4:   "hash:ip family inet maxelem 256 timeout",
		SetSpared4: "hash:ip family inet maxelem 256 timeout",
		SetSpared6: "hash:ip family inet6 maxelem 256 timeout",
		SetNever6:  "hash:net family inet6 maxelem 65536",
		SetTCP:     "bitmap:port range 0-65535",
	} {
		if h, _ := e.sets.header(name); h.String() != want {
			t.Errorf("set %s is %s, want %s", name, h, want)
		}
	}
	changes(e.v4)
	e.sets.takeCalls()
	e.must("Prepare again", e.b.Prepare(ctx))
	if c := changes(e.v4); len(c) > 0 {
		t.Errorf("Prepare again changed the rules: %q", c)
	}
	for _, c := range e.sets.takeCalls() {
		if !strings.HasPrefix(c, "list ") {
			t.Errorf("Prepare again changed the sets: %s", c)
		}
	}
}

// An administrator's deletions are put back, their own rules left, and
// nothing is lost from the sets.
func TestPrepareRepairs(t *testing.T) {
	e := newEnv(t, false)
	e.must("Prepare", e.b.Prepare(ctx))
	e.must("Block", e.b.Block(ctx, ban(a4, time.Hour)))
	e.must("admin rule", e.v4.Append(iptables.TableRaw, iptables.ChainPrerouting, "-i", "lo", "-j", "ACCEPT"))
	e.must("delete jump", e.v4.Delete(iptables.TableRaw, iptables.ChainPrerouting, jumpSpec...))
	e.must("delete drop", e.v4.Delete(iptables.TableRaw, ChainSets, setDrop(SetBan4)...))
	e.must("foreign rule", e.v4.Insert(iptables.TableRaw, ChainSets, 1, "-s", "198.51.100.99", "-j", "ACCEPT"))
	e.must("destroy", e.sets.destroy(SetNever4))
	e.now = e.now.Add(10 * time.Minute)
	e.must("Prepare", e.b.Prepare(ctx))
	e.wantDump("repaired", e.v4, "-N SCANWARDEN-SETS", jump4, "-A PREROUTING -i lo -j ACCEPT", banDrop4, trpDrop4, banShow4)
	e.wantContent("repaired", SetBan4, "198.51.100.7 3000")
	if _, ok := e.sets.header(SetNever4); !ok {
		t.Error("the destroyed exemption set was not made again")
	}
	// a duplicate jump goes, the last one stays where it is
	e.must("dup jump", e.v4.Append(iptables.TableRaw, iptables.ChainPrerouting, jumpSpec...))
	e.must("Prepare", e.b.Prepare(ctx))
	e.wantDump("duplicate jump", e.v4, "-N SCANWARDEN-SETS", "-A PREROUTING -i lo -j ACCEPT", jump4, banDrop4, trpDrop4, banShow4)
}

// A set made otherwise (smaller, without timeouts) is rebuilt and swapped
// in with its elements and their timeouts; one of another type is made
// again.
func TestPrepareRebuildsSets(t *testing.T) {
	e := newEnv(t, false)
	e.must("create", e.sets.create(SetBan4, header{typ: typeHashIP, family: 2, timeout: true, maxElem: 16}))
	e.must("add", e.sets.add(SetBan4, true, []member{addrMember(a4, 500), addrMember(b4, 0)}))
	e.must("create", e.sets.create(SetTrap4, header{typ: typeHashIP, family: 2, maxElem: 16}))
	e.must("add", e.sets.add(SetTrap4, false, []member{addrMember(c4, 0)}))
	e.must("create", e.sets.create(SetNever4, header{typ: typeHashIP, family: 2, maxElem: 16}))
	e.sets.takeCalls()
	e.must("Prepare", e.b.Prepare(ctx))
	for name, want := range map[string]string{
		SetBan4:    "hash:ip family inet maxelem 1048576 timeout",
		SetTrap4:   "hash:ip family inet maxelem 16 timeout", // its size is the trap's business
		SetSpared4: "hash:ip family inet maxelem 16 timeout", // made of the trap set's size
		SetNever4:  "hash:net family inet maxelem 65536",
	} {
		if h, _ := e.sets.header(name); h.String() != want {
			t.Errorf("set %s is %s, want %s", name, h, want)
		}
	}
	e.wantContent("rebuilt", SetBan4, "198.51.100.7 500", "198.51.100.8 0")
	e.wantContent("rebuilt", SetTrap4, "198.51.100.9 0")
	calls := strings.Join(e.sets.takeCalls(), "\n")
	for _, want := range []string{"swap scanwarden-ban4 scanwarden-ban4-tmp", "destroy scanwarden-ban4-tmp", "destroy scanwarden-never4"} {
		if !strings.Contains(calls, want) {
			t.Errorf("calls:\n%s\nwant %q among them", calls, want)
		}
	}
	if slices.Contains(e.sets.names(), SetBan4+tmpSuffix) {
		t.Error("the temporary set was left")
	}
	e.wantDump("rebuilt", e.v4, prepared...)

	// a set of another type under the backend's rules: they are cleared
	// (the kernel refuses to destroy a set a rule refers to), the set made
	// again, the rules written again
	e.must("destroy", e.sets.destroy(SetBan4))
	e.must("create", e.sets.create(SetBan4, header{typ: typeHashNet, family: 2, maxElem: 16}))
	changes(e.v4)
	e.must("Block", e.b.Block(ctx, ban(a4, time.Hour)))
	if c := changes(e.v4); !slices.Contains(c, "ClearChain raw SCANWARDEN-SETS") {
		t.Errorf("replacing a set of another type: %q, want SCANWARDEN-SETS cleared first", c)
	}
	e.wantDump("remade", e.v4, prepared...)
	e.wantContent("remade", SetBan4, "198.51.100.7 3600")
}

func TestBlockTimeouts(t *testing.T) {
	e := newEnv(t, true)
	for _, c := range []struct {
		b    block.Ban
		want string
	}{
		{ban(a4, 90*time.Minute), "198.51.100.7 5400"},
		{ban(b4, 1500*time.Millisecond), "198.51.100.8 2"},
		{ban(c4, 0), "198.51.100.9 0"},
		{ban(d4, 30*24*time.Hour), "198.51.100.10 0"}, // beyond the kernel's limit: permanent
		{ban(netip.MustParseAddr("::ffff:198.51.100.11"), time.Second), "198.51.100.11 1"},
	} {
		e.sets.takeCalls()
		e.must("Block", e.b.Block(ctx, c.b))
		if got := e.content(SetBan4); !slices.Contains(got, c.want) {
			t.Errorf("Block(%v until %v): ban set %q, want %q in it", c.b.Addr, c.b.Until, got, c.want)
		}
	}
	// one message a block once prepared (the first of IPv6 prepares it)
	e.must("Block", e.b.Block(ctx, ban(a6, time.Minute)))
	e.sets.takeCalls()
	e.must("Block", e.b.Block(ctx, ban(a6, time.Minute)))
	if got := e.sets.takeCalls(); !slices.Equal(got, []string{"add scanwarden-ban6 1"}) {
		t.Errorf("calls of a block: %q, want one add", got)
	}
	changes(e.v4)
	// blocking again sets the timeout anew, one element still
	e.now = e.now.Add(time.Hour)
	e.must("Block", e.b.Block(ctx, ban(a4, 3*time.Hour)))
	// (b4 and the mapped address have timed out meanwhile)
	e.wantContent("after blocking again", SetBan4, "198.51.100.7 7200", "198.51.100.9 0", "198.51.100.10 0")
	// an expired ban is not added
	e.must("Block expired", e.b.Block(ctx, ban(netip.MustParseAddr("198.51.100.50"), time.Minute)))
	if slices.ContainsFunc(e.content(SetBan4), func(s string) bool { return strings.HasPrefix(s, "198.51.100.50 ") }) {
		t.Error("an expired ban was added")
	}
	if c := changes(e.v4); len(c) > 0 {
		t.Errorf("blocks after the first changed rules: %q", c)
	}
	if got := e.b.Describe(netip.MustParseAddr("::ffff:198.51.100.66")); got != "ipset: 198.51.100.66 in scanwarden-ban4" {
		t.Errorf("Describe = %q", got)
	}
	if got := e.b.Describe(a6); got != "ipset: fd00:77::7 in scanwarden-ban6" {
		t.Errorf("Describe = %q", got)
	}
}

// The first block of a family prepares it, and a ban set deleted under the
// backend is made again.
func TestBlockPreparesAndRecovers(t *testing.T) {
	e := newEnv(t, false)
	e.must("Block", e.b.Block(ctx, ban(a4, time.Hour)))
	e.wantDump("first block", e.v4, prepared...)
	e.must("unhook", e.v4.ClearChain(iptables.TableRaw, ChainSets))
	e.must("destroy", e.sets.destroy(SetBan4))
	e.must("Block", e.b.Block(ctx, ban(b4, time.Hour)))
	e.wantContent("after the set vanished", SetBan4, "198.51.100.8 3600")
	e.wantDump("after the set vanished", e.v4, prepared...)
}

func TestUnsupportedFamily(t *testing.T) {
	e := newEnv(t, false)
	err := e.b.Block(ctx, ban(a6, time.Hour))
	if !errors.Is(err, iptables.ErrUnsupportedFamily) || !strings.Contains(err.Error(), "no ip6tables runner configured") {
		t.Errorf("Block(IPv6) without a v6 runner = %v", err)
	}
	e.must("Unblock(IPv6)", e.b.Unblock(ctx, a6))
	err = e.b.Sync(ctx, []block.Ban{ban(a4, time.Hour), ban(a6, time.Hour)})
	if !errors.Is(err, iptables.ErrUnsupportedFamily) {
		t.Errorf("Sync with an IPv6 ban = %v, want ErrUnsupportedFamily", err)
	}
	e.wantContent("Sync", SetBan4, "198.51.100.7 3600")
	for _, n := range e.sets.names() {
		if strings.HasSuffix(n, "6") {
			t.Errorf("set %s made for an unsupported family", n)
		}
	}
	if s := e.b.String(); !strings.Contains(s, "IPv6: unsupported (no ip6tables runner configured)") {
		t.Errorf("String = %q", s)
	}
}

func TestUnblockAndList(t *testing.T) {
	e := newEnv(t, true)
	got, err := e.b.List(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("List before anything = %v, %v", got, err)
	}
	e.must("Unblock before anything", e.b.Unblock(ctx, a4))
	e.must("Block", e.b.Block(ctx, ban(a4, time.Hour)))
	e.must("Block", e.b.Block(ctx, ban(a6, 0)))
	e.must("trapped", e.sets.add(SetTrap4, true, []member{addrMember(b4, 60), addrMember(a4, 60)}))
	got, err = e.b.List(ctx)
	if want := []netip.Addr{a4, b4, a6}; err != nil || !slices.Equal(got, want) {
		t.Errorf("List = %v, %v; want %v", got, err, want)
	}
	e.must("Unblock", e.b.Unblock(ctx, netip.MustParseAddr("::ffff:198.51.100.7")))
	e.must("Unblock", e.b.Unblock(ctx, b4))
	e.must("Unblock again", e.b.Unblock(ctx, b4))
	got, err = e.b.List(ctx)
	if want := []netip.Addr{a6}; err != nil || !slices.Equal(got, want) {
		t.Errorf("List after Unblock = %v, %v; want %v", got, err, want)
	}
	// an element's timeout runs out in the kernel
	e.must("Block", e.b.Block(ctx, ban(c4, time.Minute)))
	e.now = e.now.Add(time.Minute)
	got, _ = e.b.List(ctx)
	if slices.Contains(got, c4) {
		t.Errorf("List after the timeout: %v", got)
	}
}

func TestSyncTimeouts(t *testing.T) {
	e := newEnv(t, false)
	e.must("Prepare", e.b.Prepare(ctx))
	// the kernel: a4 as wanted, b4 100 s off, c4 permanent but wanted
	// timed, d4 not wanted; a trapped source
	e.must("add", e.sets.add(SetBan4, true, []member{addrMember(a4, 3598), addrMember(b4, 3500), addrMember(c4, 0), addrMember(d4, 50)}))
	e.must("trapped", e.sets.add(SetTrap4, true, []member{addrMember(netip.MustParseAddr("198.51.100.20"), 60)}))
	e5 := netip.MustParseAddr("198.51.100.5")
	e.sets.takeCalls()
	want := []block.Ban{
		ban(a4, time.Hour), ban(b4, time.Hour), ban(c4, time.Hour),
		ban(e5, 40*24*time.Hour), ban(e5, time.Hour), // the longest ban counts
		ban(netip.MustParseAddr("198.51.100.6"), -time.Minute), // expired
	}
	e.must("Sync", e.b.Sync(ctx, want))
	e.wantContent("Sync", SetBan4, "198.51.100.5 0", "198.51.100.7 3598", "198.51.100.8 3600", "198.51.100.9 3600")
	e.wantContent("Sync", SetTrap4, "198.51.100.20 60")
	if got := e.sets.takeCalls(); !slices.Equal(got, []string{"list scanwarden-ban4", "add scanwarden-ban4 3", "del scanwarden-ban4 1"}) {
		t.Errorf("Sync's calls: %q, want one listing, one batch of additions, one of deletions", got)
	}
	e.must("Sync again", e.b.Sync(ctx, want))
	if got := e.sets.takeCalls(); !slices.Equal(got, []string{"list scanwarden-ban4"}) {
		t.Errorf("Sync again: %q, want nothing changed", got)
	}
	e.must("Sync nothing", e.b.Sync(ctx, nil))
	e.wantContent("Sync nothing", SetBan4)
	e.wantContent("Sync nothing", SetTrap4, "198.51.100.20 60")
}

// A new Backend (a restart) syncs into what the kernel holds, and puts
// back a deleted element with what remains of its ban.
func TestSyncAfterRestart(t *testing.T) {
	e := newEnv(t, false)
	bans := []block.Ban{ban(a4, 2*time.Hour), ban(b4, 3*time.Hour)}
	e.must("Sync", e.b.Sync(ctx, bans))
	e.now = e.now.Add(30 * time.Minute)
	e.must("admin del", e.sets.del(SetBan4, []member{addrMember(b4, 0)}))
	b2, err := New(Options{V4: e.v4, Now: func() time.Time { return e.now }, sets: e.sets})
	if err != nil {
		t.Fatal(err)
	}
	e.sets.takeCalls()
	e.must("Prepare", b2.Prepare(ctx))
	e.must("Sync", b2.Sync(ctx, bans))
	e.wantContent("restart", SetBan4, "198.51.100.7 5400", "198.51.100.8 9000")
	for _, c := range e.sets.takeCalls() {
		if c != "list scanwarden-ban4" && !strings.HasPrefix(c, "list ") && c != "add scanwarden-ban4 1" {
			t.Errorf("restart: unexpected call %s", c)
		}
	}
}

func TestSetTrap(t *testing.T) {
	e := newEnv(t, false)
	e.must("Prepare", e.b.Prepare(ctx))
	e.must("trapped", e.sets.add(SetTrap4, true, []member{addrMember(a4, 600), addrMember(b4, 0), addrMember(c4, 60)}))
	e.must("Block", e.b.Block(ctx, ban(b4, time.Hour)))
	tr := block.Trap{
		TCP: []uint16{23, 22, 22}, UDP: []uint16{161},
		Exempt: []netip.Prefix{
			netip.MustParsePrefix("::ffff:198.51.100.8/128"), // b4, mapped
			netip.MustParsePrefix("203.0.113.0/24"),
			netip.MustParsePrefix("fd00:77::/64"),
		},
		Hold: time.Hour, Size: 500,
	}
	e.must("SetTrap", e.b.SetTrap(ctx, tr))
	e.wantDump("SetTrap", e.v4, withTrap("3600")...)
	e.wantContent("SetTrap", SetTCP, "22", "23")
	e.wantContent("SetTrap", SetUDP, "161")
	e.wantContent("SetTrap", SetNever4, "198.51.100.8", "203.0.113.0/24")
	e.wantContent("SetTrap: exempt trapped source removed", SetTrap4, "198.51.100.7 600", "198.51.100.9 60")
	e.wantContent("SetTrap: bans untouched", SetBan4, "198.51.100.8 3600")
	if h, _ := e.sets.header(SetTrap4); h.maxElem != 500 {
		t.Errorf("trap set maxelem %d, want 500", h.maxElem)
	}
	changes(e.v4)

	// the same again: nothing changes
	e.must("SetTrap again", e.b.SetTrap(ctx, tr))
	if c := changes(e.v4); len(c) > 0 {
		t.Errorf("SetTrap again changed rules: %q", c)
	}

	// new hold, ports, exemptions and size: the add rules are replaced
	// (inserted before the old ones go), the overflow rules stay, the
	// trap set is rebuilt with its elements and timeouts
	e.now = e.now.Add(10 * time.Second)
	tr2 := tr
	tr2.TCP, tr2.UDP = []uint16{22, 2222}, []uint16{53}
	tr2.Exempt = []netip.Prefix{netip.MustParsePrefix("198.51.100.9/32")}
	tr2.Hold, tr2.Size = 2*time.Hour, 1000
	e.must("SetTrap", e.b.SetTrap(ctx, tr2))
	e.wantDump("SetTrap 2", e.v4, withTrap("7200")...)
	c := changes(e.v4)
	// the add rules of each catch (tcp, udp, stealth, ack) are inserted
	// above the old ones, which are then deleted
	ok := len(c) == 8
	for i, at := range []int{3, 6, 9, 12} {
		add := strings.TrimPrefix(trapLines("7200")[at], "-A SCANWARDEN-TRAP ")
		ok = ok && strings.HasPrefix(c[i], fmt.Sprintf("Insert filter SCANWARDEN-TRAP %d %s", at+2+i, add)) &&
			strings.HasPrefix(c[4+i], "Delete filter SCANWARDEN-TRAP ")
	}
	if !ok {
		t.Errorf("changing the hold: %q, want the new rules inserted, then the old ones deleted", c)
	}
	e.wantContent("SetTrap 2", SetTCP, "22", "2222")
	e.wantContent("SetTrap 2", SetUDP, "53")
	e.wantContent("SetTrap 2", SetNever4, "198.51.100.9")
	e.wantContent("SetTrap 2", SetTrap4, "198.51.100.7 590")
	if h, _ := e.sets.header(SetTrap4); h.maxElem != 1000 {
		t.Errorf("trap set maxelem %d, want 1000", h.maxElem)
	}

	// a trap that is not enabled: no jump, no chain, the trapped stay
	e.must("SetTrap off", e.b.SetTrap(ctx, block.Trap{Size: 1000}))
	e.wantDump("SetTrap off", e.v4, prepared...)
	e.wantContent("SetTrap off", SetTrap4, "198.51.100.7 590")
	e.wantContent("SetTrap off", SetTCP)
	e.wantContent("SetTrap off", SetNever4)

	// and on again, then Prepare repairs a trap rule an admin deleted
	e.must("SetTrap on", e.b.SetTrap(ctx, tr))
	e.must("admin", e.v4.Delete(iptables.TableFilter, ChainTrap, strings.Fields(strings.TrimPrefix(trapLines("3600")[4], "-A SCANWARDEN-TRAP "))...))
	e.must("admin", e.v4.Delete(iptables.TableFilter, iptables.ChainInput, trapJumpSpec...))
	e.must("Prepare", e.b.Prepare(ctx))
	e.wantDump("repaired trap", e.v4, withTrap("3600")...)

	// a new Backend that does not know the trap leaves it as it is
	b2, err := New(Options{V4: e.v4, Now: func() time.Time { return e.now }, sets: e.sets})
	if err != nil {
		t.Fatal(err)
	}
	changes(e.v4)
	e.must("Prepare (restart)", b2.Prepare(ctx))
	if c := changes(e.v4); len(c) > 0 {
		t.Errorf("Prepare of a new Backend changed the trap: %q", c)
	}
}

// A trap set that holds more than a new, smaller Size keeps the
// longest-lasting sources, then holds them for the trap's Hold at most.
func TestSetTrapShrinks(t *testing.T) {
	e := newEnv(t, false)
	e.must("SetTrap", e.b.SetTrap(ctx, block.Trap{TCP: []uint16{22}, Hold: 2 * time.Hour, Size: 10}))
	e.must("trapped", e.sets.add(SetTrap4, true, []member{addrMember(a4, 600), addrMember(b4, 0), addrMember(c4, 60), addrMember(d4, 6000)}))
	e.must("SetTrap", e.b.SetTrap(ctx, block.Trap{TCP: []uint16{22}, Hold: 2 * time.Hour, Size: 2}))
	e.wantContent("shrunk", SetTrap4, "198.51.100.8 7200", "198.51.100.10 6000")
}

// TestSetTrapCutsToHold: SetTrap gives the trapped sources that have more
// than the Hold left, or no timeout (as an older version, which held them
// for BAN_EXPIRY, left them), the Hold, in place; those with less keep
// theirs, the ban set is not touched; a disabled trap without a Hold cuts
// nothing, and an enabled one without a Hold is refused.
func TestSetTrapCutsToHold(t *testing.T) {
	e := newEnv(t, false)
	e.must("Prepare", e.b.Prepare(ctx))
	e.must("trapped", e.sets.add(SetTrap4, true, []member{addrMember(a4, 86400), addrMember(b4, 0), addrMember(c4, 3)}))
	e.must("Block", e.b.Block(ctx, ban(a4, 24*time.Hour)))
	e.must("SetTrap off", e.b.SetTrap(ctx, block.Trap{Size: 100}))
	e.wantContent("SetTrap without a hold", SetTrap4, "198.51.100.7 86400", "198.51.100.8 0", "198.51.100.9 3")
	e.sets.takeCalls()
	e.must("SetTrap", e.b.SetTrap(ctx, block.Trap{TCP: []uint16{22}, Hold: 5 * time.Second, Size: 100}))
	e.wantContent("SetTrap with a hold of 5s", SetTrap4, "198.51.100.7 5", "198.51.100.8 5", "198.51.100.9 3")
	e.wantContent("SetTrap with a hold: bans untouched", SetBan4, "198.51.100.7 86400")
	for _, c := range e.sets.takeCalls() {
		if strings.HasPrefix(c, "del "+SetTrap4) {
			t.Errorf("the trapped sources were deleted (%s), not given the hold in place", c)
		}
	}
	e.now = e.now.Add(6 * time.Second)
	e.wantContent("after the hold", SetTrap4)
	e.wantContent("after the hold: the ban stays", SetBan4, "198.51.100.7 86394")

	for _, tr := range []block.Trap{{TCP: []uint16{22}, Size: 100}, {UDP: []uint16{53}, Hold: -time.Second}, {Hold: -time.Second}} {
		if err := e.b.SetTrap(ctx, tr); err == nil || !strings.Contains(err.Error(), "hold") {
			t.Errorf("SetTrap %+v: %v, want an error about the hold", tr, err)
		}
	}
}

// TestRelease: Release spares an address and takes it out of its
// family's trap set, and nothing else: two messages, the add to the
// spared set (for block.SpareFor) first, then the delete. Again, it
// refreshes the spare; an address never trapped is spared too; absent,
// without sets, or for an unsupported family it is no error. List does
// not report spared addresses; Unblock removes them.
func TestRelease(t *testing.T) {
	e := newEnv(t, false)
	e.must("SetTrap", e.b.SetTrap(ctx, block.Trap{TCP: []uint16{22}, Hold: 5 * time.Second, Size: 100}))
	e.must("trapped", e.sets.add(SetTrap4, true, []member{addrMember(a4, 600), addrMember(b4, 600)}))
	e.must("Block", e.b.Block(ctx, ban(a4, time.Hour)))
	e.sets.takeCalls()
	e.must("Release", e.b.Release(ctx, netip.MustParseAddr("::ffff:"+a4.String())))
	if c := e.sets.takeCalls(); !slices.Equal(c, []string{"add " + SetSpared4 + " 1", "del " + SetTrap4 + " 1"}) {
		t.Errorf("Release: calls %q, want an add to %s, then a delete from %s", c, SetSpared4, SetTrap4)
	}
	e.wantContent("released", SetTrap4, "198.51.100.8 600")
	e.wantContent("released: spared", SetSpared4, "198.51.100.7 60")
	e.wantContent("released: the ban stays", SetBan4, "198.51.100.7 3600")
	e.now = e.now.Add(30 * time.Second)
	e.wantContent("30 s later", SetSpared4, "198.51.100.7 30")
	e.must("Release again", e.b.Release(ctx, a4))
	e.wantContent("released again: refreshed", SetSpared4, "198.51.100.7 60")
	e.must("Release of an address never trapped", e.b.Release(ctx, c4))
	e.wantContent("never trapped, released", SetSpared4, "198.51.100.7 60", "198.51.100.9 60")
	e.wantContent("the trap set", SetTrap4, "198.51.100.8 570")
	got, err := e.b.List(ctx)
	if want := []netip.Addr{a4, b4}; err != nil || !slices.Equal(got, want) {
		t.Errorf("List = %v, %v; want %v (the ban and the trapped, no spared address)", got, err, want)
	}
	if n := e.b.SpareOverflows(); n != 0 {
		t.Errorf("SpareOverflows = %d with room in the set", n)
	}

	// a new SetTrap (other ports, then another size) keeps the spared
	e.now = e.now.Add(10 * time.Second)
	e.must("SetTrap", e.b.SetTrap(ctx, block.Trap{TCP: []uint16{22, 23}, UDP: []uint16{53}, Hold: 5 * time.Second, Size: 100}))
	e.wantContent("SetTrap with new ports", SetSpared4, "198.51.100.7 50", "198.51.100.9 50")
	e.must("SetTrap", e.b.SetTrap(ctx, block.Trap{TCP: []uint16{22}, Hold: 5 * time.Second, Size: 50}))
	e.wantContent("SetTrap with a new size", SetSpared4, "198.51.100.7 50", "198.51.100.9 50")
	if h, _ := e.sets.header(SetSpared4); h.maxElem != 50 {
		t.Errorf("spared set maxelem %d after SetTrap with Size 50", h.maxElem)
	}
	e.must("SetTrap off", e.b.SetTrap(ctx, block.Trap{Size: 50}))
	e.wantContent("SetTrap off", SetSpared4, "198.51.100.7 50", "198.51.100.9 50")

	// Unblock: a clean slate
	e.must("Unblock", e.b.Unblock(ctx, c4))
	e.wantContent("Unblock", SetSpared4, "198.51.100.7 50")

	e.must("Release of an IPv6 address (no IPv6 runner)", e.b.Release(ctx, a6))
	if err := e.b.Release(ctx, netip.Addr{}); err == nil {
		t.Error("Release of the zero address: no error")
	}
	e.must("Flush", e.b.Flush(ctx))
	if n := e.sets.names(); len(n) > 0 {
		t.Errorf("sets after Flush: %q", n)
	}
	e.must("Release without sets", e.b.Release(ctx, b4))
}

// TestReleaseSpareFull: the spared set has the trap set's size; when it
// is full, Release still lets the address out of the trap set, returns
// nil and counts it; a spared address is refreshed all the same. A
// failure to spare does not keep the address trapped.
func TestReleaseSpareFull(t *testing.T) {
	e := newEnv(t, false)
	e.must("SetTrap", e.b.SetTrap(ctx, block.Trap{TCP: []uint16{22}, Hold: 5 * time.Second, Size: 2}))
	if h, _ := e.sets.header(SetSpared4); h.maxElem != 2 {
		t.Fatalf("spared set maxelem %d, want the trap's 2", h.maxElem)
	}
	e.must("Release", e.b.Release(ctx, a4))
	e.must("Release", e.b.Release(ctx, b4))
	e.must("trapped", e.sets.add(SetTrap4, true, []member{addrMember(c4, 5)}))
	e.now = e.now.Add(20 * time.Second)
	e.must("Release with the spared set full", e.b.Release(ctx, c4))
	e.wantContent("full", SetSpared4, "198.51.100.7 40", "198.51.100.8 40")
	e.wantContent("full: released all the same", SetTrap4)
	if n := e.b.SpareOverflows(); n != 1 {
		t.Errorf("SpareOverflows = %d, want 1", n)
	}
	e.must("Release of a spared address, the set full", e.b.Release(ctx, a4))
	e.wantContent("refreshed in a full set", SetSpared4, "198.51.100.7 60", "198.51.100.8 40")
	if n := e.b.SpareOverflows(); n != 1 {
		t.Errorf("SpareOverflows after a refresh = %d, want still 1", n)
	}

	// a spared set that refuses timeouts (an administrator's): the error
	// is returned, the address released all the same
	e.must("admin", e.v4.ClearChain(iptables.TableFilter, ChainTrap))
	e.must("admin", e.sets.destroy(SetSpared4))
	e.must("admin", e.sets.create(SetSpared4, header{typ: typeHashIP, family: 2, maxElem: 2}))
	e.must("trapped", e.sets.add(SetTrap4, true, []member{addrMember(d4, 5)}))
	if err := e.b.Release(ctx, d4); err == nil || !strings.Contains(err.Error(), "sparing") {
		t.Errorf("Release with a spared set without timeouts: %v, want an error about sparing", err)
	}
	e.wantContent("released despite the error", SetTrap4)
}

func TestTrapOverflows(t *testing.T) {
	e := newEnv(t, true)
	n, err := e.b.TrapOverflows(ctx)
	if err != nil || n != 0 {
		t.Errorf("TrapOverflows without a trap = %d, %v", n, err)
	}
	e.must("SetTrap", e.b.SetTrap(ctx, block.Trap{TCP: []uint16{22}, Hold: 5 * time.Second}))
	n, err = e.b.TrapOverflows(ctx)
	if err != nil || n != 0 {
		t.Errorf("TrapOverflows of the fake = %d, %v", n, err)
	}
	lines := []string{
		"-N SCANWARDEN-TRAP",
		"-A SCANWARDEN-TRAP -i lo -m comment --comment scanwarden -c 99 99 -j RETURN",
		"-A SCANWARDEN-TRAP -p tcp -m tcp ! --tcp-flags ACK ACK -m set --match-set scanwarden-tcp dst -m comment --comment scanwarden-trap-overflow -c 7 420 -j DROP",
		"-A SCANWARDEN-TRAP -p udp -m set --match-set scanwarden-udp dst -m comment --comment scanwarden-trap-overflow -c 5 300 -j DROP",
		"-A SCANWARDEN-TRAP -p udp -m set --match-set scanwarden-udp dst -m comment --comment other -c 1000 1 -j DROP",
		"# Warning: iptables-legacy tables present",
	}
	if n, err := overflowCount(lines); err != nil || n != 12 {
		t.Errorf("overflowCount = %d, %v; want 12", n, err)
	}
	if _, err := overflowCount([]string{"-A SCANWARDEN-TRAP -c x 1 -j DROP"}); err == nil {
		t.Error("overflowCount of a bad counter: no error")
	}

	// it takes no lock of the backend (a Block on the capture thread
	// never waits for the daemon's periodic check, which runs iptables)
	e.b.mu.Lock()
	done := make(chan error, 1)
	go func() { _, err := e.b.TrapOverflows(ctx); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("TrapOverflows beside a held backend: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("TrapOverflows waited for the backend's lock")
	}
	e.b.mu.Unlock()
}

func TestFlush(t *testing.T) {
	e := newEnv(t, true)
	admin := []string{"-A", "INPUT", "-s", "203.0.113.1", "-j", "ACCEPT"}
	e.must("admin", e.v4.Append(iptables.TableFilter, iptables.ChainInput, admin[2:]...))
	e.must("admin", e.v4.NewChain(iptables.TableFilter, iptables.ChainScanwarden))
	e.must("admin", e.v4.NewChain(iptables.TableRaw, iptables.ChainScanwarden))
	e.must("SetTrap", e.b.SetTrap(ctx, block.Trap{TCP: []uint16{22}, Hold: 5 * time.Second}))
	e.must("Block", e.b.Block(ctx, ban(a4, time.Hour)))
	e.must("Block", e.b.Block(ctx, ban(a6, time.Hour)))
	e.must("Flush", e.b.Flush(ctx))
	e.wantDump("Flush", e.v4, "-N SCANWARDEN", "-N SCANWARDEN", "-A INPUT -s 203.0.113.1/32 -j ACCEPT")
	e.wantDump("Flush", e.v6)
	if n := e.sets.names(); len(n) > 0 {
		t.Errorf("sets after Flush: %q", n)
	}
	e.must("Flush again", e.b.Flush(ctx))
	// and all comes back with the next block
	e.must("Block", e.b.Block(ctx, ban(a4, time.Hour)))
	e.wantDump("Block after Flush", e.v4, "-N SCANWARDEN", "-N SCANWARDEN-SETS", jump4, banDrop4, trpDrop4, "-N SCANWARDEN", banShow4, "-A INPUT -s 203.0.113.1/32 -j ACCEPT")
}

func TestSyncChain(t *testing.T) {
	A, B, C := []string{"-s", "198.51.100.1/32", "-j", "DROP"}, []string{"-s", "198.51.100.2/32", "-j", "DROP"}, []string{"-s", "198.51.100.3/32", "-j", "DROP"}
	X := []string{"-s", "198.51.100.99/32", "-j", "ACCEPT"}
	for _, c := range []struct {
		name       string
		have, want [][]string
	}{
		{"empty", nil, [][]string{A, B}},
		{"same", [][]string{A, B}, [][]string{A, B}},
		{"missing middle", [][]string{A, C}, [][]string{A, B, C}},
		{"foreign inside", [][]string{A, X, B}, [][]string{A, B}},
		{"replaced", [][]string{A, X, C}, [][]string{A, B, C}},
		{"swapped", [][]string{B, A}, [][]string{A, B}},
		{"duplicate", [][]string{A, A, B}, [][]string{A, B}},
		{"to nothing", [][]string{A, X}, nil},
	} {
		f := iptables.NewFake()
		if c.have != nil {
			must(t, f.NewChain(iptables.TableRaw, "C"))
		}
		for _, r := range c.have {
			must(t, f.Append(iptables.TableRaw, "C", r...))
		}
		if err := syncChain(f, iptables.TableRaw, "C", c.want); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		got, _, _ := chainRules(f, iptables.TableRaw, "C")
		if !slices.EqualFunc(got, c.want, slices.Equal) {
			t.Errorf("%s: chain holds %q, want %q", c.name, got, c.want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestExemptions(t *testing.T) {
	got := exemptions([]netip.Prefix{
		netip.MustParsePrefix("198.51.100.77/24"),
		netip.MustParsePrefix("::ffff:198.51.100.0/120"),
		netip.MustParsePrefix("::ffff:0:0/96"),
		netip.MustParsePrefix("fd00:77::1/128"),
		netip.MustParsePrefix("::/0"),
		{},
	})
	str := func(ms []member) []string {
		var s []string
		for _, m := range ms {
			s = append(s, m.prefix.String())
		}
		return s
	}
	if s := str(got[iptables.IPv4]); !slices.Equal(s, []string{"0.0.0.0/1", "128.0.0.0/1", "198.51.100.0/24"}) {
		t.Errorf("IPv4 exemptions: %q", s)
	}
	if s := str(got[iptables.IPv6]); !slices.Equal(s, []string{"::/1", "8000::/1", "fd00:77::1/128"}) {
		t.Errorf("IPv6 exemptions: %q", s)
	}
}

func TestTimeoutSeconds(t *testing.T) {
	for d, want := range map[time.Duration]uint32{
		0: 0, -time.Second: 0, time.Nanosecond: 1, time.Second: 1, 1001 * time.Millisecond: 2,
		24 * time.Hour: 86400, maxElemTimeout * time.Second: maxElemTimeout, (maxElemTimeout + 1) * time.Second: 0,
	} {
		if got := timeoutSeconds(d); got != want {
			t.Errorf("timeoutSeconds(%v) = %d, want %d", d, got, want)
		}
	}
	for _, c := range []struct {
		k, t uint32
		want bool
	}{{100, 100, false}, {100, 110, false}, {100, 111, true}, {111, 100, true}, {0, 0, false}, {0, 5, true}, {5, 0, true}} {
		if got := timeoutDiffers(c.k, c.t); got != c.want {
			t.Errorf("timeoutDiffers(%d, %d) = %v", c.k, c.t, got)
		}
	}
}

// TestGarbageBackendClosesSets: a Backend nobody closed (the one a reload
// replaced) releases its sockets when it is garbage, once.
func TestGarbageBackendClosesSets(t *testing.T) {
	sets := newFakeSets(time.Now)
	func() {
		if _, err := New(Options{sets: sets}); err != nil {
			t.Fatal(err)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for sets.closes.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the garbage Backend's sets were never closed")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := sets.closes.Load(); n != 1 {
		t.Fatalf("closed %d times", n)
	}
}

// TestClosedBackendNotClosedAgain: a Backend closed by Close does not
// close its sets a second time when it is garbage.
func TestClosedBackendNotClosedAgain(t *testing.T) {
	sets := newFakeSets(time.Now)
	func() {
		b, err := New(Options{sets: sets})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	for i := 0; i < 20; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := sets.closes.Load(); n != 1 {
		t.Fatalf("closed %d times, want once (by Close)", n)
	}
}

// TestSpareOlderLayout: sets and rules as a version without spared sets
// left them. Release lets the address out of the trap set without error;
// a new Backend's Prepare makes the spared set, of the trap set's size,
// and leaves the trap chain as found; SetTrap inserts the spared set's
// RETURN in its place, without rewriting the rest.
func TestSpareOlderLayout(t *testing.T) {
	e := newEnv(t, false)
	tr := block.Trap{TCP: []uint16{22}, UDP: []uint16{53}, Hold: 5 * time.Second, Size: 40}
	e.must("Prepare", e.b.Prepare(ctx))
	e.must("SetTrap", e.b.SetTrap(ctx, tr))
	spared := strings.Fields(strings.TrimPrefix(trapLines("5")[2], "-A SCANWARDEN-TRAP "))
	e.must("admin", e.v4.Delete(iptables.TableFilter, ChainTrap, spared...))
	e.must("admin", e.sets.destroy(SetSpared4))
	e.must("trapped", e.sets.add(SetTrap4, true, []member{addrMember(a4, 5)}))
	old := dump(e.v4)

	b2, err := New(Options{V4: e.v4, Now: func() time.Time { return e.now }, sets: e.sets})
	if err != nil {
		t.Fatal(err)
	}
	e.must("Release without a spared set", b2.Release(ctx, a4))
	e.wantContent("released", SetTrap4)
	e.must("Prepare", b2.Prepare(ctx))
	if h, ok := e.sets.header(SetSpared4); !ok || h.String() != "hash:ip family inet maxelem 40 timeout" {
		t.Errorf("spared set after Prepare: %v %v, want one of the trap set's size", h, ok)
	}
	if got := dump(e.v4); !slices.Equal(got, old) {
		t.Errorf("Prepare before SetTrap changed the rules:\n%s\nwas\n%s", strings.Join(got, "\n"), strings.Join(old, "\n"))
	}
	changes(e.v4)
	e.must("SetTrap", b2.SetTrap(ctx, tr))
	if c := changes(e.v4); len(c) != 1 || !strings.HasPrefix(c[0], "Insert filter SCANWARDEN-TRAP 3 "+strings.Join(spared, " ")) {
		t.Errorf("SetTrap on the older chain: %q, want the spared RETURN inserted third", c)
	}
	e.wantDump("SetTrap", e.v4, withTrap("5")...)
}

// TestBanShowRule: the rule that shows the bans in filter INPUT (where
// iptables -S looks) is written with the others, once per family, put
// back when deleted, kept once when copied, and removed by Flush with the
// rest; List and TrapOverflows do not count it.
func TestBanShowRule(t *testing.T) {
	e := newEnv(t, true)
	e.must("Block", e.b.Block(ctx, ban(a4, time.Hour)))
	e.must("Block", e.b.Block(ctx, ban(a6, time.Hour)))
	for _, c := range []struct {
		f    *iptables.Fake
		want string
	}{{e.v4, banShow4}, {e.v6, banShow6}} {
		if got := c.f.Dump(iptables.TableFilter); !slices.Equal(got, []string{"-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT", c.want}) {
			t.Errorf("filter table after the first Block: %q, want %q", got, c.want)
		}
	}
	fam := e.b.fams[0]
	e.must("admin", e.v4.Delete(iptables.TableFilter, iptables.ChainInput, banShowSpec(fam)...))
	e.must("admin", e.v4.Append(iptables.TableFilter, iptables.ChainInput, "-s", "203.0.113.1", "-j", "ACCEPT"))
	e.must("Prepare", e.b.Prepare(ctx))
	e.wantDump("put back", e.v4, append(slices.Clone(rawPrep), banShow4, "-A INPUT -s 203.0.113.1/32 -j ACCEPT")...)
	e.must("admin", e.v4.Append(iptables.TableFilter, iptables.ChainInput, banShowSpec(fam)...))
	e.must("Prepare", e.b.Prepare(ctx))
	e.wantDump("copied", e.v4, append(slices.Clone(rawPrep), "-A INPUT -s 203.0.113.1/32 -j ACCEPT", banShow4)...)
	changes(e.v4)
	e.must("Prepare again", e.b.Prepare(ctx))
	if c := changes(e.v4); len(c) > 0 {
		t.Errorf("Prepare again changed the rules: %q", c)
	}
	if got, err := e.b.List(ctx); err != nil || !slices.Equal(got, []netip.Addr{a4, a6}) {
		t.Errorf("List: %v, %v; want %v and %v", got, err, a4, a6)
	}
	e.must("Flush", e.b.Flush(ctx))
	e.wantDump("Flush", e.v4, "-A INPUT -s 203.0.113.1/32 -j ACCEPT")
	e.wantDump("Flush", e.v6)
}

// TestTrapCatchesArmed: a trap of UDP ports only (BLOCK_TCP="0", or -sudp)
// has no TCP catch, the stealth one (any port) included: a FIN scanner is
// not held when TCP is not to be blocked on a first hit.
func TestTrapCatchesArmed(t *testing.T) {
	e := newEnv(t, false)
	e.must("Prepare", e.b.Prepare(ctx))
	e.must("SetTrap", e.b.SetTrap(ctx, block.Trap{UDP: []uint16{53}, Hold: 5 * time.Second, Size: 10}))
	lines, err := e.v4.List(iptables.TableFilter, ChainTrap)
	if err != nil {
		t.Fatal(err)
	}
	udp := 0
	for _, l := range lines {
		if strings.Contains(l, "-p tcp") {
			t.Errorf("a UDP-only trap has the TCP rule %q", l)
		}
		if strings.Contains(l, "-p udp") {
			udp++
		}
	}
	if udp != 3 {
		t.Errorf("%d UDP catch rules, want 3: %q", udp, lines)
	}
}
