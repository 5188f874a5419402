package detect

import (
	"fmt"
	"net/netip"
	"testing"
)

// BenchmarkProcessSYNScan: the make-bench workload, a SYN scan from 10,000
// sources interleaved, one packet per op.
func BenchmarkProcessSYNScan(b *testing.B) {
	const sources = 10000
	pkts := make([]Probe, 0, 1<<16)
	for i := 0; i < cap(pkts); i++ {
		s := i % sources
		src := netip.AddrFrom4([4]byte{100, 64 + byte(s>>16), byte(s >> 8), byte(s)})
		pkts = append(pkts, *tcp(t0+int64(i)*1000, src, 40000, victim, uint16(1+i/sources), FlagSYN))
	}
	e := newEngine(b, Config{TrapTCP: ports(1, 11, 15, 79, 111)})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := &pkts[i&(len(pkts)-1)]
		p.TS += 1000
		e.Process(p)
	}
}

// BenchmarkProcessBenign: connections to an open port and answered UDP.
func BenchmarkProcessBenign(b *testing.B) {
	pkts := benignTraffic(t0, 1000)
	e := newEngine(b, Config{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Process(pkts[i%len(pkts)])
	}
}

// BenchmarkProcessSources runs the engine over a SYN scan from 100 to
// 1,000,000 sources, interleaved (packet i from source i mod N, each
// source probing successive ports of one host from its own starting
// port), as scripts/gensyn writes them: with more sources than MaxSources
// (16,384) every packet is a new source that evicts another, the cost of
// a flood of forged sources. With origins, each packet also goes through
// Origins.Observe first, as in a replay and in the daemon.
func BenchmarkProcessSources(b *testing.B) {
	for _, n := range []int{100, 10_000, 100_000, 1_000_000} {
		for _, mode := range []string{"", "/origins"} {
			withOrigins := mode != ""
			b.Run(fmt.Sprintf("sources=%d%s", n, mode), func(b *testing.B) {
				e := newEngine(b, Config{TrapTCP: ports(1, 11, 15, 79, 111)})
				o := NewOrigins()
				var ps [8]Probe
				for j := range ps {
					ps[j] = Probe{Dst: AddrOf(victim), SrcPort: 40000, Kind: KindTCP, Proto: ProtoTCP, Flags: FlagSYN,
						TTL: 52, HasMAC: true, SrcMAC: [6]byte{2, 0, 0, 0, 0, 1}}
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i += len(ps) {
					for j := range ps {
						k := i + j
						s := k % n
						p := &ps[j]
						p.TS = t0 + int64(k)*1000
						p.Src = AddrFrom4([4]byte{100, 64 + byte(s>>16), byte(s >> 8), byte(s)})
						p.DstPort = uint16(1 + (k/n+s*31)%65535)
					}
					for j := range ps {
						if withOrigins {
							o.Observe(&ps[j])
						}
						e.Process(&ps[j])
					}
				}
			})
		}
	}
}
