package nftables

// The kernel tests send the attacker's packets from inside its network
// namespace by running this test binary again under `ip netns exec NS`,
// with SWNFT_HELPER saying what to do: TestMain sees it and does that
// instead of running tests. Every helper first checks that it really is in
// the namespace SWNFT_NETNS names (and not in that of PID 1), so nothing
// can reach the host's own network by mistake. The backend itself runs in
// the test process, on a descriptor of the victim's namespace.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	envHelper = "SWNFT_HELPER" // serve, tcp, udp or raw
	envNetns  = "SWNFT_NETNS"  // the namespace the helper must be in
	envArgs   = "SWNFT_ARGS"   // its arguments, one a line
)

// Exit codes of the helpers.
const (
	exitConnected = 0
	exitFailed    = 1
	exitBadUse    = 2
	exitTimeout   = 3
	exitRefused   = 4
)

func TestMain(m *testing.M) {
	if op := os.Getenv(envHelper); op != "" {
		os.Exit(helperMain(op, os.Getenv(envNetns), splitArgs(os.Getenv(envArgs))))
	}
	os.Exit(m.Run())
}

func splitArgs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func helperMain(op, ns string, args []string) int {
	if err := checkNetns(ns); err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", op, err)
		return exitBadUse
	}
	var err error
	switch op {
	case "serve":
		err = helperServe(args)
	case "tcp":
		return helperTCP(args)
	case "udp":
		err = helperUDP(args)
	case "raw":
		err = helperRaw(args)
	default:
		err = fmt.Errorf("unknown helper %q", op)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", op, err)
		return exitFailed
	}
	return 0
}

// checkNetns makes sure this process runs in the named namespace, and not
// in that of PID 1.
func checkNetns(ns string) error {
	if ns == "" || strings.Contains(ns, "/") {
		return fmt.Errorf("bad %s %q", envNetns, ns)
	}
	self, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return err
	}
	want, err := os.Stat("/run/netns/" + ns)
	if err != nil {
		return err
	}
	if !os.SameFile(self, want) {
		return fmt.Errorf("not in network namespace %s: refusing to run", ns)
	}
	if init, err := os.Stat("/proc/1/ns/net"); err == nil && os.SameFile(self, init) {
		return errors.New("in the network namespace of PID 1: refusing to run")
	}
	return nil
}

// helperServe listens on TCP and UDP port args[0] of every address of the
// namespace, prints "ready", then "udp SRC PAYLOAD" for every datagram and
// "tcp SRC" for every connection (which it answers "ok" and closes), until
// its standard input closes.
func helperServe(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: serve PORT")
	}
	addr := net.JoinHostPort("::", args[0])
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", a...)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			say("tcp %s", c.RemoteAddr())
			_, _ = c.Write([]byte("ok\n"))
			_ = c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			say("udp %s %s", from, buf[:n])
		}
	}()
	say("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = ln.Close()
	return pc.Close()
}

// helperTCP connects from args[2] to args[0] within args[1] (a duration)
// and reads the server's "ok": exit exitConnected when it did, exitTimeout
// when the connection timed out (the SYN was dropped), exitRefused when it
// was reset (the SYN got through to a closed port), exitFailed otherwise.
func helperTCP(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: tcp ADDR:PORT TIMEOUT SRC")
		return exitBadUse
	}
	d, err := time.ParseDuration(args[1])
	src, err2 := netip.ParseAddr(args[2])
	if err != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, "bad arguments:", err, err2)
		return exitBadUse
	}
	dialer := net.Dialer{Timeout: d, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	c, err := dialer.Dial("tcp", args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return exitTimeout
		case errors.Is(err, syscall.ECONNREFUSED):
			return exitRefused
		}
		return exitFailed
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(d))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ok\n" {
		fmt.Fprintf(os.Stderr, "read %q: %v\n", line, err)
		return exitFailed
	}
	return exitConnected
}

// helperUDP sends args[1] from args[3] to args[0] in args[2] datagrams,
// 50ms apart.
func helperUDP(args []string) error {
	if len(args) != 4 {
		return errors.New("usage: udp ADDR:PORT PAYLOAD COUNT SRC")
	}
	n, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	src, err := netip.ParseAddr(args[3])
	if err != nil {
		return err
	}
	dialer := net.Dialer{LocalAddr: &net.UDPAddr{IP: src.AsSlice()}}
	c, err := dialer.Dial("udp", args[0])
	if err != nil {
		return err
	}
	defer c.Close()
	for i := range n {
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := c.Write([]byte(args[1])); err != nil {
			return err
		}
	}
	return nil
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
