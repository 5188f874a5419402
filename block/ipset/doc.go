// Package ipset is scanwarden's ipset backend: a block.Blocker (Backend)
// that keeps blocked sources in ipset hash:ip sets with per-element
// timeouts, filled over netlink (github.com/vishvananda/netlink, and
// batched messages of its own), and drops them with one iptables rule per
// set and family, written through block/iptables' Runner (go-iptables). It
// also holds the kernel's first-hit trap (block.Trapper). No ipset or
// other program runs for a block: a block is one netlink message, and the
// kernel lifts it when its timeout runs out.
//
// The sets (ipset list shows them):
//
//	scanwarden-ban4    hash:ip family inet  timeout 0 maxelem 1048576   the bans (Block, Sync)
//	scanwarden-ban6    hash:ip family inet6 timeout 0 maxelem 1048576
//	scanwarden-trap4   hash:ip family inet  timeout 0 maxelem Trap.Size the sources the kernel holds, for Trap.Hold
//	scanwarden-trap6   hash:ip family inet6 timeout 0 maxelem Trap.Size
//	scanwarden-spared4 hash:ip family inet  timeout 0 maxelem Trap.Size released sources the trap skips, for SpareFor
//	scanwarden-spared6 hash:ip family inet6 timeout 0 maxelem Trap.Size
//	scanwarden-never4  hash:net family inet  maxelem 65536               the trap's exemptions (Trap.Exempt)
//	scanwarden-never6  hash:net family inet6 maxelem 65536
//	scanwarden-tcp     bitmap:port range 0-65535                          the trap ports (Trap.TCP)
//	scanwarden-udp     bitmap:port range 0-65535                          (Trap.UDP)
//
// "timeout 0" is the default timeout: an element is permanent unless it
// carries one. A ban's element has the time left until its Until, in whole
// seconds rounded up; a ban without end, and one with more than about
// 24.8 days left (the kernel cuts element timeouts to 2147483 s), is added
// permanent, and userspace expiry (the manager's Unblock) lifts it.
//
// The rules, in iptables (IPv4, the sets ending in 4) and ip6tables
// (IPv6, in 6). The drops are in the raw table (iptables -t raw -S):
//
//	-N SCANWARDEN-SETS
//	-A PREROUTING ! -i lo -m comment --comment scanwarden -j SCANWARDEN-SETS    (inserted as PREROUTING's first rule)
//	-A SCANWARDEN-SETS -m set --match-set scanwarden-ban4 src -m comment --comment scanwarden -j DROP
//	-A SCANWARDEN-SETS -m set --match-set scanwarden-trap4 src -m comment --comment scanwarden -j DROP
//
// and the trap's catch in the filter table (iptables -S), while a trap is
// enabled:
//
//	-N SCANWARDEN-TRAP
//	-A INPUT -m comment --comment scanwarden -j SCANWARDEN-TRAP    (inserted as INPUT's first rule)
//	-A SCANWARDEN-TRAP -i lo -m comment --comment scanwarden -j RETURN
//	-A SCANWARDEN-TRAP -m set --match-set scanwarden-never4 src -m comment --comment scanwarden -j RETURN
//	-A SCANWARDEN-TRAP -m set --match-set scanwarden-spared4 src -m comment --comment scanwarden -j RETURN
//	-A SCANWARDEN-TRAP -p tcp -m tcp ! --tcp-flags ACK ACK -m set --match-set scanwarden-tcp dst
//	       -m comment --comment scanwarden -j SET --add-set scanwarden-trap4 src --exist --timeout Hold
//	-A SCANWARDEN-TRAP -p tcp -m tcp ! --tcp-flags ACK ACK -m set --match-set scanwarden-tcp dst
//	       -m set --match-set scanwarden-trap4 src -m comment --comment scanwarden -j DROP
//	-A SCANWARDEN-TRAP -p tcp -m tcp ! --tcp-flags ACK ACK -m set --match-set scanwarden-tcp dst
//	       -m comment --comment scanwarden-trap-overflow -j DROP
//	(the same three for UDP: -p udp -m set --match-set scanwarden-udp dst ..., with the same Hold)
//	(the same three for a stealth probe to any port: -p tcp -m tcp --tcp-flags SYN,RST,ACK NONE ...)
//	(the same three for an ACK or FIN|ACK of no connection to a trap port,
//	 -p tcp -m tcp --tcp-flags SYN,RST,ACK ACK -m conntrack --ctstate INVALID,NEW
//	 -m set --match-set scanwarden-tcp dst ..., whose second and third rules
//	 end in -j RETURN: the packet goes on to the host, whose reset userspace sees)
//
// and, so that the bans show where `iptables -S` (the filter table) looks,
// one rule per family that matches the ban set, though the drop that
// counts is the raw table's, before it:
//
//	-A INPUT ! -i lo -m set --match-set scanwarden-ban4 src -m comment --comment "scanwarden: bans (dropped in raw PREROUTING first)" -j DROP    (inserted as INPUT's first rule)
//
// raw PREROUTING sees every arriving packet before the routing decision
// and before connection tracking (priority -300; conntrack is at -200,
// DNAT at -100): a banned or held source is dropped whether its packets
// are addressed to this host, to a port it publishes by DNAT or to a host
// behind it, and costs no conntrack entry. Loopback is exempt (the host's
// own traffic). The catch stays in filter INPUT, after DNAT: only a probe
// addressed to this host is caught, never one the host forwards (to a
// host behind it, or to a port published to such a host), which is
// answered there; once caught, the source is dropped at raw PREROUTING,
// forwarded traffic included.
//
// Earlier versions kept SCANWARDEN-SETS in the filter table, jumped to
// from INPUT, with the jump to SCANWARDEN-TRAP as its last rule. Prepare
// and SetTrap put the raw table's chain and jump and the jump from INPUT
// to SCANWARDEN-TRAP in place first, and only then remove the old chain
// and its jump, so that neither a ban nor the catch lapses meanwhile;
// Flush removes both layouts.
//
// So a TCP segment without ACK (SYN, FIN, NULL, XMAS, odd flags) or a UDP
// datagram to a trap port of this host, or a TCP segment with none of SYN,
// ACK and RST to any port of it (no client sends one), from a source that
// is neither on loopback nor exempt nor spared, adds its source to the
// trap set and is dropped (an ACK or FIN|ACK of no connection to a trap
// port adds it too, but goes on to the host), and so is all
// that source sends afterwards, until the element's timeout, Release or
// Unblock. The trap is provisional: Hold is the Trap's (TRAP_HOLD, a few
// seconds) in whole seconds, rounded up, at least 1, so the kernel lets
// a trapped source go by itself after Hold. Within it, the daemon
// promotes a source it confirms to a ban (Block: the ban set, with the
// ban's own timeout, independently of the trap element) and releases one
// it judges forged (Release: two netlink messages, first an add to the
// spared set with the timeout block.SpareFor, a minute, refreshed by each
// Release, then the delete from the trap set; the add goes first so that
// no probe traps the source again in between; the ban set is not
// touched). The trap chain returns for a spared source before its SET
// rules, so the forged probes of a decoy scan, sent in the framed host's
// name to every port for the whole scan, cannot trap that host again
// after its release; its packets still reach userspace, which judges
// them. The spared sets have the trap sets' maxelem: a Release that finds
// one full releases without sparing (counted by SpareOverflows). Unblock
// removes an address from the spared set too; List does not report
// spared addresses; SetTrap keeps the spared sets' elements. SetTrap gives an element with more than Hold left, or
// none (an older version held trapped sources for BAN_EXPIRY), the Hold.
// The trap set's maxelem is a budget of provisional entries: when it is
// full the SET target adds nothing, the packet falls to the overflow
// rule, which drops and counts it without holding its source (TrapOverflows
// reads those counters; the daemon still judges the hit), so a flood of
// forged sources keeps at most Trap.Size addresses trapped, each for Hold
// at most. The chain SCANWARDEN belongs to the iptables backend and is
// never touched.
//
// Every operation is idempotent and safe to repeat after a failure or a
// restart. Prepare (and SetTrap, and the first Block of a family) makes
// the sets, chains and rules exist without losing an element or its
// timer: a set an administrator recreated with another size or without
// timeouts is rebuilt under a temporary name (scanwarden-ban4-tmp) and
// swapped in, elements and remaining timeouts kept; a deleted rule, jump
// or set is put back. Sync makes the ban sets agree with the state file,
// remaining timeouts included (within syncTolerance), in batched netlink
// messages: 100,000 bans load in a fraction of a second. Flush removes the
// rules, chains and sets.
//
// The kernel is reached through setOps, a narrow interface: netlinkSets
// for the kernel, a map in tests. Tests of the rules use iptables.NewFake;
// the kernel tests run in network namespaces of their own.
package ipset
