// Package block shuts scanners out and lets them back in: the Blocker
// interface at the firewall boundary, and the Manager that decides, from
// the engine's alerts, what to block, records it (PortSentry's history and
// blocked files, the state file) and undoes it on expiry or request.
//
// Backends live in subpackages (block/iptables, block/nftables,
// block/ipset, block/hostsdeny; block/backends opens one by name) and
// external commands in block/command; they know nothing of alerts or
// policy, only how to make one kind of block exist or not. The package
// takes plain values (alerts, bans, a Policy, never-block addresses): it
// reads no config file and no packet, and imports neither conf nor
// capture.
package block

import (
	"context"
	"net/netip"
	"time"
)

// Ban is one blocked source and why.
type Ban struct {
	Addr netip.Addr `json:"addr"`
	// Proto is the protocol of the scan that earned the ban: "tcp" or
	// "udp". It chooses BLOCK_TCP or BLOCK_UDP, BAN_EXPIRY_TCP or _UDP,
	// and the word in PortSentry's history line.
	Proto string `json:"proto"`
	// Port is the port of the probe that raised the alert.
	Port uint16 `json:"port"`
	// Type is the scan type (syn, fin, ...).
	Type string `json:"type"`
	// Reason is a readable account of the alert.
	Reason string `json:"reason"`
	// Since is when the ban was put in place.
	Since time.Time `json:"since"`
	// Until is when it expires; the zero time means never.
	Until time.Time `json:"until,omitzero"`
	// Source is where the decision was made: empty for this host's own
	// detection, SourceCrowdSec for a decision of the fleet's CrowdSec
	// Local API (Manager.Impose).
	Source string `json:"source,omitempty"`
}

// SourceCrowdSec is the Source of a ban imposed by a decision of the
// CrowdSec Local API.
const SourceCrowdSec = "crowdsec"

// Expired reports whether the ban has run out at now.
func (b *Ban) Expired(now time.Time) bool { return !b.Until.IsZero() && !now.Before(b.Until) }

// Traits say where a Blocker's Block may run on the way from alert to
// rule. They are fixed for the life of the Blocker.
type Traits struct {
	// Prompt: Block, in the common case, neither starts a process nor
	// waits for a lock another process may hold (one netlink message), so
	// Manager.Begin may call it on the capture thread. iptables is not
	// Prompt: a run of the iptables binary takes milliseconds, and
	// iptables-legacy waits for the xtables lock of whoever holds it.
	Prompt bool
	// Records: the Blocker records a block for other programs rather
	// than enforcing it in the kernel (hosts.deny): the Manager writes it
	// after the firewall, off the path from alert to rule, and logs it as
	// PortSentry logged its wrappers entry.
	Records bool
}

// Blocker is one way of keeping a source out: firewall rules, hosts.deny
// entries, a dry run. Every method is idempotent, touches only what the
// backend itself added, and is safe to call again after a failure or a
// crash. Implementations are safe for use by one goroutine at a time; the
// Manager serialises its calls. A set backend that can also hold a
// kernel trap implements Trapper besides.
type Blocker interface {
	// Name identifies the backend in logs and the state file
	// ("iptables", "hosts.deny", "dry-run").
	Name() string
	// Traits says where Block may run (see Traits).
	Traits() Traits
	// Describe says how the backend blocks addr, for the attackalert
	// line ("ALL: 192.0.2.1 : DENY", or the rule). It has no effect.
	Describe(addr netip.Addr) string
	// Prepare sets up ahead of the first block what every block needs
	// (a chain and its jump, a table and its sets), so that the first
	// block is as fast as the others; a backend that needs nothing
	// returns nil. Restore and Resync call it before Sync.
	Prepare(ctx context.Context) error
	// Block makes sure b.Addr is blocked. When it already is, nothing
	// changes and Block returns nil: there is never more than one entry
	// per address.
	Block(ctx context.Context, b Ban) error
	// Unblock makes sure addr is no longer blocked by this backend.
	// Unblocking an address that is not blocked returns nil.
	Unblock(ctx context.Context, addr netip.Addr) error
	// List returns the addresses this backend blocks now, as the kernel
	// or file has them, in no particular order.
	List(ctx context.Context) ([]netip.Addr, error)
	// Sync makes the backend block exactly the addresses of want: missing
	// entries are added, entries for other addresses removed, nothing
	// duplicated.
	Sync(ctx context.Context, want []Ban) error
	// Flush removes everything the backend ever added (for a firewall,
	// its rules and its chain) and nothing else.
	Flush(ctx context.Context) error
	// Close releases what the Blocker holds open (netlink sockets,
	// timers); what it put in the kernel or a file stays. No method may
	// be called after it.
	Close() error
}

// Trap is the first-hit trap a Trapper puts in the kernel: the source of a
// TCP segment without ACK (SYN, FIN, NULL, XMAS and the odd-flag probes) to
// one of TCP, or of a UDP datagram to one of UDP, is added to the
// backend's trap set and the packet dropped, before userspace has seen it.
//
// The trap is provisional: a first hit holds its source in the trap set
// (and so drops everything it sends) for Hold at most, and the kernel then
// lets it go by itself. Userspace, which still sees the packet through
// pcap, decides meanwhile: it promotes a source it confirms to a real ban
// (the ordinary Blocker.Block into the ban set, with the ban's own expiry,
// recorded as its own in state, history and hosts.deny), and lets one it
// judges forged out at once (Trapper.Release). One forged probe in a
// benign host's name thus costs that host Hold at most, never a ban.
//
// Release also spares the source: for SpareFor it is in the backend's
// spared set, which the trap skips entirely (it neither adds nor drops
// the source's packets; userspace still sees and judges them), so that a
// decoy scan, which sends a probe in the framed host's name to every port
// for the whole scan, cannot trap that host again right after each
// Release. A scanner that gets itself spared (by making its own probes
// look forged) is still blocked by userspace, which judges its packets as
// ever: it only escapes the kernel's first-hit drop for SpareFor.
type Trap struct {
	// TCP and UDP are the trap ports, sorted and without duplicates. With
	// both empty there is no trap. TCP not empty also arms the catches
	// that are not about ports: a TCP probe no client sends (FIN, NULL,
	// XMAS, odd flags without SYN, ACK or RST) to any port, and an ACK or
	// FIN+ACK outside any connection to a trap port (held, let through).
	TCP, UDP []uint16
	// Exempt are the never-block addresses and networks (ignore file, the
	// host's own addresses, gateways, resolvers, loopback): the trap never
	// adds nor drops their packets, and SetTrap removes from the trap set
	// any element they cover.
	Exempt []netip.Prefix
	// Hold is how long a first hit keeps its source in the trap set (the
	// element's timeout, TRAP_HOLD), for TCP and UDP alike. It must be
	// more than 0 when the trap is Enabled. A backend rounds it up to its
	// own granularity (nftables: a millisecond, ipset: a second; at
	// least a second in either) and writes it on every element the trap
	// adds: a trap element always has a timeout.
	Hold time.Duration
	// Size is the budget of provisional entries of each family's trap set
	// (TRAP_SET_SIZE): at most Size sources are held at once, so that a
	// flood of forged sources can neither exhaust kernel memory nor keep
	// more than Size addresses trapped. A first hit that finds the set
	// full is dropped all the same, but its source is not added (what it
	// sends to other ports passes), and the hit is counted (see
	// Trapper.TrapOverflows); userspace still sees and judges it. Each
	// family's spared set (see Trapper.Release) has the same bound.
	Size int
}

// SpareFor is how long Trapper.Release spares a source it lets out of the
// trap: the timeout of its element in the spared set, which the trap
// skips. A minute, the engine's default window: long enough to outlast
// the burst of a decoy scan (nmap -D sends a probe in the framed host's
// name to every port, hundreds a second, for the whole scan; each
// Release refreshes the minute), short enough that an address the trap
// spared does not stay exempt from it for long.
const SpareFor = time.Minute

// DefaultTrapSize is the trap set bound a set backend uses when no Trap
// has given one (Prepare on a table without trap sets): TRAP_SET_SIZE's
// default, 256 provisional entries per family.
const DefaultTrapSize = 256

// Enabled reports whether t traps any port.
func (t *Trap) Enabled() bool { return len(t.TCP) > 0 || len(t.UDP) > 0 }

// TrapCatch is one kind of packet the kernel trap catches; each set
// backend writes its own match for it.
type TrapCatch string

// The kernel trap's catches.
const (
	// CatchTCP is a TCP segment without ACK to a TCP trap port.
	CatchTCP TrapCatch = "tcp"
	// CatchUDP is a UDP datagram to a UDP trap port.
	CatchUDP TrapCatch = "udp"
	// CatchStealth is a TCP segment with none of SYN, ACK and RST (FIN,
	// NULL, XMAS, odd flags), to any port: no client's stack sends one.
	CatchStealth TrapCatch = "stealth"
	// CatchACK is a TCP segment whose flags are ACK or FIN|ACK (PSH, URG,
	// ECE and CWR aside) that belongs to no connection (conntrack's loose
	// pickup: state new, or invalid), to a TCP trap port: an ACK or
	// Maimon probe. It holds its source but is not dropped, so that the
	// host's reset, which userspace sees, answers it.
	CatchACK TrapCatch = "ack"
)

// TrapCatches are the trap's catches, in the order of the trap chain.
var TrapCatches = []TrapCatch{CatchTCP, CatchUDP, CatchStealth, CatchACK}

// Armed reports whether t has catch c: the TCP catches only when TCP is
// trapped (t.TCP not empty), the UDP one when UDP is. The stealth catch
// matches every port, so without this a daemon that must not block TCP
// on a first hit (BLOCK_TCP, the modes) would hold FIN scanners all the
// same.
func (t *Trap) Armed(c TrapCatch) bool {
	if c == CatchUDP {
		return len(t.UDP) > 0
	}
	return len(t.TCP) > 0
}

// Drops reports whether a caught packet is dropped: every catch's but
// CatchACK's, which goes on to the host.
func (c TrapCatch) Drops() bool { return c != CatchACK }

// Trapper is implemented by a set backend that can hold a Trap. What it
// guarantees: a source the kernel trapped stays in the trap set for the
// installed trap's Hold at most (SetTrap also cuts down to Hold the
// elements it finds with more left, as an older version wrote them), and
// each family's trap set holds at most the trap's Size sources. The trap
// set is never a ban: promotion is the daemon's Block of the address,
// which puts it into the ban set with the ban's own timeout, independently
// of the trap set's element (the address stays blocked after that element
// expires or is released); Release lets one source out of the trap set
// (and spares it from the trap for SpareFor), never out of the ban set.
//
// Its Blocker methods cover the trap and spared sets as well: Unblock
// removes an address from the ban set, the trap set and the spared set
// (an administrator who unblocks wants a clean slate), List returns the
// ban and trap sets (a trapped source is dropped, so it is listed while
// it is held; a spared one is not blocked, and not listed), Flush removes
// the trap and the spared sets with everything else, and Sync makes the
// ban set agree with the bans it is given while leaving the kernel's own
// trap entries and the spared set alone (never copying them into the ban
// set).
type Trapper interface {
	// SetTrap installs t, or replaces the trap in force, in one kernel
	// transaction where the backend allows it: afterwards exactly t's
	// ports and exemptions are in force. A trap that is not Enabled
	// removes the trap rules and keeps the sources already trapped, for
	// what remains of their hold (and the spared sources, for what
	// remains of SpareFor). The ban rules and sets are prepared too, as
	// by Prepare, and the spared sets with them (of t's Size, keeping
	// their elements and timeouts). An Enabled trap with a Hold of 0 or
	// less is an error.
	SetTrap(ctx context.Context, t Trap) error
	// Release lets addr (an IPv4-mapped address as the IPv4 one) out of
	// its family's trap set and spares it: addr is added to its family's
	// spared set with the timeout SpareFor (refreshed when it is there
	// already), and the trap rules skip a spared source altogether, so
	// that the forged probes of a decoy scan cannot trap it again (see
	// Trap). A ban of addr in the ban set stays. An address not in the
	// trap set is spared all the same; a trap set or spared set that
	// does not exist is no error; a spared set that is full (Trap.Size)
	// leaves addr unspared, but still released, and is no error either
	// (the backend counts it). The removal and the spare are one kernel
	// transaction where the backend allows it (nftables: one batch;
	// ipset: two netlink messages, see the backend), cheap enough for the
	// daemon's blocking thread to call for each source it judges forged.
	Release(ctx context.Context, addr netip.Addr) error
	// TrapOverflows returns how many first hits, since the trap was
	// installed, found the trap set full: dropped, not added. The daemon
	// logs when it grows.
	TrapOverflows(ctx context.Context) (uint64, error)
}
