package iptables

// The move from the layout of earlier versions (SCANWARDEN in the filter
// table, jumped to from INPUT) to the raw table's, over the fake.

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// legacyJump is the jump from filter INPUT that earlier versions wrote.
var legacyJump = []string{"-m", "comment", "--comment", "scanwarden", "-j", "SCANWARDEN"}

// writeLegacy writes an earlier version's layout into f: the chain
// SCANWARDEN in the filter table with a DROP rule per address, jumped to
// from INPUT's first rule.
func writeLegacy(t *testing.T, f *Fake, addrs ...netip.Addr) {
	t.Helper()
	must(t, f.NewChain(legacyTable, ChainScanwarden))
	for _, a := range addrs {
		must(t, f.Append(legacyTable, ChainScanwarden, dropSpec(a)...))
	}
	must(t, f.Insert(legacyTable, legacyHook, 1, legacyJump...))
}

// enforcing is a Runner over a Fake that checks, after every call that
// changes the firewall, that each of addrs is still dropped on its way
// in: by a DROP rule of SCANWARDEN in a table whose hook chain (raw
// PREROUTING, or filter INPUT of the earlier layout) jumps to it. Each
// call after which one is not is a lapse.
type enforcing struct {
	*Fake
	addrs  []netip.Addr
	lapses []string
}

// enforced reports whether a is dropped by table's SCANWARDEN, reached
// from hook.
func (e *enforcing) enforced(table Table, hook Chain, a netip.Addr) bool {
	lines := e.Dump(table)
	jump := slices.ContainsFunc(lines, func(l string) bool {
		spec, ok := RuleOf(l, hook)
		return ok && isJump(spec)
	})
	return jump && slices.Contains(lines, ruleLine(ChainScanwarden, dropSpec(a)))
}

func (e *enforcing) check(op string, err error) error {
	for _, a := range e.addrs {
		if !e.enforced(ownTable, ownHook, a) && !e.enforced(legacyTable, legacyHook, a) {
			e.lapses = append(e.lapses, fmt.Sprintf("%v not dropped after %s", a, op))
		}
	}
	return err
}

func (e *enforcing) NewChain(t Table, c Chain) error {
	return e.check(fmt.Sprint("NewChain ", t, c), e.Fake.NewChain(t, c))
}

func (e *enforcing) ClearChain(t Table, c Chain) error {
	return e.check(fmt.Sprint("ClearChain ", t, c), e.Fake.ClearChain(t, c))
}

func (e *enforcing) DeleteChain(t Table, c Chain) error {
	return e.check(fmt.Sprint("DeleteChain ", t, c), e.Fake.DeleteChain(t, c))
}

func (e *enforcing) Insert(t Table, c Chain, pos int, spec ...string) error {
	return e.check(fmt.Sprint("Insert ", t, c, spec), e.Fake.Insert(t, c, pos, spec...))
}

func (e *enforcing) Append(t Table, c Chain, spec ...string) error {
	return e.check(fmt.Sprint("Append ", t, c, spec), e.Fake.Append(t, c, spec...))
}

func (e *enforcing) Delete(t Table, c Chain, spec ...string) error {
	return e.check(fmt.Sprint("Delete ", t, c, spec), e.Fake.Delete(t, c, spec...))
}

// TestMigrateEarlierLayout: Prepare on a host an earlier version left
// moves scanwarden's rules into the raw table and removes the filter
// chain and its jump, the administrator's rules left alone, without a
// moment at which a blocked source is not dropped; again, it changes
// nothing.
func TestMigrateEarlierLayout(t *testing.T) {
	v4, v6 := NewFake(), NewFake()
	must(t, v4.Append(legacyTable, legacyHook, "-i", "lo", "-j", "ACCEPT"))
	writeLegacy(t, v4, a4, b4)
	// a rule of the administrator's in the old chain: not scanwarden's,
	// not moved, removed with the chain as an earlier Flush removed it
	must(t, v4.Append(legacyTable, ChainScanwarden, "-s", "198.51.100.99/32", "-j", "DROP"))
	writeLegacy(t, v6, a6)
	e4 := &enforcing{Fake: v4, addrs: []netip.Addr{a4, b4}}
	e6 := &enforcing{Fake: v6, addrs: []netip.Addr{a6}}
	b := New(e4, e6)
	must(t, b.Prepare(ctx))
	for _, e := range []*enforcing{e4, e6} {
		if len(e.lapses) > 0 {
			t.Errorf("the move let blocked sources through:\n%s", strings.Join(e.lapses, "\n"))
		}
	}
	wantTables(t, v4, dump("-N SCANWARDEN", jumpLine, dropA4, dropB4), append(slices.Clone(filterPolicies), "-A INPUT -i lo -j ACCEPT"))
	wantDump(t, v6, dump("-N SCANWARDEN", jumpLine, dropA6)...)
	got, err := b.List(ctx)
	must(t, err)
	if want := []netip.Addr{a4, b4, a6}; !slices.Equal(got, want) {
		t.Errorf("List after the move = %v, want %v", got, want)
	}
	v4.ResetCalls()
	must(t, b.Prepare(ctx))
	for _, c := range v4.Calls() {
		if c.Op != "List" && c.Op != "ChainExists" {
			t.Errorf("Prepare after the move wrote: %v", c)
		}
	}
}

// TestBlockMigrates: the first block on a host an earlier version left
// moves its rules too, and adds the new one beside them.
func TestBlockMigrates(t *testing.T) {
	v4 := NewFake()
	writeLegacy(t, v4, a4)
	e := &enforcing{Fake: v4, addrs: []netip.Addr{a4}}
	b := New(e, nil)
	must(t, b.Block(ctx, ban(b4)))
	if len(e.lapses) > 0 {
		t.Errorf("the move let blocked sources through:\n%s", strings.Join(e.lapses, "\n"))
	}
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropA4, dropB4)...)
	// a4, moved, is known: blocking it again is no rule more
	must(t, b.Block(ctx, ban(a4)))
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropA4, dropB4)...)
}

// TestSyncMigrates: Sync on a host an earlier version left moves its
// rules, then keeps only what is wanted; a Sync that wants nothing still
// removes the old layout.
func TestSyncMigrates(t *testing.T) {
	v4 := NewFake()
	writeLegacy(t, v4, a4, c4)
	e := &enforcing{Fake: v4, addrs: []netip.Addr{a4}}
	b := New(e, nil)
	must(t, b.Sync(ctx, bans(b4, a4)))
	if len(e.lapses) > 0 {
		t.Errorf("the move let blocked sources through:\n%s", strings.Join(e.lapses, "\n"))
	}
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropA4, dropB4)...)

	v4 = NewFake()
	writeLegacy(t, v4, a4)
	b = New(v4, nil)
	must(t, b.Sync(ctx, nil))
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine)...)
}

// TestEarlierLayoutListedUnblockedFlushed: before anything moved it (the
// `list`, `unblock` and `flush` commands of an upgraded host whose daemon
// has not restarted yet), List reports the old chain's addresses, Unblock
// deletes from it, and Flush removes both layouts.
func TestEarlierLayoutListedUnblockedFlushed(t *testing.T) {
	v4 := NewFake()
	writeLegacy(t, v4, a4, b4)
	b := New(v4, nil)
	got, err := b.List(ctx)
	must(t, err)
	if want := []netip.Addr{a4, b4}; !slices.Equal(got, want) {
		t.Errorf("List of the old chain = %v, want %v", got, want)
	}
	must(t, b.Unblock(ctx, a4))
	old := []string{"-N SCANWARDEN", "-A INPUT " + strings.Join(legacyJump, " "), dropB4}
	wantTables(t, v4, policies, append(slices.Clone(filterPolicies), old...))

	// both layouts at once (a move that could not finish), and Flush
	v4 = NewFake()
	writeLegacy(t, v4, a4)
	b = New(v4, nil)
	must(t, b.EnsureChain(IPv4))
	writeLegacy(t, v4, b4)
	must(t, b.Flush(ctx))
	wantDump(t, v4, policies...)
}

// TestMigrateFailure: an old chain that cannot be deleted (another
// chain of the administrator's jumps to it) does not fail a block, whose
// rule and the moved ones are in the raw chain; Prepare reports it,
// saying what, and the old chain is emptied of scanwarden's jump.
func TestMigrateFailure(t *testing.T) {
	v4 := NewFake()
	writeLegacy(t, v4, a4)
	must(t, v4.Append(legacyTable, "FORWARD", "-j", "SCANWARDEN"))
	b := New(v4, nil)
	must(t, b.Block(ctx, ban(b4)))
	wantTables(t, v4, dump("-N SCANWARDEN", jumpLine, dropA4, dropB4),
		append(slices.Clone(filterPolicies), "-N SCANWARDEN", "-A FORWARD -j SCANWARDEN"))
	err := b.Prepare(ctx)
	if err == nil || !strings.Contains(err.Error(), "earlier version") || !strings.Contains(err.Error(), "IPv4") {
		t.Errorf("Prepare = %v, want an IPv4 error about the earlier version's chain", err)
	}
	boom := errors.New("boom")
	v4.SetFailure(func(c FakeCall) error {
		if c.Op == "Delete" && c.Table == legacyTable {
			return boom
		}
		return nil
	})
	must(t, v4.Insert(legacyTable, legacyHook, 1, legacyJump...))
	if err := b.Prepare(ctx); !errors.Is(err, boom) {
		t.Errorf("Prepare with a failing delete = %v, want it to wrap the runner's error", err)
	}
}
