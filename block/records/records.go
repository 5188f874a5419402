// Package records writes what PortSentry 1.2 wrote, byte for byte where
// others read it: the history line of portsentry.history and of the
// blocked files (read by fail2ban's portsentry filter), and the wording of
// the attackalert and adminalert syslog lines (read by logwatch). It also
// holds the safe way scanwarden appends to and rewrites such files (locks,
// journals, in-place rewrites), built on internal/safefile's checks, opens
// and atomic replacement.
//
// The functions return text; nothing here logs. Addresses are written as
// netip.Addr.String() gives them, IPv4-mapped IPv6 addresses as IPv4 and
// without a zone. A host name that could break a reader's pattern (empty,
// too long, or with characters outside letters, digits, '.', '-', '_' and
// ':') is replaced by the address: a PTR record is chosen by the scanner,
// and must not be able to forge or hide a line.
package records

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// maxHostLen is the longest DNS name (RFC 1035: 253 characters as text).
const maxHostLen = 253

// Modes returns PortSentry's six mode names, as they appear in $MODE$ and
// in the blocked files' suffixes: tcp, udp, stcp, sudp, atcp, audp
// (classic, stealth and advanced, for each protocol).
func Modes() []string { return []string{"tcp", "udp", "stcp", "sudp", "atcp", "audp"} }

// ValidMode reports whether mode is one of Modes() (exactly, lower case).
func ValidMode(mode string) bool {
	switch mode {
	case "tcp", "udp", "stcp", "sudp", "atcp", "audp":
		return true
	}
	return false
}

// addrText is addr as the records write it: unmapped, without a zone.
func addrText(addr netip.Addr) string { return addr.Unmap().WithZone("").String() }

// hostText is the host name for the records: host when it is safe to
// write, the address otherwise.
func hostText(host string, addr netip.Addr) string {
	if host == "" || len(host) > maxHostLen {
		return addrText(addr)
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '-', c == '_', c == ':':
		default:
			return addrText(addr)
		}
	}
	return host
}

// protoWord is "TCP" or "UDP" for "tcp"/"udp" in any case; any other value
// is upper-cased as it is.
func protoWord(proto string) string { return strings.ToUpper(proto) }

// HistoryLine returns PortSentry's history line (without a newline):
//
//	%ld - %02d/%02d/%04d %02d:%02d:%02d Host: %s/%s Port: %d %s Blocked
//
// that is t's Unix time in seconds, t's date and time in the local time
// zone as MM/DD/YYYY HH:MM:SS, the host name (pass the address's string
// when it was not resolved), the address, the port and proto ("tcp" or
// "udp", in any case) as TCP or UDP. PortSentry writes the same line to
// the history file and the blocked files; fail2ban's portsentry filter
// reads the epoch and the address from it.
func HistoryLine(t time.Time, host string, addr netip.Addr, port uint16, proto string) string {
	lt := t.Local()
	return fmt.Sprintf("%d - %02d/%02d/%04d %02d:%02d:%02d Host: %s/%s Port: %d %s Blocked",
		t.Unix(), int(lt.Month()), lt.Day(), lt.Year(), lt.Hour(), lt.Minute(), lt.Second(),
		hostText(host, addr), addrText(addr), port, protoWord(proto))
}

// ScanAlert returns the attackalert line of a detected probe:
//
//	attackalert: <label> from host: <host>/<addr> to <TCP|UDP> port: <port>
//
// label is detect.ScanType.PortSentryLabel() as it is, leading space
// included (" TCP NULL scan" gives PortSentry's two spaces); for UDP it is
// "UDP scan", which gives 1.2's `attackalert: UDP scan from host: %s/%s to
// UDP port: %d`.
func ScanAlert(label, host string, addr netip.Addr, proto string, port uint16) string {
	return fmt.Sprintf("attackalert: %s from host: %s/%s to %s port: %d",
		label, hostText(host, addr), addrText(addr), protoWord(proto), port)
}

// ForgedAlert returns the line of a detected scan whose source was judged
// forged (someone else sent the probes in its name), which is not
// blocked:
//
//	attackalert: forged <label> in the name of host: <addr> to <TCP|UDP> port: <port>: not blocked (<evidence>)
//
// It is no PortSentry line and says "in the name of" rather than "from
// host:", so that logwatch and fail2ban, which read the latter, do not
// count it as the address's own scan.
func ForgedAlert(label string, addr netip.Addr, proto string, port uint16, evidence string) string {
	return fmt.Sprintf("attackalert: forged %s in the name of host: %s to %s port: %d: not blocked (%s)",
		strings.TrimSpace(label), addrText(addr), protoWord(proto), port, evidence)
}

// ConnectAlert returns the attackalert line of PortSentry's classic
// (-tcp, -udp) modes, a full connection to or datagram at a bound port:
//
//	attackalert: Connect from host: <host>/<addr> to <TCP|UDP> port: <port>
//
// As in 1.2, it does not say "scan", so logwatch does not count it as one.
func ConnectAlert(host string, addr netip.Addr, proto string, port uint16) string {
	return fmt.Sprintf("attackalert: Connect from host: %s/%s to %s port: %d",
		hostText(host, addr), addrText(addr), protoWord(proto), port)
}

// WrappersBlocked returns the line of a hosts.deny entry made for addr,
// line being the entry as written:
//
//	attackalert: Host <addr> has been blocked via wrappers with string: "<line>"
func WrappersBlocked(addr netip.Addr, line string) string {
	return fmt.Sprintf("attackalert: Host %s has been blocked via wrappers with string: \"%s\"", addrText(addr), line)
}

// RouteBlocked returns the line of a KILL_ROUTE command (or the native
// firewall rule standing in for it) run against addr:
//
//	attackalert: Host <addr> has been blocked via dropped route using command: "<cmd>"
func RouteBlocked(addr netip.Addr, cmd string) string {
	return fmt.Sprintf("attackalert: Host %s has been blocked via dropped route using command: \"%s\"", addrText(addr), cmd)
}

// CommandRun returns the line of a KILL_RUN_CMD command run for addr:
//
//	attackalert: External command run for host: <addr> using command: "<cmd>"
func CommandRun(addr netip.Addr, cmd string) string {
	return fmt.Sprintf("attackalert: External command run for host: %s using command: \"%s\"", addrText(addr), cmd)
}

// AlreadyBlocked returns the line of a probe from a source that is blocked
// already:
//
//	attackalert: Host: <host>/<addr> is already blocked Ignoring
func AlreadyBlocked(host string, addr netip.Addr) string {
	return fmt.Sprintf("attackalert: Host: %s/%s is already blocked Ignoring", hostText(host, addr), addrText(addr))
}

// Starting returns the first adminalert line; PortSentry 1.2 logs it with
// name "PortSentry 1.2": `adminalert: PortSentry 1.2 is starting.`
func Starting(name string) string {
	return fmt.Sprintf("adminalert: %s is starting.", name)
}

// ListenMode returns the adminalert line for one watched port, e.g.
// `adminalert: Going into listen mode on TCP port: 111`.
func ListenMode(proto string, port uint16) string {
	return fmt.Sprintf("adminalert: Going into listen mode on %s port: %d", protoWord(proto), port)
}

// Active returns `adminalert: PortSentry is now active and listening.`,
// word for word: logwatch recognises (and skips) "PortSentry is now
// active", so the program name stays PortSentry here.
func Active() string {
	return "adminalert: PortSentry is now active and listening."
}
