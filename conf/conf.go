// Package conf reads scanwarden's configuration: PortSentry's
// portsentry.conf syntax and keys (1.2 and 2.x), scanwarden's own keys, and
// PortSentry ignore files. It only parses and checks: it opens no socket,
// touches no firewall and knows nothing of the daemon. Only the CLI and
// the daemon package read it; they hand the other packages plain values.
//
// A config file is a list of KEY="value" lines, with "#" comments and blank
// lines; KEY = "value" (as PortSentry 2.x writes it) and unquoted values are
// accepted too, and so are CRLF line endings. As in PortSentry 1.2 the first
// occurrence of a key wins; later ones are reported in Config.Warnings. An
// unknown key, a malformed line or a bad value is an error that names the
// file, the line and the key (*LineError); Parse reports every one it
// finds, not only the first (Errors). Keys absent from the file keep the
// values of Default().
package conf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/scanwarden/scanwarden/detect"
)

// BlockMode is the value of BLOCK_TCP and BLOCK_UDP, with PortSentry 1.2's
// meaning.
type BlockMode int

const (
	// BlockLogOnly (0): report the scan, block nothing, run nothing.
	BlockLogOnly BlockMode = 0
	// BlockAct (1): block the scanner (firewall backend, KILL_ROUTE,
	// KILL_HOSTS_DENY) and run KILL_RUN_CMD if it is set.
	BlockAct BlockMode = 1
	// BlockRunCmdOnly (2): only run KILL_RUN_CMD.
	BlockRunCmdOnly BlockMode = 2
)

// String returns the mode as the config file writes it and what it does,
// e.g. `1 (block)`.
func (m BlockMode) String() string {
	switch m {
	case BlockLogOnly:
		return "0 (log only)"
	case BlockAct:
		return "1 (block)"
	case BlockRunCmdOnly:
		return "2 (run KILL_RUN_CMD only)"
	}
	return fmt.Sprintf("%d (invalid)", int(m))
}

// Backend is the value of BLOCK_BACKEND: how scanwarden itself blocks a
// scanner.
type Backend string

const (
	// BackendAuto, the default, is no backend of its own: it stands for
	// the one the daemon chooses at start and on each reload, nftables
	// where the kernel's nf_tables answers, else ipset where the kernel's
	// ip_set answers and iptables/ip6tables have the set match, else
	// iptables; ipset first when KILL_ROUTE is an iptables DROP rule
	// (block/backends.Choose). Config.ResolveBackend records the choice.
	BackendAuto Backend = "auto"
	// BackendIptables inserts DROP rules with iptables/ip6tables.
	BackendIptables Backend = "iptables"
	// BackendNftables adds sources to nftables sets with timeouts (one
	// netlink message per ban, no process), matched by one drop rule per
	// family in scanwarden's own table.
	BackendNftables Backend = "nftables"
	// BackendIpset adds sources to ipset hash:ip sets with timeouts over
	// netlink, matched by one iptables rule per family.
	BackendIpset Backend = "ipset"
	// BackendDryRun logs the rules it would insert and changes nothing.
	BackendDryRun Backend = "dry-run"
	// BackendNone does no firewall blocking of its own (KILL_ROUTE,
	// KILL_HOSTS_DENY and KILL_RUN_CMD still apply).
	BackendNone Backend = "none"
)

// HasSets reports whether the backend keeps the blocked sources in kernel
// sets, and so can hold the kernel trap (KERNEL_TRAP). BackendAuto has
// none until it is resolved (Config.ResolveBackend).
func (b Backend) HasSets() bool { return b == BackendNftables || b == BackendIpset }

// Limits of the values scanwarden's own keys accept.
const (
	minDetectWindow    = time.Second
	maxDetectWindow    = 24 * time.Hour
	minDetectThreshold = 1
	maxDetectThreshold = 1000
	minMaxSources      = 64
	maxMaxSources      = 4194304
	// maxScanTrigger bounds SCAN_TRIGGER; PortSentry only asks for a
	// non-negative number, and no sensible trigger is anywhere near this.
	maxScanTrigger = 65535
	// maxIfaceName is IFNAMSIZ-1, the longest Linux interface name.
	maxIfaceName = 15
	maxSyslogTag = 32
	maxRateLimit = 1<<31 - 1
	// minTrapSetSize and maxTrapSetSize bound TRAP_SET_SIZE, the budget
	// of provisional trap entries: each is held for TRAP_HOLD only, so a
	// few dozen cover the first hits of the real scans a host sees at
	// once (below 16, one scan's decoys would fill it), and above 4M the
	// kernel memory it may take (~100 bytes an element) is no longer
	// small.
	minTrapSetSize = 16
	maxTrapSetSize = 4194304
	// minTrapHold and maxTrapHold bound TRAP_HOLD: the ipset backend's
	// timeouts are whole seconds, so less than one is none; more than a
	// minute is no longer provisional (the daemon decides within
	// milliseconds; the hold only has to outlast that).
	minTrapHold    = time.Second
	maxTrapHold    = time.Minute
	minBanDuration = time.Second
)

// Defaults of scanwarden's own keys (PortSentry's keys take PortSentry's
// defaults, see Default).
const (
	// DefaultStateDir is where scanwarden keeps its block list.
	DefaultStateDir = "/var/lib/scanwarden"
	// DefaultHostsDenyFile is HOSTS_DENY_FILE's default, PortSentry's
	// WRAPPER_HOSTS_DENY.
	DefaultHostsDenyFile = "/etc/hosts.deny"
	// DefaultIgnoreFile is IGNORE_FILE's default.
	DefaultIgnoreFile = "/etc/scanwarden/scanwarden.ignore"
	// DefaultHistoryFile is HISTORY_FILE's default.
	DefaultHistoryFile = "/var/lib/scanwarden/scanwarden.history"
	// DefaultBlockedFile is BLOCKED_FILE's default (the base name: as in
	// PortSentry, a mode suffix such as ".stcp" is appended).
	DefaultBlockedFile = "/var/lib/scanwarden/scanwarden.blocked"
	// DefaultKillHostsDeny is Debian's KILL_HOSTS_DENY.
	DefaultKillHostsDeny = "ALL: $TARGET$ : DENY"
	// DefaultBanExpiry is how long a block lasts unless BAN_EXPIRY_TCP or
	// BAN_EXPIRY_UDP says otherwise.
	DefaultBanExpiry = 24 * time.Hour
	// DefaultTrapSetSize is TRAP_SET_SIZE's default: 256 provisional
	// entries per family. A source is held there for TRAP_HOLD only,
	// until the daemon promotes it to a ban or releases it, so a few
	// hundred are more than the real scanners that hit a trap port within
	// a few seconds, and a forged flood that fills the set keeps no more
	// than 256 addresses trapped, for TRAP_HOLD.
	DefaultTrapSetSize = 256
	// DefaultCrowdSecPullInterval is CROWDSEC_PULL_INTERVAL's default,
	// what CrowdSec's firewall bouncers use (update_frequency): a scanner
	// blocked on one host is blocked on the others within it.
	DefaultCrowdSecPullInterval = 10 * time.Second
	// minPullInterval and maxPullInterval bound CROWDSEC_PULL_INTERVAL.
	minPullInterval = time.Second
	maxPullInterval = time.Hour
	// DefaultTrapHold is TRAP_HOLD's default: how long the kernel trap
	// holds the source of a first hit, 5 seconds, far more than the
	// daemon takes to promote or release it (milliseconds), short enough
	// that a forged probe costs the host it names nothing serious.
	DefaultTrapHold = 5 * time.Second
	// DefaultBlockRateLimit is BLOCK_RATE_LIMIT's default: new blocks a
	// minute, a brake on a flood of forged sources.
	DefaultBlockRateLimit = 60
	// DefaultSyslogTag is SYSLOG_TAG's default.
	DefaultSyslogTag = "scanwarden"
	// DefaultAdvancedPorts is PortSentry's ADVANCED_PORTS_TCP/UDP default.
	DefaultAdvancedPorts = 1024
)

// Config is a parsed configuration. Every field holds a valid value: the
// file's when the key was set there, Default()'s otherwise.
type Config struct {
	// Path is the file the config was read from (the name given to
	// Parse); "" for Default().
	Path string

	// TCPPorts is TCP_PORTS: the TCP trap ports.
	TCPPorts detect.PortSet
	// UDPPorts is UDP_PORTS: the UDP trap ports.
	UDPPorts detect.PortSet
	// AdvancedPortsTCP is ADVANCED_PORTS_TCP: in advanced mode TCP ports
	// 0..AdvancedPortsTCP-1 are watched (1..65535).
	AdvancedPortsTCP int
	// AdvancedPortsUDP is ADVANCED_PORTS_UDP, likewise for UDP.
	AdvancedPortsUDP int
	// AdvancedExcludeTCP is ADVANCED_EXCLUDE_TCP: TCP ports never watched
	// in advanced mode.
	AdvancedExcludeTCP detect.PortSet
	// AdvancedExcludeUDP is ADVANCED_EXCLUDE_UDP, likewise for UDP.
	AdvancedExcludeUDP detect.PortSet
	// IgnoreFile is IGNORE_FILE, an absolute path; "" for none.
	IgnoreFile string
	// HistoryFile is HISTORY_FILE, an absolute path; "" for none.
	HistoryFile string
	// BlockedFile is BLOCKED_FILE, the absolute base path of the blocked
	// files (a mode suffix is appended); "" for none.
	BlockedFile string
	// ResolveHost is RESOLVE_HOST: look up the scanner's DNS name for
	// the log lines.
	ResolveHost bool
	// BlockTCP is BLOCK_TCP.
	BlockTCP BlockMode
	// BlockUDP is BLOCK_UDP.
	BlockUDP BlockMode
	// KillRoute is KILL_ROUTE, a shell command with $TARGET$; "" for none.
	KillRoute string
	// KillHostsDeny is KILL_HOSTS_DENY, a hosts.deny line with $TARGET$;
	// "" for none.
	KillHostsDeny string
	// KillRunCmd is KILL_RUN_CMD, a shell command, with $TARGET$ or not (and
	// optionally $PORT$, $MODE$); "" for none.
	KillRunCmd string
	// KillRunCmdFirst is KILL_RUN_CMD_FIRST: run KillRunCmd before
	// blocking rather than after.
	KillRunCmdFirst bool
	// ScanTrigger is SCAN_TRIGGER as written (0..65535); see TriggerHits
	// for what it means.
	ScanTrigger int

	// Interfaces is INTERFACES: the interfaces to capture on; empty means
	// every interface, through libpcap's "any" device (loopback included).
	Interfaces []string
	// CaptureRealtime is CAPTURE_REALTIME: run the capture and decision
	// threads at real-time priority (SCHED_FIFO 1) when the process may.
	CaptureRealtime bool
	// HomeNetworks is HOME_NETWORKS: the protected destinations, masked,
	// addresses as /32 or /128; empty means every destination.
	HomeNetworks []netip.Prefix
	// DetectWindow is DETECT_WINDOW, the sliding window (1s..24h).
	DetectWindow time.Duration
	// DetectThreshold is DETECT_THRESHOLD, the score that reports a
	// source (1..1000).
	DetectThreshold int
	// MaxSources is MAX_SOURCES, the sources tracked at once
	// (64..4194304).
	MaxSources int
	// BanExpiryTCP is BAN_EXPIRY_TCP, how long a block for a TCP scan
	// lasts; 0 means it never expires, otherwise at least 1s.
	BanExpiryTCP time.Duration
	// BanExpiryUDP is BAN_EXPIRY_UDP, likewise for a UDP scan.
	BanExpiryUDP time.Duration
	// StateDir is STATE_DIR, an absolute directory for scanwarden's state.
	StateDir string
	// HostsDenyFile is HOSTS_DENY_FILE, the hosts_access(5) deny file
	// KILL_HOSTS_DENY entries go to (PortSentry compiled it in as
	// /etc/hosts.deny).
	HostsDenyFile string
	// BlockBackend is the backend scanwarden blocks with: BLOCK_BACKEND,
	// or, when that is "auto" (the default), BackendAuto until the daemon
	// resolves it and the backend it chose after (ResolveBackend; see
	// AutoReason and Setting).
	BlockBackend Backend
	// KernelTrap is KERNEL_TRAP: with a set backend (nftables, ipset) and
	// a SCAN_TRIGGER of 0 or 1, let the kernel itself hold the source of
	// the first probe to a trap port, for TRAP_HOLD at most, while the
	// daemon promotes it to a ban or releases it (see block.Trap).
	KernelTrap bool
	// TrapSetSize is TRAP_SET_SIZE, the budget of provisional entries of
	// each family's trap set (16..4194304).
	TrapSetSize int
	// TrapHold is TRAP_HOLD, how long the kernel trap holds the source of
	// a first hit before the kernel lets it go by itself, unless the
	// daemon has promoted it to a ban or released it first (1s..60s).
	TrapHold time.Duration
	// BlockRateLimit is BLOCK_RATE_LIMIT, new blocks a minute (>= 1).
	BlockRateLimit int
	// NeverBlockGateway is NEVER_BLOCK_GATEWAY: never block the default
	// gateways.
	NeverBlockGateway bool
	// NeverBlockResolvers is NEVER_BLOCK_RESOLVERS: never block the DNS
	// resolvers of /etc/resolv.conf.
	NeverBlockResolvers bool
	// Syslog is SYSLOG: also log to syslog.
	Syslog bool
	// SyslogTag is SYSLOG_TAG, the syslog tag (1..32 of A-Z a-z 0-9 . _ -).
	SyslogTag string
	// MetricsListen is METRICS_LISTEN, the address (IP:port, or :port
	// for every address) the Prometheus metrics are served on; empty
	// (the default) serves none.
	MetricsListen string
	// CrowdSecCredentials is CROWDSEC_CREDENTIALS, a CrowdSec machine's
	// credentials file (url, login, password): every block is pushed to
	// that Local API as an alert with a ban decision. Empty: none.
	CrowdSecCredentials string
	// CrowdSecBouncerKeyFile is CROWDSEC_BOUNCER_KEY_FILE, a file holding
	// a bouncer key: the Local API's ban decisions are pulled and
	// enforced. Empty: none.
	CrowdSecBouncerKeyFile string
	// CrowdSecLAPIURL is CROWDSEC_LAPI_URL, the Local API's URL for the
	// pull when there are no CROWDSEC_CREDENTIALS (whose url is used
	// otherwise).
	CrowdSecLAPIURL string
	// CrowdSecPullInterval is CROWDSEC_PULL_INTERVAL, the time between two
	// reads of the Local API's decision stream (1s..1h).
	CrowdSecPullInterval time.Duration

	// Unused holds, by key, the raw values of keys that are accepted for
	// compatibility but that scanwarden does not act on (yet); each also
	// gave a warning. nil when there are none.
	Unused map[string]string
	// Warnings are the things worth telling the administrator that do not
	// stop scanwarden, each starting with "FILE:LINE: KEY: ".
	Warnings []string

	// set maps each key set in the file to its line number.
	set map[string]int
	// autoWhy is why BLOCK_BACKEND="auto" stands for BlockBackend, "" when
	// it is not resolved or BLOCK_BACKEND names a backend.
	autoWhy string
}

// Default returns the configuration used for keys a file does not set:
// PortSentry 1.2's ports and switches (SCAN_TRIGGER 0, BLOCK_TCP and
// BLOCK_UDP 1), RESOLVE_HOST 0, Debian's KILL_HOSTS_DENY, no KILL_ROUTE
// (the native firewall backend blocks), paths under /etc/scanwarden and
// /var/lib/scanwarden, and detect's tunables. Each call returns a new value.
func Default() *Config {
	return &Config{
		TCPPorts: portsOf(1, 11, 15, 79, 111, 119, 143, 540, 635, 1080, 1524, 2000, 5742, 6667,
			12345, 12346, 20034, 27665, 31337, 32771, 32772, 32773, 32774, 40421, 49724, 54320),
		UDPPorts: portsOf(1, 7, 9, 69, 161, 162, 513, 635, 640, 641, 700, 37444, 34555, 31335,
			32770, 32771, 32772, 32773, 32774, 31337, 54321),
		AdvancedPortsTCP:     DefaultAdvancedPorts,
		AdvancedPortsUDP:     DefaultAdvancedPorts,
		AdvancedExcludeTCP:   portsOf(113, 139),
		AdvancedExcludeUDP:   portsOf(520, 138, 137, 67),
		IgnoreFile:           DefaultIgnoreFile,
		HistoryFile:          DefaultHistoryFile,
		BlockedFile:          DefaultBlockedFile,
		ResolveHost:          false,
		BlockTCP:             BlockAct,
		BlockUDP:             BlockAct,
		KillRoute:            "",
		KillHostsDeny:        DefaultKillHostsDeny,
		KillRunCmd:           "",
		KillRunCmdFirst:      false,
		ScanTrigger:          detect.DefaultScanTrigger,
		DetectWindow:         detect.DefaultWindow,
		DetectThreshold:      detect.DefaultThreshold,
		MaxSources:           detect.DefaultMaxSources,
		BanExpiryTCP:         DefaultBanExpiry,
		BanExpiryUDP:         DefaultBanExpiry,
		StateDir:             DefaultStateDir,
		HostsDenyFile:        DefaultHostsDenyFile,
		BlockBackend:         BackendAuto,
		BlockRateLimit:       DefaultBlockRateLimit,
		KernelTrap:           true,
		CaptureRealtime:      true,
		TrapSetSize:          DefaultTrapSetSize,
		TrapHold:             DefaultTrapHold,
		CrowdSecPullInterval: DefaultCrowdSecPullInterval,
		NeverBlockGateway:    true,
		NeverBlockResolvers:  true,
		Syslog:               false,
		SyslogTag:            DefaultSyslogTag,
	}
}

// Load reads and validates the config file at path (see Parse). A file that
// cannot be opened is an error wrapping the os error, so errors.Is(err,
// fs.ErrNotExist) works.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	return Parse(f, path)
}

// Parse reads a config from r and validates it (Validate); name is the file
// name used in messages and kept as Config.Path. It reports every problem
// it finds, not only the first: the error is an Errors listing each as a
// *LineError naming name, the line and the key, in file order, then the
// problems across keys (errors.As(err, &le) with le a *LineError gives the
// first); or an error wrapping the read error. A bad value is reported
// once: Validate's checks, run at the end, leave out the keys whose line
// had a problem. On success every key absent from r has its
// Default() value, duplicates of a key were ignored (the first wins, as in
// PortSentry 1.2, even when it was bad) with a warning, and keys accepted
// but not acted on are in Unused with a warning.
func Parse(r io.Reader, name string) (*Config, error) {
	c := Default()
	c.Path = name
	c.set = make(map[string]int)
	specs := keySpecs()
	byKey := make(map[string]*keySpec, len(specs))
	for i := range specs {
		byKey[specs[i].key] = &specs[i]
	}
	var errs collector
	// bad holds the keys whose line had a problem: Validate's checks skip
	// them rather than report the same value again
	bad := make(map[string]bool)
	fail := func(le *LineError) bool {
		if le.Key != "" {
			bad[le.Key] = true
		}
		return errs.add(le)
	}

	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLineLen)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			text = strings.TrimPrefix(text, utf8BOM)
		}
		le := c.parseLine(text, line, byKey, specs)
		if le != nil && !fail(le) {
			return nil, errs.err()
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			errs.add(&LineError{File: name, Line: line + 1, Msg: fmt.Sprintf("line longer than %d bytes", maxLineLen)})
			return nil, errs.err()
		}
		rerr := fmt.Errorf("reading config %s: %w", name, err)
		if len(errs.errs) > 0 {
			return nil, errors.Join(errs.errs, rerr)
		}
		return nil, rerr
	}
	for _, le := range c.validate(bad) {
		if !errs.add(le) {
			break
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	c.warnPortSentry()
	return c, nil
}

// warnPortSentry warns of what a file written for PortSentry gets
// otherwise than PortSentry 1.2 gave it: a KILL_RUN_CMD without $TARGET$
// (1.2 runs it as it is, so scanwarden does: it is told nothing of the
// scanner), and, in a portsentry.conf (a file that sets the paths every
// portsentry.conf sets, IGNORE_FILE, HISTORY_FILE or BLOCKED_FILE, and
// no key of scanwarden's own), BLOCK_TCP, BLOCK_UDP or KILL_HOSTS_DENY
// left out, which 1.2 reads as "log only" and "no hosts.deny entry"
// where scanwarden's defaults block and add one.
func (c *Config) warnPortSentry() {
	if cmd := strings.TrimSpace(c.KillRunCmd); cmd != "" && !strings.Contains(cmd, "$TARGET$") {
		c.warn(c.set["KILL_RUN_CMD"], "KILL_RUN_CMD", "has no $TARGET$: it is run as written, without the scanner's address")
	}
	if !c.IsSet("IGNORE_FILE") && !c.IsSet("HISTORY_FILE") && !c.IsSet("BLOCKED_FILE") {
		return
	}
	for _, s := range ownKeys() {
		if c.IsSet(s.key) {
			return
		}
	}
	if !c.IsSet("BLOCK_TCP") && c.BlockTCP == BlockAct {
		c.warn(0, "BLOCK_TCP", `not set: scanwarden blocks TCP scanners (its default "1"), where PortSentry 1.2 only logged them; set BLOCK_TCP="0" for that`)
	}
	if !c.IsSet("BLOCK_UDP") && c.BlockUDP == BlockAct {
		c.warn(0, "BLOCK_UDP", `not set: scanwarden blocks UDP scanners (its default "1"), where PortSentry 1.2 only logged them; set BLOCK_UDP="0" for that`)
	}
	if !c.IsSet("KILL_HOSTS_DENY") && c.KillHostsDeny != "" {
		c.warn(0, "KILL_HOSTS_DENY", fmt.Sprintf(`not set: scanwarden adds %q to %s for each blocked scanner (its default), where PortSentry 1.2 added nothing; set KILL_HOSTS_DENY="" for that`, c.KillHostsDeny, c.HostsDenyFile))
	}
}

// parseLine reads one line of a config file into c: nil for a good line
// (or a blank, a comment, a duplicate), else the line's problem.
func (c *Config) parseLine(text string, line int, byKey map[string]*keySpec, specs []keySpec) *LineError {
	key, val, skip, lerr := splitLine(text)
	if lerr != nil {
		lerr.File, lerr.Line = c.Path, line
		if lerr.Key != "" && byKey[lerr.Key] != nil {
			if _, dup := c.set[lerr.Key]; !dup {
				// the key's first occurrence, though unreadable, is
				// its setting: a later line does not take its place
				c.set[lerr.Key] = line
			}
		}
		return lerr
	}
	if skip {
		return nil
	}
	spec := byKey[key]
	if spec == nil {
		return &LineError{File: c.Path, Line: line, Key: key, Msg: unknownKeyMsg(key, specs)}
	}
	if first, dup := c.set[key]; dup {
		c.warn(line, key, fmt.Sprintf("set again; ignored, the first setting (line %d) wins as in PortSentry 1.2", first))
		return nil
	}
	c.set[key] = line
	if spec.unused != "" {
		if c.Unused == nil {
			c.Unused = make(map[string]string)
		}
		c.Unused[key] = val
		c.warn(line, key, "accepted but not used yet: "+spec.unused)
		return nil
	}
	if err := spec.set(c, val); err != nil {
		return &LineError{File: c.Path, Line: line, Key: key, Msg: err.Error()}
	}
	if spec.check != nil {
		if err := spec.check(c); err != nil {
			return &LineError{File: c.Path, Line: line, Key: key, Msg: err.Error()}
		}
	}
	return nil
}

// IsSet reports whether key was set in the file (its first occurrence
// counts; a key that is only in Default() is not set).
func (c *Config) IsSet(key string) bool {
	_, ok := c.set[key]
	return ok
}

// Line returns the line of the file where key was set, or 0 when it was
// not set there.
func (c *Config) Line(key string) int {
	return c.set[key]
}

// Keys returns every key a config file may set, PortSentry's first, in the
// order etc/scanwarden.conf documents them. The slice is the caller's.
func Keys() []string {
	specs := keySpecs()
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.key
	}
	return out
}

// ResolveBackend records what BLOCK_BACKEND="auto" stands for: b, one of
// the firewall backends auto chooses from (iptables, nftables, ipset), and
// why (not empty: for the log and check-config). BlockBackend is b
// afterwards, so that everything built from c blocks with it, while
// Setting still says "auto". A config whose BLOCK_BACKEND names a backend,
// or that is resolved already, is left as it is (nil): a config is
// resolved once, when the daemon starts with it or reloads it. Another b,
// or no reason, is an error and changes nothing.
func (c *Config) ResolveBackend(b Backend, why string) error {
	switch b {
	case BackendIptables, BackendNftables, BackendIpset:
	default:
		return fmt.Errorf("BLOCK_BACKEND auto cannot stand for %q", b)
	}
	if why == "" {
		return fmt.Errorf("BLOCK_BACKEND auto: %s chosen without a reason", b)
	}
	if c.BlockBackend == BackendAuto {
		c.BlockBackend, c.autoWhy = b, why
	}
	return nil
}

// AutoReason returns why BLOCK_BACKEND="auto" chose BlockBackend, and
// whether it did: false when BLOCK_BACKEND names a backend or is not
// resolved yet.
func (c *Config) AutoReason() (string, bool) {
	return c.autoWhy, c.autoWhy != ""
}

// Setting returns BLOCK_BACKEND as the file sets it (or its default):
// BackendAuto for a config that auto resolved.
func (c *Config) Setting() Backend {
	if c.autoWhy != "" {
		return BackendAuto
	}
	return c.BlockBackend
}

// TriggerHits returns how many hits on trap ports a source needs before
// scanwarden reacts, with PortSentry 1.2's reading of SCAN_TRIGGER: 0 and 1
// both react on the first hit, N on the Nth.
func (c *Config) TriggerHits() int {
	if c.ScanTrigger < 1 {
		return 1
	}
	return c.ScanTrigger
}

// AdvancedWatchTCP returns the TCP ports PortSentry's advanced mode watches:
// 0..ADVANCED_PORTS_TCP-1 less ADVANCED_EXCLUDE_TCP. (Ports a local service
// listens on are left out at run time, not here.)
func (c *Config) AdvancedWatchTCP() *detect.PortSet {
	return advancedWatch(c.AdvancedPortsTCP, &c.AdvancedExcludeTCP)
}

// AdvancedWatchUDP is AdvancedWatchTCP for UDP.
func (c *Config) AdvancedWatchUDP() *detect.PortSet {
	return advancedWatch(c.AdvancedPortsUDP, &c.AdvancedExcludeUDP)
}

func advancedWatch(limit int, exclude *detect.PortSet) *detect.PortSet {
	s := &detect.PortSet{}
	if limit > 0 {
		s.AddRange(0, uint16(min(limit, 65536)-1))
	}
	return s.Minus(exclude)
}

// Validate checks every value and the combinations of keys, and reports
// every problem as an Errors (see Parse), each a *LineError naming the key
// and, when the key was set in a file, the file and line. Parse does the
// same checks; call Validate after changing a Config in code. Checked across keys:
// BLOCK_TCP or BLOCK_UDP 2 needs a KILL_RUN_CMD; KILL_ROUTE and
// KILL_HOSTS_DENY, when set, must contain $TARGET$ (KILL_RUN_CMD need
// not, as in PortSentry 1.2: Parse warns).
func (c *Config) Validate() error {
	if errs := c.validate(nil); len(errs) > 0 {
		return errs
	}
	return nil
}

// validate is Validate, leaving out the keys in skip (lines Parse already
// reported) and the checks across keys that involve them.
func (c *Config) validate(skip map[string]bool) Errors {
	var errs Errors
	for _, spec := range keySpecs() {
		if spec.check == nil || skip[spec.key] {
			continue
		}
		if err := spec.check(c); err != nil {
			errs = append(errs, c.errAt(spec.key, err.Error()))
		}
	}
	for _, b := range []struct {
		key  string
		mode BlockMode
	}{{"BLOCK_TCP", c.BlockTCP}, {"BLOCK_UDP", c.BlockUDP}} {
		if skip[b.key] || skip["KILL_RUN_CMD"] {
			continue
		}
		if b.mode == BlockRunCmdOnly && strings.TrimSpace(c.KillRunCmd) == "" {
			errs = append(errs, c.errAt(b.key, `is 2 (run KILL_RUN_CMD only) but KILL_RUN_CMD is empty; set KILL_RUN_CMD or use "0" or "1"`))
		}
	}
	for _, k := range []struct{ key, val string }{
		{"KILL_ROUTE", c.KillRoute},
		{"KILL_HOSTS_DENY", c.KillHostsDeny},
	} {
		if skip[k.key] {
			continue
		}
		if strings.TrimSpace(k.val) != "" && !strings.Contains(k.val, "$TARGET$") {
			errs = append(errs, c.errAt(k.key, "has no $TARGET$, so it would not name the scanner's address"))
		}
	}
	if c.CrowdSecBouncerKeyFile != "" && c.CrowdSecCredentials == "" && c.CrowdSecLAPIURL == "" &&
		!skip["CROWDSEC_BOUNCER_KEY_FILE"] && !skip["CROWDSEC_CREDENTIALS"] && !skip["CROWDSEC_LAPI_URL"] {
		errs = append(errs, c.errAt("CROWDSEC_BOUNCER_KEY_FILE", "needs the Local API's URL: set CROWDSEC_LAPI_URL, or CROWDSEC_CREDENTIALS (whose url is used)"))
	}
	return errs
}

// errAt makes the error for key, pointing at the line that set it.
func (c *Config) errAt(key, msg string) *LineError {
	line := c.set[key]
	if line == 0 && c.Path != "" {
		msg += " (not set in this file)"
	}
	return &LineError{File: c.Path, Line: line, Key: key, Msg: msg}
}

// KeyError returns the error for a problem with key's value that is found
// after parsing (a file it names that is missing or unsafe, a command the
// daemon cannot run): msg says what is wrong. It names the file and the
// line that set key; a key the file does not set is named with the value
// it has instead, "FILE: KEY (default VALUE): msg", never with a line 0.
func (c *Config) KeyError(key, msg string) *LineError {
	le := &LineError{File: c.Path, Line: c.set[key], Key: key, Msg: msg}
	if le.Line == 0 {
		if v := c.valueText(key); v != "" {
			le.Default = v
		} else if c.Path != "" {
			le.Msg += " (not set in this file)"
		}
	}
	return le
}

// valueText returns the value of the keys that hold a path, a command or
// a name, as a config file would write it; "" for the other keys.
func (c *Config) valueText(key string) string {
	switch key {
	case "IGNORE_FILE":
		return c.IgnoreFile
	case "HISTORY_FILE":
		return c.HistoryFile
	case "BLOCKED_FILE":
		return c.BlockedFile
	case "STATE_DIR":
		return c.StateDir
	case "HOSTS_DENY_FILE":
		return c.HostsDenyFile
	case "KILL_ROUTE":
		return c.KillRoute
	case "KILL_HOSTS_DENY":
		return c.KillHostsDeny
	case "KILL_RUN_CMD":
		return c.KillRunCmd
	case "BLOCK_BACKEND":
		return string(c.Setting())
	case "SYSLOG_TAG":
		return c.SyslogTag
	case "METRICS_LISTEN":
		return c.MetricsListen
	case "CROWDSEC_CREDENTIALS":
		return c.CrowdSecCredentials
	case "CROWDSEC_BOUNCER_KEY_FILE":
		return c.CrowdSecBouncerKeyFile
	case "CROWDSEC_LAPI_URL":
		return c.CrowdSecLAPIURL
	}
	return ""
}

// warn records a warning for key at line.
func (c *Config) warn(line int, key, msg string) {
	c.Warnings = append(c.Warnings, (&LineError{File: c.Path, Line: line, Key: key, Msg: msg}).Error())
}

// portsOf builds a detect.PortSet from a literal list.
func portsOf(ports ...uint16) detect.PortSet {
	var s detect.PortSet
	for _, p := range ports {
		s.Add(p)
	}
	return s
}

// unknownKeyMsg says a key is unknown and, when only its case is wrong,
// which key was meant.
func unknownKeyMsg(key string, specs []keySpec) string {
	for _, s := range specs {
		if strings.EqualFold(s.key, key) {
			return fmt.Sprintf("unknown key (keys are upper case: did you mean %s?)", s.key)
		}
	}
	return "unknown key"
}
