package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/daemon"
	"github.com/scanwarden/scanwarden/detect"
)

// configFlag adds -c to fs and returns a function telling the path and
// whether it was given.
func configFlag(fs *flag.FlagSet) func() (string, bool) {
	path := fs.String("c", defaultConfig, "config `file`")
	return func() (string, bool) {
		explicit := false
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "c" {
				explicit = true
			}
		})
		return *path, explicit
	}
}

func runCheckConfig(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: scanwarden check-config [-c CONF]\n\nReads the config and its ignore file and reports the warnings and the first error found.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: %w", fs.Arg(0), errUsage)
	}
	path, _ := cfgPath()
	c, err := conf.Load(path)
	if err != nil {
		return err
	}
	for _, w := range c.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if c.IgnoreFile != "" {
		ig, err := conf.LoadIgnore(c.IgnoreFile)
		if err != nil {
			return fmt.Errorf("IGNORE_FILE (%s:%d): %w", c.Path, c.Line("IGNORE_FILE"), err)
		}
		fmt.Fprintf(stdout, "%s: ignore file %s: %d entries\n", path, c.IgnoreFile, ig.Len())
	}
	if _, err := detect.New(daemon.EngineConfig(c)); err != nil {
		return err
	}
	if err := daemon.CheckActions(c, newCLILogger(stderr)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: OK: %d TCP and %d UDP trap ports, window %v, threshold %d, SCAN_TRIGGER %d\n",
		path, c.TCPPorts.Len(), c.UDPPorts.Len(), c.DetectWindow, c.DetectThreshold, c.ScanTrigger)
	// the kernel trap of the default stealth modes, before bound ports
	if tr, why := daemon.TrapPlan(c); tr.Enabled() {
		fmt.Fprintf(stdout, "%s: blocking with %s; kernel trap on the first probe to a trap port (at most %d trapped sources per family)\n", path, c.BlockBackend, tr.Size)
	} else {
		fmt.Fprintf(stdout, "%s: blocking with %s; no kernel trap: %s\n", path, c.BlockBackend, why)
	}
	if c.CaptureRealtime {
		fmt.Fprintf(stdout, "%s: capture and blocking at real-time priority where the daemon may (CAPTURE_REALTIME; its user needs an RTPRIO limit of 1, as the unit's LimitRTPRIO=1, or CAP_SYS_NICE)\n", path)
	} else {
		fmt.Fprintf(stdout, "%s: capture and blocking at normal priority (CAPTURE_REALTIME=\"0\")\n", path)
	}
	return nil
}
