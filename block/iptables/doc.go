// Package iptables is scanwarden's native firewall backend: a block.Blocker
// (Backend) that drops a scanner's packets with one iptables or ip6tables
// rule per source, in scanwarden's own chain.
//
// What it writes, per address family, in the filter table:
//
//	-N SCANWARDEN
//	-A INPUT -m comment --comment scanwarden -j SCANWARDEN    (inserted as INPUT's first rule)
//	-A SCANWARDEN -s 198.51.100.7/32 -m comment --comment scanwarden -j DROP
//	-A SCANWARDEN -s fd00:77::7/128 -m comment --comment scanwarden -j DROP    (ip6tables)
//
// Every operation is idempotent and safe to repeat after a failure or a
// restart: there is never more than one jump, nor more than one rule per
// address. Rules of the administrator and of other tools, in INPUT or in
// any other chain, are never changed; the one exception is Flush, which
// removes every jump from INPUT to SCANWARDEN (whoever wrote it) because
// the chain cannot be deleted while one exists.
//
// The firewall is reached through Runner, a narrow interface over the
// iptables commands of one family: NewRunner wraps
// github.com/coreos/go-iptables and picks nf_tables or legacy iptables,
// whichever the host's firewall uses (see NewRunner and LegacyInUse);
// NewFake is an in-memory Runner for tests, here and in other packages.
package iptables
