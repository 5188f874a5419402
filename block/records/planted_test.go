package records

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLockHardLinkNotChowned: root (`scanwarden unblock`) opening a
// lock file in a lock directory owned by the daemon's user must not give
// that user a root-owned file planted there as a hard link (with
// fs.protected_hardlinks=0 any file of the same file system can be
// linked): the chown would hand over the linked file, /etc/shadow say.
func TestLockHardLinkNotChowned(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	base := t.TempDir()
	state := filepath.Join(base, "state")
	locks := filepath.Join(state, "locks")
	if err := os.MkdirAll(locks, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(state, 4321, 8765)
	os.Chown(locks, 4321, 8765)
	victim := filepath.Join(base, "shadow")
	mustWrite(t, victim, "root:secret\n", 0o640)
	path := filepath.Join(base, "hosts.deny")
	mustWrite(t, path, "a\n", 0o644)
	opt := WithLockDir(locks)
	if err := os.Link(victim, LockPath(path, opt)); err != nil {
		t.Fatal(err)
	}
	RewriteFile(t.Context(), path, 0o644, func(old []byte) ([]byte, bool, error) {
		return append(old, "b\n"...), true, nil
	}, opt)
	if st := stat(t, victim); st.Uid != 0 || st.Gid != 0 {
		t.Errorf("a file hard-linked as the lock was given to %d:%d", st.Uid, st.Gid)
	}
}

// TestRecoveryRefusesHardLink: a journal and a hard link planted in
// the directory of a file (by whoever may write there: the daemon's user,
// for a file in its state directory) must not make the next writer (root's
// `scanwarden unblock`) write the journal's contents into the linked file.
func TestRecoveryRefusesHardLink(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(base, "victim")
	const orig = "root:x:0:0::/root:/bin/sh\n"
	mustWrite(t, victim, orig, 0o644)
	path := filepath.Join(dir, "scanwarden.blocked.tcp")
	if err := os.Link(victim, path); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, JournalPath(path), string(handJournal(path, []byte("root::0:0::/root:/bin/sh\n"))), 0o600)
	_, err := ReadFileLocked(t.Context(), path)
	if b, _ := os.ReadFile(victim); string(b) != orig {
		t.Errorf("the journal was written into a hard-linked file: %q", b)
	}
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "link") {
		t.Errorf("ReadFileLocked: %v, want an error naming %s and its links", err, path)
	}
	// the file alone (one link): recovered as before
	os.Remove(victim)
	if _, err := ReadFileLocked(t.Context(), path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(JournalPath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("journal kept: %v", err)
	}
}

// setImmutable sets or clears path's immutable flag (chattr +i), or skips
// the test where that cannot be done (not root, a file system without it).
func setImmutable(t *testing.T, path string, on bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Skipf("FS_IOC_GETFLAGS: %v", err)
	}
	if on {
		flags |= 0x10 /* FS_IMMUTABLE_FL */
	} else {
		flags &^= 0x10 /* FS_IMMUTABLE_FL */
	}
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags)); err != nil {
		t.Skipf("FS_IOC_SETFLAGS: %v", err)
	}
}

// TestInPlaceNothingWritten: a file that can be neither replaced
// nor opened for writing (chattr +i: the rename fails with EPERM, so the
// rewrite goes in place, and the open fails too) is left as it is, and so
// is the lock directory: the journal of a rewrite that wrote nothing must
// not stay, or every later read of the file fails on it and, once the file
// is writable again, the next one writes the contents of a rewrite that
// was reported failed.
func TestInPlaceNothingWritten(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts.deny")
	const orig = "# admin\n"
	mustWrite(t, path, orig, 0o644)
	opt := WithLockDir(filepath.Join(dir, "locks"))
	setImmutable(t, path, true)
	t.Cleanup(func() { setImmutable(t, path, false) })
	err := RewriteFile(t.Context(), path, 0o644, func(old []byte) ([]byte, bool, error) {
		return append(old, "ALL: 192.0.2.1\n"...), true, nil
	}, opt)
	if !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), path) {
		t.Errorf("RewriteFile: %v, want EPERM naming %s", err, path)
	}
	if _, err := os.Lstat(JournalPath(path, opt)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("journal left behind: %v", err)
	}
	if b, err := ReadFileLocked(t.Context(), path, opt); err != nil || string(b) != orig {
		t.Errorf("ReadFileLocked while immutable: %q, %v", b, err)
	}
	setImmutable(t, path, false)
	if b, err := ReadFileLocked(t.Context(), path, opt); err != nil || string(b) != orig {
		t.Errorf("ReadFileLocked afterwards: %q, %v, want the old contents", b, err)
	}
}

// TestRemoveExact: only addr's own lines go; a prefix, a longer
// address and the mapped or zoned forms are handled as documented.
func TestRemoveExact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blocked.tcp")
	lines := []string{
		"1 - 01/01/2024 00:00:00 Host: 10.0.0.1/10.0.0.1 Port: 80 TCP Blocked\n",
		"2 - 01/01/2024 00:00:00 Host: 10.0.0.10/10.0.0.10 Port: 80 TCP Blocked\n",
		"3 - 01/01/2024 00:00:00 Host: x/::ffff:10.0.0.1 Port: 80 TCP Blocked\r\n",
		"4 - 01/01/2024 00:00:00 Host: fe80::1/fe80::1%eth0 Port: 80 TCP Blocked\n",
		"\xff\xfe odd bytes 10.0.0.1\n",
		"5 - 01/01/2024 00:00:00 Host: 110.0.0.1/110.0.0.1 Port: 80 TCP Blocked",
	}
	mustWrite(t, path, strings.Join(lines, ""), 0o600)
	if err := RemoveFromBlocked(path, netip.MustParseAddr("::ffff:10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := RemoveFromBlocked(path, netip.MustParseAddr("fe80::1%lo")); err != nil {
		t.Fatal(err)
	}
	want := lines[1] + lines[4] + lines[5]
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Errorf("file %q, want %q", b, want)
	}
}

// TestHistoryRefusesHardLink: a history or blocked file that is a hard
// link of another file (planted in the directory by whoever may write
// there) gets no line, at open or at a reopen after the file was
// replaced, and the linked file is untouched.
func TestHistoryRefusesHardLink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	mustWrite(t, victim, "root:x:0:0\n", 0o600)
	path := filepath.Join(dir, "portsentry.history")
	if err := os.Link(victim, path); err != nil {
		t.Fatal(err)
	}
	if h, err := OpenHistory(path); err == nil || !strings.Contains(err.Error(), path) {
		if h != nil {
			h.Append("1 - planted")
			h.Close()
		}
		t.Fatalf("OpenHistory of a hard link: %v, want an error naming %s", err, path)
	}

	// a reopen (the file was moved away, as by logrotate) that finds a link
	os.Remove(path)
	h, err := OpenHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(victim, path); err != nil {
		t.Fatal(err)
	}
	if err := h.Append("2 - planted"); err == nil {
		t.Error("Append through a hard link planted after a rotation succeeded")
	}
	if b, _ := os.ReadFile(victim); string(b) != "root:x:0:0\n" {
		t.Errorf("the linked file was written: %q", b)
	}
}
