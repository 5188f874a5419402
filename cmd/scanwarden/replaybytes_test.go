package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// replayGolden holds what scanwarden replay printed for every recorded
// capture with the shipped defaults before the replay was made fast
// (issue #14): text and --json per file, --json of all files at once, and
// the text of all files merged. Speed work must leave every byte as it
// is. When a change of verdicts is intended, regenerate them with
// UPDATE_REPLAY_GOLDEN=1 go test -run TestReplayBytesUnchanged and say
// why in the commit.
const replayGolden = "testdata/replay"

// TestReplayBytesUnchanged replays every recorded capture and compares
// the output with replayGolden byte for byte.
func TestReplayBytesUnchanged(t *testing.T) {
	var files []string
	for _, g := range []string{filepath.Join(pcapDir, "*.pcap*"), filepath.Join(captureDir, "*.pcap")} {
		m, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 20 {
		t.Fatalf("only %d captures", len(files))
	}
	cfg := noConfig(t)
	check := func(name string, args ...string) {
		t.Helper()
		out, errOut, code := runCLI(t, append([]string{"replay", "-c", cfg}, args...)...)
		if code != 0 {
			t.Fatalf("replay %v: exit %d: %s", args, code, errOut)
		}
		path := filepath.Join(replayGolden, name)
		if os.Getenv("UPDATE_REPLAY_GOLDEN") == "1" {
			if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if out != string(want) {
			t.Errorf("replay %v: output differs from %s:\n got:\n%s\nwant:\n%s", args, path, out, want)
		}
	}
	for _, f := range files {
		n := filepath.Base(f)
		check(n+".txt", f)
		check(n+".json", "--json", f)
	}
	check("all.json", append([]string{"--json"}, files...)...)
	check("all-merged.txt", append([]string{"--merge"}, files...)...)
}

// TestReplayAllocationsFlat: replay allocates nothing per packet and per
// alert (issue #14). The same scan from 50 and from 500 scanners (2,000
// and 20,000 packets, one alert each) costs the same allocations, give
// or take the output buffer's growth.
func TestReplayAllocationsFlat(t *testing.T) {
	cfg := noConfig(t)
	capture := func(scanners int) string {
		var pkts []exchange
		for i := 0; i < scanners; i++ {
			src := fmt.Sprintf("%s.%d", []string{"198.51.100", "203.0.113", "192.0.2"}[i/200], 1+i%200)
			pkts = append(pkts, synScanPkts(src, "198.51.100.250", 2000, 20)...)
		}
		return writePcap(t, pkts)
	}
	mallocs := func(file string, args ...string) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, errOut, code := runCLI(t, append(append([]string{"replay", "-c", cfg}, args...), file)...)
		runtime.ReadMemStats(&after)
		if code != 0 {
			t.Fatalf("replay: exit %d: %s", code, errOut)
		}
		return after.Mallocs - before.Mallocs
	}
	small, large := capture(50), capture(500)
	for _, args := range [][]string{nil, {"--json"}} {
		mallocs(small, args...) // warm: what runs once per process
		a, b := mallocs(small, args...), mallocs(large, args...)
		t.Logf("replay %v: %d allocations for 50 scanners, %d for 500", args, a, b)
		if b > a+40 {
			t.Errorf("replay %v: %d allocations for 50 scanners, %d for 500: some grow with the packets or alerts", args, a, b)
		}
	}
}
