package nftables

// Benchmarks, as root, each in a fresh namespace: they print figures and
// assert no time.

import (
	"context"
	"net/netip"
	"testing"
	"time"

	nft "github.com/google/nftables"

	"github.com/scanwarden/scanwarden/block"
)

// BenchmarkBlock: one Block (one netlink transaction) per op, each of a
// new address, into a prepared table.
func BenchmarkBlock(b *testing.B) {
	l := newLab(b, "victim")
	be := l.backend()
	ctx := context.Background()
	if err := be.Prepare(ctx); err != nil {
		b.Fatal(err)
	}
	until := time.Now().Add(time.Hour)
	i := 0
	for b.Loop() {
		a := netip.MustParseAddr("fd00:77::1:0").As16()
		a[12], a[13], a[14] = byte(i>>16), byte(i>>8), byte(i)
		i++
		if err := be.Block(ctx, block.Ban{Addr: netip.AddrFrom16(a), Until: until}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "bans/s")
}

// BenchmarkSync100k: Sync of 100,000 bans (IPv6, the larger elements),
// into an empty set (the first start) and with all of them present with
// the right timeouts (a restart: one read of the set, nothing written).
func BenchmarkSync100k(b *testing.B) {
	const n = 100_000
	l := newLab(b, "victim")
	be := l.backend()
	ctx := context.Background()
	if err := be.Prepare(ctx); err != nil {
		b.Fatal(err)
	}
	want := manyBans(n, time.Now().Add(time.Hour))
	b.Run("empty", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			c, err := be.conn()
			if err != nil {
				b.Fatal(err)
			}
			c.FlushSet(&nft.Set{Table: be.table, Name: setBan6})
			if err := c.Flush(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := be.Sync(ctx, want); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "bans/s")
	})
	b.Run("present", func(b *testing.B) {
		if err := be.Sync(ctx, want); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := be.Sync(ctx, want); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "bans/s")
	})
}
