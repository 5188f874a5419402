// Package alertfmt owns the output formats of an alert in `scanwarden
// replay`: the readable line and the JSON object of --json, both appended
// to a caller's buffer, byte for byte what scanwarden has always printed,
// without reflection and without allocating (the caller reuses its
// buffer from alert to alert). The one exception is a scan type out of
// range, which the engine never raises: detect names it with fmt.
//
// It only formats: it may not touch the engine's state, the alert it is
// given (read-only), I/O, the firewall or the config. PortSentry's own
// formats (history and blocked-file lines, attackalert wording) are not
// here but in block/records.
package alertfmt

import (
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/scanwarden/scanwarden/detect"
)

// AppendText appends a's readable line, with its newline, to dst:
//
//	TIME SRC TYPE scan (TRIGGER): N probes, score S, last PROTO/PORT, ports PORTS, dst ADDRS[, forged: EVIDENCE]
//
// PORTS is compact (tcp/1-5,22 udp/53), ADDRS comma-separated, each "-"
// when empty. The text names no file (file is taken for symmetry with
// AppendJSON and ignored). Strings are written as they are, unescaped.
func AppendText(dst []byte, a *detect.Alert, file string) []byte {
	dst = appendTime(dst, a.Time)
	dst = append(dst, ' ')
	dst = appendAddr(dst, a.Src)
	dst = append(dst, ' ')
	dst = append(dst, a.Type.String()...)
	dst = append(dst, " scan ("...)
	dst = append(dst, a.Trigger.String()...)
	dst = append(dst, "): "...)
	dst = strconv.AppendUint(dst, uint64(a.Probes), 10)
	dst = append(dst, " probes, score "...)
	dst = strconv.AppendInt(dst, int64(a.Score), 10)
	dst = append(dst, ", last "...)
	dst = append(dst, protoName(a.Proto)...)
	dst = append(dst, '/')
	dst = strconv.AppendUint(dst, uint64(a.Port), 10)
	dst = append(dst, ", ports "...)
	dst = appendPortList(dst, a.Ports)
	dst = append(dst, ", dst "...)
	dst = appendAddrList(dst, a.Dst)
	if a.Origin.Verdict == detect.Forged {
		dst = append(dst, ", forged: "...)
		dst = append(dst, a.Origin.Evidence...)
	}
	return append(dst, '\n')
}

// AppendJSON appends a's JSON object, with its newline, to dst: the keys
// src, type, time, probes, ports (the distinct port numbers, in order of
// first appearance), dst, proto, port, trigger, score, first, then file
// (when not empty), forged (when the source was judged forged: the probes
// were sent in its name by someone else) and evidence (what a forged or
// genuine verdict rests on, when not empty). Strings are escaped as
// encoding/json escapes them (HTML-safe, U+2028 and U+2029 escaped,
// invalid UTF-8 replaced by U+FFFD).
func AppendJSON(dst []byte, a *detect.Alert, file string) []byte {
	dst = append(dst, `{"src":`...)
	dst = appendAddrJSON(dst, a.Src)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, a.Type.String())
	dst = append(dst, `,"time":"`...)
	dst = appendTime(dst, a.Time) // digits, '-', ':', '.', 'T', 'Z': nothing to escape
	dst = append(dst, `","probes":`...)
	dst = strconv.AppendUint(dst, uint64(a.Probes), 10)
	dst = append(dst, `,"ports":[`...)
	dst = appendPortNumbers(dst, a.Ports)
	dst = append(dst, `],"dst":[`...)
	for i, d := range a.Dst {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendAddrJSON(dst, d)
	}
	dst = append(dst, `],"proto":"`...)
	dst = append(dst, protoName(a.Proto)...)
	dst = append(dst, `","port":`...)
	dst = strconv.AppendUint(dst, uint64(a.Port), 10)
	dst = append(dst, `,"trigger":`...)
	dst = appendString(dst, a.Trigger.String())
	dst = append(dst, `,"score":`...)
	dst = strconv.AppendInt(dst, int64(a.Score), 10)
	dst = append(dst, `,"first":"`...)
	dst = appendTime(dst, a.First)
	dst = append(dst, '"')
	if file != "" {
		dst = append(dst, `,"file":`...)
		dst = appendString(dst, file)
	}
	if a.Origin.Verdict == detect.Forged {
		dst = append(dst, `,"forged":true`...)
	}
	if v := a.Origin.Verdict; (v == detect.Forged || v == detect.Genuine) && a.Origin.Evidence != "" {
		dst = append(dst, `,"evidence":`...)
		dst = appendString(dst, a.Origin.Evidence)
	}
	return append(dst, "}\n"...)
}

// appendTime appends ns (nanoseconds since the Unix epoch) as
// detect.FormatTime writes it (detect.TimeLayout, in UTC): digit by digit
// from the civil date of the day (years 0 to 9999; time.AppendFormat for
// the others), about a tenth of AppendFormat's time, which parses its
// layout on every call.
func appendTime(dst []byte, ns int64) []byte {
	const nsPerDay = 86400 * 1e9
	days, rem := ns/nsPerDay, ns%nsPerDay
	if rem < 0 {
		days, rem = days-1, rem+nsPerDay
	}
	y, m, d := civil(days)
	if y < 0 || y > 9999 {
		return time.Unix(0, ns).UTC().AppendFormat(dst, detect.TimeLayout)
	}
	secs, frac := rem/1e9, rem%1e9
	dst = appendDigits(dst, int64(y), 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int64(m), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, int64(d), 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, secs/3600, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, secs/60%60, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, secs%60, 2)
	dst = append(dst, '.')
	dst = appendDigits(dst, frac, 9)
	return append(dst, 'Z')
}

// civil returns the proleptic Gregorian date of days since 1970-01-01
// (Howard Hinnant's days_from_civil, inverted).
func civil(days int64) (y, m, d int) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365]
	mp := (5*doy + 2) / 153                                // [0, 11]
	d = int(doy - (153*mp+2)/5 + 1)
	m = int(mp + 3)
	if m > 12 {
		m -= 12
	}
	y = int(yoe + era*400)
	if m <= 2 {
		y++
	}
	return y, m, d
}

// appendDigits appends v (0 <= v < 10^width) as width decimal digits.
func appendDigits(dst []byte, v int64, width int) []byte {
	var buf [9]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:width]...)
}

// protoName is strings.ToLower(detect.ProtoName(p)), as the formats have
// always written it, without the allocation ToLower makes for it.
func protoName(p uint8) string {
	if p == detect.ProtoUDP {
		return "udp"
	}
	return "tcp"
}

// invalidAddr is what netip.Addr.String says of the zero Addr (AppendTo
// appends nothing for it).
const invalidAddr = "invalid IP"

// appendAddr appends a as a.String() writes it.
func appendAddr(dst []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(dst, invalidAddr...)
	}
	return a.AppendTo(dst)
}

// appendAddrJSON appends a.String() as a JSON string. Only an IPv6 zone,
// which netip takes as any string, can need escaping.
func appendAddrJSON(dst []byte, a netip.Addr) []byte {
	zone := a.Zone()
	dst = append(dst, '"')
	if zone == "" {
		dst = appendAddr(dst, a)
		return append(dst, '"')
	}
	dst = a.WithZone("").AppendTo(dst)
	dst = append(dst, '%')
	dst = appendEscaped(dst, zone)
	return append(dst, '"')
}

// appendAddrList appends the addresses comma-separated, "-" for none.
func appendAddrList(dst []byte, as []netip.Addr) []byte {
	if len(as) == 0 {
		return append(dst, '-')
	}
	for i, a := range as {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendAddr(dst, a)
	}
	return dst
}

// appendPortList appends ports compactly, "-" for none: runs of
// consecutive ports of one protocol as ranges, each protocol once per run
// of entries of that protocol: tcp/1-5,22 udp/53. The successor of port
// 65535 is 0, as it always was.
func appendPortList(dst []byte, ps []detect.PortRef) []byte {
	if len(ps) == 0 {
		return append(dst, '-')
	}
	for i := 0; i < len(ps); {
		proto := ps[i].Proto
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, protoName(proto)...)
		dst = append(dst, '/')
		first := true
		for i < len(ps) && ps[i].Proto == proto {
			j := i
			for j+1 < len(ps) && ps[j+1].Proto == proto && ps[j+1].Port == ps[j].Port+1 {
				j++
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = strconv.AppendUint(dst, uint64(ps[i].Port), 10)
			if j > i {
				dst = append(dst, '-')
				dst = strconv.AppendUint(dst, uint64(ps[j].Port), 10)
			}
			i = j + 1
		}
	}
	return dst
}

// smallPorts is the length up to which appendPortNumbers finds repeated
// port numbers by looking back over the list: an alert's ports are few
// (one protocol's ports are already distinct; the same number twice means
// TCP and UDP), and a look-back over 32 entries is cheaper than clearing
// a bitmap of all 65536 ports.
const smallPorts = 32

// appendPortNumbers appends the distinct port numbers of ps,
// comma-separated, in order of first appearance.
func appendPortNumbers(dst []byte, ps []detect.PortRef) []byte {
	if len(ps) > smallPorts {
		return appendManyPortNumbers(dst, ps)
	}
	n := 0
next:
	for i, p := range ps {
		for _, q := range ps[:i] {
			if q.Port == p.Port {
				continue next
			}
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = strconv.AppendUint(dst, uint64(p.Port), 10)
	}
	return dst
}

// appendManyPortNumbers is appendPortNumbers for long lists, with a
// bitmap of the ports seen (8 KiB, on the stack).
//
//go:noinline
func appendManyPortNumbers(dst []byte, ps []detect.PortRef) []byte {
	var seen [1 << 16 / 64]uint64
	n := 0
	for _, p := range ps {
		w, bit := p.Port/64, uint64(1)<<(p.Port%64)
		if seen[w]&bit != 0 {
			continue
		}
		seen[w] |= bit
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = strconv.AppendUint(dst, uint64(p.Port), 10)
	}
	return dst
}

// hex is encoding/json's: its \u escapes use lower-case digits.
const hex = "0123456789abcdef"

// appendString appends s as a JSON string, quoted and escaped as
// encoding/json escapes it with HTML escaping on (as json.Marshal does):
// ASCII bytes other than control characters, '"', '\\', '<', '>' and '&'
// as they are (DEL too); '"' and '\\' after a backslash; \b, \f, \n, \r
// and \t as those escapes; the other control characters and '<', '>',
// '&' as \u00xx; a byte that does not start a valid UTF-8 sequence (a
// stray continuation byte, a truncated or overlong sequence, an encoded
// surrogate, anything beyond U+10FFFF) as \ufffd, one per byte; U+2028
// and U+2029 as \u2028 and \u2029; any other valid sequence, U+FFFD
// itself included, as it is.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

// appendEscaped appends s escaped as appendString says, without quotes.
func appendEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if safe(b) {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// safe says b is written as it is: printable ASCII (and DEL) but for the
// quote, the backslash and the HTML specials.
func safe(b byte) bool {
	return b >= 0x20 && b < utf8.RuneSelf && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
}
