package ipset

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/iptables"
)

const (
	// ChainSets is the backend's chain in the raw table of each family,
	// jumped to by the first rule of raw PREROUTING: it drops the sources
	// in the ban and trap sets before the routing decision (so what the
	// host forwards or DNATs too) and before connection tracking. (The
	// iptables backend's chain is SCANWARDEN; the two never share.)
	ChainSets iptables.Chain = "SCANWARDEN-SETS"
	// ChainTrap holds the kernel trap's catch, in the filter table,
	// jumped to by the first rule of INPUT while a trap is enabled: it
	// sees only packets addressed to this host, after DNAT.
	ChainTrap iptables.Chain = "SCANWARDEN-TRAP"

	// comment marks every rule the backend writes.
	comment = "scanwarden"
	// overflowComment marks the trap's overflow rules, whose packet
	// counters TrapOverflows reads.
	overflowComment = "scanwarden-trap-overflow"
)

// Where the chains are hooked, and where earlier versions hooked them.
const (
	// setsTable and setsHook: ChainSets is in the raw table, reached
	// from PREROUTING (priority -300: before conntrack at -200 and DNAT
	// at -100), so that a banned or held source is dropped whatever its
	// packets are addressed to, at no conntrack entry.
	setsTable = iptables.TableRaw
	setsHook  = iptables.ChainPrerouting
	// trapTable and trapHook: ChainTrap is in the filter table, reached
	// from INPUT, so that only a probe addressed to this host, after
	// DNAT, is caught: a probe forwarded to a host behind this one, or
	// to a port published to such a host, is answered there.
	trapTable = iptables.TableFilter
	trapHook  = iptables.ChainInput
	// showTable and showHook: banShowSpec is in the filter table's
	// INPUT, where `iptables -S` shows it.
	showTable = iptables.TableFilter
	showHook  = iptables.ChainInput
	// legacyTable: earlier versions kept ChainSets in the filter table,
	// jumped to from INPUT, and jumped from it on to ChainTrap. Prepare
	// and SetTrap remove it once the raw table's chain and the jump to
	// ChainTrap from INPUT are in place; Flush removes it.
	legacyTable = iptables.TableFilter
)

// Every rulespec below is written as iptables -S prints it, so that a
// listed chain can be compared with what it should hold.

// jumpSpec is raw PREROUTING's rule that sends every packet through
// ChainSets, but those on loopback (the host's own traffic, from
// addresses that are never blocked).
var jumpSpec = []string{"!", "-i", "lo", "-m", "comment", "--comment", comment, "-j", string(ChainSets)}

// trapJumpSpec is filter INPUT's rule that sends packets on to
// ChainTrap (and, in earlier versions, ChainSets' last rule).
var trapJumpSpec = []string{"-m", "comment", "--comment", comment, "-j", string(ChainTrap)}

// banShowComment is the comment of the rule that shows the bans in the
// filter table (banShowSpec).
const banShowComment = "scanwarden: bans (dropped in raw PREROUTING first)"

// banShowSpec is filter INPUT's rule that drops the sources of fam's ban
// set, as iptables -S shows: the one rule an administrator who blocked
// with `iptables -I INPUT -s ADDR -j DROP` looks for there (plain
// iptables -S lists the filter table, not raw). The drop that counts is
// ChainSets' in the raw table, before routing and conntrack, so this one
// matches nothing but what bypasses raw PREROUTING's jump; it exempts
// loopback as that jump does. It is written with the others (Prepare,
// SetTrap, a family's first Block), kept once, first in INPUT when it is
// put in, and removed by Flush.
func banShowSpec(fam *family) []string {
	return []string{"!", "-i", "lo", "-m", "set", "--match-set", fam.ban, "src", "-m", "comment", "--comment", banShowComment, "-j", "DROP"}
}

// setDrop drops the packets whose source is in set.
func setDrop(set string) []string {
	return []string{"-m", "set", "--match-set", set, "src", "-m", "comment", "--comment", comment, "-j", "DROP"}
}

// setsRules is what ChainSets of fam holds: the drops of the ban and trap
// sets.
func setsRules(fam *family) [][]string {
	return [][]string{setDrop(fam.ban), setDrop(fam.trap)}
}

// catchVerdict is the target of a caught packet once its source is held
// (or the trap set was full): DROP, but RETURN when c lets it go on to the
// host.
func catchVerdict(c block.TrapCatch) string {
	if !c.Drops() {
		return "RETURN"
	}
	return "DROP"
}

// catchMatch is the match of catch c, as iptables -S prints it.
func catchMatch(c block.TrapCatch) []string {
	switch c {
	case block.CatchTCP:
		return []string{"-p", "tcp", "-m", "tcp", "!", "--tcp-flags", "ACK", "ACK", "-m", "set", "--match-set", SetTCP, "dst"}
	case block.CatchUDP:
		return []string{"-p", "udp", "-m", "set", "--match-set", SetUDP, "dst"}
	case block.CatchStealth:
		return []string{"-p", "tcp", "-m", "tcp", "--tcp-flags", "SYN,RST,ACK", "NONE"}
	case block.CatchACK:
		return []string{"-p", "tcp", "-m", "tcp", "--tcp-flags", "SYN,RST,ACK", "ACK", "-m", "conntrack", "--ctstate", "INVALID,NEW",
			"-m", "set", "--match-set", SetTCP, "dst"}
	}
	panic("ipset: unknown catch " + string(c))
}

// overflowSpec is the rule of ChainTrap reached by a packet of catch c
// that the trap set refused (full): it counts the packet and drops it
// (lets it through, for block.CatchACK).
func overflowSpec(c block.TrapCatch) []string {
	return append(catchMatch(c), "-m", "comment", "--comment", overflowComment, "-j", catchVerdict(c))
}

// timeoutSeconds is an element timeout for d: whole seconds, rounded up,
// at least 1; 0 (permanent) for 0 and for anything beyond maxElemTimeout,
// which the kernel would cut short.
func timeoutSeconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	s := (d + time.Second - 1) / time.Second
	if s > maxElemTimeout {
		return 0
	}
	return uint32(s)
}

// holdSeconds is the element timeout of a trap hold d: whole seconds,
// rounded up, from 1 to maxElemTimeout, so that a trap element always has
// a timeout (never 0, which would be permanent).
func holdSeconds(d time.Duration) uint32 {
	s := (max(d, 0) + time.Second - 1) / time.Second
	return uint32(min(max(s, 1), maxElemTimeout))
}

// trapRules is what ChainTrap of fam holds for trap t: loopback, the
// exempt sources and the spared ones (see Release) return; then, for
// each catch t has armed (see block.TrapCatches), a caught packet adds
// its source to the trap set (with the timeout holdSeconds(t.Hold)) and
// is dropped when the source is then in the set (returns, for
// block.CatchACK: the packet goes on to the host), and is counted and
// dropped (returns) when it is not (the set was full).
func trapRules(fam *family, t block.Trap) [][]string {
	r := [][]string{
		{"-i", "lo", "-m", "comment", "--comment", comment, "-j", "RETURN"},
		{"-m", "set", "--match-set", fam.nevr, "src", "-m", "comment", "--comment", comment, "-j", "RETURN"},
		{"-m", "set", "--match-set", fam.spared, "src", "-m", "comment", "--comment", comment, "-j", "RETURN"},
	}
	hold := strconv.FormatUint(uint64(holdSeconds(t.Hold)), 10)
	for _, c := range block.TrapCatches {
		if !t.Armed(c) {
			continue
		}
		add := append(catchMatch(c), "-m", "comment", "--comment", comment, "-j", "SET", "--add-set", fam.trap, "src", "--exist", "--timeout", hold)
		r = append(r, add,
			append(catchMatch(c), "-m", "set", "--match-set", fam.trap, "src", "-m", "comment", "--comment", comment, "-j", catchVerdict(c)),
			overflowSpec(c))
	}
	return r
}

// chainRules lists chain of table and returns its rules as rulespecs,
// and whether the chain exists.
func chainRules(r iptables.Runner, table iptables.Table, chain iptables.Chain) ([][]string, bool, error) {
	ok, err := r.ChainExists(table, chain)
	if err != nil || !ok {
		return nil, false, err
	}
	lines, err := r.List(table, chain)
	if err != nil {
		return nil, false, fmt.Errorf("listing %s of %s: %w", chain, table, err)
	}
	var out [][]string
	for _, l := range lines {
		if spec, ok := iptables.RuleOf(l, chain); ok {
			out = append(out, spec)
		}
	}
	return out, true, nil
}

// syncChain makes chain of table (created when missing) hold exactly
// want, in order, with the fewest changes and no moment without a wanted
// rule: missing rules are inserted where they belong (before a stale rule
// they replace, such as a trap rule with another timeout), then the rules
// that are not wanted deleted. When the chain still differs (a wanted
// rule twice, or rules out of order) it is cleared and written again.
func syncChain(r iptables.Runner, table iptables.Table, chain iptables.Chain, want [][]string) error {
	have, ok, err := chainRules(r, table, chain)
	if err != nil {
		return err
	}
	if !ok {
		if err := r.NewChain(table, chain); err != nil {
			return fmt.Errorf("creating chain %s in %s: %w", chain, table, err)
		}
	}
	if slices.EqualFunc(have, want, slices.Equal) {
		return nil
	}
	wanted := func(spec []string) bool {
		return slices.ContainsFunc(want, func(w []string) bool { return slices.Equal(w, spec) })
	}
	j := 0
	for _, w := range want {
		for j < len(have) && !wanted(have[j]) {
			j++
		}
		if j < len(have) && slices.Equal(have[j], w) {
			j++
			continue
		}
		if err := r.Insert(table, chain, j+1, w...); err != nil {
			return fmt.Errorf("inserting into %s of %s: %w", chain, table, err)
		}
		have = slices.Insert(have, j, w)
		j++
	}
	// iptables -D deletes the first copy of a rule: for a rule that is
	// not wanted, that is always one to delete.
	for _, h := range have {
		if !wanted(h) {
			if err := r.Delete(table, chain, h...); err != nil {
				return fmt.Errorf("deleting from %s of %s: %w", chain, table, err)
			}
		}
	}
	if !slices.EqualFunc(slices.DeleteFunc(have, func(h []string) bool { return !wanted(h) }), want, slices.Equal) {
		return rewriteChain(r, table, chain, want)
	}
	return nil
}

// rewriteChain clears chain of table and appends want.
func rewriteChain(r iptables.Runner, table iptables.Table, chain iptables.Chain, want [][]string) error {
	if err := r.ClearChain(table, chain); err != nil {
		return fmt.Errorf("clearing %s of %s: %w", chain, table, err)
	}
	for _, w := range want {
		if err := r.Append(table, chain, w...); err != nil {
			return fmt.Errorf("appending to %s of %s: %w", chain, table, err)
		}
	}
	return nil
}

// ensureJump makes the built-in chain hook of table hold exactly one
// spec (a jump, or banShowSpec): inserted first when missing, copies but
// the last deleted. An existing one is not moved (an administrator may
// have put rules above it on purpose).
func ensureJump(r iptables.Runner, table iptables.Table, hook iptables.Chain, spec []string) error {
	rules, _, err := chainRules(r, table, hook)
	if err != nil {
		return err
	}
	n := 0
	for _, s := range rules {
		if slices.Equal(s, spec) {
			n++
		}
	}
	target := spec[len(spec)-1]
	if n == 0 {
		if err := r.Insert(table, hook, 1, spec...); err != nil {
			return fmt.Errorf("inserting the rule of %s %s to %s: %w", table, hook, target, err)
		}
	}
	for ; n > 1; n-- {
		if err := r.Delete(table, hook, spec...); err != nil {
			return fmt.Errorf("deleting a duplicate rule of %s %s to %s: %w", table, hook, target, err)
		}
	}
	return nil
}

// removeRule deletes every copy of spec from chain of table; a missing
// chain or rule is nil.
func removeRule(r iptables.Runner, table iptables.Table, chain iptables.Chain, spec []string) error {
	rules, _, err := chainRules(r, table, chain)
	if err != nil {
		return err
	}
	for _, s := range rules {
		if slices.Equal(s, spec) {
			if err := r.Delete(table, chain, spec...); err != nil {
				return fmt.Errorf("deleting from %s of %s: %w", chain, table, err)
			}
		}
	}
	return nil
}

// removeChain deletes every rule of the chains from (of table) that jumps
// or goes to chain (whoever wrote it), then the chain's rules and the
// chain. A missing chain is nil.
func removeChain(r iptables.Runner, table iptables.Table, chain iptables.Chain, from ...iptables.Chain) error {
	for _, f := range from {
		if f == chain {
			continue
		}
		rules, _, err := chainRules(r, table, f)
		if err != nil {
			return err
		}
		for _, spec := range rules {
			if targets(spec, chain) {
				if err := r.Delete(table, f, spec...); err != nil {
					return fmt.Errorf("deleting the jump from %s to %s of %s: %w", f, chain, table, err)
				}
			}
		}
	}
	ok, err := r.ChainExists(table, chain)
	if err != nil || !ok {
		return err
	}
	if err := r.ClearChain(table, chain); err != nil {
		return fmt.Errorf("clearing %s of %s: %w", chain, table, err)
	}
	if err := r.DeleteChain(table, chain); err != nil {
		return fmt.Errorf("deleting chain %s of %s (does a rule of another chain still jump to it?): %w", chain, table, err)
	}
	return nil
}

// targets reports whether spec jumps or goes to chain.
func targets(spec []string, chain iptables.Chain) bool {
	for i := 0; i+1 < len(spec); i++ {
		switch spec[i] {
		case "-j", "--jump", "-g", "--goto":
			if spec[i+1] == string(chain) {
				return true
			}
		}
	}
	return false
}

// overflowCount sums the packet counters of the overflow rules in lines,
// the output of iptables -v -S ChainTrap.
func overflowCount(lines []string) (uint64, error) {
	var n uint64
	for _, l := range lines {
		spec, ok := iptables.RuleOf(l, ChainTrap)
		if !ok {
			continue
		}
		i := slices.Index(spec, "-c")
		if i < 0 || i+2 >= len(spec) {
			continue
		}
		pkts, err := strconv.ParseUint(spec[i+1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("reading the counters of %q: %w", l, err)
		}
		spec = slices.Delete(spec, i, i+3)
		if slices.ContainsFunc(block.TrapCatches, func(c block.TrapCatch) bool { return slices.Equal(spec, overflowSpec(c)) }) {
			n += pkts
		}
	}
	return n, nil
}
