package iptables

import (
	"slices"
	"testing"
)

// The fake's counters are where iptables -v -S prints them (seen on
// iptables v1.8.9, nf_tables and legacy): before the target, or at the end
// of a rule without one; a quoted comment holding " -j " is not a target.
func TestFakeListWithCounters(t *testing.T) {
	f := NewFake()
	must(t, f.NewChain(TableFilter, "X"))
	must(t, f.Append(TableFilter, "X", "-s", "198.51.100.7", "-m", "comment", "--comment", "a -j b", "-j", "DROP"))
	must(t, f.Append(TableFilter, "X", "-p", "tcp", "-m", "set", "--match-set", "s", "src"))
	must(t, f.Append(TableFilter, "X", "-m", "set", "--match-set", "s", "src", "-j", "SET", "--add-set", "t", "src", "--exist"))
	must(t, f.Append(TableFilter, "X", "-g", "X"))
	got, err := f.ListWithCounters(TableFilter, "X")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"-N X",
		`-A X -s 198.51.100.7/32 -m comment --comment "a -j b" -c 0 0 -j DROP`,
		"-A X -p tcp -m set --match-set s src -c 0 0",
		"-A X -m set --match-set s src -c 0 0 -j SET --add-set t src --exist",
		"-A X -c 0 0 -g X",
	}
	if !slices.Equal(got, want) {
		t.Errorf("ListWithCounters:\n%q\nwant\n%q", got, want)
	}
	if got, _ := f.ListWithCounters(TableFilter, ChainInput); !slices.Equal(got, []string{"-P INPUT ACCEPT"}) {
		t.Errorf("ListWithCounters(INPUT) = %q", got)
	}
	_, err = f.ListWithCounters(TableFilter, "NOPE")
	wantErr(t, "ListWithCounters(NOPE)", err, "No chain/target/match by that name")
}
