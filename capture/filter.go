package capture

import "strings"

// FilterOptions says which protocols the daemon watches.
type FilterOptions struct {
	TCP bool // TCP probes (and the host's TCP answers: SYN-ACK, RST)
	UDP bool // UDP probes (and the host's UDP answers)
}

// BPF building blocks, one per kind of packet the classifier needs. Each is
// a complete, parenthesised expression.
const (
	// IPv4 TCP whose flags are anything but ACK without SYN, FIN or RST
	// (0x17 = SYN|FIN|RST|ACK): passes SYN, SYN-ACK, FIN, FIN-ACK, every
	// RST, NULL, XMAS and odd combinations; drops the pure ACKs and data
	// segments that make up almost all of an established connection.
	filterTCP4 = "(ip and tcp and tcp[13] & 0x17 != 0x10)"
	// The same for IPv6 TCP right behind the fixed header (libpcap's
	// tcp[] does not index into IPv6): byte 53 is TCP's flags byte.
	filterTCP6 = "(ip6 and ip6[6] == 6 and ip6[53] & 0x17 != 0x10)"
	// All UDP, IPv4 and IPv6: probes and the host's replies alike.
	filterUDP = "udp"
	// Every IPv4 fragment (MF set or offset non-zero): a fragment's
	// transport header, if it has one at all, may be cut anywhere, so the
	// kernel cannot look at its flags; the decoder reassembles it.
	filterFrag4 = "(ip and ip[6:2] & 0x3fff != 0)"
	// IPv6 packets whose first next header is not TCP, UDP or ICMPv6:
	// fragments and other extension headers, which the kernel filter
	// cannot walk.
	filterExt6 = "(ip6 and ip6[6] != 6 and ip6[6] != 17 and ip6[6] != 58)"
	// ICMPv4 destination unreachable (type 3) and ICMPv6 destination
	// unreachable (type 1): a host's or a firewall's "closed" answer.
	filterUnreach4 = "(icmp and icmp[0] == 3)"
	filterUnreach6 = "(ip6 and ip6[6] == 58 and ip6[40] == 1)"
)

// Filter returns the kernel BPF expression for the watched protocols. It
// keeps an established connection's ACKs and data out of the capture
// while passing everything the classifier needs: TCP segments with SYN,
// FIN or RST or without ACK (IPv4 and IPv6), all UDP, IPv4 fragments,
// IPv6 packets with extension headers, and ICMP/ICMPv6
// destination-unreachable. With TCP or UDP false that protocol's part is
// left out; at least one should be set, and with neither Filter returns the
// filter for both. The result compiles for every link type libpcap
// supports with IP (Ethernet, Linux cooked, loopback, raw IP).
func Filter(opt FilterOptions) string {
	if !opt.TCP && !opt.UDP {
		opt.TCP, opt.UDP = true, true
	}
	// Order matters: a BPF program that loads past the end of a packet
	// rejects it on the spot, whatever later alternatives would say, so
	// the alternatives that read no transport bytes come first. A first
	// fragment whose 8 bytes end before TCP's flags must pass through the
	// fragment test before tcp[13] is ever read.
	parts := make([]string, 0, 7)
	parts = append(parts, filterFrag4, filterExt6)
	if opt.UDP {
		parts = append(parts, filterUDP)
	}
	parts = append(parts, filterUnreach4, filterUnreach6)
	if opt.TCP {
		parts = append(parts, filterTCP4, filterTCP6)
	}
	return strings.Join(parts, " or ")
}
