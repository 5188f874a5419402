// Package nftables is scanwarden's set backend: a block.Blocker and
// block.Trapper (Backend) that drops
// blocked sources through nftables sets with per-element timeouts, and
// holds the kernel's first-hit trap. It talks netlink through
// github.com/google/nftables (no nft binary); a block is one netlink
// message, and the kernel lifts a ban when its timeout runs out.
//
// What it writes, in one table of its own (`nft list table inet
// scanwarden` shows it so):
//
//	table inet scanwarden {
//		counter trap_overflow { }              # probes that found the trap set full
//		set ban4 { type ipv4_addr; size 1048576; flags timeout; }        # userspace bans
//		set ban6 { type ipv6_addr; size 1048576; flags timeout; }
//		set trap4 { type ipv4_addr; size TRAP_SET_SIZE; flags dynamic,timeout; }   # held by the kernel, for Hold
//		set trap6 { type ipv6_addr; size TRAP_SET_SIZE; flags dynamic,timeout; }
//		set spared4 { type ipv4_addr; size TRAP_SET_SIZE; flags timeout; }   # released, skipped by the trap for SpareFor
//		set spared6 { type ipv6_addr; size TRAP_SET_SIZE; flags timeout; }
//		set never4 { type ipv4_addr; flags interval; }   # the trap's exemptions
//		set never6 { type ipv6_addr; flags interval; }
//		set tcp_traps { type inet_service; }            # the trap ports
//		set udp_traps { type inet_service; }
//
//		chain prerouting {
//			type filter hook prerouting priority raw; policy accept;
//			iif "lo" accept
//			ip saddr @ban4 drop
//			ip6 saddr @ban6 drop
//			ip saddr @trap4 drop
//			ip6 saddr @trap6 drop
//		}
//		chain input {
//			type filter hook input priority filter - 10; policy accept;
//			jump trap                     # only while a trap is Enabled
//		}
//		chain trap {
//			iifname "lo" return
//			ip saddr @never4 return
//			ip6 saddr @never6 return
//			ip saddr @spared4 return
//			ip6 saddr @spared6 return
//			meta nfproto ipv4 tcp flags & ack == 0 tcp dport @tcp_traps add @trap4 { ip saddr timeout Hold } drop
//			meta nfproto ipv4 tcp flags & ack == 0 tcp dport @tcp_traps counter name "trap_overflow" drop
//			meta nfproto ipv4 udp dport @udp_traps add @trap4 { ip saddr timeout Hold } drop
//			meta nfproto ipv4 udp dport @udp_traps counter name "trap_overflow" drop
//			meta nfproto ipv4 tcp flags & (syn|rst|ack) == 0 add @trap4 { ip saddr timeout Hold } drop
//			meta nfproto ipv4 tcp flags & (syn|rst|ack) == 0 counter name "trap_overflow" drop
//			meta nfproto ipv4 tcp flags & (syn|rst|ack) == ack tcp dport @tcp_traps ct state invalid,new add @trap4 { ip saddr timeout Hold } return
//			meta nfproto ipv4 tcp flags & (syn|rst|ack) == ack tcp dport @tcp_traps ct state invalid,new counter name "trap_overflow" return
//			... the same eight for ip6 and trap6
//		}
//	}
//
// The bans and the sources the trap holds are dropped at the prerouting
// hook, priority raw (-300): before the routing decision, so whether
// their packets are addressed to this host or forwarded (a router, ports
// a container host publishes, bridged VMs when br_netfilter passes
// bridged frames to the IP hooks), and before connection tracking (-200)
// and DNAT (-100), so that they cost no conntrack entry. Loopback is
// accepted there (the host's own traffic, from addresses never blocked).
// The trap's catch, which adds a first hit's source to the trap set, is
// reached from the input hook instead (filter - 10, after DNAT): only a
// probe addressed to this host is caught, never one forwarded to a host
// behind it or to a port published to such a host, which is answered
// there. (A FIN, NULL or XMAS probe to a published port is no new
// connection to conntrack, so DNAT leaves it addressed to this host,
// where it is caught like any probe of its own ports.)
//
// What the catch takes: a TCP segment without ACK (SYN, FIN, NULL, XMAS,
// odd flags) or a UDP datagram to a trap port; a TCP segment with none of
// SYN, ACK and RST (FIN, NULL, XMAS, odd flags) to any port, since no
// client's stack sends one; and a segment whose flags are ACK or FIN|ACK
// (PSH, URG, ECE, CWR aside) to a trap port that belongs to no connection
// (ct state new, conntrack's loose pickup, or invalid; the input hook is
// after conntrack), as nmap's ACK and Maimon scans send. That last one
// holds its source but returns instead of dropping: the packet reaches
// the host, whose reset is what userspace sees of it (its capture filter
// passes no pure ACK), and everything the source sends afterwards is
// dropped at prerouting. The ct match makes the kernel track connections
// in the namespace while the trap is on.
//
// Earlier versions dropped the bans in the input chain itself. Prepare
// (and SetTrap, Block, Sync) makes such a table over in one transaction,
// which the kernel applies whole: the prerouting chain and its rules are
// created and the input chain emptied of its drops and given the jump
// (kept as found) in the same commit, so no banned source is let through
// meanwhile, and no set or element is touched.
//
// Every rule carries the comment "scanwarden:NAME#HASH" (the hash of its
// expressions), by which Prepare tells a rule that is as it must be from
// one that was deleted, changed or written by another version.
//
// The trap is provisional. Hold is the Trap's (TRAP_HOLD, a few seconds),
// in whole milliseconds, at least a second: every element a trap rule
// adds has it, so the kernel lets a trapped source go by itself after
// Hold. Within it, the daemon promotes a source it confirms to a ban
// (Block: ban4 or ban6, with the ban's own timeout, independently of the
// trap element) and releases one it judges forged (Release: an element
// get, then one batch that deletes it from trap4 or trap6 and adds it to
// spared4 or spared6 with the timeout block.SpareFor, a minute, refreshed
// by each Release; the ban set is not touched). The trap chain returns for a spared
// source before its trap rules, so the forged probes of a decoy scan,
// sent in the framed host's name to every port for the whole scan,
// cannot trap that host again after its release; its packets still reach
// userspace, which judges them. The spared sets have the trap sets' size:
// a Release that finds one full releases without sparing (counted by
// SpareOverflows). Unblock removes an address from the spared set too;
// List does not report spared addresses (they are not blocked); SetTrap
// keeps the spared sets' elements. SetTrap cuts an element with more than
// Hold left (an older version held trapped sources for BAN_EXPIRY) down
// to Hold. The trap sets' size is a budget of
// provisional entries: a trap rule whose add fails because the set is
// full breaks off, so the next rule counts the packet and drops it (or,
// for an ACK outside any connection, lets it through) without holding
// its source; a flood of forged sources keeps at most
// TRAP_SET_SIZE addresses trapped, each for Hold at most, and the daemon
// logs the counter's growth (and still judges each hit). A ban's timeout
// of 0 (BAN_EXPIRY 0, or more than a century) writes no timeout: the ban
// element stays until it is unblocked.
//
// IPv4-mapped IPv6 addresses are IPv4 addresses here. Every tunable is in
// tunables.go, with the reason for its value. Sets are read over a netlink
// socket of the package's own (see dump.go), with the large receive buffer
// that makes the kernel's dump of a big set fast; everything else goes
// through github.com/google/nftables, writes in transactions of at most
// msgsPerBatch messages of elemsPerMsg elements.
//
// Nothing outside the table is ever touched: Flush deletes the table and
// that is all of it.
package nftables
