package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// replaySummary matches replay's summary line; group 1 is the packets
// read, 2 the alerts, 3 what follows the rate (the interruption).
var replaySummary = regexp.MustCompile(`(?m)^replay: 1 file\(s\), (\d+) packets \(\d+ decoded, 0 malformed\), (\d+) alert\(s\), \d+ source\(s\) tracked, [0-9.]+s, \d+ packets/s(.*)$`)

// TestReplayInterrupted runs the real binary over a large capture and
// interrupts it once its first alert is out: the alerts found up to then
// must all be printed, each whole, with the summary saying it was
// interrupted, and the exit status must be the signal's.
//
// The test reads the first line and then nothing until the signal is
// sent: the alerts of the whole capture (megabytes) do not fit in the
// pipe, so the replay cannot have finished before the signal.
func TestReplayInterrupted(t *testing.T) {
	bin := buildScanwarden(t)
	dir := t.TempDir()
	gensyn := filepath.Join(dir, "gensyn")
	if out, err := exec.Command("go", "build", "-o", gensyn, "../../scripts/gensyn").CombinedOutput(); err != nil {
		t.Fatalf("go build gensyn: %v\n%s", err, out)
	}
	// 16000 SYN scanners (the default table holds them all), each alerting
	// by its 12th probe at the latest: 16000 alerts among 500000 packets
	const packets, sources = 500000, 16000
	pcap := filepath.Join(dir, "syn.pcap")
	if out, err := exec.Command(gensyn, "-o", pcap, "-n", strconv.Itoa(packets), "-sources", strconv.Itoa(sources)).CombinedOutput(); err != nil {
		t.Fatalf("gensyn: %v\n%s", err, out)
	}
	conf := noConfig(t)

	// the whole capture, uninterrupted
	out, err := exec.Command(bin, "replay", "-c", conf, "--json", pcap).Output()
	if err != nil {
		t.Fatalf("uninterrupted replay: %v", err)
	}
	total := strings.Count(string(out), "\n")
	if total != sources {
		t.Fatalf("uninterrupted replay: %d alerts, want %d", total, sources)
	}

	for _, c := range []struct {
		sig  syscall.Signal
		name string
		code int
	}{{syscall.SIGINT, "SIGINT", 130}, {syscall.SIGTERM, "SIGTERM", 143}} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(bin, "replay", "-c", conf, "--json", pcap)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			pipe, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			watchdog := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
			defer watchdog.Stop()
			r := bufio.NewReader(pipe)
			first, err := r.ReadString('\n')
			if err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("no alert line: %v; stderr %q", err, stderr.String())
			}
			if err := cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			err = cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != c.code {
				t.Fatalf("exit: %v, want status %d; stderr %q", err, c.code, stderr.String())
			}

			m := replaySummary.FindStringSubmatch(stderr.String())
			if m == nil {
				t.Fatalf("no summary line: %q", stderr.String())
			}
			if m[3] != ", interrupted by "+c.name {
				t.Errorf("summary does not say it was interrupted by %s: %q", c.name, m[0])
			}
			if strings.Contains(stderr.String(), "scanwarden replay:") {
				t.Errorf("an error besides the summary: %q", stderr.String())
			}
			read, _ := strconv.Atoi(m[1])
			alerts, _ := strconv.Atoi(m[2])
			if read >= packets {
				t.Errorf("read all %d packets: the signal did not stop the reading", read)
			}
			// every alert counted is printed, whole
			lines := strings.Split(strings.TrimSuffix(first+string(rest), "\n"), "\n")
			if len(lines) != alerts || alerts == 0 || alerts >= total {
				t.Fatalf("%d alert lines, summary says %d (of %d in the whole capture)", len(lines), alerts, total)
			}
			for i, l := range lines {
				var a struct{ Src, Type string }
				if err := json.Unmarshal([]byte(l), &a); err != nil || a.Src == "" || a.Type != "syn" {
					t.Fatalf("alert line %d: %q: %v", i+1, l, err)
				}
			}
			t.Logf("%s: %d of %d alerts, %d of %d packets read", c.name, alerts, total, read, packets)
		})
	}
}
