package replay

import (
	"context"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"testing"

	"github.com/scanwarden/scanwarden/detect"
)

func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Under QuietGC a replay of one file runs no collection; one of many
// files (an engine each, the one before garbage) runs some and keeps its
// memory within the limit; restore puts the settings back.
func TestQuietGC(t *testing.T) {
	file := filepath.Join("..", "testdata", "pcaps", "decoy.pcap")
	none := func(*detect.Alert, string) error { return nil }
	opt := Options{}

	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	limit0 := debug.SetMemoryLimit(-1)
	restore := QuietGC(opt)
	limit := debug.SetMemoryLimit(-1) // reads it
	c0 := gcCycles()
	if _, err := Files(context.Background(), []string{file}, opt, none); err != nil {
		t.Fatal(err)
	}
	if n := gcCycles() - c0; n != 0 {
		t.Errorf("a replay of one file ran %d collections", n)
	}

	many := make([]string, 12)
	for i := range many {
		many[i] = file
	}
	peak := int64(0)
	_, err := Files(context.Background(), many, opt, func(*detect.Alert, string) error {
		peak = max(peak, memoryInUse())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// 12 engines allocated: more than the limit's room for two
	if n := gcCycles() - c0; n == 0 {
		t.Errorf("a replay of %d files (%d MiB of engines) ran no collection", len(many), int64(len(many))*detect.Footprint(opt.Engine)>>20)
	}
	if peak > limit+detect.Footprint(opt.Engine) {
		t.Errorf("memory in use reached %d MiB, the limit is %d MiB", peak>>20, limit>>20)
	}

	restore()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GC percent %d after restore, want 100", p)
	}
	if l := debug.SetMemoryLimit(-1); l != limit0 {
		t.Errorf("memory limit %d after restore", l)
	}
}
