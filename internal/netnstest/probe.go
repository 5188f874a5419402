package netnstest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Traffic and firewall reads of the backends' kernel tests, through the
// helpers (TCP, UDP, Raw) run in the lab's namespaces.

// Waits of the reachability checks.
const (
	// BlockedWait is how long a connect expected to be dropped is given:
	// a dropped SYN is not answered at all, so any wait shows it; one
	// second is the first SYN retransmission.
	BlockedWait = time.Second
	// OpenWait bounds a connect or datagram expected to get through: far
	// more than a veth round trip, so that a slow CI machine never fails.
	OpenWait = 5 * time.Second
	// UDPGrace is how long after a later control datagram arrived a
	// dropped one is still waited for: it was sent first, so it would be
	// there.
	UDPGrace = 300 * time.Millisecond
)

// WantReach checks whether role, from src (invalid: its own address),
// reaches dst on port over TCP and UDP (s is the victim's listener); the
// role "benign" must reach it, and is the control of a negative check.
func (l *Lab) WantReach(s *Server, role string, src, dst netip.Addr, port int, want bool) {
	l.t.Helper()
	if want {
		if code := l.Dial(role, src, dst, port, OpenWait); code != ExitConnected {
			l.t.Errorf("TCP from %s %v to %v: timed out, want a connection", role, src, dst)
		}
		if token := l.SendUDP(role, src, dst, port); !s.Wait(token, OpenWait) {
			l.t.Errorf("UDP from %s %v to %v: not received, want it received", role, src, dst)
		}
		return
	}
	if code := l.Dial(role, src, dst, port, BlockedWait); code != ExitTimeout {
		l.t.Errorf("TCP from %s %v to %v: connected, want a timeout (dropped)", role, src, dst)
	}
	dropped := l.SendUDP(role, src, dst, port)
	control := l.SendUDP("benign", netip.Addr{}, dst, port)
	if !s.Wait(control, OpenWait) {
		l.t.Fatalf("UDP from benign to %v (the control) not received", dst)
	}
	time.Sleep(UDPGrace)
	if s.Has(dropped) {
		l.t.Errorf("UDP from %s %v to %v: received, want it dropped", role, src, dst)
	}
}

// Dial connects from role (from address src when valid) to port of dst
// within wait and returns the tcp helper's exit code: ExitConnected,
// ExitTimeout or ExitRefused (anything else fails the test).
func (l *Lab) Dial(role string, src, dst netip.Addr, port int, wait time.Duration) int {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.CmdTimeout)
	defer cancel()
	args := []string{netip.AddrPortFrom(dst, uint16(port)).String(), wait.String()}
	if src.IsValid() {
		args = append(args, src.String())
	}
	c := l.HelperCmd(ctx, role, "tcp", args...)
	out, err := c.CombinedOutput()
	if c.ProcessState == nil {
		l.t.Fatalf("tcp from %s to %v: %v", role, dst, err)
	}
	code := c.ProcessState.ExitCode()
	if code != ExitConnected && code != ExitTimeout && code != ExitRefused {
		l.t.Fatalf("tcp from %s %v to %v port %d: %v: %s", role, src, dst, port, err, out)
	}
	return code
}

var tokenSeq atomic.Int64

// SendUDP sends a new token from role (from src when valid) to port of
// dst, three times, and returns it.
func (l *Lab) SendUDP(role string, src, dst netip.Addr, port int) string {
	l.t.Helper()
	token := fmt.Sprintf("token-%s-%d", role, tokenSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.CmdTimeout)
	defer cancel()
	args := []string{netip.AddrPortFrom(dst, uint16(port)).String(), token, "3"}
	if src.IsValid() {
		args = append(args, src.String())
	}
	if out, err := l.HelperCmd(ctx, role, "udp", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("udp from %s to %v: %v: %s", role, dst, err, out)
	}
	return token
}

// SendRaw sends a TCP segment with flags (letters of FSRPAU, "" for none:
// a NULL probe) from role's src to port of dst, count times, through the
// raw helper.
func (l *Lab) SendRaw(role string, src, dst netip.Addr, port int, flags string, count int) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.CmdTimeout)
	defer cancel()
	c := l.HelperCmd(ctx, role, "raw", src.String(), dst.String(), strconv.Itoa(port), flags, strconv.Itoa(count))
	if out, err := c.CombinedOutput(); err != nil {
		l.t.Fatalf("raw %q from %v to %v port %d: %v: %s", flags, src, dst, port, err, out)
	}
}

// Rules returns `bin -S [chain]` in the victim, without iptables-nft's
// "# Warning" lines.
func (l *Lab) Rules(bin string, chain ...string) ([]string, error) {
	out, err := l.Try("victim", bin, append([]string{"-S"}, chain...)...)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, s := range strings.Split(strings.TrimSpace(out), "\n") {
		if s != "" && !strings.HasPrefix(s, "#") {
			lines = append(lines, s)
		}
	}
	return lines, nil
}

// MustRules is Rules that fails the test on an error.
func (l *Lab) MustRules(bin string, chain ...string) []string {
	l.t.Helper()
	r, err := l.Rules(bin, chain...)
	if err != nil {
		l.t.Fatal(err)
	}
	return r
}

// tcpFlags are the TCP flag letters, from the lowest bit.
const tcpFlags = "FSRPAU"

// FlagLetters writes TCP flags as Raw takes them.
func FlagLetters(flags byte) string {
	var b strings.Builder
	for i, c := range tcpFlags {
		if flags&(1<<i) != 0 {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// Raw is the raw helper: it sends a TCP segment from args[0] to port
// args[2] of args[1] with the flags args[3] (letters of FSRPAU; "" for
// none) through a raw socket, as a scanner does, args[4] times 50 ms
// apart.
func Raw(args []string) error {
	if len(args) != 5 {
		return errors.New("usage: raw SRC DST PORT FLAGS COUNT")
	}
	src, dst, port, flags, err := rawArgs(args)
	if err != nil {
		return err
	}
	count, err := strconv.Atoi(args[4])
	if err != nil || count < 1 {
		return fmt.Errorf("bad count %q", args[4])
	}
	seg := tcpSegment(src, dst, 40000+uint16(os.Getpid()%20000), port, flags)
	if src.Is4() != dst.Is4() {
		return fmt.Errorf("%v and %v are of different families", src, dst)
	}
	// (As4 of an IPv6 address panics: the IPv4 sockaddrs only for IPv4.)
	domain := unix.AF_INET6
	var sa, da unix.Sockaddr = &unix.SockaddrInet6{Addr: src.As16()}, &unix.SockaddrInet6{Addr: dst.As16()}
	if dst.Is4() {
		domain = unix.AF_INET
		sa, da = &unix.SockaddrInet4{Addr: src.As4()}, &unix.SockaddrInet4{Addr: dst.As4()}
	}
	fd, err := unix.Socket(domain, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind %v: %w", src, err)
	}
	for i := range count {
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		if err := unix.Sendto(fd, seg, 0, da); err != nil {
			return fmt.Errorf("sendto %v: %w", dst, err)
		}
	}
	return nil
}

// tcpSegment builds a TCP header (no options, no payload) with its
// checksum over the pseudo-header of src and dst.
func tcpSegment(src, dst netip.Addr, sport, dport uint16, flags byte) []byte {
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], sport)
	binary.BigEndian.PutUint16(seg[2:], dport)
	binary.BigEndian.PutUint32(seg[4:], 0x5ca11ed)
	if flags&(1<<4) != 0 { // ACK
		binary.BigEndian.PutUint32(seg[8:], 0xacced)
	}
	seg[12] = 5 << 4
	seg[13] = flags
	binary.BigEndian.PutUint16(seg[14:], 1024)
	binary.BigEndian.PutUint16(seg[16:], checksum(src, dst, unix.IPPROTO_TCP, seg))
	return seg
}

// checksum is the Internet checksum of the transport segment seg (of
// protocol proto, an even number of bytes long, its checksum field 0)
// over the pseudo-header of src and dst, IPv4 or IPv6 alike.
func checksum(src, dst netip.Addr, proto uint32, seg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	sum += proto + uint32(len(seg))
	add(seg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// rawArgs parses the "SRC DST PORT FLAGS" arguments of the raw and
// rawreply helpers (FLAGS: letters of FSRPAU, "" for none).
func rawArgs(args []string) (src, dst netip.Addr, port uint16, flags byte, err error) {
	if src, err = netip.ParseAddr(args[0]); err != nil {
		return
	}
	if dst, err = netip.ParseAddr(args[1]); err != nil {
		return
	}
	p, err := strconv.ParseUint(args[2], 10, 16)
	if err != nil {
		return
	}
	port = uint16(p)
	for _, c := range args[3] {
		i := strings.IndexRune(tcpFlags, c)
		if i < 0 {
			err = fmt.Errorf("bad flag %q", c)
			return
		}
		flags |= 1 << i
	}
	return
}
