package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/command"
	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/internal/conftest"
)

// TestCommandTemplates: KILL_ROUTE and KILL_RUN_CMD run through the runner
// with $TARGET$, $PORT$ and $MODE$ substituted into the split words, in
// PortSentry's order, and a native iptables KILL_ROUTE runs nothing.
func TestCommandTemplates(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		src        string
		want       [][]string
	}{
		{"route and command", `KILL_ROUTE="/sbin/route add -host $TARGET$ reject"
KILL_RUN_CMD="/usr/local/bin/notify 'scan from' $TARGET$ port=$PORT$ $MODE$"`, "198.51.100.66",
			[][]string{{"/sbin/route", "add", "-host", "198.51.100.66", "reject"}, {"/usr/local/bin/notify", "scan from", "198.51.100.66", "port=22", "stcp"}}},
		{"command first", `KILL_ROUTE="/sbin/route add -host $TARGET$ reject"
KILL_RUN_CMD="/usr/local/bin/notify $TARGET$"
KILL_RUN_CMD_FIRST="1"`, "fd00:77::66",
			[][]string{{"/usr/local/bin/notify", "fd00:77::66"}, {"/sbin/route", "add", "-host", "fd00:77::66", "reject"}}},
		{"native KILL_ROUTE", `KILL_ROUTE="/sbin/iptables -I INPUT -s $TARGET$ -j DROP"`, "198.51.100.66", nil},
		{"log only", `BLOCK_TCP="0"
KILL_RUN_CMD="/usr/local/bin/notify $TARGET$"`, "198.51.100.66", nil},
		{"command only", `BLOCK_TCP="2"
KILL_ROUTE="/sbin/route add -host $TARGET$ reject"
KILL_RUN_CMD="/usr/local/bin/notify $TARGET$ $MODE$"`, "198.51.100.66",
			[][]string{{"/usr/local/bin/notify", "198.51.100.66", "stcp"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c, err := LoadConfig(conftest.DryConfig(t, dir, tc.conf), true)
			if err != nil {
				t.Fatal(err)
			}
			runner := &command.FakeRunner{}
			m, closeM, err := newManager(c, logrus.New(), managerParts{never: block.NewNeverBlock(nil), runner: runner})
			if err != nil {
				t.Fatal(err)
			}
			defer closeM()
			if _, err := m.Handle(context.Background(), &detect.Alert{Src: netip.MustParseAddr(tc.src), Type: detect.TypeSYN, Port: 22}, "stcp"); err != nil {
				t.Fatal(err)
			}
			if got := runner.Calls(); (len(got) > 0 || len(tc.want) > 0) && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ran %q, want %q", got, tc.want)
			}
		})
	}
}

// checkFiles returns CheckFiles' warnings and refusals of the config at path.
func checkFiles(t *testing.T, path string) ([]string, FileErrors) {
	t.Helper()
	c, err := LoadConfig(path, true)
	if err != nil {
		t.Fatal(err)
	}
	w, err := CheckFiles(c)
	var errs FileErrors
	if err != nil && !errors.As(err, &errs) {
		t.Fatalf("error %v (%T) is not a FileErrors", err, err)
	}
	return w, errs
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "notify")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := conftest.DryConfig(t, dir, `KILL_RUN_CMD="`+prog+` $TARGET$"
KILL_ROUTE="/sbin/iptables -I INPUT -s $TARGET$ -j DROP"`)
	if w, errs := checkFiles(t, cfg); len(w) != 0 || len(errs) != 0 {
		t.Fatalf("good files: %q %v", w, errs)
	}

	// everything wrong at once: every problem is reported
	os.Chmod(cfg, 0o666)
	os.Chmod(prog, 0o777)
	deny := filepath.Join(dir, "hosts.deny")
	real := filepath.Join(dir, "real.deny")
	os.WriteFile(real, nil, 0o644)
	os.Symlink(real, deny)
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o700)
	os.Chmod(state, 0o777)
	w, errs := checkFiles(t, cfg)
	if len(w) != 0 {
		t.Errorf("warnings %q", w)
	}
	want := []struct {
		key, path string
		trust     bool
		msg       string
	}{
		{"", cfg, true, cfg + ": the file is writable by every user (mode 0666)"},
		{"HOSTS_DENY_FILE", deny, false, cfg + ":2: HOSTS_DENY_FILE: " + deny + ": refusing to use a symbolic link"},
		{"KILL_RUN_CMD", prog, true, cfg + ":7: KILL_RUN_CMD: " + prog + ": the file is writable by every user (mode 0777)"},
		{"STATE_DIR", state, false, cfg + ":1: STATE_DIR: " + state + ": refusing to use this directory: it is world-writable"},
	}
	if len(errs) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(errs), len(want), errs)
	}
	for i, fe := range errs {
		if fe.Key != want[i].key || fe.Path != want[i].path || fe.Trust != want[i].trust || !strings.HasPrefix(fe.Error(), want[i].msg) {
			t.Errorf("problem %d: %+v %q, want %+v", i, fe, fe.Error(), want[i])
		}
	}
	if n := strings.Count(errs.Error(), "\n"); n != len(want)-1 {
		t.Errorf("message is not one problem a line: %q", errs.Error())
	}

	// a program that is not there is only a warning
	cfg = conftest.DryConfig(t, t.TempDir(), `KILL_RUN_CMD="/nonexistent/notify $TARGET$"`)
	if w, errs := checkFiles(t, cfg); len(errs) != 0 || len(w) != 1 || !strings.Contains(w[0], "KILL_RUN_CMD: /nonexistent/notify: not found") {
		t.Errorf("missing program: %q %v", w, errs)
	}
}

// TestCheckFilesCrowdSec: the CrowdSec credentials and key files are read
// as the daemon reads them; a missing or unusable one is refused, naming
// its key, line and file.
func TestCheckFilesCrowdSec(t *testing.T) {
	dir := t.TempDir()
	cred, key := filepath.Join(dir, "cs.yaml"), filepath.Join(dir, "cs.key")
	cfg := conftest.DryConfig(t, dir, `CROWDSEC_CREDENTIALS="`+cred+`"
CROWDSEC_BOUNCER_KEY_FILE="`+key+`"`)
	os.WriteFile(cred, []byte("url: http://127.0.0.1:8080\nlogin: web1\npassword: pw\n"), 0o640)
	os.WriteFile(key, []byte("a85ee5000e9f6999fe003e11bb16df6f\n"), 0o640)
	if w, errs := checkFiles(t, cfg); len(w) != 0 || len(errs) != 0 {
		t.Fatalf("good files: %q %v", w, errs)
	}
	os.WriteFile(cred, []byte("url: http://127.0.0.1:8080\nlogin: web1\n"), 0o640)
	os.Remove(key)
	_, errs := checkFiles(t, cfg)
	if len(errs) != 2 || errs[0].Key != "CROWDSEC_CREDENTIALS" || !strings.Contains(errs[0].Error(), cred+": no password") ||
		errs[1].Key != "CROWDSEC_BOUNCER_KEY_FILE" || !strings.Contains(errs[1].Error(), key) || !strings.Contains(errs[1].Error(), cfg+":8:") {
		t.Fatalf("%v", errs)
	}
}

// TestCheckFilesIgnoreFile: the ignore file is held to the config file's
// rules; a key not in the file is named with its default, not a line 0.
func TestCheckFilesIgnoreFile(t *testing.T) {
	dir := t.TempDir()
	ignore := filepath.Join(dir, "scanwarden.ignore")
	os.WriteFile(ignore, []byte("127.0.0.1\n"), 0o644)
	os.Chmod(ignore, 0o646)
	cfg := filepath.Join(dir, "scanwarden.conf")
	os.WriteFile(cfg, []byte(fmt.Sprintf("STATE_DIR=%q\nIGNORE_FILE=%q\nKILL_HOSTS_DENY=\"\"\n", filepath.Join(dir, "state"), ignore)), 0o644)
	_, errs := checkFiles(t, cfg)
	if len(errs) != 1 || errs[0].Key != "IGNORE_FILE" || !errs[0].Trust || !strings.HasPrefix(errs[0].Error(), cfg+":2: IGNORE_FILE: "+ignore+": the file is writable by every user") {
		t.Fatalf("%v", errs)
	}
	// HOSTS_DENY_FILE at its default, in a world-writable directory
	c, err := LoadConfig(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(ignore, 0o644)
	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o755)
	os.Chmod(open, 0o777)
	c.KillHostsDeny = conf.DefaultKillHostsDeny
	c.HostsDenyFile = filepath.Join(open, "hosts.deny")
	_, err = CheckFiles(c)
	want := cfg + ": HOSTS_DENY_FILE (default " + c.HostsDenyFile + "): " + c.HostsDenyFile + ": refusing to use it: its directory " + open + " is world-writable"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

func TestCheckFilesForeignOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	const nobody = 65534
	dir := t.TempDir()
	cfg := conftest.DryConfig(t, dir, "")
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o700)
	os.Chown(state, nobody, nobody)
	os.Chown(cfg, nobody, nobody)
	_, errs := checkFiles(t, cfg)
	if len(errs) != 2 || errs[0].Key != "" || !errs[0].Trust || !strings.Contains(errs[0].Error(), "the file belongs to") ||
		errs[1].Key != "STATE_DIR" || !errs[1].Trust || !strings.Contains(errs[1].Error(), state+": refusing to use this directory: it belongs to") {
		t.Fatalf("%v", errs)
	}
	// root-owned, mode 0644: fine
	os.Chown(cfg, 0, 0)
	os.Chown(state, 0, 0)
	if w, errs := checkFiles(t, cfg); len(w) != 0 || len(errs) != 0 {
		t.Fatalf("root's files: %q %v", w, errs)
	}
}

// TestRunRefusesUnsafeFiles: the daemon does not start with a file
// CheckFiles refuses, before it opens or binds anything, and a reload to
// such a config is refused, the running config kept.
func TestRunRefusesUnsafeFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := conftest.DryConfig(t, dir, "")
	os.Chmod(cfg, 0o666)
	c, err := LoadConfig(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logBuf)
	err = Run(context.Background(), Options{ConfigPath: cfg, Config: c, Modes: Modes{TCP: true, UDP: true}, Log: log, Version: "test"})
	var errs FileErrors
	if !errors.As(err, &errs) || !strings.Contains(err.Error(), cfg+": the file is writable by every user") {
		t.Fatalf("Run: %v", err)
	}

	// reload: the running config stays
	os.Chmod(cfg, 0o644)
	running, err := LoadConfig(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	logBuf.Reset()
	d := &daemon{cfgPath: cfg, log: log, cfg: running}
	os.Chmod(cfg, 0o666)
	d.reload(context.Background())
	if d.cfg != running || d.parts != nil {
		t.Fatal("reload replaced the config")
	}
	if out := logBuf.String(); !strings.Contains(out, "reload refused, keeping the running config") || !strings.Contains(out, "writable by every user") {
		t.Fatalf("log: %s", out)
	}
}

// TestTrapSizeDefaults: TRAP_SET_SIZE's default is the set backends' own.
func TestTrapSizeDefaults(t *testing.T) {
	if conf.DefaultTrapSetSize != block.DefaultTrapSize {
		t.Fatalf("conf.DefaultTrapSetSize %d, block.DefaultTrapSize %d", conf.DefaultTrapSetSize, block.DefaultTrapSize)
	}
}
