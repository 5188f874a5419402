package main

import (
	"context"
	"encoding/json"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/daemon"
	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/internal/conftest"
)

// TestUnblockZonedAddress: a link-local address is usually written with
// its zone (fe80::66%eth0); bans are kept without one, and unblock lifts
// the ban all the same.
func TestUnblockZonedAddress(t *testing.T) {
	cfg := conftest.DryConfig(t, t.TempDir(), "")
	banFIN(t, cfg, "fe80::66")
	if _, errOut, code := runCLI(t, "unblock", "-c", cfg, "fe80::66%eth0"); code != 0 || strings.Contains(errOut, "no ban") || !strings.Contains(errOut, "fe80::66 has been unblocked") {
		t.Fatalf("unblock fe80::66%%eth0: %d %q", code, errOut)
	}
	if out, _, _ := runCLI(t, "list", "-c", cfg); strings.Contains(out, "fe80::66") {
		t.Fatalf("list after unblock: %q", out)
	}
}

// banFIN bans addrs under the config cfg as the daemon does for a FIN
// scan of port 22, and closes the manager, for the commands to find.
func banFIN(t *testing.T, cfg string, addrs ...string) {
	t.Helper()
	c, err := daemon.LoadConfig(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	m, closeM, err := daemon.OpenManager(c, newCLILogger(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer closeM()
	for _, a := range addrs {
		out, err := m.Handle(context.Background(), &detect.Alert{Src: netip.MustParseAddr(a), Type: detect.TypeFIN, Trigger: detect.TriggerScore, Port: 22, Probes: 4, Score: 12}, "stcp")
		if err != nil || out != block.Blocked {
			t.Fatalf("%s: %v %v", a, out, err)
		}
	}
}

func TestListUnblockFlushCLI(t *testing.T) {
	dir := t.TempDir()
	cfg := conftest.DryConfig(t, dir, "")
	banFIN(t, cfg, "198.51.100.66", "fd00:77::66")

	out, errOut, code := runCLI(t, "list", "-c", cfg)
	if code != 0 || !strings.Contains(out, "198.51.100.66") || !strings.Contains(out, "fd00:77::66") || !strings.Contains(out, "tcp/22") || !strings.Contains(errOut, "2 blocked source(s)") {
		t.Fatalf("list: %d %q %q", code, out, errOut)
	}
	out, _, code = runCLI(t, "list", "-c", cfg, "--json")
	var bans []block.Ban
	if code != 0 || json.Unmarshal([]byte(out), &bans) != nil || len(bans) != 2 || bans[0].Type != "fin" {
		t.Fatalf("list --json: %d %q", code, out)
	}
	deny, _ := os.ReadFile(filepath.Join(dir, "hosts.deny"))
	if string(deny) != "ALL: 198.51.100.66 : DENY\nALL: [fd00:77::66] : DENY\n" {
		t.Fatalf("hosts.deny:\n%s", deny)
	}

	_, errOut, code = runCLI(t, "unblock", "-c", cfg, "198.51.100.66", "192.0.2.1")
	if code != 0 || !strings.Contains(errOut, "192.0.2.1 had no ban") {
		t.Fatalf("unblock: %d %q", code, errOut)
	}
	if deny, _ := os.ReadFile(filepath.Join(dir, "hosts.deny")); string(deny) != "ALL: [fd00:77::66] : DENY\n" {
		t.Fatalf("hosts.deny after unblock:\n%s", deny)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "blocked.stcp")); strings.Contains(string(b), "198.51.100.66") || !strings.Contains(string(b), "fd00:77::66") {
		t.Fatalf("blocked file after unblock:\n%s", b)
	}
	if _, errOut, code := runCLI(t, "unblock", "-c", cfg, "not-an-address"); code != 2 || !strings.Contains(errOut, "not-an-address") {
		t.Fatalf("bad address: %d %q", code, errOut)
	}

	out, _, code = runCLI(t, "flush", "-c", cfg)
	if code != 0 || !strings.Contains(out, "1 ban(s) lifted") {
		t.Fatalf("flush: %d %q", code, out)
	}
	if deny, _ := os.ReadFile(filepath.Join(dir, "hosts.deny")); len(deny) != 0 {
		t.Fatalf("hosts.deny after flush:\n%s", deny)
	}
	if out, _, _ := runCLI(t, "list", "-c", cfg); strings.Count(out, "\n") != 1 {
		t.Fatalf("list after flush: %q", out)
	}
	// the history keeps every detection: fail2ban reads it
	if h, _ := os.ReadFile(filepath.Join(dir, "history")); strings.Count(string(h), "Port: 22 TCP Blocked") != 2 {
		t.Fatalf("history:\n%s", h)
	}
}

func TestCheckConfigCommands(t *testing.T) {
	dir := t.TempDir()
	cfg := conftest.DryConfig(t, dir, `KILL_RUN_CMD="/usr/local/bin/notify $TARGET$ | mail root"`)
	_, errOut, code := runCLI(t, "check-config", "-c", cfg)
	if code != 1 || !strings.Contains(errOut, "scanwarden.conf:") || !strings.Contains(errOut, "KILL_RUN_CMD") {
		t.Fatalf("shell syntax in KILL_RUN_CMD: %d %q", code, errOut)
	}
	cfg = conftest.DryConfig(t, dir, `KILL_ROUTE="/sbin/iptables -I INPUT -s $TARGET$ -j DROP"
KILL_RUN_CMD="/usr/local/bin/notify $TARGET$ $PORT$ $MODE$"`)
	if out, errOut, code := runCLI(t, "check-config", "-c", cfg); code != 0 || !strings.Contains(out, "OK") || !strings.Contains(errOut, "covered by the dry-run backend") {
		t.Fatalf("good commands: %d %q %q", code, out, errOut)
	}
}
