package command

import "path"

// NativeKillRoute reports whether a KILL_ROUTE template only adds a rule
// dropping or rejecting everything from $TARGET$ in the filter table's
// INPUT chain with iptables or ip6tables, so that scanwarden's own
// iptables backend (which blocks IPv4 and IPv6 alike, and removes its
// rules again) can stand in for running it. It is true exactly when the
// template parses and is
//
//	[/sbin/|/usr/sbin/|/bin/|/usr/bin/]iptables|ip6tables ARGS
//
// where ARGS are, in any order: one -I/--insert INPUT [rule number] or
// -A/--append INPUT; one -s/--source/--src $TARGET$ (the whole word); one
// -j/--jump DROP or REJECT; optionally -w/--wait [seconds] and -t/--table
// filter. Anything else (another program, chain, table or target,
// another match such as -p or -i, a negation, an iptables in another
// directory or iptables-legacy/-nft named explicitly) is false, and the
// command is run as written.
func NativeKillRoute(tmpl string) (native bool) {
	t, err := ParseTemplate("KILL_ROUTE", tmpl)
	if err != nil {
		return false
	}
	dir, base := path.Split(t.Program())
	if base != "iptables" && base != "ip6tables" {
		return false
	}
	switch dir {
	case "", "/sbin/", "/usr/sbin/", "/bin/", "/usr/bin/":
	default:
		return false
	}
	args := make([]string, len(t.words)-1)
	isTarget := make([]bool, len(args))
	for i, w := range t.words[1:] {
		if len(w) == 1 && w[0].ph == phTarget {
			isTarget[i] = true
			continue
		}
		for _, p := range w {
			if p.ph != literal {
				return false // $PORT$, $MODE$ or $TARGET$ inside a word
			}
			args[i] += p.lit
		}
	}
	var chain, source, jump bool
	for i := 0; i < len(args); i++ {
		next := func() (string, bool) {
			if i+1 >= len(args) || isTarget[i+1] {
				return "", false
			}
			i++
			return args[i], true
		}
		switch args[i] {
		case "-w", "--wait":
			if i+1 < len(args) && !isTarget[i+1] && isDecimal(args[i+1]) {
				i++
			}
		case "-t", "--table":
			if v, ok := next(); !ok || v != "filter" {
				return false
			}
		case "-I", "--insert", "-A", "--append":
			insert := args[i] == "-I" || args[i] == "--insert"
			if v, ok := next(); chain || !ok || v != "INPUT" {
				return false
			}
			chain = true
			if insert && i+1 < len(args) && !isTarget[i+1] && isDecimal(args[i+1]) {
				i++
			}
		case "-s", "--source", "--src":
			if source || i+1 >= len(args) || !isTarget[i+1] {
				return false
			}
			source = true
			i++
		case "-j", "--jump":
			if v, ok := next(); jump || !ok || v != "DROP" && v != "REJECT" {
				return false
			}
			jump = true
		default:
			return false
		}
	}
	return chain && source && jump
}

// isDecimal reports whether s is a non-empty string of ASCII digits.
func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
