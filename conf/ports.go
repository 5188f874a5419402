package conf

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// PortSet is a set of TCP or UDP port numbers (0..65535) kept as a
// 65536-bit bitmap. Membership tests are O(1) and never allocate, so the
// packet path can ask Has for every probe. The zero value is the empty set;
// a PortSet is 8 KiB, so pass it by pointer.
type PortSet struct {
	bits [1024]uint64
}

// Add puts port p in the set.
func (s *PortSet) Add(p uint16) {
	s.bits[p>>6] |= 1 << (p & 63)
}

// AddRange puts every port from lo to hi (both included) in the set. It
// does nothing when lo > hi.
func (s *PortSet) AddRange(lo, hi uint16) {
	for p := int(lo); p <= int(hi); p++ {
		s.Add(uint16(p))
	}
}

// Remove takes port p out of the set.
func (s *PortSet) Remove(p uint16) {
	s.bits[p>>6] &^= 1 << (p & 63)
}

// Has reports whether port p is in the set. It does not allocate.
func (s *PortSet) Has(p uint16) bool {
	return s.bits[p>>6]&(1<<(p&63)) != 0
}

// Len returns the number of ports in the set.
func (s *PortSet) Len() int {
	n := 0
	for _, w := range s.bits {
		n += bits.OnesCount64(w)
	}
	return n
}

// Ports returns the ports in the set in ascending order, each once; nil for
// the empty set. The slice is the caller's.
func (s *PortSet) Ports() []uint16 {
	n := s.Len()
	if n == 0 {
		return nil
	}
	out := make([]uint16, 0, n)
	for i, w := range s.bits {
		for w != 0 {
			b := bits.TrailingZeros64(w)
			out = append(out, uint16(i<<6|b))
			w &= w - 1
		}
	}
	return out
}

// String lists the set in ascending order, comma separated, with runs of
// three or more consecutive ports written as a range: "1,7,9,512-515". The
// empty set prints as "". The output is accepted by ParsePortList and gives
// back the same set. It has a value receiver (unlike the other methods) so
// that a PortSet inside a printed struct prints as a list, not as a bitmap.
func (s PortSet) String() string { return PortsText(s.Ports()) }

// PortsText writes ports (ascending) as PortSet.String does.
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
		switch {
		case j-i >= 2:
			fmt.Fprintf(&b, "%d-%d", ports[i], ports[j])
		case j-i == 1:
			fmt.Fprintf(&b, "%d,%d", ports[i], ports[j])
		default:
			b.WriteString(strconv.Itoa(int(ports[i])))
		}
		i = j + 1
	}
	return b.String()
}

// ParsePortList parses a PortSentry port list: port numbers (0..65535) and
// inclusive ranges "a-b" (PortSentry 2.x) separated by commas, with spaces
// and tabs tolerated around every number, comma and dash. Empty entries
// ("1,,2", a trailing comma) are skipped, as PortSentry 1.2's tokenizer
// did; the empty string is the empty set. On error the message names the
// offending entry and says what is wrong with it.
func ParsePortList(v string) (PortSet, error) {
	var s PortSet
	for _, item := range strings.Split(v, ",") {
		item = strings.Trim(item, " \t")
		if item == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(item, "-")
		if !isRange {
			p, err := parsePort(item)
			if err != nil {
				return PortSet{}, err
			}
			s.Add(p)
			continue
		}
		lo, hi = strings.Trim(lo, " \t"), strings.Trim(hi, " \t")
		if lo == "" || hi == "" {
			return PortSet{}, fmt.Errorf("bad port range %q: want FIRST-LAST, e.g. 512-515", item)
		}
		a, err := parsePort(lo)
		if err != nil {
			return PortSet{}, fmt.Errorf("bad port range %q: %w", item, err)
		}
		b, err := parsePort(hi)
		if err != nil {
			return PortSet{}, fmt.Errorf("bad port range %q: %w", item, err)
		}
		if a > b {
			return PortSet{}, fmt.Errorf("reversed port range %q: the first port must not be above the last", item)
		}
		s.AddRange(a, b)
	}
	return s, nil
}

// parsePort parses one port number: decimal digits only, 0..65535.
func parsePort(v string) (uint16, error) {
	if !isDigits(v) {
		return 0, fmt.Errorf("bad port %q: not a number", v)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > 65535 {
		return 0, fmt.Errorf("port %s out of range 0..65535", v)
	}
	return uint16(n), nil
}

// isDigits reports whether v is one or more ASCII decimal digits.
func isDigits(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}
