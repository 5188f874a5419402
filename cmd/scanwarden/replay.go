package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/scanwarden/scanwarden/daemon"
	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/replay"
)

func runReplay(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs)
	var home []netip.Prefix
	fs.Func("home", "protected `CIDR` or address (repeatable; default: every destination)", func(s string) error {
		p, err := parsePrefix(s)
		if err != nil {
			return err
		}
		home = append(home, p)
		return nil
	})
	asJSON := fs.Bool("json", false, "print one JSON object per alert")
	merge := fs.Bool("merge", false, "treat all files as one capture (one engine, state carried from file to file); by default each file is replayed on its own")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `usage: scanwarden replay [-c CONF] [--home CIDR]... [--json] [--merge] FILE...

Runs the detection engine over pcap or pcapng files and prints one alert per
line on standard output, readable text or (--json) JSON objects with src,
type, time, probes, ports and dst. A summary goes to standard error. Replay
never touches the firewall.

`)
		fs.PrintDefaults()
	}
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		fs.Usage()
		return fmt.Errorf("no capture file given: %w", errUsage)
	}
	path, explicit := cfgPath()
	c, err := daemon.LoadConfig(path, explicit)
	if err != nil {
		return err
	}
	opt := replay.Options{Engine: daemon.EngineConfig(c), Merge: *merge}
	if len(home) > 0 {
		opt.Engine.Home = home
	}
	out := bufio.NewWriter(stdout)
	start := time.Now()
	sum, err := replay.Files(files, opt, func(a *detect.Alert, file string) error {
		if len(files) == 1 {
			file = "" // one file: no label
		}
		return writeAlert(out, a, file, *asJSON)
	})
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	el := time.Since(start)
	rate := float64(sum.Packets) / el.Seconds()
	fmt.Fprintf(stderr, "replay: %d file(s), %d packets (%d decoded, %d malformed), %d alert(s), %d source(s) tracked, %.3fs, %.0f packets/s\n",
		sum.Files, sum.Packets, sum.Decoded, sum.Malformed, sum.Alerts, sum.Sources, el.Seconds(), rate)
	return err
}

// parsePrefix takes a CIDR or a bare address (which becomes a /32 or /128).
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
