package daemon

import (
	"net/netip"
	"sync"

	"github.com/scanwarden/scanwarden/internal/bounded"
)

// alertOnce passes one alert per source and detection window between the
// capture's alerts and the classic ports' (PortSentry's -tcp/-udp): a
// source that connects to a classic port and also trips the capture
// engine's score goes to the block manager once, and so gets one
// attackalert and one history line. It remembers at most max sources;
// the oldest makes room. Safe for concurrent use; a nil *alertOnce (no
// classic mode) passes everything.
type alertOnce struct {
	mu     sync.Mutex
	window int64
	last   *bounded.Map[netip.Addr, int64] // when the source's alert was passed (ns)
}

// newAlertOnce returns an alertOnce of at most max sources and a window
// of window ns (DETECT_WINDOW).
func newAlertOnce(max int, window int64) *alertOnce {
	return &alertOnce{window: window, last: bounded.New[netip.Addr, int64](max)}
}

// setWindow sets the detection window (DETECT_WINDOW).
func (o *alertOnce) setWindow(ns int64) {
	if o == nil {
		return
	}
	o.mu.Lock()
	o.window = ns
	o.mu.Unlock()
}

// admit reports whether an alert of src may go to the block manager at
// now (ns): not when one was passed within the window.
func (o *alertOnce) admit(src netip.Addr, now int64) bool {
	if o == nil {
		return true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if at, ok := o.last.Get(src); ok && now-at <= o.window {
		return false
	}
	o.last.Put(src, now)
	return true
}

// forget lets src's next alert through: the block manager refused the
// last one (rate limit: the engines report it anew when they are
// rearmed), or it was judged forged (src's own alert may follow).
func (o *alertOnce) forget(src netip.Addr) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.last.Get(src); ok {
		o.last.Put(src, -1<<62) // long before any window
	}
}
