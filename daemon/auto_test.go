package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/scanwarden/scanwarden/block/backends"
	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/metrics"
)

// nativeRoute is PortSentry's example KILL_ROUTE, which the backend does
// instead (command.NativeKillRoute).
const nativeRoute = "/sbin/iptables -I INPUT -s $TARGET$ -j DROP"

// fakeChooser answers with the probes' verdicts and records each
// preference it was asked with.
type fakeChooser struct {
	probes backends.Probes
	asked  []backends.Preference
}

func (f *fakeChooser) choose(ctx context.Context, p backends.Preference) backends.Choice {
	f.asked = append(f.asked, p)
	return f.probes.Choose(ctx, p)
}

// kernelWith returns a chooser over probes that answer nil for the
// backends in ok and err otherwise.
func kernelWith(err error, ok ...backends.Kind) *fakeChooser {
	probe := func(k backends.Kind) func(context.Context) error {
		return func(context.Context) error {
			if slices.Contains(ok, k) {
				return nil
			}
			return err
		}
	}
	return &fakeChooser{probes: backends.Probes{Nftables: probe(backends.Nftables), Ipset: probe(backends.Ipset)}}
}

var errAbsent = errors.New("protocol not supported")

// autoConfig writes a config whose files are all under dir, with the
// lines of extra first (the first setting of a key wins), and loads it.
func autoConfig(t *testing.T, dir string, extra ...string) (string, *conf.Config) {
	t.Helper()
	p := filepath.Join(dir, "scanwarden.conf")
	text := strings.Join(append(extra, ""), "\n") + fmt.Sprintf("STATE_DIR=%q\nHOSTS_DENY_FILE=%q\nHISTORY_FILE=%q\nBLOCKED_FILE=%q\nIGNORE_FILE=\"\"\n",
		filepath.Join(dir, "state"), filepath.Join(dir, "hosts.deny"), filepath.Join(dir, "history"), filepath.Join(dir, "blocked"))
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(p, true)
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

// TestResolveBackend: "auto" asks in the order its KILL_ROUTE calls for,
// records the choice in the config once, and leaves a named backend alone.
func TestResolveBackend(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		lines  []string
		kernel *fakeChooser
		prefer backends.Preference
		want   conf.Backend
		line   string
	}{
		{"default", nil, kernelWith(errAbsent, backends.Nftables, backends.Ipset), backends.PreferNftables, conf.BackendNftables,
			"BLOCK_BACKEND auto: nftables (the kernel's nf_tables answers)"},
		{"no nf_tables", nil, kernelWith(errAbsent, backends.Ipset), backends.PreferNftables, conf.BackendIpset,
			"BLOCK_BACKEND auto: ipset (nf_tables: protocol not supported)"},
		{"iptables KILL_ROUTE", []string{`KILL_ROUTE="` + nativeRoute + `"`}, kernelWith(errAbsent, backends.Nftables, backends.Ipset), backends.PreferIpset, conf.BackendIpset,
			"BLOCK_BACKEND auto: ipset (KILL_ROUTE is an iptables DROP rule: ipset keeps it visible in iptables -S)"},
		{"iptables KILL_ROUTE, no ip_set", []string{`KILL_ROUTE="` + nativeRoute + `"`}, kernelWith(errAbsent, backends.Nftables), backends.PreferIpset, conf.BackendNftables,
			"BLOCK_BACKEND auto: nftables (KILL_ROUTE is an iptables DROP rule, but ipset: protocol not supported; the kernel's nf_tables answers)"},
		{"other KILL_ROUTE", []string{`KILL_ROUTE="/sbin/route add -host $TARGET$ reject"`}, kernelWith(errAbsent, backends.Nftables, backends.Ipset), backends.PreferNftables, conf.BackendNftables,
			"BLOCK_BACKEND auto: nftables (the kernel's nf_tables answers)"},
		{"neither", nil, kernelWith(errAbsent), backends.PreferNftables, conf.BackendIptables,
			"BLOCK_BACKEND auto: iptables (nf_tables: protocol not supported; ipset: protocol not supported)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, c := autoConfig(t, t.TempDir(), tc.lines...)
			ch, auto, err := resolveBackend(ctx, c, tc.kernel.choose)
			if err != nil || !auto {
				t.Fatalf("resolveBackend: %v %v", auto, err)
			}
			if !slices.Equal(tc.kernel.asked, []backends.Preference{tc.prefer}) {
				t.Errorf("asked %v, want %v", tc.kernel.asked, tc.prefer)
			}
			if c.BlockBackend != tc.want || conf.Backend(ch.Kind) != tc.want || c.Setting() != conf.BackendAuto {
				t.Errorf("backend %q (choice %q, setting %q), want %q", c.BlockBackend, ch.Kind, c.Setting(), tc.want)
			}
			if got := autoLine(c); got != tc.line {
				t.Errorf("line %q\nwant %q", got, tc.line)
			}
			// once per config: asked again, nothing is asked
			if _, auto, _ := resolveBackend(ctx, c, tc.kernel.choose); auto || len(tc.kernel.asked) != 1 {
				t.Errorf("a resolved config was resolved again (%d questions)", len(tc.kernel.asked))
			}
		})
	}

	// a backend by name: nothing asked, nothing said
	k := kernelWith(errAbsent, backends.Nftables)
	_, c := autoConfig(t, t.TempDir(), `BLOCK_BACKEND="iptables"`)
	if _, auto, err := resolveBackend(ctx, c, k.choose); auto || err != nil || len(k.asked) != 0 || c.BlockBackend != conf.BackendIptables || autoLine(c) != "" {
		t.Errorf("named iptables: auto %v, err %v, asked %v, backend %q, line %q", auto, err, k.asked, c.BlockBackend, autoLine(c))
	}
}

// TestResolveLogs: the daemon says the choice and its reason at start,
// says a different choice on reload as a switch from the running backend,
// and an unchanged one quietly.
func TestResolveLogs(t *testing.T) {
	ctx := context.Background()
	log, hook := test.NewNullLogger()
	d := &daemon{log: log, choose: kernelWith(errAbsent, backends.Nftables).choose}
	dir := t.TempDir()
	_, started := autoConfig(t, dir)
	if err := d.resolve(ctx, started); err != nil {
		t.Fatal(err)
	}
	d.sayAuto(started, nil)
	if e := hook.LastEntry(); e == nil || e.Level != logrus.WarnLevel || e.Message != "adminalert: BLOCK_BACKEND auto: nftables (the kernel's nf_tables answers)" {
		t.Fatalf("start: %+v", e)
	}

	// nf_tables went away: ipset, said as a switch
	d.choose = kernelWith(errAbsent, backends.Ipset).choose
	_, reloaded := autoConfig(t, dir)
	if err := d.resolve(ctx, reloaded); err != nil {
		t.Fatal(err)
	}
	d.sayAuto(reloaded, started)
	if e := hook.LastEntry(); e.Level != logrus.WarnLevel || e.Message != "adminalert: BLOCK_BACKEND auto: ipset (nf_tables: protocol not supported); switching from nftables" {
		t.Fatalf("switch: %+v", e)
	}
	// the same again: no alert
	_, again := autoConfig(t, dir)
	if err := d.resolve(ctx, again); err != nil {
		t.Fatal(err)
	}
	d.sayAuto(again, reloaded)
	if e := hook.LastEntry(); e.Level != logrus.InfoLevel || e.Message != "BLOCK_BACKEND auto: ipset (nf_tables: protocol not supported)" {
		t.Fatalf("unchanged: %+v", e)
	}
	// a named backend: nothing logged
	hook.Reset()
	_, named := autoConfig(t, dir, `BLOCK_BACKEND="dry-run"`)
	err := d.resolve(ctx, named)
	d.sayAuto(named, again)
	if err != nil || len(hook.AllEntries()) != 0 {
		t.Fatalf("named: %v %v", err, hook.AllEntries())
	}
}

// TestAutoBlocksWithTheChoice: the blockers and the kernel trap follow the
// resolved backend; an unresolved auto builds nothing.
func TestAutoBlocksWithTheChoice(t *testing.T) {
	ctx := context.Background()
	_, c := autoConfig(t, t.TempDir(), `KILL_HOSTS_DENY=""`)
	if _, err := buildBlockers(c, logrus.New(), nil); err == nil || !strings.Contains(err.Error(), "BLOCK_BACKEND") {
		t.Errorf("unresolved auto built blockers: %v", err)
	}
	if tr, why := TrapPlan(c); tr.Enabled() || why == "" {
		t.Errorf("unresolved auto: a kernel trap")
	}
	if _, _, err := resolveBackend(ctx, c, kernelWith(errAbsent, backends.Nftables).choose); err != nil {
		t.Fatal(err)
	}
	// nftables.New does not touch the kernel
	p, err := buildBlockers(c, logrus.New(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.blockers) != 1 || p.blockers[0].Name() != "nftables" {
		t.Errorf("blockers of auto: nftables: %v", p.blockers)
	}
	for _, b := range p.blockers {
		b.Close()
	}
	// the trap is on by default with a set backend auto chose ...
	if tr, why := TrapPlan(c); !tr.Enabled() {
		t.Errorf("auto: nftables: no kernel trap: %s", why)
	}
	// ... and off with iptables, as when it is named
	_, c = autoConfig(t, t.TempDir())
	if _, _, err := resolveBackend(ctx, c, kernelWith(errAbsent).choose); err != nil {
		t.Fatal(err)
	}
	if tr, why := TrapPlan(c); tr.Enabled() || !strings.Contains(why, `"iptables" has no kernel sets`) {
		t.Errorf("auto: iptables: trap %v, %q", tr.Enabled(), why)
	}
}

// TestCheckAuto: check-config says what auto chooses and why, and the
// kernel trap that follows; without the privilege to ask, it says what it
// could not ask and why, and that is no error.
func TestCheckAuto(t *testing.T) {
	denied := func() *fakeChooser {
		return &fakeChooser{probes: backends.Probes{
			Nftables: func(context.Context) error {
				return fmt.Errorf("listing the inet tables over netlink: %w", syscall.EPERM)
			},
			Ipset: func(context.Context) error { return fmt.Errorf("ipset: %w", syscall.EPERM) },
		}}
	}
	for _, tc := range []struct {
		name   string
		lines  []string
		kernel *fakeChooser
		want   []string
		not    []string
	}{
		{"nftables", nil, kernelWith(errAbsent, backends.Nftables, backends.Ipset), []string{
			": BLOCK_BACKEND auto: nftables (the kernel's nf_tables answers)",
			": blocking with nftables; kernel trap on the first probe to a trap port",
		}, []string{"not known"}},
		{"iptables", nil, kernelWith(errAbsent), []string{
			": BLOCK_BACKEND auto: iptables (nf_tables: protocol not supported; ipset: protocol not supported)",
			`: blocking with iptables; no kernel trap: BLOCK_BACKEND "iptables" has no kernel sets`,
		}, nil},
		{"iptables KILL_ROUTE", []string{`KILL_ROUTE="` + nativeRoute + `"`}, kernelWith(errAbsent, backends.Nftables, backends.Ipset), []string{
			": BLOCK_BACKEND auto: ipset (KILL_ROUTE is an iptables DROP rule: ipset keeps it visible in iptables -S)",
			": blocking with ipset; kernel trap on",
			// CheckActions' log line
			`: KILL_ROUTE "` + nativeRoute + `" is covered by the ipset backend: not run as a command`,
		}, nil},
		{"unprivileged", nil, denied(), []string{
			": BLOCK_BACKEND auto: not known here: nf_tables: could not probe: operation not permitted (only a process with CAP_NET_ADMIN may ask, as the daemon does); " +
				"ipset: could not probe: operation not permitted (only a process with CAP_NET_ADMIN may ask, as the daemon does); " +
				"the daemon, which may ask, chooses nftables, else ipset, else iptables (run check-config as root to see its choice)",
			": blocking with the backend auto chooses; kernel trap on the first probe to a trap port if that is nftables or ipset",
		}, []string{"blocking with iptables", "BLOCK_BACKEND auto: iptables"}},
		{"unprivileged, no trap", []string{`KERNEL_TRAP="0"`}, denied(), []string{
			": blocking with the backend auto chooses; no kernel trap: KERNEL_TRAP is 0",
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, _ := autoConfig(t, t.TempDir(), tc.lines...)
			log, hook := test.NewNullLogger()
			r, err := check(path, log, tc.kernel.choose)
			if err != nil || len(r.Errors) != 0 {
				t.Fatalf("check: %v %v", err, r.Errors)
			}
			notes := strings.Join(r.Notes, "\n")
			for _, e := range hook.AllEntries() {
				notes += "\n" + path + ": " + e.Message
			}
			for _, w := range tc.want {
				if !strings.Contains(notes, path+w) {
					t.Errorf("no %q in\n%s", w, notes)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(notes, n) {
					t.Errorf("%q in\n%s", n, notes)
				}
			}
			if len(tc.kernel.asked) != 1 {
				t.Errorf("asked %d times", len(tc.kernel.asked))
			}
		})
	}
}

// TestRefusedReloadSaysNoSwitch: a reload refused after auto chose again
// (here: its metrics address is taken) keeps the running backend, so it
// must not announce a switch to the new choice.
func TestRefusedReloadSaysNoSwitch(t *testing.T) {
	ctx := context.Background()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	log, hook := test.NewNullLogger()
	dir := t.TempDir()
	_, running := autoConfig(t, dir)
	d := &daemon{log: log, choose: kernelWith(errAbsent, backends.Nftables).choose, cfg: running}
	d.metrics = metrics.New("test", d.snapshot)
	if err := d.resolve(ctx, running); err != nil || running.BlockBackend != conf.BackendNftables {
		t.Fatalf("start: %v, backend %q", err, running.BlockBackend)
	}
	// nf_tables went away, and the new config's metrics address is taken
	d.choose = kernelWith(errAbsent, backends.Ipset).choose
	d.cfgPath, _ = autoConfig(t, dir, fmt.Sprintf("METRICS_LISTEN=%q", taken.Addr().String()))
	hook.Reset()
	if err := d.tryReload(ctx); err == nil {
		t.Fatal("a reload whose metrics address is taken was not refused")
	}
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "switching") || strings.Contains(e.Message, "BLOCK_BACKEND auto") {
			t.Errorf("a refused reload logged %q", e.Message)
		}
	}
	if d.cfg != running {
		t.Error("the refused reload replaced the running config")
	}
}

// TestMissingConfig: without -c and without the file, the start runs on
// the built-in defaults and says so; a reload that finds the file gone
// is refused (an administrator's config moved away must not turn into
// the defaults under a running daemon), -c or not.
func TestMissingConfig(t *testing.T) {
	dir := t.TempDir()
	gone := filepath.Join(dir, "scanwarden.conf")
	c, err := LoadConfig(gone, false)
	if err != nil {
		t.Fatalf("start without -c and without the file: %v, want the defaults", err)
	}
	if line := defaultsNote(c, gone); !strings.Contains(line, gone) || !strings.Contains(line, "built-in defaults") {
		t.Errorf("start without the file: %q", line)
	}
	if _, err := LoadConfig(gone, true); err == nil || !strings.Contains(err.Error(), gone) {
		t.Errorf("start with -c and without the file: %v, want an error naming it", err)
	}
	path, running := autoConfig(t, dir)
	if line := defaultsNote(running, path); line != "" {
		t.Errorf("start with the file: %q", line)
	}
	log, _ := test.NewNullLogger()
	d := &daemon{log: log, cfg: running, cfgPath: path}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := d.tryReload(context.Background()); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("reload with the file gone: %v, want a refusal naming %s", err, path)
	}
	if d.cfg != running {
		t.Error("the refused reload replaced the running config")
	}
}
