package daemon

// The daemon's side of the Prometheus metrics (package metrics): what the
// threads publish for a scrape, the outcome label of a decision, the
// census of the bans in force, and the listener of METRICS_LISTEN.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/metrics"
)

// engineStats is what a capture thread last published of its engine's
// counters, for a scrape. The thread publishes when it looks at its CPU
// share (every rtCheckEvery probes, and at each read timeout): a scrape
// sees counters at most that many probes or 100 ms old, and the
// per-packet path pays no counter of its own, only one TryLock and a copy
// of the counters every rtCheckEvery probes.
type engineStats struct {
	mu  sync.Mutex
	pub detect.Stats
}

// publish copies eng's counters for a scrape, unless a scrape holds the
// lock: then the next publication does it (the capture thread never
// waits). Capture thread only.
func (s *engineStats) publish(eng *detect.Engine) {
	if s.mu.TryLock() {
		s.pub = eng.Stats()
		s.mu.Unlock()
	}
}

func (s *engineStats) load() detect.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pub
}

// snapshot is what the metrics read at a scrape: the captures' counters
// (libpcap's and the decoder's, the engines' as last published), the
// alerts dropped and the bans as last counted.
func (d *daemon) snapshot() metrics.Snapshot {
	var s metrics.Snapshot
	for _, lc := range d.caps {
		c := metrics.Capture{Interface: lc.iface}
		if src := lc.current(); src != nil {
			if st, err := src.Stats(); err == nil {
				c.Open = true
				c.Received, c.KernelDropped, c.IfDropped = st.Received, st.Dropped, st.IfDropped
				c.Decoded, c.Malformed = st.Decoded, st.Malformed
			}
		}
		s.Captures = append(s.Captures, c)
		s.Engine.Add(lc.eng.load())
	}
	s.AlertsDropped = d.dropped.Load()
	if d.pusher != nil {
		s.CrowdSecQueue = d.pusher.Pending()
	}
	if b := d.bans.Load(); b != nil {
		s.Bans = *b
	}
	return s
}

// outcomeLabel is the metrics' outcome of a decision.
func outcomeLabel(dec block.Decision) string {
	switch dec.Outcome {
	case block.Blocked:
		return metrics.Blocked
	case block.AlreadyBlocked:
		return metrics.AlreadyBlocked
	case block.LoggedOnly:
		return metrics.LoggedOnly
	case block.CommandOnly:
		return metrics.CommandOnly
	case block.RateLimited:
		return metrics.RateLimited
	case block.Forged:
		return metrics.Forged
	case block.Ignored:
		if dec.Why == block.ReasonIgnoreFile {
			return metrics.IgnoreFile
		}
		return metrics.NeverBlock
	}
	return metrics.Failed
}

// askRecount asks the housekeeping to count the bans in force again (a
// block was made or lifted), without waiting.
func (d *daemon) askRecount() {
	select {
	case d.recount <- struct{}{}:
	default:
	}
}

// census counts the bans each backend of m holds now, for the metrics
// (a backend whose count fails is left out until the next census).
func (d *daemon) census(ctx context.Context, m *block.Manager) {
	got, err := m.Census(ctx)
	if err != nil {
		d.log.Warnf("counting the bans in force for the metrics: %v", err)
	}
	out := make([]metrics.Bans, len(got))
	for i, c := range got {
		out[i] = metrics.Bans{Backend: c.Backend, Count: c.Count}
	}
	d.bans.Store(&out)
}

// listenMetrics binds the address c's METRICS_LISTEN names, when it is
// not the one already served (then it returns nil, nil: nothing to
// change). The caller serves the new server and closes the old one once
// the config that named it is in force.
func (d *daemon) listenMetrics(c *conf.Config) (*metrics.Server, error) {
	if c.MetricsListen == "" || d.metricsSrv != nil && d.metricsSrv.Configured() == c.MetricsListen {
		return nil, nil
	}
	srv, err := metrics.Listen(c.MetricsListen, d.metrics)
	if errors.Is(err, syscall.EADDRINUSE) && d.metricsSrv != nil && samePort(d.metricsSrv.Addr(), c.MetricsListen) {
		// the kernel refuses another address on the port our own
		// listener holds (127.0.0.1:P and :P), and the reload binds the
		// new one before it lets go of the old
		err = fmt.Errorf("%w (scanwarden's own listener on %s holds the port, and a reload binds the new address before it closes the old one: restart scanwarden to move the metrics to another address on the same port)", err, d.metricsSrv.Addr())
	}
	return srv, err
}

// samePort reports whether the host:port addresses a and b have the same
// port.
func samePort(a, b string) bool {
	_, pa, errA := net.SplitHostPort(a)
	_, pb, errB := net.SplitHostPort(b)
	return errA == nil && errB == nil && pa == pb
}

// switchMetrics puts srv (from listenMetrics) in service in place of the
// listener c no longer names. Housekeeping only.
func (d *daemon) switchMetrics(c *conf.Config, srv *metrics.Server) {
	old := d.metricsSrv
	switch {
	case srv != nil:
		d.metricsSrv = srv
		srv.Serve(d.log)
		d.log.Infof("metrics: serving Prometheus metrics on http://%s/metrics", srv.Addr())
	case c.MetricsListen == "" && old != nil:
		d.metricsSrv = nil
		d.log.Infof("metrics: no longer served (METRICS_LISTEN is empty)")
	default:
		return
	}
	if old != nil {
		old.Close()
	}
}
