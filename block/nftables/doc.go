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
//		set trap4 { type ipv4_addr; size TRAP_SET_SIZE; flags dynamic,timeout; }   # filled by the kernel
//		set trap6 { type ipv6_addr; size TRAP_SET_SIZE; flags dynamic,timeout; }
//		set never4 { type ipv4_addr; flags interval; }   # the trap's exemptions
//		set never6 { type ipv6_addr; flags interval; }
//		set tcp_traps { type inet_service; }            # the trap ports
//		set udp_traps { type inet_service; }
//
//		chain input {
//			type filter hook input priority filter - 10; policy accept;
//			ip saddr @ban4 drop
//			ip6 saddr @ban6 drop
//			ip saddr @trap4 drop
//			ip6 saddr @trap6 drop
//			jump trap                     # only while a trap is Enabled
//		}
//		chain trap {
//			iifname "lo" return
//			ip saddr @never4 return
//			ip6 saddr @never6 return
//			meta nfproto ipv4 tcp flags & ack == 0 tcp dport @tcp_traps add @trap4 { ip saddr timeout TimeoutTCP } drop
//			meta nfproto ipv4 tcp flags & ack == 0 tcp dport @tcp_traps counter name "trap_overflow" drop
//			meta nfproto ipv4 udp dport @udp_traps add @trap4 { ip saddr timeout TimeoutUDP } drop
//			meta nfproto ipv4 udp dport @udp_traps counter name "trap_overflow" drop
//			... the same four for ip6 and trap6
//		}
//	}
//
// Every rule carries the comment "scanwarden:NAME#HASH" (the hash of its
// expressions), by which Prepare tells a rule that is as it must be from
// one that was deleted, changed or written by another version. A trap
// rule whose add fails because the set is full breaks off, so the next
// rule counts the packet and drops it: a flood of forged sources costs at
// most TRAP_SET_SIZE elements, and the daemon logs the counter's growth.
// A timeout of 0 (BAN_EXPIRY 0, or more than a century) writes no
// timeout: the element stays until it is unblocked.
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
