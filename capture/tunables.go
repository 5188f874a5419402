package capture

import "time"

// Every tunable of the capture layer is named here, with why it has its
// value (scanlogd's habit). None of them changes what a probe means; they
// only bound memory and latency.

// Fragment reassembly.
const (
	// FragSlots is how many fragmented datagrams are reassembled at once.
	// nmap -f sends each probe as three or four 8-byte fragments back to
	// back, so a scan in flight needs a handful of slots; 256 leaves room
	// for parallel scans and for the fragmented UDP of legitimate traffic
	// (large DNS answers, NFS), while a flood of never-completed fragments
	// costs a fixed 256 slots of 136 bytes (35 KiB) per decoder: when every
	// slot is busy the oldest one is evicted.
	FragSlots = 256

	// FragKeep is how many leading bytes of each fragmented datagram's
	// transport payload are reassembled. The classifier needs only the
	// transport header: 60 bytes is the largest TCP header (data offset 15)
	// and UDP's is 8, so 64 covers both; the rest of the datagram is never
	// stored. It must stay at most 64: a slot tracks the bytes it holds in
	// one 64-bit mask.
	FragKeep = 64

	// FragTimeout is how long an incomplete datagram waits for its missing
	// fragments, measured on packet timestamps from its first fragment. It
	// is Linux's default net.ipv4.ipfrag_time (30 s): a datagram the host
	// itself would still reassemble is one we must still recognise, and
	// one the host has given up on is no longer a probe.
	FragTimeout = 30 * time.Second
)

// Offline files.
const (
	// FileBufferSize is the read buffer behind an offline capture file.
	// One MiB turns a replay into a few hundred large reads per second
	// instead of one read per packet, and holds any record up to
	// MaxRecordLen whole, so packets are decoded in place without a copy.
	FileBufferSize = 1 << 20

	// MaxRecordLen is the largest packet record accepted in a pcap file.
	// It is libpcap's own limit (MAXIMUM_SNAPLEN, 262144 bytes): tcpdump
	// refuses larger records too, and a length beyond it almost always
	// means a corrupt file rather than a real packet.
	MaxRecordLen = 262144
)

// Live capture defaults (LiveOptions fields left zero take these).
const (
	// DefaultSnapLen is how much of each packet the kernel copies to us.
	// The deepest header chain we read is an ICMPv6 error on Ethernet with
	// a VLAN tag: 18 (Ethernet + 802.1Q) + 40 (IPv6) + 8 (one extension
	// header) + 8 (ICMPv6) + 40 (quoted IPv6) + 8 (quoted extension) + 60
	// (quoted TCP header) = 182 bytes; 256 leaves room for a second
	// extension header and SLL2's 20-byte header while keeping the kernel
	// buffer for headers rather than payloads.
	DefaultSnapLen = 256

	// DefaultBufferSize is the kernel capture buffer. At 256-byte snaps
	// (some 330 bytes per packet in the ring, with the kernel's frame
	// header) 8 MiB holds about 25,000 packets: a quarter of a second of a
	// 100 kpps flood while the daemon is busy, which is what an nmap -T5
	// or masscan burst needs.
	DefaultBufferSize = 8 << 20

	// DefaultTimeout is how long LiveSource.Next waits for a packet before
	// it returns ErrTimeout, so that the capture loop can notice a
	// shutdown. 100 ms keeps shutdown prompt without waking an idle daemon
	// more than ten times a second.
	DefaultTimeout = 100 * time.Millisecond

	// LiveYield is how many packets in a row without a probe
	// LiveSource.Next reads before it returns ErrTimeout anyway. With the
	// kernel filter few packets are undecodable, but without one (or under
	// a flood of them) the read timeout never fires; at well under a
	// microsecond a packet, 4096 of them keep the shutdown check within a
	// few milliseconds.
	LiveYield = 4096
)
