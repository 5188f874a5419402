package iptables

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Fake is an in-memory Runner that behaves like iptables for the
// operations of Runner, errors included: a missing table or chain, an
// existing chain created again, a rule deleted that is not there, a chain
// deleted while it has rules or is the target of a rule, a built-in chain
// deleted, an insertion position out of range, a jump to a target that
// does not exist. It holds the tables filter, nat, mangle, raw and
// security with their built-in chains (policy ACCEPT).
//
// Rules are compared argument by argument, after the one normalisation
// iptables makes that matters here: an address of -s or -d is written as
// a masked prefix (198.51.100.7 is 198.51.100.7/32). Write rules the way
// iptables -S prints them and the fake agrees with the kernel.
//
// Calls records every call, and SetFailure makes chosen calls fail, for
// tests of what a caller does then. A Fake is safe for concurrent use.
type Fake struct {
	mu     sync.Mutex
	tables map[Table]*fakeTable
	calls  []FakeCall
	fail   func(FakeCall) error
}

// FakeCall is one call made to a Fake.
type FakeCall struct {
	Op    string // the Runner method: "ChainExists", "Append", ...
	Table Table
	Chain Chain
	Pos   int      // Insert's position; 0 otherwise
	Args  []string // the rulespec, as given
}

// String writes the call as an iptables command line would read:
// "Append filter SCANWARDEN -s 198.51.100.7/32 -j DROP".
func (c FakeCall) String() string {
	s := []string{c.Op, string(c.Table), string(c.Chain)}
	if c.Op == "Insert" {
		s = append(s, strconv.Itoa(c.Pos))
	}
	for _, a := range c.Args {
		s = append(s, quoteArg(a))
	}
	return strings.Join(s, " ")
}

type fakeTable struct {
	chains map[Chain]*fakeChain
	order  []Chain // built-in chains, then user chains in creation order
}

type fakeChain struct {
	builtin bool
	rules   [][]string
}

// builtinChains are the chains each table is born with.
var builtinChains = map[Table][]Chain{
	"filter":   {"INPUT", "FORWARD", "OUTPUT"},
	"nat":      {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle":   {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"raw":      {"PREROUTING", "OUTPUT"},
	"security": {"INPUT", "FORWARD", "OUTPUT"},
}

// standardTargets are targets that are not chains: verdicts and the
// common target extensions. Any other -j or -g must name a chain.
var standardTargets = map[string]bool{
	"ACCEPT": true, "DROP": true, "RETURN": true, "QUEUE": true, "NFQUEUE": true,
	"REJECT": true, "LOG": true, "NFLOG": true, "MARK": true, "CONNMARK": true,
	"CT": true, "TRACE": true, "AUDIT": true, "CHECKSUM": true, "CLASSIFY": true,
	"DSCP": true, "TCPMSS": true, "TEE": true, "SNAT": true, "DNAT": true,
	"MASQUERADE": true, "REDIRECT": true, "NOTRACK": true, "SET": true,
}

// maxChainName is the longest chain name iptables takes (XT_EXTENSION_MAXNAMELEN - 1).
const maxChainName = 28

// NewFake returns an empty in-memory firewall: every table with its
// built-in chains, no rules, no user chains.
func NewFake() *Fake {
	f := &Fake{tables: map[Table]*fakeTable{}}
	for t, cs := range builtinChains {
		ft := &fakeTable{chains: map[Chain]*fakeChain{}}
		for _, c := range cs {
			ft.chains[c] = &fakeChain{builtin: true}
			ft.order = append(ft.order, c)
		}
		f.tables[t] = ft
	}
	return f
}

// SetFailure makes every later call for which fn returns an error fail
// with that error, changing nothing; nil fn removes it. The failed call is
// still recorded by Calls.
func (f *Fake) SetFailure(fn func(FakeCall) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fn
}

// Calls returns the calls made so far, oldest first.
func (f *Fake) Calls() []FakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// ResetCalls forgets the calls made so far.
func (f *Fake) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// Dump returns table as iptables -t TABLE -S prints it: the policies of
// the built-in chains, the user chains ("-N"), then every chain's rules.
// It panics on an unknown table (a test's mistake).
func (f *Fake) Dump(table Table) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tables[table]
	if t == nil {
		panic(fmt.Sprintf("iptables.Fake.Dump: no table %q", table))
	}
	var out []string
	for _, c := range t.order {
		if t.chains[c].builtin {
			out = append(out, "-P "+string(c)+" ACCEPT")
		}
	}
	for _, c := range t.order {
		if !t.chains[c].builtin {
			out = append(out, "-N "+string(c))
		}
	}
	for _, c := range t.order {
		for _, r := range t.chains[c].rules {
			out = append(out, ruleLine(c, r))
		}
	}
	return out
}

// begin records a call and returns the table it is about, or an error.
// The caller holds f.mu.
func (f *Fake) begin(c FakeCall) (*fakeTable, error) {
	c.Args = slices.Clone(c.Args)
	f.calls = append(f.calls, c)
	if f.fail != nil {
		if err := f.fail(c); err != nil {
			return nil, err
		}
	}
	t := f.tables[c.Table]
	if t == nil {
		return nil, f.errorf(c, "can't initialize iptables table `%s': Table does not exist (do you need to insmod?)", c.Table)
	}
	return t, nil
}

// errorf is the error of a call, worded as iptables words it.
func (f *Fake) errorf(c FakeCall, format string, a ...any) error {
	args := []string{"iptables", "-t", string(c.Table)}
	switch c.Op {
	case "ChainExists", "List":
		args = append(args, "-S", string(c.Chain))
	case "NewChain":
		args = append(args, "-N", string(c.Chain))
	case "ClearChain":
		args = append(args, "-F", string(c.Chain))
	case "DeleteChain":
		args = append(args, "-X", string(c.Chain))
	case "Exists":
		args = append(args, "-C", string(c.Chain))
	case "Insert":
		args = append(args, "-I", string(c.Chain), strconv.Itoa(c.Pos))
	case "Append":
		args = append(args, "-A", string(c.Chain))
	case "Delete":
		args = append(args, "-D", string(c.Chain))
	}
	for _, a := range c.Args {
		args = append(args, quoteArg(a))
	}
	return fmt.Errorf("fake %s: %s", strings.Join(args, " "), fmt.Sprintf(format, a...))
}

const (
	errNoChain = "iptables: No chain/target/match by that name."
	errNoRule  = "iptables: Bad rule (does a matching rule exist in that chain?)."
)

// ChainExists reports whether chain exists in table; (false, nil) when not.
func (f *Fake) ChainExists(table Table, chain Chain) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, err := f.begin(FakeCall{Op: "ChainExists", Table: table, Chain: chain})
	if err != nil {
		return false, err
	}
	return t.chains[chain] != nil, nil
}

// NewChain creates an empty user chain; it fails when one of that name
// exists or the name is not one iptables takes.
func (f *Fake) NewChain(table Table, chain Chain) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := FakeCall{Op: "NewChain", Table: table, Chain: chain}
	t, err := f.begin(c)
	if err != nil {
		return err
	}
	if t.chains[chain] != nil {
		return f.errorf(c, "iptables: Chain already exists.")
	}
	if chain == "" || len(chain) > maxChainName || chain[0] == '-' || strings.ContainsAny(string(chain), " \t\n!") ||
		standardTargets[string(chain)] {
		return f.errorf(c, "Invalid chain name `%s'", chain)
	}
	t.chains[chain] = &fakeChain{}
	t.order = append(t.order, chain)
	return nil
}

// ClearChain removes every rule of chain, creating it when missing.
func (f *Fake) ClearChain(table Table, chain Chain) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := FakeCall{Op: "ClearChain", Table: table, Chain: chain}
	t, err := f.begin(c)
	if err != nil {
		return err
	}
	if ch := t.chains[chain]; ch != nil {
		ch.rules = nil
		return nil
	}
	if chain == "" || len(chain) > maxChainName || chain[0] == '-' || strings.ContainsAny(string(chain), " \t\n!") {
		return f.errorf(c, "Invalid chain name `%s'", chain)
	}
	t.chains[chain] = &fakeChain{}
	t.order = append(t.order, chain)
	return nil
}

// DeleteChain deletes an empty, unreferenced user chain.
func (f *Fake) DeleteChain(table Table, chain Chain) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := FakeCall{Op: "DeleteChain", Table: table, Chain: chain}
	t, err := f.begin(c)
	if err != nil {
		return err
	}
	ch := t.chains[chain]
	switch {
	case ch == nil:
		return f.errorf(c, errNoChain)
	case ch.builtin:
		return f.errorf(c, "iptables: Invalid argument. Run `dmesg' for more information.")
	case len(ch.rules) > 0:
		return f.errorf(c, "iptables: Directory not empty.")
	case t.references(chain) > 0:
		return f.errorf(c, "iptables: Too many links.")
	}
	delete(t.chains, chain)
	t.order = slices.DeleteFunc(t.order, func(x Chain) bool { return x == chain })
	return nil
}

// Exists reports whether chain has a rule equal to rulespec; a missing
// chain is (false, nil).
func (f *Fake) Exists(table Table, chain Chain, rulespec ...string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := FakeCall{Op: "Exists", Table: table, Chain: chain, Args: rulespec}
	t, err := f.begin(c)
	if err != nil {
		return false, err
	}
	ch := t.chains[chain]
	if ch == nil {
		return false, nil
	}
	spec, err := f.canonical(c, t, rulespec)
	if err != nil {
		return false, err
	}
	return ch.find(spec) >= 0, nil
}

// Insert puts the rule at pos (1-based) of chain.
func (f *Fake) Insert(table Table, chain Chain, pos int, rulespec ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := FakeCall{Op: "Insert", Table: table, Chain: chain, Pos: pos, Args: rulespec}
	t, err := f.begin(c)
	if err != nil {
		return err
	}
	ch := t.chains[chain]
	if ch == nil {
		return f.errorf(c, errNoChain)
	}
	if pos < 1 {
		return f.errorf(c, "Invalid rule number `%d'", pos)
	}
	if pos > len(ch.rules)+1 {
		return f.errorf(c, "iptables: Index of insertion too big.")
	}
	spec, err := f.canonical(c, t, rulespec)
	if err != nil {
		return err
	}
	ch.rules = slices.Insert(ch.rules, pos-1, spec)
	return nil
}

// Append adds the rule at the end of chain.
func (f *Fake) Append(table Table, chain Chain, rulespec ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := FakeCall{Op: "Append", Table: table, Chain: chain, Args: rulespec}
	t, err := f.begin(c)
	if err != nil {
		return err
	}
	ch := t.chains[chain]
	if ch == nil {
		return f.errorf(c, errNoChain)
	}
	spec, err := f.canonical(c, t, rulespec)
	if err != nil {
		return err
	}
	ch.rules = append(ch.rules, spec)
	return nil
}

// Delete removes the first rule of chain equal to rulespec.
func (f *Fake) Delete(table Table, chain Chain, rulespec ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := FakeCall{Op: "Delete", Table: table, Chain: chain, Args: rulespec}
	t, err := f.begin(c)
	if err != nil {
		return err
	}
	ch := t.chains[chain]
	if ch == nil {
		// iptables -D on a missing chain says what -C says.
		return f.errorf(c, errNoRule)
	}
	spec, err := f.canonical(c, t, rulespec)
	if err != nil {
		return err
	}
	i := ch.find(spec)
	if i < 0 {
		return f.errorf(c, errNoRule)
	}
	ch.rules = slices.Delete(ch.rules, i, i+1)
	return nil
}

// List returns chain as iptables -S CHAIN prints it.
func (f *Fake) List(table Table, chain Chain) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := FakeCall{Op: "List", Table: table, Chain: chain}
	t, err := f.begin(c)
	if err != nil {
		return nil, err
	}
	ch := t.chains[chain]
	if ch == nil {
		return nil, f.errorf(c, errNoChain)
	}
	out := make([]string, 0, 1+len(ch.rules))
	if ch.builtin {
		out = append(out, "-P "+string(chain)+" ACCEPT")
	} else {
		out = append(out, "-N "+string(chain))
	}
	for _, r := range ch.rules {
		out = append(out, ruleLine(chain, r))
	}
	return out, nil
}

// canonical checks a rulespec (its jump target exists) and returns it
// with addresses written as iptables prints them.
func (f *Fake) canonical(c FakeCall, t *fakeTable, spec []string) ([]string, error) {
	out := slices.Clone(spec)
	for i := 0; i < len(out); i++ {
		switch out[i] {
		case "-s", "--source", "-d", "--destination":
			if i+1 >= len(out) {
				return nil, f.errorf(c, "option %q requires an argument", out[i])
			}
			p, err := parseHost(out[i+1])
			if err != nil {
				return nil, f.errorf(c, "host/network `%s' not found", out[i+1])
			}
			switch out[i] {
			case "--source":
				out[i] = "-s"
			case "--destination":
				out[i] = "-d"
			}
			out[i+1] = p.String()
			i++
		case "-j", "--jump", "-g", "--goto":
			if i+1 >= len(out) {
				return nil, f.errorf(c, "option %q requires an argument", out[i])
			}
			target := out[i+1]
			// A target is a verdict or extension, or a user chain of
			// the table (never a built-in one).
			if ch := t.chains[Chain(target)]; !standardTargets[target] && (ch == nil || ch.builtin) {
				return nil, f.errorf(c, "Couldn't load target `%s':No such file or directory", target)
			}
			switch out[i] {
			case "--jump":
				out[i] = "-j"
			case "--goto":
				out[i] = "-g"
			}
			i++
		}
	}
	return out, nil
}

// parseHost reads an address or prefix the way iptables does for -s and
// -d: a bare address is a whole-address prefix, a prefix is masked.
func parseHost(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, err
	}
	return p.Masked(), nil
}

// find returns the index of the first rule equal to spec, or -1.
func (c *fakeChain) find(spec []string) int {
	return slices.IndexFunc(c.rules, func(r []string) bool { return slices.Equal(r, spec) })
}

// references counts the rules of t that jump or go to chain.
func (t *fakeTable) references(chain Chain) int {
	n := 0
	for _, ch := range t.chains {
		for _, r := range ch.rules {
			for i := 0; i+1 < len(r); i++ {
				if (r[i] == "-j" || r[i] == "-g") && r[i+1] == string(chain) {
					n++
				}
			}
		}
	}
	return n
}

// ruleLine writes a rule as iptables -S does: "-A CHAIN ARGS...".
func ruleLine(chain Chain, spec []string) string {
	s := "-A " + string(chain)
	for _, a := range spec {
		s += " " + quoteArg(a)
	}
	return s
}
