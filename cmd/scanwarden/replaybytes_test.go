package main

import (
	"os"
	"path/filepath"
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
