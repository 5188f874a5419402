package detect

import (
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
