package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/host"
)

var (
	macA = [6]byte{2, 0, 0, 0, 0, 0x66}
	macB = [6]byte{2, 0, 0, 0, 0, 0x20}
	macR = [6]byte{2, 0, 0, 0, 0, 0x01}
)

func viewOf(entries []host.Neighbour, routers ...string) *linkView {
	v := &linkView{n: host.NewNeighbours(entries, []host.Connected{{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Link: 2}})}
	r := host.Routes{Next: map[netip.Addr]struct{}{}, Within: []netip.Prefix{netip.MustParsePrefix("198.51.100.128/28")}}
	for _, a := range routers {
		r.Next[netip.MustParseAddr(a)] = struct{}{}
	}
	v.routes.Store(&r)
	return v
}

func neighbour(addr string, st host.NeighState, mac [6]byte) host.Neighbour {
	return host.Neighbour{Addr: netip.MustParseAddr(addr), Link: 2, State: st, MAC: mac, HasMAC: mac != [6]byte{}}
}

// The daemon's view of the link answers the judge from the kernel's
// neighbour table and routes.
func TestLinkView(t *testing.T) {
	v := viewOf([]host.Neighbour{
		neighbour("198.51.100.20", host.NeighStale, macB),
		neighbour("198.51.100.201", host.NeighFailed, [6]byte{}),
		neighbour("198.51.100.1", host.NeighReachable, macR),
		neighbour("198.51.100.150", host.NeighIncomplete, [6]byte{}),
	}, "198.51.100.1")
	cases := []struct {
		addr string
		want detect.NeighInfo
	}{
		{"198.51.100.20", detect.NeighInfo{OnLink: true, State: detect.NeighBound, MAC: macB}},
		{"198.51.100.201", detect.NeighInfo{OnLink: true, State: detect.NeighFailed}},
		{"198.51.100.150", detect.NeighInfo{OnLink: true}},
		{"203.0.113.20", detect.NeighInfo{}},
		{"198.51.100.130", detect.NeighInfo{}}, // routed elsewhere by a more specific route
	}
	for _, c := range cases {
		if got := v.Neighbour(netip.MustParseAddr(c.addr)); got != c.want {
			t.Errorf("Neighbour(%s) = %+v, want %+v", c.addr, got, c.want)
		}
	}
	if a, router, ok := v.Owner(macR); !ok || !router || a != netip.MustParseAddr("198.51.100.1") {
		t.Errorf("Owner(router's MAC) = %v %v %v", a, router, ok)
	}
	if a, router, ok := v.Owner(macB); !ok || router || a != netip.MustParseAddr("198.51.100.20") {
		t.Errorf("Owner(benign's MAC) = %v %v %v", a, router, ok)
	}
	if _, _, ok := v.Owner(macA); ok {
		t.Error("Owner of an unknown MAC")
	}
	var none *linkView
	if ni := none.Neighbour(netip.MustParseAddr("198.51.100.20")); ni != (detect.NeighInfo{}) {
		t.Errorf("a nil view knows %+v", ni)
	}
}

func pendingAlert(src string, mac [6]byte) *detect.Alert {
	a := &detect.Alert{Src: netip.MustParseAddr(src), Type: detect.TypeSYN, Proto: detect.ProtoTCP, Port: 1}
	a.Link = detect.LinkSeen{MAC: mac, MACs: 1}
	return a
}

// An alert waiting for its source's resolution waits while the kernel
// resolves, is handed off genuine when the source answers from the
// frames' MAC, forged when another MAC answers or nobody does in time.
func TestSettle(t *testing.T) {
	d := &daemon{alerts: make(chan alertItem, alertQueue)}
	now := time.Now()
	wait := func(a *detect.Alert, left time.Duration) waiting { return waiting{a: a, until: now.Add(left)} }
	list := []waiting{
		wait(pendingAlert("198.51.100.150", macA), time.Second),
		wait(pendingAlert("198.51.100.151", macA), time.Second),
		wait(pendingAlert("198.51.100.152", macA), time.Second),
		wait(pendingAlert("198.51.100.153", macA), -time.Millisecond),
	}
	d.link = viewOf(nil)
	list = d.settle(context.Background(), list, now)
	if len(list) != 3 || len(d.alerts) != 1 {
		t.Fatalf("nothing resolved: %d waiting, %d handed off, want 3 and the one past its time", len(list), len(d.alerts))
	}
	it := <-d.alerts
	if j := it.a.Origin; it.a.Src != netip.MustParseAddr("198.51.100.153") || j.Verdict != detect.Forged || !strings.Contains(j.Evidence, "no host answered") {
		t.Fatalf("past its time: %s %v %q", it.a.Src, j.Verdict, j.Evidence)
	}
	d.link = viewOf([]host.Neighbour{
		neighbour("198.51.100.150", host.NeighReachable, macA),
		neighbour("198.51.100.151", host.NeighReachable, macB),
	})
	list = d.settle(context.Background(), list, now)
	if len(list) != 1 || list[0].a.Src != netip.MustParseAddr("198.51.100.152") || len(d.alerts) != 2 {
		t.Fatalf("after resolution: %d waiting, %d handed off", len(list), len(d.alerts))
	}
	want := map[string]detect.Verdict{"198.51.100.150": detect.Genuine, "198.51.100.151": detect.Forged}
	for range 2 {
		it := <-d.alerts
		if v := want[it.a.Src.String()]; it.a.Origin.Verdict != v {
			t.Errorf("%s: %v %q, want %v", it.a.Src, it.a.Origin.Verdict, it.a.Origin.Evidence, v)
		}
	}
}

// judge hands a judged alert on at once, puts a pending one aside, and
// past waitingMax lets none wait: not blocked, and re-armed.
func TestJudgePending(t *testing.T) {
	d := &daemon{waits: make(chan *detect.Alert, 2), link: viewOf([]host.Neighbour{neighbour("198.51.100.66", host.NeighStale, macA)})}
	org := detect.NewOrigins()
	if !d.judge(org, pendingAlert("198.51.100.66", macA)) {
		t.Fatal("a source of its own MAC was put aside")
	}
	// a never-block address is not judged: it waits for nothing
	d.parts = &parts{never: block.NewNeverBlock([]netip.Prefix{netip.MustParsePrefix("198.51.100.140/32")})}
	if a := pendingAlert("198.51.100.140", macA); !d.judge(org, a) || a.Origin.Verdict != detect.Unjudged {
		t.Fatalf("a never-block source: %v", a.Origin.Verdict)
	}
	for i := range 2 {
		if d.judge(org, pendingAlert("198.51.100.15"+string(rune('0'+i)), macA)) {
			t.Fatal("an unresolved source was handed off")
		}
	}
	a := pendingAlert("198.51.100.159", macA)
	if !d.judge(org, a) || a.Origin.Verdict != detect.Forged || !strings.Contains(a.Origin.Evidence, "not checked") {
		t.Fatalf("past the bound: %v %q", a.Origin.Verdict, a.Origin.Evidence)
	}
}

// TestJudgeBoundCountsTheResolving: the bound on waiting alerts counts
// those resolveLoop has taken from the channel too, until it hands them
// off: a flood of forged on-link sources keeps at most cap(waits) alerts
// (waitingMax) waiting, not a channel's worth more every time the loop
// drains it.
func TestJudgeBoundCountsTheResolving(t *testing.T) {
	d := &daemon{waits: make(chan *detect.Alert, 3), alerts: make(chan alertItem, alertQueue), link: viewOf(nil)}
	org := detect.NewOrigins()
	var list []waiting
	past := time.Now().Add(-time.Second)
	for i := range 3 {
		if d.judge(org, pendingAlert(fmt.Sprintf("198.51.100.%d", 150+i), macA)) {
			t.Fatal("an unresolved source was handed off")
		}
		list = append(list, waiting{a: <-d.waits, until: past}) // as resolveLoop takes it
	}
	a := pendingAlert("198.51.100.160", macA)
	if !d.judge(org, a) || a.Origin.Verdict != detect.Forged {
		t.Fatalf("a fourth alert while three are being resolved: %v", a.Origin.Verdict)
	}
	// handed off (their time is up), they leave room
	if list = d.settle(context.Background(), list, time.Now()); len(list) != 0 || len(d.alerts) != 3 {
		t.Fatalf("settle kept %d, handed off %d", len(list), len(d.alerts))
	}
	if d.judge(org, pendingAlert("198.51.100.161", macA)) {
		t.Fatal("no room once the others were handed off")
	}
}

// TestPollPeriod: the waiting alerts are looked at every millisecond while
// the newest has waited less than resolveFast, then every resolvePoll.
func TestPollPeriod(t *testing.T) {
	now := time.Now()
	old := waiting{since: now.Add(-time.Second)}
	young := waiting{since: now.Add(-resolveFast / 2)}
	for _, tc := range []struct {
		list []waiting
		want time.Duration
	}{
		{nil, resolvePoll},
		{[]waiting{old}, resolvePoll},
		{[]waiting{old, young}, resolvePollFast},
		{[]waiting{young}, resolvePollFast},
	} {
		if got := pollPeriod(tc.list, now); got != tc.want {
			t.Errorf("%d waiting: %v, want %v", len(tc.list), got, tc.want)
		}
	}
}
