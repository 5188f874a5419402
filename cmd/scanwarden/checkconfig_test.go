package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/internal/conftest"
)

// TestCheckConfigEveryProblem: check-config names every bad line, each as
// FILE:LINE: KEY: message on a line of its own, and exits 1.
func TestCheckConfigEveryProblem(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "scanwarden.conf")
	os.WriteFile(cfg, []byte("# three bad lines\nSCAN_TRIGGER=\"x\"\nTCP_PORTS=\"1,70000\"\nIGNORE_FILE=\"\"\nDETECT_TRESHOLD=\"5\"\n"), 0o644)
	out, errOut, code := runCLI(t, "check-config", "-c", cfg)
	if code != 1 || out != "" {
		t.Fatalf("exit %d, %q %q", code, out, errOut)
	}
	for _, want := range []string{
		"error: " + cfg + `:2: SCAN_TRIGGER: must be a whole number, got "x"` + "\n",
		"error: " + cfg + ":3: TCP_PORTS: ",
		"error: " + cfg + ":5: DETECT_TRESHOLD: unknown key\n",
		"scanwarden check-config: " + cfg + ": 3 error(s)\n",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("no %q in\n%s", want, errOut)
		}
	}
	if n := strings.Count(errOut, "error: "); n != 3 {
		t.Errorf("%d errors:\n%s", n, errOut)
	}

	// the problems of the commands and of the ignore file are all
	// reported too, after the config's warnings
	dir := t.TempDir()
	ignore := filepath.Join(dir, "bad.ignore")
	os.WriteFile(ignore, []byte("localhost\n127.0.0.1\n300.1.1.1\n"), 0o644)
	cfg = conftest.DryConfig(t, dir, `KILL_ROUTE="/sbin/route add $TARGET$ ; true"
KILL_RUN_CMD="/usr/local/bin/notify $TARGET$ | mail root"
SCAN_TRIGGER="1"
SCAN_TRIGGER="2"`)
	text, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(text), `IGNORE_FILE=""`, `IGNORE_FILE="`+ignore+`"`, 1)), 0o644)
	_, errOut, code = runCLI(t, "check-config", "-c", cfg)
	if code != 1 {
		t.Fatalf("exit %d, %q", code, errOut)
	}
	for _, want := range []string{
		"warning: " + cfg + ":10: SCAN_TRIGGER: set again",
		"error: " + ignore + ":1: ",
		"error: " + ignore + ":3: ",
		"error: " + cfg + ":7: KILL_ROUTE ",
		"error: " + cfg + ":8: KILL_RUN_CMD ",
		": 4 error(s)",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("no %q in\n%s", want, errOut)
		}
	}
}

// TestCheckConfigDefaultKey: a problem with a key the file leaves at its
// default is named with the default, not with a line 0.
func TestCheckConfigDefaultKey(t *testing.T) {
	if _, err := os.Stat(conf.DefaultIgnoreFile); err == nil {
		t.Skipf("%s exists here", conf.DefaultIgnoreFile)
	}
	cfg := filepath.Join(t.TempDir(), "scanwarden.conf")
	os.WriteFile(cfg, []byte("BLOCK_BACKEND=\"dry-run\"\n"), 0o644)
	_, errOut, code := runCLI(t, "check-config", "-c", cfg)
	want := "error: " + cfg + ": IGNORE_FILE (default " + conf.DefaultIgnoreFile + "): "
	if code != 1 || !strings.Contains(errOut, want) || strings.Contains(errOut, ":0:") {
		t.Fatalf("exit %d, want %q in\n%s", code, want, errOut)
	}
}

// TestCheckConfigHostsDeny: check-config makes the hosts.deny backend's
// checks: a symbolic link or a world-writable file is an error.
func TestCheckConfigHostsDeny(t *testing.T) {
	dir := t.TempDir()
	cfg := conftest.DryConfig(t, dir, "")
	deny := filepath.Join(dir, "hosts.deny")
	real := filepath.Join(dir, "real.deny")
	os.WriteFile(real, nil, 0o644)
	os.Symlink(real, deny)
	_, errOut, code := runCLI(t, "check-config", "-c", cfg)
	want := "error: " + cfg + ":2: HOSTS_DENY_FILE: " + deny + ": refusing to use a symbolic link"
	if code != 1 || !strings.Contains(errOut, want) {
		t.Fatalf("symbolic link: exit %d, want %q in\n%s", code, want, errOut)
	}
	os.Remove(deny)
	os.WriteFile(deny, nil, 0o644)
	os.Chmod(deny, 0o666)
	_, errOut, code = runCLI(t, "check-config", "-c", cfg)
	if code != 1 || !strings.Contains(errOut, "HOSTS_DENY_FILE: "+deny+": refusing to use it: the file is world-writable") {
		t.Fatalf("world-writable: exit %d\n%s", code, errOut)
	}
	os.Chmod(deny, 0o644)
	if out, errOut, code := runCLI(t, "check-config", "-c", cfg); code != 0 || !strings.Contains(out, "OK") || errOut != "" {
		t.Fatalf("good: exit %d, %q %q", code, out, errOut)
	}
}

// TestCheckConfigUntrustedFiles: a config file, ignore file or program
// others can change is warned about, naming the file and the reason; the
// daemon would refuse it.
func TestCheckConfigUntrustedFiles(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "bin", "notify")
	os.Mkdir(filepath.Dir(prog), 0o755)
	os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755)
	cfg := conftest.DryConfig(t, dir, `KILL_RUN_CMD="`+prog+` $TARGET$"`)
	os.Chmod(cfg, 0o666)
	os.Chmod(filepath.Dir(prog), 0o777)
	out, errOut, code := runCLI(t, "check-config", "-c", cfg)
	if code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("exit %d, %q %q", code, out, errOut)
	}
	for _, want := range []string{
		"warning: " + cfg + ": the file is writable by every user (mode 0666)",
		"warning: " + cfg + ":7: KILL_RUN_CMD: " + prog + ": " + filepath.Dir(prog) + ": the directory is writable by every user (mode 0777)",
		"refuses to start with this",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("no %q in\n%s", want, errOut)
		}
	}
}

func TestCheckConfigUsage(t *testing.T) {
	_, errOut, code := runCLI(t, "check-config", "-h")
	if code != 0 || !strings.Contains(errOut, "every problem") || strings.Contains(errOut, "first error") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
}
