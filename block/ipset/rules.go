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
	// ChainSets is the backend's chain in the filter table of each
	// family, jumped to by INPUT's first rule: it drops the sources in the
	// ban and trap sets and, with a trap, goes on to ChainTrap. (The
	// iptables backend's chain is SCANWARDEN; the two never share.)
	ChainSets iptables.Chain = "SCANWARDEN-SETS"
	// ChainTrap holds the kernel trap's rules.
	ChainTrap iptables.Chain = "SCANWARDEN-TRAP"

	// comment marks every rule the backend writes.
	comment = "scanwarden"
	// overflowComment marks the trap's overflow rules, whose packet
	// counters TrapOverflows reads.
	overflowComment = "scanwarden-trap-overflow"
)

// Every rulespec below is written as iptables -S prints it, so that a
// listed chain can be compared with what it should hold.

// jumpSpec is INPUT's rule that sends every packet through ChainSets.
var jumpSpec = []string{"-m", "comment", "--comment", comment, "-j", string(ChainSets)}

// trapJumpSpec is ChainSets' rule that sends packets on to ChainTrap.
var trapJumpSpec = []string{"-m", "comment", "--comment", comment, "-j", string(ChainTrap)}

// setDrop drops the packets whose source is in set.
func setDrop(set string) []string {
	return []string{"-m", "set", "--match-set", set, "src", "-m", "comment", "--comment", comment, "-j", "DROP"}
}

// setsRules is what ChainSets of fam holds: the drops of the ban and trap
// sets, and the jump to ChainTrap when trap is set.
func setsRules(fam *family, trap bool) [][]string {
	r := [][]string{setDrop(fam.ban), setDrop(fam.trap)}
	if trap {
		r = append(r, trapJumpSpec)
	}
	return r
}

// trapMatch is the match of a first hit of proto: a TCP segment without
// ACK, or a UDP datagram, to a port of the protocol's trap set.
func trapMatch(proto string) []string {
	if proto == "tcp" {
		return []string{"-p", "tcp", "-m", "tcp", "!", "--tcp-flags", "ACK", "ACK", "-m", "set", "--match-set", SetTCP, "dst"}
	}
	return []string{"-p", "udp", "-m", "set", "--match-set", SetUDP, "dst"}
}

// overflowSpec is the rule of ChainTrap reached by a first hit of proto
// that the trap set refused (full): it drops the packet and counts it.
func overflowSpec(proto string) []string {
	return append(trapMatch(proto), "-m", "comment", "--comment", overflowComment, "-j", "DROP")
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
// exempt sources and the spared ones (see Release) return; a first hit of each protocol adds its source to
// the trap set (with the timeout holdSeconds(t.Hold)) and is dropped when
// the source is then in the set, and counted and dropped when it is not
// (the set was full).
func trapRules(fam *family, t block.Trap) [][]string {
	r := [][]string{
		{"-i", "lo", "-m", "comment", "--comment", comment, "-j", "RETURN"},
		{"-m", "set", "--match-set", fam.nevr, "src", "-m", "comment", "--comment", comment, "-j", "RETURN"},
		{"-m", "set", "--match-set", fam.spared, "src", "-m", "comment", "--comment", comment, "-j", "RETURN"},
	}
	hold := strconv.FormatUint(uint64(holdSeconds(t.Hold)), 10)
	for _, proto := range []string{"tcp", "udp"} {
		add := append(trapMatch(proto), "-m", "comment", "--comment", comment, "-j", "SET", "--add-set", fam.trap, "src", "--exist", "--timeout", hold)
		r = append(r, add,
			append(trapMatch(proto), "-m", "set", "--match-set", fam.trap, "src", "-m", "comment", "--comment", comment, "-j", "DROP"),
			overflowSpec(proto))
	}
	return r
}

// chainRules lists chain and returns its rules as rulespecs, and whether
// the chain exists.
func chainRules(r iptables.Runner, chain iptables.Chain) ([][]string, bool, error) {
	ok, err := r.ChainExists(iptables.TableFilter, chain)
	if err != nil || !ok {
		return nil, false, err
	}
	lines, err := r.List(iptables.TableFilter, chain)
	if err != nil {
		return nil, false, fmt.Errorf("listing %s: %w", chain, err)
	}
	var out [][]string
	for _, l := range lines {
		if spec, ok := iptables.RuleOf(l, chain); ok {
			out = append(out, spec)
		}
	}
	return out, true, nil
}

// syncChain makes chain (created when missing) hold exactly want, in
// order, with the fewest changes and no moment without a wanted rule:
// missing rules are inserted where they belong (before a stale rule they
// replace, such as a trap rule with another timeout), then the rules that
// are not wanted deleted. When the chain still differs (a wanted rule
// twice, or rules out of order) it is cleared and written again.
func syncChain(r iptables.Runner, chain iptables.Chain, want [][]string) error {
	have, ok, err := chainRules(r, chain)
	if err != nil {
		return err
	}
	if !ok {
		if err := r.NewChain(iptables.TableFilter, chain); err != nil {
			return fmt.Errorf("creating chain %s: %w", chain, err)
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
		if err := r.Insert(iptables.TableFilter, chain, j+1, w...); err != nil {
			return fmt.Errorf("inserting into %s: %w", chain, err)
		}
		have = slices.Insert(have, j, w)
		j++
	}
	// iptables -D deletes the first copy of a rule: for a rule that is
	// not wanted, that is always one to delete.
	for _, h := range have {
		if !wanted(h) {
			if err := r.Delete(iptables.TableFilter, chain, h...); err != nil {
				return fmt.Errorf("deleting from %s: %w", chain, err)
			}
		}
	}
	if !slices.EqualFunc(slices.DeleteFunc(have, func(h []string) bool { return !wanted(h) }), want, slices.Equal) {
		return rewriteChain(r, chain, want)
	}
	return nil
}

// rewriteChain clears chain and appends want.
func rewriteChain(r iptables.Runner, chain iptables.Chain, want [][]string) error {
	if err := r.ClearChain(iptables.TableFilter, chain); err != nil {
		return fmt.Errorf("clearing %s: %w", chain, err)
	}
	for _, w := range want {
		if err := r.Append(iptables.TableFilter, chain, w...); err != nil {
			return fmt.Errorf("appending to %s: %w", chain, err)
		}
	}
	return nil
}

// ensureJump makes INPUT hold exactly one jumpSpec: inserted first when
// missing, copies but the last deleted. An existing jump is not moved (an
// administrator may have put rules above it on purpose).
func ensureJump(r iptables.Runner) error {
	rules, _, err := chainRules(r, iptables.ChainInput)
	if err != nil {
		return err
	}
	n := 0
	for _, spec := range rules {
		if slices.Equal(spec, jumpSpec) {
			n++
		}
	}
	if n == 0 {
		if err := r.Insert(iptables.TableFilter, iptables.ChainInput, 1, jumpSpec...); err != nil {
			return fmt.Errorf("inserting the jump to %s: %w", ChainSets, err)
		}
	}
	for ; n > 1; n-- {
		if err := r.Delete(iptables.TableFilter, iptables.ChainInput, jumpSpec...); err != nil {
			return fmt.Errorf("deleting a duplicate jump to %s: %w", ChainSets, err)
		}
	}
	return nil
}

// removeChain deletes every rule of INPUT and ChainSets that jumps or goes
// to chain (whoever wrote it), then the chain's rules and the chain. A
// missing chain is nil.
func removeChain(r iptables.Runner, chain iptables.Chain) error {
	for _, from := range []iptables.Chain{iptables.ChainInput, ChainSets} {
		if from == chain {
			continue
		}
		rules, _, err := chainRules(r, from)
		if err != nil {
			return err
		}
		for _, spec := range rules {
			if targets(spec, chain) {
				if err := r.Delete(iptables.TableFilter, from, spec...); err != nil {
					return fmt.Errorf("deleting the jump from %s to %s: %w", from, chain, err)
				}
			}
		}
	}
	ok, err := r.ChainExists(iptables.TableFilter, chain)
	if err != nil || !ok {
		return err
	}
	if err := r.ClearChain(iptables.TableFilter, chain); err != nil {
		return fmt.Errorf("clearing %s: %w", chain, err)
	}
	if err := r.DeleteChain(iptables.TableFilter, chain); err != nil {
		return fmt.Errorf("deleting chain %s (does a rule of another chain still jump to it?): %w", chain, err)
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
		if slices.Equal(spec, overflowSpec("tcp")) || slices.Equal(spec, overflowSpec("udp")) {
			n += pkts
		}
	}
	return n, nil
}
