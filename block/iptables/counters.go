package iptables

// CounterLister is implemented by a Runner that can read the packet and
// byte counters of rules: the real runner (NewRunner) and Fake. A set
// backend reads through it how often a rule was hit (the kernel trap's
// overflow rule).
type CounterLister interface {
	// ListWithCounters returns chain as iptables -v -S CHAIN prints it:
	// the lines of Runner.List, each rule with "-c PACKETS BYTES" before
	// its target ("-A C -s 198.51.100.7/32 -c 3 180 -j DROP"; at the end
	// of a rule without target). It fails when the chain does not exist.
	ListWithCounters(table Table, chain Chain) ([]string, error)
}

var (
	_ CounterLister = (*execRunner)(nil)
	_ CounterLister = (*Fake)(nil)
)

// ListWithCounters runs iptables -t TABLE -v -S CHAIN.
func (r *execRunner) ListWithCounters(t Table, c Chain) ([]string, error) {
	return r.ipt.ListWithCounters(string(t), string(c))
}

// ListWithCounters returns chain as List does, with the counters iptables
// -v -S prints: a Fake counts no packets, so every rule shows "-c 0 0".
// It is recorded by Calls as a "List".
func (f *Fake) ListWithCounters(table Table, chain Chain) ([]string, error) {
	lines, err := f.List(table, chain)
	if err != nil {
		return nil, err
	}
	for i, l := range lines {
		if len(l) > 3 && l[:3] == "-A " {
			lines[i] = withZeroCounters(l)
		}
	}
	return lines, nil
}

// withZeroCounters puts "-c 0 0" into a rule line of List where iptables
// -v -S prints the counters: before the first " -j " or " -g " that is an
// argument of its own (a comment containing it is quoted, and skipped),
// or at the end.
func withZeroCounters(line string) string {
	quoted := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == ' ' && i+3 < len(line) && (line[i+1:i+3] == "-j" || line[i+1:i+3] == "-g") && line[i+3] == ' ':
			return line[:i] + " -c 0 0" + line[i:]
		}
	}
	return line + " -c 0 0"
}
