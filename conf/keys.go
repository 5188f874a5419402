package conf

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/scanwarden/scanwarden/internal/excerpt"
)

// keySpec describes one config key: how its value is read into a Config
// (set: syntax only) and which values are valid (check: ranges; also run by
// Validate). A key with unused != "" is accepted for compatibility, kept
// in Config.Unused and warned about; unused says why it has no effect.
type keySpec struct {
	key    string
	set    func(c *Config, v string) error
	check  func(c *Config) error
	unused string
}

// keySpecs returns the table of known keys, PortSentry's first, in the order
// etc/scanwarden.conf documents them. It is built on each call so that no
// package state exists.
func keySpecs() []keySpec {
	return append(portSentryKeys(), ownKeys()...)
}

// portSentryKeys are PortSentry 1.2's keys (2.x keeps the same ones but
// drops the ADVANCED_* ones).
func portSentryKeys() []keySpec {
	return []keySpec{
		{key: "TCP_PORTS", set: func(c *Config, v string) (err error) { c.TCPPorts, err = ParsePortList(v); return }},
		{key: "UDP_PORTS", set: func(c *Config, v string) (err error) { c.UDPPorts, err = ParsePortList(v); return }},
		{key: "ADVANCED_PORTS_TCP",
			set:   func(c *Config, v string) (err error) { c.AdvancedPortsTCP, err = parseCount(v); return },
			check: func(c *Config) error { return checkRange(c.AdvancedPortsTCP, 1, 65535) }},
		{key: "ADVANCED_PORTS_UDP",
			set:   func(c *Config, v string) (err error) { c.AdvancedPortsUDP, err = parseCount(v); return },
			check: func(c *Config) error { return checkRange(c.AdvancedPortsUDP, 1, 65535) }},
		{key: "ADVANCED_EXCLUDE_TCP", set: func(c *Config, v string) (err error) { c.AdvancedExcludeTCP, err = ParsePortList(v); return }},
		{key: "ADVANCED_EXCLUDE_UDP", set: func(c *Config, v string) (err error) { c.AdvancedExcludeUDP, err = ParsePortList(v); return }},
		{key: "IGNORE_FILE",
			set:   func(c *Config, v string) error { c.IgnoreFile = cleanPath(v); return nil },
			check: func(c *Config) error { return checkPath(c.IgnoreFile, true) }},
		{key: "HISTORY_FILE",
			set:   func(c *Config, v string) error { c.HistoryFile = cleanPath(v); return nil },
			check: func(c *Config) error { return checkPath(c.HistoryFile, true) }},
		{key: "BLOCKED_FILE",
			set:   func(c *Config, v string) error { c.BlockedFile = cleanPath(v); return nil },
			check: func(c *Config) error { return checkPath(c.BlockedFile, true) }},
		{key: "RESOLVE_HOST", set: func(c *Config, v string) (err error) { c.ResolveHost, err = parseSwitch(v); return }},
		{key: "BLOCK_UDP",
			set:   func(c *Config, v string) (err error) { c.BlockUDP, err = parseBlockMode(v); return },
			check: func(c *Config) error { return checkBlockMode(c.BlockUDP) }},
		{key: "BLOCK_TCP",
			set:   func(c *Config, v string) (err error) { c.BlockTCP, err = parseBlockMode(v); return },
			check: func(c *Config) error { return checkBlockMode(c.BlockTCP) }},
		{key: "KILL_ROUTE", set: func(c *Config, v string) error { c.KillRoute = strings.TrimSpace(v); return nil }},
		{key: "KILL_HOSTS_DENY", set: func(c *Config, v string) error { c.KillHostsDeny = strings.TrimSpace(v); return nil }},
		{key: "KILL_RUN_CMD_FIRST", set: func(c *Config, v string) (err error) { c.KillRunCmdFirst, err = parseSwitch(v); return }},
		{key: "KILL_RUN_CMD", set: func(c *Config, v string) error { c.KillRunCmd = strings.TrimSpace(v); return nil }},
		{key: "SCAN_TRIGGER",
			set:   func(c *Config, v string) (err error) { c.ScanTrigger, err = parseCount(v); return },
			check: func(c *Config) error { return checkRange(c.ScanTrigger, 0, maxScanTrigger) }},
		{key: "PORT_BANNER",
			unused: "only the classic TCP mode (-tcp) accepts connections and sends it; the stealth and advanced modes watch raw packets"},
	}
}

// ownKeys are scanwarden's own keys.
func ownKeys() []keySpec {
	return []keySpec{
		{key: "INTERFACES",
			set:   func(c *Config, v string) error { c.Interfaces = splitList(v); return nil },
			check: func(c *Config) error { return checkInterfaces(c.Interfaces) }},
		{key: "CAPTURE_REALTIME", set: func(c *Config, v string) (err error) { c.CaptureRealtime, err = parseSwitch(v); return }},
		{key: "HOME_NETWORKS",
			set:   func(c *Config, v string) (err error) { c.HomeNetworks, err = parseNetworks(v); return },
			check: func(c *Config) error { return checkNetworks(c.HomeNetworks) }},
		{key: "DETECT_WINDOW",
			set:   func(c *Config, v string) (err error) { c.DetectWindow, err = parseDuration(v); return },
			check: func(c *Config) error { return checkDuration(c.DetectWindow, minDetectWindow, maxDetectWindow) }},
		{key: "DETECT_THRESHOLD",
			set:   func(c *Config, v string) (err error) { c.DetectThreshold, err = parseCount(v); return },
			check: func(c *Config) error { return checkRange(c.DetectThreshold, minDetectThreshold, maxDetectThreshold) }},
		{key: "MAX_SOURCES",
			set:   func(c *Config, v string) (err error) { c.MaxSources, err = parseCount(v); return },
			check: func(c *Config) error { return checkRange(c.MaxSources, minMaxSources, maxMaxSources) }},
		{key: "BAN_EXPIRY_TCP",
			set:   func(c *Config, v string) (err error) { c.BanExpiryTCP, err = parseDuration(v); return },
			check: func(c *Config) error { return checkBanExpiry(c.BanExpiryTCP) }},
		{key: "BAN_EXPIRY_UDP",
			set:   func(c *Config, v string) (err error) { c.BanExpiryUDP, err = parseDuration(v); return },
			check: func(c *Config) error { return checkBanExpiry(c.BanExpiryUDP) }},
		{key: "STATE_DIR",
			set:   func(c *Config, v string) error { c.StateDir = cleanPath(v); return nil },
			check: func(c *Config) error { return checkPath(c.StateDir, false) }},
		{key: "HOSTS_DENY_FILE",
			set:   func(c *Config, v string) error { c.HostsDenyFile = cleanPath(v); return nil },
			check: func(c *Config) error { return checkPath(c.HostsDenyFile, false) }},
		{key: "BLOCK_BACKEND",
			set:   func(c *Config, v string) error { c.BlockBackend = Backend(strings.TrimSpace(v)); return nil },
			check: func(c *Config) error { return checkBackend(c.BlockBackend) }},
		{key: "KERNEL_TRAP", set: func(c *Config, v string) (err error) { c.KernelTrap, err = parseSwitch(v); return }},
		{key: "TRAP_SET_SIZE",
			set:   func(c *Config, v string) (err error) { c.TrapSetSize, err = parseCount(v); return },
			check: func(c *Config) error { return checkRange(c.TrapSetSize, minTrapSetSize, maxTrapSetSize) }},
		{key: "TRAP_HOLD",
			set:   func(c *Config, v string) (err error) { c.TrapHold, err = parseDuration(v); return },
			check: func(c *Config) error { return checkDuration(c.TrapHold, minTrapHold, maxTrapHold) }},
		{key: "BLOCK_RATE_LIMIT",
			set:   func(c *Config, v string) (err error) { c.BlockRateLimit, err = parseCount(v); return },
			check: func(c *Config) error { return checkRange(c.BlockRateLimit, 1, maxRateLimit) }},
		{key: "NEVER_BLOCK_GATEWAY", set: func(c *Config, v string) (err error) { c.NeverBlockGateway, err = parseSwitch(v); return }},
		{key: "NEVER_BLOCK_RESOLVERS", set: func(c *Config, v string) (err error) { c.NeverBlockResolvers, err = parseSwitch(v); return }},
		{key: "SYSLOG", set: func(c *Config, v string) (err error) { c.Syslog, err = parseSwitch(v); return }},
		{key: "SYSLOG_TAG",
			set:   func(c *Config, v string) error { c.SyslogTag = strings.TrimSpace(v); return nil },
			check: func(c *Config) error { return checkSyslogTag(c.SyslogTag) }},
		{key: "METRICS_LISTEN",
			set:   func(c *Config, v string) error { c.MetricsListen = strings.TrimSpace(v); return nil },
			check: func(c *Config) error { return checkListen(c.MetricsListen) }},
		{key: "CROWDSEC_CREDENTIALS",
			set:   func(c *Config, v string) error { c.CrowdSecCredentials = cleanPath(v); return nil },
			check: func(c *Config) error { return checkPath(c.CrowdSecCredentials, true) }},
		{key: "CROWDSEC_BOUNCER_KEY_FILE",
			set:   func(c *Config, v string) error { c.CrowdSecBouncerKeyFile = cleanPath(v); return nil },
			check: func(c *Config) error { return checkPath(c.CrowdSecBouncerKeyFile, true) }},
		{key: "CROWDSEC_LAPI_URL",
			set:   func(c *Config, v string) error { c.CrowdSecLAPIURL = strings.TrimSpace(v); return nil },
			check: func(c *Config) error { return checkURL(c.CrowdSecLAPIURL) }},
		{key: "CROWDSEC_PULL_INTERVAL",
			set:   func(c *Config, v string) (err error) { c.CrowdSecPullInterval, err = parseDuration(v); return },
			check: func(c *Config) error { return checkDuration(c.CrowdSecPullInterval, minPullInterval, maxPullInterval) }},
	}
}

// parseSwitch reads a 0/1 switch.
func parseSwitch(v string) (bool, error) {
	switch strings.TrimSpace(v) {
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf(`must be "0" or "1", got %q`, excerpt.Of(v))
}

// parseBlockMode reads BLOCK_TCP/BLOCK_UDP.
func parseBlockMode(v string) (BlockMode, error) {
	switch strings.TrimSpace(v) {
	case "0":
		return BlockLogOnly, nil
	case "1":
		return BlockAct, nil
	case "2":
		return BlockRunCmdOnly, nil
	}
	return 0, fmt.Errorf(`must be "0" (log only), "1" (block) or "2" (run KILL_RUN_CMD only), got %q`, excerpt.Of(v))
}

func checkBlockMode(m BlockMode) error {
	if m < BlockLogOnly || m > BlockRunCmdOnly {
		return fmt.Errorf("must be 0, 1 or 2, got %d", int(m))
	}
	return nil
}

// parseCount reads a non-negative whole number (decimal digits only).
func parseCount(v string) (int, error) {
	v = strings.TrimSpace(v)
	if !isDigits(v) {
		return 0, fmt.Errorf("must be a whole number, got %q", excerpt.Of(v))
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > math.MaxInt32 {
		return 0, fmt.Errorf("number %s is too large", excerpt.Of(v))
	}
	return int(n), nil
}

func checkRange(n, lo, hi int) error {
	if n < lo || n > hi {
		return fmt.Errorf("must be from %d to %d, got %d", lo, hi, n)
	}
	return nil
}

// parseDuration reads a Go duration ("90s", "10m", "1h30m") or a whole
// number of seconds.
func parseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if isDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > math.MaxInt64/int64(time.Second) {
			return 0, fmt.Errorf("%s seconds is too long", excerpt.Of(v))
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf(`must be a duration like "90s", "10m" or "1h30m", or a number of seconds, got %q`, excerpt.Of(v))
	}
	return d, nil
}

func checkDuration(d, lo, hi time.Duration) error {
	if d < lo || d > hi {
		return fmt.Errorf("must be from %s to %s, got %s", fmtDuration(lo), fmtDuration(hi), fmtDuration(d))
	}
	return nil
}

func checkBanExpiry(d time.Duration) error {
	if d != 0 && d < minBanDuration {
		return fmt.Errorf(`must be "0" (never expires) or at least %s, got %s`, fmtDuration(minBanDuration), fmtDuration(d))
	}
	return nil
}

// fmtDuration prints whole hours, minutes or seconds without the trailing
// zero units of time.Duration.String ("24h", not "24h0m0s").
func fmtDuration(d time.Duration) string {
	switch {
	case d != 0 && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d != 0 && d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// cleanPath trims v and cleans it as a path; "" stays "".
func cleanPath(v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	return filepath.Clean(v)
}

// checkPath requires an absolute path (a daemon's working directory is not
// something to rely on); emptyOK allows "" for "none".
func checkPath(p string, emptyOK bool) error {
	if p == "" {
		if emptyOK {
			return nil
		}
		return errors.New("must not be empty")
	}
	if !filepath.IsAbs(p) {
		return fmt.Errorf("must be an absolute path, got %q", excerpt.Of(p))
	}
	return nil
}

// splitList splits a comma-separated list, trimming spaces and tabs and
// dropping empty entries and repeats (first kept). nil when empty.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		item = strings.Trim(item, " \t")
		if item != "" && !contains(out, item) {
			out = append(out, item)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkInterfaces applies Linux's rules for interface names: 1..15 bytes,
// not "." or "..", no "/", ":" or whitespace.
func checkInterfaces(names []string) error {
	for _, n := range names {
		switch {
		case n == "" || len(n) > maxIfaceName:
			return fmt.Errorf("interface name %q must be 1 to %d characters", excerpt.Of(n), maxIfaceName)
		case n == "." || n == "..":
			return fmt.Errorf("%q is not an interface name", n)
		case strings.ContainsAny(n, " \t\n\r\v\f"):
			return fmt.Errorf("interface name %q contains whitespace (separate names with commas)", n)
		case strings.Contains(n, "/"):
			return fmt.Errorf("interface name %q contains \"/\"", n)
		case strings.Contains(n, ":"):
			return fmt.Errorf("interface name %q contains \":\" (an alias such as eth0:1 is not an interface: use eth0)", n)
		}
	}
	return nil
}

// parseNetworks reads a comma-separated list of IPv4/IPv6 addresses and
// CIDR prefixes into masked prefixes (an address is a /32 or /128),
// dropping repeats. nil when empty.
func parseNetworks(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(v, ",") {
		item = strings.Trim(item, " \t")
		if item == "" {
			continue
		}
		p, err := parseAddrOrPrefix(item)
		if err != nil {
			return nil, err
		}
		dup := false
		for _, q := range out {
			dup = dup || q == p
		}
		if !dup {
			out = append(out, p)
		}
	}
	return out, nil
}

func checkNetworks(ps []netip.Prefix) error {
	for _, p := range ps {
		if !p.IsValid() || p != p.Masked() {
			return fmt.Errorf("%s is not a masked network prefix", p)
		}
	}
	return nil
}

func checkBackend(b Backend) error {
	switch b {
	case BackendAuto, BackendIptables, BackendNftables, BackendIpset, BackendDryRun, BackendNone:
		return nil
	}
	return fmt.Errorf(`must be "auto", "iptables", "nftables", "ipset", "dry-run" or "none", got %q`, excerpt.Of(string(b)))
}

// checkSyslogTag keeps the tag to what every syslog daemon parses as a
// tag: 1..32 of letters, digits, ".", "_" and "-".
func checkSyslogTag(t string) error {
	if t == "" || len(t) > maxSyslogTag {
		return fmt.Errorf("must be 1 to %d characters, got %q", maxSyslogTag, excerpt.Of(t))
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c == '.' || c == '_' || c == '-' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) {
			return fmt.Errorf("may only contain letters, digits, \".\", \"_\" and \"-\", got %q", excerpt.Of(t))
		}
	}
	return nil
}

// checkListen checks a listening address: empty (off), or IP:port or
// :port, the port from 1 to 65535 (an IPv6 address in brackets). A host
// name is refused: the address must not depend on DNS at start.
func checkListen(v string) error {
	if v == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf(`must be an address and port like "127.0.0.1:9717", "[::1]:9717" or ":9717", got %q`, excerpt.Of(v))
	}
	if host != "" {
		if a, err := netip.ParseAddr(host); err != nil || a.Zone() != "" {
			return fmt.Errorf("%q is not an IP address (a host name is not accepted), in %q", excerpt.Of(host), excerpt.Of(v))
		}
	}
	if n, err := strconv.Atoi(port); err != nil || !isDigits(port) || n < 1 || n > 65535 {
		return fmt.Errorf("port %q must be from 1 to 65535, in %q", excerpt.Of(port), excerpt.Of(v))
	}
	return nil
}

// checkURL checks an http or https URL of a host (empty: none).
func checkURL(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return fmt.Errorf(`must be an http or https URL like "http://127.0.0.1:8080", got %q`, excerpt.Of(v))
	}
	return nil
}
