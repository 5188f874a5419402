package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/scanwarden/scanwarden/conf"
)

// label is one line of testdata/pcaps/labels.tsv: what a source in a
// recorded capture really was.
type label struct {
	file, src, role, typ string
}

const pcapDir = "../../testdata/pcaps"

func readLabels(t *testing.T) map[string][]label {
	t.Helper()
	f, err := os.Open(filepath.Join(pcapDir, "labels.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]label{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, "\t")
		if len(fields) != 4 {
			t.Fatalf("labels.tsv:%d: want 4 tab-separated fields, got %q", n, line)
		}
		l := label{fields[0], fields[1], fields[2], fields[3]}
		if l.role != "attacker" && l.role != "benign" {
			t.Fatalf("labels.tsv:%d: role %q", n, l.role)
		}
		out[l.file] = append(out[l.file], l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("labels.tsv lists no capture")
	}
	return out
}

type goldenAlert struct {
	Src, Type string
	Probes    int
}

// replayJSON replays one file with the shipped defaults and returns its
// alerts by source.
func replayJSON(t *testing.T, file string, extra ...string) map[string]goldenAlert {
	t.Helper()
	args := append([]string{"replay", "-c", noConfig(t), "--json"}, extra...)
	out, errOut, code := runCLI(t, append(args, file)...)
	if code != 0 {
		t.Fatalf("replay %s: exit %d: %s", file, code, errOut)
	}
	alerts := map[string]goldenAlert{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var a goldenAlert
		if err := json.NewDecoder(bytes.NewReader([]byte(line))).Decode(&a); err != nil {
			t.Fatalf("%s: %q: %v", file, line, err)
		}
		if _, dup := alerts[a.Src]; dup {
			t.Errorf("%s: two alerts for %s", file, a.Src)
		}
		alerts[a.Src] = a
	}
	return alerts
}

// TestGoldenPcaps replays every recorded capture: every attacker is
// flagged with its scan type, no benign source is flagged, and nothing
// unlabelled is flagged.
func TestGoldenPcaps(t *testing.T) {
	labels := readLabels(t)
	files := make([]string, 0, len(labels))
	for f := range labels {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			path := filepath.Join(pcapDir, f)
			checkGolden(t, labels[f], replayJSON(t, path))
			// the protected hosts named: same verdicts
			checkGolden(t, labels[f], replayJSON(t, path, "--home", "198.51.100.0/24", "--home", "fd00:77::/64"))
		})
	}
}

func checkGolden(t *testing.T, ls []label, alerts map[string]goldenAlert) {
	t.Helper()
	known := map[string]bool{}
	for _, l := range ls {
		known[l.src] = true
		a, flagged := alerts[l.src]
		switch {
		case l.role == "benign" && flagged:
			t.Errorf("benign %s flagged as a %s scanner after %d probes", l.src, a.Type, a.Probes)
		case l.role == "attacker" && !flagged:
			t.Errorf("attacker %s (%s) not flagged", l.src, l.typ)
		case l.role == "attacker" && a.Type != l.typ:
			t.Errorf("attacker %s flagged as %s, want %s", l.src, a.Type, l.typ)
		}
	}
	for src, a := range alerts {
		if !known[src] {
			t.Errorf("unlabelled source %s flagged (%s)", src, a.Type)
		}
	}
}

// TestGoldenDefaultsAreShipped: the golden tests run on built-in defaults;
// make sure those are what etc/scanwarden.conf ships.
func TestGoldenDefaultsAreShipped(t *testing.T) {
	c, err := conf.Load("../../etc/scanwarden.conf")
	if err != nil {
		t.Fatal(err)
	}
	d := conf.Default()
	if c.TCPPorts.String() != d.TCPPorts.String() || c.UDPPorts.String() != d.UDPPorts.String() ||
		c.DetectWindow != d.DetectWindow || c.DetectThreshold != d.DetectThreshold || c.ScanTrigger != d.ScanTrigger {
		t.Fatal("etc/scanwarden.conf and the built-in defaults differ")
	}
}
