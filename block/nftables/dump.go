package nftables

// Reading a set's elements over a netlink socket of our own.
//
// github.com/google/nftables reads dumps with a receive buffer that starts
// at a page and only grows when a message fills it, and the kernel sizes
// each dump message by the largest buffer the reader has offered: the
// dump of a set then goes a page at a time. The kernel resumes a set dump
// by walking the hash table from its start and skipping what it sent
// already, so the cost grows with the square of the number of messages:
// 100,000 IPv6 elements took 3 s that way. Offering dumpBufSize gets the
// largest messages the kernel makes (32 KiB), eight times fewer.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	nft "github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/nlmsg"
)

// errDumpInterrupted says the ruleset changed during a dump: the result may
// be inconsistent and the dump is to be made again.
var errDumpInterrupted = errors.New("dump interrupted by a ruleset change")

// socketIn opens a NETLINK_NETFILTER socket in the namespace of the
// descriptor netns (0: the current one). The namespace is entered by a
// thread locked for that purpose; if it cannot go back to its own
// namespace, it stays locked, and so ends with its goroutine instead of
// running other goroutines in the wrong namespace.
func socketIn(netns int) (int, error) {
	open := func() (int, error) {
		return unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	}
	if netns == 0 {
		return open()
	}
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{-1, fmt.Errorf("opening this thread's network namespace: %w", err)}
			return
		}
		defer unix.Close(self)
		if err := unix.Setns(netns, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{-1, fmt.Errorf("entering network namespace: %w", err)}
			return
		}
		fd, err := open()
		if rerr := unix.Setns(self, unix.CLONE_NEWNET); rerr != nil {
			if err == nil {
				unix.Close(fd)
			}
			done <- result{-1, fmt.Errorf("returning from network namespace: %w", rerr)}
			return // the thread stays locked: the runtime ends it
		}
		runtime.UnlockOSThread()
		done <- result{fd, err}
	}()
	r := <-done
	return r.fd, r.err
}

// nlSeq numbers the requests of the package's own sockets (dumps and
// Block's adds).
var nlSeq atomic.Uint32

// timedSocket is socketIn's socket with a receive timeout of d.
func timedSocket(netns int, d time.Duration) (int, error) {
	fd, err := socketIn(netns)
	if err != nil {
		return -1, fmt.Errorf("netlink socket: %w", err)
	}
	tv := unix.NsecToTimeval(int64(d))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("netlink socket: %w", err)
	}
	return fd, nil
}

// sendNL sends req to the kernel over fd.
func sendNL(fd int, req []byte) error {
	sa := unix.SockaddrNetlink{Family: unix.AF_NETLINK}
	err := unix.Sendto(fd, req, 0, &sa)
	for err == unix.EINTR {
		err = unix.Sendto(fd, req, 0, &sa)
	}
	if err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	return nil
}

// dumpSet returns the elements of set name of the backend's table.
func (b *Backend) dumpSet(name string) ([]nft.SetElement, error) {
	fd, err := timedSocket(b.netns, dumpTimeout)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	seq := nlSeq.Add(1)
	err = sendNL(fd, nlMsg(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETSETELEM, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq,
		nlAttr(unix.NFTA_SET_ELEM_LIST_TABLE, cstr(b.table.Name)),
		nlAttr(unix.NFTA_SET_ELEM_LIST_SET, cstr(name))))
	if err != nil {
		return nil, err
	}
	buf := make([]byte, dumpBufSize)
	var out []nft.SetElement
	interrupted := false
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			// A receive timeout makes the call fail on any signal
			// (the runtime's preemption signals among them).
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("netlink receive: %w", err)
		}
		err = nlmsg.Each(buf[:n], func(typ, flags uint16, mseq uint32, body []byte) error {
			if mseq != seq {
				return nil // not an answer to this request
			}
			if flags&unix.NLM_F_DUMP_INTR != 0 {
				interrupted = true
			}
			switch typ {
			case unix.NLMSG_ERROR, unix.NLMSG_DONE:
				if len(body) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(body[:4])); e < 0 {
						return unix.Errno(-e)
					}
				}
				if typ == unix.NLMSG_ERROR {
					return nil // an acknowledgement
				}
				if interrupted {
					return errDumpInterrupted
				}
				return nlmsg.ErrStop // the end of the dump
			}
			es, err := parseElems(body)
			if err != nil {
				return err
			}
			out = append(out, es...)
			return nil
		})
		switch {
		case err == nlmsg.ErrStop:
			return out, nil
		case err != nil:
			return nil, err
		}
	}
}

// parseElems decodes a NEWSETELEM message body (after the netlink
// header): the nfgenmsg, then the attributes, of which the element list.
func parseElems(body []byte) ([]nft.SetElement, error) {
	if len(body) < 4 {
		return nil, errors.New("netlink receive: short set element message")
	}
	var out []nft.SetElement
	err := eachAttr(body[4:], func(typ uint16, data []byte) error {
		if typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			return nil
		}
		return eachAttr(data, func(typ uint16, data []byte) error {
			if typ != unix.NFTA_LIST_ELEM {
				return nil
			}
			var e nft.SetElement
			err := eachAttr(data, func(typ uint16, data []byte) error {
				switch typ {
				case unix.NFTA_SET_ELEM_KEY:
					return eachAttr(data, func(typ uint16, data []byte) error {
						if typ == unix.NFTA_DATA_VALUE {
							e.Key = append([]byte(nil), data...)
						}
						return nil
					})
				case unix.NFTA_SET_ELEM_FLAGS:
					if len(data) == 4 {
						e.IntervalEnd = binary.BigEndian.Uint32(data)&unix.NFT_SET_ELEM_INTERVAL_END != 0
					}
				case unix.NFTA_SET_ELEM_TIMEOUT:
					if len(data) == 8 {
						e.Timeout = time.Duration(binary.BigEndian.Uint64(data)) * time.Millisecond
					}
				case unix.NFTA_SET_ELEM_EXPIRATION:
					if len(data) == 8 {
						e.Expires = time.Duration(binary.BigEndian.Uint64(data)) * time.Millisecond
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// eachAttr calls fn with the type (without the nested and byte order
// flags) and payload of every netlink attribute in b.
func eachAttr(b []byte, fn func(typ uint16, data []byte) error) error {
	for len(b) >= unix.SizeofNlAttr {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < unix.SizeofNlAttr || l > len(b) {
			return errors.New("netlink receive: malformed attribute")
		}
		if err := fn(typ, b[unix.SizeofNlAttr:l]); err != nil {
			return err
		}
		b = b[min(nlmsg.Align(l), len(b)):]
	}
	return nil
}

func cstr(s string) []byte { return append([]byte(s), 0) }

// nlAttr encodes one attribute.
func nlAttr(typ uint16, data []byte) []byte {
	b := make([]byte, nlmsg.Align(unix.SizeofNlAttr+len(data)))
	binary.NativeEndian.PutUint16(b[0:2], uint16(unix.SizeofNlAttr+len(data)))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	copy(b[unix.SizeofNlAttr:], data)
	return b
}

// nlMsg encodes a nftables request for the inet family.
func nlMsg(typ uint16, flags uint16, seq uint32, attrs ...[]byte) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN+4)
	b[unix.NLMSG_HDRLEN] = unix.NFPROTO_INET // nfgenmsg: family, version 0, resource id 0
	for _, a := range attrs {
		b = append(b, a...)
	}
	binary.NativeEndian.PutUint32(b[0:4], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:6], typ)
	binary.NativeEndian.PutUint16(b[6:8], flags)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	return b
}
