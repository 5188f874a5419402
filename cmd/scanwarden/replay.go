package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/scanwarden/scanwarden/capture"
	"github.com/scanwarden/scanwarden/detect"
)

// replayOptions is what `scanwarden replay` was asked to do.
type replayOptions struct {
	engine detect.Config
	json   bool
	merge  bool // one engine across all files instead of one per file
}

// replaySummary counts what a replay saw.
type replaySummary struct {
	files, failed    int
	packets, decoded uint64
	malformed        uint64
	alerts           uint64
	sources          int
}

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
	c, err := loadConfig(path, explicit)
	if err != nil {
		return err
	}
	opt := replayOptions{engine: engineConfig(c), json: *asJSON, merge: *merge}
	if len(home) > 0 {
		opt.engine.Home = home
	}
	out := bufio.NewWriter(stdout)
	start := time.Now()
	sum, err := replay(files, opt, out)
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	el := time.Since(start)
	rate := float64(sum.packets) / el.Seconds()
	fmt.Fprintf(stderr, "replay: %d file(s), %d packets (%d decoded, %d malformed), %d alert(s), %d source(s) tracked, %.3fs, %.0f packets/s\n",
		sum.files, sum.packets, sum.decoded, sum.malformed, sum.alerts, sum.sources, el.Seconds(), rate)
	return err
}

// replay runs the engine over files in order, writing alerts to out. A
// file that cannot be read to its end does not stop the others: its
// alerts up to the damage are printed, and the errors are returned
// together at the end.
func replay(files []string, opt replayOptions, out io.Writer) (replaySummary, error) {
	var sum replaySummary
	var errs []error
	var eng *detect.Engine
	for _, f := range files {
		if eng == nil || !opt.merge {
			if eng != nil {
				sum.sources += eng.Stats().Sources
			}
			e, err := detect.New(opt.engine)
			if err != nil {
				return sum, err
			}
			eng = e
		}
		label := ""
		if len(files) > 1 {
			label = f
		}
		if err := replayFile(f, label, eng, opt, out, &sum); err != nil {
			sum.failed++
			errs = append(errs, err)
		}
	}
	if eng != nil {
		sum.sources += eng.Stats().Sources
	}
	return sum, errors.Join(errs...)
}

// Decoding and classification run on two cores: a reader goroutine
// decodes packets into batches of Probes, the caller's goroutine runs the
// engine over them. Batches go back and forth over channels (a channel
// operation per batch, not per packet) and are reused, so the replay does
// not allocate per packet.
const (
	// replayBatch is the number of Probes in a batch: large enough that
	// the hand-over and the wake-ups of the other goroutine are noise
	// (measured on the make-bench capture: 512 a batch ran 40% slower).
	replayBatch = 2048
	// replayBatches is how many batches are in flight, so that a burst
	// of slow packets on one side does not stall the other; 8 batches of
	// 2048 Probes are about 1.2 MiB.
	replayBatches = 8
)

type probeBatch struct {
	probes [replayBatch]detect.Probe
	n      int
	err    error // set on the last batch: io.EOF or what stopped the reader
}

func replayFile(path, label string, eng *detect.Engine, opt replayOptions, out io.Writer, sum *replaySummary) error {
	src, err := capture.OpenFile(path)
	if err != nil {
		return err
	}
	defer src.Close()
	sum.files++

	free := make(chan *probeBatch, replayBatches)
	full := make(chan *probeBatch, replayBatches)
	done := make(chan struct{})
	for range replayBatches {
		free <- new(probeBatch)
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			var b *probeBatch
			select {
			case b = <-free:
			case <-done:
				return
			}
			b.n, b.err = 0, nil
			for b.n < len(b.probes) {
				if b.err = src.Next(&b.probes[b.n]); b.err != nil {
					break
				}
				b.n++
			}
			full <- b
			if b.err != nil {
				return
			}
		}
	}()
	// stop and wait for the reader before src is closed or its stats read
	defer func() { <-finished }()
	defer close(done)

	for {
		b := <-full
		for i := range b.probes[:b.n] {
			if a := eng.Process(&b.probes[i]); a != nil {
				sum.alerts++
				if werr := writeAlert(out, a, label, opt.json); werr != nil {
					return fmt.Errorf("writing alerts: %w", werr)
				}
			}
		}
		if b.err != nil {
			err = b.err
			break
		}
		free <- b
	}
	<-finished
	st := src.Stats()
	sum.packets += st.Packets
	sum.decoded += st.Decoded
	sum.malformed += st.Malformed
	if errors.Is(err, io.EOF) {
		return nil
	}
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
