package host

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/netnstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var (
	mac1 = [6]byte{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	mac2 = [6]byte{0x02, 0x00, 0x5e, 0x10, 0x00, 0x02}
	mac3 = [6]byte{0x02, 0x00, 0x5e, 0x10, 0x00, 0x03}
)

// nmsg is a neighbour as netlink reports it: an IPv4 address in 4 bytes,
// a MAC when one is given, the state entered ticks (USER_HZ) ago.
func nmsg(addr string, link int, state NeighState, mac []byte, ticks uint32) netlink.Neigh {
	a := netip.MustParseAddr(addr)
	m := netlink.Neigh{LinkIndex: link, Family: netlink.FAMILY_V6, State: int(state), IP: a.AsSlice(), Updated: ticks}
	if a.Is4() {
		m.Family = netlink.FAMILY_V4
	}
	if mac != nil {
		m.HardwareAddr = net.HardwareAddr(mac)
	}
	return m
}

func newMsg(m netlink.Neigh) *netlink.NeighUpdate {
	return &netlink.NeighUpdate{Type: unix.RTM_NEWNEIGH, Neigh: m}
}

func delMsg(m netlink.Neigh) *netlink.NeighUpdate {
	return &netlink.NeighUpdate{Type: unix.RTM_DELNEIGH, Neigh: m}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestNeighStates(t *testing.T) {
	for _, c := range []struct {
		s        NeighState
		name     string
		resolved bool
	}{
		{NeighNone, "none", false},
		{NeighIncomplete, "incomplete", false},
		{NeighReachable, "reachable", true},
		{NeighStale, "stale", true},
		{NeighDelay, "delay", true},
		{NeighProbe, "probe", true},
		{NeighFailed, "failed", false},
		{NeighNoARP, "noarp", true},
		{NeighPermanent, "permanent", true},
		{NeighState(0x22), "state(0x22)", true}, // not a state the kernel gives
	} {
		if c.s.String() != c.name || c.s.Resolved() != c.resolved {
			t.Errorf("%#x: %q resolved %v, want %q %v", uint8(c.s), c.s, c.s.Resolved(), c.name, c.resolved)
		}
	}
}

// TestNeighboursInjected looks entries up in a table made of injected
// ones: by address (unmapped, without zone), by address and interface;
// states, MACs and times as given.
func TestNeighboursInjected(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	n := NewNeighbours([]Neighbour{
		{Addr: mustAddr("198.51.100.2"), Link: 2, State: NeighReachable, MAC: mac1, HasMAC: true, Changed: t0},
		{Addr: mustAddr("::ffff:198.51.100.3"), Link: 2, State: NeighStale, MAC: mac2, HasMAC: true},
		{Addr: mustAddr("198.51.100.9"), Link: 2, State: NeighFailed},
		{Addr: mustAddr("fd00:77::9"), Link: 2, State: NeighIncomplete},
		{Addr: mustAddr("fe80::1%d0"), Link: 3, State: NeighDelay, MAC: mac3, HasMAC: true},
	}, nil)
	select {
	case <-n.Done():
	default:
		t.Error("Done is open")
	}
	if n.Len() != 5 || n.Refused() != 0 {
		t.Errorf("len %d refused %d", n.Len(), n.Refused())
	}
	for _, c := range []struct {
		addr  string
		link  int
		state NeighState
		mac   *[6]byte
	}{
		{"198.51.100.2", 2, NeighReachable, &mac1},
		{"::ffff:198.51.100.2", 2, NeighReachable, &mac1},
		{"198.51.100.3", 2, NeighStale, &mac2},
		{"198.51.100.9", 2, NeighFailed, nil},
		{"fd00:77::9", 2, NeighIncomplete, nil},
		{"fe80::1", 3, NeighDelay, &mac3},
		{"fe80::1%other", 3, NeighDelay, &mac3},
	} {
		a := mustAddr(c.addr)
		for _, how := range []string{"Lookup", "LookupOn"} {
			e, ok := n.Lookup(a)
			if how == "LookupOn" {
				e, ok = n.LookupOn(a, c.link)
			}
			if !ok || e.Addr != a.Unmap().WithZone("") || e.Link != c.link || e.State != c.state || e.HasMAC != (c.mac != nil) ||
				c.mac != nil && e.MAC != *c.mac || e.Changed.IsZero() {
				t.Errorf("%s(%s): %+v %v", how, c.addr, e, ok)
			}
		}
	}
	if e, _ := n.Lookup(mustAddr("198.51.100.2")); !e.Changed.Equal(t0) {
		t.Errorf("Changed %v, want %v", e.Changed, t0)
	}
	for _, a := range []string{"198.51.100.4", "fd00:77::2", "203.0.113.2"} {
		if e, ok := n.Lookup(mustAddr(a)); ok {
			t.Errorf("Lookup(%s): %+v", a, e)
		}
	}
	if e, ok := n.LookupOn(mustAddr("198.51.100.2"), 3); ok {
		t.Errorf("LookupOn(198.51.100.2, 3): %+v", e)
	}
	var got []string
	for _, e := range n.Entries() {
		got = append(got, fmt.Sprintf("%s@%d", e.Addr, e.Link))
	}
	if want := "198.51.100.2@2 198.51.100.3@2 198.51.100.9@2 fd00:77::9@2 fe80::1@3"; strings.Join(got, " ") != want {
		t.Errorf("entries %q, want %q", got, want)
	}
	if err := n.Refresh(); err != nil {
		t.Errorf("Refresh of a fixed table: %v", err)
	}
}

// TestNeighboursLookupPrefers gives an address entries on several
// interfaces: Lookup returns a resolved one before one that is not, then
// the one changed last; LookupOn the one asked for.
func TestNeighboursLookupPrefers(t *testing.T) {
	t0 := time.Now()
	a := mustAddr("fe80::7")
	n := NewNeighbours([]Neighbour{
		{Addr: a, Link: 2, State: NeighFailed, Changed: t0.Add(3 * time.Second)},
		{Addr: a, Link: 3, State: NeighStale, MAC: mac1, HasMAC: true, Changed: t0},
		{Addr: a, Link: 4, State: NeighReachable, MAC: mac2, HasMAC: true, Changed: t0.Add(time.Second)},
		{Addr: a, Link: 5, State: NeighIncomplete, Changed: t0.Add(2 * time.Second)},
	}, nil)
	if e, ok := n.Lookup(a); !ok || e.Link != 4 {
		t.Errorf("Lookup: %+v %v, want link 4", e, ok)
	}
	for l := 2; l <= 5; l++ {
		if e, ok := n.LookupOn(a, l); !ok || e.Link != l {
			t.Errorf("LookupOn(%d): %+v %v", l, e, ok)
		}
	}
	// the resolved ones deleted: the newest of the others
	n.mu.Lock()
	n.del(neighKey{a, 3})
	n.del(neighKey{a, 4})
	n.mu.Unlock()
	if e, ok := n.Lookup(a); !ok || e.Link != 2 {
		t.Errorf("Lookup: %+v %v, want link 2", e, ok)
	}
	if len(n.entries[a].more) != 1 || n.Len() != 2 {
		t.Errorf("slot %+v", n.entries[a])
	}
	n.mu.Lock()
	n.del(neighKey{a, 2})
	n.del(neighKey{a, 5})
	n.del(neighKey{a, 5})
	n.mu.Unlock()
	if _, ok := n.entries[a]; ok || n.Len() != 0 {
		t.Errorf("after deleting every entry: %v, %d entries", n.entries, n.Len())
	}
}

// TestNeighboursUpdates applies the subscription's messages: entries made,
// changed (Changed from the kernel's ticks, kept while the state and
// address repeat), deleted; messages of other families, proxies and
// link-layer addresses not of 6 bytes.
func TestNeighboursUpdates(t *testing.T) {
	n := NewNeighbours(nil, nil)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	n.now = func() time.Time { return now }
	get := func(addr string, link int) Neighbour {
		t.Helper()
		e, ok := n.LookupOn(mustAddr(addr), link)
		if !ok {
			t.Fatalf("%s on %d: no entry", addr, link)
		}
		return e
	}
	n.apply(newMsg(nmsg("198.51.100.2", 2, NeighReachable, mac1[:], 150)))
	if e := get("198.51.100.2", 2); e.State != NeighReachable || !e.HasMAC || e.MAC != mac1 || !e.Changed.Equal(now.Add(-1500*time.Millisecond)) {
		t.Errorf("new: %+v", e)
	}
	// the same again, later: unchanged
	now = now.Add(10 * time.Second)
	n.apply(newMsg(nmsg("198.51.100.2", 2, NeighReachable, mac1[:], 3)))
	if e := get("198.51.100.2", 2); !e.Changed.Equal(now.Add(-11500 * time.Millisecond)) {
		t.Errorf("repeated: Changed %v", e.Changed)
	}
	// a new state
	n.apply(newMsg(nmsg("198.51.100.2", 2, NeighStale, mac1[:], 0)))
	if e := get("198.51.100.2", 2); e.State != NeighStale || !e.Changed.Equal(now) {
		t.Errorf("stale: %+v", e)
	}
	// a new MAC, same state
	now = now.Add(time.Second)
	n.apply(newMsg(nmsg("198.51.100.2", 2, NeighStale, mac2[:], 0)))
	if e := get("198.51.100.2", 2); e.MAC != mac2 || !e.Changed.Equal(now) {
		t.Errorf("new MAC: %+v", e)
	}
	// an IPv4 address in 16 bytes, as net.ParseIP gives it
	m := nmsg("198.51.100.5", 2, NeighFailed, nil, 0)
	m.IP = net.ParseIP("198.51.100.5")
	n.apply(newMsg(m))
	if e := get("198.51.100.5", 2); e.State != NeighFailed || e.HasMAC {
		t.Errorf("failed: %+v", e)
	}
	// IPv6, incomplete then reachable
	n.apply(newMsg(nmsg("fd00:77::2", 2, NeighIncomplete, nil, 0)))
	if e := get("fd00:77::2", 2); e.State != NeighIncomplete || e.HasMAC {
		t.Errorf("incomplete: %+v", e)
	}
	now = now.Add(time.Second)
	n.apply(newMsg(nmsg("fd00:77::2", 2, NeighReachable, mac3[:], 0)))
	if e := get("fd00:77::2", 2); e.State != NeighReachable || e.MAC != mac3 || !e.Changed.Equal(now) {
		t.Errorf("resolved: %+v", e)
	}
	// a resolved entry whose link-layer address is no MAC (a tunnel's)
	n.apply(newMsg(nmsg("203.0.113.2", 7, NeighNoARP, []byte{198, 51, 100, 1}, 0)))
	if e := get("203.0.113.2", 7); e.HasMAC || e.State != NeighNoARP {
		t.Errorf("tunnel: %+v", e)
	}
	// ignored: a bridge's forwarding entry, a proxy entry, no address, a
	// message of another type
	bridge := nmsg("198.51.100.6", 2, NeighReachable, mac1[:], 0)
	bridge.Family = unix.AF_BRIDGE
	proxy := nmsg("198.51.100.7", 2, NeighReachable, mac1[:], 0)
	proxy.Flags = netlink.NTF_PROXY
	noIP := nmsg("198.51.100.8", 2, NeighReachable, mac1[:], 0)
	noIP.IP = nil
	before := n.Len()
	for _, u := range []*netlink.NeighUpdate{newMsg(bridge), newMsg(proxy), newMsg(noIP),
		{Type: unix.RTM_GETNEIGH, Neigh: nmsg("198.51.100.9", 2, NeighReachable, mac1[:], 0)}} {
		n.apply(u)
	}
	if n.Len() != before {
		t.Errorf("ignored messages made entries: %v", n.Entries())
	}
	// deleted, whatever the state the message says
	n.apply(delMsg(nmsg("198.51.100.2", 2, NeighFailed, nil, 0)))
	n.apply(delMsg(nmsg("198.51.100.99", 2, NeighFailed, nil, 0))) // none such
	if e, ok := n.Lookup(mustAddr("198.51.100.2")); ok {
		t.Errorf("deleted: %+v", e)
	}
	if n.Len() != 3 || len(n.entries) != 3 {
		t.Errorf("%d entries: %v", n.Len(), n.entries)
	}
}

// TestNeighboursBound fills the table past its bound: the entries past it
// are refused and counted; those held are still updated; a deletion makes
// room.
func TestNeighboursBound(t *testing.T) {
	entries := make([]Neighbour, 0, neighMax+10)
	for i := range neighMax + 10 {
		// fd00:77::0 to fd00:77::ffff, then 198.51.100.0 to .9
		a := netip.AddrFrom16([16]byte{0xfd, 0, 0, 0x77, 14: byte(i >> 8), 15: byte(i)})
		if i >= 1<<16 {
			a = netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		}
		entries = append(entries, Neighbour{Addr: a, Link: 2, State: NeighStale, MAC: mac1, HasMAC: true})
	}
	n := NewNeighbours(entries, nil)
	if n.Len() != neighMax || n.Refused() != 10 {
		t.Fatalf("len %d refused %d", n.Len(), n.Refused())
	}
	if _, ok := n.Lookup(entries[neighMax].Addr); ok {
		t.Errorf("an entry past the bound is held")
	}
	held := entries[7].Addr.String()
	n.apply(newMsg(nmsg(held, 2, NeighReachable, mac2[:], 0)))
	if e, _ := n.Lookup(entries[7].Addr); e.State != NeighReachable || e.MAC != mac2 {
		t.Errorf("an update of a held entry: %+v", e)
	}
	n.apply(newMsg(nmsg("203.0.113.1", 2, NeighReachable, mac2[:], 0)))
	if _, ok := n.Lookup(mustAddr("203.0.113.1")); ok || n.Refused() != 11 {
		t.Errorf("a new entry in a full table: refused %d", n.Refused())
	}
	n.apply(delMsg(nmsg(held, 2, NeighReachable, nil, 0)))
	n.apply(newMsg(nmsg("203.0.113.1", 2, NeighReachable, mac2[:], 0)))
	if _, ok := n.Lookup(mustAddr("203.0.113.1")); !ok || n.Len() != neighMax {
		t.Errorf("after a deletion: len %d", n.Len())
	}
}

// TestOnLink asks whether addresses are on connected networks, IPv4 and
// IPv6, the longest prefix first; and makes the networks of the host's
// addresses as netlink lists them.
func TestOnLink(t *testing.T) {
	n := NewNeighbours(nil, []Connected{
		{Prefix: netip.MustParsePrefix("198.51.100.10/24"), Link: 2}, // not masked
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Link: 2},  // the same
		{Prefix: netip.MustParsePrefix("198.51.100.0/26"), Link: 3},
		{Prefix: netip.MustParsePrefix("::ffff:203.0.113.0/120"), Link: 4},
		{Prefix: netip.MustParsePrefix("fd00:77::1/64"), Link: 2},
		{Prefix: netip.MustParsePrefix("fe80::/64"), Link: 2},
		{Prefix: netip.MustParsePrefix("fe80::/64"), Link: 3},
		{}, // invalid
	})
	var conn []string
	for _, c := range n.Connected() {
		conn = append(conn, fmt.Sprintf("%s@%d", c.Prefix, c.Link))
	}
	if want := "fd00:77::/64@2 fe80::/64@2 fe80::/64@3 198.51.100.0/26@3 198.51.100.0/24@2 203.0.113.0/24@4"; strings.Join(conn, " ") != want {
		t.Errorf("connected %q, want %q", conn, want)
	}
	for _, c := range []struct {
		addr string
		link int // 0: not on-link
	}{
		{"198.51.100.1", 3},
		{"198.51.100.200", 2},
		{"::ffff:198.51.100.200", 2},
		{"203.0.113.77", 4},
		{"198.51.101.1", 0},
		{"192.0.2.1", 0},
		{"fd00:77::77", 2},
		{"fd00:77::77%d0", 2},
		{"fd00:77:0:1::77", 0},
		{"fe80::1", 2},
		{"::1", 0},
		{"127.0.0.1", 0},
	} {
		l, ok := n.OnLinkIndex(mustAddr(c.addr))
		if ok != (c.link != 0) || l != c.link || n.OnLink(mustAddr(c.addr)) != ok {
			t.Errorf("OnLinkIndex(%s) = %d %v, want %d", c.addr, l, ok, c.link)
		}
	}

	mask := func(s string) *net.IPNet {
		ip, ipn, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		ipn.IP = ip
		return ipn
	}
	odd := mask("192.0.2.9/24")
	odd.Mask = net.IPMask{255, 0, 255, 0}
	got := connectedOf([]netlink.Addr{
		{IPNet: mask("198.51.100.10/24"), LinkIndex: 2, Scope: unix.RT_SCOPE_UNIVERSE},
		{IPNet: mask("127.0.0.1/8"), LinkIndex: 1, Scope: unix.RT_SCOPE_HOST},
		{IPNet: mask("::1/128"), LinkIndex: 1, Scope: unix.RT_SCOPE_HOST},
		{IPNet: mask("203.0.113.1/32"), LinkIndex: 1, Scope: unix.RT_SCOPE_UNIVERSE}, // on lo
		{IPNet: mask("fd00:77::10/64"), LinkIndex: 2, Scope: unix.RT_SCOPE_UNIVERSE},
		{IPNet: mask("fe80::10/64"), LinkIndex: 2, Scope: unix.RT_SCOPE_LINK},
		{IPNet: mask("192.0.2.1/32"), Peer: mask("192.0.2.2/30"), LinkIndex: 5, Scope: unix.RT_SCOPE_UNIVERSE}, // point-to-point
		{IPNet: odd, LinkIndex: 2},
		{LinkIndex: 2},
	})
	var s []string
	for _, c := range got {
		s = append(s, fmt.Sprintf("%s@%d", c.Prefix, c.Link))
	}
	if want := "198.51.100.10/24@2 fd00:77::10/64@2 fe80::10/64@2 192.0.2.2/30@5"; strings.Join(s, " ") != want {
		t.Errorf("connectedOf: %q, want %q", s, want)
	}
	n.setConnected(got)
	if l, ok := n.OnLinkIndex(mustAddr("192.0.2.1")); !ok || l != 5 {
		t.Errorf("point-to-point: %d %v", l, ok)
	}
	if n.OnLink(mustAddr("203.0.113.1")) || n.OnLink(mustAddr("127.0.0.2")) {
		t.Error("lo's addresses are on-link")
	}
}

// TestNeighboursLookupsDoNotAllocate: Lookup, LookupOn, OnLink and
// OnLinkIndex run per alert.
func TestNeighboursLookupsDoNotAllocate(t *testing.T) {
	a, b := mustAddr("198.51.100.2"), mustAddr("fe80::1%d0")
	n := NewNeighbours([]Neighbour{
		{Addr: a, Link: 2, State: NeighReachable, MAC: mac1, HasMAC: true},
		{Addr: b, Link: 2, State: NeighStale, MAC: mac1, HasMAC: true},
		{Addr: b, Link: 3, State: NeighStale, MAC: mac2, HasMAC: true},
	}, []Connected{{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Link: 2}, {Prefix: netip.MustParsePrefix("fe80::/64"), Link: 2}})
	allocs := testing.AllocsPerRun(100, func() {
		_, _ = n.Lookup(a)
		_, _ = n.Lookup(b)
		_, _ = n.LookupOn(b, 3)
		_, _ = n.Lookup(mustAddr("192.0.2.1"))
		_ = n.OnLink(b)
		_, _ = n.OnLinkIndex(a)
	})
	if allocs != 0 {
		t.Errorf("%v allocations a run", allocs)
	}
}

// TestNeighboursConcurrent looks up while the table changes (for the race
// detector).
func TestNeighboursConcurrent(t *testing.T) {
	n := NewNeighbours(nil, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := range 16 {
					a := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
					if e, ok := n.Lookup(a); ok && e.Addr != a {
						t.Errorf("Lookup(%s): %+v", a, e)
					}
					_ = n.OnLink(a)
				}
			}
		}()
	}
	for i := range 2000 {
		m := nmsg(fmt.Sprintf("198.51.100.%d", i%16), 2+i%2, NeighState(1<<(i%8)), mac1[:], 0)
		if i%3 == 0 {
			n.apply(delMsg(m))
		} else {
			n.apply(newMsg(m))
		}
		if i%100 == 0 {
			n.setConnected([]Connected{{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, 0}), 24+i%8), Link: 2}})
		}
	}
	close(stop)
	wg.Wait()
}

// fakeFeed stands in for the library's subscriptions of one kind: each is
// a goroutine that forwards the test's messages, closes its channel when
// done is closed or when the test ends it with an error (as the library
// does on a failed read or an overrun), and tells the error callback.
type fakeFeed[T any] struct {
	mu   sync.Mutex
	subs []*fakeFeedSub[T]
	fail error // a subscription cannot be made
}

type fakeFeedSub[T any] struct {
	send  chan T
	kill  chan error
	done  <-chan struct{}
	ended chan struct{} // closed with the channel
}

func (f *fakeFeed[T]) subscribe(ch chan<- T, done <-chan struct{}, cb func(error), list bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cb == nil || list || done == nil {
		return errors.New("want an error callback, a done channel, and no listing")
	}
	if f.fail != nil {
		return f.fail
	}
	s := &fakeFeedSub[T]{send: make(chan T), kill: make(chan error), done: done, ended: make(chan struct{})}
	go func() {
		defer close(s.ended)
		defer close(ch)
		for {
			select {
			case <-done:
				cb(errors.New("Receive failed: use of closed file"))
				return
			case err := <-s.kill:
				cb(fmt.Errorf("Receive failed: %v", err))
				return
			case m := <-s.send:
				ch <- m
			}
		}
	}()
	f.subs = append(f.subs, s)
	return nil
}

// live returns the subscription not ended yet, nil when none.
func (f *fakeFeed[T]) live() *fakeFeedSub[T] {
	f.mu.Lock()
	defer f.mu.Unlock()
	var live *fakeFeedSub[T]
	for _, s := range f.subs {
		select {
		case <-s.ended:
		default:
			live = s
		}
	}
	return live
}

func (f *fakeFeed[T]) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func (f *fakeFeed[T]) all() []*fakeFeedSub[T] {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.subs)
}

// fakeKernel is the neighbour and address tables behind WatchNeighbours
// in the tests: its subscriptions, its dumps.
type fakeKernel struct {
	neigh fakeFeed[netlink.NeighUpdate]
	addr  fakeFeed[netlink.AddrUpdate]

	mu                    sync.Mutex
	neighs                []netlink.Neigh
	addrs                 []netlink.Addr
	neighErr, addrErr     error
	neighDumps, addrDumps int
}

func (k *fakeKernel) install(t *testing.T) {
	saved := neighSources
	t.Cleanup(func() { neighSources = saved })
	neighSources.neighSub = func(ch chan<- netlink.NeighUpdate, done <-chan struct{}, o netlink.NeighSubscribeOptions) error {
		return k.neigh.subscribe(ch, done, o.ErrorCallback, o.ListExisting)
	}
	neighSources.addrSub = func(ch chan<- netlink.AddrUpdate, done <-chan struct{}, o netlink.AddrSubscribeOptions) error {
		return k.addr.subscribe(ch, done, o.ErrorCallback, o.ListExisting)
	}
	neighSources.neighList = func() ([]netlink.Neigh, error) {
		k.mu.Lock()
		defer k.mu.Unlock()
		k.neighDumps++
		return slices.Clone(k.neighs), k.neighErr
	}
	neighSources.addrList = func() ([]netlink.Addr, error) {
		k.mu.Lock()
		defer k.mu.Unlock()
		k.addrDumps++
		return slices.Clone(k.addrs), k.addrErr
	}
}

func (k *fakeKernel) set(neighs []netlink.Neigh, neighErr error, addrs []netlink.Addr, addrErr error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.neighs, k.neighErr, k.addrs, k.addrErr = neighs, neighErr, addrs, addrErr
}

func (k *fakeKernel) dumps() (neigh, addr int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.neighDumps, k.addrDumps
}

// waitFor polls cond for up to 3 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 3s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// table renders the table as "addr@link state mac" lines.
func table(n *Neighbours) string {
	var s []string
	for _, e := range n.Entries() {
		mac := "-"
		if e.HasMAC {
			mac = net.HardwareAddr(e.MAC[:]).String()
		}
		s = append(s, fmt.Sprintf("%s@%d %s %s", e.Addr, e.Link, e.State, mac))
	}
	return strings.Join(s, "\n")
}

func addr4(s string, link int) netlink.Addr {
	ip, ipn, _ := net.ParseCIDR(s)
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	ipn.IP = ip
	return netlink.Addr{IPNet: ipn, LinkIndex: link, Scope: unix.RT_SCOPE_UNIVERSE}
}

// TestWatchNeighboursFollows drives WatchNeighbours over a fake kernel:
// the first dumps fill the table (other families and proxies left out);
// neighbour messages are applied; address messages make the connected
// networks read again; an overrun makes the subscription again and dumps
// the table again, not an error, removing what the dump does not list; a
// failed read is told and its subscription made again; a renewal or a
// dump that fails is told and retried; Refresh dumps; when ctx ends every
// subscription ends, Done closes and onErr is not called any more.
func TestWatchNeighboursFollows(t *testing.T) {
	k := &fakeKernel{}
	k.install(t)
	bridge := nmsg("198.51.100.6", 2, NeighReachable, mac1[:], 0)
	bridge.Family = unix.AF_BRIDGE
	proxy := nmsg("198.51.100.7", 2, NeighReachable, mac1[:], 0)
	proxy.Flags = netlink.NTF_PROXY
	k.set([]netlink.Neigh{
		nmsg("198.51.100.2", 2, NeighReachable, mac1[:], 0),
		nmsg("fd00:77::2", 2, NeighStale, mac1[:], 0),
		nmsg("198.51.100.9", 2, NeighFailed, nil, 0),
		bridge, proxy,
	}, nil, []netlink.Addr{addr4("198.51.100.1/24", 2)}, nil)
	errs := make(chan error, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := WatchNeighbours(ctx, func(err error) { errs <- err })
	if err != nil {
		t.Fatal(err)
	}
	noError := func(what string) {
		t.Helper()
		select {
		case err := <-errs:
			t.Errorf("%s: error %v", what, err)
		default:
		}
	}
	wantTable := func(what, want string) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for table(n) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: table\n%s\nwant\n%s", what, table(n), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wantTable("first dump", "198.51.100.2@2 reachable 02:00:5e:10:00:01\n198.51.100.9@2 failed -\nfd00:77::2@2 stale 02:00:5e:10:00:01")
	if !n.OnLink(mustAddr("198.51.100.77")) || n.OnLink(mustAddr("fd00:77::77")) {
		t.Errorf("first address dump: %v", n.Connected())
	}
	nsub, asub := k.neigh.live(), k.addr.live()
	if nsub == nil || asub == nil {
		t.Fatal("no subscriptions")
	}

	// messages
	for _, u := range []*netlink.NeighUpdate{
		newMsg(nmsg("198.51.100.3", 2, NeighReachable, mac2[:], 0)),
		newMsg(nmsg("198.51.100.2", 2, NeighStale, mac1[:], 0)),
		delMsg(nmsg("198.51.100.9", 2, NeighFailed, nil, 0)),
		newMsg(bridge), newMsg(proxy),
		newMsg(nmsg("fd00:77::9", 2, NeighFailed, nil, 0)),
	} {
		nsub.send <- *u
	}
	wantTable("messages", "198.51.100.2@2 stale 02:00:5e:10:00:01\n198.51.100.3@2 reachable 02:00:5e:10:00:02\nfd00:77::2@2 stale 02:00:5e:10:00:01\nfd00:77::9@2 failed -")
	noError("messages")

	// an address change: the networks read again after the burst
	_, a0 := k.dumps()
	k.set(k.neighs, nil, []netlink.Addr{addr4("198.51.100.1/24", 2), addr4("fd00:77::1/64", 3)}, nil)
	for range 5 {
		asub.send <- netlink.AddrUpdate{}
	}
	waitFor(t, "address change", func() bool { return n.OnLink(mustAddr("fd00:77::77")) })
	time.Sleep(2 * watchSettle)
	if _, a := k.dumps(); a != a0+1 {
		t.Errorf("a burst of address messages: %d address dumps", a-a0)
	}
	if l, _ := n.OnLinkIndex(mustAddr("fd00:77::77")); l != 3 {
		t.Errorf("fd00:77::77 on %d", l)
	}

	// an overrun: the table dumped again, what it does not list removed
	k.set([]netlink.Neigh{
		nmsg("198.51.100.2", 2, NeighReachable, mac3[:], 0),
		nmsg("198.51.100.4", 2, NeighIncomplete, nil, 0),
	}, nil, k.addrs, nil)
	nsub.kill <- unix.ENOBUFS
	wantTable("overrun", "198.51.100.2@2 reachable 02:00:5e:10:00:03\n198.51.100.4@2 incomplete -")
	<-nsub.ended
	select {
	case <-nsub.done:
	default:
		t.Error("overrun: the old subscription's done channel is open")
	}
	if s := k.neigh.live(); s == nil || s == nsub {
		t.Fatal("overrun: no new neighbour subscription")
	}
	nsub = k.neigh.live()
	noError("overrun")

	// a failed read of the address subscription: told, made again, the
	// networks read again
	_, a0 = k.dumps()
	asub.kill <- unix.EIO
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), unix.EIO.Error()) {
			t.Errorf("failed read: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("failed read: not told")
	}
	waitFor(t, "address subscription renewed", func() bool { s := k.addr.live(); return s != nil && s != asub })
	asub = k.addr.live()
	waitFor(t, "addresses read again", func() bool { _, a := k.dumps(); return a > a0 })

	// a renewal that fails, then a dump that fails: each told and retried
	k.neigh.setFail(errors.New("no more sockets"))
	nsub.kill <- unix.ENOBUFS
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "no more sockets") {
			t.Errorf("failed renewal: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("failed renewal: not told")
	}
	k.set([]netlink.Neigh{nmsg("198.51.100.5", 2, NeighReachable, mac1[:], 0)}, errors.New("dump failed"), k.addrs, nil)
	k.neigh.setFail(nil)
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "dump failed") || !errors.Is(err, errNeighDump) {
			t.Errorf("failed dump: %v", err)
		}
	case <-time.After(3 * watchRetry):
		t.Fatal("failed dump: not told")
	}
	if table(n) != "198.51.100.2@2 reachable 02:00:5e:10:00:03\n198.51.100.4@2 incomplete -" {
		t.Errorf("a failed dump changed the table:\n%s", table(n))
	}
	k.set(k.neighs, nil, k.addrs, nil)
	wantTable("dump retried", "198.51.100.5@2 reachable 02:00:5e:10:00:01")
	nsub = k.neigh.live()
	nsub.send <- *newMsg(nmsg("198.51.100.6", 2, NeighFailed, nil, 0))
	wantTable("renewed subscription", "198.51.100.5@2 reachable 02:00:5e:10:00:01\n198.51.100.6@2 failed -")
	noError("renewed")

	// Refresh: a dump now, on the caller's goroutine
	k.set([]netlink.Neigh{nmsg("198.51.100.5", 2, NeighReachable, mac1[:], 0), nmsg("198.51.100.8", 2, NeighIncomplete, nil, 0)}, nil, k.addrs, nil)
	if err := n.Refresh(); err != nil {
		t.Fatal(err)
	}
	if want := "198.51.100.5@2 reachable 02:00:5e:10:00:01\n198.51.100.8@2 incomplete -"; table(n) != want {
		t.Errorf("Refresh: table\n%s\nwant\n%s", table(n), want)
	}
	// an interrupted dump: tried dumpTries times, what it lists taken,
	// nothing removed
	d0, _ := k.dumps()
	k.set([]netlink.Neigh{nmsg("198.51.100.9", 2, NeighStale, mac2[:], 0)}, netlink.ErrDumpInterrupted, k.addrs, nil)
	if err := n.Refresh(); !errors.Is(err, netlink.ErrDumpInterrupted) {
		t.Errorf("interrupted Refresh: %v", err)
	}
	if d, _ := k.dumps(); d != d0+dumpTries {
		t.Errorf("interrupted Refresh: %d dumps", d-d0)
	}
	if want := "198.51.100.5@2 reachable 02:00:5e:10:00:01\n198.51.100.8@2 incomplete -\n198.51.100.9@2 stale 02:00:5e:10:00:02"; table(n) != want {
		t.Errorf("interrupted Refresh: table\n%s\nwant\n%s", table(n), want)
	}
	k.set(k.neighs, nil, k.addrs, nil)
	noError("Refresh")

	// ctx ends
	cancel()
	select {
	case <-n.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("Done not closed")
	}
	for _, s := range k.neigh.all() {
		<-s.ended
	}
	for _, s := range k.addr.all() {
		<-s.ended
	}
	time.Sleep(2 * watchSettle)
	if len(errs) != 0 {
		t.Errorf("after the end: %d errors (%v)", len(errs), <-errs)
	}
	if _, ok := n.Lookup(mustAddr("198.51.100.5")); !ok {
		t.Error("the table was emptied at the end")
	}
}

// TestWatchNeighboursFirstFailures: a subscription that cannot be made
// or a first dump that fails is WatchNeighbours's error, and what was
// made ends; a first dump the kernel kept interrupting is taken, told
// and retried.
func TestWatchNeighboursFirstFailures(t *testing.T) {
	k := &fakeKernel{}
	k.install(t)
	ended := func(what string) {
		t.Helper()
		for _, s := range k.neigh.all() {
			select {
			case <-s.ended:
			case <-time.After(2 * time.Second):
				t.Errorf("%s: a neighbour subscription left running", what)
			}
		}
		for _, s := range k.addr.all() {
			select {
			case <-s.ended:
			case <-time.After(2 * time.Second):
				t.Errorf("%s: an address subscription left running", what)
			}
		}
	}
	k.addr.setFail(errors.New("EPERM, say"))
	if _, err := WatchNeighbours(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "EPERM, say") {
		t.Errorf("failed subscription: %v", err)
	}
	if len(k.neigh.all()) != 1 {
		t.Errorf("failed subscription: %d neighbour subscriptions", len(k.neigh.all()))
	}
	ended("failed subscription")
	k.addr.setFail(nil)

	for _, c := range []struct{ neigh, addr error }{{errors.New("dump failed"), nil}, {nil, errors.New("dump failed")}} {
		k.set(nil, c.neigh, nil, c.addr)
		if _, err := WatchNeighbours(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "dump failed") {
			t.Errorf("failed dump: %v", err)
		}
		ended("failed dump")
	}

	k.set([]netlink.Neigh{nmsg("198.51.100.2", 2, NeighReachable, mac1[:], 0)}, netlink.ErrDumpInterrupted,
		[]netlink.Addr{addr4("198.51.100.1/24", 2)}, netlink.ErrDumpInterrupted)
	errs := make(chan error, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := WatchNeighbours(ctx, func(err error) { errs <- err })
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := n.Lookup(mustAddr("198.51.100.2")); !ok || !n.OnLink(mustAddr("198.51.100.2")) {
		t.Errorf("interrupted first dumps not taken: %s %v", table(n), n.Connected())
	}
	select {
	case err := <-errs:
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			t.Errorf("interrupted first dumps: %v", err)
		}
	case <-time.After(time.Second):
		t.Error("interrupted first dumps not told")
	}
	nd, ad := k.dumps()
	k.set([]netlink.Neigh{nmsg("198.51.100.3", 2, NeighReachable, mac1[:], 0)}, nil, []netlink.Addr{addr4("203.0.113.1/24", 2)}, nil)
	waitFor(t, "interrupted first dumps retried", func() bool {
		d, a := k.dumps()
		return d > nd && a > ad
	})
	waitFor(t, "retried dumps applied", func() bool {
		_, ok := n.Lookup(mustAddr("198.51.100.2"))
		return !ok && n.OnLink(mustAddr("203.0.113.7")) && !n.OnLink(mustAddr("198.51.100.7"))
	})
	cancel()
	<-n.Done()
	ended("ended")
}

// TestWatchNeighboursCancelLeavesNothing starts and cancels
// WatchNeighbours a few times with the kernel's subscriptions and dumps
// (in the test's namespace: it only reads): once Done is closed, the
// goroutines and file descriptors are back to what they were.
func TestWatchNeighboursCancelLeavesNothing(t *testing.T) {
	cycle := func() {
		ctx, cancel := context.WithCancel(context.Background())
		n, err := WatchNeighbours(ctx, func(err error) { t.Error(err) })
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Refresh(); err != nil {
			t.Error(err)
		}
		cancel()
		select {
		case <-n.Done():
		case <-time.After(3 * time.Second):
			t.Fatal("Done not closed")
		}
	}
	g0 := runtime.NumGoroutine()
	cycle() // the runtime's poller is made once: count the fds after it
	if g, _ := settled(t, g0, 1<<30); g > g0 {
		t.Fatalf("the first cycle left %d goroutines, %d before", g, g0)
	}
	f0 := fdCount(t)

	ctx, cancel := context.WithCancel(context.Background())
	n, err := WatchNeighbours(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g, f := runtime.NumGoroutine(), fdCount(t); g <= g0 || f < f0+2 {
		t.Errorf("while watching: %d goroutines, %d fds; before: %d, %d", g, f, g0, f0)
	}
	cancel()
	<-n.Done()
	for range 5 {
		cycle()
	}
	if g, f := settled(t, g0, f0); g > g0 || f > f0 {
		buf := make([]byte, 1<<20)
		t.Errorf("after the cycles: %d goroutines (before %d), %d fds (before %d)\n%s",
			g, g0, f, f0, buf[:runtime.Stack(buf, true)])
	}
}

// The kernel test's lab: namespace A (the watcher, interface n0) and B
// (the peer, interface n1 of MAC peerMAC), linked by a veth pair.
const (
	neighPeerMAC = "02:00:5e:10:00:02"
	neighNsEnv   = "SCANWARDEN_HOST_NEIGH_NETNS"
)

// newNeighLab makes namespaces A and B of the test's own, deleted when it
// ends: A 198.51.100.1/24 fd00:77::1/64 on n0, B 198.51.100.2/24
// fd00:77::2/64 on n1. It skips the test when not root or without ip(8).
func newNeighLab(t *testing.T) (a, b string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8)")
	}
	a = fmt.Sprintf("swnbA%d", os.Getpid()%100000)
	b = fmt.Sprintf("swnbB%d", os.Getpid()%100000)
	for _, ns := range []string{a, b} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
		ipns(t, ns, "link", "set", "lo", "up")
	}
	ipns(t, a, "link", "add", "n0", "type", "veth", "peer", "name", "n1", "netns", b)
	ipns(t, b, "link", "set", "n1", "address", neighPeerMAC)
	ipns(t, a, "link", "set", "n0", "up")
	ipns(t, b, "link", "set", "n1", "up")
	ipns(t, a, "addr", "add", "198.51.100.1/24", "dev", "n0")
	ipns(t, a, "addr", "add", "fd00:77::1/64", "dev", "n0", "nodad")
	ipns(t, b, "addr", "add", "198.51.100.2/24", "dev", "n1")
	ipns(t, b, "addr", "add", "fd00:77::2/64", "dev", "n1", "nodad")
	return a, b
}

// TestNeighboursKernel runs WatchNeighbours in a namespace of the test's
// own (the test binary re-executed there) whose only link is a veth pair
// to another: a datagram to the peer makes a reachable entry of its MAC,
// seen through the subscription; a datagram to an unused on-link address
// makes an incomplete entry, seen by Refresh (the kernel does not
// announce it), then a failed one, seen through the subscription; an
// address added and removed changes what is on-link.
func TestNeighboursKernel(t *testing.T) {
	if os.Getenv(childEnv) == "neigh" {
		neighChild(t)
		return
	}
	a, _ := newNeighLab(t)
	c := child(a, "TestNeighboursKernel", "neigh")
	c.Env = append(c.Env, neighNsEnv+"="+a)
	out, err := c.Output()
	if err != nil || !strings.Contains(string(out), "neighbours ok\n") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

func neighChild(t *testing.T) {
	if err := netnstest.CheckNetns(os.Getenv(neighNsEnv)); err != nil {
		t.Fatal(err)
	}
	// resolutions fail within 1.5s: 3 solicitations 500ms apart
	for _, f := range []string{"ipv4/neigh/n0/mcast_solicit", "ipv6/neigh/n0/mcast_solicit"} {
		if err := os.WriteFile("/proc/sys/net/"+f, []byte("3"), 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"ipv4/neigh/n0/retrans_time_ms", "ipv6/neigh/n0/retrans_time_ms"} {
		if err := os.WriteFile("/proc/sys/net/"+f, []byte("500"), 0); err != nil {
			t.Fatal(err)
		}
	}
	ifi, err := net.InterfaceByName("n0")
	if err != nil {
		t.Fatal(err)
	}
	peer, err := net.ParseMAC(neighPeerMAC)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := WatchNeighbours(ctx, func(err error) { t.Errorf("onErr: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	send := func(addr string) {
		t.Helper()
		c, err := net.Dial("udp", net.JoinHostPort(addr, "9"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("scanwarden")); err != nil {
			t.Fatal(err)
		}
	}
	poll := func(what string, within time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v; table:\n%s", what, within, table(n))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// on-link
	for _, c := range []struct {
		addr string
		on   bool
	}{{"198.51.100.77", true}, {"fd00:77::77", true}, {"203.0.113.5", false}, {"192.0.2.1", false}, {"127.0.0.1", false}, {"::1", false}} {
		l, ok := n.OnLinkIndex(mustAddr(c.addr))
		if ok != c.on || ok && l != ifi.Index {
			t.Errorf("OnLinkIndex(%s) = %d %v, want %v on %d", c.addr, l, ok, c.on, ifi.Index)
		}
	}
	if out, err := exec.Command("ip", "addr", "add", "203.0.113.1/24", "dev", "n0").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	poll("an added address's network", 3*time.Second, func() bool { return n.OnLink(mustAddr("203.0.113.5")) })
	if out, err := exec.Command("ip", "addr", "del", "203.0.113.1/24", "dev", "n0").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	poll("a removed address's network", 3*time.Second, func() bool { return !n.OnLink(mustAddr("203.0.113.5")) })

	// the peer: reachable, with its MAC, through the subscription alone
	for _, addr := range []string{"198.51.100.2", "fd00:77::2"} {
		if e, ok := n.Lookup(mustAddr(addr)); ok {
			fmt.Printf("%s known before any datagram: %s\n", addr, e.State)
		}
		send(addr)
	}
	for _, addr := range []string{"198.51.100.2", "fd00:77::2"} {
		poll(addr+" reachable", 5*time.Second, func() bool {
			e, ok := n.LookupOn(mustAddr(addr), ifi.Index)
			return ok && e.State == NeighReachable && e.HasMAC && net.HardwareAddr(e.MAC[:]).String() == peer.String()
		})
		e, _ := n.Lookup(mustAddr(addr))
		fmt.Printf("%s %s %s on %d, changed %s ago\n", addr, e.State, net.HardwareAddr(e.MAC[:]), e.Link, time.Since(e.Changed).Round(time.Millisecond))
	}

	// an unused on-link address: incomplete (Refresh), then failed (the
	// subscription)
	incomplete := map[string]time.Time{}
	for _, addr := range []string{"198.51.100.77", "fd00:77::77"} {
		send(addr)
		if e, ok := n.Lookup(mustAddr(addr)); ok {
			fmt.Printf("%s: the subscription told %s\n", addr, e.State)
		}
	}
	if err := n.Refresh(); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"198.51.100.77", "fd00:77::77"} {
		e, ok := n.Lookup(mustAddr(addr))
		if !ok || e.State != NeighIncomplete || e.HasMAC || e.Link != ifi.Index {
			t.Fatalf("%s after Refresh: %+v %v; table:\n%s", addr, e, ok, table(n))
		}
		incomplete[addr] = e.Changed
		fmt.Printf("%s %s\n", addr, e.State)
	}
	for _, addr := range []string{"198.51.100.77", "fd00:77::77"} {
		poll(addr+" failed", 5*time.Second, func() bool {
			e, ok := n.Lookup(mustAddr(addr))
			return ok && e.State == NeighFailed
		})
		e, _ := n.Lookup(mustAddr(addr))
		if e.HasMAC || e.Changed.Before(incomplete[addr]) {
			t.Errorf("%s failed: %+v, incomplete since %v", addr, e, incomplete[addr])
		}
		fmt.Printf("%s %s after %s\n", addr, e.State, e.Changed.Sub(incomplete[addr]).Round(10*time.Millisecond))
	}

	// ByMAC finds the peer by its MAC
	if e, ok := n.ByMAC([6]byte(peer)); !ok || !e.State.Resolved() || e.Link != ifi.Index {
		t.Errorf("ByMAC(peer) = %+v %v", e, ok)
	}
	if e, ok := n.ByMAC([6]byte{2, 0, 0, 0, 0, 0x99}); ok {
		t.Errorf("ByMAC(unknown) = %+v", e)
	}
	// Resolve, without sending anything: an unused address fails, the
	// peer's entry is confirmed; an off-link address is refused
	for _, addr := range []string{"198.51.100.78", "fd00:77::78"} {
		if err := n.Resolve(mustAddr(addr)); err != nil {
			t.Fatal(err)
		}
		poll(addr+" failed after Resolve", 5*time.Second, func() bool {
			e, ok := n.Lookup(mustAddr(addr))
			return ok && e.State == NeighFailed
		})
		fmt.Printf("%s failed after Resolve\n", addr)
	}
	if err := n.Resolve(mustAddr("192.0.2.1")); err == nil {
		t.Error("Resolve of an off-link address: no error")
	}
	if out, err := exec.Command("ip", "neigh", "flush", "dev", "n0").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := n.Resolve(mustAddr("198.51.100.2")); err != nil {
		t.Fatal(err)
	}
	poll("the peer resolved by Resolve", 5*time.Second, func() bool {
		e, ok := n.LookupOn(mustAddr("198.51.100.2"), ifi.Index)
		return ok && e.State.Resolved() && net.HardwareAddr(e.MAC[:]).String() == peer.String()
	})
	cancel()
	select {
	case <-n.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("Done not closed")
	}
	fmt.Println("neighbours ok")
}
