package iptables

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// wantErr checks that err is an error whose message contains want.
func wantErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%s = %v, want an error containing %q", what, err, want)
	}
}

func TestFakeChains(t *testing.T) {
	f := NewFake()
	ok, err := f.ChainExists(TableFilter, ChainInput)
	if err != nil || !ok {
		t.Fatalf("ChainExists(INPUT) = %v, %v", ok, err)
	}
	ok, err = f.ChainExists(TableFilter, "NOPE")
	if err != nil || ok {
		t.Fatalf("ChainExists(NOPE) = %v, %v; want false, nil", ok, err)
	}
	_, err = f.ChainExists("bogus", ChainInput)
	wantErr(t, "ChainExists(bogus table)", err, "Table does not exist")

	must(t, f.NewChain(TableFilter, "X"))
	wantErr(t, "NewChain(X) again", f.NewChain(TableFilter, "X"), "Chain already exists")
	wantErr(t, "NewChain(INPUT)", f.NewChain(TableFilter, ChainInput), "Chain already exists")
	wantErr(t, "NewChain(too long)", f.NewChain(TableFilter, Chain(strings.Repeat("A", 29))), "Invalid chain name")
	must(t, f.NewChain(TableFilter, Chain(strings.Repeat("A", 28))))
	// Chains are per table.
	must(t, f.NewChain("nat", "X"))

	wantErr(t, "DeleteChain(missing)", f.DeleteChain(TableFilter, "NOPE"), "No chain/target/match by that name")
	wantErr(t, "DeleteChain(INPUT)", f.DeleteChain(TableFilter, ChainInput), "Invalid argument")
	must(t, f.Append(TableFilter, "X", "-j", "DROP"))
	wantErr(t, "DeleteChain(non-empty)", f.DeleteChain(TableFilter, "X"), "Directory not empty")
	must(t, f.ClearChain(TableFilter, "X"))
	must(t, f.Append(TableFilter, ChainInput, "-p", "tcp", "-g", "X"))
	wantErr(t, "DeleteChain(referenced)", f.DeleteChain(TableFilter, "X"), "Too many links")
	must(t, f.Delete(TableFilter, ChainInput, "-p", "tcp", "-g", "X"))
	must(t, f.DeleteChain(TableFilter, "X"))
	wantErr(t, "DeleteChain(X) again", f.DeleteChain(TableFilter, "X"), "No chain/target/match by that name")
	ok, _ = f.ChainExists("nat", "X")
	if !ok {
		t.Error("deleting filter's X deleted nat's")
	}

	// ClearChain creates a missing chain, as go-iptables' does.
	must(t, f.ClearChain(TableFilter, "Y"))
	if ok, _ := f.ChainExists(TableFilter, "Y"); !ok {
		t.Error("ClearChain(Y) did not create Y")
	}
}

func TestFakeRules(t *testing.T) {
	f := NewFake()
	wantErr(t, "Append to a missing chain", f.Append(TableFilter, "NOPE", "-j", "DROP"), "No chain/target/match")
	wantErr(t, "Insert into a missing chain", f.Insert(TableFilter, "NOPE", 1, "-j", "DROP"), "No chain/target/match")
	wantErr(t, "jump to a missing chain", f.Append(TableFilter, ChainInput, "-j", "NOPE"), "Couldn't load target `NOPE'")
	wantErr(t, "jump to a built-in chain", f.Append(TableFilter, ChainInput, "-j", "OUTPUT"), "Couldn't load target `OUTPUT'")
	wantErr(t, "Delete of a missing rule", f.Delete(TableFilter, ChainInput, "-j", "DROP"), "Bad rule (does a matching rule exist in that chain?)")
	wantErr(t, "Delete in a missing chain", f.Delete(TableFilter, "NOPE", "-j", "DROP"), "Bad rule")
	wantErr(t, "Insert at 0", f.Insert(TableFilter, ChainInput, 0, "-j", "DROP"), "Invalid rule number")
	wantErr(t, "Insert at 2 of an empty chain", f.Insert(TableFilter, ChainInput, 2, "-j", "DROP"), "Index of insertion too big")
	wantErr(t, "bad address", f.Append(TableFilter, ChainInput, "-s", "nonsense", "-j", "DROP"), "host/network `nonsense' not found")
	wantErr(t, "missing argument", f.Append(TableFilter, ChainInput, "-j"), "requires an argument")
	if got := f.Dump(TableFilter); !slices.Equal(got, filterPolicies) {
		t.Fatalf("failed calls changed the table: %q", got)
	}

	must(t, f.Append(TableFilter, ChainInput, "-s", "198.51.100.7", "-j", "ACCEPT"))
	must(t, f.Insert(TableFilter, ChainInput, 1, "--source", "fd00:77::1/64", "--jump", "DROP"))
	must(t, f.Insert(TableFilter, ChainInput, 3, "-m", "comment", "--comment", `a "b" c`, "-j", "LOG"))
	must(t, f.Append(TableFilter, ChainInput, "-s", "198.51.100.7/32", "-j", "ACCEPT")) // a duplicate is allowed
	got, err := f.List(TableFilter, ChainInput)
	must(t, err)
	want := []string{
		"-P INPUT ACCEPT",
		"-A INPUT -s fd00:77::/64 -j DROP",
		"-A INPUT -s 198.51.100.7/32 -j ACCEPT",
		`-A INPUT -m comment --comment "a \"b\" c" -j LOG`,
		"-A INPUT -s 198.51.100.7/32 -j ACCEPT",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("List:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// What List prints reads back as the same rule.
	spec, ok := RuleOf(got[3], ChainInput)
	if !ok {
		t.Fatalf("RuleOf(%q) failed", got[3])
	}
	if ok, err := f.Exists(TableFilter, ChainInput, spec...); !ok || err != nil {
		t.Errorf("Exists(%q) = %v, %v", spec, ok, err)
	}

	for _, spec := range [][]string{
		{"-s", "198.51.100.7", "-j", "ACCEPT"},
		{"-s", "198.51.100.7/32", "-j", "ACCEPT"},
		{"--source", "fd00:77::5/64", "-j", "DROP"},
	} {
		if ok, err := f.Exists(TableFilter, ChainInput, spec...); !ok || err != nil {
			t.Errorf("Exists(%q) = %v, %v; want true", spec, ok, err)
		}
	}
	for _, spec := range [][]string{
		{"-s", "198.51.100.8", "-j", "ACCEPT"},
		{"-s", "198.51.100.7", "-j", "DROP"},
		{"-j", "ACCEPT", "-s", "198.51.100.7"}, // order matters, as in iptables -S
	} {
		if ok, err := f.Exists(TableFilter, ChainInput, spec...); ok || err != nil {
			t.Errorf("Exists(%q) = %v, %v; want false", spec, ok, err)
		}
	}
	if ok, err := f.Exists(TableFilter, "NOPE", "-j", "DROP"); ok || err != nil {
		t.Errorf("Exists in a missing chain = %v, %v; want false, nil", ok, err)
	}

	// Delete removes the first copy only.
	must(t, f.Delete(TableFilter, ChainInput, "-s", "198.51.100.7", "-j", "ACCEPT"))
	got, _ = f.List(TableFilter, ChainInput)
	if len(got) != 4 || got[3] != "-A INPUT -s 198.51.100.7/32 -j ACCEPT" || got[2] == "-A INPUT -s 198.51.100.7/32 -j ACCEPT" {
		t.Errorf("after Delete: %q", got)
	}
	must(t, f.NewChain(TableFilter, "USER"))
	got, _ = f.List(TableFilter, "USER")
	if !slices.Equal(got, []string{"-N USER"}) {
		t.Errorf("List(USER) = %q", got)
	}
	_, err = f.List(TableFilter, "NOPE")
	wantErr(t, "List(NOPE)", err, "No chain/target/match")
}

func TestFakeCallsAndFailures(t *testing.T) {
	f := NewFake()
	must(t, f.Append(TableFilter, ChainInput, "-j", "ACCEPT"))
	_, _ = f.ChainExists(TableFilter, "X")
	got := f.Calls()
	if len(got) != 2 || got[0].String() != "Append filter INPUT -j ACCEPT" || got[1].String() != "ChainExists filter X" {
		t.Fatalf("Calls = %v", got)
	}
	f.ResetCalls()
	if len(f.Calls()) != 0 {
		t.Fatal("ResetCalls kept calls")
	}
	f.SetFailure(func(c FakeCall) error {
		if c.Op == "Insert" {
			return errFake
		}
		return nil
	})
	if err := f.Insert(TableFilter, ChainInput, 1, "-j", "DROP"); err != errFake {
		t.Fatalf("Insert = %v, want the injected error", err)
	}
	if got := f.Dump(TableFilter); len(got) != 4 {
		t.Errorf("a failed Insert changed the table: %q", got)
	}
	if c := f.Calls(); len(c) != 1 || c[0].String() != "Insert filter INPUT 1 -j DROP" {
		t.Errorf("Calls = %v", c)
	}
	f.SetFailure(nil)
	must(t, f.Insert(TableFilter, ChainInput, 1, "-j", "DROP"))
}

type fakeErr string

func (e fakeErr) Error() string { return string(e) }

const errFake = fakeErr("injected")

func TestFakeIsSafeForConcurrentUse(t *testing.T) {
	f := NewFake()
	must(t, f.NewChain(TableFilter, "C"))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				spec := []string{"-s", fmt.Sprintf("198.51.100.%d", 1+i), "-j", "DROP"}
				_ = f.Append(TableFilter, "C", spec...)
				_, _ = f.List(TableFilter, "C")
				_ = f.Delete(TableFilter, "C", spec...)
			}
		}()
	}
	wg.Wait()
	if got, _ := f.List(TableFilter, "C"); len(got) != 1 {
		t.Errorf("after balanced appends and deletes: %q", got)
	}
}
