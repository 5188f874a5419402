package detect

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// ScanType is the kind of probe a source sent.
type ScanType uint8

// Scan types, in the order that breaks ties when choosing a source's
// dominant type.
const (
	TypeSYN     ScanType = iota // half-open SYN probes (nmap -sS)
	TypeConnect                 // SYNs made by an OS stack's connect() (nmap -sT)
	TypeFIN                     // FIN alone (nmap -sF)
	TypeNULL                    // no flags (nmap -sN)
	TypeXMAS                    // FIN+PSH+URG (nmap -sX)
	TypeACK                     // ACK probes, seen through the host's bare RST answers (nmap -sA)
	TypeMaimon                  // FIN+ACK outside any connection (nmap -sM)
	TypeUDP                     // UDP datagrams (nmap -sU)
	TypeOdd                     // any other flag set without ACK
	numTypes
)

var typeNames = [numTypes]string{"syn", "connect", "fin", "null", "xmas", "ack", "maimon", "udp", "odd"}

// String returns the type's short name as replay's JSON uses it.
func (t ScanType) String() string {
	if t < numTypes {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseScanType is the inverse of String.
func ParseScanType(s string) (ScanType, error) {
	for i, n := range typeNames {
		if n == s {
			return ScanType(i), nil
		}
	}
	return 0, fmt.Errorf("unknown scan type %q (want one of %s)", s, strings.Join(typeNames[:], ", "))
}

// Proto is the transport protocol the type's probes use.
func (t ScanType) Proto() uint8 {
	if t == TypeUDP {
		return ProtoUDP
	}
	return ProtoTCP
}

// PortSentryLabel is the label PortSentry 1.2 puts in its attackalert line
// for this kind of probe ("TCP SYN/Normal scan", " TCP NULL scan" keeps the
// leading space 1.2 prints). Types 1.2 does not know get a label in the
// same style.
func (t ScanType) PortSentryLabel() string {
	switch t {
	case TypeSYN:
		return "TCP SYN/Normal scan"
	case TypeConnect:
		return "Connect"
	case TypeFIN:
		return "TCP FIN scan"
	case TypeNULL:
		return " TCP NULL scan"
	case TypeXMAS:
		return "TCP XMAS scan"
	case TypeACK:
		return "TCP ACK scan"
	case TypeMaimon:
		return "TCP Maimon scan"
	case TypeUDP:
		return "UDP scan"
	default:
		return "TCP odd-flags scan"
	}
}

// Trigger says which rule raised an alert.
type Trigger uint8

const (
	// TriggerTrap: the source hit watched (trap) ports SCAN_TRIGGER times.
	TriggerTrap Trigger = iota + 1
	// TriggerScore: the source's score over the window reached the threshold.
	TriggerScore
)

func (t Trigger) String() string {
	switch t {
	case TriggerTrap:
		return "trap"
	case TriggerScore:
		return "score"
	}
	return "none"
}

// PortRef is one probed port.
type PortRef struct {
	Proto uint8
	Port  uint16
}

// Alert is the engine's verdict on one source: it is a scanner. The engine
// raises at most one per source while it tracks that source.
type Alert struct {
	Src     netip.Addr
	Type    ScanType // the source's dominant probe type up to the alert
	Trigger Trigger
	Time    int64  // timestamp of the packet that raised it (ns since the epoch)
	First   int64  // timestamp of the source's first packet still tracked
	Probes  uint32 // probe packets seen from the source up to the alert
	Score   int
	// Proto and Port are those of the packet that raised the alert: the
	// "Port: N TCP" of PortSentry's history line.
	Proto uint8
	Port  uint16
	// Ports are the distinct ports the source probed (still in its window),
	// sorted by protocol then port; Dst the addresses it probed (at most
	// the first eight).
	Ports []PortRef
	Dst   []netip.Addr
	// Connected says the alert is of a full connection to, or a datagram
	// at, a port the daemon's classic mode holds open (not of probes the
	// engine saw): PortSentry logs those as "Connect from host".
	Connected bool
	// Link is what the source's probes showed of who sent them (their
	// frames' MAC, their hop counts), for Origins.Judge.
	Link LinkSeen
	// Origin is the judgement of whether the source sent its probes
	// itself (Origins.Judge), when the caller has made one; Unjudged
	// otherwise. A Forged source is never blocked.
	Origin Judgement
}

// Clone returns a copy of a that shares nothing with it: the engine
// reuses its alert (see Engine.Process), so whoever keeps one clones it.
func (a *Alert) Clone() *Alert {
	c := *a
	c.Ports = slices.Clone(a.Ports)
	c.Dst = slices.Clone(a.Dst)
	return &c
}

// sortPorts sorts ports by protocol, then port (insertion sort: there
// are at most maxTargets, and it allocates nothing).
func sortPorts(ps []PortRef) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && portLess(ps[j], ps[j-1]); j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

func portLess(x, y PortRef) bool {
	return x.Proto < y.Proto || x.Proto == y.Proto && x.Port < y.Port
}

// Timestamp returns Time as a time.Time in UTC.
func (a *Alert) Timestamp() time.Time { return time.Unix(0, a.Time).UTC() }

// ProtoName returns "TCP" or "UDP".
func ProtoName(p uint8) string {
	if p == ProtoUDP {
		return "UDP"
	}
	return "TCP"
}

// TimeLayout is how scanwarden writes packet times: RFC 3339 with all
// nine digits of nanoseconds, in UTC (Go's RFC3339Nano drops trailing
// zeros, which makes columns ragged and sorts badly as text).
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// FormatTime writes ns (nanoseconds since the Unix epoch) as TimeLayout
// says.
func FormatTime(ns int64) string { return time.Unix(0, ns).UTC().Format(TimeLayout) }
