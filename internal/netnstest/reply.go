package netnstest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// RawReply is the rawreply helper, "SRC DST PORT FLAGS WAIT" (IPv4): it
// sends one TCP segment with FLAGS (letters of FSRPAU) from SRC to PORT
// of DST through a raw socket, as the raw helper does, and waits up to
// WAIT for a reset from DST:PORT to it. It exits 0 when the reset came,
// ExitTimeout when none did.
func RawReply(args []string) error {
	if len(args) != 5 {
		return errors.New("usage: rawreply SRC DST PORT FLAGS WAIT")
	}
	src, dst, port, flags, err := rawArgs(args)
	if err != nil {
		return err
	}
	wait, err := time.ParseDuration(args[4])
	if err != nil {
		return err
	}
	if !src.Is4() || !dst.Is4() {
		return errors.New("rawreply: IPv4 only")
	}
	sport := uint16(40000 + os.Getpid()%20000)
	seg := tcpSegment(src, dst, sport, port, flags)

	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src.As4()}); err != nil {
		return fmt.Errorf("bind %v: %w", src, err)
	}
	if err := unix.Sendto(fd, seg, 0, &unix.SockaddrInet4{Addr: dst.As4()}); err != nil {
		return fmt.Errorf("sendto %v: %w", dst, err)
	}
	deadline := time.Now().Add(wait)
	buf := make([]byte, 2048)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return ExitCode(ExitTimeout)
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("recvfrom: %w", err)
		}
		// an IPv4 packet: its header, then the TCP segment
		if n < 20 {
			continue
		}
		ihl := int(buf[0]&0x0f) * 4
		if n < ihl+14 || netip.AddrFrom4([4]byte(buf[12:16])) != dst {
			continue
		}
		t := buf[ihl:n]
		if binary.BigEndian.Uint16(t[0:]) == port && binary.BigEndian.Uint16(t[2:]) == sport && t[13]&0x04 != 0 {
			return nil
		}
	}
}

// RawReplyFrom runs the rawreply helper (RawReply, which the test binary
// must register under that name) in role's namespace: one segment with
// flags from src to port of dst; it reports whether a reset came back
// within wait.
func (l *Lab) RawReplyFrom(role string, src, dst netip.Addr, port int, flags byte, wait time.Duration) bool {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.CmdTimeout)
	defer cancel()
	c := l.HelperCmd(ctx, role, "rawreply", src.String(), dst.String(), strconv.Itoa(port), FlagLetters(flags), wait.String())
	out, err := c.CombinedOutput()
	if c.ProcessState == nil {
		l.t.Fatalf("rawreply from %v: %v", src, err)
	}
	switch code := c.ProcessState.ExitCode(); code {
	case 0:
		return true
	case ExitTimeout:
		return false
	default:
		l.t.Fatalf("rawreply %q from %v to %v port %d: %v: %s", FlagLetters(flags), src, dst, port, err, out)
		return false
	}
}
