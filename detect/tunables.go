package detect

import "time"

// Every tunable of the engine is named here, with why it has its value
// (scanlogd's habit). The ones an administrator may want to change are also
// config keys (see etc/scanwarden.conf); the others are fixed by design.

const (
	// DefaultWindow is how far back the per-source sliding window reaches.
	// nmap -T2 ("polite") waits 0.4 s between probes, so a minute holds
	// about 150 of its probes, far more than the threshold needs; a benign
	// client that touches a few closed ports in a minute stays well below
	// it. nmap -T1 ("sneaky", 15 s between probes) is caught by default on
	// a host that answers closed ports (four RSTs in 45 s) or when it
	// touches a trap port; against a host that drops unanswered probes
	// (twelve of them take 165 s) it needs DETECT_WINDOW="600".
	DefaultWindow = 60 * time.Second

	// DefaultThreshold is the score at which a source is reported: four
	// closed, trap or stealth-probed ports (WeightClosed each), or twelve
	// ports that never answered (WeightUnanswered). scanlogd uses 21 with
	// weights 3 and 1 over 3 s; here the host's own answers back the
	// evidence, so a lower bar is safe, and it lets a sweep of one port
	// over four hosts count as a scan.
	DefaultThreshold = 12

	// DefaultMaxSources bounds the number of sources tracked at once. The
	// table is allocated once (about 0.8 KiB a source, see source), so a
	// flood of forged sources costs constant memory: a source that has
	// shown little is evicted to make room for a new one. 16384 sources
	// take about 13 MiB.
	DefaultMaxSources = 16384

	// DefaultScanTrigger is PortSentry's SCAN_TRIGGER default: react on the
	// first hit on a watched (trap) port.
	DefaultScanTrigger = 0
)

// Weights of one distinct target (destination, protocol, port) in a
// source's score.
const (
	// WeightUnanswered: a SYN or UDP datagram that got no answer (yet). A
	// filtered port looks like this, and so does a slow server, so it
	// weighs least.
	WeightUnanswered = 1
	// WeightClosed: the host answered "closed" (RST, ICMP unreachable), or
	// the probe was a kind no legitimate client sends (FIN, NULL, XMAS or
	// odd flags without ACK), or it hit a trap port. Clients do not go
	// looking for closed ports, so each of these is strong evidence.
	WeightClosed = 3
	// WeightHalfOpen: a SYN that was answered by the service and then reset
	// by the source instead of completing (nmap -sS on an open port).
	WeightHalfOpen = 1
	// An open port (the service answered and nothing odd followed) weighs
	// nothing: legitimate connections never count.
)

const (
	// maxTargets is how many distinct targets one source keeps. It must
	// hold a full threshold's worth of the lightest evidence
	// (DefaultThreshold / WeightUnanswered = 12) with room to spare for a
	// raised DETECT_THRESHOLD; beyond it the oldest target makes room.
	maxTargets = 32
	// maxDsts is how many distinct destination addresses a source keeps
	// for the alert's dst list; a sweep over more is reported by its
	// first maxDsts hosts (the score still counts them all).
	maxDsts = 8
	// evictSample is how many of the least recently seen sources are
	// looked at when the table is full; the one with the lowest score
	// goes. A real scanner has a score well above a forged flood's one
	// probe, so it survives a flood even when it probes slowly.
	evictSample = 8
	// minMaxSources is the smallest table the engine accepts.
	minMaxSources = 64
)

// The tables of Origins: what the traffic teaches about whether a source
// is real.
const (
	// handshakeSlots is how many SYN-ACKs of protected hosts are kept
	// awaiting the acknowledgment that proves their client real (16384
	// slots of 24 bytes, 384 KiB). Direct-mapped: a flood of handshakes
	// only delays learning, it never teaches anything false.
	handshakeSlots = 1 << 14
	// handshakeLife is how long a SYN-ACK waits for its acknowledgment:
	// the filter passes a connection's FIN or RST, not its ACKs, so the
	// proof comes when it closes; an hour covers the short connections
	// most clients make.
	handshakeLife = time.Hour
	// ackWindow bounds how far past the SYN-ACK's sequence number an
	// acknowledgment may reach (a quarter of the sequence space, as TCP's
	// own checks allow): a blind forger hits it with probability 1/4 per
	// try at best and must also hit a connection of the moment.
	ackWindow = 1 << 30
	// knownSlots is how many addresses Origins remembers (16384 entries
	// of about 64 bytes, 1 MiB), in buckets of knownWays; the entry
	// learned longest ago makes room.
	knownSlots = 1 << 14
	knownWays  = 4
	// knownLife is how long a learned hop count or link-layer address
	// counts: routes and DHCP leases change, and a stale binding must
	// not judge a host that has moved.
	knownLife = time.Hour
	// knownHops is how many distinct hop counts an address's validated
	// traffic may show and still be evidence (two paths of a multipath
	// route); an address seen at more gives none.
	knownHops = 2
	// stepSlots is how many link-layer addresses the decoy watch follows
	// at once (1024 groups of about 270 bytes).
	stepSlots = 1 << 10
	// stepMembers is how many sources of one link-layer address it
	// follows; nmap -D allows up to 128 decoys, but a decoy group shows
	// in any eight of them.
	stepMembers = 8
	// stepGap is how close two probes to one port from one link-layer
	// address must be to be in step: nmap sends a probe's decoy copies
	// back to back, microseconds apart.
	stepGap = 5 * time.Millisecond
	// stepLife is how long steps count, the engine's default window.
	stepLife = DefaultWindow
	// minSteps is how many steps make two sources a decoy pair: a router
	// forwarding two unrelated clients' connections to one port within
	// stepGap does so now and then, in step on three ports hardly ever.
	minSteps = 3
)
