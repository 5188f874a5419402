package nftables

// Real-kernel tests of the backend, as root, each in fresh namespaces (see
// lab_test.go).

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	nft "github.com/google/nftables"

	"github.com/scanwarden/scanwarden/block"
)

// slack is how far a timeout read back may be from the one expected: the
// time the test took between writing and reading, with a wide margin.
const slack = 3 * time.Second

// elems returns the elements of set name in b's table, by address.
func elems(t testing.TB, b *Backend, name string) map[netip.Addr]nft.SetElement {
	t.Helper()
	es, err := b.elements(name)
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.Addr]nft.SetElement{}
	for _, e := range es {
		a, ok := addrOf(e.Key)
		if !ok {
			t.Fatalf("set %s: element key %x is no address", name, e.Key)
		}
		out[a] = e
	}
	return out
}

// setElems writes elements into set name directly (as an administrator,
// or the kernel's trap, would), deleting them first when del.
func setElems(t testing.TB, b *Backend, name string, del bool, es ...nft.SetElement) {
	t.Helper()
	c, err := b.conn()
	if err != nil {
		t.Fatal(err)
	}
	s := &nft.Set{Table: b.table, Name: name, HasTimeout: true}
	if del {
		err = c.SetDeleteElements(s, es)
	} else {
		err = c.SetAddElements(s, es)
	}
	if err == nil {
		err = c.Flush()
	}
	if err != nil {
		t.Fatalf("writing set %s: %v", name, err)
	}
}

func elem(a netip.Addr, timeout time.Duration) nft.SetElement {
	return nft.SetElement{Key: keyOf(a), Timeout: timeout}
}

// wantLeft checks that set name holds a with about left of its timeout to
// run (0: no timeout).
func wantLeft(t testing.TB, b *Backend, name string, a netip.Addr, left time.Duration) {
	t.Helper()
	e, ok := elems(t, b, name)[a]
	switch {
	case !ok:
		t.Errorf("set %s: no %v, want it with %v left", name, a, left)
	case left == 0 && (e.Timeout != 0 || e.Expires != 0):
		t.Errorf("set %s: %v has timeout %v (expires in %v), want none", name, a, e.Timeout, e.Expires)
	case left != 0 && (e.Expires > left+slack || e.Expires < left-lowSlack(left)):
		t.Errorf("set %s: %v expires in %v (timeout %v), want about %v", name, a, e.Expires, e.Timeout, left)
	}
}

// lowSlack is how much less than left an element may have left: slack,
// and for a timeout of a minute or more (a ban, an hour-long trap in a
// test that waits on dropped connections meanwhile) 30 s, so that a
// loaded machine running the tests in parallel does not fail them; a
// timeout longer than asked is never allowed more than slack.
func lowSlack(left time.Duration) time.Duration {
	if left >= time.Minute {
		return 30 * time.Second
	}
	return slack
}

// rules returns the comments of the rules of chain, and their handles.
func rules(t testing.TB, b *Backend, chain string) (tags []string, handles []uint64) {
	t.Helper()
	c, err := b.conn()
	if err != nil {
		t.Fatal(err)
	}
	rs, err := c.GetRules(b.table, &nft.Chain{Name: chain, Table: b.table})
	if err != nil {
		t.Fatalf("rules of %s: %v", chain, err)
	}
	for _, r := range rs {
		tags = append(tags, ruleTag(r))
		handles = append(handles, r.Handle)
	}
	return tags, handles
}

// kernelSet returns set name as the kernel has it.
func kernelSet(t testing.TB, b *Backend, name string) *nft.Set {
	t.Helper()
	c, err := b.conn()
	if err != nil {
		t.Fatal(err)
	}
	sets, err := c.GetSets(b.table)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sets {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no set %s", name)
	return nil
}

func mustList(t testing.TB, b *Backend) []netip.Addr {
	t.Helper()
	got, err := b.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// TestKernelBlockListUnblock: Block adds one element with the ban's
// timeout (none for a ban without end, a second for one about to end,
// nothing for one that has ended), List reads ban and trap sets, Unblock
// removes from both and is quiet about absent addresses.
func TestKernelBlockListUnblock(t *testing.T) {
	l := newLab(t, "victim")
	b := l.backend()
	ctx := context.Background()
	now := time.Now()
	for _, ban := range []block.Ban{
		{Addr: netip.MustParseAddr("198.51.100.66"), Until: now.Add(time.Hour)},
		{Addr: netip.MustParseAddr("198.51.100.66"), Until: now.Add(time.Hour)}, // again: one element
		{Addr: netip.MustParseAddr("fd00:77::66")},
		{Addr: netip.MustParseAddr("::ffff:198.51.100.67"), Until: now.Add(2 * time.Hour)},
		{Addr: netip.MustParseAddr("198.51.100.68"), Until: now.Add(-time.Second)}, // ended: not added
	} {
		if err := b.Block(ctx, ban); err != nil {
			t.Fatalf("Block %v: %v", ban.Addr, err)
		}
	}
	if err := b.Block(ctx, block.Ban{}); err == nil {
		t.Error("Block of the zero address: no error")
	}
	wantLeft(t, b, setBan4, netip.MustParseAddr("198.51.100.66"), time.Hour)
	wantLeft(t, b, setBan4, netip.MustParseAddr("198.51.100.67"), 2*time.Hour)
	wantLeft(t, b, setBan6, netip.MustParseAddr("fd00:77::66"), 0)
	if n := len(elems(t, b, setBan4)); n != 2 {
		t.Errorf("ban4 holds %d elements, want 2", n)
	}
	if got, want := mustList(t, b), addrs("198.51.100.66", "198.51.100.67", "fd00:77::66"); !slices.Equal(got, want) {
		t.Errorf("List: %v, want %v", got, want)
	}
	if got, want := b.Describe(netip.MustParseAddr("::ffff:198.51.100.66")), "nftables: 198.51.100.66 in set inet scanwarden ban4"; got != want {
		t.Errorf("Describe: %q, want %q", got, want)
	}

	// A source the kernel trapped is listed and unblocked too.
	trapped := netip.MustParseAddr("fd00:77::77")
	setElems(t, b, setTrap6, false, elem(trapped, time.Hour))
	if got := mustList(t, b); !slices.Contains(got, trapped) {
		t.Errorf("List: %v, want the trapped %v in it", got, trapped)
	}
	for _, a := range addrs("198.51.100.66", "::ffff:198.51.100.67", "198.51.100.70", "fd00:77::77", "fd00:77::66") {
		if err := b.Unblock(ctx, a); err != nil {
			t.Errorf("Unblock %v: %v", a, err)
		}
	}
	if got := mustList(t, b); len(got) != 0 {
		t.Errorf("List after Unblock: %v, want nothing", got)
	}

	// A ban about to end gets the shortest timeout, and the kernel lifts
	// it by itself.
	short := netip.MustParseAddr("198.51.100.69")
	if err := b.Block(ctx, block.Ban{Addr: short, Until: time.Now().Add(300 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	if e, ok := elems(t, b, setBan4)[short]; !ok || e.Timeout != time.Second {
		t.Errorf("a ban with 300ms left: element %v (%v), want one with the minimum timeout, 1s", ok, e.Timeout)
	}
	time.Sleep(1500 * time.Millisecond)
	if got := mustList(t, b); len(got) != 0 {
		t.Errorf("List after the 1s timeout: %v, want nothing", got)
	}
}

// TestKernelSyncTimeouts: Sync loads bans with their remaining time; a new
// Backend (a restarted daemon) that prepares and syncs the same bans keeps
// every element and its running timer; a deleted element comes back with
// the time its ban has left, wrong timeouts are fixed, extra elements
// removed.
func TestKernelSyncTimeouts(t *testing.T) {
	l := newLab(t, "victim")
	ctx := context.Background()
	now := time.Now()
	a, bb, c, d, e, x := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("198.51.100.11"),
		netip.MustParseAddr("198.51.100.12"), netip.MustParseAddr("fd00:77::13"),
		netip.MustParseAddr("198.51.100.14"), netip.MustParseAddr("198.51.100.15")
	want := []block.Ban{
		{Addr: a, Until: now.Add(time.Hour)},
		{Addr: bb, Until: now.Add(2 * time.Hour)},
		{Addr: bb, Until: now.Add(time.Minute)}, // the longer ban of bb counts
		{Addr: c},
		{Addr: d, Until: now.Add(30 * time.Minute)},
		{Addr: e, Until: now.Add(-time.Minute)}, // ended
	}
	b1 := l.backend()
	if err := b1.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b1.Sync(ctx, want); err != nil {
		t.Fatal(err)
	}
	check := func(step string) {
		t.Helper()
		left := func(u time.Time) time.Duration { return time.Until(u) }
		wantLeft(t, b1, setBan4, a, left(now.Add(time.Hour)))
		wantLeft(t, b1, setBan4, bb, left(now.Add(2*time.Hour)))
		wantLeft(t, b1, setBan4, c, 0)
		wantLeft(t, b1, setBan6, d, left(now.Add(30*time.Minute)))
		if got, want := mustList(t, b1), []netip.Addr{a, bb, c, d}; !slices.Equal(got, want) {
			t.Errorf("%s: List %v, want %v", step, got, want)
		}
	}
	check("first Sync")
	before4, before6 := elems(t, b1, setBan4), elems(t, b1, setBan6)
	preBefore, handlesBefore := rules(t, b1, chainPrerouting)

	// A restart, a second later: nothing is rewritten, every timer runs on.
	time.Sleep(1100 * time.Millisecond)
	b2 := l.backend()
	if err := b2.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b2.Sync(ctx, want); err != nil {
		t.Fatal(err)
	}
	for name, before := range map[string]map[netip.Addr]nft.SetElement{setBan4: before4, setBan6: before6} {
		after := elems(t, b2, name)
		for addr, e := range before {
			if after[addr].Timeout != e.Timeout {
				t.Errorf("after the restart, %s %v has timeout %v, want the first one, %v (the element was rewritten)", name, addr, after[addr].Timeout, e.Timeout)
			}
		}
	}
	if tags, handles := rules(t, b2, chainPrerouting); !slices.Equal(tags, preBefore) || !slices.Equal(handles, handlesBefore) {
		t.Errorf("the restart rewrote the prerouting chain: %v %v, was %v %v", tags, handles, preBefore, handlesBefore)
	}
	check("the restart")

	// Lost, wrong and extra elements.
	setElems(t, b2, setBan4, true, elem(a, 0), elem(bb, 0))
	setElems(t, b2, setBan4, false, elem(bb, 10*time.Second), elem(c, time.Hour), elem(x, time.Hour))
	setElems(t, b2, setBan6, true, elem(d, 0))
	setElems(t, b2, setBan6, false, elem(d, 0))
	if err := b2.Sync(ctx, want); err != nil {
		t.Fatal(err)
	}
	check("repair")
	if _, ok := elems(t, b2, setBan4)[x]; ok {
		t.Errorf("Sync left %v, which no ban wants", x)
	}
}

// TestKernelSync100k: 100,000 bans (IPv6: the largest elements) load in
// chunks below the kernel's message limits; a second Sync with all
// present changes nothing; a smaller want removes the rest.
func TestKernelSync100k(t *testing.T) {
	l := newLab(t, "victim")
	b := l.backend()
	ctx := context.Background()
	want := manyBans(100_000, time.Now().Add(time.Hour))
	start := time.Now()
	if err := b.Sync(ctx, want); err != nil {
		t.Fatal(err)
	}
	t.Logf("Sync of %d bans into an empty set: %v", len(want), time.Since(start))
	loaded := elems(t, b, setBan6)
	if len(loaded) != len(want) {
		t.Fatalf("ban6 holds %d elements, want %d", len(loaded), len(want))
	}
	probe := want[54321].Addr
	timeout := loaded[probe].Timeout
	start = time.Now()
	if err := b.Sync(ctx, want); err != nil {
		t.Fatal(err)
	}
	t.Logf("Sync of %d bans, all present: %v", len(want), time.Since(start))
	if got := elems(t, b, setBan6)[probe].Timeout; got != timeout {
		t.Errorf("the second Sync rewrote %v: timeout %v, was %v", probe, got, timeout)
	}
	if err := b.Sync(ctx, want[:40_000]); err != nil {
		t.Fatal(err)
	}
	if got := mustList(t, b); len(got) != 40_000 || got[0] != want[0].Addr {
		t.Errorf("List after syncing 40,000 of the bans: %d addresses", len(got))
	}
}

// manyBans returns n bans of fd00:77::/64 addresses.
func manyBans(n int, until time.Time) []block.Ban {
	out := make([]block.Ban, n)
	for i := range out {
		a := netip.MustParseAddr("fd00:77::1:0").As16()
		a[12], a[13], a[14] = byte(i>>16), byte(i>>8), byte(i)
		out[i] = block.Ban{Addr: netip.AddrFrom16(a), Proto: "tcp", Until: until}
	}
	return out
}

// TestKernelFlush: Flush deletes the table with everything in it, again
// is no error, and a Block afterwards makes it anew.
func TestKernelFlush(t *testing.T) {
	l := newLab(t, "victim")
	b := l.backend()
	ctx := context.Background()
	if err := b.SetTrap(ctx, block.Trap{TCP: []uint16{trapTCP}, Hold: 5 * time.Second, Size: 256}); err != nil {
		t.Fatal(err)
	}
	if err := b.Block(ctx, block.Ban{Addr: netip.MustParseAddr("198.51.100.66")}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := b.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		c, err := b.conn()
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := b.tableExists(c); err != nil || ok {
			t.Errorf("after Flush, the table exists: %v %v", ok, err)
		}
		if got := mustList(t, b); len(got) != 0 {
			t.Errorf("List after Flush: %v", got)
		}
		if n, err := b.TrapOverflows(ctx); n != 0 || err != nil {
			t.Errorf("TrapOverflows after Flush: %d, %v", n, err)
		}
	}
	if err := b.Block(ctx, block.Ban{Addr: netip.MustParseAddr("198.51.100.66")}); err != nil {
		t.Fatal(err)
	}
	if got := mustList(t, b); !slices.Equal(got, addrs("198.51.100.66")) {
		t.Errorf("List after Flush and Block: %v", got)
	}
	// A trap no longer in force after Flush: the new table has no jump.
	if tags, _ := rules(t, b, chainInput); slices.Contains(tags, jumpRule().tag()) {
		t.Errorf("input after Flush and Block: %v, want no jump to the trap", tags)
	}
}

// deleteRule deletes the rule of chain whose comment starts with
// tagPrefix+name.
func deleteRule(t testing.TB, b *Backend, chain, name string) {
	t.Helper()
	c, err := b.conn()
	if err != nil {
		t.Fatal(err)
	}
	ch := &nft.Chain{Name: chain, Table: b.table}
	rs, err := c.GetRules(b.table, ch)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if tag := ruleTag(r); len(tag) > len(tagPrefix+name) && tag[:len(tagPrefix+name)+1] == tagPrefix+name+"#" {
			if err := c.DelRule(&nft.Rule{Table: b.table, Chain: ch, Handle: r.Handle}); err != nil {
				t.Fatal(err)
			}
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no rule %s in %s", name, chain)
}

// TestKernelPrepareRepairs: rules an administrator deleted come back, a
// set recreated wrongly is rebuilt keeping its elements, elements and
// timers of the sets that were right are not touched, and a Prepare with
// nothing to repair rewrites nothing.
func TestKernelPrepareRepairs(t *testing.T) {
	l := newLab(t, "victim")
	ctx := context.Background()
	b := l.backend()
	trap := block.Trap{TCP: []uint16{trapTCP}, UDP: []uint16{trapUDP}, Hold: time.Hour, Size: 256,
		Exempt: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/28")}}
	if err := b.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("198.51.100.66")
	if err := b.Block(ctx, block.Ban{Addr: a, Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	timeout := elems(t, b, setBan4)[a].Timeout
	wantPre, _ := rules(t, b, chainPrerouting)
	wantInput, _ := rules(t, b, chainInput)
	wantTrap, _ := rules(t, b, chainTrap)
	if !slices.Equal(wantPre, tags(preroutingRules())) || !slices.Equal(wantInput, tags(inputRules(true))) || !slices.Equal(wantTrap, tags(trapRules(&trap))) {
		t.Fatalf("after SetTrap: prerouting %v, input %v, trap %v", wantPre, wantInput, wantTrap)
	}

	// The administrator deletes rules, and recreates ban6 without timeouts.
	deleteRule(t, b, chainPrerouting, "drop-ban4")
	deleteRule(t, b, chainPrerouting, "drop-ban6")
	deleteRule(t, b, chainInput, "jump-trap")
	deleteRule(t, b, chainTrap, "return-lo")
	c, err := b.conn()
	if err != nil {
		t.Fatal(err)
	}
	c.DelSet(&nft.Set{Table: b.table, Name: setBan6})
	wrong := &nft.Set{Table: b.table, Name: setBan6, KeyType: nft.TypeIP6Addr, ID: 99}
	if err := c.AddSet(wrong, []nft.SetElement{{Key: keyOf(netip.MustParseAddr("fd00:77::5"))}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}

	// A restarted daemon's Prepare, before its SetTrap: the ban rules and
	// ban6 are repaired; the trap's chain, which it cannot know, is as
	// it was found, and its jump (deleted) stays off.
	b2 := l.backend()
	if err := b2.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := rules(t, b2, chainInput); !slices.Equal(got, tags(inputRules(false))) {
		t.Errorf("input after Prepare: %v, want %v", got, tags(inputRules(false)))
	}
	if got, _ := rules(t, b2, chainPrerouting); !slices.Equal(got, wantPre) {
		t.Errorf("prerouting after Prepare: %v, want %v", got, wantPre)
	}
	wantLeft(t, b2, setBan6, netip.MustParseAddr("fd00:77::5"), 0)
	if e := elems(t, b2, setBan4)[a]; e.Timeout != timeout {
		t.Errorf("ban4's %v after Prepare: timeout %v, was %v: rewritten", a, e.Timeout, timeout)
	}
	if err := b2.Block(ctx, block.Ban{Addr: netip.MustParseAddr("fd00:77::6"), Until: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	wantLeft(t, b2, setBan6, netip.MustParseAddr("fd00:77::6"), time.Minute)

	// The Backend that installed the trap repairs all of it.
	if err := b.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	gotPre, preHandles := rules(t, b, chainPrerouting)
	gotInput, inputHandles := rules(t, b, chainInput)
	gotTrap, trapHandles := rules(t, b, chainTrap)
	if !slices.Equal(gotPre, wantPre) || !slices.Equal(gotInput, wantInput) || !slices.Equal(gotTrap, wantTrap) {
		t.Errorf("after Prepare with the trap known:\nprerouting %v\nwant       %v\ninput %v\nwant  %v\ntrap %v\nwant %v",
			gotPre, wantPre, gotInput, wantInput, gotTrap, wantTrap)
	}
	// Nothing to repair: nothing rewritten, by Prepare nor by the same
	// SetTrap again.
	if err := b.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}
	if _, h := rules(t, b, chainInput); !slices.Equal(h, inputHandles) {
		t.Errorf("input rewritten by a Prepare with nothing to repair: handles %v, were %v", h, inputHandles)
	}
	if _, h := rules(t, b, chainPrerouting); !slices.Equal(h, preHandles) {
		t.Errorf("prerouting rewritten by a Prepare with nothing to repair: handles %v, were %v", h, preHandles)
	}
	if _, h := rules(t, b, chainTrap); !slices.Equal(h, trapHandles) {
		t.Errorf("trap rewritten by the same SetTrap: handles %v, were %v", h, trapHandles)
	}
	if e := elems(t, b, setBan4)[a]; e.Timeout != timeout {
		t.Errorf("ban4's %v after the repairs: timeout %v, was %v: rewritten", a, e.Timeout, timeout)
	}
}

// TestKernelErrors: what the backend refuses, and says why.
func TestKernelErrors(t *testing.T) {
	l := newLab(t, "victim")
	b := l.backend()
	ctx := context.Background()
	if err := b.SetTrap(ctx, block.Trap{Size: -1}); err == nil {
		t.Error("SetTrap with a negative size: no error")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Block(cancelled, block.Ban{Addr: netip.MustParseAddr("198.51.100.66")}); !errors.Is(err, context.Canceled) {
		t.Errorf("Block with a cancelled context: %v", err)
	}
	err := b.Sync(ctx, []block.Ban{{Addr: netip.MustParseAddr("198.51.100.66")}, {}})
	if err == nil {
		t.Error("Sync with an invalid address: no error")
	}
	if got := mustList(t, b); !slices.Equal(got, addrs("198.51.100.66")) {
		t.Errorf("Sync with an invalid address synced %v, want the valid one", got)
	}
	if _, err := New(Options{NetNS: -1}); err == nil {
		t.Error("New with a negative descriptor: no error")
	}
	if got := fmt.Sprint(b); got != "nftables: table inet scanwarden" {
		t.Errorf("String: %q", got)
	}

	// Block's kept socket: Block still works after a failure on it (the
	// table deleted under it: the add fails, the table is made again and
	// the add retried; that the failed socket is dropped, fd numbers
	// cannot show), and after Close, which drops it.
	if err := b.Block(ctx, block.Ban{Addr: netip.MustParseAddr("198.51.100.70")}); err != nil {
		t.Fatal(err)
	}
	kept := b.sock.fd
	if kept < 0 {
		t.Fatal("Block kept no socket")
	}
	c, err := b.conn()
	if err != nil {
		t.Fatal(err)
	}
	c.DelTable(b.table)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := b.Block(ctx, block.Ban{Addr: netip.MustParseAddr("198.51.100.71")}); err != nil {
		t.Fatalf("Block after the table was deleted: %v", err)
	}
	if b.sock.fd < 0 {
		t.Error("no socket kept after the retried add")
	}
	b.Close()
	if b.sock.fd >= 0 {
		t.Error("Close kept the socket")
	}
	if err := b.Block(ctx, block.Ban{Addr: netip.MustParseAddr("198.51.100.72")}); err != nil {
		t.Fatalf("Block after Close: %v", err)
	}
	if got, want := mustList(t, b), addrs("198.51.100.71", "198.51.100.72"); !slices.Equal(got, want) {
		t.Errorf("List: %v, want %v", got, want)
	}
}
