// Package sandboxtest gives tests the file-system view systemd gives a
// service with ProtectSystem=strict and ReadWritePaths=FILE, inside a
// private mount namespace so that nothing leaks to the host. Only tests
// import it.
package sandboxtest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// envChild names the test a re-executed test binary is to run inside the
// mount namespace.
const envChild = "SCANWARDEN_MOUNTNS_TEST"

// InMountNS runs the calling test again, alone, in a private mount
// namespace (unshare --mount --propagation private: no mount leaks to the
// host) and reports how it went; it returns true in that second process,
// where the test does its work. It skips when not root or when this
// system cannot make a mount namespace.
func InMountNS(t *testing.T) bool {
	t.Helper()
	if os.Getenv(envChild) == t.Name() {
		return true
	}
	if os.Getuid() != 0 {
		t.Skip("bind mounts in a private mount namespace need root")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare(1) (util-linux) is missing")
	}
	if out, err := exec.Command(unshare, "--mount", "--propagation", "private", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot make a mount namespace here: %v: %s", err, out)
	}
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envChild+"="+t.Name())
	out, err := cmd.CombinedOutput()
	switch {
	case err != nil:
		t.Fatalf("in a private mount namespace: %v\n%s", err, out)
	case bytes.Contains(out, []byte("--- SKIP: "+t.Name())):
		t.Skipf("in a private mount namespace:\n%s", out)
	case !bytes.Contains(out, []byte("--- PASS: "+t.Name())):
		t.Fatalf("the test did not run in the mount namespace:\n%s", out)
	}
	t.Logf("in a private mount namespace:\n%s", out)
	return false
}

// Sandbox does to dir and file (in dir) what systemd does to /etc and
// /etc/hosts.deny for ProtectSystem=strict and
// ReadWritePaths=/etc/hosts.deny: file is bind-mounted on itself, writable,
// and, with roDir, dir around it is made a read-only bind mount (otherwise
// it stays writable and only renaming over the file fails, with EBUSY).
// It checks that the result refuses what it should. Call it inside
// InMountNS's namespace.
func Sandbox(t *testing.T, dir, file string, roDir bool) {
	t.Helper()
	mount := func(src, dst string, flags uintptr) {
		t.Helper()
		if err := syscall.Mount(src, dst, "", flags, ""); err != nil {
			t.Fatalf("mount %s on %s (%#x): %v", src, dst, flags, err)
		}
	}
	mount(dir, dir, syscall.MS_BIND)
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	mount(file, file, syscall.MS_BIND)
	t.Cleanup(func() { syscall.Unmount(file, syscall.MNT_DETACH) })
	if roDir {
		mount("", dir, syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY)
		if _, err := os.CreateTemp(dir, "probe-*"); !errors.Is(err, syscall.EROFS) {
			t.Fatalf("creating a file in the read-only %s: %v, want EROFS", dir, err)
		}
	} else {
		probe := filepath.Join(dir, "probe")
		os.WriteFile(probe, nil, 0o600)
		if err := os.Rename(probe, file); !errors.Is(err, syscall.EBUSY) {
			t.Fatalf("renaming over the bind-mounted %s: %v, want EBUSY", file, err)
		}
		os.Remove(probe)
	}
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("the bind-mounted %s is not writable: %v", file, err)
	}
	f.Close()
}
