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
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/backends"
	"github.com/scanwarden/scanwarden/block/command"
	"github.com/scanwarden/scanwarden/block/hostsdeny"
	"github.com/scanwarden/scanwarden/classic"
	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/host"
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
	if c.KillHostsDeny != "" {
		hd, err := hostsdeny.New(c.HostsDenyFile, c.KillHostsDeny, hostsdeny.WithLockDir(filepath.Join(c.StateDir, "locks")))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: KILL_HOSTS_DENY: %w", c.Path, c.Line("KILL_HOSTS_DENY"), err)
		}
		p.blockers = append(p.blockers, hd)
	}
	if c.KillRoute != "" {
		if command.NativeKillRoute(c.KillRoute) && c.BlockBackend != conf.BackendNone {
			log.Infof("KILL_ROUTE %q is covered by the %s backend: not run as a command", c.KillRoute, c.BlockBackend)
		} else {
			t, err := command.ParseTemplate("KILL_ROUTE", c.KillRoute)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", c.Path, c.Line("KILL_ROUTE"), err)
			}
			p.route = commandAction{t, runner}
		}
	}
	if c.KillRunCmd != "" {
		t, err := command.ParseTemplate("KILL_RUN_CMD", c.KillRunCmd)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", c.Path, c.Line("KILL_RUN_CMD"), err)
		}
		p.runCmd = commandAction{t, runner}
	}
	return p, nil
}

// CheckActions checks what the config asks of the blocking without
// touching the system: the hosts.deny file and template, KILL_ROUTE and
// KILL_RUN_CMD.
func CheckActions(c *conf.Config, log logrus.FieldLogger) error {
	_, err := parseActions(c, log, nil)
	return err
}

// OpenManager builds the block manager of a config for the commands that
// only list, lift or flush bans (no never-block list is read). The
// returned function closes its journal and backends.
func OpenManager(c *conf.Config, log logrus.FieldLogger) (*block.Manager, func(), error) {
	m, closeFn, err := newManager(c, log, block.NewNeverBlock(nil), &command.ExecRunner{}, nil)
	if err != nil {
		return nil, nil, err
	}
	return m, closeFn, nil
}

// newManager builds the block manager of c with the never-block list
// never, the runner of the external commands and the log's fold (quiet,
// nil for none: see block.Options.Quiet); the returned function closes
// its journal and backends.
func newManager(c *conf.Config, log logrus.FieldLogger, never *block.NeverBlock, runner command.Runner, quiet func(block.Outcome) bool) (*block.Manager, func(), error) {
	parts, err := buildBlockers(c, log, runner)
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
		Never: never, State: st, Journal: j, Log: log, Quiet: quiet,
	})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return m, func() { j.Close(); closeAll() }, nil
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
	// closeAll closes the journal and the backends and stops the
	// address watch.
	closeAll func()
}

// newParts reads the ignore file and the host's addresses into a
// never-block list that follows address changes, and builds the block
// manager over it.
func (d *daemon) newParts(ctx context.Context, c *conf.Config) (*parts, error) {
	var ignore []netip.Prefix
	if c.IgnoreFile != "" {
		l, err := conf.LoadIgnore(c.IgnoreFile)
		if err != nil {
			return nil, fmt.Errorf("IGNORE_FILE: %w", err)
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
	mgr, closeMgr, err := newManager(c, d.log, never, &command.ExecRunner{}, d.fold.quiet)
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
