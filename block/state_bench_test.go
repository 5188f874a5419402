package block

import (
	"net/netip"
	"testing"
	"time"
)

// BenchmarkRecordThen is the state's part of a block's latency: the time
// from the start of RecordThen to its then (where the firewall changes),
// and the whole call with the state rewritten and made durable. The state
// holds up to 50 bans.
func BenchmarkRecordThen(b *testing.B) {
	st, err := OpenState(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	var toThen, all time.Duration
	now := time.Now()
	for i := 0; i < b.N; i++ {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		t0 := time.Now()
		if _, err := st.RecordThen(Ban{Addr: a, Proto: "tcp", Since: now}, now, nil, func() { toThen += time.Since(t0) }); err != nil {
			b.Fatal(err)
		}
		all += time.Since(t0)
		if i%50 == 49 {
			b.StopTimer()
			st.Update(func([]Ban) ([]Ban, bool, error) { return nil, true, nil })
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(toThen.Microseconds())/float64(b.N), "µs-to-firewall")
	b.ReportMetric(float64(all.Microseconds())/float64(b.N), "µs-durable")
}

// BenchmarkPendLarge is Pend's time to its then (the firewall change, on
// the capture thread) when the state already holds 100,000 bans, as after
// a large restore: the check that the source is not banned yet must not
// cost in proportion to the list.
func BenchmarkPendLarge(b *testing.B) {
	st, err := OpenState(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	bans := make([]Ban, 100000)
	for i := range bans {
		bans[i] = Ban{Addr: netip.AddrFrom4([4]byte{172, 16 + byte(i>>16), byte(i >> 8), byte(i)}), Proto: "tcp", Since: now}
	}
	if err := st.Update(func([]Ban) ([]Ban, bool, error) { return bans, true, nil }); err != nil {
		b.Fatal(err)
	}
	var toThen time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		t0 := time.Now()
		if _, err := st.Pend(Ban{Addr: a, Proto: "tcp", Since: now}, now, nil, func() { toThen += time.Since(t0) }, true); err != nil {
			b.Fatal(err)
		}
		if i%50 == 49 {
			b.StopTimer()
			if err := st.Fold(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(toThen.Microseconds())/float64(b.N), "µs-to-firewall")
}
