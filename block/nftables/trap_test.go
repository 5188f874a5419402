package nftables

// Real-kernel tests of the trap: probes from the attacker's namespace to
// the victim's, where the backend installed a Trap.

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	nft "github.com/google/nftables"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/internal/netnstest"
)

// TCP flag bits.
const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagACK = 0x10
)

// trapLab is a wired lab with the listener up and a Backend in the victim.
func trapLab(t *testing.T) (*lab, *netnstest.Server, *Backend) {
	t.Helper()
	l := newLab(t, "attacker", "victim")
	l.wire()
	s := l.serve()
	return l, s, l.backend()
}

// inSet reports whether set name holds a.
func inSet(t testing.TB, b *Backend, name string, a netip.Addr) bool {
	t.Helper()
	_, ok := elems(t, b, name)[a]
	return ok
}

// wantTrapped checks that src is in its family's trap set with about left
// to run (0: no timeout) and that its next connection to the open port is
// dropped.
func wantTrapped(t *testing.T, l *lab, b *Backend, src, dst netip.Addr, left time.Duration, what string) {
	t.Helper()
	name := setTrap4
	if src.Is6() {
		name = setTrap6
	}
	if !inSet(t, b, name, src) {
		t.Errorf("%s from %v: not in %s", what, src, name)
		return
	}
	wantLeft(t, b, name, src, left)
	if code := l.dial(src, dst, openPort, droppedWait); code != netnstest.ExitTimeout {
		t.Errorf("after %s, a connection from %v to the open port: exit %d, want a timeout (dropped)", what, src, code)
	}
}

// TestKernelTrap: SYN, FIN and NULL segments and UDP datagrams to trap
// ports put the source in the trap set, with the trap's hold, and are
// dropped, as is everything the source sends next; so is an ACK of no
// connection; nothing from an exempt source traps; IPv6 the same. A SetTrap with
// new exemptions frees the sources they cover; a trap that is not Enabled
// traps no more and keeps the sources trapped.
func TestKernelTrap(t *testing.T) {
	l, s, b := trapLab(t)
	ctx := context.Background()
	exempt := attacker4(9)
	trap := block.Trap{
		TCP: []uint16{trapTCP}, UDP: []uint16{trapUDP},
		Exempt: []netip.Prefix{netip.PrefixFrom(exempt, 32), netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Hold:   time.Hour, Size: 1024,
	}
	if err := b.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}
	// The control: before any probe, every source reaches the open port.
	for _, src := range []netip.Addr{attacker4(0), attacker4(4)} {
		if code := l.dial(src, victim4, openPort, netnstest.OpenWait); code != netnstest.ExitConnected {
			t.Fatalf("before the probes, %v cannot connect to the open port: exit %d", src, code)
		}
	}

	// A SYN (a connect) to the trap port is dropped, not reset.
	if code := l.dial(attacker4(0), victim4, trapTCP, droppedWait); code != netnstest.ExitTimeout {
		t.Errorf("connect to the trap port: exit %d, want a timeout (the SYN dropped)", code)
	}
	wantTrapped(t, l, b, attacker4(0), victim4, time.Hour, "a SYN")
	l.raw(attacker4(1), victim4, trapTCP, flagFIN)
	wantTrapped(t, l, b, attacker4(1), victim4, time.Hour, "a FIN")
	l.raw(attacker4(2), victim4, trapTCP, 0)
	wantTrapped(t, l, b, attacker4(2), victim4, time.Hour, "a NULL segment")
	l.sendUDP(attacker4(3), victim4, trapUDP)
	udpAt := time.Now()
	wantTrapped(t, l, b, attacker4(3), victim4, time.Hour, "a UDP datagram")
	if token := l.sendUDP(attacker4(3), victim4, openPort); s.Wait(token, netnstest.UDPGrace) {
		t.Errorf("UDP from the trapped %v to the open port: received, want it dropped", attacker4(3))
	}

	// An ACK of no connection to a trap port (an ACK scan's probe) holds
	// its source too (TestKernelTrapStealthAndACK: it is not dropped).
	l.raw(attacker4(4), victim4, trapTCP, flagACK)
	wantTrapped(t, l, b, attacker4(4), victim4, time.Hour, "an ACK of no connection")

	// An exempt source is neither trapped nor dropped: its SYN to the
	// trap port is answered with a reset.
	if code := l.dial(exempt, victim4, trapTCP, netnstest.OpenWait); code != netnstest.ExitRefused {
		t.Errorf("connect from the exempt %v to the trap port: exit %d, want refused", exempt, code)
	}
	if inSet(t, b, setTrap4, exempt) {
		t.Errorf("the exempt %v was trapped", exempt)
	}

	// IPv6.
	if code := l.dial(attacker6(0), victim6, trapTCP, droppedWait); code != netnstest.ExitTimeout {
		t.Errorf("IPv6 connect to the trap port: exit %d, want a timeout", code)
	}
	wantTrapped(t, l, b, attacker6(0), victim6, time.Hour, "an IPv6 SYN")
	l.sendUDP(attacker6(1), victim6, trapUDP)
	wantTrapped(t, l, b, attacker6(1), victim6, time.Hour, "an IPv6 UDP datagram")

	if got := mustList(t, b); !slices.Equal(got, []netip.Addr{attacker4(0), attacker4(1), attacker4(2), attacker4(3), attacker4(4), attacker6(0), attacker6(1)}) {
		t.Errorf("List: %v, want the seven trapped sources", got)
	}
	if n, err := b.TrapOverflows(ctx); n != 0 || err != nil {
		t.Errorf("TrapOverflows with room in the set: %d, %v", n, err)
	}

	// New exemptions free the sources they cover, at once.
	trap.Exempt = append(trap.Exempt, netip.PrefixFrom(attacker4(0), 31), netip.MustParsePrefix("::ffff:"+attacker4(2).String()+"/128"))
	if err := b.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{attacker4(0), attacker4(1), attacker4(2)} {
		if inSet(t, b, setTrap4, a) {
			t.Errorf("after exempting it, %v is still trapped", a)
		}
		if code := l.dial(a, victim4, openPort, netnstest.OpenWait); code != netnstest.ExitConnected {
			t.Errorf("after exempting it, %v's connection: exit %d, want it to connect", a, code)
		}
	}
	if !inSet(t, b, setTrap4, attacker4(3)) {
		t.Errorf("the new exemptions freed %v too", attacker4(3))
	}

	// A trap that is not Enabled traps no more, and keeps the trapped.
	if err := b.SetTrap(ctx, block.Trap{Exempt: trap.Exempt, Size: trap.Size}); err != nil {
		t.Fatal(err)
	}
	if code := l.dial(attacker4(5), victim4, trapTCP, netnstest.OpenWait); code != netnstest.ExitRefused {
		t.Errorf("connect to the former trap port: exit %d, want refused (no trap)", code)
	}
	if inSet(t, b, setTrap4, attacker4(5)) {
		t.Errorf("a disabled trap trapped %v", attacker4(5))
	}
	wantTrapped(t, l, b, attacker4(3), victim4, time.Hour-time.Since(udpAt), "a UDP datagram, with the trap disabled since,")
	if tags, _ := rules(t, b, chainInput); slices.Contains(tags, jumpRule().tag()) {
		t.Errorf("input with the trap disabled: %v, want no jump", tags)
	}
	// Unblock lets a trapped source in again.
	if err := b.Unblock(ctx, attacker4(3)); err != nil {
		t.Fatal(err)
	}
	if code := l.dial(attacker4(3), victim4, openPort, netnstest.OpenWait); code != netnstest.ExitConnected {
		t.Errorf("after Unblock, %v's connection: exit %d, want it to connect", attacker4(3), code)
	}
}

// TestKernelTrapOverflow: a trap set of two fills with the first two
// sources; the third's probe is dropped all the same, not added, and
// counted. A larger size rebuilds the sets keeping the two with their
// timeouts, and the counter, and traps again. A smaller one keeps those
// that expire last, and holds them for the hold at most.
func TestKernelTrapOverflow(t *testing.T) {
	l, _, b := trapLab(t)
	ctx := context.Background()
	trap := block.Trap{TCP: []uint16{trapTCP}, UDP: []uint16{trapUDP}, Hold: time.Hour, Size: 2}
	if err := b.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}
	l.raw(attacker4(0), victim4, trapTCP, flagSYN)
	l.sendUDP(attacker4(1), victim4, trapUDP)
	wantTrapped(t, l, b, attacker4(0), victim4, time.Hour, "a SYN")
	wantTrapped(t, l, b, attacker4(1), victim4, time.Hour, "a UDP datagram")

	l.raw(attacker4(2), victim4, trapTCP, flagSYN)
	if inSet(t, b, setTrap4, attacker4(2)) {
		t.Fatalf("a third source got into a trap set of two")
	}
	if n, err := b.TrapOverflows(ctx); err != nil || n != 1 {
		t.Errorf("TrapOverflows after one probe found the set full: %d, %v; want 1", n, err)
	}
	// Its SYN to the trap port is dropped, not reset (and counted again).
	if code := l.dial(attacker4(2), victim4, trapTCP, droppedWait); code != netnstest.ExitTimeout {
		t.Errorf("connect to the trap port with the trap set full: exit %d, want a timeout (dropped)", code)
	}
	overflows, err := b.TrapOverflows(ctx)
	if err != nil || overflows < 2 {
		t.Errorf("TrapOverflows after the connect: %d, %v; want 2 or more", overflows, err)
	}

	// A larger set: rebuilt with the two sources and their timeouts.
	trap.Size = 16
	if err := b.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}
	if s := kernelSet(t, b, setTrap4); s.Size != 16 {
		t.Errorf("trap4's size after SetTrap: %d, want 16", s.Size)
	}
	wantTrapped(t, l, b, attacker4(0), victim4, time.Hour, "a SYN, before the resize,")
	wantTrapped(t, l, b, attacker4(1), victim4, time.Hour, "a UDP datagram, before the resize,")
	if n, err := b.TrapOverflows(ctx); err != nil || n != overflows {
		t.Errorf("TrapOverflows after the resize: %d, %v; want %d (not reset)", n, err, overflows)
	}
	l.raw(attacker4(2), victim4, trapTCP, flagSYN)
	wantTrapped(t, l, b, attacker4(2), victim4, time.Hour, "a SYN with room again")

	// A smaller one keeps those that expire last: no timeout first (an
	// element an older version left), and then holds it for the hold.
	setElems(t, b, setTrap4, false, elem(attacker4(3), 0))
	trap.Size = 1
	if err := b.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}
	if got := elems(t, b, setTrap4); len(got) != 1 || !inSet(t, b, setTrap4, attacker4(3)) {
		t.Errorf("trap4 after shrinking to 1: %v, want %v alone", got, attacker4(3))
	}
	wantLeft(t, b, setTrap4, attacker4(3), time.Hour)
}

// TestKernelTrapExemptionsRemoved: a SetTrap that keeps the ports but
// drops every exemption empties the exemption sets, so that a source
// exempt before is trapped now.
func TestKernelTrapExemptionsRemoved(t *testing.T) {
	l, _, b := trapLab(t)
	ctx := context.Background()
	src := attacker4(0)
	trap := block.Trap{TCP: []uint16{trapTCP}, Exempt: []netip.Prefix{netip.PrefixFrom(src, 32)}, Hold: time.Hour, Size: 1024}
	if err := b.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}
	if !inSet(t, b, setNever4, src) {
		t.Fatalf("%v not in %s after the first SetTrap", src, setNever4)
	}
	trap.Exempt = nil
	if err := b.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}
	if inSet(t, b, setNever4, src) {
		t.Fatalf("%v still in %s after a SetTrap without exemptions", src, setNever4)
	}
	if code := l.dial(src, victim4, trapTCP, droppedWait); code != netnstest.ExitTimeout {
		t.Errorf("connect from the formerly exempt %v to the trap port: exit %d, want a timeout (trapped)", src, code)
	}
	wantTrapped(t, l, b, src, victim4, time.Hour, "a SYN from a formerly exempt source")
}

// holdSlackTest is how long after a trap element's hold the tests wait
// for it to be gone: the kernel lets an element go when its timeout runs
// out (a lookup no longer matches it), and its garbage collection, which
// removes it from dumps, runs every second or so.
const holdSlackTest = 5 * time.Second

// waitGone polls set name until it no longer holds a, for at most d, and
// fails the test when it still does then.
func waitGone(t *testing.T, b *Backend, name string, a netip.Addr, d time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for inSet(t, b, name, a) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v still in %s %v later", what, a, name, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantHeld checks that set name holds a with a timeout of hold (as the
// trap writes it) and no more than hold left.
func wantHeld(t *testing.T, b *Backend, name string, a netip.Addr, hold time.Duration, what string) {
	t.Helper()
	e, ok := elems(t, b, name)[a]
	switch {
	case !ok:
		t.Errorf("%s: %v not in %s", what, a, name)
	case e.Timeout != holdTimeout(hold) || e.Expires <= 0 || e.Expires > holdTimeout(hold):
		t.Errorf("%s: %v in %s with timeout %v, %v left; want the hold, %v, and no more left", what, a, name, e.Timeout, e.Expires, hold)
	}
}

// TestKernelTrapHold: the trap is provisional. A first hit holds its
// source in the trap set with the element timeout Hold (TCP and UDP, IPv4
// and IPv6 alike), and the kernel lets it go after Hold by itself: the
// source then reaches the open port again. Release takes a source out at
// once, leaves its ban alone, and is no error for an address not held
// (again, or without any table). Block of a held source promotes it: it
// is in the ban set with the ban's timeout, and stays blocked after the
// trap element has gone.
func TestKernelTrapHold(t *testing.T) {
	l, _, b := trapLab(t)
	ctx := context.Background()
	const hold = 2 * time.Second
	trap := block.Trap{TCP: []uint16{trapTCP}, UDP: []uint16{trapUDP}, Hold: hold, Size: 16}
	if err := b.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}

	// held for Hold, then let go by the kernel
	l.raw(attacker4(0), victim4, trapTCP, flagSYN)
	wantHeld(t, b, setTrap4, attacker4(0), hold, "a SYN")
	l.sendUDP(attacker6(0), victim6, trapUDP)
	wantHeld(t, b, setTrap6, attacker6(0), hold, "an IPv6 UDP datagram")
	waitGone(t, b, setTrap4, attacker4(0), hold+holdSlackTest, "after the hold")
	waitGone(t, b, setTrap6, attacker6(0), hold+holdSlackTest, "after the hold")
	if code := l.dial(attacker4(0), victim4, openPort, netnstest.OpenWait); code != netnstest.ExitConnected {
		t.Errorf("after the hold, %v's connection to the open port: exit %d, want it to connect", attacker4(0), code)
	}
	if inSet(t, b, setBan4, attacker4(0)) {
		t.Errorf("the hold put %v in %s", attacker4(0), setBan4)
	}

	// Release: at once, and again no error
	l.raw(attacker4(1), victim4, trapTCP, flagSYN)
	wantHeld(t, b, setTrap4, attacker4(1), hold, "a SYN")
	if err := b.Release(ctx, attacker4(1)); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if inSet(t, b, setTrap4, attacker4(1)) {
		t.Errorf("after Release, %v is still in %s", attacker4(1), setTrap4)
	}
	if code := l.dial(attacker4(1), victim4, openPort, netnstest.OpenWait); code != netnstest.ExitConnected {
		t.Errorf("after Release, %v's connection to the open port: exit %d, want it to connect", attacker4(1), code)
	}
	for _, a := range []netip.Addr{attacker4(1), netip.MustParseAddr("::ffff:" + attacker4(1).String()), attacker6(9)} {
		if err := b.Release(ctx, a); err != nil {
			t.Errorf("Release of %v, not held: %v", a, err)
		}
	}
	if err := b.Release(ctx, netip.Addr{}); err == nil {
		t.Error("Release of the zero address: no error")
	}

	// Block of a held source: promoted to the ban set, independently
	until := time.Now().Add(time.Hour)
	l.raw(attacker4(2), victim4, trapTCP, flagSYN)
	wantHeld(t, b, setTrap4, attacker4(2), hold, "a SYN")
	if err := b.Block(ctx, block.Ban{Addr: attacker4(2), Until: until}); err != nil {
		t.Fatal(err)
	}
	wantLeft(t, b, setBan4, attacker4(2), time.Until(until))
	waitGone(t, b, setTrap4, attacker4(2), hold+holdSlackTest, "a promoted source, after the hold")
	wantLeft(t, b, setBan4, attacker4(2), time.Until(until))
	if code := l.dial(attacker4(2), victim4, openPort, droppedWait); code != netnstest.ExitTimeout {
		t.Errorf("a promoted source after its hold: exit %d, want its connection dropped (banned)", code)
	}
	// Release of a banned source leaves the ban
	if err := b.Release(ctx, attacker4(2)); err != nil {
		t.Fatal(err)
	}
	wantLeft(t, b, setBan4, attacker4(2), time.Until(until))
	if got := mustList(t, b); !slices.Equal(got, []netip.Addr{attacker4(2)}) {
		t.Errorf("List: %v, want the banned %v alone", got, attacker4(2))
	}

	// no table at all
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Release(ctx, attacker4(2)); err != nil {
		t.Errorf("Release without a table: %v", err)
	}
}

// TestKernelTrapBudget: with Size N, N sources are held; the first hit of
// the N+1-th distinct source is dropped all the same but not added, and
// counted by TrapOverflows, and its other traffic passes. Releasing one
// frees its place: the next first hit is held.
func TestKernelTrapBudget(t *testing.T) {
	l, _, b := trapLab(t)
	ctx := context.Background()
	const n = 3
	// a hold far longer than the test: nothing expires under it
	trap := block.Trap{TCP: []uint16{trapTCP}, UDP: []uint16{trapUDP}, Hold: time.Minute, Size: n}
	if err := b.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		l.raw(attacker4(i), victim4, trapTCP, flagSYN)
		if !inSet(t, b, setTrap4, attacker4(i)) {
			t.Fatalf("source %d of %d not held", i+1, n)
		}
	}
	if c, err := b.TrapOverflows(ctx); err != nil || c != 0 {
		t.Fatalf("TrapOverflows with the budget used up but not exceeded: %d, %v", c, err)
	}
	over := attacker4(n)
	l.raw(over, victim4, trapTCP, flagSYN)
	if inSet(t, b, setTrap4, over) {
		t.Fatalf("the source %d got into a trap set of %d", n+1, n)
	}
	if c, err := b.TrapOverflows(ctx); err != nil || c != 1 {
		t.Errorf("TrapOverflows after one first hit beyond the budget: %d, %v; want 1", c, err)
	}
	if code := l.dial(over, victim4, trapTCP, droppedWait); code != netnstest.ExitTimeout {
		t.Errorf("connect to the trap port beyond the budget: exit %d, want a timeout (dropped)", code)
	}
	if code := l.dial(over, victim4, openPort, netnstest.OpenWait); code != netnstest.ExitConnected {
		t.Errorf("beyond the budget, %v's connection to the open port: exit %d, want it to connect (not held)", over, code)
	}
	if got := len(elems(t, b, setTrap4)); got != n {
		t.Errorf("trap4 holds %d, want %d", got, n)
	}

	if err := b.Release(ctx, attacker4(0)); err != nil {
		t.Fatal(err)
	}
	l.raw(over, victim4, trapTCP, flagSYN)
	wantHeld(t, b, setTrap4, over, time.Minute, "a first hit after a Release freed a place")
}

// TestKernelTrapCutsToHold: SetTrap gives the trap elements that have more
// than its Hold left, or no timeout (as an older version, which held a
// trapped source for BAN_EXPIRY, left them), the Hold; a ban of the same
// address keeps its own timeout; elements with less left keep theirs. A
// trap without a Hold (off) cuts nothing; an Enabled one is refused.
func TestKernelTrapCutsToHold(t *testing.T) {
	l := newLab(t, "victim")
	b := l.backend()
	ctx := context.Background()
	if err := b.SetTrap(ctx, block.Trap{Size: 16}); err != nil {
		t.Fatal(err)
	}
	old, forever, short := attacker4(0), attacker6(0), attacker4(1)
	setElems(t, b, setTrap4, false, elem(old, 24*time.Hour), elem(short, time.Second))
	setElems(t, b, setTrap6, false, elem(forever, 0))
	until := time.Now().Add(24 * time.Hour)
	if err := b.Block(ctx, block.Ban{Addr: old, Until: until}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetTrap(ctx, block.Trap{Size: 16}); err != nil {
		t.Fatal(err)
	}
	wantLeft(t, b, setTrap4, old, 24*time.Hour)
	wantLeft(t, b, setTrap6, forever, 0)

	const hold = 2 * time.Second
	if err := b.SetTrap(ctx, block.Trap{TCP: []uint16{trapTCP}, Hold: hold, Size: 16}); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, b, setTrap4, old, hold, "24 h left before")
	wantHeld(t, b, setTrap6, forever, hold, "no timeout before")
	if e, ok := elems(t, b, setTrap4)[short]; ok && e.Timeout != time.Second {
		t.Errorf("an element with less than the hold left was rewritten: timeout %v", e.Timeout)
	}
	wantLeft(t, b, setBan4, old, time.Until(until))
	waitGone(t, b, setTrap4, old, hold+holdSlackTest, "cut to the hold")
	waitGone(t, b, setTrap6, forever, hold+holdSlackTest, "cut to the hold")
	wantLeft(t, b, setBan4, old, time.Until(until))

	for _, tr := range []block.Trap{{TCP: []uint16{trapTCP}, Size: 16}, {UDP: []uint16{trapUDP}, Hold: -time.Second}, {Hold: -time.Second}} {
		if err := b.SetTrap(ctx, tr); err == nil {
			t.Errorf("SetTrap %+v: no error", tr)
		}
	}
}

// wantSpared checks that a is in its family's spared set with a timeout
// of block.SpareFor at most (Release writes SpareFor; a rebuilt set keeps
// the time its elements had left) and no more than that left, and returns
// what is left.
func wantSpared(t *testing.T, b *Backend, a netip.Addr, what string) time.Duration {
	t.Helper()
	name := setSpared4
	if a.Is6() {
		name = setSpared6
	}
	e, ok := elems(t, b, name)[a]
	switch {
	case !ok:
		t.Errorf("%s: %v not in %s", what, a, name)
	case e.Timeout <= 0 || e.Timeout > block.SpareFor || e.Expires <= 0 || e.Expires > e.Timeout:
		t.Errorf("%s: %v in %s with timeout %v, %v left; want at most %v, and no more left", what, a, name, e.Timeout, e.Expires, block.SpareFor)
	}
	return e.Expires
}

// wantPasses checks that first hits of src on the trap ports are neither
// trapped nor dropped: a FIN to the TCP trap port does not trap it (IPv4:
// the raw helper sends no IPv6), its connect there, where nothing
// listens, is refused (a reset), and its UDP datagram to the UDP trap
// port reaches u, a listener there.
func wantPasses(t *testing.T, l *lab, b *Backend, u *netnstest.Server, src, dst netip.Addr, what string) {
	t.Helper()
	name := setTrap4
	if src.Is6() {
		name = setTrap6
	} else {
		l.raw(src, dst, trapTCP, flagFIN)
	}
	if token := l.sendUDP(src, dst, trapUDP); !u.Wait(token, netnstest.OpenWait) {
		t.Errorf("%s: UDP from %v to the trap port: not received, want it to pass", what, src)
	}
	if code := l.dial(src, dst, trapTCP, netnstest.OpenWait); code != netnstest.ExitRefused {
		t.Errorf("%s: connect from %v to the trap port: exit %d, want refused (not trapped, not dropped)", what, src, code)
	}
	if inSet(t, b, name, src) {
		t.Errorf("%s: %v trapped (in %s)", what, src, name)
	}
	if code := l.dial(src, dst, openPort, netnstest.OpenWait); code != netnstest.ExitConnected {
		t.Errorf("%s: %v's connection to the open port: exit %d, want it to connect", what, src, code)
	}
}

// TestKernelTrapSpare: Release spares the source it lets out of the trap
// set: it is in the spared set for block.SpareFor, and its next first
// hits (SYN, FIN, UDP) are neither trapped nor dropped, while other
// sources are still trapped. Release again refreshes the timeout; a
// source never trapped is spared too (IPv6 alike). List does not report
// spared sources. A SetTrap with other ports, or another size, keeps the
// spared sources and their timeouts; a trap that is not Enabled too.
// Unblock takes a source out of the spared set (it is trapped again on
// its next first hit), Flush removes the spared sets with the table.
func TestKernelTrapSpare(t *testing.T) {
	l, _, b := trapLab(t)
	u := l.Serve(trapUDP)
	ctx := context.Background()
	// a hold far longer than the test: nothing is let go but by Release
	trap := block.Trap{TCP: []uint16{trapTCP}, UDP: []uint16{trapUDP}, Hold: time.Minute, Size: 16}
	if err := b.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}
	framed, other, never := attacker4(0), attacker4(1), attacker4(2)
	l.raw(framed, victim4, trapTCP, flagSYN)
	wantHeld(t, b, setTrap4, framed, time.Minute, "a SYN")

	if err := b.Release(ctx, framed); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if inSet(t, b, setTrap4, framed) {
		t.Errorf("after Release, %v is still in %s", framed, setTrap4)
	}
	left := wantSpared(t, b, framed, "released")
	if e := elems(t, b, setSpared4)[framed]; e.Timeout != block.SpareFor {
		t.Errorf("Release spared %v with timeout %v, want block.SpareFor, %v", framed, e.Timeout, block.SpareFor)
	}
	// the decoys go on: the framed host's probes pass
	wantPasses(t, l, b, u, framed, victim4, "a released source's new first hits")
	// another source is trapped as ever
	if code := l.dial(other, victim4, trapTCP, droppedWait); code != netnstest.ExitTimeout {
		t.Errorf("connect from %v to the trap port: exit %d, want a timeout (trapped)", other, code)
	}
	wantTrapped(t, l, b, other, victim4, time.Minute, "another source's SYN")
	if inSet(t, b, setSpared4, other) {
		t.Errorf("%v spared without a Release", other)
	}

	// Release again: no error, the minute starts over
	time.Sleep(1200 * time.Millisecond)
	if again := wantSpared(t, b, framed, "a second later"); again > left-time.Second {
		t.Errorf("a second after the Release, %v left, was %v", again, left)
	}
	if err := b.Release(ctx, netip.MustParseAddr("::ffff:"+framed.String())); err != nil {
		t.Fatalf("Release again: %v", err)
	}
	if again := wantSpared(t, b, framed, "released again"); again < block.SpareFor-time.Second {
		t.Errorf("released again: %v left, want about %v (refreshed)", again, block.SpareFor)
	}
	if n := len(elems(t, b, setSpared4)); n != 1 {
		t.Errorf("spared4 holds %d elements, want 1", n)
	}

	// a source never trapped is spared all the same; IPv6 alike
	for _, a := range []netip.Addr{never, attacker6(0)} {
		if err := b.Release(ctx, a); err != nil {
			t.Fatalf("Release of %v, never trapped: %v", a, err)
		}
		wantSpared(t, b, a, "never trapped, released")
	}
	wantPasses(t, l, b, u, never, victim4, "a spared source never trapped")
	wantPasses(t, l, b, u, attacker6(0), victim6, "a spared IPv6 source")

	// List: the trapped source, not the spared ones
	if got := mustList(t, b); !slices.Equal(got, []netip.Addr{other}) {
		t.Errorf("List: %v, want the trapped %v alone (no spared source)", got, other)
	}

	// SetTrap with other ports, then another size: spared kept, timers
	// running
	before := elems(t, b, setSpared4)[framed].Expires
	trap.UDP = nil
	trap.TCP = []uint16{trapTCP, trapTCP + 1}
	if err := b.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}
	trap.Size = 32
	if err := b.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}
	if s := kernelSet(t, b, setSpared4); s.Size != 32 {
		t.Errorf("spared4's size after SetTrap with Size 32: %d", s.Size)
	}
	for _, a := range []netip.Addr{framed, never, attacker6(0)} {
		wantSpared(t, b, a, "after SetTrap with new ports and size")
	}
	if after := elems(t, b, setSpared4)[framed].Expires; after > before {
		t.Errorf("SetTrap reset %v's spare: %v left, was %v", framed, after, before)
	}
	wantPasses(t, l, b, u, framed, victim4, "spared, after SetTrap")
	if err := b.SetTrap(ctx, block.Trap{Size: 32}); err != nil {
		t.Fatal(err)
	}
	wantSpared(t, b, framed, "after a SetTrap that disables the trap")
	if err := b.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}
	wantSpared(t, b, framed, "after the trap is enabled again")

	// Unblock: a clean slate, trapped again on its next first hit
	if err := b.Unblock(ctx, framed); err != nil {
		t.Fatal(err)
	}
	if inSet(t, b, setSpared4, framed) {
		t.Errorf("after Unblock, %v is still in %s", framed, setSpared4)
	}
	if code := l.dial(framed, victim4, trapTCP, droppedWait); code != netnstest.ExitTimeout {
		t.Errorf("after Unblock, connect from %v to the trap port: exit %d, want a timeout (trapped again)", framed, code)
	}
	wantTrapped(t, l, b, framed, victim4, time.Minute, "a SYN after Unblock")
	if err := b.Unblock(ctx, attacker6(0)); err != nil {
		t.Fatal(err)
	}
	if inSet(t, b, setSpared6, attacker6(0)) {
		t.Errorf("after Unblock, %v is still in %s", attacker6(0), setSpared6)
	}

	// Flush: no table, so no spared set; Release is no error then
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := b.conn()
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := b.tableExists(c); err != nil || ok {
		t.Errorf("after Flush, the table exists: %v %v", ok, err)
	}
	if err := b.Release(ctx, never); err != nil {
		t.Errorf("Release without a table: %v", err)
	}
}

// TestKernelTrapSpareFull: the spared set has the trap set's size. When
// it is full, Release still lets the source out of the trap set,
// returns nil, and counts it (SpareOverflows); a source spared already
// is refreshed all the same. When the trap set is full and does not hold
// the source, Release spares it, no error either.
func TestKernelTrapSpareFull(t *testing.T) {
	l, _, b := trapLab(t)
	ctx := context.Background()
	trap := block.Trap{TCP: []uint16{trapTCP}, Hold: time.Minute, Size: 2}
	if err := b.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}
	// the trap set full, without the source: spared
	l.raw(attacker4(0), victim4, trapTCP, flagSYN)
	l.raw(attacker4(1), victim4, trapTCP, flagSYN)
	if n := len(elems(t, b, setTrap4)); n != 2 {
		t.Fatalf("trap4 holds %d, want 2 (full)", n)
	}
	if err := b.Release(ctx, attacker4(5)); err != nil {
		t.Fatalf("Release with the trap set full: %v", err)
	}
	wantSpared(t, b, attacker4(5), "released with the trap set full")
	if n := len(elems(t, b, setTrap4)); n != 2 {
		t.Errorf("trap4 holds %d after releasing a source it did not hold, want 2", n)
	}
	// fill the spared set: attacker4(5) and attacker4(0)
	if err := b.Release(ctx, attacker4(0)); err != nil {
		t.Fatal(err)
	}
	wantSpared(t, b, attacker4(0), "released")
	if got := b.SpareOverflows(); got != 0 {
		t.Errorf("SpareOverflows with room: %d", got)
	}
	// full: released, not spared, counted, no error
	if err := b.Release(ctx, attacker4(1)); err != nil {
		t.Fatalf("Release with the spared set full: %v", err)
	}
	if inSet(t, b, setTrap4, attacker4(1)) {
		t.Errorf("with the spared set full, Release left %v in %s", attacker4(1), setTrap4)
	}
	if inSet(t, b, setSpared4, attacker4(1)) {
		t.Errorf("%v got into a full spared set", attacker4(1))
	}
	if got := b.SpareOverflows(); got != 1 {
		t.Errorf("SpareOverflows after a Release found the spared set full: %d, want 1", got)
	}
	if code := l.dial(attacker4(1), victim4, openPort, netnstest.OpenWait); code != netnstest.ExitConnected {
		t.Errorf("released (not spared), %v's connection to the open port: exit %d, want it to connect", attacker4(1), code)
	}
	// not spared: its next first hit traps it again
	l.raw(attacker4(1), victim4, trapTCP, flagSYN)
	wantHeld(t, b, setTrap4, attacker4(1), time.Minute, "a released but unspared source's next first hit")
	// a spared source in the full set is refreshed, not counted
	time.Sleep(1200 * time.Millisecond)
	if err := b.Release(ctx, attacker4(0)); err != nil {
		t.Fatal(err)
	}
	if left := wantSpared(t, b, attacker4(0), "refreshed in a full set"); left < block.SpareFor-time.Second {
		t.Errorf("refreshed in a full spared set: %v left, want about %v", left, block.SpareFor)
	}
	if got := b.SpareOverflows(); got != 1 {
		t.Errorf("SpareOverflows after a refresh: %d, want still 1", got)
	}
}

// TestKernelSpareOlderTable: a table as a version without spared sets
// left it (trap rules without the spared returns, no spared sets):
// Release only lets the source out of the trap set, as that version did,
// without error; Prepare adds the spared sets and leaves the trap chain
// as found; SetTrap writes the trap chain with the spared returns, and
// Release spares.
func TestKernelSpareOlderTable(t *testing.T) {
	l, _, b := trapLab(t)
	u := l.Serve(trapUDP)
	ctx := context.Background()
	trap := block.Trap{TCP: []uint16{trapTCP}, Hold: time.Minute, Size: 16}
	if err := b.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}
	// the older layout: the spared returns and sets gone
	deleteRule(t, b, chainTrap, "return-"+setSpared4)
	deleteRule(t, b, chainTrap, "return-"+setSpared6)
	c, err := b.conn()
	if err != nil {
		t.Fatal(err)
	}
	c.DelSet(&nft.Set{Table: b.table, Name: setSpared4})
	c.DelSet(&nft.Set{Table: b.table, Name: setSpared6})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	oldTrap, _ := rules(t, b, chainTrap)

	b2 := l.backend() // a new daemon, before its SetTrap
	l.raw(attacker4(0), victim4, trapTCP, flagSYN)
	wantHeld(t, b2, setTrap4, attacker4(0), time.Minute, "a SYN")
	if err := b2.Release(ctx, attacker4(0)); err != nil {
		t.Fatalf("Release on a table without spared sets: %v", err)
	}
	if inSet(t, b2, setTrap4, attacker4(0)) {
		t.Errorf("Release on a table without spared sets left %v trapped", attacker4(0))
	}
	if err := b2.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if s := kernelSet(t, b2, setSpared4); s.Size != 16 || !s.HasTimeout || s.Dynamic {
		t.Errorf("spared4 after Prepare: size %d, timeout %v, dynamic %v", s.Size, s.HasTimeout, s.Dynamic)
	}
	kernelSet(t, b2, setSpared6)
	if got, _ := rules(t, b2, chainTrap); !slices.Equal(got, oldTrap) {
		t.Errorf("Prepare before SetTrap changed the trap chain:\n%v\nwas\n%v", got, oldTrap)
	}
	if err := b2.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}
	if got, _ := rules(t, b2, chainTrap); !slices.Equal(got, tags(trapRules(&trap))) {
		t.Errorf("trap chain after SetTrap: %v, want %v", got, tags(trapRules(&trap)))
	}
	l.raw(attacker4(1), victim4, trapTCP, flagSYN)
	wantHeld(t, b2, setTrap4, attacker4(1), time.Minute, "a SYN")
	if err := b2.Release(ctx, attacker4(1)); err != nil {
		t.Fatal(err)
	}
	wantSpared(t, b2, attacker4(1), "released after the upgrade")
	wantPasses(t, l, b2, u, attacker4(1), victim4, "spared after the upgrade")
}

// TestKernelTrapStealthAndACK: a TCP segment with none of SYN, ACK and
// RST (FIN, NULL, XMAS) holds its source whatever its port, a served one
// too; an ACK or FIN|ACK of no connection to a trap port holds its
// source but reaches the host, whose reset answers it, and the source's
// next packet is dropped (with conntrack's loose pickup off too, when
// such a segment is invalid rather than new); an ACK to a port that is
// no trap holds nothing. A benign client's connections, established
// traffic, hold nothing; an exempt source is never held.
func TestKernelTrapStealthAndACK(t *testing.T) {
	l, _, b := trapLab(t)
	ctx := context.Background()
	const otherPort = 9999 // neither served nor a trap
	exempt := attacker4(9)
	trap := block.Trap{
		TCP: []uint16{trapTCP}, UDP: []uint16{trapUDP},
		Exempt: []netip.Prefix{netip.PrefixFrom(exempt, 32), netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Hold:   time.Hour, Size: 64,
	}
	if err := b.SetTrap(ctx, trap); err != nil {
		t.Fatal(err)
	}
	// a benign client: its connections (SYN, ACKs, data, FIN|ACK of an
	// established connection) hold nothing
	benign := attacker4(8)
	for range 3 {
		if code := l.dial(benign, victim4, openPort, netnstest.OpenWait); code != netnstest.ExitConnected {
			t.Fatalf("a benign client's connection: exit %d", code)
		}
	}
	if inSet(t, b, setTrap4, benign) {
		t.Errorf("a benign client's established traffic held %v", benign)
	}

	// stealth probes to ports that are no traps
	for i, c := range []struct {
		port  int
		flags byte
		what  string
	}{
		{openPort, flagFIN, "a FIN to the served port"},
		{otherPort, 0, "a NULL segment to a closed port"},
		{otherPort, flagFIN | 0x08 | 0x20, "an XMAS segment to a closed port"},
	} {
		l.raw(attacker4(i), victim4, c.port, c.flags)
		wantTrapped(t, l, b, attacker4(i), victim4, time.Hour, c.what)
	}
	l.raw(attacker6(0), victim6, openPort, flagFIN)
	wantTrapped(t, l, b, attacker6(0), victim6, time.Hour, "an IPv6 FIN to the served port")

	// ACK and FIN|ACK of no connection to the trap port: answered with a
	// reset, the source held, its next packet dropped
	for i, flags := range []byte{flagACK, flagFIN | flagACK} {
		src := attacker4(3 + i)
		if !l.Lab.RawReplyFrom("attacker", src, victim4, trapTCP, flags, netnstest.OpenWait) {
			t.Errorf("%s of no connection to the trap port from %v: no reset, want the host's reset", netnstest.FlagLetters(flags), src)
		}
		if l.Lab.RawReplyFrom("attacker", src, victim4, trapTCP, flags, droppedWait) {
			t.Errorf("the second %s from %v: reset, want it dropped (held)", netnstest.FlagLetters(flags), src)
		}
		wantTrapped(t, l, b, src, victim4, time.Hour, netnstest.FlagLetters(flags)+" of no connection")
	}
	// invalid rather than new: the same
	l.Run("victim", "sysctl", "-w", "net.netfilter.nf_conntrack_tcp_loose=0")
	if !l.Lab.RawReplyFrom("attacker", attacker4(5), victim4, trapTCP, flagACK, netnstest.OpenWait) {
		t.Errorf("an ACK with loose pickup off: no reset")
	}
	wantTrapped(t, l, b, attacker4(5), victim4, time.Hour, "an ACK with loose pickup off")
	l.Run("victim", "sysctl", "-w", "net.netfilter.nf_conntrack_tcp_loose=1")

	// an ACK to a port that is no trap: reset, nothing held
	if !l.Lab.RawReplyFrom("attacker", attacker4(6), victim4, otherPort, flagACK, netnstest.OpenWait) {
		t.Errorf("an ACK to a closed port that is no trap: no reset")
	}
	if inSet(t, b, setTrap4, attacker4(6)) {
		t.Errorf("an ACK to a port that is no trap held %v", attacker4(6))
	}

	// the exempt source: neither held nor dropped
	l.raw(exempt, victim4, otherPort, flagFIN)
	if !l.Lab.RawReplyFrom("attacker", exempt, victim4, trapTCP, flagACK, netnstest.OpenWait) {
		t.Errorf("an ACK from the exempt %v: no reset", exempt)
	}
	if inSet(t, b, setTrap4, exempt) {
		t.Errorf("the exempt %v was held", exempt)
	}
	if code := l.dial(exempt, victim4, openPort, netnstest.OpenWait); code != netnstest.ExitConnected {
		t.Errorf("the exempt %v's connection: exit %d, want it to connect", exempt, code)
	}
	if n, err := b.TrapOverflows(ctx); n != 0 || err != nil {
		t.Errorf("TrapOverflows with room in the set: %d, %v", n, err)
	}
}

// TestKernelTrapACKOverflow: with the trap set full, an ACK of no
// connection to a trap port is counted and let through (the host's
// reset answers it) without holding its source; a FIN to a port that is
// no trap is counted and dropped.
func TestKernelTrapACKOverflow(t *testing.T) {
	l, _, b := trapLab(t)
	ctx := context.Background()
	if err := b.SetTrap(ctx, block.Trap{TCP: []uint16{trapTCP}, Hold: time.Hour, Size: 1}); err != nil {
		t.Fatal(err)
	}
	l.raw(attacker4(0), victim4, trapTCP, flagSYN)
	wantTrapped(t, l, b, attacker4(0), victim4, time.Hour, "a SYN")
	if !l.Lab.RawReplyFrom("attacker", attacker4(1), victim4, trapTCP, flagACK, netnstest.OpenWait) {
		t.Errorf("an ACK with the trap set full: no reset, want it let through")
	}
	if inSet(t, b, setTrap4, attacker4(1)) {
		t.Errorf("an ACK got %v into a full trap set", attacker4(1))
	}
	if n, err := b.TrapOverflows(ctx); n != 1 || err != nil {
		t.Errorf("TrapOverflows after an ACK found the set full: %d, %v; want 1", n, err)
	}
	l.raw(attacker4(2), victim4, 9999, flagFIN)
	if inSet(t, b, setTrap4, attacker4(2)) {
		t.Errorf("a FIN got %v into a full trap set", attacker4(2))
	}
	if n, err := b.TrapOverflows(ctx); n != 2 || err != nil {
		t.Errorf("TrapOverflows after a FIN found the set full: %d, %v; want 2", n, err)
	}
	if code := l.dial(attacker4(1), victim4, openPort, netnstest.OpenWait); code != netnstest.ExitConnected {
		t.Errorf("not held, %v's connection: exit %d, want it to connect", attacker4(1), code)
	}
}
