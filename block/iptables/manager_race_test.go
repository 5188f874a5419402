package iptables_test

// Two processes sharing a state (the -tcp/-udp pair, or the daemon and
// `scanwarden unblock`): the firewall changes of one never interleave
// with the other's Resync.

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/iptables"
	"github.com/scanwarden/scanwarden/detect"
)

// hook runs fn once, around the first call of op on SCANWARDEN: after
// Exists and Delete, before Append.
type hook struct {
	iptables.Runner
	op   string
	once sync.Once
	fn   func()
}

func (h *hook) Exists(t iptables.Table, c iptables.Chain, spec ...string) (bool, error) {
	ok, err := h.Runner.Exists(t, c, spec...)
	if h.op == "Exists" && c == "SCANWARDEN" {
		h.once.Do(h.fn)
	}
	return ok, err
}

func (h *hook) Append(t iptables.Table, c iptables.Chain, spec ...string) error {
	if h.op == "Append" && c == "SCANWARDEN" {
		h.once.Do(h.fn)
	}
	return h.Runner.Append(t, c, spec...)
}

func (h *hook) Delete(t iptables.Table, c iptables.Chain, spec ...string) error {
	err := h.Runner.Delete(t, c, spec...)
	if h.op == "Delete" && c == "SCANWARDEN" {
		h.once.Do(h.fn)
	}
	return err
}

// later runs fn in a goroutine, waiting at most 200 ms for it (a process
// waiting on the state lock does not stop the other); wait waits for it.
func later(fn func()) (wait func()) {
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	select {
	case <-done:
	case <-time.After(200 * time.Millisecond):
	}
	return func() { <-done }
}

func mgr(t *testing.T, dir string, r iptables.Runner) *block.Manager {
	st, err := block.OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := test.NewNullLogger()
	m, err := block.NewManager(block.Options{Policy: block.Policy{BlockTCP: block.Act, BlockUDP: block.Act}, Blockers: []block.Blocker{iptables.New(r, nil)},
		Never: block.NewNeverBlock(nil), State: st, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// drops counts the rules naming a, in the raw table (the backend's) and
// the filter table (where none must be).
func drops(f *iptables.Fake, a string) int {
	n := 0
	for _, l := range slices.Concat(f.Dump(iptables.TableRaw), f.Dump(iptables.TableFilter)) {
		if strings.Contains(l, a) {
			n++
		}
	}
	return n
}

// Process A blocks a source while process B's periodic Resync runs just
// before A's "iptables -A" (A's backend trusts its last listing, so it
// does not check first).
func TestHandleVsResync(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	kernel := iptables.NewFake()
	b := mgr(t, dir, kernel)
	h := &hook{Runner: kernel, op: "Append"}
	a := mgr(t, dir, h)
	ctx := context.Background()
	a.Resync(ctx)
	b.Resync(ctx)
	var wait func()
	h.fn = func() {
		wait = later(func() {
			if _, err := b.Resync(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	src := netip.MustParseAddr("198.51.100.7")
	if _, err := a.Handle(ctx, &detect.Alert{Src: src, Type: detect.TypeConnect, Trigger: detect.TriggerTrap, Port: 1}, "tcp"); err != nil {
		t.Fatal(err)
	}
	wait()
	t.Logf("rules:\n%s", strings.Join(kernel.Dump(iptables.TableRaw), "\n"))
	if n := drops(kernel, "198.51.100.7/32"); n != 1 {
		t.Errorf("%d DROP rules for one ban", n)
	}
}

// `scanwarden unblock` while the daemon's periodic Resync runs between
// the unblock's rule deletion and its state update.
func TestUnblockVsResync(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	kernel := iptables.NewFake()
	daemon := mgr(t, dir, kernel)
	h := &hook{Runner: kernel, op: "Delete"}
	cli := mgr(t, dir, h)
	ctx := context.Background()
	src := netip.MustParseAddr("198.51.100.7")
	daemon.Handle(ctx, &detect.Alert{Src: src, Type: detect.TypeConnect, Trigger: detect.TriggerTrap, Port: 1}, "tcp")
	var wait func()
	h.fn = func() {
		wait = later(func() {
			if _, err := daemon.Resync(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	if _, err := cli.Unblock(ctx, src); err != nil {
		t.Fatal(err)
	}
	wait()
	bans, _ := cli.List()
	t.Logf("bans %v; rules:\n%s", bans, strings.Join(kernel.Dump(iptables.TableRaw), "\n"))
	if n := drops(kernel, "198.51.100.7/32"); n != 0 || len(bans) != 0 {
		t.Errorf("after unblock: %d DROP rules, %d bans", n, len(bans))
	}
}
