package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// procCounts returns the open file descriptors and the threads of pid.
func procCounts(t *testing.T, pid int) (fds, threads int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return len(ents), threads
}

// TestKernelReloadNoLeak: every resource of a config goes with it. The
// daemon, with a set backend and the kernel trap (netlink sockets, the
// address watch, the journal), takes 40 SIGHUPs; its open files and
// threads stay where they were, give or take 4.
func TestKernelReloadNoLeak(t *testing.T) {
	l := newLab(t)
	bin := buildScanwarden(t)
	cfg := l.config(`BLOCK_BACKEND="nftables"`, `KERNEL_TRAP="1"`, `TCP_PORTS="1,31337"`, `UDP_PORTS="31335"`)
	log, stop := l.startDaemonStop(bin, "run", "-c", cfg)
	defer stop()
	reloaded := func() int { return strings.Count(log.String(), "configuration reloaded") }
	hup := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			want := reloaded() + 1
			if err := syscall.Kill(l.daemon, syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(10 * time.Second); reloaded() < want; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("reload %d not done after 10 s:\n%s", i+1, log)
				}
			}
		}
	}
	// a few reloads first, so that what is made once (pools, the
	// runtime's threads) is there before the count
	hup(3)
	time.Sleep(time.Second)
	fds0, threads0 := procCounts(t, l.daemon)
	hup(40)
	time.Sleep(time.Second) // the address watches end within 250 ms
	fds, threads := procCounts(t, l.daemon)
	t.Logf("after 3 reloads: %d fds, %d threads; after 40 more: %d fds, %d threads", fds0, threads0, fds, threads)
	if fds > fds0+4 || threads > threads0+4 {
		t.Errorf("40 reloads took the daemon from %d to %d open files and from %d to %d threads; open files: %s",
			fds0, fds, threads0, threads, strings.Join(fdTargets(l.daemon), " "))
	}
	if strings.Contains(log.String(), "level=error") {
		t.Errorf("errors in the daemon's log:\n%s", log)
	}
}

// fdTargets lists what pid's open files are.
func fdTargets(pid int) []string {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		target, _ := os.Readlink(dir + "/" + e.Name())
		out = append(out, target)
	}
	return out
}

// TestKernelReloadVerdict: `scanwarden reload` (the unit's ExecReload)
// returns once the daemon has reloaded, exit 0; with a broken config it
// fails with the daemon's own error, naming the file, line and key, and
// the running config stays in force (its trap port still blocks).
func TestKernelReloadVerdict(t *testing.T) {
	l := newLab(t)
	bin := buildScanwarden(t)
	sock := filepath.Join(l.dir, "control.sock")
	cfg := l.config(`SCAN_TRIGGER="0"`, `TCP_PORTS="1,31337"`, `UDP_PORTS="31335"`)
	l.start("victim", "serve")
	log, _ := l.startDaemonStop(bin, "run", "-c", cfg, "--control-socket", sock)
	reload := func() (string, string, int) {
		cmd := exec.Command(bin, "reload", "--control-socket", sock)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	out, errOut, code := reload()
	if code != 0 || !strings.Contains(out, "configuration reloaded") {
		t.Fatalf("reload of a good config: exit %d: %s%s", code, out, errOut)
	}
	// in force when the command returned
	if !strings.Contains(log.String(), "configuration reloaded from "+cfg) {
		t.Fatalf("the command returned before the daemon reloaded:\n%s", log)
	}

	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(text), `TCP_PORTS="1,31337"`, `TCP_PORTS="1,http"`, 1)
	if err := os.WriteFile(cfg, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = reload()
	if code != 1 || !strings.Contains(errOut, "refused the new config") || !strings.Contains(errOut, cfg+":2: TCP_PORTS") {
		t.Fatalf("reload of a broken config: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// the running config stays: its trap port still blocks
	l.hitTrap(labAttacker4)
	waitLogged(t, "the running config's trap port to block after the refused reload", log, "blocked "+labAttacker4.String())
}
