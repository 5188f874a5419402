package conf

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/detect"
)

const testName = "test.conf"

func parseString(s string) (*Config, error) {
	return Parse(strings.NewReader(s), testName)
}

func mustParse(t *testing.T, s string) *Config {
	t.Helper()
	c, err := parseString(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return c
}

// lineErr asserts that err is a *LineError for testName at line and key,
// whose message contains msg, and whose text reads "test.conf:LINE: KEY: ".
func lineErr(t *testing.T, err error, line int, key, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want line %d key %q %q", line, key, msg)
	}
	var le *LineError
	if !errors.As(err, &le) {
		t.Fatalf("error %v (%T) is not a *LineError", err, err)
	}
	if le.File != testName || le.Line != line || le.Key != key {
		t.Errorf("error at %s:%d key %q, want %s:%d key %q (%v)", le.File, le.Line, le.Key, testName, line, key, err)
	}
	if !strings.Contains(le.Msg, msg) {
		t.Errorf("message %q does not contain %q", le.Msg, msg)
	}
	prefix := testName + ":" + strconv.Itoa(line) + ": "
	if key != "" {
		prefix += key + ": "
	}
	if !strings.HasPrefix(err.Error(), prefix) {
		t.Errorf("error text %q does not start with %q", err.Error(), prefix)
	}
}

func ports(ps ...uint16) detect.PortSet { return portsOf(ps...) }

func portRange(lo, hi uint16) detect.PortSet {
	var s detect.PortSet
	s.AddRange(lo, hi)
	return s
}

// comparable strips what Parse adds besides the values: the path, the
// set-tracking and the warnings.
func comparable(c *Config) Config {
	x := *c
	x.Path, x.set, x.Warnings = "", nil, nil
	return x
}

// TestShippedConfigIsDefault: etc/scanwarden.conf parses, without a warning,
// to exactly Default(), and documents every key.
func TestShippedConfigIsDefault(t *testing.T) {
	path := filepath.Join("..", "etc", "scanwarden.conf")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %q", c.Warnings)
	}
	got, want := reflect.ValueOf(comparable(c)), reflect.ValueOf(comparable(Default()))
	typ := got.Type()
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		if !reflect.DeepEqual(got.Field(i).Interface(), want.Field(i).Interface()) {
			t.Errorf("field %s: file gives %v, Default() has %v", f.Name, got.Field(i).Interface(), want.Field(i).Interface())
		}
	}
	if !reflect.DeepEqual(comparable(c), comparable(Default())) {
		t.Error("parsed config differs from Default()")
	}

	// The file documents the keys in Keys() order.
	last := 0
	for _, key := range Keys() {
		if l := c.Line(key); l != 0 {
			if l < last {
				t.Errorf("%s (line %d) is out of Keys() order", key, l)
			}
			last = l
		}
	}

	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range Keys() {
		if c.IsSet(key) {
			continue
		}
		// A key not set must at least be documented as a commented-out
		// setting (PORT_BANNER, which would give a warning).
		if !strings.Contains(string(text), "\n#"+key+"=") {
			t.Errorf("key %s is neither set nor documented in %s", key, path)
		}
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default() does not validate: %v", err)
	}
	for _, p := range []uint16{1, 11, 111, 1524, 6667, 31337, 54320} {
		if !c.TCPPorts.Has(p) {
			t.Errorf("default TCP_PORTS lacks %d", p)
		}
	}
	if c.TCPPorts.Len() != 26 || c.UDPPorts.Len() != 21 {
		t.Errorf("default port counts %d TCP, %d UDP; want 26, 21", c.TCPPorts.Len(), c.UDPPorts.Len())
	}
	if c.TCPPorts.Has(22) || c.TCPPorts.Has(80) {
		t.Error("default TCP_PORTS watches a service port")
	}
	if c.DetectWindow != detect.DefaultWindow || c.DetectThreshold != detect.DefaultThreshold ||
		c.MaxSources != detect.DefaultMaxSources || c.ScanTrigger != detect.DefaultScanTrigger {
		t.Error("detect tunables not taken from package detect")
	}
	if c.BlockTCP != BlockAct || c.BlockUDP != BlockAct || c.ResolveHost || c.KillRoute != "" ||
		c.KillHostsDeny != "ALL: $TARGET$ : DENY" || !c.NeverBlockGateway || !c.NeverBlockResolvers ||
		c.Syslog || c.SyslogTag != "scanwarden" || c.BlockBackend != BackendAuto || c.BlockRateLimit != 60 ||
		c.BanExpiryTCP != 24*time.Hour || c.BanExpiryUDP != 24*time.Hour {
		t.Errorf("unexpected defaults: %+v", comparable(c))
	}
	// the kernel trap is provisional: a small budget, a short hold
	if c.TrapSetSize != 256 || c.TrapHold != 5*time.Second || !c.KernelTrap {
		t.Errorf("trap defaults: TRAP_SET_SIZE %d, TRAP_HOLD %v, KERNEL_TRAP %v; want 256, 5s, on", c.TrapSetSize, c.TrapHold, c.KernelTrap)
	}
	if c.IgnoreFile != "/etc/scanwarden/scanwarden.ignore" || c.HistoryFile != "/var/lib/scanwarden/scanwarden.history" ||
		c.BlockedFile != "/var/lib/scanwarden/scanwarden.blocked" || c.StateDir != "/var/lib/scanwarden" {
		t.Errorf("unexpected default paths: %q %q %q %q", c.IgnoreFile, c.HistoryFile, c.BlockedFile, c.StateDir)
	}
	// Each call is a fresh value.
	c.TCPPorts.Add(22)
	if Default().TCPPorts.Has(22) {
		t.Error("Default() shares state between calls")
	}
}

func TestEmptyFileIsDefault(t *testing.T) {
	c := mustParse(t, "# nothing but a comment\n\n   \n\t# indented comment\n")
	if !reflect.DeepEqual(comparable(c), comparable(Default())) {
		t.Error("empty file does not give Default()")
	}
	if c.Path != testName {
		t.Errorf("Path = %q", c.Path)
	}
	for _, k := range Keys() {
		if c.IsSet(k) {
			t.Errorf("IsSet(%s) on an empty file", k)
		}
	}
}

// TestKeys sets each key to a non-default value and checks the field.
func TestKeys(t *testing.T) {
	tests := []struct {
		line string
		get  func(*Config) any
		want any
	}{
		{`TCP_PORTS="1,2,3"`, func(c *Config) any { return c.TCPPorts }, ports(1, 2, 3)},
		{`TCP_PORTS="22, 80 ,443"`, func(c *Config) any { return c.TCPPorts }, ports(22, 80, 443)},
		{`TCP_PORTS="512-515,1"`, func(c *Config) any { return c.TCPPorts }, ports(1, 512, 513, 514, 515)},
		{`TCP_PORTS="0,65535"`, func(c *Config) any { return c.TCPPorts }, ports(0, 65535)},
		{`TCP_PORTS="0-65535"`, func(c *Config) any { return c.TCPPorts }, portRange(0, 65535)},
		{`TCP_PORTS=""`, func(c *Config) any { return c.TCPPorts }, detect.PortSet{}},
		{`TCP_PORTS="7,7,7-8,"`, func(c *Config) any { return c.TCPPorts }, ports(7, 8)},
		{`UDP_PORTS="53 - 55"`, func(c *Config) any { return c.UDPPorts }, ports(53, 54, 55)},
		{`ADVANCED_PORTS_TCP="2048"`, func(c *Config) any { return c.AdvancedPortsTCP }, 2048},
		{`ADVANCED_PORTS_UDP="65535"`, func(c *Config) any { return c.AdvancedPortsUDP }, 65535},
		{`ADVANCED_EXCLUDE_TCP="22,80"`, func(c *Config) any { return c.AdvancedExcludeTCP }, ports(22, 80)},
		{`ADVANCED_EXCLUDE_UDP=""`, func(c *Config) any { return c.AdvancedExcludeUDP }, detect.PortSet{}},
		{`IGNORE_FILE="/etc/portsentry/portsentry.ignore"`, func(c *Config) any { return c.IgnoreFile }, "/etc/portsentry/portsentry.ignore"},
		{`IGNORE_FILE=""`, func(c *Config) any { return c.IgnoreFile }, ""},
		{`HISTORY_FILE="/var/lib/x//y/"`, func(c *Config) any { return c.HistoryFile }, "/var/lib/x/y"},
		{`BLOCKED_FILE="/tmp/ps.blocked"`, func(c *Config) any { return c.BlockedFile }, "/tmp/ps.blocked"},
		{`RESOLVE_HOST="1"`, func(c *Config) any { return c.ResolveHost }, true},
		{`BLOCK_TCP="0"`, func(c *Config) any { return c.BlockTCP }, BlockLogOnly},
		{`BLOCK_UDP="0"`, func(c *Config) any { return c.BlockUDP }, BlockLogOnly},
		{"BLOCK_TCP=\"2\"\nKILL_RUN_CMD=\"/bin/page $TARGET$\"", func(c *Config) any { return c.BlockTCP }, BlockRunCmdOnly},
		{`KILL_ROUTE="/sbin/iptables -I INPUT -s $TARGET$ -j DROP"`, func(c *Config) any { return c.KillRoute }, "/sbin/iptables -I INPUT -s $TARGET$ -j DROP"},
		{`KILL_ROUTE="/bin/echo 'block in from $TARGET$/32 to any' | /sbin/ipf -f -"`, func(c *Config) any { return c.KillRoute }, "/bin/echo 'block in from $TARGET$/32 to any' | /sbin/ipf -f -"},
		{`KILL_HOSTS_DENY="ALL: $TARGET$"`, func(c *Config) any { return c.KillHostsDeny }, "ALL: $TARGET$"},
		{`KILL_HOSTS_DENY=""`, func(c *Config) any { return c.KillHostsDeny }, ""},
		{`KILL_RUN_CMD="/usr/local/bin/alert $TARGET$ $PORT$ $MODE$"`, func(c *Config) any { return c.KillRunCmd }, "/usr/local/bin/alert $TARGET$ $PORT$ $MODE$"},
		{`KILL_RUN_CMD_FIRST="1"`, func(c *Config) any { return c.KillRunCmdFirst }, true},
		{`SCAN_TRIGGER="3"`, func(c *Config) any { return c.ScanTrigger }, 3},
		{`PORT_BANNER="go away"`, func(c *Config) any { return c.Unused }, map[string]string{"PORT_BANNER": "go away"}},
		{`INTERFACES="eth0, wlp3s0,eth0"`, func(c *Config) any { return c.Interfaces }, []string{"eth0", "wlp3s0"}},
		{`INTERFACES="veth-vict-01234"`, func(c *Config) any { return c.Interfaces }, []string{"veth-vict-01234"}},
		{`INTERFACES=""`, func(c *Config) any { return c.Interfaces }, []string(nil)},
		{`HOME_NETWORKS="198.51.100.0/24, fd00:77::/64"`, func(c *Config) any { return c.HomeNetworks },
			[]netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("fd00:77::/64")}},
		{`HOME_NETWORKS="198.51.100.7,2001:db8::1,198.51.100.9/24"`, func(c *Config) any { return c.HomeNetworks },
			[]netip.Prefix{netip.MustParsePrefix("198.51.100.7/32"), netip.MustParsePrefix("2001:db8::1/128"), netip.MustParsePrefix("198.51.100.0/24")}},
		{`HOME_NETWORKS="::ffff:192.0.2.1"`, func(c *Config) any { return c.HomeNetworks }, []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}},
		{`DETECT_WINDOW="600"`, func(c *Config) any { return c.DetectWindow }, 600 * time.Second},
		{`DETECT_WINDOW="10m"`, func(c *Config) any { return c.DetectWindow }, 10 * time.Minute},
		{`DETECT_WINDOW="1s"`, func(c *Config) any { return c.DetectWindow }, time.Second},
		{`DETECT_WINDOW="24h"`, func(c *Config) any { return c.DetectWindow }, 24 * time.Hour},
		{`DETECT_THRESHOLD="1"`, func(c *Config) any { return c.DetectThreshold }, 1},
		{`DETECT_THRESHOLD="1000"`, func(c *Config) any { return c.DetectThreshold }, 1000},
		{`MAX_SOURCES="64"`, func(c *Config) any { return c.MaxSources }, 64},
		{`MAX_SOURCES="4194304"`, func(c *Config) any { return c.MaxSources }, 4194304},
		{`BAN_EXPIRY_TCP="0"`, func(c *Config) any { return c.BanExpiryTCP }, time.Duration(0)},
		{`BAN_EXPIRY_TCP="3600"`, func(c *Config) any { return c.BanExpiryTCP }, time.Hour},
		{`BAN_EXPIRY_UDP="90m"`, func(c *Config) any { return c.BanExpiryUDP }, 90 * time.Minute},
		{`STATE_DIR="/srv/scanwarden"`, func(c *Config) any { return c.StateDir }, "/srv/scanwarden"},
		{`BLOCK_BACKEND="auto"`, func(c *Config) any { return c.BlockBackend }, BackendAuto},
		{`BLOCK_BACKEND="dry-run"`, func(c *Config) any { return c.BlockBackend }, BackendDryRun},
		{`BLOCK_BACKEND="none"`, func(c *Config) any { return c.BlockBackend }, BackendNone},
		{`BLOCK_BACKEND="iptables"`, func(c *Config) any { return c.BlockBackend }, BackendIptables},
		{`BLOCK_BACKEND="nftables"`, func(c *Config) any { return c.BlockBackend }, BackendNftables},
		{`BLOCK_BACKEND="ipset"`, func(c *Config) any { return c.BlockBackend }, BackendIpset},
		{`KERNEL_TRAP="0"`, func(c *Config) any { return c.KernelTrap }, false},
		{`CAPTURE_REALTIME="0"`, func(c *Config) any { return c.CaptureRealtime }, false},
		{`TRAP_SET_SIZE="1000"`, func(c *Config) any { return c.TrapSetSize }, 1000},
		{`TRAP_SET_SIZE="16"`, func(c *Config) any { return c.TrapSetSize }, 16},
		{`TRAP_SET_SIZE="4194304"`, func(c *Config) any { return c.TrapSetSize }, 4194304},
		{`TRAP_HOLD="10"`, func(c *Config) any { return c.TrapHold }, 10 * time.Second},
		{`TRAP_HOLD="1"`, func(c *Config) any { return c.TrapHold }, time.Second},
		{`TRAP_HOLD="60"`, func(c *Config) any { return c.TrapHold }, time.Minute},
		{`TRAP_HOLD="2s"`, func(c *Config) any { return c.TrapHold }, 2 * time.Second},
		{`BLOCK_RATE_LIMIT="1"`, func(c *Config) any { return c.BlockRateLimit }, 1},
		{`NEVER_BLOCK_GATEWAY="0"`, func(c *Config) any { return c.NeverBlockGateway }, false},
		{`NEVER_BLOCK_RESOLVERS="0"`, func(c *Config) any { return c.NeverBlockResolvers }, false},
		{`SYSLOG="1"`, func(c *Config) any { return c.Syslog }, true},
		{`SYSLOG_TAG="portsentry"`, func(c *Config) any { return c.SyslogTag }, "portsentry"},
		{`METRICS_LISTEN="127.0.0.1:9717"`, func(c *Config) any { return c.MetricsListen }, "127.0.0.1:9717"},
		{`METRICS_LISTEN="[::1]:9717"`, func(c *Config) any { return c.MetricsListen }, "[::1]:9717"},
		{`METRICS_LISTEN=":9717"`, func(c *Config) any { return c.MetricsListen }, ":9717"},
		{`METRICS_LISTEN=""`, func(c *Config) any { return c.MetricsListen }, ""},
		{`CROWDSEC_CREDENTIALS="/etc/scanwarden/crowdsec.yaml"`, func(c *Config) any { return c.CrowdSecCredentials }, "/etc/scanwarden/crowdsec.yaml"},
		{`CROWDSEC_LAPI_URL="https://lapi.example:8443/"`, func(c *Config) any { return c.CrowdSecLAPIURL }, "https://lapi.example:8443/"},
		{`CROWDSEC_PULL_INTERVAL="2s"`, func(c *Config) any { return c.CrowdSecPullInterval }, 2 * time.Second},
		{`CROWDSEC_PULL_INTERVAL="60"`, func(c *Config) any { return c.CrowdSecPullInterval }, time.Minute},
		// Syntax variants.
		{`RESOLVE_HOST = "1"`, func(c *Config) any { return c.ResolveHost }, true},
		{"\tSCAN_TRIGGER\t=\t\"2\"\t", func(c *Config) any { return c.ScanTrigger }, 2},
		{`SCAN_TRIGGER=4`, func(c *Config) any { return c.ScanTrigger }, 4},
		{`SCAN_TRIGGER=5 # five hits`, func(c *Config) any { return c.ScanTrigger }, 5},
		{`SCAN_TRIGGER="6" # six hits`, func(c *Config) any { return c.ScanTrigger }, 6},
		{`SCAN_TRIGGER="6"# six hits`, func(c *Config) any { return c.ScanTrigger }, 6},
		{`KILL_RUN_CMD=/bin/alert#x $TARGET$`, func(c *Config) any { return c.KillRunCmd }, "/bin/alert#x $TARGET$"},
		{`KILL_RUN_CMD="/bin/alert $TARGET$ '#1'" # comment`, func(c *Config) any { return c.KillRunCmd }, "/bin/alert $TARGET$ '#1'"},
		{`PORT_BANNER="*** #1 NO ENTRY *** # really"`, func(c *Config) any { return c.Unused["PORT_BANNER"] }, "*** #1 NO ENTRY *** # really"},
		{"\uFEFFSCAN_TRIGGER=\"7\"", func(c *Config) any { return c.ScanTrigger }, 7},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			c := mustParse(t, tt.line+"\n")
			if got := tt.get(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			key := strings.TrimPrefix(strings.Fields(strings.SplitN(tt.line, "=", 2)[0])[0], "\uFEFF")
			if !c.IsSet(key) || c.Line(key) != 1 {
				t.Errorf("IsSet(%s)=%v Line=%d, want set at line 1", key, c.IsSet(key), c.Line(key))
			}
		})
	}
}

// TestKeyErrors: each bad value is a *LineError naming file, line and key.
func TestKeyErrors(t *testing.T) {
	tests := []struct {
		text string
		line int
		key  string
		msg  string
	}{
		// Syntax.
		{`TCP_PORTS`, 1, "", `missing "=": lines are KEY="value", got "TCP_PORTS"`},
		{`TCP_PORTS "1"`, 1, "", `missing "="`},
		{`hello world`, 1, "", `missing "="`},
		{`TCP_PORTS : "1" = x`, 1, "TCP_PORTS", `expected "=" after the key`},
		{`="1"`, 1, "", `expected KEY="value"`},
		{`-TCP_PORTS="1"`, 1, "", `expected KEY="value"`},
		{"# ok\nTCP_PORTS=\"1,2", 2, "TCP_PORTS", "unterminated quote"},
		{`TCP_PORTS="1" 2`, 1, "TCP_PORTS", "after the closing quote"},
		{`TCP_PORTS="1""2"`, 1, "TCP_PORTS", "after the closing quote"},
		{`TCP_PORTS=1"`, 1, "TCP_PORTS", "stray quote"},
		{"KILL_RUN_CMD=\"a\x01 $TARGET$\"", 1, "KILL_RUN_CMD", "control character"},
		{"\n\nFOO=\"1\"", 3, "FOO", "unknown key"},
		{`tcp_ports="1"`, 1, "tcp_ports", "did you mean TCP_PORTS?"},
		{`LOG_FILE="/var/log/x"`, 1, "LOG_FILE", "unknown key"},
		// Ports.
		{`TCP_PORTS="1,x"`, 1, "TCP_PORTS", `bad port "x"`},
		{`TCP_PORTS="65536"`, 1, "TCP_PORTS", "out of range 0..65535"},
		{`TCP_PORTS="99999999999999999999999"`, 1, "TCP_PORTS", "out of range 0..65535"},
		{`TCP_PORTS="-1"`, 1, "TCP_PORTS", "bad port range"},
		{`TCP_PORTS="+1"`, 1, "TCP_PORTS", "bad port"},
		{`UDP_PORTS="10-5"`, 1, "UDP_PORTS", "reversed port range"},
		{`UDP_PORTS="1-2-3"`, 1, "UDP_PORTS", "bad port range"},
		{`UDP_PORTS="5-"`, 1, "UDP_PORTS", "bad port range"},
		{`UDP_PORTS="1 2"`, 1, "UDP_PORTS", "not a number"},
		{`ADVANCED_EXCLUDE_TCP="113,70000"`, 1, "ADVANCED_EXCLUDE_TCP", "out of range"},
		{`ADVANCED_EXCLUDE_UDP="a"`, 1, "ADVANCED_EXCLUDE_UDP", "not a number"},
		{`ADVANCED_PORTS_TCP="0"`, 1, "ADVANCED_PORTS_TCP", "from 1 to 65535"},
		{`ADVANCED_PORTS_TCP="65536"`, 1, "ADVANCED_PORTS_TCP", "from 1 to 65535"},
		{`ADVANCED_PORTS_UDP="1k"`, 1, "ADVANCED_PORTS_UDP", "whole number"},
		// Switches.
		{`RESOLVE_HOST="yes"`, 1, "RESOLVE_HOST", `"0" or "1"`},
		{`RESOLVE_HOST="2"`, 1, "RESOLVE_HOST", `"0" or "1"`},
		{`BLOCK_TCP="3"`, 1, "BLOCK_TCP", `"0" (log only), "1" (block) or "2"`},
		{`BLOCK_UDP=""`, 1, "BLOCK_UDP", `"0" (log only)`},
		{`KILL_RUN_CMD_FIRST="true"`, 1, "KILL_RUN_CMD_FIRST", `"0" or "1"`},
		{`NEVER_BLOCK_GATEWAY="on"`, 1, "NEVER_BLOCK_GATEWAY", `"0" or "1"`},
		{`NEVER_BLOCK_RESOLVERS="01"`, 1, "NEVER_BLOCK_RESOLVERS", `"0" or "1"`},
		{`SYSLOG="y"`, 1, "SYSLOG", `"0" or "1"`},
		// Numbers.
		{`SCAN_TRIGGER="-1"`, 1, "SCAN_TRIGGER", "whole number"},
		{`SCAN_TRIGGER="65536"`, 1, "SCAN_TRIGGER", "from 0 to 65535"},
		{`SCAN_TRIGGER="1.5"`, 1, "SCAN_TRIGGER", "whole number"},
		{`DETECT_THRESHOLD="0"`, 1, "DETECT_THRESHOLD", "from 1 to 1000"},
		{`DETECT_THRESHOLD="1001"`, 1, "DETECT_THRESHOLD", "from 1 to 1000"},
		{`DETECT_THRESHOLD="99999999999999999999"`, 1, "DETECT_THRESHOLD", "too large"},
		{`MAX_SOURCES="63"`, 1, "MAX_SOURCES", "from 64 to 4194304"},
		{`MAX_SOURCES="4194305"`, 1, "MAX_SOURCES", "from 64 to 4194304"},
		{`BLOCK_RATE_LIMIT="0"`, 1, "BLOCK_RATE_LIMIT", "from 1 to"},
		{`BLOCK_RATE_LIMIT="ten"`, 1, "BLOCK_RATE_LIMIT", "whole number"},
		// Durations.
		{`DETECT_WINDOW="0"`, 1, "DETECT_WINDOW", "from 1s to 24h, got 0s"},
		{`DETECT_WINDOW="500ms"`, 1, "DETECT_WINDOW", "from 1s to 24h"},
		{`DETECT_WINDOW="25h"`, 1, "DETECT_WINDOW", "from 1s to 24h, got 25h"},
		{`DETECT_WINDOW="-5s"`, 1, "DETECT_WINDOW", "from 1s to 24h"},
		{`DETECT_WINDOW="1 minute"`, 1, "DETECT_WINDOW", "must be a duration"},
		{`DETECT_WINDOW="99999999999999999999"`, 1, "DETECT_WINDOW", "too long"},
		{`BAN_EXPIRY_TCP="10ms"`, 1, "BAN_EXPIRY_TCP", `"0" (never expires) or at least 1s`},
		{`BAN_EXPIRY_UDP="-1h"`, 1, "BAN_EXPIRY_UDP", "at least 1s"},
		{`BAN_EXPIRY_UDP="forever"`, 1, "BAN_EXPIRY_UDP", "must be a duration"},
		// Paths and names.
		{`IGNORE_FILE="portsentry.ignore"`, 1, "IGNORE_FILE", "absolute path"},
		{`HISTORY_FILE="var/x"`, 1, "HISTORY_FILE", "absolute path"},
		{`BLOCKED_FILE="./b"`, 1, "BLOCKED_FILE", "absolute path"},
		{`STATE_DIR=""`, 1, "STATE_DIR", "must not be empty"},
		{`STATE_DIR="state"`, 1, "STATE_DIR", "absolute path"},
		{`METRICS_LISTEN="9717"`, 1, "METRICS_LISTEN", "address and port"},
		{`CROWDSEC_CREDENTIALS="crowdsec.yaml"`, 1, "CROWDSEC_CREDENTIALS", "absolute path"},
		{`CROWDSEC_LAPI_URL="127.0.0.1:8080"`, 1, "CROWDSEC_LAPI_URL", "http or https URL"},
		{`CROWDSEC_LAPI_URL="http://u:p@lapi:8080"`, 1, "CROWDSEC_LAPI_URL", "http or https URL"},
		{`CROWDSEC_PULL_INTERVAL="100ms"`, 1, "CROWDSEC_PULL_INTERVAL", "from 1s to 1h"},
		{`CROWDSEC_BOUNCER_KEY_FILE="/etc/scanwarden/bouncer.key"`, 1, "CROWDSEC_BOUNCER_KEY_FILE", "needs the Local API's URL"},
		{`METRICS_LISTEN="localhost:9717"`, 1, "METRICS_LISTEN", "not an IP address"},
		{`METRICS_LISTEN="127.0.0.1:0"`, 1, "METRICS_LISTEN", "from 1 to 65535"},
		{`METRICS_LISTEN="127.0.0.1:http"`, 1, "METRICS_LISTEN", "from 1 to 65535"},
		{`METRICS_LISTEN="[fe80::1%eth0]:9717"`, 1, "METRICS_LISTEN", "not an IP address"},
		{`INTERFACES="eth0,averyveryverylongname"`, 1, "INTERFACES", "1 to 15 characters"},
		{`INTERFACES="eth0 eth1"`, 1, "INTERFACES", "whitespace"},
		{`INTERFACES="a/b"`, 1, "INTERFACES", `"/"`},
		{`INTERFACES="eth0:1"`, 1, "INTERFACES", "alias"},
		{`INTERFACES=".."`, 1, "INTERFACES", "not an interface name"},
		{`HOME_NETWORKS="192.0.2.0/33"`, 1, "HOME_NETWORKS", "not an address/bits prefix"},
		{`HOME_NETWORKS="example.com"`, 1, "HOME_NETWORKS", "not an IPv4 or IPv6 address"},
		{`HOME_NETWORKS="fe80::1%eth0"`, 1, "HOME_NETWORKS", "zone"},
		{`HOME_NETWORKS="10.0.0.0/8 192.0.2.0/24"`, 1, "HOME_NETWORKS", "one address"},
		{`BLOCK_BACKEND="nft"`, 1, "BLOCK_BACKEND", `"auto", "iptables", "nftables", "ipset", "dry-run" or "none"`},
		{`BLOCK_BACKEND="AUTO"`, 1, "BLOCK_BACKEND", `"auto", "iptables", "nftables", "ipset", "dry-run" or "none"`},
		{`BLOCK_BACKEND="IPTABLES"`, 1, "BLOCK_BACKEND", `"auto", "iptables", "nftables", "ipset", "dry-run" or "none"`},
		{`TRAP_SET_SIZE="15"`, 1, "TRAP_SET_SIZE", "must be from 16 to 4194304, got 15"},
		{`TRAP_SET_SIZE="4194305"`, 1, "TRAP_SET_SIZE", "must be from 16 to 4194304, got 4194305"},
		{`TRAP_SET_SIZE="lots"`, 1, "TRAP_SET_SIZE", "whole number"},
		{`TRAP_HOLD="0"`, 1, "TRAP_HOLD", "must be from 1s to 1m, got 0s"},
		{`TRAP_HOLD="61"`, 1, "TRAP_HOLD", "must be from 1s to 1m, got 61s"},
		{`TRAP_HOLD="500ms"`, 1, "TRAP_HOLD", "must be from 1s to 1m, got 500ms"},
		{`TRAP_HOLD="24h"`, 1, "TRAP_HOLD", "must be from 1s to 1m, got 24h"},
		{`TRAP_HOLD="-5"`, 1, "TRAP_HOLD", "must be a duration"},
		{`TRAP_HOLD="soon"`, 1, "TRAP_HOLD", "must be a duration"},
		{`KERNEL_TRAP="yes"`, 1, "KERNEL_TRAP", ""},
		{`CAPTURE_REALTIME="on"`, 1, "CAPTURE_REALTIME", ""},
		{`SYSLOG_TAG=""`, 1, "SYSLOG_TAG", "1 to 32 characters"},
		{`SYSLOG_TAG="port sentry"`, 1, "SYSLOG_TAG", "may only contain"},
		{`SYSLOG_TAG="a:b"`, 1, "SYSLOG_TAG", "may only contain"},
		// Cross-key checks (Validate) point at the key's line.
		{"# x\nBLOCK_TCP=\"2\"", 2, "BLOCK_TCP", "KILL_RUN_CMD is empty"},
		{"BLOCK_UDP=\"2\"\nKILL_RUN_CMD=\"\"", 1, "BLOCK_UDP", "KILL_RUN_CMD is empty"},
		{"BLOCK_TCP=\"0\"\nKILL_HOSTS_DENY=\"ALL: 192.0.2.1\"", 2, "KILL_HOSTS_DENY", "no $TARGET$"},
		{"KILL_ROUTE=\"/sbin/route add -host reject\"", 1, "KILL_ROUTE", "no $TARGET$"},
		{"KILL_ROUTE=\"/sbin/route add -host $target$ reject\"", 1, "KILL_ROUTE", "no $TARGET$"},
		// Every bad line is reported, the first one first (see
		// TestEveryProblemReported).
		{"SCAN_TRIGGER=\"x\"\nBLOCK_TCP=\"9\"", 1, "SCAN_TRIGGER", "whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			c, err := parseString(tt.text)
			if c != nil {
				t.Error("Parse returned a config along with an error")
			}
			lineErr(t, err, tt.line, tt.key, tt.msg)
		})
	}
}

func TestFirstOccurrenceWins(t *testing.T) {
	c := mustParse(t, "TCP_PORTS=\"1,2\"\nBLOCK_TCP=\"0\"\nTCP_PORTS=\"3\"\nTCP_PORTS=\"not even ports\"\n")
	if got := c.TCPPorts.Ports(); !reflect.DeepEqual(got, []uint16{1, 2}) {
		t.Errorf("TCP_PORTS = %v, want the first setting [1 2]", got)
	}
	if c.Line("TCP_PORTS") != 1 {
		t.Errorf("Line(TCP_PORTS) = %d, want 1", c.Line("TCP_PORTS"))
	}
	want := []string{
		"test.conf:3: TCP_PORTS: set again; ignored, the first setting (line 1) wins as in PortSentry 1.2",
		"test.conf:4: TCP_PORTS: set again; ignored, the first setting (line 1) wins as in PortSentry 1.2",
	}
	if !reflect.DeepEqual(c.Warnings, want) {
		t.Errorf("warnings\n got %q\nwant %q", c.Warnings, want)
	}
	// A duplicate line must still be a KEY=value line.
	_, err := parseString("SCAN_TRIGGER=\"1\"\nSCAN_TRIGGER=\"2")
	lineErr(t, err, 2, "SCAN_TRIGGER", "unterminated quote")
}

func TestUnknownKeyErrorText(t *testing.T) {
	_, err := Parse(strings.NewReader("# c\nTCP_PORTS=\"1\"\nTCP_PROTS=\"2\"\n"), "/etc/portsentry/portsentry.conf")
	if err == nil || err.Error() != "/etc/portsentry/portsentry.conf:3: TCP_PROTS: unknown key" {
		t.Errorf("got %v", err)
	}
}

func TestUnusedKeyWarns(t *testing.T) {
	c := mustParse(t, "SCAN_TRIGGER=\"1\"\nPORT_BANNER=\"** UNAUTHORIZED ACCESS PROHIBITED **\"\n")
	if c.Unused["PORT_BANNER"] != "** UNAUTHORIZED ACCESS PROHIBITED **" {
		t.Errorf("Unused = %v", c.Unused)
	}
	if len(c.Warnings) != 1 || !strings.HasPrefix(c.Warnings[0], "test.conf:2: PORT_BANNER: accepted but not used yet") {
		t.Errorf("warnings = %q", c.Warnings)
	}
	if !c.IsSet("PORT_BANNER") {
		t.Error("PORT_BANNER not recorded as set")
	}
	if d := mustParse(t, ""); d.Unused != nil || d.Warnings != nil {
		t.Errorf("empty file: Unused %v Warnings %v", d.Unused, d.Warnings)
	}
}

// TestPortSentryDifferencesWarn: what PortSentry 1.2 reads otherwise
// than scanwarden is said, not refused: a KILL_RUN_CMD without $TARGET$
// (1.2 runs it as it is), and in a portsentry.conf (its paths set, no key
// of scanwarden's own) BLOCK_TCP, BLOCK_UDP and KILL_HOSTS_DENY left out,
// which 1.2 reads as log only and no hosts.deny entry.
func TestPortSentryDifferencesWarn(t *testing.T) {
	c := mustParse(t, "\n\n\nKILL_RUN_CMD=\"/usr/local/bin/page-admin\"\n")
	if c.KillRunCmd != "/usr/local/bin/page-admin" || len(c.Warnings) != 1 ||
		c.Warnings[0] != "test.conf:4: KILL_RUN_CMD: has no $TARGET$: it is run as written, without the scanner's address" {
		t.Errorf("KILL_RUN_CMD %q, warnings %q", c.KillRunCmd, c.Warnings)
	}

	portsentry := `TCP_PORTS="1,11,15,79,111"
IGNORE_FILE="/etc/portsentry/portsentry.ignore"
HISTORY_FILE="/var/lib/portsentry/portsentry.history"
BLOCKED_FILE="/var/lib/portsentry/portsentry.blocked"
KILL_ROUTE="/sbin/iptables -I INPUT -s $TARGET$ -j DROP"
#KILL_HOSTS_DENY="ALL: $TARGET$ : DENY"
#BLOCK_TCP="1"
`
	c = mustParse(t, portsentry)
	want := []string{
		`test.conf: BLOCK_TCP: not set: scanwarden blocks TCP scanners (its default "1"), where PortSentry 1.2 only logged them; set BLOCK_TCP="0" for that`,
		`test.conf: BLOCK_UDP: not set: scanwarden blocks UDP scanners (its default "1"), where PortSentry 1.2 only logged them; set BLOCK_UDP="0" for that`,
		`test.conf: KILL_HOSTS_DENY: not set: scanwarden adds "ALL: $TARGET$ : DENY" to /etc/hosts.deny for each blocked scanner (its default), where PortSentry 1.2 added nothing; set KILL_HOSTS_DENY="" for that`,
	}
	if !reflect.DeepEqual(c.Warnings, want) {
		t.Errorf("portsentry.conf without the switches: warnings\n got %q\nwant %q", c.Warnings, want)
	}
	// the switches set, whatever their values: nothing to say
	c = mustParse(t, portsentry+"BLOCK_TCP=\"1\"\nBLOCK_UDP=\"0\"\nKILL_HOSTS_DENY=\"\"\n")
	if len(c.Warnings) != 0 {
		t.Errorf("switches set: warnings %q", c.Warnings)
	}
	// a file with a key of scanwarden's own is scanwarden's: its
	// defaults are what it asks for
	c = mustParse(t, portsentry+"BLOCK_BACKEND=\"nftables\"\n")
	if len(c.Warnings) != 0 {
		t.Errorf("scanwarden's own file: warnings %q", c.Warnings)
	}
}

func TestCRLF(t *testing.T) {
	text := "# PortSentry config saved on Windows\r\n\r\nTCP_PORTS=\"1,7\"\r\nRESOLVE_HOST = \"1\"\r\nKILL_HOSTS_DENY=\"ALL: $TARGET$\"\r\nSCAN_TRIGGER=2\r\n"
	c := mustParse(t, text)
	if got := c.TCPPorts.Ports(); !reflect.DeepEqual(got, []uint16{1, 7}) {
		t.Errorf("TCP_PORTS = %v", got)
	}
	if !c.ResolveHost || c.KillHostsDeny != "ALL: $TARGET$" || c.ScanTrigger != 2 {
		t.Errorf("CRLF values: resolve %v deny %q trigger %d", c.ResolveHost, c.KillHostsDeny, c.ScanTrigger)
	}
	// A CR elsewhere is not a line ending: it is refused, not swallowed.
	_, err := parseString("KILL_RUN_CMD=\"/bin/x $TARGET$\r\"\r\n")
	lineErr(t, err, 1, "KILL_RUN_CMD", "control character")
}

func TestPortSentry12Style(t *testing.T) {
	// The shape of a PortSentry 1.2 file: quoted values, a spaced key,
	// commented alternatives, a banner with "#" inside.
	text := `# PortSentry Configuration
#TCP_PORTS="1,7,9"
TCP_PORTS="1,11,15,79,111,119,143,540,635,1080,1524,2000,5742,6667,12345,12346,20034,27665,31337,32771,32772,32773,32774,40421,49724,54320"
ADVANCED_PORTS_TCP="1024"
IGNORE_FILE="/usr/local/psionic/portsentry/portsentry.ignore"
RESOLVE_HOST = "0"
BLOCK_UDP="0"
BLOCK_TCP="1"
#KILL_ROUTE="/sbin/route add $TARGET$ 333.444.555.666"
KILL_ROUTE="/sbin/route add -host $TARGET$ reject"
KILL_HOSTS_DENY="ALL: $TARGET$"
#KILL_RUN_CMD_FIRST = "0"
SCAN_TRIGGER="0"
PORT_BANNER="** UNAUTHORIZED ACCESS PROHIBITED ** #1 YOUR CONNECTION ATTEMPT HAS BEEN LOGGED."
# EOF
`
	c := mustParse(t, text)
	if c.BlockTCP != BlockAct || c.BlockUDP != BlockLogOnly || c.ResolveHost || !c.TCPPorts.Has(31337) || c.TCPPorts.Len() != 26 {
		t.Errorf("values: %v %v %v", c.BlockTCP, c.BlockUDP, c.TCPPorts.String())
	}
	if c.Unused["PORT_BANNER"] != "** UNAUTHORIZED ACCESS PROHIBITED ** #1 YOUR CONNECTION ATTEMPT HAS BEEN LOGGED." {
		t.Errorf("banner = %q", c.Unused["PORT_BANNER"])
	}
	if c.IsSet("KILL_RUN_CMD_FIRST") {
		t.Error("a commented-out key counts as set")
	}
	if c.TriggerHits() != 1 {
		t.Errorf("TriggerHits = %d", c.TriggerHits())
	}
}

func TestLongLine(t *testing.T) {
	text := "SCAN_TRIGGER=\"1\"\nTCP_PORTS=\"" + strings.Repeat("1,", maxLineLen) + "\"\n"
	_, err := parseString(text)
	lineErr(t, err, 2, "", "line longer than")
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestReadError(t *testing.T) {
	_, err := Parse(failingReader{}, "x.conf")
	if err == nil || !strings.Contains(err.Error(), "x.conf") || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("got %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "portsentry.conf")
	if err := os.WriteFile(path, []byte("BLOCK_TCP=\"0\"\nBOGUS=\"1\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	var le *LineError
	if !errors.As(err, &le) || le.File != path || le.Line != 2 || le.Key != "BOGUS" {
		t.Errorf("Load error = %v", err)
	}
	if err := os.WriteFile(path, []byte("BLOCK_TCP=\"0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil || c.Path != path || c.BlockTCP != BlockLogOnly {
		t.Errorf("Load = %+v, %v", c, err)
	}
	_, err = Load(filepath.Join(dir, "missing.conf"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v does not wrap fs.ErrNotExist", err)
	}
}

func TestValidateInCode(t *testing.T) {
	c := Default()
	c.DetectThreshold = 0
	err := c.Validate()
	var le *LineError
	if !errors.As(err, &le) || le.Key != "DETECT_THRESHOLD" || le.File != "" || le.Line != 0 {
		t.Fatalf("got %v", err)
	}
	if err.Error() != "DETECT_THRESHOLD: must be from 1 to 1000, got 0" {
		t.Errorf("text %q", err.Error())
	}

	c = mustParse(t, "BLOCK_TCP=\"0\"\n")
	c.BlockUDP = BlockRunCmdOnly
	err = c.Validate()
	if err == nil || err.Error() != `test.conf: BLOCK_UDP: is 2 (run KILL_RUN_CMD only) but KILL_RUN_CMD is empty; set KILL_RUN_CMD or use "0" or "1" (not set in this file)` {
		t.Errorf("got %v", err)
	}
	for _, mutate := range []func(*Config){
		func(c *Config) { c.BlockTCP = 3 },
		func(c *Config) { c.BlockBackend = "ipfw" },
		func(c *Config) { c.StateDir = "" },
		func(c *Config) { c.HomeNetworks = []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")} },
		func(c *Config) { c.Interfaces = []string{""} },
		func(c *Config) { c.BanExpiryUDP = -time.Second },
		func(c *Config) { c.SyslogTag = "" },
		func(c *Config) { c.KillHostsDeny = "ALL: everyone" },
		func(c *Config) { c.TrapHold = 0 },
		func(c *Config) { c.TrapHold = 2 * time.Minute },
		func(c *Config) { c.TrapSetSize = 8 },
	} {
		c := Default()
		mutate(c)
		if c.Validate() == nil {
			t.Errorf("Validate accepted %+v", comparable(c))
		}
	}
}

func TestTriggerAndAdvanced(t *testing.T) {
	for trigger, hits := range map[int]int{0: 1, 1: 1, 2: 2, 5: 5} {
		c := Default()
		c.ScanTrigger = trigger
		if c.TriggerHits() != hits {
			t.Errorf("SCAN_TRIGGER %d: TriggerHits %d, want %d", trigger, c.TriggerHits(), hits)
		}
	}
	c := Default()
	w := c.AdvancedWatchTCP()
	if w.Len() != 1024-2 || !w.Has(0) || !w.Has(1023) || w.Has(1024) || w.Has(113) || w.Has(139) {
		t.Errorf("advanced TCP = %s", w)
	}
	u := c.AdvancedWatchUDP()
	if u.Len() != 1024-4 || u.Has(67) || u.Has(137) || u.Has(138) || u.Has(520) || !u.Has(53) {
		t.Errorf("advanced UDP = %s", u)
	}
	c = mustParse(t, "ADVANCED_PORTS_TCP=\"65535\"\nADVANCED_EXCLUDE_TCP=\"\"\n")
	if w := c.AdvancedWatchTCP(); w.Len() != 65535 || w.Has(65535) {
		t.Errorf("advanced TCP 65535: %d ports", w.Len())
	}
}

func TestKeysList(t *testing.T) {
	keys := Keys()
	want12 := []string{"TCP_PORTS", "UDP_PORTS", "ADVANCED_PORTS_TCP", "ADVANCED_PORTS_UDP", "ADVANCED_EXCLUDE_TCP",
		"ADVANCED_EXCLUDE_UDP", "IGNORE_FILE", "HISTORY_FILE", "BLOCKED_FILE", "RESOLVE_HOST", "BLOCK_UDP", "BLOCK_TCP",
		"KILL_ROUTE", "KILL_HOSTS_DENY", "KILL_RUN_CMD", "KILL_RUN_CMD_FIRST", "SCAN_TRIGGER", "PORT_BANNER",
		"INTERFACES", "CAPTURE_REALTIME", "HOME_NETWORKS", "DETECT_WINDOW", "DETECT_THRESHOLD", "MAX_SOURCES", "BAN_EXPIRY_TCP",
		"BAN_EXPIRY_UDP", "STATE_DIR", "HOSTS_DENY_FILE", "BLOCK_BACKEND", "KERNEL_TRAP", "TRAP_SET_SIZE", "TRAP_HOLD", "BLOCK_RATE_LIMIT", "NEVER_BLOCK_GATEWAY",
		"NEVER_BLOCK_RESOLVERS", "SYSLOG", "SYSLOG_TAG", "METRICS_LISTEN", "CROWDSEC_CREDENTIALS", "CROWDSEC_BOUNCER_KEY_FILE",
		"CROWDSEC_LAPI_URL", "CROWDSEC_PULL_INTERVAL"}
	if len(keys) != len(want12) {
		t.Errorf("%d keys, want %d: %v", len(keys), len(want12), keys)
	}
	for _, k := range want12 {
		if !contains(keys, k) {
			t.Errorf("key %s missing", k)
		}
	}
}

func TestBlockModeString(t *testing.T) {
	for m, want := range map[BlockMode]string{0: "0 (log only)", 1: "1 (block)", 2: "2 (run KILL_RUN_CMD only)", 7: "7 (invalid)"} {
		if m.String() != want {
			t.Errorf("%d: %q", int(m), m.String())
		}
	}
}

// TestEveryProblemReported: Parse reports every bad line, each naming the
// file, the line and the key, one per line of the message, in file order;
// a bad value is reported once (not again by the checks across keys), and
// the first occurrence of a key still wins.
func TestEveryProblemReported(t *testing.T) {
	text := `# three bad lines and a good one
SCAN_TRIGGER="x"
TCP_PORTS="1,2"
DETECT_TRESHOLD="5"
BLOCK_TCP="9"
SCAN_TRIGGER="1"
`
	c, err := parseString(text)
	if c != nil {
		t.Fatal("Parse returned a config along with errors")
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %v (%T) is not an Errors", err, err)
	}
	want := []string{
		"test.conf:2: SCAN_TRIGGER: must be a whole number, got \"x\"",
		"test.conf:4: DETECT_TRESHOLD: unknown key",
		"test.conf:5: BLOCK_TCP: must be \"0\" (log only), \"1\" (block) or \"2\" (run KILL_RUN_CMD only), got \"9\"",
	}
	if err.Error() != strings.Join(want, "\n") {
		t.Fatalf("message\n%s\nwant\n%s", err, strings.Join(want, "\n"))
	}
	for i, le := range errs {
		if le.File != testName || le.Line != []int{2, 4, 5}[i] || le.Key == "" {
			t.Errorf("problem %d: %+v", i, le)
		}
	}
	// callers that expect one *LineError get the first
	lineErr(t, err, 2, "SCAN_TRIGGER", "whole number")

	// a bad value and a check across keys on another key both count
	_, err = parseString("BLOCK_UDP=\"2\"\nMAX_SOURCES=\"1\"\nKILL_ROUTE=\"/sbin/route $target$\"\n")
	if !errors.As(err, &errs) || len(errs) != 3 {
		t.Fatalf("got %v", err)
	}
	if errs[0].Line != 2 || errs[0].Key != "MAX_SOURCES" || errs[1].Key != "BLOCK_UDP" || errs[2].Key != "KILL_ROUTE" {
		t.Errorf("got %v", err)
	}
	// a key whose line is unreadable is not checked across keys again
	_, err = parseString("BLOCK_TCP=\"2\"\nKILL_RUN_CMD=\"/bin/x $TARGET$\n")
	if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "KILL_RUN_CMD" {
		t.Errorf("got %v", err)
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scanwarden.conf")
	os.WriteFile(path, []byte("TCP_PORTS=\"1,70000\"\nSYSLOG=\"yes\"\n\nSTATE_DIR=\"relative\"\n"), 0o644)
	_, err := Load(path)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 3 {
		t.Fatalf("got %v", err)
	}
	lines := strings.Split(err.Error(), "\n")
	for i, want := range []string{path + ":1: TCP_PORTS: ", path + ":2: SYSLOG: ", path + ":4: STATE_DIR: "} {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %d %q does not start with %q", i, lines[i], want)
		}
	}
}

func TestTooManyProblems(t *testing.T) {
	text := strings.Repeat("garbage\n", 500)
	_, err := parseString(text)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != maxErrors+1 {
		t.Fatalf("%d problems", len(errs))
	}
	if last := errs[maxErrors]; last.Line != maxErrors+1 || !strings.Contains(last.Msg, "stopped reading") {
		t.Errorf("last: %v", last)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.DetectThreshold = 0
	c.MaxSources = 1
	c.BlockTCP = BlockRunCmdOnly
	err := c.Validate()
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 3 {
		t.Fatalf("got %v", err)
	}
	if err.Error() != "DETECT_THRESHOLD: must be from 1 to 1000, got 0\nMAX_SOURCES: must be from 64 to 4194304, got 1\n"+
		`BLOCK_TCP: is 2 (run KILL_RUN_CMD only) but KILL_RUN_CMD is empty; set KILL_RUN_CMD or use "0" or "1"` {
		t.Errorf("text %q", err)
	}
}

// TestKeyError: a problem found after parsing names the line that set the
// key, or, for a key left at its default, the default value (no line 0).
func TestKeyError(t *testing.T) {
	c := mustParse(t, "# c\nHOSTS_DENY_FILE=\"/srv/hosts.deny\"\n")
	if got := c.KeyError("HOSTS_DENY_FILE", "a symbolic link").Error(); got != "test.conf:2: HOSTS_DENY_FILE: a symbolic link" {
		t.Errorf("set key: %q", got)
	}
	if got := c.KeyError("IGNORE_FILE", "missing").Error(); got != "test.conf: IGNORE_FILE (default "+DefaultIgnoreFile+"): missing" {
		t.Errorf("default key: %q", got)
	}
	if got := c.KeyError("SCAN_TRIGGER", "odd").Error(); got != "test.conf: SCAN_TRIGGER: odd (not set in this file)" {
		t.Errorf("default number: %q", got)
	}
	le := c.KeyError("IGNORE_FILE", "missing")
	if le.Line != 0 || le.Key != "IGNORE_FILE" || le.Default != DefaultIgnoreFile {
		t.Errorf("%+v", le)
	}
}

// TestTrapKeysErrorsNameFileAndLine: a TRAP_HOLD or TRAP_SET_SIZE out of
// its range is a config error naming the file and the line that set it,
// as for every key; in range, both reach the Config.
func TestTrapKeysErrorsNameFileAndLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scanwarden.conf")
	os.WriteFile(path, []byte("# kernel trap\nKERNEL_TRAP=\"1\"\n\nTRAP_HOLD=\"90\"\nTRAP_SET_SIZE=\"8\"\n"), 0o644)
	_, err := Load(path)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 2 {
		t.Fatalf("got %v, want two problems", err)
	}
	want := path + ":4: TRAP_HOLD: must be from 1s to 1m, got 90s\n" +
		path + ":5: TRAP_SET_SIZE: must be from 16 to 4194304, got 8"
	if err.Error() != want {
		t.Errorf("message\n%s\nwant\n%s", err, want)
	}
	for i, le := range errs {
		if le.File != path || le.Line != 4+i {
			t.Errorf("problem %d: %+v", i, le)
		}
	}

	os.WriteFile(path, []byte("TRAP_SET_SIZE=\"16\"\nTRAP_HOLD=\"2\"\n"), 0o644)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.TrapSetSize != 16 || c.TrapHold != 2*time.Second || c.Line("TRAP_HOLD") != 2 {
		t.Errorf("TRAP_SET_SIZE %d, TRAP_HOLD %v (line %d); want 16, 2s (line 2)", c.TrapSetSize, c.TrapHold, c.Line("TRAP_HOLD"))
	}
}

// TestResolveBackend: BLOCK_BACKEND="auto" (the default) stands for the
// backend it is resolved to, once; Setting and KeyError still say "auto";
// a backend set by name is never replaced; auto stands only for a firewall
// backend, and only with a reason.
func TestResolveBackend(t *testing.T) {
	c := mustParse(t, "# default backend\n")
	if c.BlockBackend != BackendAuto || c.Setting() != BackendAuto || c.BlockBackend.HasSets() {
		t.Fatalf("unresolved: %q, setting %q", c.BlockBackend, c.Setting())
	}
	if why, ok := c.AutoReason(); ok || why != "" {
		t.Errorf("unresolved: AutoReason %q %v", why, ok)
	}
	for _, bad := range []struct {
		b   Backend
		why string
	}{{BackendAuto, "x"}, {BackendDryRun, "x"}, {BackendNone, "x"}, {"ipfw", "x"}, {BackendNftables, ""}} {
		if err := c.ResolveBackend(bad.b, bad.why); err == nil {
			t.Errorf("ResolveBackend(%q, %q) accepted", bad.b, bad.why)
		}
	}
	if c.BlockBackend != BackendAuto {
		t.Fatalf("a refused resolution changed the backend to %q", c.BlockBackend)
	}
	if err := c.ResolveBackend(BackendNftables, "the kernel's nf_tables answers"); err != nil {
		t.Fatal(err)
	}
	why, ok := c.AutoReason()
	if c.BlockBackend != BackendNftables || !c.BlockBackend.HasSets() || !ok || why != "the kernel's nf_tables answers" || c.Setting() != BackendAuto {
		t.Errorf("resolved: %q (%q %v), setting %q", c.BlockBackend, why, ok, c.Setting())
	}
	if err := c.Validate(); err != nil {
		t.Errorf("a resolved config does not validate: %v", err)
	}
	if got := c.KeyError("BLOCK_BACKEND", "odd").Error(); got != "test.conf: BLOCK_BACKEND (default auto): odd" {
		t.Errorf("KeyError: %q", got)
	}
	// once: a second resolution leaves the first
	if err := c.ResolveBackend(BackendIpset, "other"); err != nil || c.BlockBackend != BackendNftables {
		t.Errorf("resolved again: %q %v", c.BlockBackend, err)
	}

	// a backend by name stays itself
	c = mustParse(t, "BLOCK_BACKEND=\"iptables\"\n")
	if err := c.ResolveBackend(BackendNftables, "the kernel's nf_tables answers"); err != nil || c.BlockBackend != BackendIptables || c.Setting() != BackendIptables {
		t.Errorf("named iptables: %q (setting %q) %v", c.BlockBackend, c.Setting(), err)
	}
	if _, ok := c.AutoReason(); ok {
		t.Error("named iptables: AutoReason says auto chose it")
	}
}
