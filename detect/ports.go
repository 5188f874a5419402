package detect

import (
	"math/bits"
	"strconv"
	"strings"
)

// PortSet is a set of TCP or UDP port numbers (0..65535) kept as a
// 65536-bit bitmap, the one port-set type of scanwarden: the config's
// port lists, the engine's trap ports, the ports services have bound.
// Has costs one load and never allocates, so the packet path can ask it
// for every probe. The zero value is the empty set; a PortSet is 8 KiB,
// so pass it by pointer.
type PortSet [1024]uint64

// Add puts p in the set.
func (s *PortSet) Add(p uint16) { s[p>>6] |= 1 << (p & 63) }

// AddRange puts every port from lo to hi (both included) in the set. It
// does nothing when lo > hi.
func (s *PortSet) AddRange(lo, hi uint16) {
	for p := int(lo); p <= int(hi); p++ {
		s.Add(uint16(p))
	}
}

// Remove takes p out of the set.
func (s *PortSet) Remove(p uint16) { s[p>>6] &^= 1 << (p & 63) }

// Has reports whether p is in the set. It does not allocate.
func (s *PortSet) Has(p uint16) bool { return s[p>>6]&(1<<(p&63)) != 0 }

// Len returns the number of ports in the set.
func (s *PortSet) Len() int {
	n := 0
	for _, w := range s {
		n += bits.OnesCount64(w)
	}
	return n
}

// Ports returns the ports in the set in ascending order, each once; nil
// for the empty set. The slice is the caller's.
func (s *PortSet) Ports() []uint16 {
	n := s.Len()
	if n == 0 {
		return nil
	}
	out := make([]uint16, 0, n)
	for i, w := range s {
		for w != 0 {
			b := bits.TrailingZeros64(w)
			out = append(out, uint16(i<<6|b))
			w &= w - 1
		}
	}
	return out
}

// Union returns the ports in s or o.
func (s *PortSet) Union(o *PortSet) *PortSet {
	var out PortSet
	for i := range s {
		out[i] = s[i] | o[i]
	}
	return &out
}

// Minus returns the ports of s that are not in o.
func (s *PortSet) Minus(o *PortSet) *PortSet {
	var out PortSet
	for i := range s {
		out[i] = s[i] &^ o[i]
	}
	return &out
}

// String lists the set as PortsText does: "1,7,9,512-515". It has a value
// receiver (unlike the other methods) so that a PortSet inside a printed
// struct prints as a list, not as a bitmap.
func (s PortSet) String() string { return PortsText(s.Ports()) }

// PortsText writes ascending ports comma separated, with runs of three or
// more consecutive ports written as a range: "1,7,9,512-515"; "" for none.
// The config's port lists accept what it writes.
func PortsText(ports []uint16) string {
	var b strings.Builder
	for i := 0; i < len(ports); {
		j := i
		for j+1 < len(ports) && ports[j+1] == ports[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(ports[i])))
		switch {
		case j-i >= 2:
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(int(ports[j])))
		case j-i == 1:
			b.WriteByte(',')
			b.WriteString(strconv.Itoa(int(ports[j])))
		}
		i = j + 1
	}
	return b.String()
}
