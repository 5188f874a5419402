package nlmsg

import (
	"encoding/binary"
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FuzzEach walks arbitrary buffers: Each must not panic, must hand fn
// only bodies inside the buffer (the buffer is cut out of a larger one
// whose bytes past its end are poison), must see exactly the messages a
// plain reading of the lengths finds, and must return ErrMalformed when a
// length does not fit (below a header, or past the end) or the buffer
// ends within a message header, nil otherwise.
func FuzzEach(f *testing.F) {
	f.Add([]byte{})
	f.Add(append(append(msg(1, 7, "abcde"), msg(2, 8, "")...), msg(3, 9, "xyz")...))
	f.Add(msg(unix.NLMSG_DONE, 1, "\x00\x00\x00\x00"))
	unaligned := msg(1, 1, "abcde")[:unix.NLMSG_HDRLEN+5] // the last message without its padding
	f.Add(unaligned)
	long := msg(1, 1, "abcd")
	binary.NativeEndian.PutUint32(long[0:4], 100)
	f.Add(long)
	short := msg(1, 1, "abcd")
	binary.NativeEndian.PutUint32(short[0:4], 3)
	f.Add(short)

	f.Fuzz(func(t *testing.T, data []byte) {
		const poison = 64
		backing := make([]byte, len(data)+poison)
		copy(backing, data)
		for i := len(data); i < len(backing); i++ {
			backing[i] = 0xa5
		}
		b := backing[:len(data)]
		base := uintptr(unsafe.Pointer(unsafe.SliceData(backing)))

		type seen struct {
			typ, flags uint16
			seq        uint32
			off, n     int
		}
		var got []seen
		err := Each(b, func(typ, flags uint16, seq uint32, body []byte) error {
			off := 0
			if len(body) > 0 {
				off = int(uintptr(unsafe.Pointer(unsafe.SliceData(body))) - base)
			}
			if len(body) > 0 && (off < unix.NLMSG_HDRLEN || off+len(body) > len(data)) {
				t.Fatalf("body at %d, %d bytes: outside the %d-byte buffer", off, len(body), len(data))
			}
			got = append(got, seen{typ, flags, seq, off, len(body)})
			return nil
		})

		// what the lengths say
		var want []seen
		var wantErr error
		for off := 0; off < len(data); {
			rest := data[off:]
			if len(rest) < unix.NLMSG_HDRLEN {
				wantErr = ErrMalformed
				break
			}
			l := int(binary.NativeEndian.Uint32(rest))
			if l < unix.NLMSG_HDRLEN || l > len(rest) {
				wantErr = ErrMalformed
				break
			}
			want = append(want, seen{binary.NativeEndian.Uint16(rest[4:]), binary.NativeEndian.Uint16(rest[6:]), binary.NativeEndian.Uint32(rest[8:]), off + unix.NLMSG_HDRLEN, l - unix.NLMSG_HDRLEN})
			off += (l + 3) &^ 3
		}
		if !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
			t.Fatalf("Each = %v, want %v", err, wantErr)
		}
		if len(got) != len(want) {
			t.Fatalf("%d messages, want %d", len(got), len(want))
		}
		for i := range got {
			// an empty body's offset is not known
			if got[i].n == 0 {
				got[i].off = want[i].off
			}
			if got[i] != want[i] {
				t.Fatalf("message %d: %+v, want %+v", i, got[i], want[i])
			}
		}

		// an error of fn stops the walk and is returned as is
		if len(want) > 0 {
			n := 0
			if err := Each(b, func(uint16, uint16, uint32, []byte) error { n++; return ErrStop }); err != ErrStop || n != 1 {
				t.Fatalf("stop: %v after %d", err, n)
			}
		}
	})
}
