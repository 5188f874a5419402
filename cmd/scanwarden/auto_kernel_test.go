package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKernelAutoBackend runs the real daemon in the victim namespace with
// BLOCK_BACKEND="auto" and PortSentry's iptables KILL_ROUTE: check-config
// and the start-up line say ipset and why, the block is an ipset element
// matched by a rule iptables lists (iptables-save), and the KILL_ROUTE
// itself is not run. A reload without the KILL_ROUTE chooses nftables, which is a switch
// of backend: ipset's sets go, the ban is restored in nftables. unblock
// reaches the backend the daemon chose.
func TestKernelAutoBackend(t *testing.T) {
	for _, tool := range []string{"nft", "ipset", "iptables-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s to read the firewall: %v", tool, err)
		}
	}
	l := newLab(t)
	bin := buildScanwarden(t)
	victim := func(args ...string) (string, error) {
		out, err := exec.Command("ip", append([]string{"netns", "exec", l.ns("victim")}, args...)...).CombinedOutput()
		return string(out), err
	}
	mustVictim := func(args ...string) string {
		t.Helper()
		out, err := victim(args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	const route = `KILL_ROUTE="/sbin/iptables -I INPUT -s $TARGET$ -j DROP"`
	cfg := l.config(`BLOCK_BACKEND="auto"`, route, `KERNEL_TRAP="0"`, `SCAN_TRIGGER="0"`, `TCP_PORTS="31337"`)
	const ipsetWhy = "BLOCK_BACKEND auto: ipset (KILL_ROUTE is an iptables DROP rule: ipset keeps it visible in iptables -S)"

	if out := mustVictim(bin, "check-config", "-c", cfg); !strings.Contains(out, cfg+": "+ipsetWhy) || !strings.Contains(out, "blocking with ipset") {
		t.Fatalf("check-config:\n%s", out)
	}
	l.start("victim", "serve")
	log, stop := l.startDaemonStop(bin, "run", "-c", cfg)
	if !strings.Contains(log.String(), "adminalert: "+ipsetWhy) {
		t.Fatalf("no word of the choice at start:\n%s", log)
	}
	attacker := labAttacker4.String()
	l.attack("connect", attacker, labVictim4.String(), "31337")
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(log.String(), "blocked "+attacker); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no block:\n%s", log)
		}
	}
	// every table: the backend chooses which one holds its rules
	rules := mustVictim("iptables-save")
	if !strings.Contains(rules, "--match-set scanwarden-ban4 src") {
		t.Errorf("the ban's set is not matched in iptables' rules:\n%s", rules)
	}
	if strings.Contains(rules, "-s "+attacker) {
		t.Errorf("the KILL_ROUTE ran (a rule of its own for %s):\n%s", attacker, rules)
	}
	if out := mustVictim("ipset", "list", "scanwarden-ban4"); !strings.Contains(out, attacker) {
		t.Errorf("%s is not in scanwarden-ban4:\n%s", attacker, out)
	}
	if tcp4, _, _, _ := l.reach("attacker"); tcp4 {
		t.Error("the attacker got through the ipset ban")
	}

	// the same config without the KILL_ROUTE: auto chooses nftables, and
	// the reload switches to it as for a changed BLOCK_BACKEND
	l.config(`BLOCK_BACKEND="auto"`, `KERNEL_TRAP="0"`, `SCAN_TRIGGER="0"`, `TCP_PORTS="31337"`)
	if err := syscall.Kill(l.daemon, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(log.String(), "configuration reloaded"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no reload:\n%s", log)
		}
	}
	for _, want := range []string{
		"adminalert: BLOCK_BACKEND auto: nftables (the kernel's nf_tables answers); switching from ipset",
		`removed the 1 block(s) "ipset" had left`,
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("no %q in the log:\n%s", want, log)
		}
	}
	if out, _ := victim("ipset", "list", "-n"); strings.Contains(out, "scanwarden") {
		t.Errorf("ipset's sets are still there after the switch:\n%s", out)
	}
	if out := mustVictim("nft", "list", "set", "inet", "scanwarden", "ban4"); !strings.Contains(out, attacker) {
		t.Errorf("the ban was not restored with nftables:\n%s", out)
	}
	if tcp4, _, _, _ := l.reach("attacker"); tcp4 {
		t.Error("the attacker got through after the switch")
	}

	// unblock, while the daemon runs, chooses as it did
	out, err := l.child("victim", "cli", "SCANWARDEN_TEST_ARGS=unblock -c "+filepath.Join(l.dir, "scanwarden.conf")+" "+attacker)
	if err != nil || !strings.Contains(out, "BLOCK_BACKEND auto: nftables (the kernel's nf_tables answers)") {
		t.Fatalf("unblock: %v\n%s", err, out)
	}
	if out := mustVictim("nft", "list", "set", "inet", "scanwarden", "ban4"); strings.Contains(out, attacker) {
		t.Errorf("unblock left the nftables element:\n%s", out)
	}
	if tcp4, _, _, _ := l.reach("attacker"); !tcp4 {
		t.Error("the unblocked attacker is still cut off")
	}
	stop()
	if strings.Contains(log.String(), "level=error") {
		t.Errorf("errors in the daemon's log:\n%s", log)
	}
}
