package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

func testOptions(t testing.TB) *options {
	t.Helper()
	o, err := parseFlags([]string{"-dmac", "02:00:00:00:00:10", "-smac", "02:00:00:00:00:66", "-dst", "fd00:77::10"})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// verifyTCP6 checks the TCP checksum of seg the long way: the whole
// pseudo-header and segment must sum to 0xffff.
func verifyTCP6(src, dst netip.Addr, seg []byte) bool {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:], uint32(len(seg)))
	l[7] = 6
	add(l[:])
	add(seg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return sum == 0xffff
}

func TestFrameIsAValidSYN(t *testing.T) {
	o := testOptions(t)
	f := make([]byte, frameLen)
	template(f, o)
	pseudo := pseudoSum(o.srcBase, o.dst)
	for _, c := range []struct {
		src          uint32
		sport, dport uint16
		seq          uint32
	}{{1, 40000, 22, 1}, {1_000_000, 1024, 65535, 0xffffffff}, {0xfffffffe, 65535, 1, 0x12345678}} {
		fill(f, c.src, c.sport, c.dport, c.seq, pseudo)
		pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		if el := pkt.ErrorLayer(); el != nil {
			t.Fatalf("src %d: decoding: %v", c.src, el.Error())
		}
		eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp == nil {
			t.Fatalf("src %d: no TCP layer", c.src)
		}
		if eth.DstMAC.String() != "02:00:00:00:00:10" || eth.SrcMAC.String() != "02:00:00:00:00:66" {
			t.Errorf("MACs %v -> %v", eth.SrcMAC, eth.DstMAC)
		}
		want := o.srcBase.As16()
		binary.BigEndian.PutUint32(want[12:], c.src)
		src, _ := netip.AddrFromSlice(ip.SrcIP)
		dst, _ := netip.AddrFromSlice(ip.DstIP)
		if src != netip.AddrFrom16(want) || dst != o.dst {
			t.Errorf("addresses %v -> %v, want %v -> %v", src, dst, netip.AddrFrom16(want), o.dst)
		}
		if ip.Length != tcpLen || ip.NextHeader != layers.IPProtocolTCP {
			t.Errorf("IPv6 payload length %d, next header %v", ip.Length, ip.NextHeader)
		}
		if !tcp.SYN || tcp.ACK || tcp.RST || tcp.FIN || tcp.PSH || tcp.URG {
			t.Errorf("flags: want SYN only: %+v", tcp)
		}
		if uint16(tcp.SrcPort) != c.sport || uint16(tcp.DstPort) != c.dport || tcp.Seq != c.seq || tcp.Window != 1024 {
			t.Errorf("got ports %d->%d seq %d window %d", tcp.SrcPort, tcp.DstPort, tcp.Seq, tcp.Window)
		}
		if len(tcp.Options) != 1 || tcp.Options[0].OptionType != layers.TCPOptionKindMSS {
			t.Errorf("options %v, want one MSS", tcp.Options)
		}
		if !verifyTCP6(src, dst, f[offTCP:]) {
			t.Errorf("src %d: bad TCP checksum %#04x", c.src, tcp.Checksum)
		}
	}
}

func TestFlagsKeepSourcesInTheLab(t *testing.T) {
	base := []string{"-dmac", "02:00:00:00:00:10", "-dst", "fd00:77::10"}
	for _, c := range []struct {
		src string
		ok  bool
	}{
		{"fd00:77::1:0:0", true},
		{"fd00:77::ffff:ffff:0:0", true},
		{"fd00:77::", false},         // the lab's hosts' /96
		{"fd00:77::1:0:5", false},    // not a /96
		{"fd00:78::1:0:0", false},    // outside the lab
		{"2001:db8::1:0:0", false},   // outside the lab
		{"198.51.100.0", false},      // IPv4
		{"fd00:77::1:0:0%lo", false}, // zone
	} {
		_, err := parseFlags(append(base, "-src-base", c.src))
		if (err == nil) != c.ok {
			t.Errorf("-src-base %s: err %v, want ok=%v", c.src, err, c.ok)
		}
	}
	for _, args := range [][]string{
		{"-dst", "fd00:77::10"},        // no -dmac
		{"-dmac", "02:00:00:00:00:10"}, // no -dst
		{"-dmac", "02:00:00:00:00:10", "-dst", "198.51.100.10"},
		{"-dmac", "02:00:00:00:00:10", "-dst", "fd00:77::10", "-sources", "0"},
		{"-dmac", "02:00:00:00:00:10", "-dst", "fd00:77::10", "-trap-share", "0.5"},
		{"-dmac", "02:00:00:00:00:10", "-dst", "fd00:77::10", "-trap-ports", "1,x", "-trap-share", "0.5"},
		{"-dmac", "02:00:00:00:00:10", "-dst", "fd00:77::10", "-batch", "2000"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%q: accepted", args)
		}
	}
}

// BenchmarkFill is the per-packet work besides the syscall.
func BenchmarkFill(b *testing.B) {
	o := testOptions(b)
	f := make([]byte, frameLen)
	template(f, o)
	pseudo := pseudoSum(o.srcBase, o.dst)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		fill(f, uint32(i), 40000, uint16(i), uint32(i), pseudo)
	}
}

// inNetns runs fn on a thread in the network namespace at path.
func inNetns(t *testing.T, path string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The thread is not unlocked: if restoring its namespace failed it
		// must die with the goroutine rather than serve others.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			t.Error(err)
			return
		}
		defer orig.Close()
		ns, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Errorf("setns %s: %v", path, err)
			return
		}
		fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
	}()
	<-done
}

// TestSendsEveryFrame sends a small flood over a veth pair in a fresh
// network namespace and reads it back on the peer: every frame arrives,
// each forged source as often as it should.
func TestSendsEveryFrame(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and a veth pair")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	ns := fmt.Sprintf("swflood-%d", os.Getpid())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ip("-n", ns, "link", "add", "tx0", "type", "veth", "peer", "name", "rx0")
	ip("-n", ns, "link", "set", "tx0", "up")
	ip("-n", ns, "link", "set", "rx0", "up")

	const sources, packets = 1000, 5000
	o, err := parseFlags([]string{"-i", "tx0", "-dmac", "02:00:00:00:00:10", "-dst", "fd00:77::10",
		"-sources", fmt.Sprint(sources), "-n", fmt.Sprint(packets),
		"-trap-ports", "1,79,111", "-trap-share", "0.1", "-batch", "100"})
	if err != nil {
		t.Fatal(err)
	}
	perSource := map[uint32]int{}
	trapSeen := 0
	var r result
	inNetns(t, "/run/netns/"+ns, func() {
		rx, err := net.InterfaceByName("rx0")
		if err != nil {
			t.Error(err)
			return
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IPV6)))
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(fd)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: rx.Index}); err != nil {
			t.Error(err)
			return
		}
		if r, err = run(context.Background(), o); err != nil {
			t.Error(err)
			return
		}
		buf := make([]byte, 2048)
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200_000})
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				break
			}
			if n != frameLen || buf[offTCP+13] != 0x02 {
				continue // not ours (an MLD report, say)
			}
			src, _ := netip.AddrFromSlice(buf[offSrc : offSrc+16])
			if !verifyTCP6(src, o.dst, buf[offTCP:n]) {
				t.Errorf("frame from %v: bad checksum", src)
			}
			perSource[binary.BigEndian.Uint32(buf[offSrcLo:])]++
			switch binary.BigEndian.Uint16(buf[offTCP+2:]) {
			case 1, 79, 111:
				trapSeen++
			}
		}
	})
	if t.Failed() {
		return
	}
	if r.sent != packets {
		t.Errorf("sent %d, want %d", r.sent, packets)
	}
	if len(perSource) != sources {
		t.Errorf("%d distinct sources arrived, want %d", len(perSource), sources)
	}
	for s, n := range perSource {
		if s < 1 || s > sources || n != packets/sources {
			t.Errorf("source %d arrived %d times, want sources 1..%d, %d times each", s, n, sources, packets/sources)
			break
		}
	}
	// -trap-share 0.1 of 5000: about 500 (random ports add ~0.2 more).
	if r.trap < 350 || r.trap > 650 || trapSeen != int(r.trap) {
		t.Errorf("trap packets: %d sent, %d seen; want about 500", r.trap, trapSeen)
	}
	t.Logf("%d frames, %d sources, %d to trap ports, %.0f pps, %d ENOBUFS", r.sent, len(perSource), r.trap, r.pps(), r.enobufs)
}

// htons is v in network byte order, as AF_PACKET wants its protocol.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
