package metrics

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/scanwarden/scanwarden/detect"
)

// scrape serves m on a free loopback port and returns one scrape's text.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv, err := Listen("127.0.0.1:0", m)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := test.NewNullLogger()
	srv.Serve(log)
	defer srv.Close()
	resp, err := http.Get("http://" + srv.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// value returns the value of the series (name and labels as the text
// format writes them), or "" when it is absent.
func value(text, series string) string {
	for _, l := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(l, series+" "); ok {
			return rest
		}
	}
	return ""
}

func TestScrape(t *testing.T) {
	var st detect.Stats
	st.Packets, st.Probes, st.Sources, st.Evicted = 1000, 40, 7, 3
	st.Types[detect.TypeSYN], st.Types[detect.TypeUDP] = 30, 10
	m := New("v-test", func() Snapshot {
		return Snapshot{
			Captures: []Capture{
				{Interface: "eth0", Open: true, Received: 1200, KernelDropped: 5, IfDropped: 1, Decoded: 1100, Malformed: 2},
				{Interface: "eth1"},
			},
			Engine:        st,
			AlertsDropped: 4,
			Bans:          []Bans{{"nftables", 2}, {"hosts.deny", 3}},
			CrowdSecQueue: 9,
		}
	})
	a := &detect.Alert{Type: detect.TypeFIN, Trigger: detect.TriggerScore}
	m.Alert(a)
	m.Alert(a)
	m.Decision(Blocked)
	m.Decision(Forged)
	m.BlockLatency(3 * time.Millisecond)
	m.BlockLatency(0)
	m.KernelTrapHit()
	m.KernelTrapOverflows(6)
	m.Reload(nil)
	m.Reload(errors.New("bad line"))
	m.CrowdSecSent(4)
	m.CrowdSecDropped(1)
	m.CrowdSecDecision(Blocked)
	m.CrowdSecDecision(NeverBlock)
	m.CrowdSecLifted(2)
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.AddHook(m.ErrorHook())
	log.Error("one")
	log.Warn("not an error")
	log.Errorf("two")

	text := scrape(t, m)
	for series, want := range map[string]string{
		`scanwarden_alerts_total{trigger="score",type="fin"}`:          "2",
		`scanwarden_alerts_total{trigger="trap",type="syn"}`:           "0",
		`scanwarden_decisions_total{outcome="blocked"}`:                "1",
		`scanwarden_decisions_total{outcome="forged"}`:                 "1",
		`scanwarden_decisions_total{outcome="rate_limited"}`:           "0",
		`scanwarden_block_latency_seconds_count`:                       "2",
		`scanwarden_block_latency_seconds_bucket{le="0.0005"}`:         "1",
		`scanwarden_block_latency_seconds_bucket{le="0.005"}`:          "2",
		`scanwarden_kernel_trap_hits_total`:                            "1",
		`scanwarden_kernel_trap_overflows_total`:                       "6",
		`scanwarden_reloads_total{result="done"}`:                      "1",
		`scanwarden_reloads_total{result="refused"}`:                   "1",
		`scanwarden_errors_total`:                                      "2",
		`scanwarden_capture_packets_total{interface="eth0"}`:           "1200",
		`scanwarden_capture_kernel_dropped_total{interface="eth0"}`:    "5",
		`scanwarden_capture_interface_dropped_total{interface="eth0"}`: "1",
		`scanwarden_capture_decoded_total{interface="eth0"}`:           "1100",
		`scanwarden_capture_malformed_total{interface="eth0"}`:         "2",
		`scanwarden_capture_open{interface="eth0"}`:                    "1",
		`scanwarden_capture_open{interface="eth1"}`:                    "0",
		`scanwarden_probes_total{type="syn"}`:                          "30",
		`scanwarden_probes_total{type="udp"}`:                          "10",
		`scanwarden_probes_total{type="maimon"}`:                       "0",
		`scanwarden_engine_packets_total`:                              "1000",
		`scanwarden_sources_tracked`:                                   "7",
		`scanwarden_sources_evicted_total`:                             "3",
		`scanwarden_alerts_dropped_total`:                              "4",
		`scanwarden_bans{backend="nftables"}`:                          "2",
		`scanwarden_bans{backend="hosts.deny"}`:                        "3",
		`scanwarden_build_info{version="v-test"}`:                      "1",
	} {
		if got := value(text, series); got != want {
			t.Errorf("%s = %q, want %q", series, got, want)
		}
	}
	if value(text, "process_resident_memory_bytes") == "" || value(text, "go_goroutines") == "" {
		t.Error("no process or Go runtime metrics")
	}
}

// TestNoAddressLabel: whatever the alerts' sources, no label value is an
// address, and the number of series does not grow with the sources.
func TestNoAddressLabel(t *testing.T) {
	m := New("v", func() Snapshot { return Snapshot{} })
	count := func() int { return strings.Count(scrape(t, m), "\nscanwarden_") }
	before := count()
	for i := range 500 {
		a := &detect.Alert{Src: netipFrom(i), Type: detect.ScanType(i % 9), Trigger: detect.TriggerTrap}
		m.Alert(a)
		m.Decision(Blocked)
	}
	text := scrape(t, m)
	if n := count(); n != before {
		t.Errorf("%d series after 500 sources, %d before", n, before)
	}
	addr := regexp.MustCompile(`="[^"]*(\d+\.\d+\.\d+\.\d+|[0-9a-f]*:[0-9a-f]*:[0-9a-f:]*)[^"]*"`)
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "scanwarden_") && addr.MatchString(l) {
			t.Errorf("a label looks like an address: %s", l)
		}
	}
}

func TestListenErrors(t *testing.T) {
	m := New("v", func() Snapshot { return Snapshot{} })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Listen(ln.Addr().String(), m)
	if err == nil || !strings.Contains(err.Error(), "metrics: listening on "+ln.Addr().String()) {
		t.Fatalf("a taken port: %v", err)
	}
	// a server that never served closes, and its port is free again
	srv, err := Listen("127.0.0.1:0", m)
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	srv.Close()
	again, err := Listen(addr, m)
	if err != nil {
		t.Fatalf("the port of a closed server: %v", err)
	}
	again.Close()
	var none *Server
	none.Close()
}

// TestCloseStopsServing: after Close, the address refuses connections.
func TestCloseStopsServing(t *testing.T) {
	m := New("v", func() Snapshot { return Snapshot{} })
	srv, err := Listen("127.0.0.1:0", m)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := test.NewNullLogger()
	srv.Serve(log)
	addr := srv.Addr()
	if resp, err := http.Get("http://" + addr + "/"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("index: %v", err)
	} else {
		resp.Body.Close()
	}
	srv.Close()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("still accepting after Close")
	}
}

// TestNilMetrics: counting on a nil *Metrics does nothing.
func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.Alert(&detect.Alert{})
	m.Decision(Blocked)
	m.BlockLatency(time.Second)
	m.KernelTrapHit()
	m.KernelTrapOverflows(1)
	m.Reload(nil)
	m.CrowdSecSent(1)
	m.CrowdSecDropped(1)
	m.CrowdSecDecision(Blocked)
	m.CrowdSecLifted(1)
}

// netipFrom returns a distinct address for each i, IPv4 and IPv6 in turn.
func netipFrom(i int) netip.Addr {
	if i%2 == 0 {
		return netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
	}
	return netip.AddrFrom16([16]byte{0xfd, 0, 0, 0x77, 14: byte(i >> 8), 15: byte(i)})
}
