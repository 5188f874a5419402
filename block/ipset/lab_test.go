package ipset

// The lab of the kernel tests: as root only, network namespaces of the
// test's own (swips-PID-N-ROLE), deleted when it ends. The backend runs
// inside the victim namespace (see helper_test.go); nothing is ever sent
// anywhere but between the test's namespaces, on 198.51.100.0/24 and
// fd00:77::/64, with no default route and no link to the host. The test
// process reads the victim's sets through a netlink handle of that
// namespace (vishvananda/netlink, not the backend's own code).

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/internal/netnstest"
)

// The lab's addresses.
var (
	victim4   = netip.MustParseAddr("198.51.100.231")
	attacker4 = netip.MustParseAddr("198.51.100.232")
	benign4   = netip.MustParseAddr("198.51.100.233")
	victim6   = netip.MustParseAddr("fd00:77::231")
	attacker6 = netip.MustParseAddr("fd00:77::232")
	benign6   = netip.MustParseAddr("fd00:77::233")
	// extra4 are more attacker addresses, on the attacker's link.
	extra4 = []netip.Addr{
		netip.MustParseAddr("198.51.100.234"), netip.MustParseAddr("198.51.100.235"),
		netip.MustParseAddr("198.51.100.236"), netip.MustParseAddr("198.51.100.237"),
		netip.MustParseAddr("198.51.100.238"),
	}
)

const (
	openPort = 8022 // a served port that is no trap
	trapTCP  = 2323 // a served TCP port that is a trap
	trapUDP  = 2324 // a served UDP port that is a trap
	// settle is how long after sending a probe the trap set is read: the
	// kernel adds within microseconds; this covers the helper's exit.
	settle = 200 * time.Millisecond
	// cmdTimeout bounds every command a test runs.
	cmdTimeout = 2 * time.Minute
)

// lab is a test's set of network namespaces, by role, and a netlink
// handle on the victim's sets.
type lab struct {
	*netnstest.Lab
	t  testing.TB
	nl *netlink.Handle
}

// newLab creates one namespace per role (see netnstest.New; the first is
// the victim, whose sets the lab reads). It skips the test when not root
// or a tool is missing.
func newLab(t testing.TB, roles ...string) *lab {
	t.Helper()
	l := &lab{t: t, Lab: netnstest.New(t, netnstest.Config{
		Prefix:     "swips",
		Env:        "SWIPS",
		Tools:      []string{"ip", "iptables", "ip6tables", "sysctl"},
		Makes:      "sets and rules",
		CmdTimeout: cmdTimeout,
	}, roles...)}
	h, err := netns.GetFromName(l.NS[roles[0]])
	if err != nil {
		t.Fatal(err)
	}
	if l.nl, err = netlink.NewHandleAt(h, unix.NETLINK_NETFILTER); err != nil {
		_ = h.Close()
		t.Fatal(err)
	}
	_ = h.Close()
	t.Cleanup(l.nl.Close) // runs before the namespaces are deleted
	if _, _, err := l.nl.IpsetProtocol(); err != nil {
		t.Skipf("the kernel has no ipset (CONFIG_IP_SET): %v", err)
	}
	return l
}

// wire links attacker and benign to the victim: a bridge br0 in the
// victim holds its addresses and one veth per client, whose peer is the
// client's eth0 (the attacker's with extra4 too). It waits until every
// link is up.
func (l *lab) wire() {
	l.t.Helper()
	l.WireBridge([]netip.Addr{victim4, victim6},
		netnstest.Link{Role: "attacker", Port: "va", Addrs: append([]netip.Addr{attacker4, attacker6}, extra4...)},
		netnstest.Link{Role: "benign", Port: "vb", Addrs: []netip.Addr{benign4, benign6}})
}

// backend runs cmds (see helperBackend) in a new process in the victim
// namespace, that is with a fresh Backend, and returns what it printed.
func (l *lab) backend(cmds ...string) string {
	l.t.Helper()
	out, err := l.tryBackend(cmds...)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

func (l *lab) tryBackend(cmds ...string) (string, error) {
	return l.TryHelper("victim", "backend", nil, cmds...)
}

// banArg is the "ADDR=UNTIL" of a ban of a until the given time (zero:
// without end).
func banArg(a netip.Addr, until time.Time) string {
	if until.IsZero() {
		return a.String() + "=0"
	}
	return fmt.Sprintf("%s=%d", a, until.UnixMilli())
}

// trapArg is the settrap command for t.
func trapArg(t block.Trap) string {
	b, err := json.Marshal(t)
	if err != nil {
		panic(err)
	}
	return "settrap " + string(b)
}

// members returns the victim's set name as its members' addresses and
// remaining timeouts (0: permanent), read over netlink; ok is false when
// there is no such set.
func (l *lab) members(name string) (map[netip.Addr]uint32, bool) {
	l.t.Helper()
	r, err := l.nl.IpsetList(name)
	if err != nil {
		if strings.Contains(err.Error(), "no such file") {
			return nil, false
		}
		l.t.Fatalf("ipset list %s: %v", name, err)
	}
	out := map[netip.Addr]uint32{}
	for _, e := range r.Entries {
		a, ok := netip.AddrFromSlice(e.IP)
		if !ok {
			l.t.Fatalf("ipset list %s: bad address %v", name, e.IP)
		}
		var t uint32
		if e.Timeout != nil {
			t = *e.Timeout
		}
		out[a.Unmap()] = t
	}
	return out, true
}

// wantTimeout checks that set holds a with a remaining timeout within
// [lo, hi] seconds (0, 0 for permanent).
func (l *lab) wantTimeout(set string, a netip.Addr, lo, hi uint32) {
	l.t.Helper()
	m, _ := l.members(set)
	got, ok := m[a]
	switch {
	case !ok:
		l.t.Errorf("%s does not hold %v (holds %v)", set, a, m)
	case got < lo || got > hi:
		l.t.Errorf("%s holds %v with timeout %d, want %d..%d", set, a, got, lo, hi)
	}
}

// wantIn checks whether set holds a.
func (l *lab) wantIn(set string, a netip.Addr, want bool) {
	l.t.Helper()
	m, _ := l.members(set)
	if _, ok := m[a]; ok != want {
		l.t.Errorf("%s holds %v: %v, want %v (holds %v)", set, a, ok, want, m)
	}
}

// serve starts the listener on openPort, trapTCP and trapUDP in the
// victim, for the rest of the test.
func (l *lab) serve() *netnstest.Server {
	l.t.Helper()
	return l.Serve(openPort, trapTCP, trapUDP)
}

// raw sends a TCP segment with flags (see netnstest.Raw) from the
// attacker's src to the victim's dst and port, three times.
func (l *lab) raw(src, dst netip.Addr, port int, flags string) {
	l.t.Helper()
	l.SendRaw("attacker", src, dst, port, flags, 3)
	time.Sleep(settle)
}

// wantReach checks whether role, from src, reaches the victim's addr on
// openPort over TCP and UDP (netnstest.Lab.WantReach).
func (l *lab) wantReach(s *netnstest.Server, role string, src, addr netip.Addr, want bool) {
	l.t.Helper()
	l.WantReach(s, role, src, addr, openPort, want)
}
