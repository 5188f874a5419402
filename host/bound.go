package host

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/scanwarden/scanwarden/detect"
)

// PortLister says which ports services have bound, of one protocol
// (detect.ProtoTCP: listening sockets; detect.ProtoUDP: any bound
// socket): ProcNet, or SockDiag (sockdiag.go), the daemon's. An
// implementation is safe for concurrent use.
type PortLister interface {
	BoundPorts(proto uint8) (detect.PortSet, error)
}

// BoundBoth returns l's TCP and UDP ports; err is the first error, the
// sets what could be read.
func BoundBoth(l PortLister) (tcp, udp detect.PortSet, err error) {
	tcp, err = l.BoundPorts(detect.ProtoTCP)
	udp, e := l.BoundPorts(detect.ProtoUDP)
	if err == nil {
		err = e
	}
	return tcp, udp, err
}

// ProcNet is where the kernel lists sockets ("/proc/net"); a test may
// point it elsewhere.
type ProcNet string

// BoundPorts implements PortLister: the TCP ports some socket listens on
// or the UDP ports some socket is bound to, from /proc/net/{tcp,tcp6} or
// /proc/net/{udp,udp6}: the watched ports a real service uses, which
// PortSentry does not watch either. Reading /proc needs no privilege
// (binding a port to test it, as PortSentry did, would need
// CAP_NET_BIND_SERVICE).
func (d ProcNet) BoundPorts(proto uint8) (set detect.PortSet, err error) {
	names, state := []string{"tcp", "tcp6"}, "0A" // TCP_LISTEN
	if proto == detect.ProtoUDP {
		names, state = []string{"udp", "udp6"}, "" // any socket counts
	}
	for _, name := range names {
		if e := readSockets(string(d)+"/"+name, state, &set); e != nil && err == nil {
			err = e
		}
	}
	return set, err
}

func readSockets(path, state string, set *detect.PortSet) error {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) { // no IPv6
			return nil
		}
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 {
			continue
		}
		if state != "" && fields[3] != state {
			continue
		}
		_, hexPort, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil {
			return fmt.Errorf("%s: bad local address %q", path, fields[1])
		}
		set.Add(uint16(port))
	}
	return sc.Err()
}

// unprivPortStartFile says from which port an unprivileged process may
// bind; the kernel's default is 1024.
const unprivPortStartFile = "/proc/sys/net/ipv4/ip_unprivileged_port_start"

// UnprivilegedPortStart reads net.ipv4.ip_unprivileged_port_start: ports
// below it need CAP_NET_BIND_SERVICE. 1024 when it cannot be read (the
// kernel's default, and older kernels' fixed value).
func UnprivilegedPortStart() int {
	b, err := os.ReadFile(unprivPortStartFile)
	if err != nil {
		return 1024
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 1024
	}
	return n
}
