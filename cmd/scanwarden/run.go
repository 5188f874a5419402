package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/scanwarden/scanwarden/daemon"
)

// runRun parses `scanwarden run` and hands over to the daemon.
func runRun(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	format := fs.String("log-format", "text", "log format: text (for journald) or json")
	control := fs.String("control-socket", runtimeSocket(), "the socket `PATH` where scanwarden reload reaches the daemon (default: control.sock in the unit's RuntimeDirectory; none outside systemd)")
	flags := map[string]*bool{}
	for _, f := range []struct{ name, usage string }{
		{"stcp", "stealth TCP: watch TCP_PORTS and every other port for probes (the default with -sudp)"},
		{"sudp", "stealth UDP: watch UDP_PORTS and every other port"},
		{"atcp", "advanced TCP: watch every port below ADVANCED_PORTS_TCP except ADVANCED_EXCLUDE_TCP and bound ones"},
		{"audp", "advanced UDP: likewise for UDP"},
		{"tcp", "PortSentry's classic TCP mode: bind TCP_PORTS so that they look open (PORT_BANNER), react to full connections; -stcp detection on the other ports"},
		{"udp", "PortSentry's classic UDP mode: bind UDP_PORTS, react to datagrams at them; -sudp detection on the other ports"},
	} {
		flags[f.name] = fs.Bool(f.name, false, f.usage)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, `usage: scanwarden run [-c CONF] [--log-format text|json] [--control-socket PATH] [-stcp] [-sudp] [-atcp] [-audp] [-tcp] [-udp]

Captures on INTERFACES (default: every interface, through libpcap's "any"),
detects scans and blocks the scanners as the config says. Without a mode
flag it watches TCP and UDP in stealth mode. SIGHUP, or scanwarden reload,
re-reads the config and the ignore file; SIGTERM and SIGINT stop it,
keeping the blocks.

`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: %w", fs.Arg(0), errUsage)
	}
	m := daemon.Modes{
		TCP:    *flags["stcp"] || *flags["atcp"] || *flags["tcp"],
		UDP:    *flags["sudp"] || *flags["audp"] || *flags["udp"],
		AdvTCP: *flags["atcp"], AdvUDP: *flags["audp"],
		ClassicTCP: *flags["tcp"], ClassicUDP: *flags["udp"],
	}
	if !m.TCP && !m.UDP {
		m.TCP, m.UDP = true, true
	}
	path, explicit := cfgPath()
	c, err := daemon.LoadConfig(path, explicit)
	if err != nil {
		return err
	}
	log, err := newDaemonLogger(stderr, *format, c.Syslog, c.SyslogTag)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return daemon.Run(ctx, daemon.Options{ConfigPath: path, Config: c, Modes: m, Log: log, Version: version,
		ControlSocket: *control})
}

// runReload asks the running daemon to reload its config and waits for
// its verdict: exit 0 once the new config is in force, 1 with the
// daemon's reason when it refused it (the old one keeps running).
func runReload(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := runtimeSocket()
	if def == "" {
		def = daemon.DefaultControlSocket
	}
	control := fs.String("control-socket", def, "the daemon's control socket `PATH` (scanwarden run --control-socket)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `usage: scanwarden reload [--control-socket PATH]

Asks the running daemon to re-read its config and ignore file, and waits
for its verdict: exit status 0 once the new config is in force, 1 with the
daemon's reason when it refused the config (the running one stays). The
systemd unit's ExecReload, so that systemctl reload tells the truth.

`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: %w", fs.Arg(0), errUsage)
	}
	if err := daemon.Reload(*control); err != nil {
		return err
	}
	_, err := fmt.Fprintln(stdout, "scanwarden: configuration reloaded")
	return err
}

// runtimeSocket is the control socket in the unit's RuntimeDirectory
// (systemd sets RUNTIME_DIRECTORY for ExecStart and ExecReload alike),
// or "" outside a unit that has one.
func runtimeSocket() string {
	dir, _, _ := strings.Cut(os.Getenv("RUNTIME_DIRECTORY"), ":")
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, "control.sock")
}
