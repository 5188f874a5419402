package nftables

import (
	"time"

	"github.com/scanwarden/scanwarden/block"
)

// Every tunable of the backend, with the reason for its value.
const (
	// DefaultTable is the inet table the backend owns when Options.Table
	// is empty.
	DefaultTable = "scanwarden"

	// banSetSize bounds ban4 and ban6. Userspace bans are rate limited
	// (BLOCK_RATE_LIMIT, 60 a minute by default: 86,400 a day), so a
	// million is never reached in practice; it is there so that no bug or
	// flood can grow a set without limit. The kernel sizes the hash table
	// by the elements actually present, so a large bound costs nothing.
	banSetSize = 1 << 20

	// defaultTrapSize is the trap set bound used when no Trap has said
	// otherwise (Prepare on a table without trap sets): TRAP_SET_SIZE's
	// default, a budget of 256 provisional entries. A trapped source is
	// held for the trap's Hold (seconds) only, so a few hundred covers
	// the first hits of every real scan a host sees at once, while a
	// forged flood can keep no more than that many addresses trapped.
	defaultTrapSize = block.DefaultTrapSize

	// holdSlack is how far a trap element's remaining timeout may exceed
	// the trap's Hold before SetTrap cuts it down: the kernel keeps
	// timeouts in jiffies (10 ms at HZ=100), so an element the trap rule
	// just added can read back a jiffy above Hold; one left by an older
	// version (BAN_EXPIRY, hours) is far above.
	holdSlack = 50 * time.Millisecond

	// elemsPerMsg is how many set elements go into one netlink message.
	// The element list is one nested attribute, whose length is 16 bits:
	// github.com/google/nftables v0.3.0 fails above about 2,300 IPv4
	// elements (28 bytes each with a timeout; IPv6 ones take 40). A
	// thousand keeps every message under 40 KiB, with a wide margin.
	elemsPerMsg = 1000

	// msgsPerBatch is how many element messages go into one transaction
	// (one sendmsg). A batch must fit the netlink socket's send buffer
	// (net.core.wmem_default, 208 KiB on Linux by default) and the
	// kernel's error replies, which quote a failed message whole, must
	// fit its receive buffer (same default): four 40 KiB messages leave
	// room for the small rule and set messages of Prepare beside them.
	msgsPerBatch = 4

	// timeoutTolerance is how far an element's remaining timeout in the
	// kernel may be from the state's before Sync replaces the element.
	// Timeouts tick in jiffies and a Sync takes some time between reading
	// the set and writing it; two seconds is far above both and far below
	// any ban's length (at least a second, usually hours).
	timeoutTolerance = 2 * time.Second

	// minTimeout is the shortest element timeout written: a ban with less
	// than this left still gets it, so that it is never written already
	// expired (the kernel would refuse a zero timeout as "none").
	minTimeout = time.Second

	// maxTimeout is the longest element timeout written; a ban that runs
	// longer is written without a timeout (the Manager lifts it at its
	// end in any case). The kernel refuses timeouts beyond about 584
	// years (2^64 ns); a century is "never" for a firewall.
	maxTimeout = 100 * 365 * 24 * time.Hour

	// preroutingPriority is the priority of the prerouting base chain,
	// which drops the banned and held sources: raw (-300), the earliest
	// a filter chain of the prerouting hook runs after defragmentation
	// (-400), so before connection tracking (-200, which then spends no
	// entry on them) and before DNAT (-100, so that what the host
	// forwards or publishes to a host behind it is dropped as well as
	// what is addressed to it).
	preroutingPriority = -300

	// inputPriority is the priority of the input base chain, which holds
	// the trap's catch: filter - 10, after DNAT (only a probe addressed
	// to this host is caught; one forwarded to a host behind it is
	// answered there) and before the filter-priority chains of
	// iptables-nft, firewalld or an administrator's own table, which could
	// accept the probe first.
	inputPriority = -10

	// loopbackIndex is the interface index of lo, which the prerouting
	// chain accepts: the kernel gives loopback this index in every
	// network namespace (LOOPBACK_IFINDEX), so that the rule compares 4
	// bytes instead of an interface name.
	loopbackIndex = 1

	// changeAttempts bounds how often an operation that found the set
	// changed under it (an element expired between the read and the
	// write: ENOENT aborts the whole transaction) is started over.
	changeAttempts = 3

	// dumpAttempts bounds how often a set is read again when a read was
	// inconsistent (see Backend.elements), and dumpRetryPause is the
	// pause before the first retry, growing linearly: the kernel resizes
	// a hash table within milliseconds, so 20+40+60+80 ms is plenty.
	dumpAttempts   = 5
	dumpRetryPause = 20 * time.Millisecond

	// dumpBufSize is the receive buffer offered to the kernel when
	// reading a set: at least the largest dump message it makes
	// (SKB_WITH_OVERHEAD(32768)), so that it makes only such (see
	// dump.go).
	dumpBufSize = 64 << 10

	// dumpTimeout bounds the wait for each message of a set read: a
	// kernel that stops answering must not hang the daemon, and a
	// 32 KiB message never takes more than milliseconds.
	dumpTimeout = 30 * time.Second

	// spareTimeout is the timeout of the element Release adds to spared4
	// or spared6: block.SpareFor (see there for the reason), a whole
	// number of milliseconds as the kernel counts them.
	spareTimeout = block.SpareFor

	// spareFullPause is how long Release tries no spare after the kernel
	// said a spared set was full when its own account said otherwise (an
	// earlier run's spares still in it): a refused batch costs the kernel
	// milliseconds, and a flood would pay them per forged source.
	spareFullPause = time.Second

	// addTimeout bounds the wait for the answer to Block's add: the
	// kernel answers a batch before sendmsg returns, so a second means it
	// never will, and Block may run on the capture thread, which must not
	// hang on it.
	addTimeout = time.Second
)
