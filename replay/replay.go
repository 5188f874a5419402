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
	"runtime"

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

// Summary counts what a replay saw.
type Summary struct {
	Files, Failed     int
	Packets, Decoded  uint64
	Malformed, Alerts uint64
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
// When ctx is done, Files stops between two batches of packets (within a
// few thousand packets) and opens no further file: the alerts handed to
// emit so far stand, the summary counts what was read up to then (the
// file being read counts in Files, not in Failed), and the error returned
// wraps context.Cause(ctx), joined with the errors of the files that
// failed before.
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
			e, err := detect.New(opt.Engine)
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

// Decoding and classification run on two cores: a reader goroutine
// decodes packets into batches of Probes, the caller's goroutine runs the
// engine over them. Batches go back and forth over channels (a channel
// operation per batch, not per packet) and are reused, so the replay does
// not allocate per packet. With one CPU to run on (GOMAXPROCS 1: taskset,
// a container's CPU limit), one goroutine decodes and classifies each
// packet in turn (runInline): the hand-off would only add its cost.
const (
	// replayBatch is the number of Probes in a batch: large enough that
	// the hand-over and the wake-ups of the other goroutine are noise,
	// small enough that the batches in flight stay in a core's L2 cache
	// (measured on make bench's captures of 10,000 and 1,000,000
	// sources, best of 5: 256 to 4096 a batch within 5% of each other,
	// the engine's side the slower one whenever there is a slower one).
	replayBatch = 1024
	// replayBatches is how many batches are in flight, so that a burst
	// of slow packets on one side does not stall the other: 8 batches of
	// 1024 Probes (72 bytes each) are 576 KiB.
	replayBatches = 8
)

type probeBatch struct {
	probes [replayBatch]detect.Probe
	n      int
	err    error // set on the last batch: io.EOF or what stopped the reader
}

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
	// the reader has stopped: its counters may be read
	st := src.Stats()
	sum.Packets += st.Packets
	sum.Decoded += st.Decoded
	sum.Malformed += st.Malformed
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// run feeds eng and org with the probes of src, decoded by a reader
// goroutine, until the end of the file, an error, or ctx; it returns once
// the reader has stopped. ctx is looked at between batches only, so that
// the per-packet loops stay as they are. Each alert is judged (is its
// source real?) by what org learned from the capture so far, its ARP and
// NDP standing for the kernel's neighbour table.
func run(ctx context.Context, src *capture.FileSource, path string, eng *detect.Engine, org *detect.Origins, emit AlertFunc, sum *Summary) error {
	if oneCPU() {
		return runInline(ctx, src, path, eng, org, emit, sum)
	}
	free := make(chan *probeBatch, replayBatches)
	full := make(chan *probeBatch, replayBatches)
	done := make(chan struct{})
	for range replayBatches {
		free <- new(probeBatch)
	}
	stop := ctx.Done() // nil, never ready, for a context that cannot end
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			var b *probeBatch
			select {
			case b = <-free:
			case <-done:
				return
			case <-stop:
				return
			}
			b.n, b.err = 0, nil
			for b.n < len(b.probes) {
				if b.err = src.Next(&b.probes[b.n]); b.err != nil {
					break
				}
				b.n++
			}
			full <- b // never blocks: full holds every batch
			if b.err != nil {
				return
			}
		}
	}()
	// stop and wait for the reader before src is closed or its stats read
	defer func() { <-finished }()
	defer close(done)

	for {
		var b *probeBatch
		select {
		case <-stop: // before a batch that is ready, too
			return errStopped
		default:
		}
		select {
		case b = <-full:
		case <-stop:
			return errStopped
		}
		for i := range b.probes[:b.n] {
			if err := classify(&b.probes[i], path, eng, org, emit, sum); err != nil {
				return err
			}
		}
		if b.err != nil {
			return b.err
		}
		free <- b
	}
}

// oneCPU reports whether the replay has one CPU to run on (a variable:
// tests run both paths).
var oneCPU = func() bool { return runtime.GOMAXPROCS(0) == 1 }

// runInline is run on one goroutine: each packet is decoded, then
// classified. ctx is looked at every replayBatch packets, as run does.
func runInline(ctx context.Context, src *capture.FileSource, path string, eng *detect.Engine, org *detect.Origins, emit AlertFunc, sum *Summary) error {
	var p detect.Probe
	for {
		if ctx.Err() != nil {
			return errStopped
		}
		for range replayBatch {
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
	sum.Alerts++
	if err := emit(a, path); err != nil {
		return fmt.Errorf("%w: %w", errEmit, err)
	}
	return nil
}
