// Package replay runs the detection engine over capture files: the
// offline pipeline of `scanwarden replay`, the same engine as the live
// daemon, so that the same packets give the same verdicts. It reads the
// files (package capture) and hands each alert to the caller; it neither
// formats alerts nor touches the firewall.
package replay

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/scanwarden/scanwarden/capture"
	"github.com/scanwarden/scanwarden/detect"
)

// Options is what a replay is asked to do.
type Options struct {
	Engine detect.Config
	// Merge treats all files as one capture (one engine, state carried
	// from file to file); by default each file is replayed on its own.
	Merge bool
}

// engineConfig is opt's engine config as a replay runs it: its tables
// laid out for huge pages (a replay fills them within its first packets,
// and each page fault saved is worth many packets).
func engineConfig(opt Options) detect.Config {
	c := opt.Engine
	c.HugePages = hugeTables
	return c
}

// hugeTables is engineConfig's HugePages (a variable: a test compares
// both layouts).
var hugeTables = true

// Summary counts what a replay saw.
type Summary struct {
	Files, Failed    int
	Packets, Decoded uint64
	Malformed        uint64
	// Alerts counts the alerts emit took (an error of emit stops the
	// replay, its alert not counted).
	Alerts uint64
	// Sources is the number of sources tracked at the end, added up over
	// the engines (one per file unless Merge).
	Sources int
}

// AlertFunc receives each alert, with the file it came from; an error
// stops the replay and is returned. The alert is valid during the call
// only (the engine reuses it): keep a.Clone() to keep it.
type AlertFunc func(a *detect.Alert, file string) error

// Files runs the engine over files in order, handing each alert to emit.
// A file that cannot be read to its end does not stop the others: its
// alerts up to the damage are handed over, and the errors are returned
// together at the end. An error of emit stops the replay at once (its
// file counts in Files, not in Failed; no further file is opened) and is
// returned, joined after the errors of the files that failed before.
//
// When ctx is done, Files stops within checkEvery packets and opens no
// further file: the alerts handed to emit so far stand, the summary
// counts what was read up to then (the file being read counts in Files,
// not in Failed), and the error returned wraps context.Cause(ctx), joined
// with the errors of the files that failed before.
func Files(ctx context.Context, files []string, opt Options, emit AlertFunc) (Summary, error) {
	var sum Summary
	var errs []error
	var eng *detect.Engine
	var org *detect.Origins
	stopped := false
	for _, f := range files {
		if stopped = ctx.Err() != nil; stopped {
			break
		}
		if eng == nil || !opt.Merge {
			if eng != nil {
				sum.Sources += eng.Stats().Sources
			}
			e, err := detect.New(engineConfig(opt))
			if err != nil {
				return sum, err
			}
			eng, org = e, detect.NewOrigins()
		}
		if err := replayFile(ctx, f, eng, org, emit, &sum); err != nil {
			if stopped = errors.Is(err, errStopped); stopped {
				break
			}
			errs = append(errs, err)
			if errors.Is(err, errEmit) {
				break // the caller refused an alert: it gets no more
			}
			sum.Failed++
		}
	}
	if eng != nil {
		sum.Sources += eng.Stats().Sources
	}
	if stopped {
		errs = append(errs, context.Cause(ctx))
	}
	return sum, errors.Join(errs...)
}

// errStopped is replayFile's report that ctx stopped it.
var errStopped = errors.New("replay stopped")

// errEmit wraps the errors of emit, which stop the replay as a whole
// where a damaged file stops only itself.
var errEmit = errors.New("writing alerts")

// checkEvery is how many packets go between two looks at ctx: a cancel
// is seen within a millisecond or so, and the per-packet loop does not
// look at a channel.
//
// One goroutine reads, decodes and classifies each packet in turn, with
// no hand-off between threads. A reader goroutine handing batches of
// decoded probes to the engine's goroutine was measured (make bench, on
// 2-CPU virtual machines): no faster in wall time, and 40 to 60 ns of CPU
// a packet more, for the probes written on one core and read on the
// other and the wake-ups of both.
const checkEvery = 1024

// replayFile runs eng and org over one file; it returns errStopped when
// ctx stopped it.
func replayFile(ctx context.Context, path string, eng *detect.Engine, org *detect.Origins, emit AlertFunc, sum *Summary) error {
	src, err := capture.OpenFile(path)
	if err != nil {
		return err
	}
	defer src.Close()
	sum.Files++
	err = run(ctx, src, path, eng, org, emit, sum)
	st := src.Stats() // read no further: its counters are final
	sum.Packets += st.Packets
	sum.Decoded += st.Decoded
	sum.Malformed += st.Malformed
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// run feeds eng and org with the probes of src until the end of the
// file, an error, or ctx (looked at every checkEvery packets). Each alert
// is judged (is its source real?) by what org learned from the capture
// so far, its ARP and NDP standing for the kernel's neighbour table.
func run(ctx context.Context, src *capture.FileSource, path string, eng *detect.Engine, org *detect.Origins, emit AlertFunc, sum *Summary) error {
	var p detect.Probe
	for {
		if ctx.Err() != nil {
			return errStopped
		}
		for range checkEvery {
			if err := src.Next(&p); err != nil {
				return err
			}
			if err := classify(&p, path, eng, org, emit, sum); err != nil {
				return err
			}
		}
	}
}

// classify runs org and eng over one probe and hands its alert, if any,
// to emit, judged by what org learned so far.
func classify(p *detect.Probe, path string, eng *detect.Engine, org *detect.Origins, emit AlertFunc, sum *Summary) error {
	org.Observe(p)
	a := eng.Process(p)
	if a == nil {
		return nil
	}
	a.Origin = org.Judge(a, org)
	if err := emit(a, path); err != nil {
		return fmt.Errorf("%w: %w", errEmit, err)
	}
	sum.Alerts++
	return nil
}
