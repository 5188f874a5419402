package nlmsg

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// msg is a netlink message of typ and seq with body, padded to alignment.
func msg(typ uint16, seq uint32, body string) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN, Align(unix.NLMSG_HDRLEN+len(body)))
	b = append(b, body...)
	binary.NativeEndian.PutUint32(b[0:4], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:6], typ)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	return b[:cap(b)]
}

func TestEach(t *testing.T) {
	buf := append(append(msg(1, 7, "abcde"), msg(2, 8, "")...), msg(3, 9, "xyz")...)
	var got []string
	err := Each(buf, func(typ, _ uint16, seq uint32, body []byte) error {
		got = append(got, string(rune('0'+typ))+string(rune('0'+seq))+string(body))
		return nil
	})
	if err != nil || len(got) != 3 || got[0] != "17abcde" || got[1] != "28" || got[2] != "39xyz" {
		t.Fatalf("Each: %q, %v", got, err)
	}
	// ErrStop is returned as is, and nothing after it is seen
	n := 0
	if err := Each(buf, func(uint16, uint16, uint32, []byte) error { n++; return ErrStop }); err != ErrStop || n != 1 {
		t.Fatalf("stop: %v after %d", err, n)
	}
	// a length past the buffer
	bad := msg(1, 1, "abcd")
	binary.NativeEndian.PutUint32(bad[0:4], 100)
	if err := Each(bad, func(uint16, uint16, uint32, []byte) error { return nil }); !errors.Is(err, ErrMalformed) {
		t.Fatalf("malformed: %v", err)
	}
}
