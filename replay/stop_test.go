package replay

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/detect"
)

// An error of emit (a closed standard output: EPIPE) stops the replay
// there: no further file is opened, emit is not called
// again, the file is not counted as damaged, and the error is returned.
func TestReplayEmitErrorStops(t *testing.T) {
	syn := filepath.Join("..", "testdata", "pcaps", "syn.pcap")
	fin := filepath.Join("..", "testdata", "pcaps", "fin.pcap")
	calls := 0
	sum, err := Files(context.Background(), []string{syn, fin, syn}, Options{}, func(*detect.Alert, string) error {
		calls++
		return syscall.EPIPE
	})
	if !errors.Is(err, syscall.EPIPE) {
		t.Errorf("error %v, want EPIPE", err)
	}
	if calls != 1 || sum.Files != 1 || sum.Failed != 0 {
		t.Errorf("emit called %d times after its error, %d file(s) opened, %d counted as failed; want 1, 1, 0 (err %v)",
			calls, sum.Files, sum.Failed, err)
	}
	if sum.Alerts != 0 {
		t.Errorf("%d alert(s) counted, want 0: emit refused the only one", sum.Alerts)
	}
}

// Cancelled from emit, a replay stops, returns the cause, and leaves no
// goroutine behind.
func TestReplayCancelNoLeak(t *testing.T) {
	syn := filepath.Join("..", "testdata", "pcaps", "syn.pcap")
	cause := errors.New("enough")
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancelCause(context.Background())
	calls := 0
	sum, err := Files(ctx, []string{syn, syn, syn}, Options{}, func(*detect.Alert, string) error {
		calls++
		cancel(cause)
		return nil
	})
	cancel(nil)
	if !errors.Is(err, cause) {
		t.Errorf("%v, want the cause", err)
	}
	if calls != 1 || sum.Files != 1 {
		t.Errorf("emit called %d times, %d file(s) opened after the cancel; want 1 and 1", calls, sum.Files)
	}
	for i := 0; runtime.NumGoroutine() > before && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after the replay, %d before", n, before)
	}
}

// QuietGC never raises a memory limit the process already has
// (GOMEMLIMIT, a container's): with the collector off, the heap would
// grow past it.
func TestQuietGCKeepsLowerLimit(t *testing.T) {
	const low = 8 << 20
	before := debug.SetMemoryLimit(low)
	defer debug.SetMemoryLimit(before)
	restore := QuietGC(Options{})
	got := debug.SetMemoryLimit(-1)
	restore()
	if got > low {
		t.Errorf("QuietGC set the memory limit to %d MiB over the process's %d MiB", got>>20, low>>20)
	}
	if l := debug.SetMemoryLimit(-1); l != low {
		t.Errorf("memory limit %d after restore, want %d", l, low)
	}
}
