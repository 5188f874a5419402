package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/scanwarden/scanwarden/detect"
)

// portLister says which ports services have bound, of one protocol
// (detect.ProtoTCP: listening sockets; detect.ProtoUDP: any bound
// socket): procNet, or sockDiag (sockdiag.go), the daemon's.
type portLister interface {
	boundPorts(proto uint8) (detect.PortSet, error)
}

// boundBoth returns l's TCP and UDP ports; err is the first error, the
// sets what could be read.
func boundBoth(l portLister) (tcp, udp detect.PortSet, err error) {
	tcp, err = l.boundPorts(detect.ProtoTCP)
	udp, e := l.boundPorts(detect.ProtoUDP)
	if err == nil {
		err = e
	}
	return tcp, udp, err
}

// procNet is where the kernel lists sockets; a test may point it
// elsewhere.
type procNet string

// boundPorts returns the TCP ports some socket listens on or the UDP
// ports some socket is bound to, from /proc/net/{tcp,tcp6} or
// /proc/net/{udp,udp6}: the watched ports a real service uses, which
// PortSentry does not watch either. Reading /proc needs no privilege
// (binding a port to test it, as PortSentry did, would need
// CAP_NET_BIND_SERVICE).
func (d procNet) boundPorts(proto uint8) (set detect.PortSet, err error) {
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

// minus returns the ports of a that are not in b.
func minus(a, b *detect.PortSet) *detect.PortSet {
	var out detect.PortSet
	for i := range a {
		out[i] = a[i] &^ b[i]
	}
	return &out
}
