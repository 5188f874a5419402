package ipset

// The kernel tests run the backend, a listener and clients inside network
// namespaces by running this test binary again under `ip netns exec NS`,
// with SWIPS_HELPER saying what to do: TestMain sees it and does that
// instead of running tests (see internal/netnstest). Every helper first
// checks that it really is in the namespace SWIPS_NETNS names, so nothing
// can reach the host's own firewall, sets or network by mistake.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/internal/netnstest"
)

func TestMain(m *testing.M) {
	netnstest.Main(m, "SWIPS", map[string]netnstest.Helper{
		"backend":  helperBackend,
		"serve":    netnstest.Serve(),
		"tcp":      netnstest.TCP,
		"udp":      netnstest.UDP,
		"raw":      netnstest.Raw,
		"flood":    netnstest.Flood,
		"rawreply": netnstest.RawReply,
	})
}

// parseBans reads "ADDR=UNTIL" words: UNTIL is a Unix time in
// milliseconds, 0 for a ban without end.
func parseBans(words []string) ([]block.Ban, error) {
	var out []block.Ban
	for _, w := range words {
		s, u, ok := strings.Cut(w, "=")
		a, err := netip.ParseAddr(s)
		if !ok || err != nil {
			return nil, fmt.Errorf("bad ban %q", w)
		}
		ms, err := strconv.ParseInt(u, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad ban %q: %w", w, err)
		}
		b := block.Ban{Addr: a, Proto: "tcp", Since: time.Now()}
		if ms != 0 {
			b.Until = time.UnixMilli(ms)
		}
		out = append(out, b)
	}
	return out, nil
}

// manyBans returns n bans of fd00:77::1:0 onwards (the lab's IPv6 net has
// room for them; its IPv4 one has not), each lasting d.
func manyBans(n int, d time.Duration) []block.Ban {
	base := netip.MustParseAddr("fd00:77::1:0").As16()
	until := time.Now().Add(d)
	out := make([]block.Ban, n)
	for i := range out {
		a := base
		binary.BigEndian.PutUint32(a[12:], binary.BigEndian.Uint32(a[12:])+uint32(i))
		out[i] = block.Ban{Addr: netip.AddrFrom16(a), Proto: "tcp", Since: time.Now(), Until: until}
	}
	return out
}

// helperBackend runs commands against a fresh NewDefault Backend (a
// restart, each time), one per argument:
//
//	describe            prints String
//	prepare
//	block ADDR=UNTIL    (see parseBans)
//	unblock ADDR
//	release ADDR
//	sync ADDR=UNTIL...
//	sync-many N SECONDS syncs N IPv6 bans (manyBans), prints "synced N in DURATION"
//	list                prints "list ADDR..."
//	flush
//	settrap JSON        a block.Trap
//	overflows           prints "overflows N"
//	spare-overflows     prints "spare-overflows N" (of this process's Backend)
//	bench-block N       blocks N addresses, prints "elapsed NANOSECONDS"
//	bench-sync N COUNT  COUNT times: flush, prepare, sync N bans (timed); prints "elapsed NANOSECONDS"
func helperBackend(cmds []string) error {
	ctx := context.Background()
	b, err := NewDefault()
	if err != nil {
		return err
	}
	defer b.Close()
	for _, c := range cmds {
		verb, rest, _ := strings.Cut(c, " ")
		f := strings.Fields(rest)
		switch verb {
		case "describe":
			fmt.Println(b.String())
		case "prepare":
			err = b.Prepare(ctx)
		case "block", "sync":
			var bans []block.Ban
			if bans, err = parseBans(f); err != nil {
				return err
			}
			if verb == "sync" {
				err = b.Sync(ctx, bans)
			} else if len(bans) == 1 {
				err = b.Block(ctx, bans[0])
			} else {
				err = fmt.Errorf("block takes one ban")
			}
		case "unblock", "release":
			var a netip.Addr
			if a, err = netip.ParseAddr(rest); err == nil {
				if verb == "release" {
					err = b.Release(ctx, a)
				} else {
					err = b.Unblock(ctx, a)
				}
			}
		case "sync-many":
			var n, secs int
			if _, err = fmt.Sscan(rest, &n, &secs); err != nil {
				return fmt.Errorf("%q: %w", c, err)
			}
			bans := manyBans(n, time.Duration(secs)*time.Second)
			start := time.Now()
			err = b.Sync(ctx, bans)
			fmt.Printf("synced %d in %v\n", n, time.Since(start))
		case "list":
			var got []netip.Addr
			if got, err = b.List(ctx); err == nil {
				s := make([]string, len(got))
				for i, a := range got {
					s[i] = a.String()
				}
				fmt.Println(strings.TrimSpace("list " + strings.Join(s, " ")))
			}
		case "flush":
			err = b.Flush(ctx)
		case "settrap":
			var t block.Trap
			if err = json.Unmarshal([]byte(rest), &t); err == nil {
				err = b.SetTrap(ctx, t)
			}
		case "spare-overflows":
			fmt.Println("spare-overflows", b.SpareOverflows())
		case "overflows":
			var n uint64
			if n, err = b.TrapOverflows(ctx); err == nil {
				fmt.Println("overflows", n)
			}
		case "bench-block":
			var n int
			if _, err = fmt.Sscan(rest, &n); err != nil {
				return fmt.Errorf("%q: %w", c, err)
			}
			bans := manyBans(n, time.Hour)
			if err = b.Prepare(ctx); err != nil {
				return err
			}
			start := time.Now()
			for _, ban := range bans {
				if err = b.Block(ctx, ban); err != nil {
					break
				}
			}
			fmt.Println("elapsed", time.Since(start).Nanoseconds())
		case "bench-sync":
			var n, count int
			if _, err = fmt.Sscan(rest, &n, &count); err != nil {
				return fmt.Errorf("%q: %w", c, err)
			}
			var total time.Duration
			for range count {
				bans := manyBans(n, time.Hour)
				if err = errors.Join(b.Flush(ctx), b.Prepare(ctx)); err != nil {
					return err
				}
				start := time.Now()
				if err = b.Sync(ctx, bans); err != nil {
					return err
				}
				total += time.Since(start)
			}
			fmt.Println("elapsed", total.Nanoseconds())
		default:
			return fmt.Errorf("bad command %q", c)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
	}
	return nil
}
