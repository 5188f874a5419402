// Package etc holds the shipped config, ignore file and systemd unit; its
// tests check the unit and what `make install` puts in place.
package etc

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// unitSettings reads a unit file into section.Key -> values, in order.
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s:%d: not KEY=VALUE: %q", path, n, line)
			}
			out[section+"."+k] = append(out[section+"."+k], v)
		}
	}
	return out
}

// TestUnitSettings checks the settings the service relies on: what the
// daemon does (notify, watchdog, reload) and the sandbox it is promised.
func TestUnitSettings(t *testing.T) {
	u := unitSettings(t, "scanwarden.service")
	for key, want := range map[string]string{
		"Service.Type":                    "notify",
		"Service.ExecStart":               "/usr/local/sbin/scanwarden run -c /etc/scanwarden/scanwarden.conf",
		"Service.ExecReload":              "/usr/local/sbin/scanwarden reload",
		"Service.RuntimeDirectory":        "scanwarden",
		"Service.WatchdogSec":             "30",
		"Service.Restart":                 "on-failure",
		"Service.User":                    "scanwarden",
		"Service.Group":                   "scanwarden",
		"Service.AmbientCapabilities":     "CAP_NET_RAW CAP_NET_ADMIN",
		"Service.CapabilityBoundingSet":   "CAP_NET_RAW CAP_NET_ADMIN",
		"Service.NoNewPrivileges":         "yes",
		"Service.ProtectSystem":           "strict",
		"Service.ReadWritePaths":          "/var/lib/scanwarden -/etc/hosts.deny",
		"Service.StateDirectory":          "scanwarden",
		"Service.StateDirectoryMode":      "0700",
		"Service.ProtectHome":             "yes",
		"Service.PrivateTmp":              "yes",
		"Service.ProtectKernelTunables":   "yes",
		"Service.ProtectKernelModules":    "yes",
		"Service.ProtectControlGroups":    "yes",
		"Service.RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET",
		"Service.RestrictNamespaces":      "yes",
		"Service.LimitRTPRIO":             "1",
		"Service.RestrictRealtime":        "no",
		"Service.LockPersonality":         "yes",
		"Service.MemoryDenyWriteExecute":  "yes",
		"Service.SystemCallArchitectures": "native",
		"Install.WantedBy":                "multi-user.target",
	} {
		if got := u[key]; !slices.Equal(got, []string{want}) {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	// settings that would break the daemon
	for _, key := range []string{"Service.DynamicUser", "Service.ProcSubset", "Service.PrivateNetwork", "Service.LimitMEMLOCK"} {
		if v, ok := u[key]; ok {
			t.Errorf("%s=%v: see the comments in the unit", key, v)
		}
	}
}

// verify runs `systemd-analyze verify` on unit (a copy whose ExecStart
// runs bin) with the manual pages of manpath, and fails on any complaint.
func verify(t *testing.T, unit, bin, manpath string) {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is missing (apt-get install systemd)")
	}
	data, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	u := unitSettings(t, unit)
	exe := strings.Fields(u["Service.ExecStart"][0])[0]
	dir := t.TempDir()
	copyPath := filepath.Join(dir, "scanwarden.service")
	if err := os.WriteFile(copyPath, bytes.ReplaceAll(data, []byte(exe+" "), []byte(bin+" ")), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"verify"}
	env := os.Environ()
	if _, err := exec.LookPath("man"); err == nil {
		env = append(env, "MANPATH="+manpath) // Documentation=man:scanwarden(8) must be found
	} else {
		args = append(args, "--man=no")
		t.Log("man is missing: Documentation= not checked")
	}
	cmd := exec.Command(sa, append(args, copyPath)...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestUnitVerify: systemd itself accepts the unit, with the shipped
// manual page, and a stand-in for the program (TestMakeInstall runs it
// with the real one).
func TestUnitVerify(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "scanwarden")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	man := filepath.Join(dir, "man")
	os.MkdirAll(filepath.Join(man, "man8"), 0o755)
	page, err := os.ReadFile("../docs/scanwarden.8")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(man, "man8", "scanwarden.8"), page, 0o644)
	verify(t, "scanwarden.service", bin, man)
}

// tree lists the files under root (relative path -> mode).
func tree(t *testing.T, root string) map[string]fs.FileMode {
	t.Helper()
	out := map[string]fs.FileMode{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsDir() {
			fi, _ := d.Info()
			rel, _ := filepath.Rel(root, p)
			out[rel] = fi.Mode()
		}
		return nil
	})
	return out
}

// makeIn runs make with args in the repository.
func makeIn(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-C", ".."}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestMakeInstall stages `make install` in a DESTDIR and checks the tree:
// the program, the config and ignore file (never overwritten: a changed
// one is kept and the shipped one goes next to it as .dist), the unit (its
// paths following PREFIX and SYSCONFDIR) and the manual page; nothing
// outside DESTDIR is touched; `make uninstall` takes it all away but the
// administrator's config.
func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is missing")
	}
	if os.Getuid() != 0 {
		// make build runs scripts/deps.sh, which installs what is missing
		if out, err := exec.Command("bash", "../scripts/deps.sh").CombinedOutput(); err != nil {
			t.Skipf("the build needs what scripts/deps.sh installs as root: %s", out)
		}
	}
	dest, bin := t.TempDir(), filepath.Join(t.TempDir(), "scanwarden")
	out := makeIn(t, "install", "DESTDIR="+dest, "BIN="+bin)
	if strings.Contains(out, "useradd") || strings.Contains(out, "daemon-reload") {
		t.Errorf("make install with DESTDIR acted on the system:\n%s", out)
	}
	want := map[string]fs.FileMode{
		"usr/local/sbin/scanwarden":             0o755,
		"etc/scanwarden/scanwarden.conf":        0o644,
		"etc/scanwarden/scanwarden.ignore":      0o644,
		"etc/systemd/system/scanwarden.service": 0o644,
		"usr/local/share/man/man8/scanwarden.8": 0o644,
	}
	got := tree(t, dest)
	for f, m := range want {
		if got[f] != m {
			t.Errorf("%s: mode %v, want %v", f, got[f], m)
		}
	}
	for f := range got {
		if _, ok := want[f]; !ok {
			t.Errorf("unexpected %s", f)
		}
	}
	same := func(installed, shipped string) {
		t.Helper()
		a, _ := os.ReadFile(filepath.Join(dest, installed))
		b, _ := os.ReadFile(filepath.Join("..", shipped))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s", installed, shipped)
		}
	}
	same("etc/scanwarden/scanwarden.conf", "etc/scanwarden.conf")
	same("etc/scanwarden/scanwarden.ignore", "etc/scanwarden.ignore")
	same("etc/systemd/system/scanwarden.service", "etc/scanwarden.service")
	same("usr/local/share/man/man8/scanwarden.8", "docs/scanwarden.8")
	v, err := exec.Command(filepath.Join(dest, "usr/local/sbin/scanwarden"), "version").Output()
	if err != nil || !strings.HasPrefix(string(v), "scanwarden ") {
		t.Errorf("installed program: %q %v", v, err)
	}
	t.Run("verify", func(t *testing.T) {
		verify(t, filepath.Join(dest, "etc/systemd/system/scanwarden.service"),
			filepath.Join(dest, "usr/local/sbin/scanwarden"), filepath.Join(dest, "usr/local/share/man"))
	})

	// an administrator's config is kept
	conf := filepath.Join(dest, "etc/scanwarden/scanwarden.conf")
	mine := []byte("# mine\nBLOCK_TCP=\"0\"\n")
	os.WriteFile(conf, mine, 0o640)
	out = makeIn(t, "install", "DESTDIR="+dest, "BIN="+bin)
	if b, _ := os.ReadFile(conf); !bytes.Equal(b, mine) {
		t.Errorf("make install overwrote the config: %q", b)
	}
	same("etc/scanwarden/scanwarden.conf.dist", "etc/scanwarden.conf")
	if _, err := os.Stat(filepath.Join(dest, "etc/scanwarden/scanwarden.ignore.dist")); err == nil {
		t.Error("scanwarden.ignore.dist installed next to an unchanged ignore file")
	}
	if !strings.Contains(out, "exists, kept") {
		t.Errorf("make install does not say it kept the config:\n%s", out)
	}

	makeIn(t, "uninstall", "DESTDIR="+dest)
	got = tree(t, dest)
	if len(got) != 1 || got["etc/scanwarden/scanwarden.conf"] == 0 {
		t.Errorf("after uninstall: %v, want only the administrator's config", got)
	}

	// PREFIX and SYSCONFDIR reach the unit
	dest2 := t.TempDir()
	makeIn(t, "install", "DESTDIR="+dest2, "BIN="+bin, "PREFIX=/opt/sw", "SYSCONFDIR=/etc/opt/sw")
	u := unitSettings(t, filepath.Join(dest2, "etc/opt/sw/systemd/system/scanwarden.service"))
	if got := u["Service.ExecStart"]; !slices.Equal(got, []string{"/opt/sw/sbin/scanwarden run -c /etc/opt/sw/scanwarden/scanwarden.conf"}) {
		t.Errorf("ExecStart with PREFIX=/opt/sw SYSCONFDIR=/etc/opt/sw: %q", got)
	}
	for _, f := range []string{"opt/sw/sbin/scanwarden", "opt/sw/share/man/man8/scanwarden.8", "etc/opt/sw/scanwarden/scanwarden.conf"} {
		if _, err := os.Stat(filepath.Join(dest2, f)); err != nil {
			t.Error(err)
		}
	}
}
