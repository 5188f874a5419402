package iptables

// The kernel tests run the backend, a listener and clients inside network
// namespaces by running this test binary again under `ip netns exec NS`,
// with SWIPT_HELPER saying what to do: TestMain sees it and does that
// instead of running tests (see internal/netnstest). Every helper first
// checks that it really is in the namespace SWIPT_NETNS names, so nothing
// can reach the host's own firewall or network by mistake.

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/internal/netnstest"
)

func TestMain(m *testing.M) {
	netnstest.Main(m, "SWIPT", map[string]netnstest.Helper{
		"backend": helperBackend,
		"serve":   netnstest.Serve(),
		"tcp":     netnstest.TCP,
		"udp":     netnstest.UDP,
		"flood":   netnstest.Flood,
	})
}

// helperBackend runs commands against a fresh NewDefault Backend, one per
// argument: "describe", "block ADDR", "try-block ADDR", "unblock ADDR",
// "sync ADDR...", "list", "flush", "ensure 4|6", "prepare", "counters
// 4|6". list prints "list ADDR...", describe the Backend's String,
// try-block "error: ..." when Block fails, counters the family's
// SCANWARDEN as iptables -t raw -v -S prints it, through the runner's
// CounterLister (the other commands end the helper with their error).
func helperBackend(cmds []string) error {
	ctx := context.Background()
	b, err := NewDefault()
	if err != nil {
		return err
	}
	for _, c := range cmds {
		f := strings.Fields(c)
		if len(f) == 0 {
			continue
		}
		var addrs []netip.Addr
		for _, s := range f[1:] {
			if f[0] == "ensure" || f[0] == "counters" {
				break
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				return fmt.Errorf("%q: %w", c, err)
			}
			addrs = append(addrs, a)
		}
		switch {
		case f[0] == "describe":
			fmt.Println(b.String())
		case f[0] == "block" && len(addrs) == 1:
			err = b.Block(ctx, block.Ban{Addr: addrs[0], Proto: "tcp", Since: time.Now()})
		case f[0] == "try-block" && len(addrs) == 1:
			if err := b.Block(ctx, block.Ban{Addr: addrs[0], Proto: "tcp"}); err != nil {
				fmt.Println("error:", err)
			}
		case f[0] == "unblock" && len(addrs) == 1:
			err = b.Unblock(ctx, addrs[0])
		case f[0] == "sync":
			var want []block.Ban
			for _, a := range addrs {
				want = append(want, block.Ban{Addr: a, Proto: "tcp"})
			}
			err = b.Sync(ctx, want)
		case f[0] == "list":
			var got []netip.Addr
			if got, err = b.List(ctx); err == nil {
				s := make([]string, len(got))
				for i, a := range got {
					s[i] = a.String()
				}
				fmt.Println(strings.TrimSpace("list " + strings.Join(s, " ")))
			}
		case f[0] == "flush":
			err = b.Flush(ctx)
		case f[0] == "ensure" && len(f) == 2 && (f[1] == "4" || f[1] == "6"):
			err = b.EnsureChain(map[string]Family{"4": IPv4, "6": IPv6}[f[1]])
		case f[0] == "prepare":
			err = b.Prepare(ctx)
		case f[0] == "counters" && len(f) == 2 && (f[1] == "4" || f[1] == "6"):
			r, rerr := b.runner(map[string]Family{"4": IPv4, "6": IPv6}[f[1]])
			if rerr != nil {
				return rerr
			}
			var lines []string
			if lines, err = r.(CounterLister).ListWithCounters(ownTable, ChainScanwarden); err == nil {
				fmt.Println(strings.Join(lines, "\n"))
			}
		default:
			return fmt.Errorf("bad command %q", c)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
	}
	return nil
}
