package ipset

import (
	"time"

	"github.com/scanwarden/scanwarden/block"
)

// Every tunable of the ipset backend, with the reason for its value.
const (
	// banSetSize is the maxelem of each family's ban set: 1<<20 sources,
	// ten times the 100,000 bans the backend is sized for, at about 100
	// bytes of kernel memory each (some 100 MiB when full, and nothing
	// until used: hash sets grow as they fill).
	banSetSize = 1 << 20
	// neverSetSize is the maxelem of each family's exemption set: the
	// ignore file, the host's addresses, gateways and resolvers are tens
	// of networks, rarely thousands; 65536 (ipset's default) is far above.
	neverSetSize = 65536
	// defaultTrapSize is the trap set's maxelem when a Trap gives no Size
	// or the trap set must be made before SetTrap: TRAP_SET_SIZE's
	// default, a budget of 256 provisional entries. A trapped source is
	// held for the trap's Hold (seconds) only, so a few hundred covers
	// the first hits of every real scan a host sees at once, while a
	// forged flood can keep no more than that many addresses trapped.
	defaultTrapSize = block.DefaultTrapSize
	// spareTimeout is the timeout of the element Release adds to the
	// spared set: block.SpareFor (see there for the reason), written in
	// whole seconds, rounded up (holdSeconds).
	spareTimeout = block.SpareFor
	// maxElemTimeout is the longest element timeout the kernel keeps, in
	// seconds: IPSET_MAX_TIMEOUT, (UINT_MAX>>1)/MSEC_PER_SEC, about 24.8
	// days; a longer one is silently cut to it. A longer ban is added
	// permanent instead, and lifted by userspace expiry (the manager's
	// Unblock), so that it never ends early.
	maxElemTimeout = 2147483
	// syncTolerance is how far the kernel's remaining timeout of a ban may
	// be from the state's before Sync replaces the element: the kernel
	// counts whole seconds and rounds down, Block rounds up, and a resync
	// takes a moment; anything beyond a few seconds is a real difference
	// (an element added by hand, a clock change, a ban made longer).
	syncTolerance = 10 * time.Second
	// maxBatchBytes bounds the elements of one batched netlink message
	// (the nested IPSET_ATTR_ADT attribute, whose length is 16 bits): at
	// 24 to 48 bytes an element, some 1,300 to 2,700 elements a message,
	// so that Sync loads 100,000 bans in under a hundred messages instead
	// of 100,000.
	maxBatchBytes = 65535 - 1024
	// netlinkTimeout bounds every send to and receive from the kernel: it
	// answers within microseconds, so a wait this long is a hung socket,
	// to be reported rather than to hang the daemon.
	netlinkTimeout = 30 * time.Second
)
