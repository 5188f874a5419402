package nftables

// Unit tests of the table's layout and of the repair plan, without a
// kernel.

import (
	"slices"
	"strings"
	"testing"
	"time"

	nft "github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/scanwarden/scanwarden/block"
)

// TestSparedLayout: each family has a spared set of the trap sets' size,
// with timeouts and without the dynamic flag (only Release writes it),
// and the trap chain returns for a spared source after loopback and the
// exemptions and before any rule that traps or drops.
func TestSparedLayout(t *testing.T) {
	specs := setSpecs(77)
	for _, name := range []string{setSpared4, setSpared6} {
		i := slices.IndexFunc(specs, func(s setSpec) bool { return s.name == name })
		if i < 0 {
			t.Fatalf("no set %s among %v", name, specs)
		}
		s := specs[i]
		if s.size != 77 || !s.timeout() || s.dynamic() || s.interval() {
			t.Errorf("set %s: size %d, timeout %v, dynamic %v, interval %v; want 77, a timeout set, not dynamic",
				name, s.size, s.timeout(), s.dynamic(), s.interval())
		}
	}
	if spareTimeout != block.SpareFor || spareTimeout%time.Millisecond != 0 || spareTimeout < minTimeout {
		t.Errorf("spareTimeout %v: want block.SpareFor (%v), in whole milliseconds", spareTimeout, block.SpareFor)
	}
	rs := trapRules(&block.Trap{TCP: []uint16{22}, UDP: []uint16{53}, Hold: 5 * time.Second})
	var names []string
	for _, r := range rs {
		names = append(names, r.name)
	}
	if want := []string{"return-lo", "return-never4", "return-never6", "return-spared4", "return-spared6"}; !slices.Equal(names[:len(want)], want) {
		t.Errorf("trap chain starts %v, want %v", names, want)
	}
	for _, r := range rs[5:] {
		if strings.HasPrefix(r.name, "return-") {
			t.Errorf("rule %s after the trap rules began", r.name)
		}
	}
	// "ip saddr @spared4 return": a lookup of the source in the family's
	// spared set, then the verdict return
	for _, f := range families {
		r := rs[slices.Index(names, "return-"+f.spared)]
		var set string
		for _, e := range r.exprs {
			if l, ok := e.(*expr.Lookup); ok {
				set = l.SetName
			}
		}
		v, ok := r.exprs[len(r.exprs)-1].(*expr.Verdict)
		if set != f.spared || !ok || v.Kind != expr.VerdictReturn {
			t.Errorf("rule %s looks up %q, ends %v; want a lookup in %s and return", r.name, set, r.exprs[len(r.exprs)-1], f.spared)
		}
	}
}

// oldTable is a snapshot of a table as a version without spared sets
// left it: its other sets right, the trap chain with the rules of t less
// the spared returns, input jumping to it, prerouting dropping. Sets
// named in missing are left out (so that the plan creates them and reads
// nothing).
func oldTable(b *Backend, t *block.Trap, missing ...string) *snapshot {
	snap := &snapshot{exists: true, counter: true, sets: map[string]*nft.Set{},
		chains: map[string]*nft.Chain{chainPrerouting: b.chain(preroutingBase), chainInput: b.chain(inputBase),
			chainTrap: b.trapChain()},
		rules:   map[string][]string{},
		rulesOK: map[string]bool{chainPrerouting: true, chainInput: true, chainTrap: true}}
	for _, s := range setSpecs(uint32(t.Size)) {
		if s.kind != kindSpared && !slices.Contains(missing, s.name) {
			snap.sets[s.name] = s.set(b.table)
		}
	}
	snap.rules[chainPrerouting] = tags(preroutingRules())
	snap.rules[chainInput] = tags(inputRules(true))
	for _, r := range trapRules(t) {
		if !strings.HasPrefix(r.name, "return-spared") {
			snap.rules[chainTrap] = append(snap.rules[chainTrap], r.tag())
		}
	}
	return snap
}

// TestPlanOlderTable: a table of a version without spared sets gets them
// (created, of the trap sets' size) from any Prepare; its trap chain,
// which does not return for spared sources, is left as found by a
// Prepare that does not know the trap, and rewritten by SetTrap; input
// is not touched.
func TestPlanOlderTable(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	trap := &block.Trap{TCP: []uint16{22}, Hold: 5 * time.Second, Size: 32}

	p, err := b.plan(oldTable(b, trap), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !p.created[setSpared4] || !p.created[setSpared6] || len(p.created) != 2 || len(p.rebuilt) != 0 {
		t.Errorf("Prepare of an older table: created %v, rebuilt %v; want the spared sets created alone", p.created, p.rebuilt)
	}
	for _, s := range p.specs {
		if s.kind == kindSpared && s.size != 32 {
			t.Errorf("set %s of size %d, want the trap sets' 32", s.name, s.size)
		}
	}
	if p.rewriteTrap || p.rewriteInput || p.rewritePre || p.upToDate() {
		t.Errorf("Prepare of an older table: rewrite trap %v, input %v, prerouting %v, up to date %v; want the spared sets alone written",
			p.rewriteTrap, p.rewriteInput, p.rewritePre, p.upToDate())
	}

	// SetTrap: the exemption and port sets left out too, so that the plan
	// fills them without reading the kernel
	p, err = b.plan(oldTable(b, trap, setNever4, setNever6, setTCPTraps, setUDPTraps), trap)
	if err != nil {
		t.Fatal(err)
	}
	if !p.rewriteTrap || !slices.Equal(tags(p.trapSpecs), tags(trapRules(trap))) {
		t.Errorf("SetTrap on an older table: rewrite %v, rules %v; want the trap chain rewritten with the spared returns", p.rewriteTrap, tags(p.trapSpecs))
	}
	if p.rewriteInput || p.rewritePre {
		t.Error("SetTrap on an older table rewrote input or prerouting")
	}
}

// inputHookTable is a snapshot of a table as the versions that dropped
// banned sources at the input hook left it: every set right, no
// prerouting chain, input dropping the ban and trap sets' sources and,
// with jump, jumping to the trap chain, which holds the rules of t.
func inputHookTable(b *Backend, t *block.Trap, jump bool) *snapshot {
	snap := &snapshot{exists: true, counter: true, sets: map[string]*nft.Set{},
		chains:  map[string]*nft.Chain{chainInput: b.chain(inputBase), chainTrap: b.trapChain()},
		rules:   map[string][]string{chainTrap: tags(trapRules(t))},
		rulesOK: map[string]bool{chainInput: true, chainTrap: true}}
	for _, s := range setSpecs(uint32(t.Size)) {
		snap.sets[s.name] = s.set(b.table)
	}
	for _, r := range preroutingRules() {
		if strings.HasPrefix(r.name, "drop-") {
			snap.rules[chainInput] = append(snap.rules[chainInput], r.tag())
		}
	}
	if jump {
		snap.rules[chainInput] = append(snap.rules[chainInput], jumpRule().tag())
	}
	return snap
}

// TestPlanInputHookTable: on the table of a version that dropped banned
// sources at the input hook, any Prepare creates the prerouting chain
// with its drops and rewrites input to hold the jump to the trap alone
// (as found: there or not), in the one transaction of the control
// messages; no set is touched, the trap chain is left as it is.
func TestPlanInputHookTable(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	trap := &block.Trap{TCP: []uint16{22}, Hold: 5 * time.Second, Size: 32}
	for _, jump := range []bool{true, false} {
		p, err := b.plan(inputHookTable(b, trap, jump), nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.preOK || !p.rewritePre || !slices.Equal(tags(p.preSpecs), tags(preroutingRules())) {
			t.Errorf("jump %v: prerouting ok %v, rewritten %v with %v; want it made with its rules", jump, p.preOK, p.rewritePre, tags(p.preSpecs))
		}
		if !p.inputOK || !p.rewriteInput || !slices.Equal(tags(p.inputSpecs), tags(inputRules(jump))) {
			t.Errorf("jump %v: input ok %v, rewritten %v with %v; want it kept and rewritten with %v", jump, p.inputOK, p.rewriteInput,
				tags(p.inputSpecs), tags(inputRules(jump)))
		}
		if p.rewriteTrap || !p.trapChainOK || len(p.created)+len(p.rebuilt)+len(p.reset)+len(p.fill) > 0 || p.upToDate() {
			t.Errorf("jump %v: rewrite trap %v, sets created %v rebuilt %v reset %v, %d element messages, up to date %v; want the chains alone written",
				jump, p.rewriteTrap, p.created, p.rebuilt, p.reset, len(p.fill), p.upToDate())
		}
	}
}
