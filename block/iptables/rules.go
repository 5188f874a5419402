package iptables

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// comment marks every rule scanwarden writes (-m comment --comment
// scanwarden), so that an administrator reading iptables -S sees whose
// they are. It needs no quoting in iptables -S output.
const comment = "scanwarden"

// Where the backend's chain is, and where earlier versions' was.
const (
	// ownTable and ownHook: ChainScanwarden is in the raw table, jumped
	// to from the first rule of its PREROUTING chain, so that a banned
	// source is dropped whether its packets are addressed to this host
	// or forwarded (a router, published container ports, bridged VMs with
	// br_netfilter), before DNAT, and before connection tracking: its
	// packets cost no conntrack entry.
	ownTable = TableRaw
	ownHook  = ChainPrerouting
	// legacyTable and legacyHook: where versions before that kept
	// ChainScanwarden (filter INPUT: packets addressed to this host
	// only). The first Block, Prepare and Sync move its rules into the
	// raw chain, then remove it; Flush removes it too.
	legacyTable = TableFilter
	legacyHook  = ChainInput
)

// jumpSpec is the rule of raw PREROUTING that sends packets through
// ChainScanwarden: every packet but those on loopback (the host's own
// traffic, from addresses that are never blocked).
var jumpSpec = []string{"!", "-i", "lo", "-m", "comment", "--comment", comment, "-j", string(ChainScanwarden)}

// dropTail is what follows "-s ADDR/LEN" in a DROP rule of ChainScanwarden.
var dropTail = []string{"-m", "comment", "--comment", comment, "-j", "DROP"}

// dropSpec is the rule of ChainScanwarden that drops everything from a.
func dropSpec(a netip.Addr) []string {
	return append([]string{"-s", netip.PrefixFrom(a, a.BitLen()).String()}, dropTail...)
}

// normalize returns the address a rule for a is written with, and its
// family: IPv4-mapped IPv6 addresses are IPv4 (that is how the kernel sees
// such a source), and a zone is dropped (rules have none).
func normalize(a netip.Addr) (netip.Addr, Family, error) {
	if !a.IsValid() {
		return a, 0, fmt.Errorf("invalid address")
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a, IPv4, nil
	}
	return a, IPv6, nil
}

// RuleOf splits a line of iptables -S output for chain into its rulespec:
// ok is false for lines that are not "-A chain ..." (policies, chain
// declarations, warnings) or cannot be read.
func RuleOf(line string, chain Chain) (spec []string, ok bool) {
	f, err := splitRule(line)
	if err != nil || len(f) < 2 || f[0] != "-A" || f[1] != string(chain) {
		return nil, false
	}
	return f[2:], true
}

// dropAddr returns the address of a rulespec of ChainScanwarden when it is
// exactly a DROP rule scanwarden writes (a whole-address source, our
// comment, nothing else); ok is false for anything else.
func dropAddr(spec []string) (netip.Addr, bool) {
	if len(spec) != 2+len(dropTail) || spec[0] != "-s" || !slices.Equal(spec[2:], dropTail) {
		return netip.Addr{}, false
	}
	p, err := netip.ParsePrefix(spec[1])
	if err != nil || p.Bits() != p.Addr().BitLen() || p.Addr().Zone() != "" {
		return netip.Addr{}, false
	}
	return p.Addr(), true
}

// isJump reports whether rulespec sends packets to ChainScanwarden (-j or
// -g), whoever wrote it.
func isJump(spec []string) bool {
	for i := 0; i+1 < len(spec); i++ {
		switch spec[i] {
		case "-j", "--jump", "-g", "--goto":
			if spec[i+1] == string(ChainScanwarden) {
				return true
			}
		}
	}
	return false
}

// splitRule splits a line of iptables -S output into arguments, undoing
// iptables' quoting: a string option (a comment, a log prefix) with
// characters other than letters, digits, '_' and '-' is printed in double
// quotes, with double quotes, backslashes and single quotes escaped by a
// backslash.
func splitRule(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inArg, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case quoted && c == '"':
			quoted = false
		case quoted:
			cur.WriteByte(c)
		case c == '"':
			quoted, inArg = true, true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inArg {
				out = append(out, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote in %q", line)
	}
	if inArg {
		out = append(out, cur.String())
	}
	return out, nil
}

// quoteArg writes an argument the way iptables -S prints a string option
// such as a comment: in double quotes, with double quotes, backslashes and
// single quotes escaped, when it is empty or holds a blank or one of
// those. (iptables quotes a few more
// characters in string options, but never an address, a port or a chain
// name; splitRule reads either.)
func quoteArg(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n\r\"\\'") {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c == '\'' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}
