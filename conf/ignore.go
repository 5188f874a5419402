package conf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/scanwarden/scanwarden/internal/excerpt"
)

// IgnoreList is the set of addresses that are never reported or blocked,
// read from a PortSentry ignore file. It is not changed after it is built,
// so it is safe for concurrent use.
type IgnoreList struct {
	prefixes []netip.Prefix
}

// LoadIgnore reads the ignore file at path (see ParseIgnore). A missing
// file is an error that wraps fs.ErrNotExist, so the caller can decide
// whether to go on without one.
func LoadIgnore(path string) (*IgnoreList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ignore file: %w", err)
	}
	defer f.Close()
	return ParseIgnore(f, path)
}

// ParseIgnore reads an ignore file in PortSentry's format: one IPv4 or IPv6
// address per line with an optional "/bits" prefix length, "#" comments
// (whole line or after the address), blank lines and CRLF line endings.
// Text after the address and a space is a note, as PortSentry 1.2 reads
// it, unless it starts with another address (an error: PortSentry would
// have dropped it). An
// address without bits is that single address (so PortSentry's "0.0.0.0"
// line is the address 0.0.0.0, not every address). Host bits set under a
// prefix are cleared (192.0.2.7/24 is 192.0.2.0/24), and IPv4-mapped IPv6
// entries (::ffff:192.0.2.7) are stored as IPv4. Every bad line is
// reported: the error is an Errors listing a *LineError naming name and
// the line number for each (errors.As finds the first); name is only used
// in messages.
func ParseIgnore(r io.Reader, name string) (*IgnoreList, error) {
	l := &IgnoreList{}
	seen := make(map[netip.Prefix]bool)
	var errs collector
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLineLen)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			text = strings.TrimPrefix(text, utf8BOM)
		}
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.Trim(text, " \t\r")
		if text == "" {
			continue
		}
		// PortSentry 1.2 reads the address at the start of the line and
		// nothing after it: a note there ("192.0.2.7 backup host") is
		// one, but a second address would be silently lost, so it is
		// an error
		words := strings.Fields(text)
		if len(words) > 1 {
			if _, err := parseAddrOrPrefix(words[1]); err == nil {
				if !errs.add(&LineError{File: name, Line: line, Msg: fmt.Sprintf("%q: one address or ADDRESS/BITS per line (put %s on a line of its own)", excerpt.Of(text), excerpt.Of(words[1]))}) {
					return nil, errs.err()
				}
				continue
			}
		}
		p, err := parseAddrOrPrefix(words[0])
		if err != nil {
			if !errs.add(&LineError{File: name, Line: line, Msg: err.Error()}) {
				return nil, errs.err()
			}
			continue
		}
		if !seen[p] {
			seen[p] = true
			l.prefixes = append(l.prefixes, p)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			errs.add(&LineError{File: name, Line: line + 1, Msg: fmt.Sprintf("line longer than %d bytes", maxLineLen)})
			return nil, errs.err()
		}
		rerr := fmt.Errorf("reading ignore file %s: %w", name, err)
		if len(errs.errs) > 0 {
			return nil, errors.Join(errs.errs, rerr)
		}
		return nil, rerr
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return l, nil
}

// Contains reports whether addr falls under any entry of the list. An
// IPv4-mapped IPv6 address (::ffff:192.0.2.1) matches the IPv4 entries, and
// an IPv6 zone is disregarded. A nil list contains nothing. It does not
// allocate.
func (l *IgnoreList) Contains(addr netip.Addr) bool {
	if l == nil || !addr.IsValid() {
		return false
	}
	addr = addr.WithZone("")
	unmapped := addr.Unmap()
	for _, p := range l.prefixes {
		if p.Contains(unmapped) || p.Contains(addr) {
			return true
		}
	}
	return false
}

// Prefixes returns the entries in file order, duplicates removed, each
// masked to its prefix length (a single address is a /32 or /128). The
// slice is the caller's.
func (l *IgnoreList) Prefixes() []netip.Prefix {
	if l == nil {
		return nil
	}
	return append([]netip.Prefix(nil), l.prefixes...)
}

// Len returns the number of entries.
func (l *IgnoreList) Len() int {
	if l == nil {
		return 0
	}
	return len(l.prefixes)
}

// parseAddrOrPrefix parses "ADDR" or "ADDR/BITS" (IPv4 or IPv6) into a
// masked prefix; a plain address becomes a /32 or /128. IPv4-mapped IPv6
// input is turned into IPv4. Zoned addresses are refused: a zone names a
// link, not a host, and would never match a packet's source.
func parseAddrOrPrefix(s string) (netip.Prefix, error) {
	if strings.ContainsAny(s, " \t") {
		return netip.Prefix{}, fmt.Errorf("%q: one address or ADDRESS/BITS per line", excerpt.Of(s))
	}
	if strings.Contains(s, "%") {
		return netip.Prefix{}, fmt.Errorf("%q: addresses with an IPv6 zone (%%) are not supported", excerpt.Of(s))
	}
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		p, err = netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address/bits prefix (like 192.0.2.0/24 or 2001:db8::/32)", excerpt.Of(s))
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 or IPv6 address", excerpt.Of(s))
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}
