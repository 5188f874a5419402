package nftables

// The kernel tests send the attacker's packets from inside its network
// namespace by running this test binary again under `ip netns exec NS`,
// with SWNFT_HELPER saying what to do: TestMain sees it and does that
// instead of running tests (see internal/netnstest). Every helper first checks that it really is in
// the namespace SWNFT_NETNS names (and not in that of PID 1), so nothing
// can reach the host's own network by mistake. The backend itself runs in
// the test process, on a descriptor of the victim's namespace.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"

	"github.com/scanwarden/scanwarden/internal/netnstest"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	netnstest.Main(m, "SWNFT", map[string]netnstest.Helper{
		"serve": netnstest.Serve(false),
		"tcp":   netnstest.TCP,
		"udp":   netnstest.UDP,
		"raw":   helperRaw,
	})
}

// helperRaw sends one TCP segment with the flags args[3] (a number) from
// args[0] to port args[2] of args[1], through a raw socket: the FIN, NULL
// and ACK probes a connect() cannot make.
func helperRaw(args []string) error {
	if len(args) != 4 {
		return errors.New("usage: raw SRC DST PORT FLAGS")
	}
	src, err := netip.ParseAddr(args[0])
	if err != nil {
		return err
	}
	dst, err := netip.ParseAddr(args[1])
	if err != nil {
		return err
	}
	port, err := strconv.ParseUint(args[2], 10, 16)
	if err != nil {
		return err
	}
	flags, err := strconv.ParseUint(args[3], 0, 8)
	if err != nil {
		return err
	}
	seg := tcpSegment(src, dst, uint16(20000+rand.IntN(40000)), uint16(port), byte(flags))
	af, sa, da := unix.AF_INET, unix.Sockaddr(&unix.SockaddrInet4{Addr: src.As4()}), unix.Sockaddr(&unix.SockaddrInet4{Addr: dst.As4()})
	if src.Is6() {
		af, sa, da = unix.AF_INET6, &unix.SockaddrInet6{Addr: src.As16()}, &unix.SockaddrInet6{Addr: dst.As16()}
	}
	fd, err := unix.Socket(af, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	if err := unix.Sendto(fd, seg, 0, da); err != nil {
		return fmt.Errorf("send to %s: %w", dst, err)
	}
	return nil
}

// tcpSegment builds a TCP header (no options, no payload) with its
// checksum over the pseudo-header of src and dst.
func tcpSegment(src, dst netip.Addr, sport, dport uint16, flags byte) []byte {
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], sport)
	binary.BigEndian.PutUint16(seg[2:], dport)
	binary.BigEndian.PutUint32(seg[4:], rand.Uint32())
	if flags&0x10 != 0 {
		binary.BigEndian.PutUint32(seg[8:], rand.Uint32())
	}
	seg[12] = 5 << 4
	seg[13] = flags
	binary.BigEndian.PutUint16(seg[14:], 1024)
	var pseudo []byte
	pseudo = append(pseudo, src.AsSlice()...)
	pseudo = append(pseudo, dst.AsSlice()...)
	if src.Is4() {
		pseudo = append(pseudo, 0, unix.IPPROTO_TCP, 0, byte(len(seg)))
	} else {
		pseudo = append(pseudo, 0, 0, 0, byte(len(seg)), 0, 0, 0, unix.IPPROTO_TCP)
	}
	binary.BigEndian.PutUint16(seg[16:], checksum(append(pseudo, seg...)))
	return seg
}

// checksum is the Internet checksum of b.
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
