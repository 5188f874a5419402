package conf

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/scanwarden/scanwarden/detect"
)

// ParsePortList parses a PortSentry port list: port numbers (0..65535) and
// inclusive ranges "a-b" (PortSentry 2.x) separated by commas, with spaces
// and tabs tolerated around every number, comma and dash. Empty entries
// ("1,,2", a trailing comma) are skipped, as PortSentry 1.2's tokenizer
// did; the empty string is the empty set. On error the message names the
// offending entry and says what is wrong with it.
func ParsePortList(v string) (detect.PortSet, error) {
	var s detect.PortSet
	for _, item := range strings.Split(v, ",") {
		item = strings.Trim(item, " \t")
		if item == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(item, "-")
		if !isRange {
			p, err := parsePort(item)
			if err != nil {
				return detect.PortSet{}, err
			}
			s.Add(p)
			continue
		}
		lo, hi = strings.Trim(lo, " \t"), strings.Trim(hi, " \t")
		if lo == "" || hi == "" {
			return detect.PortSet{}, fmt.Errorf("bad port range %q: want FIRST-LAST, e.g. 512-515", item)
		}
		a, err := parsePort(lo)
		if err != nil {
			return detect.PortSet{}, fmt.Errorf("bad port range %q: %w", item, err)
		}
		b, err := parsePort(hi)
		if err != nil {
			return detect.PortSet{}, fmt.Errorf("bad port range %q: %w", item, err)
		}
		if a > b {
			return detect.PortSet{}, fmt.Errorf("reversed port range %q: the first port must not be above the last", item)
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
