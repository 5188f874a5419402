package daemon

// What a config builds: the block manager with its backends, commands and
// journal, and the never-block list. The CLI's list, unblock and flush
// use OpenManager; the daemon's newParts adds the never-block list and
// follows the host's address changes.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/backends"
	"github.com/scanwarden/scanwarden/block/command"
	"github.com/scanwarden/scanwarden/block/hostsdeny"
	"github.com/scanwarden/scanwarden/block/records"
	"github.com/scanwarden/scanwarden/classic"
	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/crowdsec"
	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/host"
	"github.com/scanwarden/scanwarden/internal/safefile"
)

// commandAction runs a KILL_ROUTE or KILL_RUN_CMD template for a ban.
type commandAction struct {
	t *command.Template
	r command.Runner
}

func (a commandAction) Run(ctx context.Context, b block.Ban, mode string) (string, []byte, error) {
	if err := a.t.Check(b.Addr, mode); err != nil {
		return a.t.String(), nil, err
	}
	out, err := a.r.Run(ctx, a.t.Argv(b.Addr, b.Port, mode))
	return a.t.Expand(b.Addr, b.Port, mode), out, err
}

// blockParts are what the config asks the blocking to be made of.
type blockParts struct {
	blockers []block.Blocker
	route    block.Action
	runCmd   block.Action
}

// buildBlockers makes the backends and commands of a config: the native
// backend of BLOCK_BACKEND (a KILL_ROUTE that is just an iptables DROP
// rule is covered by it rather than run), hosts.deny when KILL_HOSTS_DENY
// is set, and the KILL_ROUTE and KILL_RUN_CMD commands.
func buildBlockers(c *conf.Config, log logrus.FieldLogger, runner command.Runner) (*blockParts, error) {
	p, err := parseActions(c, log, runner)
	if err != nil {
		return nil, err
	}
	var native block.Blocker
	switch c.BlockBackend {
	case conf.BackendDryRun:
		native = block.NewDryRun(log)
	case conf.BackendNone:
	case conf.BackendAuto:
		return nil, keyErr(c, "BLOCK_BACKEND", errors.New("auto is not resolved to a backend yet (resolveBackend)"))
	default:
		if native, err = backends.Open(backends.Kind(c.BlockBackend)); err != nil {
			return nil, err
		}
	}
	if native != nil {
		p.blockers = append([]block.Blocker{native}, p.blockers...)
	}
	return p, nil
}

// chooser picks the backend BLOCK_BACKEND="auto" stands for on this host
// (backends.Choose; tests pass fakes).
type chooser func(context.Context, backends.Preference) backends.Choice

// preference is the order in which BLOCK_BACKEND="auto" tries the set
// backends for c: ipset first when KILL_ROUTE is a plain iptables DROP
// rule, which the backend then does instead (templates), so that the bans
// are where that administrator looks for them, in iptables -S, at set
// speed; nftables first otherwise.
func preference(c *conf.Config) backends.Preference {
	if c.KillRoute != "" && command.NativeKillRoute(c.KillRoute) {
		return backends.PreferIpset
	}
	return backends.PreferNftables
}

// chooseBackend asks choose what BLOCK_BACKEND="auto" stands for in c, in
// c's preference; auto is false, and nothing is asked, when c names its
// backend or is resolved already. It changes nothing: see resolveBackend.
func chooseBackend(ctx context.Context, c *conf.Config, choose chooser) (ch backends.Choice, auto bool) {
	if c.BlockBackend != conf.BackendAuto {
		return backends.Choice{}, false
	}
	return choose(ctx, preference(c)), true
}

// resolveBackend resolves BLOCK_BACKEND="auto" in c: the backend choose
// finds (chooseBackend) is recorded in c (conf.Config.ResolveBackend), so
// that everything built from c (the backends, removeOtherBackends, the
// kernel trap's decision, a reload's comparison) uses it. It is called
// once per config read: at start, on each reload, and by the commands that
// reach the daemon's backend (OpenManager), which choose as the daemon
// does. auto is false for a config that names its backend or is resolved
// already, which is left as it is.
func resolveBackend(ctx context.Context, c *conf.Config, choose chooser) (ch backends.Choice, auto bool, err error) {
	ch, auto = chooseBackend(ctx, c, choose)
	if !auto {
		return ch, false, nil
	}
	if err := c.ResolveBackend(conf.Backend(ch.Kind), ch.Reason); err != nil {
		return ch, true, keyErr(c, "BLOCK_BACKEND", err)
	}
	return ch, true, nil
}

// autoLine says what BLOCK_BACKEND="auto" chose in c and why, as the log
// and check-config say it: `BLOCK_BACKEND auto: nftables (the kernel's
// nf_tables answers)`; "" when c names its backend or is not resolved.
func autoLine(c *conf.Config) string {
	why, ok := c.AutoReason()
	if !ok {
		return ""
	}
	return fmt.Sprintf("BLOCK_BACKEND auto: %s (%s)", c.BlockBackend, why)
}

// resolve resolves BLOCK_BACKEND="auto" in c (resolveBackend). It says
// nothing: the caller logs the choice (sayAuto) once the config it belongs
// to is in force, so that a reload refused afterwards announces no switch.
func (d *daemon) resolve(ctx context.Context, c *conf.Config) error {
	choose := d.choose
	if choose == nil {
		choose = backends.Choose
	}
	_, _, err := resolveBackend(ctx, c, choose)
	return err
}

// sayAuto logs what BLOCK_BACKEND="auto" chose in c, now in force, and
// why. old is the config it replaced on a reload (nil at start): a choice
// other than its backend is logged as a switch, which reload makes as for
// a changed BLOCK_BACKEND (removeOtherBackends, the bans restored into the
// new one). A config that names its backend says nothing.
func (d *daemon) sayAuto(c, old *conf.Config) {
	line := autoLine(c)
	switch {
	case line == "":
	case old == nil:
		d.log.Warnf("adminalert: %s", line)
	case old.BlockBackend != c.BlockBackend:
		d.log.Warnf("adminalert: %s; switching from %s", line, old.BlockBackend)
	default:
		d.log.Info(line)
	}
}

// removeOtherBackends flushes what the firewall backends other than c's
// left in the kernel (see backends.RemoveOthers).
func removeOtherBackends(ctx context.Context, c *conf.Config, log logrus.FieldLogger) {
	backends.RemoveOthers(ctx, backends.Kind(c.BlockBackend), log)
}

// parseActions checks and builds what needs no system access: hosts.deny
// and the command templates (check-config uses it through CheckActions). The
// hosts.deny lock and journal live in STATE_DIR/locks, which the daemon
// may write even when the file's own directory is read-only (systemd's
// ProtectSystem=strict), and where unblock and flush find the same lock.
func parseActions(c *conf.Config, log logrus.FieldLogger, runner command.Runner) (*blockParts, error) {
	p := &blockParts{}
	var errs []error
	if c.KillHostsDeny != "" {
		hd, err := hostsdeny.New(c.HostsDenyFile, c.KillHostsDeny, hostsdeny.WithLockDir(filepath.Join(c.StateDir, "locks")))
		if err != nil {
			errs = append(errs, keyErr(c, "KILL_HOSTS_DENY", err))
		} else {
			p.blockers = append(p.blockers, hd)
		}
	}
	route, runCmd, covered, terrs := templates(c)
	errs = append(errs, terrs...)
	if covered {
		log.Infof("KILL_ROUTE %q is covered by the %s backend: not run as a command", c.KillRoute, c.BlockBackend)
	}
	if route != nil {
		p.route = commandAction{route, runner}
	}
	if runCmd != nil {
		p.runCmd = commandAction{runCmd, runner}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// templates parses the command templates of c: KILL_ROUTE, unless the
// firewall backend covers it (an iptables DROP rule: covered), and
// KILL_RUN_CMD; nil for an empty one or one with an error (in errs).
func templates(c *conf.Config) (route, runCmd *command.Template, covered bool, errs []error) {
	if c.KillRoute != "" {
		if command.NativeKillRoute(c.KillRoute) && c.BlockBackend != conf.BackendNone {
			covered = true
		} else if t, err := command.ParseTemplate("KILL_ROUTE", c.KillRoute); err != nil {
			errs = append(errs, keyErr(c, "KILL_ROUTE", err))
		} else {
			route = t
		}
	}
	if c.KillRunCmd != "" {
		if t, err := command.ParseTemplate("KILL_RUN_CMD", c.KillRunCmd); err != nil {
			errs = append(errs, keyErr(c, "KILL_RUN_CMD", err))
		} else {
			runCmd = t
		}
	}
	return route, runCmd, covered, errs
}

// keyError is a problem with the value of a config key: the
// *conf.LineError that names the file and line (conf.Config.KeyError),
// which errors.As finds, wrapping the error it is about.
type keyError struct {
	*conf.LineError
	err error
}

func (e *keyError) Unwrap() error { return e.err }

func (e *keyError) As(target any) bool {
	if t, ok := target.(**conf.LineError); ok {
		*t = e.LineError
		return true
	}
	return false
}

// keyErr makes err, a problem with the value of key, name the file and the
// line that set key, or the default it has (never a line 0). An error that
// names the key itself (a command template's) does not get it twice.
func keyErr(c *conf.Config, key string, err error) error {
	le := c.KeyError(key, err.Error())
	if le.Line > 0 && strings.HasPrefix(le.Msg, key+" ") {
		le.Key = ""
	}
	return &keyError{le, err}
}

// CheckActions checks what the config asks of the blocking without
// touching the system: the hosts.deny file and template, KILL_ROUTE and
// KILL_RUN_CMD. Every problem is reported (errors.Join: one a line, each
// naming the config file, the line and the key); CheckFiles checks the
// files and programs they name.
func CheckActions(c *conf.Config, log logrus.FieldLogger) error {
	_, err := parseActions(c, log, nil)
	return err
}

// OpenManager builds the block manager of a config for the commands that
// only list, lift or flush bans (no never-block list is read). A
// BLOCK_BACKEND="auto" in c is resolved first as the daemon resolves it
// (resolveBackend, logged at info), so that they reach the backend the
// daemon uses, unless the kernel changed since its start or last reload.
// The returned function closes its journal and backends.
func OpenManager(c *conf.Config, log logrus.FieldLogger) (*block.Manager, func(), error) {
	if _, auto, err := resolveBackend(context.Background(), c, backends.Choose); err != nil {
		return nil, nil, err
	} else if auto {
		log.Info(autoLine(c))
	}
	m, closeFn, err := newManager(c, log, managerParts{never: block.NewNeverBlock(nil), runner: &command.ExecRunner{}})
	if err != nil {
		return nil, nil, err
	}
	return m, closeFn, nil
}

// managerParts are what a block manager takes besides the config.
type managerParts struct {
	never  *block.NeverBlock
	runner command.Runner
	// quiet is the log's fold (nil for none: see block.Options.Quiet).
	quiet func(block.Outcome) bool
	// prev is the manager of the config a reload replaces (nil for
	// none: see block.Options.Previous).
	prev *block.Manager
	// outlast is the fleet's standing decisions (nil for none: see
	// block.Options.Outlast).
	outlast func(netip.Addr, time.Time) (block.Ban, bool)
}

// newManager builds the block manager of c with mp; the returned
// function closes its journal, state files and backends.
func newManager(c *conf.Config, log logrus.FieldLogger, mp managerParts) (*block.Manager, func(), error) {
	parts, err := buildBlockers(c, log, mp.runner)
	if err != nil {
		return nil, nil, err
	}
	closeAll := func() {
		for _, b := range parts.blockers {
			b.Close()
		}
	}
	st, err := block.OpenState(c.StateDir)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	j := block.NewJournal(c.HistoryFile, c.BlockedFile)
	m, err := block.NewManager(block.Options{
		Policy: PolicyOf(c), Blockers: parts.blockers, Route: parts.route, RunCmd: parts.runCmd,
		Never: mp.never, State: st, Journal: j, Log: log, Quiet: mp.quiet, Previous: mp.prev, Outlast: mp.outlast,
	})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return m, func() { j.Close(); st.Close(); closeAll() }, nil
}

// PolicyOf takes the block policy from a config.
func PolicyOf(c *conf.Config) block.Policy {
	return block.Policy{
		BlockTCP: response(c.BlockTCP), BlockUDP: response(c.BlockUDP), KillRunCmdFirst: c.KillRunCmdFirst,
		ExpiryTCP: c.BanExpiryTCP, ExpiryUDP: c.BanExpiryUDP, RateLimit: c.BlockRateLimit,
		ResolveHost: c.ResolveHost,
	}
}

// response maps BLOCK_TCP/BLOCK_UDP to the block manager's response (the
// same three values as PortSentry's).
func response(m conf.BlockMode) block.Response {
	switch m {
	case conf.BlockAct:
		return block.Act
	case conf.BlockRunCmdOnly:
		return block.RunCmdOnly
	}
	return block.LogOnly
}

// parts are what one config builds for the daemon: the block manager and
// the never-block list, which follows the host's address changes until
// close. A reload builds new parts and closes the old ones.
type parts struct {
	mgr   *block.Manager
	never *block.NeverBlock
	// closeAll closes the journal, the state files and the backends and
	// stops the address watch.
	closeAll func()
	// users counts the alerts begun with these parts and not finished
	// (daemon.acquire).
	users sync.WaitGroup
}

// retire closes the parts a reload replaced once the last alert begun
// with them is finished; a reload no longer hands them out, so no alert
// can begin with them meanwhile.
func (p *parts) retire() {
	p.users.Wait()
	p.close()
}

// newParts reads the ignore file and the host's addresses into a
// never-block list that follows address changes, and builds the block
// manager over it.
//
// prev is the manager of the config a reload replaces (nil at start): its
// rate limits and names carry over.
func (d *daemon) newParts(ctx context.Context, c *conf.Config, prev *block.Manager) (*parts, error) {
	var ignore []netip.Prefix
	if c.IgnoreFile != "" {
		l, err := conf.LoadIgnore(c.IgnoreFile)
		if err != nil {
			return nil, keyErr(c, "IGNORE_FILE", err)
		}
		ignore = l.Prefixes()
	}
	never := block.NewNeverBlock(ignore)
	addrs := host.NewAddrs(c.NeverBlockGateway, c.NeverBlockResolvers)
	refresh := func() {
		m, err := addrs.Read()
		never.SetHost(m, err == nil)
		if err != nil {
			d.log.Warnf("never-block list: %v", err)
		}
	}
	refresh()
	mgr, closeMgr, err := newManager(c, d.log, managerParts{never: never, runner: &command.ExecRunner{}, quiet: d.fold.quiet, prev: prev,
		outlast: d.fleetOutlast})
	if err != nil {
		return nil, err
	}
	wctx, stopWatch := context.WithCancel(ctx)
	if err := host.Watch(wctx, refresh, func(err error) { d.log.Warnf("never-block list: %v", err) }); err != nil {
		d.log.Warnf("not following address changes: %v", err)
	}
	return &parts{mgr: mgr, never: never, closeAll: func() { stopWatch(); closeMgr() }}, nil
}

// close closes the parts; nil is allowed.
func (p *parts) close() {
	if p != nil {
		p.closeAll()
	}
}

// EngineConfig turns the config into the engine's settings.
func EngineConfig(c *conf.Config) detect.Config {
	return detect.Config{
		Window:      c.DetectWindow,
		Threshold:   c.DetectThreshold,
		ScanTrigger: c.ScanTrigger,
		MaxSources:  c.MaxSources,
		TrapTCP:     &c.TCPPorts,
		TrapUDP:     &c.UDPPorts,
		Home:        c.HomeNetworks,
	}
}

// classicSettings are what the classic mode takes from the config.
func classicSettings(c *conf.Config) classic.Settings {
	return classic.Settings{
		TCP: c.TCPPorts.Ports(), UDP: c.UDPPorts.Ports(),
		// PORT_BANNER is not one of the keys conf reads for itself
		Banner: []byte(c.Unused["PORT_BANNER"]),
		Home:   c.HomeNetworks, Window: c.DetectWindow, Trigger: c.TriggerHits(),
	}
}

// LoadConfig reads the config at path. When the path was not given
// (explicit false), a missing file means the built-in defaults (replay
// must work on a machine where scanwarden is not installed).
func LoadConfig(path string, explicit bool) (*conf.Config, error) {
	c, err := conf.Load(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return conf.Default(), nil
		}
		return nil, err
	}
	return c, nil
}

// defaultsNote is the start's warning that c is the built-in defaults
// (LoadConfig found no file at path, which was not given with -c); ""
// when c was read from a file.
func defaultsNote(c *conf.Config, path string) string {
	if c.Path != "" {
		return ""
	}
	return fmt.Sprintf("adminalert: no config file at %s: running on the built-in defaults (install one there, or give one with -c)", path)
}

// ConfigWarnings returns the config's warnings as they apply to modes m:
// PORT_BANNER is used by the classic TCP mode, so conf's "accepted but
// not used" is dropped there; a classic UDP daemon alone says why it
// sends no banner; other modes keep conf's warning.
func ConfigWarnings(c *conf.Config, m Modes) []string {
	const unused = ": PORT_BANNER: accepted but not used"
	var out []string
	for _, w := range c.Warnings {
		if !strings.Contains(w, unused) {
			out = append(out, w)
			continue
		}
		switch {
		case m.ClassicTCP:
		case m.ClassicUDP:
			out = append(out, fmt.Sprintf("%s:%d: PORT_BANNER: not sent by the classic UDP mode: scanwarden never answers a datagram "+
				"(a reply to a forged source would make it a reflector); the classic TCP mode (-tcp) sends it", c.Path, c.Line("PORT_BANNER")))
		default:
			out = append(out, w)
		}
	}
	return out
}

// FileError is a file the daemon refuses to use (CheckFiles).
type FileError struct {
	// Key is the config key that names the file ("" for the config file
	// itself).
	Key string
	// Path is the file or directory the key names: for KILL_ROUTE and
	// KILL_RUN_CMD, the program.
	Path string
	// Trust is true when the problem is who may change the file: its
	// owner, or write permission for every user on it or on a directory
	// that leads to it. Whether the owner is trusted depends on the user
	// scanwarden runs as (root, or the one that owns it), so check-config,
	// which an administrator may run as another user than the daemon's,
	// only warns about these; the daemon refuses them. Otherwise the file
	// is unusable whoever runs scanwarden (a symbolic link where
	// scanwarden writes, a world-writable STATE_DIR, ...).
	Trust bool
	// Err names the config file, the line and the key (a
	// *conf.LineError), the file and the reason.
	Err error
}

func (e *FileError) Error() string { return e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// FileErrors is every file CheckFiles refuses; its message lists them one
// per line.
type FileErrors []*FileError

func (e FileErrors) Error() string {
	msgs := make([]string, len(e))
	for i, fe := range e {
		msgs[i] = fe.Error()
	}
	return strings.Join(msgs, "\n")
}

func (e FileErrors) Unwrap() []error {
	out := make([]error, len(e))
	for i, fe := range e {
		out[i] = fe
	}
	return out
}

// CheckFiles applies scanwarden's file-safety policy to the files of a
// config; the daemon calls it at start and on every reload (a problem
// refuses both), check-config reports what it finds. Checked:
//
//   - the config file, the ignore file (IGNORE_FILE, when it exists: a
//     missing one is LoadIgnore's to report) and the programs KILL_ROUTE
//     and KILL_RUN_CMD run (their first word, as block/command parses it;
//     a bare name is looked up in PATH, and a KILL_ROUTE the firewall
//     backend covers is not run, so not checked): what scanwarden takes
//     instructions from or runs must belong to root or to the user it runs
//     as, and neither it nor a directory on its path may be writable by
//     every user (safefile.CheckTrusted; Trust problems);
//   - HOSTS_DENY_FILE, when KILL_HOSTS_DENY is set: the checks the
//     hosts.deny backend makes before each write (records.CheckPath: its
//     directory exists and is not world-writable, the file, when it
//     exists, is a regular file, not a symbolic link, not world-writable);
//   - STATE_DIR, when it exists (the daemon creates it otherwise): not
//     world-writable (safefile.CheckDir), and owned by root or by the user
//     scanwarden runs as (safefile.CheckDirOwner; a Trust problem).
//
// err is nil or a FileErrors listing every refusal, each naming the
// config file and the line of the key (or the key and its default), the
// file and the reason. warnings are what is worth knowing but refuses
// nothing: a program that is not there (yet), write permission for a
// group other than root's or scanwarden's own.
func CheckFiles(c *conf.Config) (warnings []string, err error) {
	var errs FileErrors
	where := func(key, path string, err error) error {
		if key == "" {
			return &conf.LineError{File: c.Path, Msg: strings.TrimPrefix(err.Error(), path+": ")}
		}
		return c.KeyError(key, err.Error())
	}
	refuse := func(key, path string, trust bool, err error) {
		errs = append(errs, &FileError{Key: key, Path: path, Trust: trust, Err: where(key, path, err)})
	}
	warn := func(key, path, msg string) {
		warnings = append(warnings, where(key, path, errors.New(msg)).Error())
	}
	trusted := func(key, path string) {
		ws, err := safefile.CheckTrusted(path)
		for _, w := range ws {
			warn(key, path, w)
		}
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist) && key == "IGNORE_FILE":
		case errors.Is(err, fs.ErrNotExist):
			warn(key, path, fmt.Sprintf("%s: not found: %v", path, err))
		default:
			refuse(key, path, true, err)
		}
	}

	if c.Path != "" {
		trusted("", c.Path)
	}
	if c.IgnoreFile != "" {
		trusted("IGNORE_FILE", c.IgnoreFile)
	}
	if c.KillHostsDeny != "" {
		if _, err := records.CheckPath(c.HostsDenyFile); err != nil {
			refuse("HOSTS_DENY_FILE", c.HostsDenyFile, false, err)
		}
	}
	for _, t := range commandTemplates(c) {
		prog := t.Program()
		if !filepath.IsAbs(prog) {
			found, err := exec.LookPath(prog)
			if err != nil {
				warn(t.Key(), prog, fmt.Sprintf("program %q: not found in PATH (%s)", prog, os.Getenv("PATH")))
				continue
			}
			if prog, err = filepath.Abs(found); err != nil {
				continue
			}
		}
		trusted(t.Key(), prog)
	}
	// the CrowdSec files are read as the daemon will read them
	if c.CrowdSecCredentials != "" {
		if _, err := crowdsec.ReadCredentials(c.CrowdSecCredentials); err != nil {
			refuse("CROWDSEC_CREDENTIALS", c.CrowdSecCredentials, false, err)
		}
	}
	if c.CrowdSecBouncerKeyFile != "" {
		if _, err := crowdsec.ReadBouncerKey(c.CrowdSecBouncerKeyFile); err != nil {
			refuse("CROWDSEC_BOUNCER_KEY_FILE", c.CrowdSecBouncerKeyFile, false, err)
		}
	}
	if _, err := os.Stat(c.StateDir); err == nil {
		if err := safefile.CheckDir(c.StateDir); err != nil {
			refuse("STATE_DIR", c.StateDir, false, err)
		} else if err := safefile.CheckDirOwner(c.StateDir); err != nil {
			refuse("STATE_DIR", c.StateDir, true, err)
		}
	}
	if len(errs) > 0 {
		return warnings, errs
	}
	return warnings, nil
}

// commandTemplates returns the KILL_ROUTE and KILL_RUN_CMD templates the
// daemon would run, as parseActions builds them; a template that does not
// parse is left out (CheckActions reports it).
func commandTemplates(c *conf.Config) []*command.Template {
	var out []*command.Template
	route, runCmd, _, _ := templates(c)
	for _, t := range []*command.Template{route, runCmd} {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}

// checkFiles is CheckFiles for the daemon, at start and on reload: the
// warnings are logged, the refusals returned.
func (d *daemon) checkFiles(c *conf.Config) error {
	warnings, err := CheckFiles(c)
	for _, w := range warnings {
		d.log.Warn(w)
	}
	return err
}
