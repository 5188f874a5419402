package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/detect"
)

// loadConfig reads the config named by -c. Without -c it reads the
// packaged config when there is one and falls back to the built-in
// defaults when there is not (replay must work on a machine where
// scanwarden is not installed).
func loadConfig(path string, explicit bool) (*conf.Config, error) {
	c, err := conf.Load(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return conf.Default(), nil
		}
		return nil, err
	}
	return c, nil
}

// engineConfig turns the config into the engine's settings.
func engineConfig(c *conf.Config) detect.Config {
	return detect.Config{
		Window:      c.DetectWindow,
		Threshold:   c.DetectThreshold,
		ScanTrigger: c.ScanTrigger,
		MaxSources:  c.MaxSources,
		TrapTCP:     portSet(&c.TCPPorts),
		TrapUDP:     portSet(&c.UDPPorts),
		Home:        c.HomeNetworks,
	}
}

// portSet converts the config's port set into the engine's.
func portSet(ps *conf.PortSet) *detect.PortSet {
	var s detect.PortSet
	for _, p := range ps.Ports() {
		s.Add(p)
	}
	return &s
}

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
		fmt.Fprintf(stderr, "usage: scanwarden check-config [-c CONF]\n\nReads the config and its ignore file and reports every problem found.\n\n")
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
	if _, err := detect.New(engineConfig(c)); err != nil {
		return err
	}
	if _, err := parseActions(c, newCLILogger(stderr), nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: OK: %d TCP and %d UDP trap ports, window %v, threshold %d, SCAN_TRIGGER %d\n",
		path, c.TCPPorts.Len(), c.UDPPorts.Len(), c.DetectWindow, c.DetectThreshold, c.ScanTrigger)
	// the kernel trap of the default stealth modes, before bound ports
	all := &traps{tcp: portSet(&c.TCPPorts), udp: portSet(&c.UDPPorts)}
	if tr, why := trapFor(c, modeSet{tcp: true, udp: true}, all, block.NewNeverBlock(nil, false, false)); tr.Enabled() {
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
