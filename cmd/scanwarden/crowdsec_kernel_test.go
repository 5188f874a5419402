package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The CrowdSec test's lab hosts: a second victim and the host of the
// Local API, on the lab's bridge, and a second address of the attacker.
var (
	labVictimB4  = netip.MustParseAddr("198.51.100.244")
	labVictimB6  = netip.MustParseAddr("fd00:77::244")
	labLAPI4     = netip.MustParseAddr("198.51.100.245")
	labLAPI6     = netip.MustParseAddr("fd00:77::245")
	labAttackerC = netip.MustParseAddr("198.51.100.247")
)

// lapiLab is a real CrowdSec Local API (Debian's crowdsec, run as
// `crowdsec -c CONFIG -no-cs`, the Central API left out) in the lab's
// "lapi" namespace, its SQLite database in a temporary directory.
type lapiLab struct {
	l    *lab
	dir  string
	cfg  string
	url  string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

// newLAPI writes the LAPI's config and registers, with cscli, the
// machines and bouncers named (their credential and key files in dir).
func newLAPI(t *testing.T, l *lab, machines, bouncers []string) *lapiLab {
	t.Helper()
	for _, c := range []string{"crowdsec", "cscli"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s is missing (scripts/deps.sh installs Debian's crowdsec): %v", c, err)
		}
	}
	if _, err := os.Stat("/etc/crowdsec/profiles.yaml"); err != nil {
		t.Skipf("Debian's crowdsec is not installed whole (scripts/deps.sh installs it): %v", err)
	}
	l.addHost("lapi", labLAPI4, labLAPI6)
	z := &lapiLab{l: l, dir: t.TempDir(), url: fmt.Sprintf("http://%s:8080", labLAPI4)}
	z.cfg = filepath.Join(z.dir, "config.yaml")
	// the lab's LAPI config, shared with make demo
	tmpl, err := os.ReadFile("../../scripts/lab-lapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer("@DIR@", z.dir, "@LISTEN@", fmt.Sprintf("%s:8080", labLAPI4)).Replace(string(tmpl))
	if err := os.MkdirAll(filepath.Join(z.dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(z.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, m := range append([]string{"cscli"}, machines...) {
		z.cscli(t, "machines", "add", m, "--password", "pw-"+m+"-0123456789", "--url", z.url, "-f", z.file(m+".yaml"))
	}
	for _, b := range bouncers {
		key := strings.TrimSpace(z.cscli(t, "bouncers", "add", b, "-o", "raw"))
		if err := os.WriteFile(z.file(b+".key"), []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return z
}

func (z *lapiLab) file(name string) string { return filepath.Join(z.dir, name) }

// cscli runs cscli on the LAPI's config in its namespace.
func (z *lapiLab) cscli(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", z.l.ns("lapi"), "cscli", "-c", z.cfg}, args...)...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("cscli %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

// start runs the LAPI and waits until it listens.
func (z *lapiLab) start(t *testing.T) {
	t.Helper()
	z.log = &syncBuffer{}
	z.cmd = exec.Command("ip", "netns", "exec", z.l.ns("lapi"), "crowdsec", "-c", z.cfg, "-no-cs")
	z.cmd.Stdout, z.cmd.Stderr = z.log, z.log
	if err := z.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	z.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(z.cmd, z.done)
	t.Cleanup(func() { z.stop(t) })
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(z.log.String(), "CrowdSec Local API listening") {
		select {
		case <-z.done:
			t.Fatalf("crowdsec exited:\n%s", z.log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the LAPI does not listen after 20 s:\n%s", z.log)
		}
	}
}

// stop ends the LAPI (SIGTERM, by its PID) and waits for it.
func (z *lapiLab) stop(t *testing.T) {
	if z.cmd == nil {
		return
	}
	z.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-z.done:
	case <-time.After(10 * time.Second):
		z.cmd.Process.Kill()
		<-z.done
	}
	z.cmd = nil
}

// decisions returns the LAPI's active decisions, as `cscli decisions
// list` shows them (value: scenario).
func (z *lapiLab) decisions(t *testing.T) map[string]string {
	t.Helper()
	out := z.cscli(t, "decisions", "list", "-o", "json")
	var alerts []struct {
		Decisions []struct {
			Value, Scenario, Origin string
		}
	}
	if s := strings.TrimSpace(out); s != "null" && s != "" {
		if err := json.Unmarshal([]byte(s), &alerts); err != nil {
			t.Fatalf("cscli decisions list -o json: %v\n%s", err, out)
		}
	}
	m := map[string]string{}
	for _, a := range alerts {
		for _, d := range a.Decisions {
			m[d.Value] = d.Scenario
		}
	}
	return m
}

// refusedBy reports how dst answers a connection from src (an address of
// the attacker) to a port nothing listens on: true for a reset (src
// reaches dst), false when the attempt times out (dst's firewall drops it).
func (l *lab) refusedBy(src netip.Addr, dst netip.Addr) bool {
	out := l.attack("connect", src.String(), dst.String(), "7778")
	return strings.Contains(out, "refused")
}

// TestKernelCrowdSecFleet: two victims, each with its own scanwarden
// pushing to and pulling from one real CrowdSec LAPI. A connection
// attempt at a trap port of victim A gets the attacker blocked by A, and,
// within the pull interval, by victim B too; `cscli decisions list` shows
// scanwarden's scenario; `cscli decisions delete` lifts the ban on both.
// Then the LAPI is stopped: a second attacker blocked by A meanwhile, and
// A restarted, is kept in A's queue and reaches the LAPI, and B, once the
// LAPI is back: nothing lost. Last, B's own ban outlives another's
// shorter decision for the same address, which A lifts when it expires,
// and a longer one holds the address when B's own ban runs out.
func TestKernelCrowdSecFleet(t *testing.T) {
	l := newLab(t)
	z := newLAPI(t, l, []string{"scanwarden-a", "scanwarden-b"}, []string{"scanwarden-a", "scanwarden-b"})
	l.addHost("victimb", labVictimB4, labVictimB6)
	bin := buildScanwarden(t)
	sh(t, "ip", "-n", l.ns("attacker"), "addr", "add", labAttackerC.String()+"/24", "dev", "eth0")
	z.start(t)
	// every host: a 1 s pull, and a trap port that blocks on the first hit
	common := []string{`CROWDSEC_PULL_INTERVAL="1s"`, `SCAN_TRIGGER="0"`, `TCP_PORTS="1,31337"`, `UDP_PORTS="31335"`}
	fleet := func(m string) []string {
		return append([]string{
			fmt.Sprintf("CROWDSEC_CREDENTIALS=%q", z.file(m+".yaml")),
			fmt.Sprintf("CROWDSEC_BOUNCER_KEY_FILE=%q", z.file(m+".key")),
		}, common...)
	}
	// the line of a ban on a fleet decision for a, its reason after it
	fleetBlocked := func(a netip.Addr) string {
		return "Host " + a.String() + " has been blocked on a decision of the CrowdSec fleet"
	}
	dirA, dirB := l.dir, t.TempDir()
	cfgA := l.configIn(dirA, fleet("scanwarden-a")...)
	// B never blocks the benign client, whatever the fleet decides
	ignoreB := filepath.Join(dirB, "scanwarden.ignore")
	if err := os.WriteFile(ignoreB, []byte(labBenign4.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgB := l.configIn(dirB, append(fleet("scanwarden-b"), fmt.Sprintf("IGNORE_FILE=%q", ignoreB))...)
	l.start("victim", "serve")
	logA, stopA := l.startDaemonIn("victim", bin, "run", "-c", cfgA)
	logB, stopB := l.startDaemonIn("victimb", bin, "run", "-c", cfgB)
	for _, lg := range []*syncBuffer{logA, logB} {
		if !strings.Contains(lg.String(), "crowdsec: pushing blocks to the LAPI at "+z.url) ||
			!strings.Contains(lg.String(), "crowdsec: enforcing the ban decisions of the LAPI at "+z.url) {
			t.Fatalf("no CrowdSec push and pull in the log:\n%s", lg)
		}
	}
	if !l.refusedBy(labAttacker4, labVictimB4) {
		t.Fatal("victim B does not answer the attacker before any scan")
	}

	// a scan of A: blocked by A, then by B through the LAPI
	l.hitTrap(labAttacker4)
	waitLogged(t, "A blocks the attacker", logA, "blocked "+labAttacker4.String())
	waitLogged(t, "B blocks the attacker on the fleet's decision", logB, fleetBlocked(labAttacker4), logA, z.log)
	if l.refusedBy(labAttacker4, labVictimB4) {
		t.Fatalf("victim B still answers the attacker after the fleet's decision:\n%s", logB)
	}
	if got := z.decisions(t)[labAttacker4.String()]; got != "scanwarden/portscan-connect" {
		t.Fatalf("cscli decisions list: %q for the attacker, want scanwarden/portscan-connect", got)
	}
	listB := l.cli(cfgB, "list")
	if !strings.Contains(listB, labAttacker4.String()) || !strings.Contains(listB, "CrowdSec decision: scanwarden/portscan-connect") {
		t.Fatalf("scanwarden list on B:\n%s", listB)
	}
	// A's own decision, read back from the LAPI, is not applied twice
	time.Sleep(2 * time.Second)
	if strings.Contains(logA.String(), "has been blocked on a decision of the CrowdSec fleet") {
		t.Fatalf("A applied its own decision again:\n%s", logA)
	}

	// an administrator's decision for an address B must never block:
	// A enforces it, B does not
	z.cscli(t, "decisions", "add", "-i", labBenign4.String(), "-d", "1h", "-R", "test: a decision for the benign client")
	waitLogged(t, "B refuses the decision for its ignored address", logB, "the fleet's decision for "+labBenign4.String()+" not enforced: in the ignore file")
	waitLogged(t, "A enforces it", logA, fleetBlocked(labBenign4)+": test: a decision for the benign client")
	if out := l.cli(cfgB, "list"); strings.Contains(out, labBenign4.String()) {
		t.Fatalf("B lists a ban of its ignored address:\n%s", out)
	}
	z.cscli(t, "decisions", "delete", "-i", labBenign4.String())

	// cscli decisions delete lifts it everywhere
	z.cscli(t, "decisions", "delete", "-i", labAttacker4.String())
	waitUntil(t, "B lifts the ban", func() bool { return l.refusedBy(labAttacker4, labVictimB4) }, logB)
	waitUntil(t, "A lifts the ban", func() bool { tcp4, _, _, _ := l.reach("attacker"); return tcp4 }, logA)
	if out := l.cli(cfgA, "list"); strings.Contains(out, labAttacker4.String()) {
		t.Fatalf("A still lists the ban:\n%s", out)
	}

	// an outage of the LAPI, and a restart of A during it: nothing lost
	z.stop(t)
	l.hitTrap(labAttackerC)
	waitLogged(t, "A blocks the second attacker", logA, "blocked "+labAttackerC.String())
	waitLogged(t, "A says the LAPI is down", logA, "cannot send alerts to the LAPI")
	stopA()
	q, err := os.ReadFile(filepath.Join(dirA, "state", "crowdsec-queue.json"))
	if err != nil || !strings.Contains(string(q), labAttackerC.String()) {
		t.Fatalf("A's queue after its stop: %v %s\n%s", err, q, logA)
	}
	logA, _ = l.startDaemonIn("victim", bin, "run", "-c", cfgA)
	if !strings.Contains(logA.String(), "1 blocks from the last run still to send") {
		t.Errorf("A did not take its queue back:\n%s", logA)
	}
	z.start(t)
	waitLogged(t, "B blocks the second attacker once the LAPI is back", logB, fleetBlocked(labAttackerC), logA, z.log)
	if got := z.decisions(t)[labAttackerC.String()]; got != "scanwarden/portscan-connect" {
		t.Fatalf("cscli decisions list after the outage: %q for the second attacker", got)
	}
	waitUntil(t, "A's queue empty", func() bool {
		q, err := os.ReadFile(filepath.Join(dirA, "state", "crowdsec-queue.json"))
		return err == nil && strings.TrimSpace(string(q)) == "[]"
	}, logA)
	for _, lg := range []*syncBuffer{logA, logB} {
		if strings.Contains(lg.String(), "level=error") {
			t.Errorf("errors in a daemon's log:\n%s", lg)
		}
	}

	// B, restarted as a bouncer only (it pushes nothing) with 15 s bans,
	// blocks the attacker itself. Another's short decision for the
	// attacker comes and expires: A, which only enforced it, lifts it,
	// while B's own ban stands. Then a long decision comes: when B's own
	// ban runs out, that decision holds it, until it is deleted.
	stopB()
	cfgB = l.configIn(dirB, append([]string{fmt.Sprintf("CROWDSEC_BOUNCER_KEY_FILE=%q", z.file("scanwarden-b.key")),
		fmt.Sprintf("CROWDSEC_LAPI_URL=%q", z.url), `BAN_EXPIRY_TCP="15s"`, fmt.Sprintf("IGNORE_FILE=%q", ignoreB)}, common...)...)
	logB, _ = l.startDaemonIn("victimb", bin, "run", "-c", cfgB)
	l.hitTrapOf(labAttacker4, labVictimB4)
	waitLogged(t, "B blocks the attacker", logB, "blocked "+labAttacker4.String())
	ownEnd := time.Now().Add(15 * time.Second)
	z.cscli(t, "decisions", "add", "-i", labAttacker4.String(), "-d", "4s", "-R", "test: a short decision of another")
	waitLogged(t, "A enforces the other decision", logA, fleetBlocked(labAttacker4)+": test: a short decision of another")
	waitLogged(t, "B keeps its own ban when the other decision expires", logB, "the fleet's last decision for "+labAttacker4.String()+" is gone, but this host's own ban stands: this host does not push its bans to the LAPI", z.log)
	waitUntil(t, "A lifts the expired decision", func() bool { tcp4, _, _, _ := l.reach("attacker"); return tcp4 }, logA)
	if l.refusedBy(labAttacker4, labVictimB4) {
		t.Fatalf("B lifted its own ban with another's decision:\n%s", logB)
	}
	if out := l.cli(cfgB, "list"); !strings.Contains(out, labAttacker4.String()) {
		t.Fatalf("B no longer lists its own ban:\n%s", out)
	}
	z.cscli(t, "decisions", "add", "-i", labAttacker4.String(), "-d", "1h", "-R", "test: a long decision of another")
	waitLogged(t, "A enforces the long decision", logA, fleetBlocked(labAttacker4)+": test: a long decision of another")
	if time.Now().After(ownEnd.Add(-2 * time.Second)) {
		t.Fatalf("B's own ban ran out before the long decision was read: the test's timing is off")
	}
	// B's housekeeping lifts expired bans every 30 s
	waitWithin(t, 50*time.Second, "B's own ban runs out, held by the long decision", func() bool {
		return strings.Contains(logB.String(), "block of "+labAttacker4.String()+" ran out here; CrowdSec decision: test: a long decision of another (cscli) holds it until")
	}, logB)
	if l.refusedBy(labAttacker4, labVictimB4) {
		t.Fatalf("B let the attacker in while the fleet's decision stands:\n%s", logB)
	}
	if out := l.cli(cfgB, "list"); !strings.Contains(out, "CrowdSec decision: test: a long decision of another") {
		t.Fatalf("B's list after its own ban ran out:\n%s", out)
	}
	z.cscli(t, "decisions", "delete", "-i", labAttacker4.String())
	waitUntil(t, "B lifts the ban the fleet's decision held", func() bool { return l.refusedBy(labAttacker4, labVictimB4) }, logB)
}

// cli runs a scanwarden command (list, unblock...) with cfg in the victim
// namespace.
func (l *lab) cli(cfg string, args ...string) string {
	out, err := l.child("victim", "cli", "SCANWARDEN_TEST_ARGS="+strings.Join(append(args, "-c", cfg), " "))
	if err != nil {
		l.t.Fatalf("scanwarden %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}
