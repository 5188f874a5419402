package host

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/internal/nlmsg"
)

// Why the listening TCP ports come from sock_diag and not /proc/net/tcp:
// reading /proc/net/tcp walks every bucket of the kernel's established
// hash, whose size grows with the machine's memory and not with its
// sockets: 4 ms for tcp and as much for tcp6 on the lab host, with a
// handful of sockets. That check runs between a trap hit and its block
// (PortSentry's check that no service has bound the port since), so it
// cost nmap's scan 9 ms, some 600 probes. A sock_diag dump asking for
// listening sockets only walks the listening hash (tens of µs). UDP has no
// such cost (its table is small) and stays on /proc/net.

// SockDiag lists bound ports: TCP listeners through NETLINK_SOCK_DIAG
// (from Proc when the kernel refuses it, e.g. without inet_diag), UDP
// sockets from Proc. It is the daemon's PortLister.
type SockDiag struct {
	Proc ProcNet
}

// BoundPorts implements PortLister.
func (s SockDiag) BoundPorts(proto uint8) (detect.PortSet, error) {
	if proto == detect.ProtoTCP {
		if set, err := listeningTCP(); err == nil {
			return set, nil
		}
	}
	return s.Proc.BoundPorts(proto)
}

const (
	// tcpListen is the kernel's TCP_LISTEN state; the request's state
	// filter is a bit mask of states.
	tcpListen = 10
	// inetDiagReqLen and inetDiagMsgLen are sizeof(struct
	// inet_diag_req_v2) and sizeof(struct inet_diag_msg); the socket's
	// local port is the big-endian 16 bits at offset 4 of the latter.
	inetDiagReqLen = 56
	inetDiagMsgLen = 72
	// diagRecvBuf is the receive buffer: the kernel fills up to a page
	// (or 32 KiB) per read.
	diagRecvBuf = 64 << 10
)

// diagBufs keeps receive buffers between dumps: a trap hit asks on the
// capture thread, and a flood of forged hits would otherwise allocate
// 64 KiB for each.
var diagBufs = sync.Pool{New: func() any { return new([diagRecvBuf]byte) }}

// listeningTCP returns the ports of the listening TCP sockets, IPv4 and
// IPv6, of the process's network namespace.
func listeningTCP() (detect.PortSet, error) {
	var set detect.PortSet
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return set, fmt.Errorf("sock_diag: %w", err)
	}
	defer unix.Close(fd)
	buf := diagBufs.Get().(*[diagRecvBuf]byte)
	defer diagBufs.Put(buf)
	for seq, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := diagDump(fd, uint32(seq+1), family, buf[:], &set); err != nil {
			if family == unix.AF_INET6 && errors.Is(err, unix.EAFNOSUPPORT) {
				continue // no IPv6
			}
			return set, err
		}
	}
	return set, nil
}

// diagDump asks for family's listening TCP sockets and adds their ports.
func diagDump(fd int, seq uint32, family uint8, buf []byte, set *detect.PortSet) error {
	req := make([]byte, unix.NLMSG_HDRLEN+inetDiagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	r := req[unix.NLMSG_HDRLEN:]
	r[0], r[1] = family, unix.IPPROTO_TCP
	ne.PutUint32(r[4:], 1<<tcpListen)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag: %w", err)
	}
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("sock_diag: %w", err)
		}
		err = nlmsg.Each(buf[:n], func(typ, _ uint16, mseq uint32, data []byte) error {
			if mseq != seq {
				return nil
			}
			switch typ {
			case unix.NLMSG_DONE:
				return nlmsg.ErrStop
			case unix.NLMSG_ERROR:
				if len(data) >= 4 {
					if e := int32(ne.Uint32(data)); e != 0 {
						return fmt.Errorf("sock_diag: %w", unix.Errno(-e))
					}
				}
				return errors.New("sock_diag: malformed error reply")
			case unix.SOCK_DIAG_BY_FAMILY:
				if len(data) < inetDiagMsgLen {
					return errors.New("sock_diag: short reply")
				}
				if data[1] == tcpListen {
					set.Add(binary.BigEndian.Uint16(data[4:]))
				}
			}
			return nil
		})
		switch {
		case err == nlmsg.ErrStop:
			return nil
		case errors.Is(err, nlmsg.ErrMalformed):
			return fmt.Errorf("sock_diag: %w", err)
		case err != nil:
			return err
		}
	}
}
