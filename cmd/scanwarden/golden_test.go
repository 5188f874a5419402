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

// The recorded captures: testdata/pcaps (scans and their benign traffic,
// scripts/record-pcaps.sh) and testdata/captures (an IMAP client, everyday
// traffic, nmap -O, ACK and Maimon scans; scripts/record-captures.sh).
const (
	pcapDir    = "../../testdata/pcaps"
	captureDir = "../../testdata/captures"
)

// anyType in labels.tsv: an attacker whose alert may name any scan type
// (nmap -O mixes them).
const anyType = "any"

func readLabels(t *testing.T, dir string) map[string][]label {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "labels.tsv"))
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
	for _, dir := range []string{pcapDir, captureDir} {
		labels := readLabels(t, dir)
		files := make([]string, 0, len(labels))
		for f := range labels {
			files = append(files, f)
		}
		sort.Strings(files)
		for _, f := range files {
			t.Run(f, func(t *testing.T) {
				path := filepath.Join(dir, f)
				checkGolden(t, labels[f], replayJSON(t, path))
				// the protected hosts named: same verdicts
				checkGolden(t, labels[f], replayJSON(t, path, "--home", "198.51.100.0/24", "--home", "fd00:77::/64"))
			})
		}
	}
}

// TestGoldenOSFingerprintWithoutTraps: nmap -O is caught by what it sends
// (probes of kinds no client sends, closed ports), not only by a trap
// port it happens to touch (tcp/143 of the default TCP_PORTS): replayed
// with trap ports it does not probe, every capture still flags it.
func TestGoldenOSFingerprintWithoutTraps(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "scanwarden.conf")
	if err := os.WriteFile(cfg, []byte("TCP_PORTS=\"1,11,15\"\nUDP_PORTS=\"1,7,9\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	labels := readLabels(t, captureDir)
	n := 0
	for f, ls := range labels {
		if !strings.HasPrefix(f, "nmap-os") {
			continue
		}
		n++
		out, errOut, code := runCLI(t, "replay", "-c", cfg, "--json", filepath.Join(captureDir, f))
		if code != 0 {
			t.Fatalf("replay %s: exit %d: %s", f, code, errOut)
		}
		for _, l := range ls {
			flagged := strings.Contains(out, `"src":"`+l.src+`"`)
			if flagged != (l.role == "attacker") {
				t.Errorf("%s: %s (%s) flagged=%v: %s", f, l.src, l.role, flagged, out)
			}
		}
	}
	if n == 0 {
		t.Fatal("no nmap-os capture in testdata/captures")
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
		case l.role == "attacker" && l.typ != anyType && a.Type != l.typ:
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
