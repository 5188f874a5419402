package ipset

// Real-kernel tests (see lab_test.go): as root only, each in network
// namespaces of its own.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/internal/netnstest"
)

// The rules of the victim, as iptables -S prints them: the jump of the
// raw table's PREROUTING to the drops, and of the filter table's INPUT to
// the trap's catch.
const (
	jumpLine = "-A PREROUTING ! -i lo -m comment --comment scanwarden -j SCANWARDEN-SETS"
	trapJmp  = "-A INPUT -m comment --comment scanwarden -j SCANWARDEN-TRAP"
)

// tables returns bin -S (the filter table) in the victim, then bin -t raw
// -S with each line prefixed "raw: ".
func (l *lab) tables(bin string) []string {
	l.t.Helper()
	out := l.MustRules(bin)
	for _, r := range l.MustRulesIn(bin, "raw") {
		out = append(out, "raw: "+r)
	}
	return out
}

func setsLines(v string) []string {
	return []string{
		"-N SCANWARDEN-SETS",
		"-A SCANWARDEN-SETS -m set --match-set scanwarden-ban" + v + " src -m comment --comment scanwarden -j DROP",
		"-A SCANWARDEN-SETS -m set --match-set scanwarden-trap" + v + " src -m comment --comment scanwarden -j DROP",
	}
}

// banShowLine is filter INPUT's rule that shows the bans of family v
// ("4", "6"), as iptables -S prints it.
func banShowLine(v string) string {
	return "-A INPUT ! -i lo -m set --match-set scanwarden-ban" + v +
		` src -m comment --comment "scanwarden: bans (dropped in raw PREROUTING first)" -j DROP`
}

// secondsSince is the whole seconds since start, rounded up.
func secondsSince(start time.Time) uint32 { return uint32(time.Since(start)/time.Second) + 1 }

// TestKernelBlockUnblockSync: Block drops the attacker's TCP and UDP, IPv4
// and IPv6, with the ban's remaining time as the element's timeout, and
// lets the benign client through; Unblock lets the attacker in again; Sync
// makes the ban sets what the bans say, timeouts included.
func TestKernelBlockUnblockSync(t *testing.T) {
	l := newLab(t, "victim", "attacker", "benign")
	l.wire()
	s := l.serve()
	victims := []netip.Addr{victim4, victim6}
	for _, v := range victims {
		l.wantReach(s, "attacker", netip.Addr{}, v, true)
		l.wantReach(s, "benign", netip.Addr{}, v, true)
	}
	if t.Failed() {
		t.FailNow()
	}

	start := time.Now()
	out := l.backend("block "+banArg(attacker4, start.Add(time.Hour)), "block "+banArg(attacker6, time.Time{}), "list", "describe")
	t.Logf("backend in the victim: %s", out)
	if !strings.Contains(out, "list 198.51.100.232 fd00:77::232\n") {
		t.Errorf("List after Block: %q", out)
	}
	l.wantTimeout(SetBan4, attacker4, 3600-secondsSince(start), 3600)
	l.wantTimeout(SetBan6, attacker6, 0, 0)
	if got, want := l.MustRulesIn("iptables", "raw", "SCANWARDEN-SETS"), setsLines("4"); !slices.Equal(got, want) {
		t.Errorf("iptables -t raw -S SCANWARDEN-SETS:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got, want := l.MustRulesIn("ip6tables", "raw", "SCANWARDEN-SETS"), setsLines("6"); !slices.Equal(got, want) {
		t.Errorf("ip6tables -t raw -S SCANWARDEN-SETS:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, bin := range []string{"iptables", "ip6tables"} {
		if got := l.MustRulesIn(bin, "raw", "PREROUTING"); !slices.Equal(got, []string{"-P PREROUTING ACCEPT", jumpLine}) {
			t.Errorf("%s -t raw -S PREROUTING: %q", bin, got)
		}
		v := map[string]string{"iptables": "4", "ip6tables": "6"}[bin]
		if got := l.MustRules(bin); !slices.Equal(got, []string{"-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT", banShowLine(v)}) {
			t.Errorf("%s -S (filter, no trap): %q, want the rule that shows the bans alone", bin, got)
		}
	}
	for _, v := range victims {
		l.wantReach(s, "attacker", netip.Addr{}, v, false)
		l.wantReach(s, "benign", netip.Addr{}, v, true)
	}

	l.backend("unblock " + attacker4.String())
	l.wantIn(SetBan4, attacker4, false)
	l.wantReach(s, "attacker", netip.Addr{}, victim4, true)
	l.wantReach(s, "attacker", netip.Addr{}, victim6, false)
	l.backend("unblock " + attacker4.String()) // again: nothing to do

	// Sync: attacker4 back for 1000 s, extra4[0] for 2000 s, extra4[1]'s
	// ban is over, attacker6 has none
	start = time.Now()
	l.backend("sync " + banArg(attacker4, start.Add(1000*time.Second)) + " " + banArg(extra4[0], start.Add(2000*time.Second)) +
		" " + banArg(extra4[1], start.Add(-time.Second)))
	l.wantTimeout(SetBan4, attacker4, 1000-secondsSince(start), 1000)
	l.wantTimeout(SetBan4, extra4[0], 2000-secondsSince(start), 2000)
	l.wantIn(SetBan4, extra4[1], false)
	if m, _ := l.members(SetBan6); len(m) != 0 {
		t.Errorf("ban6 after Sync: %v, want none", m)
	}
	l.wantReach(s, "attacker", netip.Addr{}, victim4, false)
	l.wantReach(s, "attacker", netip.Addr{}, victim6, true)

	// a ban longer than the kernel keeps a timeout is permanent
	l.backend("block " + banArg(extra4[2], time.Now().Add(40*24*time.Hour)))
	l.wantTimeout(SetBan4, extra4[2], 0, 0)
	// an expired one is not added
	l.backend("block " + banArg(extra4[3], time.Now().Add(-time.Second)))
	l.wantIn(SetBan4, extra4[3], false)
}

// TestKernelRestartKeepsTimeouts: a new Backend (a restart) preparing and
// syncing the same state keeps every running timeout, of the bans and of
// the trapped sources, and puts back an element an administrator deleted
// with what remains of its ban; a new trap size keeps the trapped sources
// and their timeouts.
func TestKernelRestartKeepsTimeouts(t *testing.T) {
	l := newLab(t, "victim")
	start := time.Now()
	bans := "sync " + banArg(attacker4, start.Add(1000*time.Second)) + " " + banArg(benign4, start.Add(2000*time.Second)) +
		" " + banArg(attacker6, time.Time{})
	trap := block.Trap{TCP: []uint16{trapTCP}, Hold: 1000 * time.Second, Size: 300}
	l.backend("prepare", bans, trapArg(trap))
	// a source the kernel trapped 600 s ago... as it would be listed
	ttl := uint32(600)
	if err := l.nl.IpsetAdd(SetTrap4, &netlink.IPSetEntry{IP: net.IP(extra4[0].AsSlice()), Timeout: &ttl, Replace: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	// an administrator deletes a ban
	if err := l.nl.IpsetDel(SetBan4, &netlink.IPSetEntry{IP: net.IP(benign4.AsSlice())}); err != nil {
		t.Fatal(err)
	}
	l.backend("prepare", bans, trapArg(trap))
	e := secondsSince(start)
	l.wantTimeout(SetBan4, attacker4, 1000-e, 1000-2)
	l.wantTimeout(SetBan4, benign4, 2000-e, 2000-2)
	l.wantTimeout(SetBan6, attacker6, 0, 0)
	l.wantTimeout(SetTrap4, extra4[0], 600-e, 600-2)

	// another trap size: the trap set is rebuilt, its sources kept
	trap.Size = 400
	l.backend(trapArg(trap))
	r, err := l.nl.IpsetList(SetTrap4)
	if err != nil {
		t.Fatal(err)
	}
	if r.MaxElements != 400 {
		t.Errorf("trap4 maxelem %d after SetTrap with Size 400", r.MaxElements)
	}
	// (listed in whole seconds rounded down, and so added again: up to a
	// second is lost)
	l.wantTimeout(SetTrap4, extra4[0], 600-secondsSince(start)-1, 600-2)
	if out := l.backend("list"); out != "list 198.51.100.232 198.51.100.233 198.51.100.234 fd00:77::232\n" {
		t.Errorf("list: %q", out)
	}
}

// TestKernelSync100k: 100,000 bans load with Sync, with their timeouts;
// a second Sync of the same bans (a restart) changes nothing; Sync of none
// removes them.
func TestKernelSync100k(t *testing.T) {
	l := newLab(t, "victim")
	out := l.backend("prepare", "sync-many 100000 3600")
	t.Logf("first load: %s", strings.TrimSpace(out))
	m, _ := l.members(SetBan6)
	if len(m) != 100000 {
		t.Fatalf("ban6 holds %d elements, want 100000", len(m))
	}
	for a, tm := range m {
		if tm < 3500 || tm > 3600 {
			t.Errorf("%v has timeout %d, want about 3600", a, tm)
			break
		}
	}
	out = l.backend("sync-many 100000 3600")
	t.Logf("again (a restart, nothing to change): %s", strings.TrimSpace(out))
	l.backend("sync")
	if m, _ := l.members(SetBan6); len(m) != 0 {
		t.Errorf("ban6 after Sync of none holds %d elements", len(m))
	}
}

// TestKernelPrepareRepairsAndFlush: what an administrator deletes (the
// jump, a ban rule, a trap rule, an exemption set) is put back by Prepare
// and SetTrap, without losing the bans; the administrator's own rules are
// never touched, and after Flush nothing of the backend is left.
func TestKernelPrepareRepairsAndFlush(t *testing.T) {
	l := newLab(t, "victim")
	for _, bin := range []string{"iptables", "ip6tables"} {
		for _, rule := range [][]string{
			{"-A", "INPUT", "-i", "lo", "-j", "ACCEPT"},
			{"-N", "OTHERTOOL"},
			{"-A", "OTHERTOOL", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"},
			{"-A", "INPUT", "-j", "OTHERTOOL"},
		} {
			l.Run("victim", bin, rule...)
		}
	}
	before4, before6 := l.tables("iptables"), l.tables("ip6tables")
	trap := block.Trap{TCP: []uint16{trapTCP}, UDP: []uint16{trapUDP}, Exempt: []netip.Prefix{netip.PrefixFrom(benign4, 32)},
		Hold: time.Hour, Size: 300}
	start := time.Now()
	l.backend(trapArg(trap), "block "+banArg(attacker4, start.Add(time.Hour)), "block "+banArg(attacker6, start.Add(time.Hour)))
	full4, full6 := l.tables("iptables"), l.tables("ip6tables")
	t.Logf("iptables -S and -t raw -S with the trap:\n%s", strings.Join(full4, "\n"))
	for _, want := range []string{
		"raw: " + jumpLine, trapJmp,
		"-A SCANWARDEN-TRAP -i lo -m comment --comment scanwarden -j RETURN",
		"-A SCANWARDEN-TRAP -m set --match-set scanwarden-never4 src -m comment --comment scanwarden -j RETURN",
		"-A SCANWARDEN-TRAP -p tcp -m tcp ! --tcp-flags ACK ACK -m set --match-set scanwarden-tcp dst -m comment --comment scanwarden -j SET --add-set scanwarden-trap4 src --exist --timeout 3600",
		"-A SCANWARDEN-TRAP -p udp -m set --match-set scanwarden-udp dst -m comment --comment scanwarden-trap-overflow -j DROP",
		"-A SCANWARDEN-TRAP -p tcp -m tcp --tcp-flags SYN,RST,ACK NONE -m comment --comment scanwarden -j SET --add-set scanwarden-trap4 src --exist --timeout 3600",
		"-A SCANWARDEN-TRAP -p tcp -m tcp --tcp-flags SYN,RST,ACK ACK -m conntrack --ctstate INVALID,NEW -m set --match-set scanwarden-tcp dst -m set --match-set scanwarden-trap4 src -m comment --comment scanwarden -j RETURN",
		banShowLine("4"),
	} {
		if !slices.Contains(full4, want) {
			t.Errorf("iptables -S lacks %q", want)
		}
	}
	if !slices.Contains(full6, banShowLine("6")) {
		t.Errorf("ip6tables -S lacks %q", banShowLine("6"))
	}
	if r := l.MustRulesIn("iptables", "raw", "PREROUTING"); r[1] != jumpLine {
		t.Errorf("the jump is not raw PREROUTING's first rule: %q", r)
	}
	if r := l.MustRules("iptables", "INPUT"); r[1] != trapJmp {
		t.Errorf("the jump to the trap is not INPUT's first rule: %q", r)
	}

	// the administrator breaks things
	neverRule := "-m set --match-set scanwarden-never4 src -m comment --comment scanwarden -j RETURN"
	l.Run("victim", "iptables", append([]string{"-t", "raw", "-D", "PREROUTING"}, jumpSpec...)...)
	l.Run("victim", "iptables", append([]string{"-t", "raw", "-D", "SCANWARDEN-SETS"}, strings.Fields("-m set --match-set scanwarden-ban4 src -m comment --comment scanwarden -j DROP")...)...)
	l.Run("victim", "iptables", append([]string{"-D", "SCANWARDEN-TRAP"}, strings.Fields(neverRule)...)...)
	if err := l.nl.IpsetDestroy(SetNever4); err != nil {
		t.Fatal(err)
	}
	l.Run("victim", "ip6tables", append([]string{"-t", "raw", "-D", "PREROUTING"}, jumpSpec...)...)

	// a restart: Prepare puts back what it knows of; the trap rule comes
	// back with SetTrap (a new Backend does not know the trap before)
	l.backend("prepare")
	got4 := l.tables("iptables")
	if slices.Contains(got4, "-A SCANWARDEN-TRAP "+neverRule) {
		t.Errorf("Prepare of a new Backend rewrote the trap (it does not know it)")
	}
	if !slices.Contains(got4, "raw: "+jumpLine) || !slices.Contains(got4, "raw: "+setsLines("4")[1]) {
		t.Errorf("Prepare did not put back the jump or the ban rule:\n%s", strings.Join(got4, "\n"))
	}
	if _, ok := l.members(SetNever4); !ok {
		t.Error("Prepare did not make the exemption set again")
	}
	l.backend(trapArg(trap))
	if got := l.tables("iptables"); !slices.Equal(got, full4) {
		t.Errorf("iptables -S, -t raw -S after the repair:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(full4, "\n"))
	}
	if got := l.tables("ip6tables"); !slices.Equal(got, full6) {
		t.Errorf("ip6tables -S, -t raw -S after the repair:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(full6, "\n"))
	}
	if m, _ := l.members(SetNever4); len(m) != 1 {
		t.Errorf("never4 after SetTrap: %v, want benign4", m)
	}
	l.wantTimeout(SetBan4, attacker4, 3600-secondsSince(start), 3600)
	l.wantTimeout(SetBan6, attacker6, 3600-secondsSince(start), 3600)

	l.backend("flush")
	if got := l.tables("iptables"); !slices.Equal(got, before4) {
		t.Errorf("iptables -S, -t raw -S after Flush:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(before4, "\n"))
	}
	if got := l.tables("ip6tables"); !slices.Equal(got, before6) {
		t.Errorf("ip6tables -S, -t raw -S after Flush:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(before6, "\n"))
	}
	all, err := l.nl.IpsetListAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		t.Errorf("set %s left after Flush", s.SetName)
	}
	l.backend("flush") // again: nothing to do, no error
	if out := l.backend("list"); out != "list\n" {
		t.Errorf("list after Flush: %q", out)
	}
}

// TestKernelTrap: with the trap installed, a SYN, FIN, NULL or XMAS probe
// or a UDP datagram to a trap port puts its source into the trap set (with
// the trap's hold) and is dropped, and so is all the source sends
// afterwards; an ACK segment to a port that is no trap is no first hit;
// an exempt source is never
// trapped; IPv6 likewise. Unblock lets a trapped source in again.
func TestKernelTrap(t *testing.T) {
	l := newLab(t, "victim", "attacker", "benign")
	l.wire()
	s := l.serve()
	if l.Dial("attacker", attacker4, victim4, trapTCP, netnstest.OpenWait) != netnstest.ExitConnected {
		t.Fatal("the trap port is not served before the trap")
	}
	trap := block.Trap{
		TCP: []uint16{trapTCP}, UDP: []uint16{trapUDP},
		Exempt: []netip.Prefix{netip.PrefixFrom(benign4, 32), netip.PrefixFrom(benign6, 128), netip.MustParsePrefix("127.0.0.0/8")},
		Hold:   time.Hour, Size: 1000,
	}
	l.backend(trapArg(trap))

	// ACK only to a port that is no trap: no first hit (and then a SYN
	// is, so the ACK had its chance); an ACK of no connection to a trap
	// port is one (TestKernelTrapStealthAndACK)
	l.raw(attacker4, victim4, openPort, "A")
	l.wantIn(SetTrap4, attacker4, false)
	start := time.Now()
	if code := l.Dial("attacker", attacker4, victim4, trapTCP, netnstest.BlockedWait); code != netnstest.ExitTimeout {
		t.Errorf("SYN to the trap port: connected, want it dropped")
	}
	l.wantTimeout(SetTrap4, attacker4, 3600-secondsSince(start), 3600)
	l.wantReach(s, "attacker", attacker4, victim4, false)

	for i, flags := range []string{"F", "", "FPU"} {
		start := time.Now()
		l.raw(extra4[i], victim4, trapTCP, flags)
		l.wantTimeout(SetTrap4, extra4[i], 3600-secondsSince(start), 3600)
	}

	// UDP: trapped with the same hold, the datagram dropped
	start = time.Now()
	dropped := l.SendUDP("attacker", extra4[3], victim4, trapUDP)
	time.Sleep(settle)
	l.wantTimeout(SetTrap4, extra4[3], 3600-secondsSince(start), 3600)
	control := l.SendUDP("benign", benign4, victim4, trapUDP)
	if !s.Wait(control, netnstest.OpenWait) {
		t.Errorf("UDP from the exempt benign client to the trap port: not received")
	}
	time.Sleep(netnstest.UDPGrace)
	if s.Has(dropped) {
		t.Errorf("UDP from the attacker to the trap port: received, want it dropped")
	}

	// the exempt client uses the trap port and is not trapped
	if code := l.Dial("benign", benign4, victim4, trapTCP, netnstest.OpenWait); code != netnstest.ExitConnected {
		t.Errorf("exempt TCP to the trap port: dropped")
	}
	l.wantIn(SetTrap4, benign4, false)
	l.wantReach(s, "benign", benign4, victim4, true)

	// IPv6
	start = time.Now()
	if code := l.Dial("attacker", attacker6, victim6, trapTCP, netnstest.BlockedWait); code != netnstest.ExitTimeout {
		t.Errorf("IPv6 SYN to the trap port: connected, want it dropped")
	}
	l.wantTimeout(SetTrap6, attacker6, 3600-secondsSince(start), 3600)
	l.wantReach(s, "attacker", attacker6, victim6, false)
	if code := l.Dial("benign", benign6, victim6, trapTCP, netnstest.OpenWait); code != netnstest.ExitConnected {
		t.Errorf("exempt IPv6 TCP to the trap port: dropped")
	}
	l.wantIn(SetTrap6, benign6, false)

	out := l.backend("list", "overflows")
	if want := "list 198.51.100.232 198.51.100.234 198.51.100.235 198.51.100.236 198.51.100.237 fd00:77::232\noverflows 0\n"; out != want {
		t.Errorf("list, overflows: %q, want %q", out, want)
	}
	l.backend("unblock " + attacker4.String())
	l.wantIn(SetTrap4, attacker4, false)
	l.wantReach(s, "attacker", attacker4, victim4, true)
}

// TestKernelTrapOverflow: a trap set of 2 fills with two sources; the
// third source's first hit is dropped but not added, and counted by
// TrapOverflows; not being in the set, it still reaches other ports.
func TestKernelTrapOverflow(t *testing.T) {
	l := newLab(t, "victim", "attacker", "benign")
	l.wire()
	s := l.serve()
	l.backend(trapArg(block.Trap{TCP: []uint16{trapTCP}, Hold: time.Hour, Size: 2}))
	l.raw(extra4[0], victim4, trapTCP, "S")
	l.raw(extra4[1], victim4, trapTCP, "S")
	l.wantIn(SetTrap4, extra4[0], true)
	l.wantIn(SetTrap4, extra4[1], true)
	if out := l.backend("overflows"); out != "overflows 0\n" {
		t.Errorf("overflows before the set is full: %q", out)
	}
	if code := l.Dial("attacker", extra4[2], victim4, trapTCP, netnstest.BlockedWait); code != netnstest.ExitTimeout {
		t.Errorf("SYN to the trap port with the set full: connected, want it dropped")
	}
	l.wantIn(SetTrap4, extra4[2], false)
	out := l.backend("overflows")
	var n int
	if _, err := fmt.Sscanf(out, "overflows %d\n", &n); err != nil || n < 1 {
		t.Errorf("overflows after a first hit on a full set: %q, want at least 1", out)
	}
	t.Logf("overflow count: %d (the first SYN and its retransmissions)", n)
	l.wantReach(s, "attacker", extra4[2], victim4, true)
}

// TestKernelSetTrapChanges: a new trap size keeps the trapped sources and
// the rules working on the rebuilt set; new exemptions remove the sources
// they cover, which may then come in and are not trapped again; a trap
// that is not enabled traps nothing more and keeps those trapped.
func TestKernelSetTrapChanges(t *testing.T) {
	l := newLab(t, "victim", "attacker", "benign")
	l.wire()
	s := l.serve()
	trap := block.Trap{TCP: []uint16{trapTCP}, Hold: time.Hour, Size: 100}
	l.backend(trapArg(trap))
	l.raw(attacker4, victim4, trapTCP, "S")
	l.raw(extra4[0], victim4, trapTCP, "S")
	l.wantReach(s, "attacker", attacker4, victim4, false)

	trap.Size = 200
	l.backend(trapArg(trap))
	l.wantIn(SetTrap4, attacker4, true)
	l.wantIn(SetTrap4, extra4[0], true)
	l.wantReach(s, "attacker", attacker4, victim4, false)
	l.raw(extra4[1], victim4, trapTCP, "S")
	l.wantIn(SetTrap4, extra4[1], true)

	trap.Exempt = []netip.Prefix{netip.PrefixFrom(attacker4, 32)}
	l.backend(trapArg(trap))
	l.wantIn(SetTrap4, attacker4, false)
	l.wantIn(SetTrap4, extra4[0], true)
	l.wantReach(s, "attacker", attacker4, victim4, true)
	l.raw(attacker4, victim4, trapTCP, "S")
	l.wantIn(SetTrap4, attacker4, false)

	l.backend(trapArg(block.Trap{Size: 200}))
	for _, bin := range []string{"iptables", "ip6tables"} {
		if r, err := l.Rules(bin, "SCANWARDEN-TRAP"); err == nil {
			t.Errorf("%s -S SCANWARDEN-TRAP after disabling the trap: %q, want no such chain", bin, r)
		}
	}
	l.raw(extra4[2], victim4, trapTCP, "S")
	l.wantIn(SetTrap4, extra4[2], false)
	l.wantIn(SetTrap4, extra4[0], true)
	l.wantReach(s, "attacker", extra4[0], victim4, false)
}

// TestKernelNetlinkSets drives the backend's netlink code directly, in
// the victim namespace (a netlink socket opened there, no firewall):
// creating, listing, batched adds and deletes (a batch stopped by a full
// set still adds what fits, and says which did not), swapping, destroying,
// and the errors of a missing or referenced set.
func TestKernelNetlinkSets(t *testing.T) {
	l := newLab(t, "victim")
	n, err := newNetlinkSets("/run/netns/" + l.NS["victim"])
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	const s, tmp = "swtest", "swtest-tmp"
	must(t, n.create(s, header{typ: typeHashIP, family: unix.AF_INET6, timeout: true, maxElem: 3000}))
	if err := n.create(s, header{typ: typeHashIP, family: unix.AF_INET6, timeout: true, maxElem: 3000}); !errors.Is(err, unix.EEXIST) {
		t.Errorf("create again: %v, want EEXIST", err)
	}
	h, ms, ok, err := n.list(s, true)
	if err != nil || !ok || len(ms) != 0 || h.String() != "hash:ip family inet6 maxelem 3000 timeout" || h.entries != 0 {
		t.Errorf("list -t: %v %v %v %v", h, ms, ok, err)
	}
	// 3100 members, 3000 fit: several messages, the last stopped. The
	// kernel's bound is not exact while it grows the hash in the
	// background (a busy machine: adds during the resize are counted
	// late), so a few more than maxelem may get in; the ones refused are
	// counted in the error either way.
	var add []member
	for _, b := range manyBans(3100, 0) {
		add = append(add, addrMember(b.Addr, 1000))
	}
	err = n.add(s, true, add)
	if !errors.Is(err, nl.IPSetError(errHashFull)) || !strings.Contains(err.Error(), "the set is full") {
		t.Errorf("adding 3100 to a set of 3000: %v, want full", err)
	}
	h, ms, _, err = n.list(s, false)
	if err != nil || len(ms) < 3000 || len(ms) >= 3100 || int(h.entries) != len(ms) {
		t.Fatalf("list: %d members, header %+v, %v", len(ms), h, err)
	}
	if want := fmt.Sprintf("and %d more not added to set swtest: the set is full", 3100-len(ms)-1); err != nil && !strings.Contains(err.Error(), want) {
		t.Errorf("adding 3100 to a set of 3000 (%d in): %v, want %q", len(ms), err, want)
	}
	if m, _ := l.members(s); len(m) != len(ms) || m[add[0].prefix.Addr()] < 998 {
		t.Errorf("the library lists %d members, the first with timeout %d", len(m), m[add[0].prefix.Addr()])
	}
	// re-adding sets the timeout anew; deleting absent members is fine
	must(t, n.add(s, true, []member{addrMember(add[0].prefix.Addr(), 50)}))
	must(t, n.del(s, add[2900:]))
	must(t, n.del(s, add[2900:]))
	_, ms, _, _ = n.list(s, false)
	if len(ms) != 2900 {
		t.Errorf("after deleting 100 (of which 100 absent): %d members", len(ms))
	}
	l.wantTimeout(s, add[0].prefix.Addr(), 49, 50)

	// swap with a bigger one, as rebuild does
	must(t, n.create(tmp, header{typ: typeHashIP, family: unix.AF_INET6, timeout: true, maxElem: 5000}))
	must(t, n.add(tmp, true, ms))
	must(t, n.swap(s, tmp))
	must(t, n.destroy(tmp))
	h, ms, _, _ = n.list(s, false)
	if h.maxElem != 5000 || len(ms) != 2900 {
		t.Errorf("after the swap: maxelem %d, %d members", h.maxElem, len(ms))
	}

	// ports and networks, several at once
	must(t, n.create("swports", portHeader))
	must(t, n.add("swports", false, []member{{port: 0}, {port: 22}, {port: 65535}}))
	must(t, n.create("swnets", header{typ: typeHashNet, family: unix.AF_INET, maxElem: 100}))
	nets := []member{{prefix: netip.MustParsePrefix("198.51.100.0/25")}, {prefix: netip.MustParsePrefix("198.51.100.231/32")}}
	must(t, n.add("swnets", false, nets))
	_, got, _, _ := n.list("swports", false)
	var ports []uint16
	for _, m := range got {
		ports = append(ports, m.port)
	}
	if !slices.Equal(ports, []uint16{0, 22, 65535}) {
		t.Errorf("ports: %+v", got)
	}
	_, got, _, _ = n.list("swnets", false)
	if len(got) != 2 || !slices.ContainsFunc(got, func(m member) bool { return m == nets[0] }) {
		t.Errorf("networks: %+v", got)
	}

	// a set a rule refers to cannot be destroyed
	l.Run("victim", "iptables", "-A", "INPUT", "-m", "set", "--match-set", "swnets", "src", "-j", "DROP")
	if err := n.destroy("swnets"); !errors.Is(err, nl.IPSetError(errBusy)) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("destroying a referenced set: %v", err)
	}
	l.Run("victim", "iptables", "-D", "INPUT", "-m", "set", "--match-set", "swnets", "src", "-j", "DROP")
	for _, name := range []string{s, "swports", "swnets", "nothing"} {
		must(t, n.destroy(name))
	}
	if _, _, ok, err := n.list(s, false); ok || err != nil {
		t.Errorf("list of a destroyed set: %v, %v", ok, err)
	}
	if err := n.add(s, true, add[:2]); !isNoSet(err) {
		t.Errorf("add to a missing set: %v", err)
	}
	if err := n.add(s, true, add[:1]); !isNoSet(err) {
		t.Errorf("add one to a missing set: %v", err)
	}
}

// holdSlack is how long after a trap element's hold the tests wait for it
// to be gone: the kernel counts whole seconds, and lists no element whose
// timeout has run out.
const holdSlack = 5 * time.Second

// waitGone polls set until it no longer holds a, for at most d, and fails
// the test when it still does then.
func (l *lab) waitGone(set string, a netip.Addr, d time.Duration, what string) {
	l.t.Helper()
	deadline := time.Now().Add(d)
	for {
		m, _ := l.members(set)
		if _, ok := m[a]; !ok {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: %v still in %s %v later", what, a, set, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKernelTrapHold: the trap is provisional. A first hit holds its
// source in the trap set with the timeout Hold (TCP and UDP, IPv4 and
// IPv6: both add rules carry it), and the kernel lets it go after Hold:
// the source reaches the open port again and was never banned. Block of a
// held source promotes it: it is in the ban set with the ban's timeout,
// and stays blocked after the trap element has gone. Release takes a
// source out of the trap set at once (with a hold far longer than the
// test), again and for an address not held is no error, and leaves a ban
// alone.
func TestKernelTrapHold(t *testing.T) {
	l := newLab(t, "victim", "attacker", "benign")
	l.wire()
	s := l.serve()
	const hold = 2 * time.Second
	trap := block.Trap{TCP: []uint16{trapTCP}, UDP: []uint16{trapUDP}, Hold: hold, Size: 16}
	l.backend(trapArg(trap))
	n := 0
	for _, r := range l.MustRules("iptables", "SCANWARDEN-TRAP") {
		if strings.Contains(r, "--add-set scanwarden-trap4 src") {
			n++
			if !strings.HasSuffix(r, " --exist --timeout 2") {
				t.Errorf("trap rule %q: want the hold, --timeout 2", r)
			}
		}
	}
	if n != 4 {
		t.Errorf("%d add rules in SCANWARDEN-TRAP, want 4 (tcp, udp, stealth, ack)", n)
	}

	// held for Hold, then let go by the kernel
	l.raw(attacker4, victim4, trapTCP, "S")
	l.wantTimeout(SetTrap4, attacker4, 1, 2)
	l.SendUDP("attacker", attacker6, victim6, trapUDP)
	time.Sleep(settle)
	l.wantTimeout(SetTrap6, attacker6, 1, 2)
	l.waitGone(SetTrap4, attacker4, hold+holdSlack, "after the hold")
	l.waitGone(SetTrap6, attacker6, hold+holdSlack, "after the hold")
	l.wantReach(s, "attacker", attacker4, victim4, true)
	l.wantReach(s, "attacker", attacker6, victim6, true)
	l.wantIn(SetBan4, attacker4, false)

	// Block of a held source: promoted, independently of the trap set
	l.raw(extra4[1], victim4, trapTCP, "S")
	l.wantIn(SetTrap4, extra4[1], true)
	start := time.Now()
	l.backend("block " + banArg(extra4[1], start.Add(time.Hour)))
	l.wantTimeout(SetBan4, extra4[1], 3600-secondsSince(start), 3600)
	l.waitGone(SetTrap4, extra4[1], hold+holdSlack, "a promoted source, after the hold")
	l.wantTimeout(SetBan4, extra4[1], 3600-secondsSince(start), 3600)
	l.wantReach(s, "attacker", extra4[1], victim4, false)

	// Release, under a hold longer than the test
	trap.Hold = time.Minute
	l.backend(trapArg(trap))
	l.raw(extra4[0], victim4, trapTCP, "S")
	l.wantTimeout(SetTrap4, extra4[0], 1, 60)
	l.backend("release "+extra4[0].String(), "release "+extra4[0].String(), "release ::ffff:"+extra4[0].String(), "release fd00:77::999")
	l.wantIn(SetTrap4, extra4[0], false)
	l.wantReach(s, "attacker", extra4[0], victim4, true)
	// Release of a banned source leaves the ban
	l.backend("release " + extra4[1].String())
	l.wantTimeout(SetBan4, extra4[1], 3600-secondsSince(start), 3600)
	l.wantReach(s, "attacker", extra4[1], victim4, false)
	// no sets at all
	l.backend("flush", "release "+extra4[1].String())
}

// TestKernelTrapBudget: with Size N, N sources are held; the first hit of
// the N+1-th distinct source is dropped but not added, and counted by
// TrapOverflows, and its other traffic passes. Releasing one frees its
// place: the next first hit is held.
func TestKernelTrapBudget(t *testing.T) {
	l := newLab(t, "victim", "attacker", "benign")
	l.wire()
	s := l.serve()
	// a hold far longer than the test: nothing expires under it
	l.backend(trapArg(block.Trap{TCP: []uint16{trapTCP}, Hold: time.Minute, Size: 2}))
	l.raw(extra4[0], victim4, trapTCP, "S")
	l.raw(extra4[1], victim4, trapTCP, "S")
	l.wantIn(SetTrap4, extra4[0], true)
	l.wantIn(SetTrap4, extra4[1], true)
	if out := l.backend("overflows"); out != "overflows 0\n" {
		t.Errorf("overflows with the budget used up but not exceeded: %q", out)
	}
	if code := l.Dial("attacker", extra4[2], victim4, trapTCP, netnstest.BlockedWait); code != netnstest.ExitTimeout {
		t.Errorf("SYN to the trap port beyond the budget: connected, want it dropped")
	}
	l.wantIn(SetTrap4, extra4[2], false)
	var n int
	if out := l.backend("overflows"); func() error { _, err := fmt.Sscanf(out, "overflows %d\n", &n); return err }() != nil || n < 1 {
		t.Errorf("overflows after a first hit beyond the budget: %q, want at least 1", out)
	}
	l.wantReach(s, "attacker", extra4[2], victim4, true)
	if m, _ := l.members(SetTrap4); len(m) != 2 {
		t.Errorf("trap4 holds %v, want 2 sources", m)
	}

	l.backend("release " + extra4[0].String())
	l.raw(extra4[2], victim4, trapTCP, "S")
	l.wantTimeout(SetTrap4, extra4[2], 1, 60)
}

// TestKernelTrapCutsToHold: SetTrap gives the trapped sources that have
// more than its Hold left, or none (as an older version, which held them
// for BAN_EXPIRY, left them), the Hold, and the kernel then lets them go;
// a ban of the same address keeps its own timeout.
func TestKernelTrapCutsToHold(t *testing.T) {
	l := newLab(t, "victim")
	l.backend("prepare")
	day := uint32(86400)
	for _, e := range []struct {
		set string
		a   netip.Addr
		ttl *uint32
	}{{SetTrap4, attacker4, &day}, {SetTrap6, attacker6, nil}} {
		if err := l.nl.IpsetAdd(e.set, &netlink.IPSetEntry{IP: net.IP(e.a.AsSlice()), Timeout: e.ttl, Replace: true}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	l.backend("block " + banArg(attacker4, start.Add(24*time.Hour)))
	l.wantTimeout(SetTrap6, attacker6, 0, 0)
	const hold = 2 * time.Second
	l.backend(trapArg(block.Trap{TCP: []uint16{trapTCP}, Hold: hold, Size: 16}))
	l.wantTimeout(SetTrap4, attacker4, 1, 2)
	l.wantTimeout(SetTrap6, attacker6, 1, 2)
	l.waitGone(SetTrap4, attacker4, hold+holdSlack, "cut to the hold")
	l.waitGone(SetTrap6, attacker6, hold+holdSlack, "cut to the hold")
	l.wantTimeout(SetBan4, attacker4, 86400-secondsSince(start), 86400)
}

// wantPasses checks that src's first hits on the trap ports are neither
// trapped nor dropped: a FIN (IPv4: the raw helper sends no IPv6) and a
// UDP datagram do not trap it, the datagram and a connection to the TCP
// trap port reach the listener, and so does its traffic to the open port.
func (l *lab) wantPasses(s *netnstest.Server, src, dst netip.Addr, what string) {
	l.t.Helper()
	set := SetTrap4
	if src.Is6() {
		set = SetTrap6
	} else {
		l.raw(src, dst, trapTCP, "F")
	}
	if token := l.SendUDP("attacker", src, dst, trapUDP); !s.Wait(token, netnstest.OpenWait) {
		l.t.Errorf("%s: UDP from %v to the trap port: not received, want it to pass", what, src)
	}
	if code := l.Dial("attacker", src, dst, trapTCP, netnstest.OpenWait); code != netnstest.ExitConnected {
		l.t.Errorf("%s: connect from %v to the trap port: exit %d, want it to connect", what, src, code)
	}
	l.wantIn(set, src, false)
	l.wantReach(s, "attacker", src, dst, true)
}

// TestKernelTrapSpare: Release spares the source it lets out of the trap
// set: it is in the spared set for block.SpareFor, and its next first
// hits are neither trapped nor dropped, while other sources are still
// trapped. Release again refreshes the timeout; a source never trapped is
// spared too (IPv6 alike). List does not report spared sources. A
// SetTrap with other ports or another size keeps them, with their
// timeouts. Unblock takes a source out of the spared set (it is trapped
// again on its next first hit); Flush removes the spared sets.
func TestKernelTrapSpare(t *testing.T) {
	l := newLab(t, "victim", "attacker", "benign")
	l.wire()
	s := l.serve()
	spare := uint32(block.SpareFor / time.Second)
	trap := block.Trap{TCP: []uint16{trapTCP}, UDP: []uint16{trapUDP}, Hold: time.Minute, Size: 16}
	l.backend(trapArg(trap))
	rules := l.MustRules("iptables", "SCANWARDEN-TRAP")
	ret := slices.Index(rules, "-A SCANWARDEN-TRAP -m set --match-set scanwarden-spared4 src -m comment --comment scanwarden -j RETURN")
	add := slices.IndexFunc(rules, func(r string) bool { return strings.Contains(r, "--add-set") })
	if ret < 0 || add < 0 || ret > add {
		t.Errorf("SCANWARDEN-TRAP: %q, want the spared set's RETURN before the --add-set rules", rules)
	}

	framed := attacker4
	l.raw(framed, victim4, trapTCP, "S")
	l.wantIn(SetTrap4, framed, true)
	l.backend("release " + framed.String())
	l.wantIn(SetTrap4, framed, false)
	l.wantTimeout(SetSpared4, framed, spare-1, spare)
	l.wantPasses(s, framed, victim4, "a released source's new first hits")

	// another source is trapped as ever
	if code := l.Dial("attacker", extra4[0], victim4, trapTCP, netnstest.BlockedWait); code != netnstest.ExitTimeout {
		t.Errorf("SYN from %v to the trap port: connected, want it dropped", extra4[0])
	}
	l.wantIn(SetTrap4, extra4[0], true)
	l.wantIn(SetSpared4, extra4[0], false)

	// again: refreshed
	time.Sleep(2100 * time.Millisecond)
	l.wantTimeout(SetSpared4, framed, 1, spare-2)
	l.backend("release ::ffff:" + framed.String())
	l.wantTimeout(SetSpared4, framed, spare-1, spare)

	// never trapped: spared all the same, IPv4 and IPv6
	l.backend("release "+extra4[1].String(), "release "+attacker6.String())
	l.wantTimeout(SetSpared4, extra4[1], spare-1, spare)
	l.wantTimeout(SetSpared6, attacker6, spare-1, spare)
	l.wantPasses(s, extra4[1], victim4, "a spared source never trapped")
	l.wantPasses(s, attacker6, victim6, "a spared IPv6 source")

	if out := l.backend("list"); out != "list "+extra4[0].String()+"\n" {
		t.Errorf("list: %q, want the trapped %v alone (no spared source)", out, extra4[0])
	}

	// SetTrap with other ports, and another size: the spared stay
	trap.TCP, trap.UDP = []uint16{trapTCP, trapTCP + 10}, []uint16{trapUDP}
	l.backend(trapArg(trap))
	trap.Size = 32
	l.backend(trapArg(trap))
	for _, a := range []netip.Addr{framed, extra4[1]} {
		l.wantTimeout(SetSpared4, a, spare-10, spare)
	}
	l.wantTimeout(SetSpared6, attacker6, spare-10, spare)
	l.wantPasses(s, framed, victim4, "spared, after SetTrap")

	// Unblock: a clean slate, trapped again on the next first hit
	l.backend("unblock " + framed.String())
	l.wantIn(SetSpared4, framed, false)
	l.raw(framed, victim4, trapTCP, "S")
	l.wantIn(SetTrap4, framed, true)
	l.wantReach(s, "attacker", framed, victim4, false)

	l.backend("flush")
	for _, set := range []string{SetSpared4, SetSpared6} {
		if m, ok := l.members(set); ok {
			t.Errorf("%s after flush: %v, want no such set", set, m)
		}
	}
}

// TestKernelTrapSpareFull: the spared set has the trap set's maxelem;
// when it is full, Release still lets the source out of the trap set,
// without error, and counts it; a source spared already is refreshed.
func TestKernelTrapSpareFull(t *testing.T) {
	l := newLab(t, "victim", "attacker", "benign")
	l.wire()
	s := l.serve()
	spare := uint32(block.SpareFor / time.Second)
	l.backend(trapArg(block.Trap{TCP: []uint16{trapTCP}, Hold: time.Minute, Size: 2}))
	l.backend("release "+extra4[0].String(), "release "+extra4[1].String())
	l.raw(extra4[2], victim4, trapTCP, "S")
	l.wantIn(SetTrap4, extra4[2], true)
	if out := l.backend("release "+extra4[2].String(), "spare-overflows"); out != "spare-overflows 1\n" {
		t.Errorf("release with the spared set full: %q, want it counted once", out)
	}
	l.wantIn(SetTrap4, extra4[2], false)
	l.wantIn(SetSpared4, extra4[2], false)
	l.wantReach(s, "attacker", extra4[2], victim4, true)
	time.Sleep(2100 * time.Millisecond)
	if out := l.backend("release "+extra4[0].String(), "spare-overflows"); out != "spare-overflows 0\n" {
		t.Errorf("release of a spared source with the set full: %q, want no overflow", out)
	}
	l.wantTimeout(SetSpared4, extra4[0], spare-1, spare)
	l.wantTimeout(SetSpared4, extra4[1], 1, spare-2)
}

// TestKernelTrapStealthAndACK: a TCP segment with none of SYN, ACK and
// RST (FIN, NULL) holds its source whatever its port, a served one that
// is no trap too; an ACK or FIN|ACK of no connection to a trap port holds
// its source but reaches the host, whose reset answers it, and the
// source's next packet is dropped (with conntrack's loose pickup off too);
// an ACK to a port that is no trap holds nothing; a client's established
// traffic holds nothing; an exempt source is never held.
func TestKernelTrapStealthAndACK(t *testing.T) {
	l := newLab(t, "victim", "attacker", "benign")
	l.wire()
	s := l.serve()
	const otherPort = 9999 // neither served nor a trap
	trap := block.Trap{
		TCP: []uint16{trapTCP}, UDP: []uint16{trapUDP},
		Exempt: []netip.Prefix{netip.PrefixFrom(benign4, 32), netip.PrefixFrom(benign6, 128), netip.MustParsePrefix("127.0.0.0/8")},
		Hold:   time.Hour, Size: 1000,
	}
	l.backend(trapArg(trap))
	t.Logf("iptables -S SCANWARDEN-TRAP:\n%s", strings.Join(l.MustRules("iptables", "SCANWARDEN-TRAP"), "\n"))
	t.Logf("iptables -S INPUT:\n%s", strings.Join(l.MustRules("iptables", "INPUT"), "\n"))

	// a client of the served port: its connections hold nothing
	client := extra4[4]
	for range 3 {
		if code := l.Dial("attacker", client, victim4, openPort, netnstest.OpenWait); code != netnstest.ExitConnected {
			t.Fatalf("a client's connection: exit %d", code)
		}
	}
	l.wantIn(SetTrap4, client, false)

	// stealth probes to ports that are no traps
	start := time.Now()
	l.raw(extra4[0], victim4, openPort, "F")
	l.wantTimeout(SetTrap4, extra4[0], 3600-secondsSince(start), 3600)
	l.raw(extra4[1], victim4, otherPort, "")
	l.wantTimeout(SetTrap4, extra4[1], 3600-secondsSince(start), 3600)
	l.raw(attacker6, victim6, openPort, "FPU")
	l.wantTimeout(SetTrap6, attacker6, 3600-secondsSince(start), 3600)
	if code := l.Dial("attacker", extra4[0], victim4, openPort, netnstest.BlockedWait); code != netnstest.ExitTimeout {
		t.Errorf("after a FIN, %v's connection: exit %d, want a timeout (held)", extra4[0], code)
	}

	// ACK and FIN|ACK of no connection to the (served) trap port
	for _, c := range []struct {
		src   netip.Addr
		flags byte
	}{{attacker4, 0x10}, {extra4[2], 0x11}} {
		what := netnstest.FlagLetters(c.flags)
		if !l.Lab.RawReplyFrom("attacker", c.src, victim4, trapTCP, c.flags, netnstest.OpenWait) {
			t.Errorf("%s of no connection from %v: no reset, want the host's reset", what, c.src)
		}
		if l.Lab.RawReplyFrom("attacker", c.src, victim4, trapTCP, c.flags, netnstest.BlockedWait) {
			t.Errorf("the second %s from %v: reset, want it dropped (held)", what, c.src)
		}
		l.wantIn(SetTrap4, c.src, true)
	}
	l.wantReach(s, "attacker", attacker4, victim4, false)
	// invalid rather than new: the same
	l.Run("victim", "sysctl", "-w", "net.netfilter.nf_conntrack_tcp_loose=0")
	if !l.Lab.RawReplyFrom("attacker", extra4[3], victim4, trapTCP, 0x10, netnstest.OpenWait) {
		t.Errorf("an ACK with loose pickup off: no reset")
	}
	l.wantIn(SetTrap4, extra4[3], true)
	l.Run("victim", "sysctl", "-w", "net.netfilter.nf_conntrack_tcp_loose=1")

	// an ACK to a port that is no trap: reset, nothing held
	if !l.Lab.RawReplyFrom("attacker", client, victim4, otherPort, 0x10, netnstest.OpenWait) {
		t.Errorf("an ACK to a closed port that is no trap: no reset")
	}
	l.wantIn(SetTrap4, client, false)

	// the exempt source: neither held nor dropped
	l.SendRaw("benign", benign4, victim4, otherPort, "F", 3)
	time.Sleep(settle)
	l.wantIn(SetTrap4, benign4, false)
	l.wantReach(s, "benign", benign4, victim4, true)
	if out := l.backend("overflows"); out != "overflows 0\n" {
		t.Errorf("with room in the set: %q", out)
	}
}
