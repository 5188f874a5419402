// Package metrics owns scanwarden's Prometheus metrics: their names, help
// texts and labels, the registry, and the HTTP listener of
// METRICS_LISTEN. Every label has a bounded set of values (a scan type, an
// outcome, a configured interface or backend): never an address.
//
// It is fed two ways. What the daemon's threads see happen (an alert, a
// decision and its latency, a reload, a kernel-trap overflow) they count
// here through Metrics' methods: an atomic add each, and never on the
// per-packet path. What other packages keep (the capture threads' engine
// and decoder counters, which they publish every few hundred packets; the
// kernel's capture counters; the bans each backend holds) is read at each
// scrape from the Snapshot function the daemon gives New.
//
// It may not touch the capture, the engine's state, the firewall or the
// config file: it reads plain values.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/detect"
)

// namespace prefixes every metric's name.
const namespace = "scanwarden"

// Outcome label values of scanwarden_decisions_total.
const (
	Blocked        = "blocked"         // put in the firewall (or the backends configured)
	AlreadyBlocked = "already_blocked" // a ban was in force already
	LoggedOnly     = "logged_only"     // BLOCK_TCP/BLOCK_UDP 0
	CommandOnly    = "command_only"    // BLOCK_x 2: KILL_RUN_CMD run
	RateLimited    = "rate_limited"    // refused by BLOCK_RATE_LIMIT
	IgnoreFile     = "ignored"         // the source is in the ignore file
	NeverBlock     = "never_block"     // the host's own, a gateway, a resolver, loopback, multicast
	Forged         = "forged"          // judged forged: someone else sent the probes in its name
	Repeated       = "repeated"        // the classic modes' one alert per source and window was in
	Failed         = "failed"          // the ban could not be recorded: nothing blocked (the log says why)
	Expired        = "expired"         // a fleet decision that had ended when it was read (crowdsec_decisions_total)
)

// outcomes are every outcome label, so that each series exists (at 0)
// from the start: a rate over a series that appears only at its first
// event misses that event.
var outcomes = []string{Blocked, AlreadyBlocked, LoggedOnly, CommandOnly, RateLimited, IgnoreFile, NeverBlock, Forged, Repeated, Failed}

// triggers are the label values of an alert's trigger (detect.Trigger).
var triggers = []string{detect.TriggerScore.String(), detect.TriggerTrap.String()}

// LatencyBuckets are the bounds, in seconds, of the first-probe-to-rule
// histogram: from the kernel trap's and the capture thread's sub-
// millisecond blocks to a block that waited for iptables or a slow
// KILL_RUN_CMD_FIRST.
var LatencyBuckets = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Capture is one configured interface's capture counters.
type Capture struct {
	Interface string
	// Open: the capture is open now (an interface that went away is
	// reopened every few seconds); the counters below are then those of
	// the open handle.
	Open bool
	// Received and KernelDropped are libpcap's counters of the open
	// handle: packets the filter passed, and packets the kernel dropped
	// because the capture buffer was full. IfDropped is what the
	// interface dropped.
	Received, KernelDropped, IfDropped uint64
	// Decoded and Malformed are the decoder's (capture.Stats).
	Decoded, Malformed uint64
}

// Bans is one backend's count of the addresses it blocks.
type Bans struct {
	Backend string
	Count   int
}

// Snapshot is what the daemon's counters say at a scrape.
type Snapshot struct {
	Captures []Capture
	// Engine is the engines' counters, summed over the capture threads.
	Engine detect.Stats
	// AlertsDropped is the alerts the capture threads dropped rather than
	// wait for a blocking thread that was behind.
	AlertsDropped uint64
	// Bans is the bans in force per backend, as last counted; nil
	// before the first count.
	Bans []Bans
	// CrowdSecQueue is the blocks waiting to be sent to the CrowdSec
	// LAPI (0 when no push is configured).
	CrowdSecQueue int
}

// Metrics is the registry of scanwarden's metrics and the counters the
// daemon's threads update. Its methods are safe for concurrent use; those
// that count do nothing on a nil *Metrics (a daemon built by a test).
type Metrics struct {
	reg       *prometheus.Registry
	alerts    *prometheus.CounterVec
	decisions *prometheus.CounterVec
	latency   prometheus.Histogram
	trapHits  prometheus.Counter
	overflows prometheus.Counter
	reloads   *prometheus.CounterVec
	errors    prometheus.Counter
	csSent    prometheus.Counter
	csDropped prometheus.Counter
	csFleet   *prometheus.CounterVec
	csLifted  prometheus.Counter
}

// New returns the metrics, with snap read at each scrape (it must be safe
// to call from any goroutine and must not block for long).
func New(version string, snap func() Snapshot) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "alerts_total",
			Help: "Alerts raised, by scan type and by what decided (score: the source's score over the window reached DETECT_THRESHOLD; trap: it hit trap ports SCAN_TRIGGER times).",
		}, []string{"type", "trigger"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "decisions_total",
			Help: "What became of the alerts, by outcome.",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "block_latency_seconds",
			Help:    "Time from a blocked source's first probe to its rule in place (0 when the kernel trap held it on that probe).",
			Buckets: LatencyBuckets,
		}),
		trapHits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "kernel_trap_hits_total",
			Help: "Alerts whose source the kernel trap had held on its first probe of a trap port.",
		}),
		overflows: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "kernel_trap_overflows_total",
			Help: "First hits of a trap port that found the kernel trap set full (TRAP_SET_SIZE): not held, judged by userspace alone.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "reloads_total",
			Help: "Configuration reloads (SIGHUP), by result: done, or refused (the running configuration kept).",
		}, []string{"result"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "errors_total",
			Help: "Errors logged (each is a line at level error in the log).",
		}),
		csSent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "crowdsec_alerts_sent_total",
			Help: "Blocks sent to the CrowdSec LAPI as alerts.",
		}),
		csDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "crowdsec_alerts_dropped_total",
			Help: "Blocks never sent to the CrowdSec LAPI: the queue was full during an outage, or the LAPI refused them for their content.",
		}),
		csFleet: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "crowdsec_decisions_total",
			Help: "Ban decisions of the CrowdSec fleet read from the LAPI, by what became of them here.",
		}, []string{"outcome"}),
		csLifted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "crowdsec_lifted_total",
			Help: "Bans lifted because the CrowdSec LAPI deleted the last decision for the address.",
		}),
	}
	for _, t := range scanTypes() {
		for _, tr := range triggers {
			m.alerts.WithLabelValues(t, tr)
		}
	}
	for _, o := range outcomes {
		m.decisions.WithLabelValues(o)
	}
	m.reloads.WithLabelValues("done")
	m.reloads.WithLabelValues("refused")
	for _, o := range fleetOutcomes {
		m.csFleet.WithLabelValues(o)
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; the version label is the running binary's.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	info.Set(1)
	m.reg.MustRegister(m.alerts, m.decisions, m.latency, m.trapHits, m.overflows, m.reloads, m.errors, info,
		m.csSent, m.csDropped, m.csFleet, m.csLifted,
		&snapshotCollector{snap: snap},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// scanTypes names every scan type.
func scanTypes() []string {
	var out []string
	for t := detect.ScanType(0); ; t++ {
		if _, err := detect.ParseScanType(t.String()); err != nil {
			return out
		}
		out = append(out, t.String())
	}
}

// Alert counts an alert raised (before anything is decided of it).
func (m *Metrics) Alert(a *detect.Alert) {
	if m != nil {
		m.alerts.WithLabelValues(a.Type.String(), a.Trigger.String()).Inc()
	}
}

// Decision counts what became of an alert (an outcome constant of this
// package).
func (m *Metrics) Decision(outcome string) {
	if m != nil {
		m.decisions.WithLabelValues(outcome).Inc()
	}
}

// BlockLatency records the time from a blocked source's first probe to its
// rule.
func (m *Metrics) BlockLatency(d time.Duration) {
	if m != nil {
		m.latency.Observe(max(d, 0).Seconds())
	}
}

// KernelTrapHit counts an alert whose source the kernel trap held.
func (m *Metrics) KernelTrapHit() {
	if m != nil {
		m.trapHits.Inc()
	}
}

// KernelTrapOverflows adds n first hits that found the trap set full.
func (m *Metrics) KernelTrapOverflows(n uint64) {
	if m != nil {
		m.overflows.Add(float64(n))
	}
}

// Reload counts a reload, done or refused.
func (m *Metrics) Reload(err error) {
	switch {
	case m == nil:
	case err != nil:
		m.reloads.WithLabelValues("refused").Inc()
	default:
		m.reloads.WithLabelValues("done").Inc()
	}
}

// fleetOutcomes are the outcome labels of scanwarden_crowdsec_decisions_total.
var fleetOutcomes = []string{Blocked, AlreadyBlocked, NeverBlock, IgnoreFile, Expired, Failed}

// CrowdSecSent counts blocks the LAPI took.
func (m *Metrics) CrowdSecSent(n int) {
	if m != nil {
		m.csSent.Add(float64(n))
	}
}

// CrowdSecDropped counts blocks that will never reach the LAPI.
func (m *Metrics) CrowdSecDropped(n int) {
	if m != nil {
		m.csDropped.Add(float64(n))
	}
}

// CrowdSecDecision counts a fleet decision read from the LAPI by what
// became of it (an outcome constant of this package).
func (m *Metrics) CrowdSecDecision(outcome string) {
	if m != nil {
		m.csFleet.WithLabelValues(outcome).Inc()
	}
}

// CrowdSecLifted counts bans lifted because the LAPI deleted their
// decisions.
func (m *Metrics) CrowdSecLifted(n int) {
	if m != nil {
		m.csLifted.Add(float64(n))
	}
}

// Handler serves the metrics in Prometheus' text format (or OpenMetrics,
// when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// ErrorHook counts every line logged at level error in
// scanwarden_errors_total: every error path of the daemon logs, so the
// count misses none and needs no hook of its own.
func (m *Metrics) ErrorHook() logrus.Hook { return errorHook{m.errors} }

type errorHook struct{ c prometheus.Counter }

func (errorHook) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel}
}

func (h errorHook) Fire(*logrus.Entry) error {
	h.c.Inc()
	return nil
}

// snapshotCollector turns the daemon's Snapshot into metrics at each
// scrape.
type snapshotCollector struct {
	snap func() Snapshot
}

var (
	descCapReceived = prometheus.NewDesc(namespace+"_capture_packets_total",
		"Packets the capture's kernel filter passed (libpcap's count for the open handle: it starts again at 0 when an interface is reopened).", []string{"interface"}, nil)
	descCapDropped = prometheus.NewDesc(namespace+"_capture_kernel_dropped_total",
		"Packets the kernel dropped because the capture's buffer was full.", []string{"interface"}, nil)
	descCapIfDropped = prometheus.NewDesc(namespace+"_capture_interface_dropped_total",
		"Packets the interface dropped, as libpcap reports them.", []string{"interface"}, nil)
	descCapDecoded = prometheus.NewDesc(namespace+"_capture_decoded_total",
		"Packets decoded into probes or answers (TCP, UDP, ICMP unreachable, ARP and NDP).", []string{"interface"}, nil)
	descCapMalformed = prometheus.NewDesc(namespace+"_capture_malformed_total",
		"Packets skipped because a header was truncated or inconsistent.", []string{"interface"}, nil)
	descCapOpen = prometheus.NewDesc(namespace+"_capture_open",
		"1 while the interface's capture is open, 0 while scanwarden waits for the interface.", []string{"interface"}, nil)
	descProbes = prometheus.NewDesc(namespace+"_probes_total",
		"Probes counted by the engine, by scan type.", []string{"type"}, nil)
	descEnginePackets = prometheus.NewDesc(namespace+"_engine_packets_total",
		"Packets the engine classified (probes, answers and the rest).", nil, nil)
	descSources = prometheus.NewDesc(namespace+"_sources_tracked",
		"Sources the engines track now (MAX_SOURCES bounds each engine).", nil, nil)
	descEvicted = prometheus.NewDesc(namespace+"_sources_evicted_total",
		"Sources dropped to make room for new ones (a forged-source flood shows here).", nil, nil)
	descDropped = prometheus.NewDesc(namespace+"_alerts_dropped_total",
		"Alerts the capture threads dropped because the blocking thread was behind (their sources are reported again if they go on probing).", nil, nil)
	descCSQueue = prometheus.NewDesc(namespace+"_crowdsec_queue",
		"Blocks waiting to be sent to the CrowdSec LAPI (STATE_DIR/crowdsec-queue.json): above 0 for long, the LAPI is unreachable.", nil, nil)
	descBans = prometheus.NewDesc(namespace+"_bans",
		"Addresses each blocking backend blocks, as last read from the kernel or file (at start, within 5 s of a block, after a reload and at each re-sync: every 30 s).", []string{"backend"}, nil)
)

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCapReceived, descCapDropped, descCapIfDropped, descCapDecoded, descCapMalformed, descCapOpen,
		descProbes, descEnginePackets, descSources, descEvicted, descDropped, descBans, descCSQueue} {
		ch <- d
	}
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snap()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, cp := range s.Captures {
		open := 0.0
		if cp.Open {
			open = 1
		}
		ch <- prometheus.MustNewConstMetric(descCapOpen, prometheus.GaugeValue, open, cp.Interface)
		counter(descCapReceived, cp.Received, cp.Interface)
		counter(descCapDropped, cp.KernelDropped, cp.Interface)
		counter(descCapIfDropped, cp.IfDropped, cp.Interface)
		counter(descCapDecoded, cp.Decoded, cp.Interface)
		counter(descCapMalformed, cp.Malformed, cp.Interface)
	}
	for i, n := range s.Engine.Types {
		counter(descProbes, n, detect.ScanType(i).String())
	}
	counter(descEnginePackets, s.Engine.Packets)
	ch <- prometheus.MustNewConstMetric(descSources, prometheus.GaugeValue, float64(s.Engine.Sources))
	counter(descEvicted, s.Engine.Evicted)
	counter(descDropped, s.AlertsDropped)
	ch <- prometheus.MustNewConstMetric(descCSQueue, prometheus.GaugeValue, float64(s.CrowdSecQueue))
	for _, b := range s.Bans {
		ch <- prometheus.MustNewConstMetric(descBans, prometheus.GaugeValue, float64(b.Count), b.Backend)
	}
}

// Server is the HTTP listener of METRICS_LISTEN.
type Server struct {
	addr   string
	ln     net.Listener
	srv    *http.Server
	served bool // Serve was called (by the goroutine that calls Close)
	done   chan struct{}
}

// Listen binds addr (host:port) for m's metrics, served at /metrics; it
// does not serve until Serve. Binding first lets a reload refuse an
// address it cannot have before anything else changes.
func Listen(addr string, m *Metrics) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listening on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "scanwarden: metrics at /metrics")
	})
	return &Server{addr: addr, ln: ln, done: make(chan struct{}), srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: serverTimeout,
		ReadTimeout:       serverTimeout,
		WriteTimeout:      serverTimeout,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}}, nil
}

// serverTimeout bounds a scrape's request and answer: a client that
// stalls holds a connection no longer than this.
const serverTimeout = 10 * time.Second

// Addr is the address the server listens on (with the port the kernel
// chose, when addr's was 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Configured is the address Listen was given.
func (s *Server) Configured() string { return s.addr }

// Serve serves scrapes until Close; log receives the error that stops it
// otherwise. Serve and Close are called by one goroutine.
func (s *Server) Serve(log logrus.FieldLogger) {
	s.served = true
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Errorf("metrics: serving on %s: %v", s.Addr(), err)
		}
	}()
}

// Close stops listening, lets the scrapes in progress finish (for a few
// seconds at most, closeTimeout) and returns once the server has stopped. It may be
// called on a server that never served; nil is allowed.
func (s *Server) Close() {
	if s == nil {
		return
	}
	if !s.served {
		s.ln.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	<-s.done
}

// closeTimeout is how long Close lets the scrapes in progress finish.
const closeTimeout = 5 * time.Second
