//go:build linux

package capture

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/detect"
)

// labNet is a pair of network namespaces joined by a veth pair: the
// prober in A (198.51.100.201, fd00:77::201) and the victim in B (.202,
// fd00:77::202). No default route: nothing can leave the pair.
type labNet struct {
	nsA, nsB     string
	vethA, vethB string
}

var (
	labA4 = netip.MustParseAddr("198.51.100.201")
	labB4 = netip.MustParseAddr("198.51.100.202")
	labA6 = netip.MustParseAddr("fd00:77::201")
	labB6 = netip.MustParseAddr("fd00:77::202")
)

// newLabNet creates the namespaces, or skips the test saying why it cannot.
func newLabNet(t *testing.T) *labNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	ipBin, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
	pid := os.Getpid()
	l := &labNet{
		nsA: fmt.Sprintf("swcap-%d-a", pid), nsB: fmt.Sprintf("swcap-%d-b", pid),
		vethA: fmt.Sprintf("swcap%da", pid), vethB: fmt.Sprintf("swcap%db", pid),
	}
	run := func(args ...string) error {
		out, err := exec.Command(ipBin, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run("netns", "add", l.nsA); err != nil {
		t.Skipf("cannot create a network namespace here: %v", err)
	}
	t.Cleanup(func() { run("netns", "del", l.nsA) })
	if err := run("netns", "add", l.nsB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run("netns", "del", l.nsB) }) // takes the veth pair with it
	steps := [][]string{
		{"-n", l.nsA, "link", "add", l.vethA, "type", "veth", "peer", "name", l.vethB, "netns", l.nsB},
		{"-n", l.nsA, "addr", "add", labA4.String() + "/24", "dev", l.vethA},
		{"-n", l.nsA, "addr", "add", labA6.String() + "/64", "dev", l.vethA, "nodad"},
		{"-n", l.nsB, "addr", "add", labB4.String() + "/24", "dev", l.vethB},
		{"-n", l.nsB, "addr", "add", labB6.String() + "/64", "dev", l.vethB, "nodad"},
		{"-n", l.nsA, "link", "set", "lo", "up"},
		{"-n", l.nsB, "link", "set", "lo", "up"},
		{"-n", l.nsA, "link", "set", l.vethA, "up"},
		{"-n", l.nsB, "link", "set", l.vethB, "up"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// inNetns runs f on an OS thread moved into namespace ns. Sockets f
// creates stay in ns whichever thread uses them later. The thread is
// never returned to the Go scheduler: it ends with the goroutine.
func inNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread dies with us
		fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// TestLiveCapture captures on the victim's end of a veth pair with the
// daemon's filter while the prober connects, probes closed ports over TCP
// and UDP (v4 and v6), sends a fragmented SYN and an XMAS probe through a
// raw socket, and holds a short established conversation. The probes must
// arrive decoded; the conversation's pure ACKs and data segments must not.
func TestLiveCapture(t *testing.T) {
	l := newLabNet(t)

	var src *LiveSource
	var ln net.Listener
	err := inNetns(l.nsB, func() error {
		var err error
		src, err = OpenLive(l.vethB, LiveOptions{Filter: Filter(FilterOptions{TCP: true, UDP: true}), Timeout: 20 * time.Millisecond})
		if err != nil {
			return err
		}
		ln, err = net.Listen("tcp", netip.AddrPortFrom(labB4, 8080).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// An echo server: the conversation that must not show in the capture
	// except for its handshake and teardown.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()

	var (
		mu     sync.Mutex
		probes []detect.Probe
		stop   = make(chan struct{})
		done   = make(chan error, 1)
	)
	go func() {
		for {
			var p detect.Probe
			switch err := src.Next(&p); {
			case err == nil:
				mu.Lock()
				probes = append(probes, p)
				mu.Unlock()
			case errors.Is(err, ErrTimeout):
				select {
				case <-stop:
					st, err := src.Stats()
					if err != nil {
						done <- err
						return
					}
					t.Logf("stats %+v", st)
					if st.Received == 0 || st.Packets != st.Received || st.Decoded == 0 {
						t.Errorf("stats %+v", st)
					}
					src.Close()
					done <- nil
					return
				default:
				}
			default:
				done <- err
				return
			}
		}
	}()

	// Stats from another goroutine while Next runs, as the daemon's
	// periodic stats line does (the race detector checks it).
	statsDone := make(chan struct{})
	go func() {
		defer close(statsDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				src.Stats()
			}
		}
	}()
	if err := inNetns(l.nsA, func() error { return probeVictim(t) }); err != nil {
		t.Fatal(err)
	}
	// Give the last answers time to come through, then stop.
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-statsDone
	if err := <-done; err != nil {
		t.Fatalf("capture: %v", err)
	}
	var p detect.Probe
	if err := src.Next(&p); !errors.Is(err, io.EOF) {
		t.Errorf("Next after Close = %v, want io.EOF", err)
	}
	if _, err := src.Stats(); err == nil {
		t.Error("Stats after Close: no error")
	}
	src.Close() // idempotent

	mu.Lock()
	defer mu.Unlock()
	has := func(desc string, match func(p detect.Probe) bool) {
		t.Helper()
		for _, p := range probes {
			if match(p) {
				return
			}
		}
		t.Errorf("no %s among %d probes", desc, len(probes))
	}
	tcp := func(p detect.Probe, src, dst netip.Addr, dport uint16, flags uint8) bool {
		return p.Kind == detect.KindTCP && p.Src == detect.AddrOf(src) && p.Dst == detect.AddrOf(dst) && p.DstPort == dport && p.Flags&^(detect.FlagECE|detect.FlagCWR) == flags
	}
	has("connect() SYN with StackSYN", func(p detect.Probe) bool { return tcp(p, labA4, labB4, 8080, detect.FlagSYN) && p.StackSYN })
	has("SYN-ACK from the echo server", func(p detect.Probe) bool {
		return p.Kind == detect.KindTCP && p.Src == detect.AddrOf(labB4) && p.SrcPort == 8080 && p.Flags&0x17 == detect.FlagSYN|detect.FlagACK
	})
	has("FIN of the conversation", func(p detect.Probe) bool {
		return p.Kind == detect.KindTCP && p.Flags&detect.FlagFIN != 0 && (p.DstPort == 8080 || p.SrcPort == 8080)
	})
	has("SYN to a closed port", func(p detect.Probe) bool { return tcp(p, labA4, labB4, 1, detect.FlagSYN) })
	has("RST from the closed port", func(p detect.Probe) bool {
		return p.Kind == detect.KindTCP && p.Src == detect.AddrOf(labB4) && p.SrcPort == 1 && p.Flags&detect.FlagRST != 0
	})
	has("IPv6 SYN to a closed port", func(p detect.Probe) bool { return tcp(p, labA6, labB6, 2, detect.FlagSYN) })
	has("IPv6 RST", func(p detect.Probe) bool {
		return p.Kind == detect.KindTCP && p.Src == detect.AddrOf(labB6) && p.SrcPort == 2 && p.Flags&detect.FlagRST != 0
	})
	has("UDP probe", func(p detect.Probe) bool {
		return p.Kind == detect.KindUDP && p.Src == detect.AddrOf(labA4) && p.DstPort == 3
	})
	has("ICMP port unreachable", func(p detect.Probe) bool {
		return p.Kind == detect.KindUnreach && p.Src == detect.AddrOf(labB4) && p.SrcPort == 3 && p.Dst == detect.AddrOf(labA4) && p.Proto == detect.ProtoUDP && p.Code == 3
	})
	has("IPv6 UDP probe", func(p detect.Probe) bool {
		return p.Kind == detect.KindUDP && p.Src == detect.AddrOf(labA6) && p.DstPort == 4
	})
	has("ICMPv6 port unreachable", func(p detect.Probe) bool {
		return p.Kind == detect.KindUnreach && p.Src == detect.AddrOf(labB6) && p.SrcPort == 4 && p.Dst == detect.AddrOf(labA6) && p.Code == 4
	})
	has("fragmented SYN, reassembled", func(p detect.Probe) bool { return tcp(p, labA4, labB4, 5, detect.FlagSYN) && p.Frag && !p.StackSYN })
	has("XMAS probe", func(p detect.Probe) bool {
		return tcp(p, labA4, labB4, 6, detect.FlagFIN|detect.FlagPSH|detect.FlagURG)
	})
	for _, p := range probes {
		if p.Kind == detect.KindTCP && p.Flags&0x17 == detect.FlagACK {
			t.Errorf("an ACK without SYN/FIN/RST passed the filter: %+v", p)
		}
	}
}

// TestLiveOpenErrors: OpenLive's errors name the interface and the step.
func TestLiveOpenErrors(t *testing.T) {
	if _, err := OpenLive("swcap-none0", LiveOptions{Timeout: -1}); err == nil || !strings.Contains(err.Error(), "swcap-none0") || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("negative timeout: %v", err)
	}
	if _, err := OpenLive("swcap-none0", LiveOptions{}); err == nil || !strings.Contains(err.Error(), "capture on swcap-none0") {
		t.Errorf("missing interface: %v", err)
	}
	l := newLabNet(t)
	err := inNetns(l.nsB, func() error {
		s, err := OpenLive(l.vethB, LiveOptions{Filter: "tcp[13] &"})
		if err == nil {
			s.Close()
			return errors.New("a broken filter was accepted")
		}
		if !strings.Contains(err.Error(), "capture on "+l.vethB+": filter") {
			return fmt.Errorf("filter error: %v", err)
		}
		s, err = OpenLive(l.vethB, LiveOptions{})
		if err != nil {
			return err
		}
		defer s.Close()
		// Nothing is sent: Next must come back with ErrTimeout.
		start := time.Now()
		var p detect.Probe
		if err := s.Next(&p); !errors.Is(err, ErrTimeout) {
			return fmt.Errorf("idle Next = %v, want ErrTimeout", err)
		}
		if d := time.Since(start); d > 5*DefaultTimeout {
			return fmt.Errorf("idle Next took %v", d)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// probeVictim runs in the prober's namespace.
func probeVictim(t *testing.T) error {
	// An established conversation: handshake, 20 echoed messages (pure
	// ACKs and PSH-ACK data segments), teardown.
	c, err := net.DialTimeout("tcp", netip.AddrPortFrom(labB4, 8080).String(), 2*time.Second)
	if err != nil {
		return fmt.Errorf("dial echo server: %w", err)
	}
	buf := make([]byte, 64)
	for i := range 20 {
		msg := fmt.Sprintf("message %02d", i)
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil {
			return fmt.Errorf("echo: %w", err)
		}
	}
	c.Close()

	// Closed ports: TCP v4 and v6 (RST back), UDP v4 and v6 (ICMP back).
	for _, ap := range []netip.AddrPort{netip.AddrPortFrom(labB4, 1), netip.AddrPortFrom(labB6, 2)} {
		if c, err := net.DialTimeout("tcp", ap.String(), 2*time.Second); err == nil {
			c.Close()
			return fmt.Errorf("port %v is open", ap)
		}
	}
	for _, ap := range []netip.AddrPort{netip.AddrPortFrom(labB4, 3), netip.AddrPortFrom(labB6, 4)} {
		u, err := net.Dial("udp", ap.String())
		if err != nil {
			return err
		}
		u.Write([]byte("probe"))
		u.SetReadDeadline(time.Now().Add(time.Second))
		u.Read(buf) // ECONNREFUSED once the ICMP error is in
		u.Close()
	}

	// Crafted probes through a raw socket: an nmap -f style SYN in three
	// 8-byte fragments, and an XMAS probe.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrInet4{Addr: labB4.As4()}
	a, b := labA4.AsSlice(), labB4.AsSlice()
	pkts := fragment4(ip4TCP(t, a, b, 40000, 5, detect.FlagSYN, nmapSYNOpts), 8)
	pkts = append(pkts, ip4TCP(t, a, b, 40001, 6, detect.FlagFIN|detect.FlagPSH|detect.FlagURG, nil))
	for _, pkt := range pkts {
		if err := unix.Sendto(fd, pkt, 0, to); err != nil {
			return fmt.Errorf("send raw: %w", err)
		}
	}
	return nil
}
