package hostsdeny_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/hostsdeny"
	"github.com/scanwarden/scanwarden/detect"
)

// TestTwoManagersOneState is the -tcp/-udp pair as the block managers see
// it: two managers, each with its own state handle, journal and hosts.deny
// backend, over the same STATE_DIR and files, handling alerts of the same
// sources at once. Each source is blocked once, by one backend call, with
// one hosts.deny entry and one history line.
func TestTwoManagersOneState(t *testing.T) {
	dir := t.TempDir()
	hd := filepath.Join(dir, "hosts.deny")
	if err := os.WriteFile(hd, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	hist := filepath.Join(dir, "history")
	var blocks countingBlocker
	var mgrs []*block.Manager
	for i := 0; i < 2; i++ {
		st, err := block.OpenState(filepath.Join(dir, "state"))
		if err != nil {
			t.Fatal(err)
		}
		h, err := hostsdeny.New(hd, "ALL: $TARGET$ : DENY", hostsdeny.WithLockDir(filepath.Join(dir, "state", "locks")))
		if err != nil {
			t.Fatal(err)
		}
		j := block.NewJournal(hist, filepath.Join(dir, "blocked"))
		t.Cleanup(func() { j.Close() })
		log, _ := test.NewNullLogger()
		m, err := block.NewManager(block.Options{Policy: block.Policy{BlockTCP: block.Act, BlockUDP: block.Act}, Blockers: []block.Blocker{&blocks, h},
			Never: block.NewNeverBlock(nil), State: st, Journal: j, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		mgrs = append(mgrs, m)
	}
	srcs := []netip.Addr{netip.MustParseAddr("198.51.100.60"), netip.MustParseAddr("198.51.100.61"), netip.MustParseAddr("fd00:77::60")}
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[netip.Addr][]block.Outcome{}
	for round := 0; round < 4; round++ {
		for i, m := range mgrs {
			typ, mode := detect.TypeConnect, "tcp"
			if i == 1 {
				typ, mode = detect.TypeUDP, "udp"
			}
			for _, src := range srcs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					out, err := m.Handle(context.Background(), &detect.Alert{Src: src, Type: typ, Trigger: detect.TriggerTrap, Port: 1, Probes: 1}, mode)
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					outcomes[src] = append(outcomes[src], out)
					mu.Unlock()
				}()
			}
		}
	}
	wg.Wait()
	for _, src := range srcs {
		n := 0
		for _, o := range outcomes[src] {
			if o == block.Blocked {
				n++
			} else if o != block.AlreadyBlocked {
				t.Errorf("%s: outcome %v", src, o)
			}
		}
		if n != 1 {
			t.Errorf("%s blocked %d times: %v", src, n, outcomes[src])
		}
		if got := blocks.count(src); got != 1 {
			t.Errorf("%s: %d backend blocks", src, got)
		}
	}
	deny, _ := os.ReadFile(hd)
	histText, _ := os.ReadFile(hist)
	for _, src := range srcs {
		if n := strings.Count(string(deny), src.String()+"]"); src.Is6() && n != 1 {
			t.Errorf("hosts.deny has %d entries for %s:\n%s", n, src, deny)
		}
		if n := strings.Count(string(deny), "ALL: "+src.String()+" "); src.Is4() && n != 1 {
			t.Errorf("hosts.deny has %d entries for %s:\n%s", n, src, deny)
		}
		if n := strings.Count(string(histText), "/"+src.String()+" Port:"); n != 1 {
			t.Errorf("history has %d lines for %s:\n%s", n, src, histText)
		}
	}
	bans, err := mgrs[0].List()
	if err != nil || len(bans) != len(srcs) {
		t.Fatalf("state: %v %v", bans, err)
	}
}

// countingBlocker counts Block calls per address, across managers.
type countingBlocker struct {
	mu sync.Mutex
	n  map[netip.Addr]int
}

func (c *countingBlocker) count(a netip.Addr) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[a]
}

func (c *countingBlocker) Name() string { return "counting" }
func (c *countingBlocker) Block(_ context.Context, b block.Ban) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[netip.Addr]int{}
	}
	c.n[b.Addr]++
	return nil
}
func (c *countingBlocker) Unblock(context.Context, netip.Addr) error  { return nil }
func (c *countingBlocker) List(context.Context) ([]netip.Addr, error) { return nil, nil }
func (c *countingBlocker) Sync(context.Context, []block.Ban) error    { return nil }
func (c *countingBlocker) Flush(context.Context) error                { return nil }
func (c *countingBlocker) Traits() block.Traits                       { return block.Traits{} }
func (c *countingBlocker) Describe(a netip.Addr) string               { return a.String() }
func (c *countingBlocker) Prepare(context.Context) error              { return nil }
func (c *countingBlocker) Close() error                               { return nil }
