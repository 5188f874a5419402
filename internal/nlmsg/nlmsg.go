// Package nlmsg walks the netlink messages of a received buffer in place,
// without allocating: the nftables backend's own sockets and the daemon's
// sock_diag dump read their answers with it.
package nlmsg

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

// ErrStop ends Each early: fn's way of saying the answer is complete.
var ErrStop = errors.New("stop")

// ErrMalformed is returned by Each for a message whose length does not fit
// the buffer, or a buffer that ends within a message's header (a datagram
// cut short: the messages cut off would be lost unseen).
var ErrMalformed = errors.New("netlink receive: malformed message")

// Each calls fn with the type, flags, sequence number and body of every
// netlink message in b, until fn returns an error, which it returns
// (ErrStop included).
func Each(b []byte, fn func(typ, flags uint16, seq uint32, body []byte) error) error {
	for len(b) > 0 {
		if len(b) < unix.NLMSG_HDRLEN {
			return ErrMalformed
		}
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return ErrMalformed
		}
		err := fn(binary.NativeEndian.Uint16(b[4:6]), binary.NativeEndian.Uint16(b[6:8]), binary.NativeEndian.Uint32(b[8:12]), b[unix.NLMSG_HDRLEN:l])
		if err != nil {
			return err
		}
		b = b[min(Align(l), len(b)):]
	}
	return nil
}

// Align rounds n up to netlink's 4-byte alignment (of messages and
// attributes alike).
func Align(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }
