package host

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/detect"
)

// TestSockDiagListeners: the sock_diag dump reports a TCP listener's port
// (IPv4 and IPv6), not a TCP socket that is bound but not listening, and
// agrees with /proc/net/tcp{,6}. Only sockets on loopback are opened;
// nothing is sent.
func TestSockDiagListeners(t *testing.T) {
	l4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l4.Close()
	port4 := uint16(l4.Addr().(*net.TCPAddr).Port)
	var port6 uint16
	if l6, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		defer l6.Close()
		port6 = uint16(l6.Addr().(*net.TCPAddr).Port)
	} else {
		t.Logf("no IPv6 listener (%v): IPv4 only", err)
	}
	// bound, never listening: no service
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	boundOnly := uint16(sa.(*unix.SockaddrInet4).Port)

	got, err := listeningTCP()
	if err != nil {
		t.Fatalf("sock_diag: %v", err)
	}
	if !got.Has(port4) {
		t.Errorf("IPv4 listener on %d not reported", port4)
	}
	if port6 != 0 && !got.Has(port6) {
		t.Errorf("IPv6 listener on %d not reported", port6)
	}
	if got.Has(boundOnly) {
		t.Errorf("port %d reported: bound, not listening", boundOnly)
	}

	// The same set as /proc reads. Other processes may open or close
	// listeners meanwhile, so a difference is retried a few times.
	for try := 0; ; try++ {
		diag, err := listeningTCP()
		if err != nil {
			t.Fatal(err)
		}
		proc, err := ProcNet("/proc/net").BoundPorts(detect.ProtoTCP)
		if err != nil {
			t.Fatal(err)
		}
		if diag == proc {
			break
		}
		if try == 4 {
			for p := 0; p < 65536; p++ {
				if diag.Has(uint16(p)) != proc.Has(uint16(p)) {
					t.Errorf("port %d: sock_diag says listening %v, /proc/net says %v", p, diag.Has(uint16(p)), proc.Has(uint16(p)))
				}
			}
			break
		}
	}

	// The daemon's lister: TCP from sock_diag, UDP from proc.
	u, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	tcp, udp, err := BoundBoth(SockDiag{Proc: "/proc/net"})
	if err != nil {
		t.Fatal(err)
	}
	if !tcp.Has(port4) || !udp.Has(uint16(u.LocalAddr().(*net.UDPAddr).Port)) {
		t.Errorf("sockDiag: tcp %d: %v, udp %v: %v", port4, tcp.Has(port4), u.LocalAddr(), udp.Has(uint16(u.LocalAddr().(*net.UDPAddr).Port)))
	}
}

// BenchmarkBoundPorts: the check between a TCP trap hit and its block, by
// sock_diag (the daemon's) and by /proc/net.
func BenchmarkBoundPorts(b *testing.B) {
	for _, c := range []struct {
		name string
		l    PortLister
	}{{"sockdiag", SockDiag{Proc: "/proc/net"}}, {"proc", ProcNet("/proc/net")}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.l.BoundPorts(detect.ProtoTCP); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
