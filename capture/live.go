package capture

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"

	"github.com/scanwarden/scanwarden/detect"
)

// ErrTimeout is returned by LiveSource.Next when no probe arrived within
// the read timeout (or LiveYield packets in a row held none), so that the
// capture loop can check for shutdown and call Next again.
var ErrTimeout = errors.New("capture: no probe within the read timeout")

// LiveOptions configures OpenLive. Zero fields take the defaults from
// tunables.go.
type LiveOptions struct {
	// Filter is a BPF expression (see Filter) compiled into the kernel;
	// empty captures everything.
	Filter string
	// SnapLen is how many bytes of each packet are captured
	// (DefaultSnapLen when zero).
	SnapLen int
	// BufferSize is the kernel capture buffer in bytes
	// (DefaultBufferSize when zero).
	BufferSize int
	// Timeout is the longest Next waits before returning ErrTimeout
	// (DefaultTimeout when zero). It must be positive: a capture that
	// blocks forever could never be shut down cleanly.
	Timeout time.Duration
	// Promisc puts the interface in promiscuous mode, to see probes aimed
	// at other hosts on the segment.
	Promisc bool
}

// LiveStats is a live capture's counters: the decoder's and the kernel's.
type LiveStats struct {
	Stats
	// Received is the packets the kernel filter passed to the capture.
	Received uint64
	// Dropped is the packets the kernel dropped because the capture
	// buffer was full: probes that were never seen.
	Dropped uint64
	// IfDropped is the packets the interface or its driver dropped.
	IfDropped uint64
}

// LiveSource reads probes from a network interface through libpcap, in
// immediate mode, with the kernel BPF filter from LiveOptions. It is not
// safe for concurrent use, except that Close may be called from another
// goroutine to end a Next in progress.
type LiveSource struct {
	iface  string
	handle *pcap.Handle
	dec    *Decoder
	// n counts the probes Next returned, to publish the decoder's
	// counters every statsEvery of them.
	n uint

	mu     sync.Mutex // orders Stats and Close: libpcap's stats on a closed handle would crash
	closed bool
	// pub is the decoder's counters as Next last published them (under
	// mu), for Stats from another goroutine: the decoder's own are the
	// capture thread's alone.
	pub Stats
	// kernel holds libpcap's counters of received, dropped and
	// interface-dropped packets (under mu), made 64-bit (see widen).
	kernel [3]wideCounter
}

// wideCounter makes a 64-bit counter of one of libpcap's, which are 32
// bits (struct pcap_stat) and wrap after 2^32 packets: some hours of a
// flood. Each reading adds what the counter moved since the one before,
// modulo 2^32, so the total stays right as long as it is read once
// between two wraps (the daemon reads it every stats interval and at
// every scrape, far more often).
type wideCounter struct {
	last  uint32
	total uint64
}

// widen takes a new reading of the 32-bit counter and returns the total.
func (c *wideCounter) widen(raw int) uint64 {
	v := uint32(raw)
	c.total += uint64(v - c.last)
	c.last = v
	return c.total
}

// OpenLive opens iface for capture with opt's settings and filter. It
// needs CAP_NET_RAW. The error names the interface and the step that
// failed (e.g. a filter that does not compile).
func OpenLive(iface string, opt LiveOptions) (*LiveSource, error) {
	if opt.SnapLen == 0 {
		opt.SnapLen = DefaultSnapLen
	}
	if opt.BufferSize == 0 {
		opt.BufferSize = DefaultBufferSize
	}
	if opt.Timeout == 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.Timeout < time.Millisecond {
		return nil, fmt.Errorf("capture on %s: read timeout %v: must be at least 1ms", iface, opt.Timeout)
	}
	if opt.SnapLen < 0 || opt.BufferSize < 0 {
		return nil, fmt.Errorf("capture on %s: negative snap length or buffer size", iface)
	}
	in, err := pcap.NewInactiveHandle(iface)
	if err != nil {
		return nil, fmt.Errorf("capture on %s: %w", iface, err)
	}
	defer in.CleanUp()
	for _, step := range []struct {
		what string
		err  error
	}{
		{"immediate mode", in.SetImmediateMode(true)},
		{"buffer size", in.SetBufferSize(opt.BufferSize)},
		{"snap length", in.SetSnapLen(opt.SnapLen)},
		{"read timeout", in.SetTimeout(opt.Timeout)},
		{"promiscuous mode", in.SetPromisc(opt.Promisc)},
	} {
		if step.err != nil {
			return nil, fmt.Errorf("capture on %s: set %s: %w", iface, step.what, step.err)
		}
	}
	h, err := in.Activate()
	if err != nil {
		return nil, fmt.Errorf("capture on %s: activate: %w", iface, err)
	}
	s := &LiveSource{iface: iface, handle: h}
	if s.dec, err = NewDecoder(h.LinkType()); err != nil {
		h.Close()
		return nil, fmt.Errorf("capture on %s: %w", iface, err)
	}
	if opt.Filter != "" {
		if err := h.SetBPFFilter(opt.Filter); err != nil {
			h.Close()
			return nil, fmt.Errorf("capture on %s: filter %q: %w", iface, opt.Filter, err)
		}
	}
	return s, nil
}

// Interface returns the name of the captured interface.
func (s *LiveSource) Interface() string { return s.iface }

// LinkType returns the interface's link type.
func (s *LiveSource) LinkType() layers.LinkType { return s.dec.LinkType() }

// Next fills p with the next probe and returns nil. It returns ErrTimeout
// when none arrived within the read timeout (or after LiveYield
// undecodable packets in a row), io.EOF once the source is closed, and a
// wrapped error if libpcap fails. Next allocates nothing; the packet's
// bytes are decoded in libpcap's buffer.
func (s *LiveSource) Next(p *detect.Probe) error {
	for range LiveYield {
		data, ci, err := s.handle.ZeroCopyReadPacketData()
		if err != nil {
			s.publish()
			switch {
			case err == error(pcap.NextErrorTimeoutExpired):
				return ErrTimeout
			case errors.Is(err, io.EOF):
				return io.EOF
			}
			return fmt.Errorf("capture on %s: read: %w", s.iface, err)
		}
		if s.dec.Decode(data, ci.Timestamp.UnixNano(), p) {
			if s.n++; s.n&(statsEvery-1) == 0 {
				s.publish()
			}
			return nil
		}
	}
	s.publish()
	return ErrTimeout
}

// Stats returns the decoder's counters and libpcap's kernel counters,
// 64-bit however often libpcap's 32-bit ones wrapped between two calls
// but once (after Close, only the decoder's, with an error). It is safe to call
// from any goroutine: the decoder's counters are those Next last
// published, at most statsEvery probes or one read timeout old.
func (s *LiveSource) Stats() (LiveStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := LiveStats{Stats: s.pub}
	if s.closed {
		return st, fmt.Errorf("capture on %s: stats: %w", s.iface, net.ErrClosed)
	}
	ks, err := s.handle.Stats()
	if err != nil {
		return st, fmt.Errorf("capture on %s: stats: %w", s.iface, err)
	}
	st.Received = s.kernel[0].widen(ks.PacketsReceived)
	st.Dropped = s.kernel[1].widen(ks.PacketsDropped)
	st.IfDropped = s.kernel[2].widen(ks.PacketsIfDropped)
	return st, nil
}

// Close stops the capture and releases the handle; a Next blocked in
// another goroutine returns io.EOF. Close is idempotent.
func (s *LiveSource) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.handle.Close()
	}
}

// statsEvery is how many probes Next returns between two publications of
// the decoder's counters (a power of two): often enough for a stats line,
// rare enough to stay off the per-packet cost. Next also publishes
// whenever the read times out, so an idle capture's counters are current.
const statsEvery = 256

// publish copies the decoder's counters for Stats, whole, unless Stats
// or Close holds the lock: then the next publication does it (Next never
// waits).
func (s *LiveSource) publish() {
	if s.mu.TryLock() {
		s.pub = s.dec.Stats()
		s.mu.Unlock()
	}
}
