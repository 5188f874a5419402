package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// runResult is one measuring run.
type runResult struct {
	// Sent is the datagrams the generator's sendmmsg calls accepted.
	Sent uint64
	// Delivered is the datagrams the sink read (in the victim, or behind
	// it on the forward path).
	Delivered uint64
	// Wall is the run's duration.
	Wall time.Duration
	// GenCPU is the generator thread's CPU time over the run. veth hands
	// each packet to the peer's stack in the sender's context, so it
	// holds the sending, the victim's receive (or forward) path and its
	// firewall, and on the forward path the far namespace's receive.
	GenCPU time.Duration
	// Softirqd is the CPU time ksoftirqd of the generator's core used
	// during the run: receive work the kernel deferred out of the
	// generator's context (normally near zero; shown, not included).
	Softirqd time.Duration
}

// NsPerPacket is the generator's CPU time per packet sent, in ns.
func (r runResult) NsPerPacket() float64 {
	if r.Sent == 0 {
		return 0
	}
	return float64(r.GenCPU.Nanoseconds()) / float64(r.Sent)
}

// mmsghdr is struct mmsghdr of sendmmsg(2)/recvmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [unsafe.Sizeof(uintptr(0)) - 4]byte
}

// newMsgs returns count headers, each over a buffer of size bytes of its
// own (shared when shared is set: the generator sends one payload).
func newMsgs(count, size int, shared bool) []mmsghdr {
	msgs := make([]mmsghdr, count)
	iovs := make([]unix.Iovec, count)
	buf := make([]byte, size)
	for i := range msgs {
		if !shared {
			buf = make([]byte, size)
		}
		iovs[i].Base = &buf[0]
		iovs[i].SetLen(size)
		msgs[i].hdr.Iov = &iovs[i]
		msgs[i].hdr.SetIovlen(1)
	}
	return msgs
}

func mmsg(trap uintptr, fd int, msgs []mmsghdr) (int, error) {
	n, _, e := unix.Syscall6(trap, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// udpSocket returns a blocking IPv6 UDP socket bound to local:port in the
// calling thread's network namespace.
func udpSocket(local netip.Addr, port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet6{Addr: local.As16(), Port: port}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind [%s]:%d: %w", local, port, err)
	}
	return fd, nil
}

// sinkSocket is udpSocket on addr with the sink's receive buffer and poll
// timeout.
func sinkSocket(addr netip.Addr, port int) (int, error) {
	fd, err := udpSocket(addr, port)
	if err != nil {
		return -1, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, sinkRcvBuf); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("SO_RCVBUFFORCE: %w", err)
	}
	tv := unix.NsecToTimeval(sinkPoll.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("SO_RCVTIMEO: %w", err)
	}
	return fd, nil
}

// goNS is inNS without the wait: f's error arrives on the channel.
func goNS(ns string, cpu int, f func() error) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- inNS(ns, cpu, f) }()
	return errc
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// measure runs the generator in p.gen (pinned to genCPU) sending
// datagrams along pt to its sink (pinned to sinkCPU) as fast as it can
// for d, after a warm-up that waits for the first packet to arrive.
func measure(p *pair, pt path, d time.Duration) (runResult, error) {
	var (
		count atomic.Uint64 // datagrams the sink read
		stop  atomic.Bool
	)
	sinkErr, err := startSink(pt.ns, sinkCPU, pt.dst, sinkPort, "sink", func(fd int) error {
		return countDatagrams(fd, &count, &stop)
	})
	if err != nil {
		return runResult{}, err
	}
	defer func() {
		stop.Store(true)
		<-sinkErr
	}()

	ksoft := softirqd(genCPU)
	var res runResult
	err = inNS(p.gen, genCPU, func() error {
		return generate(pt.dst, d, &count, ksoft, &res)
	})
	return res, err
}

// startSink runs a sink in network namespace ns (pinned to cpu when
// cpu >= 0): it binds UDP port port of addr (sinkSocket) and hands the
// socket to loop. startSink returns once the socket is bound, with the
// channel loop's error will arrive on, or with the error (prefixed with
// name) that kept the socket from being made.
func startSink(ns string, cpu int, addr netip.Addr, port int, name string, loop func(fd int) error) (<-chan error, error) {
	ready := make(chan struct{})
	sinkErr := goNS(ns, cpu, func() error {
		fd, err := sinkSocket(addr, port)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer unix.Close(fd)
		close(ready)
		return loop(fd)
	})
	select {
	case <-ready:
		return sinkErr, nil
	case err := <-sinkErr:
		return nil, err
	}
}

// countDatagrams is the measuring sink's loop: it reads datagrams from fd
// with recvmmsg, batch at a time, and adds their number to count until
// stop is set (which it notices within sinkPoll when no packet comes).
func countDatagrams(fd int, count *atomic.Uint64, stop *atomic.Bool) error {
	msgs := newMsgs(batch, payloadLen+64, false)
	for !stop.Load() {
		n, err := mmsg(unix.SYS_RECVMMSG, fd, msgs)
		switch {
		case err == nil:
			count.Add(uint64(n))
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		default:
			return fmt.Errorf("sink: recvmmsg: %w", err)
		}
	}
	return nil
}

// generate is the generator, run on its pinned thread in the generator's
// namespace: it connects to the sink at dst, warms the path up (warmUp), then
// sends with sendmmsg as fast as it can for d and records in res what it
// sent, its thread's CPU time, the wall time and ksoft's CPU time over
// that span, and, after letting the sink drain for settle, what the sink
// counted meanwhile (count).
func generate(dst netip.Addr, d time.Duration, count *atomic.Uint64, ksoft ksoftirqd, res *runResult) error {
	fd, err := udpSocket(genAddr, 0)
	if err != nil {
		return fmt.Errorf("generator: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrInet6{Addr: dst.As16(), Port: sinkPort}); err != nil {
		return fmt.Errorf("generator: connect [%s]:%d: %w", dst, sinkPort, err)
	}
	msgs := newMsgs(batch, payloadLen, true)
	if err := warmUp(fd, msgs, count, dst); err != nil {
		return err
	}
	time.Sleep(settle)
	base := count.Load()
	ks0 := ksoft.cpu()
	c0 := threadCPU()
	t0 := time.Now()
	for deadline := t0.Add(d); time.Now().Before(deadline); {
		n, err := mmsg(unix.SYS_SENDMMSG, fd, msgs)
		switch {
		case err == nil:
			res.Sent += uint64(n)
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN), errors.Is(err, unix.ENOBUFS):
		default:
			return fmt.Errorf("generator: sendmmsg: %w", err)
		}
	}
	res.GenCPU = threadCPU() - c0
	res.Wall = time.Since(t0)
	res.Softirqd = ksoft.cpu() - ks0
	time.Sleep(settle)
	res.Delivered = count.Load() - base
	return nil
}

// warmUp sends one datagram of msgs from fd every millisecond until the
// sink (at dst) has counted one, so that the path is known to work and
// the caches are hot; it fails after warmupTimeout.
func warmUp(fd int, msgs []mmsghdr, count *atomic.Uint64, dst netip.Addr) error {
	for t := time.Now(); count.Load() == 0; {
		if time.Since(t) > warmupTimeout {
			return fmt.Errorf("no packet from [%s] reached the sink at [%s]:%d within %v", genAddr, dst, sinkPort, warmupTimeout)
		}
		if _, err := mmsg(unix.SYS_SENDMMSG, fd, msgs[:1]); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("generator: sendmmsg: %w", err)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// ksoftirqd is the per-CPU softirq thread of one core.
type ksoftirqd struct{ pid int }

// softirqd finds ksoftirqd/cpu; a zero pid (not found) reads as no time.
func softirqd(cpu int) ksoftirqd {
	want := fmt.Sprintf("ksoftirqd/%d", cpu)
	comms, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, f := range comms {
		b, err := os.ReadFile(f)
		if err == nil && strings.TrimSpace(string(b)) == want {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			return ksoftirqd{pid}
		}
	}
	return ksoftirqd{}
}

// cpu returns the thread's CPU time so far (/proc/PID/schedstat, ns).
func (k ksoftirqd) cpu() time.Duration {
	if k.pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", k.pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	ns, _ := strconv.ParseInt(f[0], 10, 64)
	return time.Duration(ns)
}

// verify checks that the victim's firewall drops datagrams from
// bannedAddr along pt when dropped is set (and passes them otherwise),
// and always passes those from genAddr: that a load really is in force
// on that path and blocks nothing else.
func verify(p *pair, pt path, dropped bool) error {
	var (
		fromGen, fromBanned atomic.Int64
		sent                = make(chan struct{})
	)
	sinkErr, err := startSink(pt.ns, -1, pt.dst, verifyPort, "verify sink", func(fd int) error {
		return countSources(fd, &fromGen, &fromBanned, sent)
	})
	if err != nil {
		return err
	}
	err = inNS(p.gen, -1, func() error {
		defer close(sent)
		return sendVerify(pt.dst)
	})
	if err2 := <-sinkErr; err == nil {
		err = err2
	}
	if err != nil {
		return err
	}
	if err := verdict(dropped, fromGen.Load(), fromBanned.Load()); err != nil {
		return fmt.Errorf("%s path: %w", pt.name, err)
	}
	return nil
}

// countSources is verify's sink loop: it counts the datagrams on fd from
// genAddr in fromGen and those from bannedAddr in fromBanned until
// verifyPackets have come from genAddr (or warmupTimeout has passed),
// then, once sent is closed, reads on until nothing comes for sinkPoll.
func countSources(fd int, fromGen, fromBanned *atomic.Int64, sent <-chan struct{}) error {
	buf := make([]byte, 256)
	deadline := time.Now().Add(warmupTimeout)
	for fromGen.Load() < verifyPackets && time.Now().Before(deadline) {
		_, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("verify sink: recvfrom: %w", err)
		}
		if sa, ok := from.(*unix.SockaddrInet6); ok {
			switch netip.AddrFrom16(sa.Addr) {
			case genAddr:
				fromGen.Add(1)
			case bannedAddr:
				fromBanned.Add(1)
			}
		}
	}
	// the banned source sent first: had anything of it passed, it
	// would be here by now; give it the poll time to be sure
	<-sent
	for {
		if _, from, err := unix.Recvfrom(fd, buf, 0); err != nil {
			break
		} else if sa, ok := from.(*unix.SockaddrInet6); ok && netip.AddrFrom16(sa.Addr) == bannedAddr {
			fromBanned.Add(1)
		}
	}
	return nil
}

// sendVerify sends verifyPackets datagrams to dst's verifyPort from
// bannedAddr and then as many from genAddr, each source from a socket of
// its own; it runs in the generator's namespace.
func sendVerify(dst netip.Addr) error {
	to := &unix.SockaddrInet6{Addr: dst.As16(), Port: verifyPort}
	for _, src := range []netip.Addr{bannedAddr, genAddr} {
		fd, err := udpSocket(src, 0)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		for range verifyPackets {
			if err := unix.Sendto(fd, []byte("fwdbench verify"), 0, to); err != nil {
				unix.Close(fd)
				return fmt.Errorf("verify: send from [%s]: %w", src, err)
			}
		}
		unix.Close(fd)
	}
	return nil
}

// verdict judges verify's counts: g datagrams from genAddr and b from
// bannedAddr reached the sink, and the victim's firewall should drop
// bannedAddr's when dropped is set.
func verdict(dropped bool, g, b int64) error {
	switch {
	case g == 0:
		return fmt.Errorf("none of %d datagrams from the unbanned [%s] reached the sink", verifyPackets, genAddr)
	case dropped && b != 0:
		return fmt.Errorf("%d of %d datagrams from the banned [%s] reached the sink: the bans are not in force", b, verifyPackets, bannedAddr)
	case !dropped && b == 0:
		return fmt.Errorf("no datagram from [%s] reached the sink, though the victim bans nobody", bannedAddr)
	}
	return nil
}
