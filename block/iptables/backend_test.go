package iptables

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/scanwarden/scanwarden/block"
)

var (
	a4  = netip.MustParseAddr("198.51.100.222")
	b4  = netip.MustParseAddr("198.51.100.223")
	c4  = netip.MustParseAddr("198.51.100.224")
	a6  = netip.MustParseAddr("fd00:77::222")
	b6  = netip.MustParseAddr("fd00:77::223")
	m4  = netip.MustParseAddr("::ffff:198.51.100.222") // a4, mapped
	ctx = context.Background()
)

const (
	jumpLine = "-A PREROUTING ! -i lo -m comment --comment scanwarden -j SCANWARDEN"
	dropA4   = "-A SCANWARDEN -s 198.51.100.222/32 -m comment --comment scanwarden -j DROP"
	dropB4   = "-A SCANWARDEN -s 198.51.100.223/32 -m comment --comment scanwarden -j DROP"
	dropC4   = "-A SCANWARDEN -s 198.51.100.224/32 -m comment --comment scanwarden -j DROP"
	dropA6   = "-A SCANWARDEN -s fd00:77::222/128 -m comment --comment scanwarden -j DROP"
	dropB6   = "-A SCANWARDEN -s fd00:77::223/128 -m comment --comment scanwarden -j DROP"
)

// newBackend returns a Backend over two fakes.
func newBackend() (*Backend, *Fake, *Fake) {
	v4, v6 := NewFake(), NewFake()
	return New(v4, v6), v4, v6
}

func ban(a netip.Addr) block.Ban { return block.Ban{Addr: a, Proto: "tcp", Port: 22, Type: "syn"} }

func bans(as ...netip.Addr) []block.Ban {
	var out []block.Ban
	for _, a := range as {
		out = append(out, ban(a))
	}
	return out
}

// must runs a Runner call in a test's set-up.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantDump checks the whole raw table of f, and that the filter table
// holds no rule or chain (see wantTables for tests that put some there).
func wantDump(t *testing.T, f *Fake, want ...string) {
	t.Helper()
	wantTables(t, f, want, filterPolicies)
}

// wantTables checks the whole raw and filter tables of f.
func wantTables(t *testing.T, f *Fake, raw, filter []string) {
	t.Helper()
	if got := f.Dump(TableRaw); !slices.Equal(got, raw) {
		t.Fatalf("raw table:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(raw, "\n"))
	}
	if got := f.Dump(TableFilter); !slices.Equal(got, filter) {
		t.Fatalf("filter table:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(filter, "\n"))
	}
}

var (
	policies       = []string{"-P PREROUTING ACCEPT", "-P OUTPUT ACCEPT"}
	filterPolicies = []string{"-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT"}
)

func dump(lines ...string) []string { return append(slices.Clone(policies), lines...) }

func TestBlockWritesChainJumpAndRule(t *testing.T) {
	b, v4, v6 := newBackend()
	if b.Name() != "iptables" {
		t.Errorf("Name() = %q", b.Name())
	}
	must(t, b.Block(ctx, ban(a4)))
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropA4)...)
	wantDump(t, v6, policies...) // IPv6 untouched by an IPv4 block
	must(t, b.Block(ctx, ban(a6)))
	wantDump(t, v6, dump("-N SCANWARDEN", jumpLine, dropA6)...)
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropA4)...)
}

func TestBlockIsIdempotent(t *testing.T) {
	b, v4, v6 := newBackend()
	for range 3 {
		must(t, b.Block(ctx, ban(a4)))
		must(t, b.Block(ctx, ban(a6)))
	}
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropA4)...)
	wantDump(t, v6, dump("-N SCANWARDEN", jumpLine, dropA6)...)
	// A second Backend over the same firewall (a restart) adds nothing.
	b2 := New(v4, v6)
	must(t, b2.Block(ctx, ban(a4)))
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropA4)...)
}

func TestJumpGoesFirstAboveAdminRules(t *testing.T) {
	b, v4, _ := newBackend()
	must(t, v4.Append(TableRaw, ChainPrerouting, "-m", "state", "--state", "ESTABLISHED,RELATED", "-j", "ACCEPT"))
	must(t, v4.Append(TableRaw, ChainPrerouting, "-p", "tcp", "--dport", "22", "-j", "ACCEPT"))
	must(t, b.Block(ctx, ban(a4)))
	must(t, b.Block(ctx, ban(b4)))
	wantDump(t, v4, dump(
		"-N SCANWARDEN",
		jumpLine,
		"-A PREROUTING -m state --state ESTABLISHED,RELATED -j ACCEPT",
		"-A PREROUTING -p tcp --dport 22 -j ACCEPT",
		dropA4, dropB4)...)
}

func TestEnsureChainRemovesDuplicateJumpsOnly(t *testing.T) {
	b, v4, _ := newBackend()
	must(t, v4.NewChain(TableRaw, ChainScanwarden))
	jump := []string{"!", "-i", "lo", "-m", "comment", "--comment", "scanwarden", "-j", "SCANWARDEN"}
	must(t, v4.Append(TableRaw, ChainPrerouting, jump...))
	must(t, v4.Append(TableRaw, ChainPrerouting, jump...))
	must(t, v4.Append(TableRaw, ChainPrerouting, "-i", "lo", "-j", "ACCEPT"))
	must(t, v4.Append(TableRaw, ChainPrerouting, jump...))
	must(t, b.EnsureChain(IPv4))
	wantDump(t, v4, dump("-N SCANWARDEN", "-A PREROUTING -i lo -j ACCEPT", jumpLine)...)
	// Idempotent: a second call changes nothing, and an existing jump is
	// not moved back above the administrator's rule.
	must(t, b.EnsureChain(IPv4))
	wantDump(t, v4, dump("-N SCANWARDEN", "-A PREROUTING -i lo -j ACCEPT", jumpLine)...)
}

func TestEnsureChainRecreatesWhatWasRemoved(t *testing.T) {
	b, v4, _ := newBackend()
	must(t, b.Block(ctx, ban(a4)))
	// An administrator flushes PREROUTING: Block does not look for the jump
	// every time (it costs an iptables run per block); EnsureChain, which
	// the daemon runs every 30 s and Sync runs on every start, puts it
	// back.
	must(t, v4.ClearChain(TableRaw, ChainPrerouting))
	must(t, b.Block(ctx, ban(b4)))
	must(t, b.EnsureChain(IPv4))
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropA4, dropB4)...)
	// ... and the whole chain, after iptables -F; iptables -X.
	must(t, v4.ClearChain(TableRaw, ChainPrerouting))
	must(t, v4.ClearChain(TableRaw, ChainScanwarden))
	must(t, v4.DeleteChain(TableRaw, ChainScanwarden))
	must(t, b.Block(ctx, ban(b4)))
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropB4)...)
}

func TestUnblock(t *testing.T) {
	b, v4, v6 := newBackend()
	// Nothing blocked, no chain: nil, and nothing created.
	must(t, b.Unblock(ctx, a4))
	must(t, b.Unblock(ctx, a6))
	wantDump(t, v4, policies...)
	wantDump(t, v6, policies...)

	must(t, b.Block(ctx, ban(a4)))
	must(t, b.Block(ctx, ban(b4)))
	must(t, b.Block(ctx, ban(a6)))
	// Two more copies of a4's rule, as a crash or another instance might leave.
	must(t, v4.Append(TableRaw, ChainScanwarden, dropSpec(a4)...))
	must(t, v4.Append(TableRaw, ChainScanwarden, dropSpec(a4)...))
	must(t, b.Unblock(ctx, a4))
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropB4)...)
	must(t, b.Unblock(ctx, a4)) // again: nil
	must(t, b.Unblock(ctx, c4)) // never blocked: nil
	must(t, b.Unblock(ctx, a6))
	wantDump(t, v6, dump("-N SCANWARDEN", jumpLine)...)
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropB4)...)
}

func TestMappedAddressesAreIPv4(t *testing.T) {
	b, v4, v6 := newBackend()
	must(t, b.Block(ctx, ban(m4)))
	must(t, b.Block(ctx, ban(a4)))
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropA4)...)
	wantDump(t, v6, policies...)
	got, err := b.List(ctx)
	must(t, err)
	if !slices.Equal(got, []netip.Addr{a4}) {
		t.Errorf("List = %v, want [%v]", got, a4)
	}
	must(t, b.Sync(ctx, bans(m4, b4)))
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropA4, dropB4)...)
	must(t, b.Unblock(ctx, m4))
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropB4)...)
	wantDump(t, v6, policies...)

	// With no IPv6 runner at all, a mapped address still works.
	v4only := NewFake()
	b = New(v4only, nil)
	must(t, b.Block(ctx, ban(m4)))
	wantDump(t, v4only, dump("-N SCANWARDEN", jumpLine, dropA4)...)
}

func TestZoneIsDropped(t *testing.T) {
	b, _, v6 := newBackend()
	must(t, b.Block(ctx, ban(a6.WithZone("eth0"))))
	wantDump(t, v6, dump("-N SCANWARDEN", jumpLine, dropA6)...)
}

func TestInvalidAddress(t *testing.T) {
	b, v4, v6 := newBackend()
	if err := b.Block(ctx, ban(netip.Addr{})); err == nil || !strings.Contains(err.Error(), "invalid address") {
		t.Errorf("Block(zero Addr) = %v, want an invalid address error", err)
	}
	if err := b.Unblock(ctx, netip.Addr{}); err == nil {
		t.Error("Unblock(zero Addr) = nil, want an error")
	}
	wantDump(t, v4, policies...)
	wantDump(t, v6, policies...)
}

func TestList(t *testing.T) {
	b, v4, v6 := newBackend()
	got, err := b.List(ctx)
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("List without chain = %v, want none", got)
	}
	for _, a := range []netip.Addr{b6, a4, c4, a6} {
		must(t, b.Block(ctx, ban(a)))
	}
	// Rules scanwarden did not write, in its chain and elsewhere: ignored.
	must(t, v4.Append(TableRaw, ChainScanwarden, "-s", "198.51.100.0/24", "-m", "comment", "--comment", "scanwarden", "-j", "DROP"))
	must(t, v4.Append(TableRaw, ChainScanwarden, "-s", "198.51.100.225/32", "-j", "DROP"))
	must(t, v4.Append(TableRaw, ChainScanwarden, "-s", "198.51.100.226/32", "-m", "comment", "--comment", "scan warden", "-j", "DROP"))
	must(t, v4.Append(TableRaw, ChainScanwarden, "-s", "198.51.100.227/32", "-p", "tcp", "-m", "comment", "--comment", "scanwarden", "-j", "DROP"))
	must(t, v4.Append(TableRaw, ChainScanwarden, "-s", "198.51.100.228/32", "-m", "comment", "--comment", "scanwarden", "-j", "ACCEPT"))
	must(t, v4.Append(TableRaw, ChainPrerouting, "-s", "198.51.100.229/32", "-m", "comment", "--comment", "scanwarden", "-j", "DROP"))
	must(t, v6.Append(TableRaw, ChainScanwarden, dropSpec(b6)...)) // a duplicate
	got, err = b.List(ctx)
	must(t, err)
	want := []netip.Addr{a4, c4, a6, b6}
	if !slices.Equal(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}
}

func TestSync(t *testing.T) {
	b, v4, v6 := newBackend()
	must(t, b.Block(ctx, ban(a4)))
	must(t, b.Block(ctx, ban(c4)))
	must(t, b.Block(ctx, ban(a6)))
	// Duplicates of a wanted and of an unwanted address.
	must(t, v4.Append(TableRaw, ChainScanwarden, dropSpec(a4)...))
	must(t, v4.Append(TableRaw, ChainScanwarden, dropSpec(c4)...))
	// An administrator's rule in our chain and in PREROUTING.
	must(t, v4.Append(TableRaw, ChainScanwarden, "-s", "198.51.100.230/32", "-j", "DROP"))
	must(t, v4.Append(TableRaw, ChainPrerouting, "-s", "198.51.100.223/32", "-m", "comment", "--comment", "scanwarden", "-j", "DROP"))
	v4.ResetCalls()
	v6.ResetCalls()

	// want: a4 (present twice), b4 (missing), b6 (missing); c4 and a6 go.
	must(t, b.Sync(ctx, bans(a4, b4, b6, a4)))
	wantDump(t, v4, dump("-N SCANWARDEN",
		jumpLine,
		"-A PREROUTING -s 198.51.100.223/32 -m comment --comment scanwarden -j DROP",
		dropA4,
		"-A SCANWARDEN -s 198.51.100.230/32 -j DROP",
		dropB4)...)
	wantDump(t, v6, dump("-N SCANWARDEN", jumpLine, dropB6)...)
	for _, f := range []*Fake{v4, v6} {
		n := 0
		for _, c := range f.Calls() {
			if c.Op == "List" && c.Chain == ChainScanwarden {
				n++
			}
		}
		if n != 1 {
			t.Errorf("Sync listed %s %d times, want once: %v", ChainScanwarden, n, f.Calls())
		}
	}

	// Again: nothing changes, nothing is written.
	v4.ResetCalls()
	must(t, b.Sync(ctx, bans(b4, a4, b6)))
	for _, c := range v4.Calls() {
		if c.Op != "List" && c.Op != "ChainExists" && c.Op != "Exists" {
			t.Errorf("second Sync wrote: %v", c)
		}
	}

	// Empty want: our rules go, the chain and the administrator's rules stay.
	must(t, b.Sync(ctx, nil))
	wantDump(t, v4, dump("-N SCANWARDEN",
		jumpLine,
		"-A PREROUTING -s 198.51.100.223/32 -m comment --comment scanwarden -j DROP",
		"-A SCANWARDEN -s 198.51.100.230/32 -j DROP")...)
	wantDump(t, v6, dump("-N SCANWARDEN", jumpLine)...)
}

func TestSyncWithoutChainCreatesOnlyWhatIsWanted(t *testing.T) {
	b, v4, v6 := newBackend()
	must(t, b.Sync(ctx, nil))
	wantDump(t, v4, policies...)
	wantDump(t, v6, policies...)
	must(t, b.Sync(ctx, bans(a6)))
	wantDump(t, v4, policies...)
	wantDump(t, v6, dump("-N SCANWARDEN", jumpLine, dropA6)...)
}

func TestSyncFixesDuplicateJumps(t *testing.T) {
	b, v4, _ := newBackend()
	must(t, b.Block(ctx, ban(a4)))
	must(t, v4.Insert(TableRaw, ChainPrerouting, 1, jumpSpec...))
	must(t, b.Sync(ctx, bans(a4)))
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropA4)...)
}

func TestFlushLeavesOthersAlone(t *testing.T) {
	b, v4, v6 := newBackend()
	// The administrator's and another tool's rules, before and after ours,
	// in the raw table and in the filter table.
	must(t, v4.Append(TableRaw, ChainPrerouting, "-i", "lo", "-j", "ACCEPT"))
	must(t, v4.NewChain(TableRaw, "OTHERTOOL"))
	must(t, v4.Append(TableRaw, "OTHERTOOL", "-s", "198.51.100.222/32", "-m", "comment", "--comment", "scanwarden", "-j", "DROP"))
	must(t, v4.Append(TableRaw, ChainPrerouting, "-j", "OTHERTOOL"))
	must(t, v4.Append(TableFilter, "FORWARD", "-s", "198.51.100.222/32", "-j", "DROP"))
	must(t, v4.Append(TableFilter, ChainInput, "-s", "198.51.100.222/32", "-m", "comment", "--comment", "scanwarden", "-j", "DROP"))
	must(t, v6.Append(TableRaw, ChainPrerouting, "-s", "fd00:77::222/128", "-j", "DROP"))
	raw4, raw6 := v4.Dump(TableRaw), v6.Dump(TableRaw)
	filter4, filter6 := v4.Dump(TableFilter), v6.Dump(TableFilter)

	must(t, b.Block(ctx, ban(a4)))
	must(t, b.Block(ctx, ban(a6)))
	must(t, b.Sync(ctx, bans(a4, b4, a6)))
	must(t, b.Unblock(ctx, a4))
	// A second jump of the administrator's own making, with other matches.
	must(t, v4.Append(TableRaw, ChainPrerouting, "-i", "eth0", "-j", "SCANWARDEN"))
	must(t, b.Flush(ctx))
	wantTables(t, v4, raw4, filter4)
	wantTables(t, v6, raw6, filter6)
	// Idempotent.
	must(t, b.Flush(ctx))
	wantTables(t, v4, raw4, filter4)
	wantTables(t, v6, raw6, filter6)
}

func TestFlushReportsAJumpFromAnotherChain(t *testing.T) {
	b, v4, v6 := newBackend()
	must(t, b.Block(ctx, ban(a4)))
	must(t, b.Block(ctx, ban(a6)))
	must(t, v4.Append(TableRaw, "OUTPUT", "-j", "SCANWARDEN"))
	err := b.Flush(ctx)
	if err == nil || !strings.Contains(err.Error(), "IPv4") || !strings.Contains(err.Error(), "another chain") {
		t.Fatalf("Flush = %v, want an IPv4 error about another chain's jump", err)
	}
	// The OUTPUT jump is not ours to remove; IPv6 is flushed regardless.
	wantDump(t, v4, dump("-N SCANWARDEN", "-A OUTPUT -j SCANWARDEN")...)
	wantDump(t, v6, policies...)
}

func TestUnsupportedIPv6(t *testing.T) {
	v4 := NewFake()
	b := New(v4, nil)
	err := b.Block(ctx, ban(a6))
	if !errors.Is(err, ErrUnsupportedFamily) || !strings.Contains(err.Error(), "IPv6") ||
		!strings.Contains(err.Error(), a6.String()) || !strings.Contains(err.Error(), "no ip6tables runner") {
		t.Errorf("Block(IPv6) = %v, want an unsupported-IPv6 error naming the address and the reason", err)
	}
	if err := b.EnsureChain(IPv6); !errors.Is(err, ErrUnsupportedFamily) {
		t.Errorf("EnsureChain(IPv6) = %v, want ErrUnsupportedFamily", err)
	}
	must(t, b.Unblock(ctx, a6)) // cannot be blocked, so is not
	must(t, b.Block(ctx, ban(a4)))
	got, err := b.List(ctx)
	must(t, err)
	if !slices.Equal(got, []netip.Addr{a4}) {
		t.Errorf("List = %v", got)
	}
	err = b.Sync(ctx, bans(a4, b4, a6))
	if !errors.Is(err, ErrUnsupportedFamily) || !strings.Contains(err.Error(), a6.String()) {
		t.Errorf("Sync with an IPv6 ban = %v, want ErrUnsupportedFamily for %v", err, a6)
	}
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropA4, dropB4)...) // IPv4 synced all the same
	must(t, b.Flush(ctx))
	wantDump(t, v4, policies...)

	// The reason NewDefault keeps is the one reported.
	b = &Backend{v4: v4, ensured: map[Family]bool{}, why6: errors.New(`exec: "ip6tables": executable file not found in $PATH`)}
	if err := b.Block(ctx, ban(a6)); err == nil || !strings.Contains(err.Error(), `"ip6tables": executable file not found`) {
		t.Errorf("Block(IPv6) = %v, want the kept reason", err)
	}
	if s := b.String(); !strings.Contains(s, "IPv6: unsupported (exec: \"ip6tables\"") {
		t.Errorf("String() = %q", s)
	}
}

func TestUnsupportedIPv4(t *testing.T) {
	v6 := NewFake()
	b := New(nil, v6)
	if err := b.Block(ctx, ban(a4)); !errors.Is(err, ErrUnsupportedFamily) || !strings.Contains(err.Error(), "IPv4") {
		t.Errorf("Block(IPv4) = %v, want ErrUnsupportedFamily", err)
	}
	must(t, b.Block(ctx, ban(a6)))
	wantDump(t, v6, dump("-N SCANWARDEN", jumpLine, dropA6)...)
}

func TestErrorsNameFamilyOperationAndAddress(t *testing.T) {
	b, v4, v6 := newBackend()
	boom := errors.New("boom")
	v4.SetFailure(func(c FakeCall) error {
		if c.Op == "Append" && c.Chain == ChainScanwarden {
			return boom
		}
		return nil
	})
	err := b.Block(ctx, ban(a4))
	if !errors.Is(err, boom) {
		t.Fatalf("Block = %v, want it to wrap the runner's error", err)
	}
	for _, s := range []string{"IPv4", "block", a4.String()} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Block error %q does not say %q", err, s)
		}
	}
	must(t, b.Block(ctx, ban(a6))) // the other family is unaffected

	v6.SetFailure(func(c FakeCall) error {
		if c.Op == "Delete" {
			return boom
		}
		return nil
	})
	err = b.Unblock(ctx, a6)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "IPv6") || !strings.Contains(err.Error(), "unblock "+a6.String()) {
		t.Errorf("Unblock = %v", err)
	}
	// Sync goes on after a failure: b6 is still added.
	err = b.Sync(ctx, bans(b6))
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "sync "+a6.String()) {
		t.Errorf("Sync = %v", err)
	}
	wantDump(t, v6, dump("-N SCANWARDEN", jumpLine, dropA6, dropB6)...)
	if err := b.Flush(ctx); !errors.Is(err, boom) || !strings.Contains(err.Error(), "IPv6: flush") {
		t.Errorf("Flush = %v", err)
	}
	v4.SetFailure(nil)
	must(t, b.Block(ctx, ban(a4)))
	v4.SetFailure(func(c FakeCall) error {
		if c.Op == "List" {
			return boom
		}
		return nil
	})
	if _, err := b.List(ctx); !errors.Is(err, boom) || !strings.Contains(err.Error(), "IPv4: list") {
		t.Errorf("List = %v", err)
	}
}

func TestCanceledContext(t *testing.T) {
	b, v4, _ := newBackend()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Block(cctx, ban(a4)); !errors.Is(err, context.Canceled) {
		t.Errorf("Block = %v, want context.Canceled", err)
	}
	if err := b.Sync(cctx, bans(a4)); !errors.Is(err, context.Canceled) {
		t.Errorf("Sync = %v, want context.Canceled", err)
	}
	if err := b.Flush(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Flush = %v, want context.Canceled", err)
	}
	if _, err := b.List(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("List = %v, want context.Canceled", err)
	}
	wantDump(t, v4, policies...)
}

// TestBlockerContract runs the same sequence through the block.Blocker
// interface that the Manager uses.
func TestBlockerContract(t *testing.T) {
	var bl block.Blocker = New(NewFake(), NewFake())
	for _, a := range []netip.Addr{a4, a6, a4, m4} {
		must(t, bl.Block(ctx, ban(a)))
	}
	got, err := bl.List(ctx)
	must(t, err)
	if !slices.Equal(got, []netip.Addr{a4, a6}) {
		t.Fatalf("List = %v", got)
	}
	must(t, bl.Sync(ctx, bans(b4)))
	if got, _ := bl.List(ctx); !slices.Equal(got, []netip.Addr{b4}) {
		t.Fatalf("List after Sync = %v", got)
	}
	must(t, bl.Flush(ctx))
	if got, _ := bl.List(ctx); len(got) != 0 {
		t.Fatalf("List after Flush = %v", got)
	}
}

func TestDescribe(t *testing.T) {
	b := New(NewFake(), NewFake())
	for a, want := range map[string]string{
		"198.51.100.7":        "iptables -t raw -A SCANWARDEN -s 198.51.100.7/32 -m comment --comment scanwarden -j DROP",
		"::ffff:198.51.100.7": "iptables -t raw -A SCANWARDEN -s 198.51.100.7/32 -m comment --comment scanwarden -j DROP",
		"fd00:77::7":          "ip6tables -t raw -A SCANWARDEN -s fd00:77::7/128 -m comment --comment scanwarden -j DROP",
	} {
		if got := b.Describe(netip.MustParseAddr(a)); got != want {
			t.Errorf("%s: %q", a, got)
		}
	}
}

func TestPrepareMakesChainsAheadOfTheFirstBlock(t *testing.T) {
	v4, v6 := NewFake(), NewFake()
	b := New(v4, v6)
	must(t, b.Prepare(ctx))
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine)...)
	v4.ResetCalls()
	must(t, b.Block(ctx, ban(a4)))
	// look up, append: nothing else
	if calls := v4.Calls(); len(calls) != 2 {
		t.Fatalf("first block after Prepare made %d calls: %v", len(calls), calls)
	}
	// a host without IPv6: Prepare does IPv4 only, without error
	must(t, New(NewFake(), nil).Prepare(ctx))
}

func TestBlockAfterSyncIsOneAppend(t *testing.T) {
	b, v4, _ := newBackend()
	must(t, b.Sync(ctx, bans(a4)))
	v4.ResetCalls()
	must(t, b.Block(ctx, ban(b4)))
	if calls := v4.Calls(); len(calls) != 1 || calls[0].Op != "Append" {
		t.Fatalf("a block after a sync made %d calls: %v", len(calls), calls)
	}
	v4.ResetCalls()
	must(t, b.Block(ctx, ban(a4))) // listed by the sync: nothing to do
	must(t, b.Block(ctx, ban(b4))) // blocked just now: likewise
	if calls := v4.Calls(); len(calls) != 0 {
		t.Fatalf("blocks of known addresses made calls: %v", calls)
	}
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropA4, dropB4)...)
	// a rule deleted behind the backend's back is back after the next Sync
	must(t, v4.Delete(TableRaw, ChainScanwarden, dropSpec(b4)...))
	must(t, b.Block(ctx, ban(b4)))
	must(t, b.Sync(ctx, bans(a4, b4)))
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropA4, dropB4)...)
	// after an unblock, a block writes the rule again
	must(t, b.Unblock(ctx, b4))
	must(t, b.Block(ctx, ban(b4)))
	wantDump(t, v4, dump("-N SCANWARDEN", jumpLine, dropA4, dropB4)...)
}
