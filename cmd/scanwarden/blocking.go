package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/command"
	"github.com/scanwarden/scanwarden/block/hostsdeny"
	"github.com/scanwarden/scanwarden/block/ipset"
	"github.com/scanwarden/scanwarden/block/iptables"
	"github.com/scanwarden/scanwarden/block/nftables"
	"github.com/scanwarden/scanwarden/conf"
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
		i := slices.IndexFunc(firewallBackends, func(fb firewallBackend) bool { return fb.kind == c.BlockBackend })
		if i < 0 {
			return nil, fmt.Errorf("BLOCK_BACKEND %q unknown", c.BlockBackend)
		}
		if native, err = firewallBackends[i].open(); err != nil {
			return nil, err
		}
	}
	if native != nil {
		p.blockers = append([]block.Blocker{native}, p.blockers...)
	}
	return p, nil
}

// firewallBackend is a BLOCK_BACKEND value that puts objects of its own
// into the kernel, and how to reach it.
type firewallBackend struct {
	kind conf.Backend
	open func() (block.Blocker, error)
}

// firewallBackends are all of them.
var firewallBackends = []firewallBackend{
	{conf.BackendIptables, func() (block.Blocker, error) { return iptables.NewDefault() }},
	{conf.BackendNftables, func() (block.Blocker, error) { return nftables.New(nftables.Options{}) }},
	{conf.BackendIpset, func() (block.Blocker, error) { return ipset.NewDefault() }},
}

// removeOtherBackends flushes what the firewall backends other than c's
// left in the kernel (after BLOCK_BACKEND changed): their rules would go
// on dropping sources whose bans nothing lifts any more, and a kernel trap
// would go on trapping. Flush touches only scanwarden's own chain, table
// or sets, and is a no-op where there are none. The bans
// themselves are in the state and are put into c's backend by the
// restore. A backend that cannot be reached here (no iptables, no nf_tables
// or ip_set in the kernel) can have left nothing.
func removeOtherBackends(ctx context.Context, c *conf.Config, log logrus.FieldLogger) {
	for _, fb := range firewallBackends {
		if fb.kind == c.BlockBackend {
			continue
		}
		b, err := fb.open()
		if err != nil {
			continue
		}
		// Flush also takes out a kernel trap a killed daemon left
		had, _ := b.List(ctx)
		if err := b.Flush(ctx); err != nil {
			log.Errorf("BLOCK_BACKEND is %q now: removing what %q left: %v", c.BlockBackend, fb.kind, err)
		} else if len(had) > 0 {
			log.Warnf("adminalert: BLOCK_BACKEND is %q now: removed the %d block(s) %q had left in the kernel (the bans in force are restored with %q)", c.BlockBackend, len(had), fb.kind, c.BlockBackend)
		}
		if cl, ok := b.(io.Closer); ok {
			cl.Close()
		}
	}
}

// parseActions checks and builds what needs no system access: hosts.deny
// and the command templates (check-config uses it as it is). The
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

// newManager builds the block manager of a config. The never-block list is
// read (ignore file, host addresses, gateways, resolvers) only when
// withNever is set: unblock, flush and list do not need it.
func newManager(c *conf.Config, log logrus.FieldLogger, withNever bool) (*block.Manager, *block.FileJournal, error) {
	var never *block.NeverBlock
	if withNever {
		var err error
		if never, err = newNeverBlock(c, log); err != nil {
			return nil, nil, err
		}
	}
	return newManagerWith(c, log, never, &command.ExecRunner{})
}

// newNeverBlock reads the ignore file and the host's addresses, gateways
// and resolvers.
func newNeverBlock(c *conf.Config, log logrus.FieldLogger) (*block.NeverBlock, error) {
	var ignore *conf.IgnoreList
	if c.IgnoreFile != "" {
		var err error
		if ignore, err = conf.LoadIgnore(c.IgnoreFile); err != nil {
			return nil, fmt.Errorf("IGNORE_FILE: %w", err)
		}
	}
	never := block.NewNeverBlock(ignore, c.NeverBlockGateway, c.NeverBlockResolvers)
	if err := never.Refresh(); err != nil {
		log.Warnf("never-block list: %v", err)
	}
	return never, nil
}

// newManagerWith is newManager with the never-block list (nil: an empty
// one) and the runner of the external commands given.
func newManagerWith(c *conf.Config, log logrus.FieldLogger, never *block.NeverBlock, runner command.Runner) (*block.Manager, *block.FileJournal, error) {
	if runner == nil {
		runner = &command.ExecRunner{}
	}
	parts, err := buildBlockers(c, log, runner)
	if err != nil {
		return nil, nil, err
	}
	if never == nil {
		never = block.NewNeverBlock(nil, false, false)
	}
	st, err := block.OpenState(c.StateDir)
	if err != nil {
		return nil, nil, err
	}
	j := block.NewJournal(c.HistoryFile, c.BlockedFile)
	m, err := block.NewManager(block.Options{
		Policy: block.PolicyOf(c), Blockers: parts.blockers, Route: parts.route, RunCmd: parts.runCmd,
		Never: never, State: st, Journal: j, Log: log,
	})
	return m, j, err
}

func newCLILogger(w io.Writer) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(w)
	l.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true, DisableQuote: true})
	return l
}

// blockCommand parses the common flags of list, unblock and flush.
func blockCommand(name, synopsis string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*conf.Config, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	if extra != nil {
		extra(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: scanwarden %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, nil, err
	}
	path, _ := cfgPath()
	c, err := conf.Load(path)
	if err != nil {
		return nil, nil, err
	}
	return c, pos, nil
}

func runList(args []string, stdout, stderr io.Writer) error {
	var asJSON bool
	c, pos, err := blockCommand("list", "list [-c CONF] [--json]", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the bans as a JSON array")
	})
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q: %w", pos[0], errUsage)
	}
	st, err := block.OpenState(c.StateDir)
	if err != nil {
		return err
	}
	bans, err := st.Load()
	if err != nil {
		return err
	}
	if asJSON {
		if bans == nil {
			bans = []block.Ban{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(bans)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tSCAN\tPORT\tSINCE\tUNTIL\tREASON")
	for _, b := range bans {
		until := "never"
		if !b.Until.IsZero() {
			until = b.Until.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s/%d\t%s\t%s\t%s\n", b.Addr, b.Type, b.Proto, b.Port,
			b.Since.Local().Format(time.DateTime), until, b.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%d blocked source(s) in %s\n", len(bans), st.Path())
	return nil
}

func runUnblock(args []string, stdout, stderr io.Writer) error {
	c, pos, err := blockCommand("unblock", "unblock [-c CONF] ADDR...", args, stderr, nil)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("no address given: %w", errUsage)
	}
	var addrs []netip.Addr
	for _, s := range pos {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("%q is not an IPv4 or IPv6 address: %w", s, errUsage)
		}
		addrs = append(addrs, a.Unmap())
	}
	log := newCLILogger(stderr)
	m, j, err := newManager(c, log, false)
	if err != nil {
		return err
	}
	defer j.Close()
	notBanned, err := m.Unblock(context.Background(), addrs...)
	for _, a := range notBanned {
		fmt.Fprintf(stderr, "%s had no ban (removed from the backends anyway)\n", a)
	}
	return err
}

func runFlush(args []string, stdout, stderr io.Writer) error {
	c, pos, err := blockCommand("flush", "flush [-c CONF]", args, stderr, nil)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q: %w", pos[0], errUsage)
	}
	log := newCLILogger(stderr)
	m, j, err := newManager(c, log, false)
	if err != nil {
		return err
	}
	defer j.Close()
	n, err := m.Flush(context.Background())
	fmt.Fprintf(stdout, "flushed: %d ban(s) lifted; %s\n", n, strings.Join(m.BackendNames(), ", "))
	return err
}
