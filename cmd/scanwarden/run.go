package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/scanwarden/scanwarden/daemon"
)

// runRun parses `scanwarden run` and hands over to the daemon.
func runRun(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	format := fs.String("log-format", "text", "log format: text (for journald) or json")
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
		fmt.Fprintf(stderr, `usage: scanwarden run [-c CONF] [--log-format text|json] [-stcp] [-sudp] [-atcp] [-audp] [-tcp] [-udp]

Captures on INTERFACES (default: every interface, through libpcap's "any"),
detects scans and blocks the scanners as the config says. Without a mode
flag it watches TCP and UDP in stealth mode. SIGHUP re-reads the config and
the ignore file; SIGTERM and SIGINT stop it, keeping the blocks.

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
	return daemon.Run(ctx, daemon.Options{ConfigPath: path, Explicit: explicit, Config: c, Modes: m, Log: log, Version: version})
}
