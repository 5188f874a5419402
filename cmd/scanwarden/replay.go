package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/scanwarden/scanwarden/alertfmt"
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

Exit status: 0 when every file was read to its end, 1 when one could not be,
2 for bad usage. SIGINT or SIGTERM stops the replay between two batches of
packets: the alerts found so far are printed, the summary says it was
interrupted, and the exit status is 130 (SIGINT) or 143 (SIGTERM).

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
	ctx, stop := stopOnSignal()
	defer stop()
	if restore := replay.QuietGC(opt); !ownProcess {
		defer restore()
	}
	out := bufio.NewWriter(stdout)
	format := alertfmt.AppendText
	if *asJSON {
		format = alertfmt.AppendJSON
	}
	line := make([]byte, 0, 512) // one alert's output, reused from alert to alert
	start := time.Now()
	sum, err := replay.Files(ctx, files, opt, func(a *detect.Alert, file string) error {
		if len(files) == 1 {
			file = "" // one file: no label
		}
		line = format(line[:0], a, file)
		_, err := out.Write(line)
		return err
	})
	ferr := out.Flush()
	if err == nil {
		err = ferr
	}
	el := time.Since(start)
	rate := float64(sum.Packets) / el.Seconds()
	var sig signalCause
	interrupted := ""
	if errors.As(err, &sig) {
		interrupted = ", " + sig.Error()
	}
	fmt.Fprintf(stderr, "replay: %d file(s), %d packets (%d decoded, %d malformed), %d alert(s), %d source(s) tracked, %.3fs, %.0f packets/s%s\n",
		sum.Files, sum.Packets, sum.Decoded, sum.Malformed, sum.Alerts, sum.Sources, el.Seconds(), rate, interrupted)
	if interrupted != "" {
		st := &statusError{code: 128 + int(sig)} // the shell's status of a process the signal killed
		if sum.Failed > 0 || ferr != nil {
			st.err = errors.Join(err, ferr) // the damaged files, then the interruption
		}
		return st
	}
	return err
}

// signalCause ends the context of a replay stopped by a signal.
type signalCause syscall.Signal

func (s signalCause) Error() string {
	if syscall.Signal(s) == syscall.SIGINT {
		return "interrupted by SIGINT"
	}
	return "interrupted by SIGTERM"
}

// stopOnSignal returns a context that SIGINT or SIGTERM ends, with a
// signalCause; a second signal then kills the process as usual.
func stopOnSignal() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case s := <-ch:
			signal.Stop(ch)
			cancel(signalCause(s.(syscall.Signal)))
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel(nil) }
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
