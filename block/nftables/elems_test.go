package nftables

// Unit tests of the pure parts: no kernel, no root.

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	nft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/block"
)

func TestElemTimeout(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		until time.Time
		want  time.Duration
		ok    bool
	}{
		{time.Time{}, 0, true},
		{now.Add(time.Hour), time.Hour, true},
		{now.Add(time.Hour + 300*time.Microsecond), time.Hour + time.Millisecond, true}, // rounded up
		{now.Add(10 * time.Millisecond), time.Second, true},                             // at least a second
		{now, 0, false},
		{now.Add(-time.Minute), 0, false},
		{now.Add(maxTimeout), maxTimeout, true},
		{now.Add(maxTimeout + time.Hour), 0, true}, // beyond a century: none
	} {
		got, ok := elemTimeout(c.until, now)
		if got != c.want || ok != c.ok {
			t.Errorf("elemTimeout(now%+v) = %v, %v; want %v, %v", c.until.Sub(now), got, ok, c.want, c.ok)
		}
	}
}

func TestNeedsReplace(t *testing.T) {
	for _, c := range []struct {
		k    kernelElem
		want time.Duration
		repl bool
	}{
		{kernelElem{}, 0, false},
		{kernelElem{}, time.Hour, true},
		{kernelElem{timeout: true, left: time.Hour}, 0, true},
		{kernelElem{timeout: true, left: time.Hour}, time.Hour + timeoutTolerance, false},
		{kernelElem{timeout: true, left: time.Hour}, time.Hour - timeoutTolerance, false},
		{kernelElem{timeout: true, left: time.Hour}, time.Hour + timeoutTolerance + time.Millisecond, true},
		{kernelElem{timeout: true, left: 10 * time.Second}, time.Hour, true},
	} {
		if got := needsReplace(c.k, c.want, timeoutTolerance); got != c.repl {
			t.Errorf("needsReplace(%+v, %v) = %v, want %v", c.k, c.want, got, c.repl)
		}
	}
}

func TestNormalize(t *testing.T) {
	a, f, err := normalize(netip.MustParseAddr("::ffff:198.51.100.7"))
	if err != nil || a != netip.MustParseAddr("198.51.100.7") || f.ban != setBan4 {
		t.Errorf("normalize of a mapped address: %v %v %v", a, f.ban, err)
	}
	a, f, err = normalize(netip.MustParseAddr("fe80::1%eth0"))
	if err != nil || a != netip.MustParseAddr("fe80::1") || f.ban != setBan6 {
		t.Errorf("normalize of a zoned address: %v %v %v", a, f.ban, err)
	}
	if _, _, err := normalize(netip.Addr{}); err == nil {
		t.Error("normalize of the zero address: no error")
	}
	for _, s := range []string{"198.51.100.7", "fd00:77::7"} {
		a := netip.MustParseAddr(s)
		if got, ok := addrOf(keyOf(a)); !ok || got != a {
			t.Errorf("addrOf(keyOf(%v)) = %v, %v", a, got, ok)
		}
	}
	if _, ok := addrOf([]byte{1, 2}); ok {
		t.Error("addrOf of a 2-byte key: ok")
	}
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func rangeStrings(rs []addrRange) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.from.String()+"-"+r.to.String())
	}
	return out
}

func TestExemptRanges(t *testing.T) {
	v4, v6 := exemptRanges(prefixes(
		"198.51.100.9/32", "127.0.0.1/32", "127.0.0.0/8", // contained
		"10.0.0.0/9", "10.128.0.0/9", // adjacent: one range
		"198.51.100.10/31", // touches .9
		"192.0.2.77/24",    // not masked
		"::1/128", "fd00:77::/64", "fd00:77::5/128",
		"::ffff:203.0.113.0/120", // mapped: also IPv4
	))
	want4 := []string{"10.0.0.0-10.255.255.255", "127.0.0.0-127.255.255.255", "192.0.2.0-192.0.2.255",
		"198.51.100.9-198.51.100.11", "203.0.113.0-203.0.113.255"}
	want6 := []string{"::1-::1", "::ffff:203.0.113.0-::ffff:203.0.113.255", "fd00:77::-fd00:77::ffff:ffff:ffff:ffff"}
	if got := rangeStrings(v4); !slices.Equal(got, want4) {
		t.Errorf("IPv4 ranges:\n%v\nwant\n%v", got, want4)
	}
	if got := rangeStrings(v6); !slices.Equal(got, want6) {
		t.Errorf("IPv6 ranges:\n%v\nwant\n%v", got, want6)
	}
	// An IPv6 prefix wider than the mapped space exempts all of IPv4.
	if v4, _ := exemptRanges(prefixes("::/0")); !slices.Equal(rangeStrings(v4), []string{"0.0.0.0-255.255.255.255"}) {
		t.Errorf("::/0 gives IPv4 ranges %v", rangeStrings(v4))
	}
	for _, c := range []struct {
		a    string
		want bool
	}{{"10.200.0.1", true}, {"11.0.0.0", false}, {"198.51.100.8", false}, {"198.51.100.11", true}, {"0.0.0.0", false}, {"255.255.255.255", false}} {
		if got := covered(v4, netip.MustParseAddr(c.a)); got != c.want {
			t.Errorf("covered(%s) = %v, want %v", c.a, got, c.want)
		}
	}
}

func TestIntervalElems(t *testing.T) {
	show := func(es []nft.SetElement) string {
		var b strings.Builder
		for _, e := range es {
			a, _ := addrOf(e.Key)
			b.WriteString(a.String())
			if e.IntervalEnd {
				b.WriteString("(end)")
			}
			b.WriteString(" ")
		}
		return strings.TrimSpace(b.String())
	}
	// As nft writes 10.0.0.0/8, 192.168.1.1, 240.0.0.0/4: an end at 0,
	// then start and end of each range, no end after the last address.
	v4, _ := exemptRanges(prefixes("10.0.0.0/8", "192.168.1.1/32", "240.0.0.0/4"))
	if got, want := show(intervalElems(v4)), "0.0.0.0(end) 10.0.0.0 11.0.0.0(end) 192.168.1.1 192.168.1.2(end) 240.0.0.0"; got != want {
		t.Errorf("interval elements:\n%s\nwant\n%s", got, want)
	}
	v4, _ = exemptRanges(prefixes("0.0.0.0/8"))
	if got, want := show(intervalElems(v4)), "0.0.0.0 1.0.0.0(end)"; got != want {
		t.Errorf("interval elements from zero: %s, want %s", got, want)
	}
	if got := intervalElems(nil); len(got) != 0 {
		t.Errorf("no ranges: %v", got)
	}
}

func TestSameElemsAndDedup(t *testing.T) {
	a := []nft.SetElement{{Key: []byte{1}}, {Key: []byte{2}, IntervalEnd: true}}
	b := []nft.SetElement{{Key: []byte{2}, IntervalEnd: true, Timeout: time.Hour}, {Key: []byte{1}}}
	if !sameElems(a, b) {
		t.Error("same elements in another order: not same")
	}
	if sameElems(a, []nft.SetElement{{Key: []byte{1}}, {Key: []byte{2}}}) {
		t.Error("an interval end and a start of one key: same")
	}
	dup := append(slices.Clone(a), nft.SetElement{Key: []byte{1}}, nft.SetElement{Key: []byte{2}})
	if got := dedupElems(dup); len(got) != 3 {
		t.Errorf("dedupElems: %d elements, want 3", len(got))
	}
}

func TestElemsByAddr(t *testing.T) {
	got := elemsByAddr([]nft.SetElement{
		{Key: keyOf(netip.MustParseAddr("198.51.100.1")), Timeout: time.Hour, Expires: 30 * time.Minute},
		{Key: keyOf(netip.MustParseAddr("198.51.100.2"))},
		{Key: keyOf(netip.MustParseAddr("198.51.100.3")), Timeout: time.Hour}, // expired, not yet collected
		{Key: []byte{1, 2, 3}},
	})
	want := map[netip.Addr]kernelElem{
		netip.MustParseAddr("198.51.100.1"): {timeout: true, left: 30 * time.Minute},
		netip.MustParseAddr("198.51.100.2"): {},
	}
	if len(got) != len(want) || got[netip.MustParseAddr("198.51.100.1")] != want[netip.MustParseAddr("198.51.100.1")] {
		t.Errorf("elemsByAddr: %v, want %v", got, want)
	}
	if _, ok := got[netip.MustParseAddr("198.51.100.2")]; !ok {
		t.Errorf("elemsByAddr lost the element without timeout: %v", got)
	}
}

func TestKeepElems(t *testing.T) {
	es := []nft.SetElement{
		{Key: keyOf(netip.MustParseAddr("198.51.100.1")), Timeout: time.Hour, Expires: time.Minute},
		{Key: keyOf(netip.MustParseAddr("198.51.100.2")), Timeout: time.Hour, Expires: 50 * time.Minute},
		{Key: keyOf(netip.MustParseAddr("198.51.100.3"))},
		{Key: keyOf(netip.MustParseAddr("198.51.100.4")), Timeout: time.Hour, Expires: 55 * time.Minute},
		{Key: keyOf(netip.MustParseAddr("fd00:77::1"))}, // other family
	}
	exempt, _ := exemptRanges(prefixes("198.51.100.4/32"))
	got := keepElems(setSpec{name: setTrap4, kind: kindTrap, key: nft.TypeIPAddr, size: 2}, es, exempt)
	if len(got) != 2 {
		t.Fatalf("keepElems kept %d, want 2", len(got))
	}
	// No timeout first, then the one with most left; .4 is exempt.
	if a, _ := addrOf(got[0].Key); a != netip.MustParseAddr("198.51.100.3") || got[0].Timeout != 0 {
		t.Errorf("first kept: %v timeout %v", a, got[0].Timeout)
	}
	if a, _ := addrOf(got[1].Key); a != netip.MustParseAddr("198.51.100.2") || got[1].Timeout != 50*time.Minute {
		t.Errorf("second kept: %v timeout %v", a, got[1].Timeout)
	}
}

// TestRuleTags: every rule has its own tag, a tag depends on the
// expressions (the trap's hold), and is stable.
func TestRuleTags(t *testing.T) {
	trap := &block.Trap{TCP: []uint16{22}, Hold: time.Hour}
	all := slices.Concat(preroutingRules(), inputRules(true), trapRules(trap))
	seen := map[string]bool{}
	for _, r := range all {
		tag := r.tag()
		if !strings.HasPrefix(tag, tagPrefix+r.name+"#") || strings.Contains(tag, "invalid") || seen[tag] {
			t.Errorf("rule %s: tag %q (bad or repeated)", r.name, tag)
		}
		seen[tag] = true
		if len(tag) > 255 {
			t.Errorf("rule %s: tag too long for a comment", r.name)
		}
	}
	if !slices.Equal(tags(trapRules(trap)), tags(trapRules(&block.Trap{TCP: []uint16{1, 2, 3}, Hold: time.Hour}))) {
		t.Error("trap rule tags depend on the ports (set contents, not rules)")
	}
	// which protocols are trapped decides which catches are armed
	if slices.Equal(tags(trapRules(trap)), tags(trapRules(&block.Trap{UDP: []uint16{53}, Hold: time.Hour}))) {
		t.Error("a TCP trap and a UDP trap have the same rules")
	}
	for _, r := range trapRules(&block.Trap{UDP: []uint16{53}, Hold: time.Hour}) {
		if strings.Contains(r.name, "-"+string(block.CatchStealth)+"-") || strings.Contains(r.name, "-"+string(block.CatchACK)+"-") {
			t.Errorf("a UDP-only trap has the TCP catch %s (a FIN scanner held although TCP is not to be blocked)", r.name)
		}
	}
	if slices.Equal(tags(trapRules(trap)), tags(trapRules(&block.Trap{Hold: 5 * time.Second}))) {
		t.Error("trap rule tags do not change with the hold")
	}
	r := ruleSpec{"x", preroutingRules()[0].exprs}
	if ruleTag(&nft.Rule{UserData: r.userData()}) != r.tag() {
		t.Error("a rule's comment does not read back as its tag")
	}
}

// TestParseElems decodes a set element message as the kernel sends it.
func TestParseElems(t *testing.T) {
	elem := func(key []byte, attrs ...[]byte) []byte {
		in := nlAttr(unix.NFTA_SET_ELEM_KEY|unix.NLA_F_NESTED, nlAttr(unix.NFTA_DATA_VALUE, key))
		for _, a := range attrs {
			in = append(in, a...)
		}
		return nlAttr(unix.NFTA_LIST_ELEM|unix.NLA_F_NESTED, in)
	}
	be64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	list := append(elem([]byte{198, 51, 100, 1}, nlAttr(unix.NFTA_SET_ELEM_TIMEOUT, be64(3600000)), nlAttr(unix.NFTA_SET_ELEM_EXPIRATION, be64(1800000))),
		elem([]byte{10, 0, 0, 0}, nlAttr(unix.NFTA_SET_ELEM_FLAGS, binary.BigEndian.AppendUint32(nil, unix.NFT_SET_ELEM_INTERVAL_END)))...)
	body := append([]byte{unix.NFPROTO_INET, 0, 0, 0}, nlAttr(unix.NFTA_SET_ELEM_LIST_TABLE, cstr("scanwarden"))...)
	body = append(body, nlAttr(unix.NFTA_SET_ELEM_LIST_ELEMENTS|unix.NLA_F_NESTED, list)...)
	es, err := parseElems(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || string(es[0].Key) != string([]byte{198, 51, 100, 1}) || es[0].Timeout != time.Hour || es[0].Expires != 30*time.Minute ||
		!es[1].IntervalEnd || es[1].Timeout != 0 {
		t.Errorf("parseElems: %+v", es)
	}
	if _, err := parseElems(append(body, 0xff, 0xff, 0, 0)); err == nil {
		t.Error("parseElems of a truncated attribute: no error")
	}
}

// TestHoldTimeout: the trap's element timeout is its hold in whole
// milliseconds, rounded up, at least a second and at most maxTimeout:
// never none. Every trap rule adds with it, TCP and UDP alike.
func TestHoldTimeout(t *testing.T) {
	for _, c := range []struct{ hold, want time.Duration }{
		{5 * time.Second, 5 * time.Second},
		{1500*time.Millisecond + time.Microsecond, 1501 * time.Millisecond},
		{time.Millisecond, time.Second},
		{0, time.Second},
		{time.Minute, time.Minute},
		{200 * 365 * 24 * time.Hour, maxTimeout},
	} {
		if got := holdTimeout(c.hold); got != c.want {
			t.Errorf("holdTimeout(%v) = %v, want %v", c.hold, got, c.want)
		}
	}
	n := 0
	for _, r := range trapRules(&block.Trap{TCP: []uint16{22}, UDP: []uint16{53}, Hold: 2 * time.Second}) {
		for _, e := range r.exprs {
			if d, ok := e.(*expr.Dynset); ok {
				n++
				if d.Timeout != 2*time.Second || d.Operation != uint32(unix.NFT_DYNSET_OP_ADD) {
					t.Errorf("rule %s adds with timeout %v (op %d), want 2s", r.name, d.Timeout, d.Operation)
				}
			}
		}
	}
	if n != 8 {
		t.Errorf("%d trap rules add to a trap set, want 8 (tcp, udp, stealth and ack; ip and ip6)", n)
	}
}

// TestTrapCatches: every catch has a trap and an overflow rule per
// family; the ACK catch's (ACK or FIN|ACK, ct state new or invalid, to a
// trap port) return, so that the packet reaches the host, the others
// drop; the stealth catch looks up no port, the others a trap port set.
func TestTrapCatches(t *testing.T) {
	rs := trapRules(&block.Trap{TCP: []uint16{22}, UDP: []uint16{53}, Hold: 5 * time.Second})
	n := 0
	for _, r := range rs {
		if strings.HasPrefix(r.name, "return-") {
			continue
		}
		n++
		v, ok := r.exprs[len(r.exprs)-1].(*expr.Verdict)
		ack := strings.Contains(r.name, "-"+string(block.CatchACK)+"-")
		want := expr.VerdictDrop
		if ack {
			want = expr.VerdictReturn
		}
		if !ok || v.Kind != want {
			t.Errorf("rule %s ends %v, want verdict %v", r.name, r.exprs[len(r.exprs)-1], want)
		}
		var ct, ports bool
		for _, e := range r.exprs {
			switch e := e.(type) {
			case *expr.Ct:
				ct = e.Key == expr.CtKeySTATE
			case *expr.Lookup:
				ports = ports || e.SetName == setTCPTraps || e.SetName == setUDPTraps
			}
		}
		if ct != ack {
			t.Errorf("rule %s: ct state match %v, want %v", r.name, ct, ack)
		}
		if stealth := strings.Contains(r.name, "-"+string(block.CatchStealth)+"-"); ports == stealth {
			t.Errorf("rule %s: looks up trap ports %v", r.name, ports)
		}
	}
	if n != 2*len(block.TrapCatches)*len(families) {
		t.Errorf("%d trap and overflow rules, want %d", n, 2*len(block.TrapCatches)*len(families))
	}
}
