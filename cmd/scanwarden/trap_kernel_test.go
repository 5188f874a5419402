package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/block"
)

// TestKernelTrapDaemon runs the real daemon in the victim namespace with
// each set backend and the kernel trap: one connection attempt at a trap
// port (its SYN, and the retransmission) blocks the attacker in the
// kernel, over IPv4 and IPv6; the daemon records it as its own block
// (state, hosts.deny, history, the "trapped by the kernel" decision); the
// benign client is never blocked; at exit the trap is taken out and the
// bans stay.
func TestKernelTrapDaemon(t *testing.T) {
	for _, backend := range []string{"nftables", "ipset"} {
		t.Run(backend, func(t *testing.T) {
			l := newLab(t)
			bin := buildScanwarden(t)
			cfg := l.config(fmt.Sprintf("BLOCK_BACKEND=%q", backend), `KERNEL_TRAP="1"`, `SCAN_TRIGGER="0"`,
				`TCP_PORTS="1,31337"`, `UDP_PORTS="31335"`)
			late := "198.51.100.248" // a second attacker address, used after the daemon stopped
			sh(t, "ip", "-n", l.ns("attacker"), "addr", "add", late+"/24", "dev", "eth0")
			l.start("victim", "serve")
			log, stop := l.startDaemonStop(bin, "run", "-c", cfg)
			if !strings.Contains(log.String(), "kernel trap set") {
				t.Fatalf("no kernel trap:\n%s", log)
			}
			// CAPTURE_REALTIME (the default; root may): the capture
			// thread and the blocking thread, and no other
			if n := fifoThreads(t, l.daemon); n != 2 {
				t.Errorf("%d SCHED_FIFO threads in the daemon, want 2 (one capture, the blocking thread):\n%s", n, log)
			}
			if tcp4, _, tcp6, _ := l.reach("attacker"); !tcp4 || !tcp6 {
				t.Fatalf("the attacker cannot reach the service before any probe:\n%s", log)
			}
			// one connection attempt at a trap port, from each family
			for _, dst := range []string{labVictim4.String(), labVictim6.String()} {
				src := labAttacker4.String()
				if strings.Contains(dst, ":") {
					src = labAttacker6.String()
				}
				if out := l.attack("connect", src, dst, "31337"); !strings.Contains(out, "fail") {
					t.Fatalf("the trap port answered:\n%s", out)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for strings.Count(log.String(), "trapped by the kernel on its first probe") < 2 {
				if time.Now().After(deadline) {
					t.Fatalf("no kernel-trap decision for both families:\n%s", log)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if tcp4, _, tcp6, _ := l.reach("attacker"); tcp4 || tcp6 {
				t.Fatalf("the attacker still reaches the service after the trap (tcp4 %v tcp6 %v)", tcp4, tcp6)
			}
			if tcp4, udp4, tcp6, udp6 := l.reach("benign"); !tcp4 || !udp4 || !tcp6 || !udp6 {
				t.Fatalf("the benign client was cut off: %v %v %v %v", tcp4, udp4, tcp6, udp6)
			}
			st, err := block.OpenState(filepath.Join(l.dir, "state"))
			if err != nil {
				t.Fatal(err)
			}
			bans, err := st.Load()
			if err != nil {
				t.Fatal(err)
			}
			if len(bans) != 2 {
				t.Fatalf("state has %d bans, want the attacker's two: %+v", len(bans), bans)
			}
			deny, _ := os.ReadFile(filepath.Join(l.dir, "hosts.deny"))
			hist, _ := os.ReadFile(filepath.Join(l.dir, "history"))
			for _, a := range []string{labAttacker4.String(), labAttacker6.String()} {
				if countLines(string(deny), a) != 1 || countLines(string(hist), a) != 1 {
					t.Errorf("%s: %d hosts.deny and %d history lines, want one each", a, countLines(string(deny), a), countLines(string(hist), a))
				}
			}

			// at exit the trap goes, the bans stay
			stop()
			if out := l.attack("connect", late, labVictim4.String(), "31337"); !strings.Contains(out, "refused") {
				t.Errorf("the trap is still in place after the daemon stopped:\n%s", out)
			}
			if tcp4, _, _, _ := l.reach("attacker"); tcp4 {
				t.Error("the ban was lifted when the daemon stopped")
			}
			if strings.Contains(log.String(), "level=error") {
				t.Errorf("errors in the daemon's log:\n%s", log)
			}
		})
	}
}

// TestKernelBackendSwitch: a daemon blocks with iptables; restarted with
// BLOCK_BACKEND="nftables", it removes the iptables chain it left (whose
// rules nothing would lift any more) and keeps the ban with nftables.
func TestKernelBackendSwitch(t *testing.T) {
	l := newLab(t)
	bin := buildScanwarden(t)
	cfg := l.config(`SCAN_TRIGGER="0"`, `TCP_PORTS="31337"`)
	l.start("victim", "serve")
	log, stop := l.startDaemonStop(bin, "run", "-c", cfg)
	l.attack("connect", labAttacker4.String(), labVictim4.String(), "31337")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), "blocked "+labAttacker4.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no block with iptables:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if out := sh(t, "ip", "netns", "exec", l.ns("victim"), "iptables", "-t", "raw", "-S", "SCANWARDEN"); !strings.Contains(out, labAttacker4.String()) {
		t.Fatalf("no iptables rule after the first run:\n%s", out)
	}

	cfg = l.config(`BLOCK_BACKEND="nftables"`, `KERNEL_TRAP="0"`, `SCAN_TRIGGER="0"`, `TCP_PORTS="31337"`)
	log, _ = l.startDaemonStop(bin, "run", "-c", cfg)
	if !strings.Contains(log.String(), `removed the 1 block(s) "iptables" had left`) {
		t.Errorf("no word of the iptables leftovers:\n%s", log)
	}
	if out, err := exec.Command("ip", "netns", "exec", l.ns("victim"), "iptables", "-t", "raw", "-S", "SCANWARDEN").CombinedOutput(); err == nil {
		t.Errorf("the iptables chain is still there:\n%s", out)
	}
	out := sh(t, "ip", "netns", "exec", l.ns("victim"), "nft", "list", "set", "inet", "scanwarden", "ban4")
	if !strings.Contains(out, labAttacker4.String()) {
		t.Errorf("the ban was not restored with nftables:\n%s", out)
	}
	if tcp4, _, _, _ := l.reach("attacker"); tcp4 {
		t.Error("the attacker got through after the switch")
	}
	if tcp4, _, _, _ := l.reach("benign"); !tcp4 {
		t.Error("the benign client was cut off")
	}
}

// fifoThreads counts the threads of pid whose policy (field 41 of their
// stat) is SCHED_FIFO.
func fifoThreads(t *testing.T, pid int) int {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("no threads of %d: %v", pid, err)
	}
	n := 0
	for _, f := range tasks {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // ended meanwhile
		}
		// the fields after the command name, which may hold anything,
		// start with the third
		i := strings.LastIndexByte(string(data), ')')
		fields := strings.Fields(string(data[i+1:]))
		if len(fields) > 41-3 && fields[41-3] == "1" {
			n++
		}
	}
	return n
}
