package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/iptables"
)

// banRate is the outcome of one family's bans through a backend.
type banRate struct {
	Family string
	N      int
	Took   time.Duration
}

// PerSecond is the bans made per second.
func (r banRate) PerSecond() float64 {
	if r.Took <= 0 {
		return 0
	}
	return float64(r.N) / r.Took.Seconds()
}

// runBans blocks n IPv6 addresses (fd00:77::2:0:0:0 onwards) and then
// min(n, 254) IPv4 ones (198.51.100.1 onwards) through scanwarden's
// iptables backend, one Block call each as the daemon makes them, times
// each family, writes the rates to w and flushes what it added. It runs in
// the current network namespace, which must not be the host's.
func runBans(ctx context.Context, w io.Writer, n int) error {
	if err := checkNotHostNS(); err != nil {
		return err
	}
	if n < 1 {
		return fmt.Errorf("-n %d: want at least 1", n)
	}
	b, err := iptables.NewDefault()
	if err != nil {
		return err
	}
	// the chain and its jump exist before the clock starts, as in the
	// daemon (prepared on start)
	if err := b.Prepare(ctx); err != nil {
		return err
	}
	defer func() {
		if err := b.Flush(context.Background()); err != nil {
			fmt.Fprintf(w, "fwdbench: warning: flush: %v\n", err)
		}
	}()
	v6 := netip.MustParseAddr("fd00:77::2:0:0:0")
	rates := []banRate{}
	for _, fam := range []struct {
		name  string
		first netip.Addr
		n     int
	}{{"IPv6", v6, n}, {"IPv4", banBase4, min(n, 254)}} {
		a := fam.first
		t0 := time.Now()
		for range fam.n {
			ban := block.Ban{Addr: a, Proto: "tcp", Type: "syn", Reason: "fwdbench", Since: t0}
			if err := b.Block(ctx, ban); err != nil {
				return fmt.Errorf("block %s: %w", a, err)
			}
			a = a.Next()
		}
		rates = append(rates, banRate{fam.name, fam.n, time.Since(t0)})
	}
	list, err := b.List(ctx)
	if err != nil {
		return fmt.Errorf("listing the bans made: %w", err)
	}
	if want := n + min(n, 254); len(list) != want {
		return fmt.Errorf("the backend lists %d bans after %d blocks", len(list), want)
	}
	fmt.Fprintf(w, "iptables backend: %s\n", b)
	for _, r := range rates {
		fmt.Fprintf(w, "iptables backend: %d %s bans in %.2f s: %.0f bans/s, %.1f ms a ban\n",
			r.N, r.Family, r.Took.Seconds(), r.PerSecond(), r.Took.Seconds()*1000/float64(r.N))
	}
	return nil
}

// runLoad loads n bans into backend in the current network namespace
// (not the host's) through the backend itself, as `fwd` does, writes how
// long the load took to w, and has the backend remove everything again.
func runLoad(ctx context.Context, w io.Writer, backend string, n int) error {
	l, err := openBackend(backend)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := l.Prepare(ctx); err != nil {
		_ = l.Teardown(ctx)
		return err
	}
	took, err := l.Fill(ctx, banAddrs(n))
	if err == nil {
		var have int
		if have, err = l.Count(ctx); err == nil && have != n {
			err = fmt.Errorf("%s holds %d bans after loading %d", backend, have, n)
		}
	}
	t1 := time.Now()
	if err2 := l.Teardown(ctx); err == nil && err2 != nil {
		err = fmt.Errorf("teardown: %w", err2)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s: %d IPv6 bans loaded in %.2f s (%s), removed in %.2f s (the backend's flush)\n",
		backend, n, took.Seconds(), loadMethod[backend], time.Since(t1).Seconds())
	return nil
}

// loadMethod says how each backend's bans are put in.
var loadMethod = map[string]string{
	"nftables": "the backend's Sync: netlink transactions into its ban set, with timeouts",
	"ipset":    "the backend's Sync: netlink batches into its hash:ip ban set, with timeouts",
	"iptables": "the backend's rules in its raw-table chain, by ONE ip6tables-restore, not through the backend",
}
