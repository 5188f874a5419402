package iptables

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	goipt "github.com/coreos/go-iptables/iptables"
)

// Table is the name of an iptables table, as given to -t.
type Table string

// Chain is the name of a chain of a table.
type Chain string

const (
	// TableRaw is the table the backend's DROP rules live in: its
	// PREROUTING chain sees every packet that arrives, before the routing
	// decision (so traffic the host forwards or DNATs too) and before
	// connection tracking (raw is at priority -300, conntrack at -200).
	TableRaw Table = "raw"
	// ChainPrerouting is raw's built-in chain of arriving packets: its
	// first rule jumps to ChainScanwarden.
	ChainPrerouting Chain = "PREROUTING"
	// TableFilter is the table of the kernel trap's catch (block/ipset),
	// and the one earlier versions of this backend wrote to.
	TableFilter Table = "filter"
	// ChainInput is filter's built-in chain of packets addressed to this
	// host, after DNAT: the kernel trap's catch hangs there, and earlier
	// versions jumped from it to ChainScanwarden.
	ChainInput Chain = "INPUT"
	// ChainScanwarden is scanwarden's own chain: one DROP rule per blocked
	// source, and nothing of anybody else's.
	ChainScanwarden Chain = "SCANWARDEN"
)

// Family is an address family, which chooses iptables or ip6tables.
type Family int

const (
	// IPv4 is driven by iptables.
	IPv4 Family = 4
	// IPv6 is driven by ip6tables.
	IPv6 Family = 6
)

// String returns "IPv4" or "IPv6".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", int(f))
}

// Tunables of the real runner.
const (
	// xtablesLockWait is how long, in seconds, an iptables command waits
	// for the xtables lock held by another program (iptables --wait N)
	// before failing. Ten seconds rides out a firewall reload by another
	// tool; a holder that never lets go becomes an error naming the
	// command rather than a daemon hung forever (go-iptables' default of
	// 0 waits without end).
	xtablesLockWait = 10
	// saveTimeout bounds each *-save command run to tell legacy from
	// nf_tables: they only read, and take milliseconds on a normal host;
	// one that hangs must not stop the daemon from starting.
	saveTimeout = 10 * time.Second
)

// Runner is the boundary between scanwarden and the iptables commands of
// one address family. Rulespecs are iptables arguments after the chain
// ("-s", "198.51.100.7/32", "-j", "DROP"), written as iptables -S prints
// them. Implementations: NewRunner (the real commands), NewFake (memory).
// Both are safe for concurrent use (each call of the real one is a
// command of its own, and xtables' lock orders them in the kernel).
type Runner interface {
	// ChainExists reports whether chain exists in table; a missing chain
	// is (false, nil), not an error.
	ChainExists(table Table, chain Chain) (bool, error)
	// NewChain creates chain, empty, in table. It fails when the chain
	// already exists.
	NewChain(table Table, chain Chain) error
	// ClearChain removes every rule of chain, creating it (empty) when it
	// does not exist.
	ClearChain(table Table, chain Chain) error
	// DeleteChain deletes a user-defined chain. It fails when the chain
	// does not exist, still has rules, is the target of a rule, or is
	// built in.
	DeleteChain(table Table, chain Chain) error
	// Exists reports whether chain has a rule equal to rulespec. A missing
	// chain is (false, nil), as with iptables -C.
	Exists(table Table, chain Chain, rulespec ...string) (bool, error)
	// Insert puts the rule at position pos of chain (1 is the first). It
	// fails when the chain does not exist, pos is below 1 or beyond the
	// end plus one, or the rule's target does not exist.
	Insert(table Table, chain Chain, pos int, rulespec ...string) error
	// Append adds the rule at the end of chain. It fails when the chain
	// or the rule's target does not exist.
	Append(table Table, chain Chain, rulespec ...string) error
	// Delete removes the first rule of chain equal to rulespec. It fails
	// when there is none, or no such chain.
	Delete(table Table, chain Chain, rulespec ...string) error
	// List returns chain as iptables -S CHAIN prints it: "-P CHAIN POLICY"
	// (built-in) or "-N CHAIN" (user-defined) first, then one "-A CHAIN
	// ..." line per rule in order, arguments with spaces or quotes in
	// double quotes. It fails when the chain does not exist. Other lines
	// (an iptables-nft warning starting with "#") may appear.
	List(table Table, chain Chain) ([]string, error)
}

// NewRunner returns the Runner of family f over the host's iptables
// commands (iptables for IPv4, ip6tables for IPv6), through go-iptables,
// which runs them with --wait so that they queue behind other programs on
// the xtables lock (here for at most xtablesLockWait seconds).
//
// nf_tables or legacy, whichever the host runs: when the legacy tables
// (iptables-legacy-save and ip6tables-legacy-save) hold rules and the
// nf_tables ones (iptables-nft-save, ip6tables-nft-save) hold none, the
// host's firewall is a legacy one and the runner uses iptables-legacy or
// ip6tables-legacy, so that scanwarden's rules sit next to the
// administrator's and show in what they list. Otherwise it uses whatever
// iptables or ip6tables resolves to on $PATH (Debian's alternatives pick
// the nf_tables variant). Both families decide together from the rules of
// both, so that they never end up on different backends. See LegacyInUse.
// A packet must pass both backends, so either way a DROP rule takes
// effect; the choice is about being seen and managed alongside the rest.
func NewRunner(f Family) (Runner, error) {
	legacy, why := detectLegacy()
	r, err := newRunner(f, legacy, why)
	if err != nil {
		return nil, err // not a nil *execRunner in a non-nil Runner
	}
	return r, nil
}

// newRunner builds the runner of f on the legacy binaries when legacy is
// set (and they exist), else on the default ones; why explains the choice.
func newRunner(f Family, legacy bool, why string) (*execRunner, error) {
	proto, cmd := goipt.ProtocolIPv4, "iptables"
	switch f {
	case IPv4:
	case IPv6:
		proto, cmd = goipt.ProtocolIPv6, "ip6tables"
	default:
		return nil, fmt.Errorf("iptables: unknown address family %d", int(f))
	}
	if legacy {
		if _, err := exec.LookPath(cmd + "-legacy"); err == nil {
			cmd += "-legacy"
		} else {
			why += "; but " + cmd + "-legacy is missing, so " + cmd
		}
	}
	path, err := exec.LookPath(cmd)
	if err != nil {
		return nil, err
	}
	ipt, err := goipt.New(goipt.IPFamily(proto), goipt.Path(path), goipt.Timeout(xtablesLockWait))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &execRunner{ipt: ipt, family: f, path: path, why: why}, nil
}

// execRunner is the real Runner: go-iptables running one binary.
type execRunner struct {
	ipt    *goipt.IPTables
	family Family
	path   string
	why    string
}

// String says which binary the runner drives (and what it links to:
// xtables-nft-multi or xtables-legacy-multi), and why:
// "IPv4: /usr/sbin/iptables -> /usr/sbin/xtables-nft-multi v1.8.9 (default: ...)".
func (r *execRunner) String() string {
	bin := r.path
	if real, err := filepath.EvalSymlinks(r.path); err == nil && real != r.path {
		bin += " -> " + real
	}
	v1, v2, v3 := r.ipt.GetIptablesVersion()
	return fmt.Sprintf("%s: %s v%d.%d.%d (%s)", r.family, bin, v1, v2, v3, r.why)
}

func (r *execRunner) ChainExists(t Table, c Chain) (bool, error) {
	return r.ipt.ChainExists(string(t), string(c))
}

func (r *execRunner) NewChain(t Table, c Chain) error { return r.ipt.NewChain(string(t), string(c)) }

func (r *execRunner) ClearChain(t Table, c Chain) error {
	return r.ipt.ClearChain(string(t), string(c))
}

func (r *execRunner) DeleteChain(t Table, c Chain) error {
	return r.ipt.DeleteChain(string(t), string(c))
}

func (r *execRunner) Exists(t Table, c Chain, spec ...string) (bool, error) {
	return r.ipt.Exists(string(t), string(c), spec...)
}

func (r *execRunner) Insert(t Table, c Chain, pos int, spec ...string) error {
	return r.ipt.Insert(string(t), string(c), pos, spec...)
}

func (r *execRunner) Append(t Table, c Chain, spec ...string) error {
	return r.ipt.Append(string(t), string(c), spec...)
}

func (r *execRunner) Delete(t Table, c Chain, spec ...string) error {
	return r.ipt.Delete(string(t), string(c), spec...)
}

func (r *execRunner) List(t Table, c Chain) ([]string, error) {
	return r.ipt.List(string(t), string(c))
}

// LegacyInUse decides between the legacy and the nf_tables iptables from
// what the host has: legacySave is the output of iptables-legacy-save (and
// ip6tables-legacy-save), nftSave that of iptables-nft-save (and
// ip6tables-nft-save). It reports true, use the legacy binaries, when the
// legacy tables hold at least one rule and the nf_tables ones none: the
// host's firewall is then evidently managed with legacy iptables (a
// distribution or tool that never moved). Every other case, both empty
// included, keeps the default. A rule is an "-A" line; table headers,
// chain declarations, comments and COMMIT are not. scanwarden's own rules
// count like any other, so a restart stays on the backend it started on.
func LegacyInUse(legacySave, nftSave string) bool {
	return countRules(legacySave) > 0 && countRules(nftSave) == 0
}

// countRules counts the "-A CHAIN ..." lines of iptables-save output.
func countRules(save string) int {
	n := 0
	for line := range strings.Lines(save) {
		if strings.HasPrefix(strings.TrimSpace(line), "-A ") {
			n++
		}
	}
	return n
}

// detectLegacy runs the four *-save commands and applies LegacyInUse to
// what they printed (nothing for a missing one; what a failing one printed
// before it failed). It returns the decision and a reason for logs.
func detectLegacy() (bool, string) {
	var legacy, nft strings.Builder
	for _, c := range []string{"iptables-legacy-save", "ip6tables-legacy-save"} {
		legacy.WriteString(runSave(c))
	}
	for _, c := range []string{"iptables-nft-save", "ip6tables-nft-save"} {
		nft.WriteString(runSave(c))
	}
	l, n := countRules(legacy.String()), countRules(nft.String())
	if LegacyInUse(legacy.String(), nft.String()) {
		return true, fmt.Sprintf("legacy: %d rules in the legacy tables, none in nf_tables", l)
	}
	return false, fmt.Sprintf("default: %d rules in the legacy tables, %d in nf_tables", l, n)
}

// runSave returns what the save command name printed on standard output:
// "" when it is missing; what it printed before failing or being stopped
// after saveTimeout otherwise.
func runSave(name string) string {
	path, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
	defer cancel()
	// A failed save (a table it cannot read) may still have printed the
	// tables it could: count those.
	out, _ := exec.CommandContext(ctx, path).Output()
	return string(out)
}
