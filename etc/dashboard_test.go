package etc

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/scanwarden/scanwarden/metrics"
)

// dashboardExprs returns the PromQL expressions of the shipped Grafana
// dashboard (its panels' targets and its annotations), by panel title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("grafana/scanwarden-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title, Description string
			Targets            []struct{ Expr string }
		}
		Annotations struct {
			List []struct{ Name, Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/scanwarden-dashboard.json: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard without title, uid or panels: %q %q %d", d.Title, d.UID, len(d.Panels))
	}
	out := map[string][]string{}
	for _, p := range d.Panels {
		if p.Title == "" || p.Description == "" || len(p.Targets) == 0 {
			t.Errorf("panel %q: a title, a description and a query are needed", p.Title)
		}
		for _, tg := range p.Targets {
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
	for _, a := range d.Annotations.List {
		out["annotation "+a.Name] = append(out["annotation "+a.Name], a.Expr)
	}
	return out
}

// TestDashboardMetricsExist: every metric and label the dashboard's
// queries name is one scanwarden serves (a renamed metric would leave a
// panel silently empty).
func TestDashboardMetricsExist(t *testing.T) {
	m := metrics.New("test", func() metrics.Snapshot {
		return metrics.Snapshot{Captures: []metrics.Capture{{Interface: "eth0", Open: true}}, Bans: []metrics.Bans{{Backend: "nftables"}}}
	})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	served := map[string]map[string]bool{} // series name: its label names
	sample := regexp.MustCompile(`^([a-z_]+)(?:\{([^}]*)\})? `)
	label := regexp.MustCompile(`([a-z_]+)="`)
	for _, l := range strings.Split(string(body), "\n") {
		if m := sample.FindStringSubmatch(l); m != nil {
			if served[m[1]] == nil {
				served[m[1]] = map[string]bool{"job": true, "instance": true} // Prometheus' own
			}
			for _, lm := range label.FindAllStringSubmatch(m[2], -1) {
				served[m[1]][lm[1]] = true
			}
		}
	}
	metric := regexp.MustCompile(`\b((?:scanwarden|process|go)_[a-z_]+)(\{[^}]*\})?`)
	used := 0
	for panel, exprs := range dashboardExprs(t) {
		for _, e := range exprs {
			for _, mm := range metric.FindAllStringSubmatch(e, -1) {
				used++
				labels, ok := served[mm[1]]
				if !ok {
					t.Errorf("%s: %s is not served", panel, mm[1])
					continue
				}
				for _, lm := range label.FindAllStringSubmatch(mm[2], -1) {
					if !labels[lm[1]] {
						t.Errorf("%s: %s has no label %s", panel, mm[1], lm[1])
					}
				}
			}
		}
	}
	if used < 15 {
		t.Errorf("only %d metric references found in the dashboard", used)
	}
}
