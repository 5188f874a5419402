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
	// a host that answers closed ports (three RSTs in 30 s) or when it
	// touches a trap port; against a host that drops unanswered probes
	// (twelve of them take 165 s) it needs DETECT_WINDOW="600".
	DefaultWindow = 60 * time.Second

	// DefaultThreshold is the score at which a source is reported. The
	// score is the log-likelihood ratio of a sequential test in the spirit
	// of TRW (Jung, Paxson, Berger, Balakrishnan 2004): a benign client's
	// first contact with a port succeeds with probability about 0.8, a
	// scanner's about 0.2, so each closed answer multiplies the odds that
	// the source scans by 4 and each answered connection divides them by
	// 4. With WeightClosed = 4 units of ln(4)/4, a score of 12 is odds of
	// 4^3 = 64 (TRW's detection and false-positive rates of 0.96 and 0.015):
	// three closed ports, or two probes of a kind no client sends, or
	// twelve ports that never answered. scanlogd uses 21 with weights 3
	// and 1 over 3 s; here the host's own answers back the evidence, and a
	// client's answered connections take some of it back (WeightOpen).
	DefaultThreshold = 12

	// DefaultMaxSources bounds the number of sources tracked at once, and
	// that of first sights (sources seen once so far, firsts.go) beside
	// them. The tables are allocated once (about 0.9 KiB a source in all,
	// see source and firstSight), so a flood of forged sources costs
	// constant memory: a source that has shown little is evicted to make
	// room for a new one. 16384 take about 15 MiB.
	DefaultMaxSources = 16384

	// hugePage is the size of a transparent huge page on amd64 and arm64
	// (with 4 KiB pages), as the source table is laid out for them when
	// Config.HugePages asks (see makeTable).
	hugePage = 2 << 20

	// DefaultScanTrigger is PortSentry's SCAN_TRIGGER default: react on the
	// first hit on a watched (trap) port.
	DefaultScanTrigger = 0
)

// Weights of one distinct target (destination, protocol, port) in a
// source's score, in units of ln(4)/4 of the likelihood ratio (see
// DefaultThreshold).
const (
	// WeightUnanswered: a SYN or UDP datagram that got no answer (yet). A
	// filtered port looks like this, and so does a slow server, so it
	// weighs least.
	WeightUnanswered = 1
	// WeightClosed: the host answered "closed" (RST, ICMP unreachable), or
	// a trap port was hit. Clients seldom go looking for closed ports: in
	// TRW's terms a failed first contact, odds times 4.
	WeightClosed = 4
	// WeightStealth: a probe of a kind no client's TCP stack sends (FIN,
	// NULL, XMAS or odd flags without ACK), whatever the host answered.
	// One is half a decision (a stray packet of a broken middlebox must
	// not block its source); two are a scan, which is what nmap -O sends
	// (NULL, SYN+FIN+PSH+URG and XMAS to two ports) even against a host
	// that answers nothing.
	WeightStealth = 6
	// WeightHalfOpen: a SYN that was answered by the service and then reset
	// by the source instead of completing (nmap -sS on an open port).
	WeightHalfOpen = 1
	// WeightOpen is what one connection the service answered (SYN-ACK,
	// UDP reply), to which nothing odd was sent, takes off the score: a
	// successful first contact, odds divided by 4. Only maxOpenCredit of
	// them count, so that a scanner cannot buy probes by connecting to
	// open ports first, while a busy client that mistypes ports now and
	// then (one, two) stays well below the threshold.
	WeightOpen = 4
	// maxOpenCredit bounds the answered connections that count (see
	// WeightOpen): a client with two of them needs five closed ports in
	// the window to be reported, a scanner that opened two first pays two
	// more probes.
	maxOpenCredit = 2
)

// What the engine learns of other hosts' services (services.go).
const (
	// trapAnswerWait is how long a SYN or datagram to a trap port of a
	// host whose bound ports the engine cannot read waits for that host's
	// answer before it counts as a trap hit. A host behind the router
	// answers in well under a millisecond on a LAN and within tens of
	// milliseconds across a site; a closed answer ends the wait at once.
	trapAnswerWait = 500 * time.Millisecond
	// serviceSlots is how many (host, protocol, port) services are
	// remembered (4096 slots of 16 bytes, 64 KiB), direct-mapped.
	serviceSlots = 1 << 12
	// serviceLife is how long a service that answered is remembered
	// without answering again: services seldom move, and one that closed
	// is forgotten on its first closed answer anyway.
	serviceLife = time.Hour
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
	// evictSample is how many sources, under a clock hand, are looked at
	// when the table is full; a source of one plain probe goes first,
	// else the one with the lowest score (see rankKey). A real scanner
	// has sent more than a forged flood's one probe, or hit a trap port,
	// so it survives a flood even when it probes slowly and the host
	// answers the flood.
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
