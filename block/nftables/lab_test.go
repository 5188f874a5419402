package nftables

// The namespace lab of the kernel tests and benchmarks: as root only, each
// test in network namespaces of its own (swnft-PID-N-ROLE), deleted when
// it ends. The backend works on a descriptor of the victim's namespace;
// the attacker's packets come from helpers run in the attacker's (see
// helper_test.go). Nothing is ever sent anywhere but between the test's
// namespaces, on 198.51.100.0/24 and fd00:77::/64, with no default route
// and no link to the host.

import (
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/netnstest"
)

// The lab's addresses and ports.
var (
	victim4 = netip.MustParseAddr("198.51.100.1")
	victim6 = netip.MustParseAddr("fd00:77::1")
)

// attacker4 and attacker6 are the attacker's i-th source address (i from
// 0 to 49): every probe of a test comes from a fresh one.
func attacker4(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, byte(100 + i)}) }
func attacker6(i int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("fd00:77::%x", 0x100+i))
}

const (
	nAttackerAddrs = 50
	openPort       = 8022 // the victim's listener
	trapTCP        = 2222 // trap ports: nothing listens there
	trapUDP        = 5353
	// droppedWait is how long a connect expected to be dropped is given:
	// a dropped SYN is not answered at all, a reset one is answered at
	// once, so any wait tells them apart; it is below the first SYN
	// retransmission (1 s), so that exactly one SYN is sent.
	droppedWait = 700 * time.Millisecond
	// cmdTimeout bounds every command a test runs.
	cmdTimeout = time.Minute
)

// lab is a test's set of network namespaces, by role.
type lab struct {
	*netnstest.Lab
	t testing.TB
}

// newLab creates one namespace per role (see netnstest.New). It skips
// when not root or when a tool is missing.
func newLab(t testing.TB, roles ...string) *lab {
	t.Helper()
	return &lab{t: t, Lab: netnstest.New(t, netnstest.Config{
		Prefix:     "swnft",
		Env:        "SWNFT",
		Tools:      []string{"ip", "sysctl"},
		Makes:      "nftables tables",
		CmdTimeout: cmdTimeout,
	}, roles...)}
}

// wire links the attacker to the victim with a veth pair: the victim's va
// holds its addresses, the attacker's eth0 nAttackerAddrs addresses of
// each family. It waits until the links are up.
func (l *lab) wire() {
	l.t.Helper()
	var addrs []netip.Addr
	for i := range nAttackerAddrs {
		addrs = append(addrs, attacker4(i), attacker6(i))
	}
	l.WireVeth([]netip.Addr{victim4, victim6}, netnstest.Link{Role: "attacker", Port: "va", Addrs: addrs})
}

// nsFile opens role's namespace, checking that it is not the test
// process's own (the host's), and closes it when the test ends.
func (l *lab) nsFile(role string) *os.File {
	l.t.Helper()
	f, err := os.Open("/run/netns/" + l.NS[role])
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	if err != nil {
		l.t.Fatal(err)
	}
	// It must not be the namespace the tests run in (the host's), nor
	// that of PID 1 when that can be seen.
	self, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		l.t.Fatal(err)
	}
	if os.SameFile(fi, self) {
		l.t.Fatalf("namespace %s is the test process's own: refusing to use it", l.NS[role])
	}
	if init, err := os.Stat("/proc/1/ns/net"); err == nil && os.SameFile(fi, init) {
		l.t.Fatalf("namespace %s is PID 1's: refusing to use it", l.NS[role])
	}
	return f
}

// backend returns a new Backend working in the victim's namespace (a new
// one stands for a restarted daemon).
func (l *lab) backend() *Backend {
	l.t.Helper()
	f := l.nsFile("victim")
	b, err := New(Options{NetNS: int(f.Fd())})
	if err != nil {
		l.t.Fatal(err)
	}
	return b
}

// dial connects from the attacker's src to port of dst within wait (see
// netnstest.Lab.Dial).
func (l *lab) dial(src, dst netip.Addr, port int, wait time.Duration) int {
	l.t.Helper()
	return l.Dial("attacker", src, dst, port, wait)
}

// raw sends one TCP segment with flags from the attacker's src to port of
// dst.
func (l *lab) raw(src, dst netip.Addr, port int, flags byte) {
	l.t.Helper()
	l.SendRaw("attacker", src, dst, port, netnstest.FlagLetters(flags), 1)
}

// sendUDP sends a new token from the attacker's src to port of dst, three
// times, and returns it.
func (l *lab) sendUDP(src, dst netip.Addr, port int) string {
	l.t.Helper()
	return l.SendUDP("attacker", src, dst, port)
}

// serve starts the listener on openPort in the victim, for the rest of
// the test.
func (l *lab) serve() *netnstest.Server {
	l.t.Helper()
	return l.Serve(openPort)
}
