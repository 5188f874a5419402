// Package iptables is scanwarden's native firewall backend: a block.Blocker
// (Backend) that drops a scanner's packets with one iptables or ip6tables
// rule per source, in scanwarden's own chain.
//
// What it writes, per address family, in the raw table (iptables -t raw
// -S, ip6tables -t raw -S):
//
//	-N SCANWARDEN
//	-A PREROUTING ! -i lo -m comment --comment scanwarden -j SCANWARDEN    (inserted as PREROUTING's first rule)
//	-A SCANWARDEN -s 198.51.100.7/32 -m comment --comment scanwarden -j DROP
//	-A SCANWARDEN -s fd00:77::7/128 -m comment --comment scanwarden -j DROP    (ip6tables)
//
// raw PREROUTING sees every arriving packet before the routing decision
// and before connection tracking (priority -300; conntrack is at -200,
// DNAT at -100): a blocked source is dropped whether it talks to this
// host, to a DNAT-published port or to a host behind it, and costs no
// conntrack entry. Loopback is exempt (the host's own traffic).
//
// Earlier versions kept SCANWARDEN in the filter table, jumped to from
// INPUT. The first Block, Prepare or Sync moves scanwarden's rules from
// there into the raw chain and only then removes the old chain and its
// jumps, so that no blocked source gets through meanwhile; Flush removes
// both layouts.
//
// Every operation is idempotent and safe to repeat after a failure or a
// restart: there is never more than one jump, nor more than one rule per
// address. Rules of the administrator and of other tools, in PREROUTING,
// INPUT or in any other chain, are never changed; the one exception is
// the removal of every jump to SCANWARDEN from raw PREROUTING and filter
// INPUT (whoever wrote it) by Flush and by the move, because a chain
// cannot be deleted while one exists.
//
// The firewall is reached through Runner, a narrow interface over the
// iptables commands of one family: NewRunner wraps
// github.com/coreos/go-iptables and picks nf_tables or legacy iptables,
// whichever the host's firewall uses (see NewRunner and LegacyInUse);
// NewFake is an in-memory Runner for tests, here and in other packages.
package iptables
