package main

import (
	"net/netip"
	"time"
)

// Tunables: every number fwdbench measures with, and why it has its value.
const (
	// defaultBans is the figure: the per-packet cost and the load
	// time are measured with 100,000 bans.
	defaultBans = 100_000
	// defaultDuration is one measuring run: at the 200,000-250,000
	// packets a second one core pushes through veth here, a quarter of a
	// million packets, so the per-packet CPU time averages over a hundred
	// scheduler ticks.
	defaultDuration = time.Second
	// defaultRounds: each round measures every configuration once, the
	// empty and the loaded variant of a backend back to back, each on
	// both paths. Other jobs on the two cores only ever add to a run's
	// cost (cache misses, a hypervisor's steal), so the best of several
	// short runs is the figure, as bench.sh takes the best of its
	// replays; five rounds make it robust, and 7 configurations x 2
	// paths x 5 rounds stay within three minutes with the 100,000-rule
	// iptables loads.
	defaultRounds = 5
	// defaultBanRuns is how many bans `fwdbench bans` makes through the
	// iptables backend: each is two iptables runs (~10 ms), so a few
	// hundred give a stable rate in a few seconds.
	defaultBanRuns = 300

	// batch is the number of datagrams per sendmmsg/recvmmsg call: it
	// amortises the syscall entry so that the stack and the firewall,
	// not the system call, dominate the per-packet cost.
	batch = 64
	// payloadLen makes a 66-byte IPv6 packet (40 + 8 + 18), an 80-byte
	// Ethernet frame: small packets, where a per-packet cost shows most.
	payloadLen = 18
	// sinkRcvBuf is the sink's receive buffer (SO_RCVBUFFORCE): large
	// enough to absorb a scheduling hiccup of the sink's core for a few
	// milliseconds at full rate.
	sinkRcvBuf = 16 << 20
	// sinkPoll is the sink's SO_RCVTIMEO: how soon it notices the end of
	// a run when no packet comes.
	sinkPoll = 100 * time.Millisecond
	// settle is how long after the generator stops the sink may still
	// drain its buffer before its count is read.
	settle = 200 * time.Millisecond
	// quiesce is the pause after a structure is removed: the kernel frees
	// a removed table or 100,000 rules after an RCU grace period, partly
	// in softirq context on the generator's core, which would be charged
	// to the next run; a second lets that finish.
	quiesce = time.Second
	// warmupTimeout bounds the wait for the first packet to reach the
	// sink before a run (the path is static, so it is normally at once).
	warmupTimeout = 3 * time.Second
	// verifyPackets is how many datagrams each source sends when a load
	// is checked to drop the banned source and pass the other.
	verifyPackets = 20
	// cmdTimeout bounds every command fwdbench runs (the 100,000-rule
	// iptables-restore takes a few seconds, the backend's flush of them
	// as long).
	cmdTimeout = 5 * time.Minute

	// genCPU and sinkCPU: the generator is pinned to one core and the
	// sink to the other. veth delivers in the sender's context (netif_rx
	// and the softirq run at the end of the send), so the victim's whole
	// receive path, firewall included, runs on genCPU and is charged to
	// the generator's thread.
	genCPU  = 0
	sinkCPU = 1

	// sinkPort and verifyPort: the sink's UDP ports in the victim.
	sinkPort   = 9
	verifyPort = 10

	// banTimeout is how long the bans loaded last, BAN_EXPIRY_TCP's
	// default (24 h): the set backends write it as each element's
	// timeout, as they do for the daemon's bans.
	banTimeout = 24 * time.Hour
)

// Names of what fwdbench creates in its namespaces (the firewall
// structures are the backends' own).
const (
	nsPrefix     = "swfwd-"
	ifName       = "veth0" // the generator's and the far one's, and the victim's towards the generator
	farIfName    = "veth1" // the victim's towards the far namespace
	genMAC       = "02:00:00:00:f0:31"
	victimMAC    = "02:00:00:00:f0:30"
	victimFarMAC = "02:00:00:00:f0:3f"
	farMAC       = "02:00:00:00:f0:40"
	backendNone  = "none"
)

// Addresses: in the lab's fd00:77::/64, the generator's own (never
// banned), its banned second address (the last element of every load, so
// the check that it is dropped walks the whole of an iptables chain), the
// victim's, and the base of the banned range fd00:77::1:0:0:0 onwards,
// which contains none of the others; behind the victim, in fd00:78::/64,
// the victim's address there and the far namespace's, which the
// forwarded datagrams go to.
var (
	labNet        = netip.MustParsePrefix("fd00:77::/64")
	genAddr       = netip.MustParseAddr("fd00:77::31")
	bannedAddr    = netip.MustParseAddr("fd00:77::32")
	victimAddr    = netip.MustParseAddr("fd00:77::30")
	banBase       = netip.MustParseAddr("fd00:77::1:0:0:0")
	farNet        = netip.MustParsePrefix("fd00:78::/64")
	victimFarAddr = netip.MustParseAddr("fd00:78::30")
	farAddr       = netip.MustParseAddr("fd00:78::40")
	// banBase4 is where `fwdbench bans` starts its IPv4 bans: rule
	// contents only, no traffic; at most 254 of them fit in the lab's
	// 198.51.100.0/24.
	banBase4 = netip.MustParseAddr("198.51.100.1")
)
