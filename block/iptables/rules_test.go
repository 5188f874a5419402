package iptables

import (
	"net/netip"
	"slices"
	"testing"
)

func TestSplitRule(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"-A INPUT -j DROP", []string{"-A", "INPUT", "-j", "DROP"}},
		{"  -A  INPUT\t-j DROP  ", []string{"-A", "INPUT", "-j", "DROP"}},
		{`-A INPUT -m comment --comment "scan warden" -j DROP`, []string{"-A", "INPUT", "-m", "comment", "--comment", "scan warden", "-j", "DROP"}},
		{`-A INPUT -m comment --comment "a \"b\" \\ \'c\'" -j LOG`, []string{"-A", "INPUT", "-m", "comment", "--comment", `a "b" \ 'c'`, "-j", "LOG"}},
		{`-A INPUT -m comment --comment "" -j LOG`, []string{"-A", "INPUT", "-m", "comment", "--comment", "", "-j", "LOG"}},
		{"", nil},
	} {
		got, err := splitRule(tc.line)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("splitRule(%q) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
	if _, err := splitRule(`-A INPUT --comment "open`); err == nil {
		t.Error("splitRule of an unterminated quote: no error")
	}
}

func TestQuoteArgRoundTrip(t *testing.T) {
	for _, s := range []string{"scanwarden", "198.51.100.7/32", "", "a b", `a "b"`, `back\slash`, "it's", "tab\there"} {
		got, err := splitRule("x " + quoteArg(s) + " y")
		if err != nil || !slices.Equal(got, []string{"x", s, "y"}) {
			t.Errorf("quoteArg(%q) = %s reads back as %q, %v", s, quoteArg(s), got, err)
		}
	}
	if quoteArg("scanwarden") != "scanwarden" || quoteArg("fd00:77::1/128") != "fd00:77::1/128" {
		t.Error("quoteArg quoted a plain argument")
	}
}

func TestDropAddr(t *testing.T) {
	for _, tc := range []struct {
		line string
		want string // "" for not ours
	}{
		{"-A SCANWARDEN -s 198.51.100.7/32 -m comment --comment scanwarden -j DROP", "198.51.100.7"},
		{"-A SCANWARDEN -s fd00:77::7/128 -m comment --comment scanwarden -j DROP", "fd00:77::7"},
		{`-A SCANWARDEN -s 198.51.100.7/32 -m comment --comment "scanwarden" -j DROP`, "198.51.100.7"},
		{"-A SCANWARDEN -s 198.51.100.0/24 -m comment --comment scanwarden -j DROP", ""},
		{"-A SCANWARDEN -s fd00:77::/64 -m comment --comment scanwarden -j DROP", ""},
		{"-A SCANWARDEN -s 198.51.100.7/32 -j DROP", ""},
		{"-A SCANWARDEN -s 198.51.100.7/32 -m comment --comment other -j DROP", ""},
		{"-A SCANWARDEN -s 198.51.100.7/32 -m comment --comment scanwarden -j REJECT", ""},
		{"-A SCANWARDEN -s 198.51.100.7/32 -p tcp -m comment --comment scanwarden -j DROP", ""},
		{"-A SCANWARDEN ! -s 198.51.100.7/32 -m comment --comment scanwarden -j DROP", ""},
		{"-A SCANWARDEN -d 198.51.100.7/32 -m comment --comment scanwarden -j DROP", ""},
		{"-A SCANWARDEN -s nonsense/32 -m comment --comment scanwarden -j DROP", ""},
		{"-A INPUT -s 198.51.100.7/32 -m comment --comment scanwarden -j DROP", ""}, // another chain
		{"-N SCANWARDEN", ""},
		{"# Warning: iptables-legacy tables present, use iptables-legacy to see them", ""},
	} {
		var got string
		if spec, ok := RuleOf(tc.line, ChainScanwarden); ok {
			if a, ok := dropAddr(spec); ok {
				got = a.String()
			}
		}
		if got != tc.want {
			t.Errorf("%q: address %q, want %q", tc.line, got, tc.want)
		}
	}
	// What Block writes is what List reads.
	for _, a := range []netip.Addr{a4, a6} {
		got, ok := dropAddr(dropSpec(a))
		if !ok || got != a {
			t.Errorf("dropAddr(dropSpec(%v)) = %v, %v", a, got, ok)
		}
	}
}

func TestIsJump(t *testing.T) {
	for line, want := range map[string]bool{
		"-A INPUT -m comment --comment scanwarden -j SCANWARDEN": true,
		"-A INPUT -j SCANWARDEN":                                 true,
		"-A INPUT -i eth0 -g SCANWARDEN":                         true,
		"-A INPUT -j SCANWARDEN2":                                false,
		"-A INPUT -m comment --comment SCANWARDEN -j ACCEPT":     false,
		"-A INPUT -j DROP":                                       false,
	} {
		spec, ok := RuleOf(line, ChainInput)
		if !ok || isJump(spec) != want {
			t.Errorf("isJump(%q) = %v, want %v", line, isJump(spec), want)
		}
	}
}

func TestFamilyString(t *testing.T) {
	if IPv4.String() != "IPv4" || IPv6.String() != "IPv6" || Family(9).String() != "Family(9)" {
		t.Error(IPv4, IPv6, Family(9))
	}
}
