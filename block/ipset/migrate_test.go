package ipset

// The move from the layout of earlier versions (SCANWARDEN-SETS in the
// filter table, jumped to from INPUT, jumping on to SCANWARDEN-TRAP) to
// the raw table's, over the fakes.

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/iptables"
)

// legacyJump is the jump from filter INPUT that earlier versions wrote.
var legacyJump = []string{"-m", "comment", "--comment", comment, "-j", string(ChainSets)}

// toLegacy turns the IPv4 rules a Backend wrote into those of an earlier
// version: the raw table's chain and jump go, and the filter table gets
// ChainSets with the drops (and, when ChainTrap is there, the jump on to
// it), jumped to from INPUT's first rule instead of ChainTrap.
func (e *env) toLegacy() {
	e.t.Helper()
	f := e.v4
	e.must("legacy", f.Delete(iptables.TableFilter, iptables.ChainInput, banShowSpec(e.b.fams[0])...))
	e.must("legacy", f.Delete(iptables.TableRaw, iptables.ChainPrerouting, jumpSpec...))
	e.must("legacy", f.ClearChain(iptables.TableRaw, ChainSets))
	e.must("legacy", f.DeleteChain(iptables.TableRaw, ChainSets))
	e.must("legacy", f.NewChain(iptables.TableFilter, ChainSets))
	for _, r := range setsRules(e.b.fams[0]) {
		e.must("legacy", f.Append(iptables.TableFilter, ChainSets, r...))
	}
	if ok, _ := f.ChainExists(iptables.TableFilter, ChainTrap); ok {
		e.must("legacy", f.Delete(iptables.TableFilter, iptables.ChainInput, trapJumpSpec...))
		e.must("legacy", f.Append(iptables.TableFilter, ChainSets, trapJumpSpec...))
	}
	e.must("legacy", f.Insert(iptables.TableFilter, iptables.ChainInput, 1, legacyJump...))
}

// guarded is a Runner over a Fake that checks, after every call that
// changes the firewall, that the IPv4 ban and trap sets are still matched
// on the way in (by ChainSets of the raw table, reached from PREROUTING,
// or of the filter table, reached from INPUT) and, with catch, that a
// probe addressed to the host still reaches the trap's catch (ChainTrap
// reached from INPUT, directly or through the filter table's ChainSets).
// Each call after which one is not is a lapse.
type guarded struct {
	*iptables.Fake
	catch  bool
	lapses []string
}

// jumps reports whether chain of table has a rule that jumps to target.
func (g *guarded) jumps(table iptables.Table, chain, target iptables.Chain) bool {
	return slices.ContainsFunc(g.Dump(table), func(l string) bool {
		spec, ok := iptables.RuleOf(l, chain)
		return ok && targets(spec, target)
	})
}

// drops reports whether table's ChainSets drops both IPv4 sets.
func (g *guarded) drops(table iptables.Table) bool {
	lines := g.Dump(table)
	for _, set := range []string{SetBan4, SetTrap4} {
		if !slices.Contains(lines, "-A "+string(ChainSets)+" "+strings.Join(setDrop(set), " ")) {
			return false
		}
	}
	return true
}

func (g *guarded) check(op string, err error) error {
	if !(g.jumps(iptables.TableRaw, iptables.ChainPrerouting, ChainSets) && g.drops(iptables.TableRaw)) &&
		!(g.jumps(iptables.TableFilter, iptables.ChainInput, ChainSets) && g.drops(iptables.TableFilter)) {
		g.lapses = append(g.lapses, "the ban and trap sets are not matched after "+op)
	}
	catch := g.jumps(iptables.TableFilter, iptables.ChainInput, ChainTrap) ||
		(g.jumps(iptables.TableFilter, iptables.ChainInput, ChainSets) && g.jumps(iptables.TableFilter, ChainSets, ChainTrap))
	if g.catch && !catch {
		g.lapses = append(g.lapses, "the trap's catch is not reached after "+op)
	}
	return err
}

func (g *guarded) NewChain(t iptables.Table, c iptables.Chain) error {
	return g.check(fmt.Sprint("NewChain ", t, c), g.Fake.NewChain(t, c))
}

func (g *guarded) ClearChain(t iptables.Table, c iptables.Chain) error {
	return g.check(fmt.Sprint("ClearChain ", t, c), g.Fake.ClearChain(t, c))
}

func (g *guarded) DeleteChain(t iptables.Table, c iptables.Chain) error {
	return g.check(fmt.Sprint("DeleteChain ", t, c), g.Fake.DeleteChain(t, c))
}

func (g *guarded) Insert(t iptables.Table, c iptables.Chain, pos int, spec ...string) error {
	return g.check(fmt.Sprint("Insert ", t, c, spec), g.Fake.Insert(t, c, pos, spec...))
}

func (g *guarded) Append(t iptables.Table, c iptables.Chain, spec ...string) error {
	return g.check(fmt.Sprint("Append ", t, c, spec), g.Fake.Append(t, c, spec...))
}

func (g *guarded) Delete(t iptables.Table, c iptables.Chain, spec ...string) error {
	return g.check(fmt.Sprint("Delete ", t, c, spec), g.Fake.Delete(t, c, spec...))
}

// restart returns a new Backend over e's sets and e.v4 seen through g.
func (e *env) restart(g *guarded) *Backend {
	e.t.Helper()
	b, err := New(Options{V4: g, Now: func() time.Time { return e.now }, sets: e.sets})
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// TestMigrateEarlierLayout: a restarted daemon's Prepare, which does not
// know the trap yet, on the rules of an earlier version with the trap on,
// moves the drops to the raw table and jumps to the catch from INPUT,
// then removes the old chain, without a moment at which the sets are not
// matched or the catch not reached; its SetTrap then changes no rule; a
// Prepare again changes nothing.
func TestMigrateEarlierLayout(t *testing.T) {
	e := newEnv(t, false)
	tr := block.Trap{TCP: []uint16{22}, UDP: []uint16{53}, Hold: 5 * time.Second, Size: 100}
	e.must("SetTrap", e.b.SetTrap(ctx, tr))
	e.must("Block", e.b.Block(ctx, ban(a4, time.Hour)))
	e.toLegacy()
	e.wantDump("the earlier layout", e.v4, slices.Concat(
		[]string{"-N SCANWARDEN-TRAP", "-N SCANWARDEN-SETS", "-A INPUT " + strings.Join(legacyJump, " ")},
		trapLines("5"),
		[]string{banDrop4, trpDrop4, "-A SCANWARDEN-SETS " + strings.Join(trapJumpSpec, " ")})...)

	g := &guarded{Fake: e.v4, catch: true}
	b := e.restart(g)
	e.must("Prepare", b.Prepare(ctx))
	if len(g.lapses) > 0 {
		t.Errorf("the move left gaps:\n%s", strings.Join(g.lapses, "\n"))
	}
	e.wantDump("moved", e.v4, withTrap("5")...)
	e.wantContent("moved", SetBan4, "198.51.100.7 3600")
	changes(e.v4)
	e.must("SetTrap", b.SetTrap(ctx, tr))
	e.must("Prepare", b.Prepare(ctx))
	if c := changes(e.v4); len(c) > 0 {
		t.Errorf("SetTrap and Prepare after the move changed rules: %q", c)
	}
}

// TestMigrateEarlierLayoutSetTrap: SetTrap on an earlier version's rules
// gives the same layout; with the trap off in the earlier layout, Prepare
// puts no jump to the catch.
func TestMigrateEarlierLayoutSetTrap(t *testing.T) {
	e := newEnv(t, false)
	tr := block.Trap{TCP: []uint16{22}, UDP: []uint16{53}, Hold: 5 * time.Second, Size: 100}
	e.must("SetTrap", e.b.SetTrap(ctx, tr))
	e.toLegacy()
	g := &guarded{Fake: e.v4, catch: true}
	b := e.restart(g)
	e.must("SetTrap", b.SetTrap(ctx, tr))
	if len(g.lapses) > 0 {
		t.Errorf("the move left gaps:\n%s", strings.Join(g.lapses, "\n"))
	}
	e.wantDump("moved by SetTrap", e.v4, withTrap("5")...)

	e = newEnv(t, false)
	e.must("Prepare", e.b.Prepare(ctx))
	e.toLegacy()
	g = &guarded{Fake: e.v4}
	e.must("Prepare", e.restart(g).Prepare(ctx))
	if len(g.lapses) > 0 {
		t.Errorf("the move left gaps:\n%s", strings.Join(g.lapses, "\n"))
	}
	e.wantDump("moved without a trap", e.v4, prepared...)
}

// TestFlushEarlierLayout: Flush removes an earlier version's chains and
// jumps as well as the raw table's, and the sets.
func TestFlushEarlierLayout(t *testing.T) {
	e := newEnv(t, false)
	e.must("SetTrap", e.b.SetTrap(ctx, block.Trap{TCP: []uint16{22}, Hold: 5 * time.Second}))
	e.toLegacy()
	e.must("Flush", e.restart(&guarded{Fake: e.v4}).Flush(ctx))
	e.wantDump("Flush", e.v4)
	if n := e.sets.names(); len(n) > 0 {
		t.Errorf("sets after Flush: %q", n)
	}
	// both layouts at once (a move cut short)
	e.must("SetTrap", e.b.SetTrap(ctx, block.Trap{TCP: []uint16{22}, Hold: 5 * time.Second}))
	e.must("legacy", e.v4.NewChain(iptables.TableFilter, ChainSets))
	e.must("legacy", e.v4.Append(iptables.TableFilter, ChainSets, setDrop(SetBan4)...))
	e.must("legacy", e.v4.Append(iptables.TableFilter, ChainSets, trapJumpSpec...))
	e.must("legacy", e.v4.Insert(iptables.TableFilter, iptables.ChainInput, 1, legacyJump...))
	e.must("Flush", e.b.Flush(ctx))
	e.wantDump("Flush of both", e.v4)
}
