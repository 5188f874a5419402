package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The metrics test's addresses, inside the victim namespace: the
// daemon's METRICS_LISTEN and the Prometheus that scrapes it.
const (
	labMetrics    = "127.0.0.1:9717"
	labPrometheus = "127.0.0.1:9090"
)

// TestKernelMetricsPrometheus runs the daemon with METRICS_LISTEN in the
// victim namespace and a real Prometheus (Debian's) scraping it every
// second, then a connection attempt at a trap port from the attacker.
// Prometheus' HTTP API must show the alert, the decision "blocked", the
// latency histogram's observation, the ban in the iptables backend and
// the probes; no series may carry an address as a label; a reload that
// moves the listener to a port already taken is refused and the metrics
// stay where they were.
func TestKernelMetricsPrometheus(t *testing.T) {
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skipf("prometheus is missing (scripts/deps.sh installs Debian's): %v", err)
	}
	l := newLab(t)
	bin := buildScanwarden(t)
	cfg := l.config(fmt.Sprintf("METRICS_LISTEN=%q", labMetrics), `SCAN_TRIGGER="0"`, `TCP_PORTS="1,31337"`, `UDP_PORTS="31335"`)
	l.start("victim", "serve")
	log, _ := l.startDaemonStop(bin, "run", "-c", cfg)
	if !strings.Contains(log.String(), "serving Prometheus metrics on http://"+labMetrics+"/metrics") {
		t.Fatalf("no metrics listener in the log:\n%s", log)
	}

	// before any scan, straight from the daemon: every decision series
	// exists, at 0
	text := l.get("http://" + labMetrics + "/metrics")
	for _, s := range []string{`scanwarden_decisions_total{outcome="blocked"} 0`, `scanwarden_decisions_total{outcome="rate_limited"} 0`,
		`scanwarden_block_latency_seconds_count 0`, `scanwarden_capture_open{interface="any"} 1`} {
		if !strings.Contains(text, s+"\n") {
			t.Errorf("first scrape lacks %q", s)
		}
	}

	dir := t.TempDir()
	promCfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promCfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: scanwarden
    static_configs:
      - targets: [%q]
`, labMetrics)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", l.ns("victim"), prom, "--config.file="+promCfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+labPrometheus, "--log.level=warn")
	var promLog syncBuffer
	cmd.Stdout, cmd.Stderr = &promLog, &promLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	// Prometheus has scraped the daemon: the target is up
	l.waitQuery(t, `up{job="scanwarden"}`, 1, &promLog)

	l.hitTrap(labAttacker4)
	waitLogged(t, "the attacker blocked", log, "blocked "+labAttacker4.String())
	for q, want := range map[string]float64{
		`scanwarden_decisions_total{outcome="blocked"}`:                               1,
		`sum(scanwarden_alerts_total{trigger="trap"})`:                                1,
		`scanwarden_block_latency_seconds_count`:                                      1,
		`scanwarden_bans{backend="iptables"}`:                                         1,
		`scanwarden_bans{backend="hosts.deny"}`:                                       1,
		`scanwarden_block_latency_seconds_bucket{le="+Inf"}`:                          1,
		`scanwarden_decisions_total{outcome="rate_limited"}`:                          0,
		`scanwarden_sources_tracked >= bool 1`:                                        1,
		`sum(scanwarden_probes_total) >= bool 1`:                                      1,
		`scanwarden_capture_packets_total{interface="any"} >= bool 1`:                 1,
		`scanwarden_capture_kernel_dropped_total{interface="any"}`:                    0,
		`scanwarden_errors_total`:                                                     0,
		`scanwarden_reloads_total{result="refused"}`:                                  0,
		`count(scanwarden_build_info)`:                                                1,
		`count(process_resident_memory_bytes{job="scanwarden"})`:                      1,
		`scanwarden_block_latency_seconds_bucket{le="0.5"}`:                           1,
		`histogram_quantile(0.5, scanwarden_block_latency_seconds_bucket) < bool 0.5`: 1,
	} {
		l.waitQuery(t, q, want, &promLog)
	}

	// every query of the shipped Grafana dashboard parses and has data
	l.dashboardQueries(t)

	// no series of scanwarden's names an address
	body := l.get("http://" + labPrometheus + "/api/v1/series?" + url.Values{"match[]": {`{__name__=~"scanwarden_.+"}`}}.Encode())
	var series struct {
		Status string              `json:"status"`
		Data   []map[string]string `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &series); err != nil || series.Status != "success" || len(series.Data) < 20 {
		t.Fatalf("series: %v %s", err, body)
	}
	for _, s := range series.Data {
		for k, v := range s {
			if k == "instance" {
				continue // Prometheus' own label: the daemon's listener
			}
			if strings.Contains(v, labAttacker4.String()) || strings.Contains(v, labVictim4.String()) || strings.Contains(v, "fd00:77") {
				t.Errorf("series %v has an address in label %s", s, k)
			}
		}
	}

	// a reload to a port something else holds is refused; the metrics stay
	sh(t, "sed", "-i", fmt.Sprintf("s/^METRICS_LISTEN=.*/METRICS_LISTEN=%q/", labPrometheus), cfg)
	syscall.Kill(l.daemon, syscall.SIGHUP)
	waitLogged(t, "a reload to a taken address refused", log, "reload refused")
	if !strings.Contains(log.String(), "metrics: listening on "+labPrometheus) {
		t.Errorf("the refusal does not name the address:\n%s", log)
	}
	l.waitQuery(t, `scanwarden_reloads_total{result="refused"}`, 1, &promLog)
	l.waitQuery(t, `scanwarden_errors_total`, 1, &promLog)
}

// get fetches url from inside the victim namespace (a child of this test
// binary) and returns the body.
func (l *lab) get(u string) string {
	l.t.Helper()
	body, err := l.tryGet(u)
	if err != nil {
		l.t.Fatal(err)
	}
	return body
}

// tryGet is get, returning what went wrong.
func (l *lab) tryGet(u string) (string, error) {
	out, err := l.child("victim", "get", "SCANWARDEN_TEST_URL="+u)
	body, _, ok := strings.Cut(out, "\n=== end of body\n")
	if err != nil || !ok {
		return "", fmt.Errorf("GET %s: %v\n%s", u, err, out)
	}
	_, body, _ = strings.Cut(body, "=== body\n")
	return body, nil
}

// waitQuery waits (15 s at most) until Prometheus' instant query q returns
// one sample of value want.
func (l *lab) waitQuery(t *testing.T, q string, want float64, promLog *syncBuffer) {
	t.Helper()
	var last string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		body, err := l.tryGet("http://" + labPrometheus + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
		if last = body; err != nil {
			last = err.Error()
		}
		var r struct {
			Status string `json:"status"`
			Data   struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if json.Unmarshal([]byte(last), &r) == nil && r.Status == "success" && len(r.Data.Result) == 1 {
			if s, ok := r.Data.Result[0].Value[1].(string); ok {
				if v, err := strconv.ParseFloat(s, 64); err == nil && v == want {
					return
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("query %s: want one sample of %v, last answer %s\nprometheus:\n%s", q, want, last, promLog)
}

// dashboardQueries runs every query of the shipped Grafana dashboard
// (its variables set to match everything, its rate interval to 1m)
// against the lab's Prometheus: each must parse and return data.
func (l *lab) dashboardQueries(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile("../../etc/grafana/scanwarden-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer(`$__rate_interval`, "1m", `$job`, ".*", `$instance`, ".*")
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			q := vars.Replace(tg.Expr)
			body := l.get("http://" + labPrometheus + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
			var r struct {
				Status string `json:"status"`
				Data   struct {
					Result []json.RawMessage `json:"result"`
				} `json:"data"`
			}
			if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "success" || len(r.Data.Result) == 0 {
				t.Errorf("dashboard panel %q: query %s: %v %s", p.Title, q, err, body)
			}
			n++
		}
	}
	if n < 15 {
		t.Errorf("%d dashboard queries", n)
	}
}
