package conf

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// fetchDebianPortsentry downloads Debian's portsentry package with apt-get
// and unpacks it, returning the root of the unpacked tree. It skips the test
// when the tools are missing or the download fails (no package lists, no
// network); a package that downloads but does not unpack is a failure.
func fetchDebianPortsentry(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("downloads Debian's portsentry package; skipped with -short")
	}
	for _, tool := range []string{"apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found (%v): cannot fetch Debian's portsentry package", tool, err)
		}
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	dl := exec.CommandContext(ctx, "apt-get", "download", "portsentry")
	dl.Dir = dir
	if out, err := dl.CombinedOutput(); err != nil {
		t.Skipf("apt-get download portsentry failed (no package lists or no mirror?): %v\n%s", err, out)
	}
	debs, err := filepath.Glob(filepath.Join(dir, "portsentry_*.deb"))
	if err != nil || len(debs) != 1 {
		t.Fatalf("apt-get download left %v (%v), want one portsentry_*.deb", debs, err)
	}
	root := filepath.Join(dir, "root")
	x := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], root)
	if out, err := x.CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x %s: %v\n%s", debs[0], err, out)
	}
	t.Logf("unpacked %s", filepath.Base(debs[0]))
	return root
}

// firstQuoted finds, independently of Parse, the value of the first
// uncommented KEY="value" line of text.
func firstQuoted(t *testing.T, text, key string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + key + `\s*=\s*"([^"]*)"`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no %s line in Debian's portsentry.conf", key)
	}
	return m[1]
}

// TestDebianPortsentryConf loads the portsentry.conf and ignore file that
// Debian's package ships, unchanged, and checks the values PortSentry users
// rely on.
func TestDebianPortsentryConf(t *testing.T) {
	root := fetchDebianPortsentry(t)
	path := filepath.Join(root, "etc", "portsentry", "portsentry.conf")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the package has no portsentry.conf where expected: %v", err)
	}
	text := string(raw)

	c, err := Load(path)
	if err != nil {
		t.Fatalf("Debian's portsentry.conf does not load: %v", err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings for Debian's file: %q", c.Warnings)
	}
	for _, key := range []string{"TCP_PORTS", "UDP_PORTS", "IGNORE_FILE", "HISTORY_FILE", "BLOCKED_FILE",
		"RESOLVE_HOST", "BLOCK_TCP", "BLOCK_UDP", "KILL_HOSTS_DENY", "SCAN_TRIGGER"} {
		if !c.IsSet(key) {
			t.Errorf("%s is not recorded as set", key)
		}
	}
	for _, p := range []uint16{1, 11, 111, 1524, 12345, 31337, 54320} {
		if !c.TCPPorts.Has(p) {
			t.Errorf("TCP_PORTS lacks %d: %s", p, c.TCPPorts)
		}
	}
	for _, p := range []uint16{1, 69, 161, 31337, 54321} {
		if !c.UDPPorts.Has(p) {
			t.Errorf("UDP_PORTS lacks %d: %s", p, c.UDPPorts)
		}
	}
	if c.TCPPorts.Has(22) || c.TCPPorts.Has(80) {
		t.Errorf("TCP_PORTS has a service port: %s", c.TCPPorts)
	}
	if c.IgnoreFile != "/etc/portsentry/portsentry.ignore" || c.HistoryFile != "/var/lib/portsentry/portsentry.history" ||
		c.BlockedFile != "/var/lib/portsentry/portsentry.blocked" {
		t.Errorf("paths: ignore %q history %q blocked %q", c.IgnoreFile, c.HistoryFile, c.BlockedFile)
	}
	if c.AdvancedPortsTCP != 1024 || c.AdvancedPortsUDP != 1024 ||
		c.AdvancedExcludeTCP.String() != "113,139" || c.AdvancedExcludeUDP.String() != "67,137,138,520" {
		t.Errorf("advanced: %d %d %s %s", c.AdvancedPortsTCP, c.AdvancedPortsUDP, c.AdvancedExcludeTCP, c.AdvancedExcludeUDP)
	}
	if c.KillHostsDeny != "ALL: $TARGET$ : DENY" {
		t.Errorf("KILL_HOSTS_DENY = %q", c.KillHostsDeny)
	}
	// Values Debian may change between releases: checked against the file
	// itself, read with a regular expression rather than with Parse.
	for key, got := range map[string]string{
		"BLOCK_TCP":       strconv.Itoa(int(c.BlockTCP)),
		"BLOCK_UDP":       strconv.Itoa(int(c.BlockUDP)),
		"SCAN_TRIGGER":    strconv.Itoa(c.ScanTrigger),
		"RESOLVE_HOST":    map[bool]string{false: "0", true: "1"}[c.ResolveHost],
		"KILL_ROUTE":      c.KillRoute,
		"KILL_HOSTS_DENY": c.KillHostsDeny,
	} {
		if want := firstQuoted(t, text, key); got != want {
			t.Errorf("%s = %q, the file says %q", key, got, want)
		}
	}
	if c.TriggerHits() != 1 {
		t.Errorf("TriggerHits = %d, want 1 for SCAN_TRIGGER=%d", c.TriggerHits(), c.ScanTrigger)
	}

	// The ignore file(s) the package ships.
	ignores, _ := filepath.Glob(filepath.Join(root, "etc", "portsentry", "*.ignore*"))
	if len(ignores) == 0 {
		t.Fatal("the package ships no ignore file under etc/portsentry")
	}
	for _, f := range ignores {
		l, err := LoadIgnore(f)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		for addr, want := range map[string]bool{"127.0.0.1": true, "0.0.0.0": true, "::ffff:127.0.0.1": true, "127.0.0.2": false, "0.0.0.1": false, "192.0.2.1": false} {
			if got := l.Contains(netip.MustParseAddr(addr)); got != want {
				t.Errorf("%s: Contains(%s) = %v, want %v", filepath.Base(f), addr, got, want)
			}
		}
		t.Logf("%s: %v", filepath.Base(f), l.Prefixes())
	}
}
