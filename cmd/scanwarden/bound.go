package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/scanwarden/scanwarden/detect"
)

// procNet is where the kernel lists sockets; a test may point it
// elsewhere.
type procNet string

// boundPorts returns the TCP ports some socket listens on and the UDP
// ports some socket is bound to, from /proc/net/{tcp,tcp6,udp,udp6}: the
// watched ports a real service uses, which PortSentry does not watch
// either. Reading /proc needs no privilege (binding a port to test it, as
// PortSentry did, would need CAP_NET_BIND_SERVICE).
func (d procNet) boundPorts() (tcp, udp detect.PortSet, err error) {
	for _, f := range []struct {
		name  string
		set   *detect.PortSet
		state string // TCP_LISTEN 0A; for UDP any socket counts
	}{{"tcp", &tcp, "0A"}, {"tcp6", &tcp, "0A"}, {"udp", &udp, ""}, {"udp6", &udp, ""}} {
		if e := readSockets(string(d)+"/"+f.name, f.state, f.set); e != nil && err == nil {
			err = e
		}
	}
	return tcp, udp, err
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
