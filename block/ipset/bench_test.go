package ipset

import (
	"fmt"
	"strings"
	"testing"
)

// elapsedOf reads the "elapsed NANOSECONDS" line of a bench helper.
func elapsedOf(b *testing.B, out string) float64 {
	b.Helper()
	var ns float64
	for _, l := range strings.Split(out, "\n") {
		if _, err := fmt.Sscanf(l, "elapsed %g", &ns); err == nil {
			return ns
		}
	}
	b.Fatalf("no elapsed time in %q", out)
	return 0
}

// BenchmarkBlock measures Block, one netlink message per ban, in a fresh
// namespace (root only): ns/op and bans/s, process start and preparation
// left out.
func BenchmarkBlock(b *testing.B) {
	b.StopTimer()
	l := newLab(b, "victim")
	n := min(b.N, banSetSize/2)
	b.StartTimer()
	ns := elapsedOf(b, l.backend(fmt.Sprintf("bench-block %d", n)))
	b.ReportMetric(ns/float64(n), "ns/op")
	b.ReportMetric(float64(n)/(ns/1e9), "bans/s")
}

// BenchmarkSync100k measures loading 100,000 bans into empty sets with
// Sync, in a fresh namespace (root only): ns/op is one load of 100,000.
func BenchmarkSync100k(b *testing.B) {
	b.StopTimer()
	l := newLab(b, "victim")
	b.StartTimer()
	ns := elapsedOf(b, l.backend(fmt.Sprintf("bench-sync 100000 %d", b.N)))
	b.ReportMetric(ns/float64(b.N), "ns/op")
	b.ReportMetric(100000*float64(b.N)/(ns/1e9), "bans/s")
}
