package records

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/sandboxtest"
)

func TestLockNames(t *testing.T) {
	const dir = "/var/lib/scanwarden/locks"
	for path, want := range map[string]string{
		"/etc/hosts.deny":              "etc_hosts.deny",
		"/etc//hosts.deny":             "etc_hosts.deny",
		"/etc/hosts_deny":              "etc_hosts%5Fdeny",
		"/etc/hosts/deny":              "etc_hosts_deny",
		"/var/lib/a b/x%y":             "var_lib_a%20b_x%25y",
		"/srv/naïve":                   "srv_na%C3%AFve",
		"/var/log/portsentry.blocked~": "var_log_portsentry.blocked%7E",
	} {
		if got := LockPath(path, WithLockDir(dir)); got != dir+"/"+want+".lock" {
			t.Errorf("LockPath(%q) = %q, want %s/%s.lock", path, got, dir, want)
		}
		if got := JournalPath(path, WithLockDir(dir+"/")); got != dir+"/"+want+".journal" {
			t.Errorf("JournalPath(%q) = %q", path, got)
		}
	}
	// the defaults: next to the file
	if got := LockPath("/etc/hosts.deny"); got != "/etc/hosts.deny"+LockSuffix {
		t.Errorf("default LockPath = %q", got)
	}
	if got := JournalPath("/etc/hosts.deny", WithLockDir("")); got != "/etc/hosts.deny"+JournalSuffix {
		t.Errorf("default JournalPath = %q", got)
	}
	// a relative path names the same lock as its absolute form
	wd, _ := os.Getwd()
	if LockPath("x/f", WithLockDir(dir)) != LockPath(filepath.Join(wd, "x/f"), WithLockDir(dir)) {
		t.Error("a relative path and its absolute form have different locks")
	}
	// long paths are shortened, and still told apart
	long1 := "/" + strings.Repeat("d/", 150) + "one"
	long2 := "/" + strings.Repeat("d/", 150) + "two"
	n1, n2 := filepath.Base(LockPath(long1, WithLockDir(dir))), filepath.Base(LockPath(long2, WithLockDir(dir)))
	if n1 == n2 || len(n1) > 255-len(".journal.new")+len(".lock") || !strings.Contains(n1, "~") {
		t.Errorf("long paths: %q and %q", n1, n2)
	}
	// distinct paths, distinct names
	seen := map[string]string{}
	for _, p := range []string{"/a/b", "/a_b", "/a%5Fb", "/a/b_", "/a/b/", "/a.b", "/a-b", "/a/.b", "/ab"} {
		n := lockName(p)
		if q, dup := seen[n]; dup && filepath.Clean(q) != filepath.Clean(p) {
			t.Errorf("%q and %q share the lock name %q", p, q, n)
		}
		seen[n] = p
	}
}

// TestLockDir: with WithLockDir the lock lives there (the directory is
// created 0700), nothing is created next to the file, and Histories and
// RemoveFromBlocked with the same directory exclude each other.
func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	locks := filepath.Join(dir, "state", "locks")
	path := filepath.Join(dir, "data", "portsentry.blocked.stcp")
	os.Mkdir(filepath.Dir(path), 0o755)
	opt := WithLockDir(locks)
	if err := RewriteFile(t.Context(), path, 0o644, func([]byte) ([]byte, bool, error) {
		return []byte(HistoryLine(time.Unix(1, 0), "", v4, 1, "tcp") + "\n"), true, nil
	}, opt); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(locks)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("lock directory: %v %v", fi, err)
	}
	if _, err := os.Stat(LockPath(path, opt)); err != nil {
		t.Errorf("lock file: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("files next to the file: %v", ents)
	}
	// a History under the same lock never loses a line to a rewrite
	other := netip.MustParseAddr("192.0.2.99")
	done := make(chan error, 1)
	go func() {
		var err error
		for range 200 {
			if e := RemoveFromBlocked(path, v4, opt); e != nil && err == nil {
				err = e
			}
		}
		done <- err
	}()
	h, err := OpenHistory(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		a := v4
		if i%2 == 0 {
			a = other
		}
		if err := h.Append(HistoryLine(time.Unix(int64(i), 0), "", a, uint16(i), "tcp")); err != nil {
			t.Fatal(err)
		}
	}
	h.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := RemoveFromBlocked(path, v4, opt); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), "192.0.2.99 Port"); n != 100 || strings.Count(string(b), "\n") != 100 {
		t.Errorf("%d lines of %s (want 100) in\n%s", n, other, b)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("files next to the file: %v", ents)
	}
	// a world-writable lock directory is refused
	ww := filepath.Join(dir, "open")
	os.Mkdir(ww, 0o755)
	os.Chmod(ww, 0o777)
	err = RewriteFile(t.Context(), path, 0o644, func(b []byte) ([]byte, bool, error) { return b, true, nil }, WithLockDir(ww))
	if err == nil || !strings.Contains(err.Error(), ww) || !strings.Contains(err.Error(), "world-writable") {
		t.Errorf("world-writable lock directory: %v", err)
	}
}

// fault returns a rewriter whose step fails with err.
func fault(step string, err error) rewriter {
	return rewriter{fault: func(s string) error {
		if s == step {
			return err
		}
		return nil
	}}
}

// noStrays fails when dir holds anything but the names given.
func noStrays(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !slices.Contains(want, e.Name()) {
			t.Errorf("left in %s: %s", dir, e.Name())
		}
	}
}

// TestInPlaceFallback: when the temporary file cannot be created, given
// its owner or renamed for one of the reasons a read-only directory or a
// bind-mounted file gives, the file is rewritten in place: same inode,
// owner and mode, right contents, nothing left over. Other errors still
// fail without touching it.
func TestInPlaceFallback(t *testing.T) {
	for _, step := range []string{"create", "chown", "rename"} {
		for _, errno := range []syscall.Errno{syscall.EROFS, syscall.EACCES, syscall.EPERM, syscall.EBUSY, syscall.EXDEV} {
			t.Run(fmt.Sprintf("%s/%s", step, errno), func(t *testing.T) {
				dir := t.TempDir()
				locks := filepath.Join(dir, "locks")
				path := filepath.Join(dir, "hosts.deny")
				mustWrite(t, path, "# admin\nALL: 192.0.2.1 : DENY\nALL: 192.0.2.2 : DENY\n", 0o640)
				before := stat(t, path)
				if step == "chown" {
					// the step runs only when the owner differs; make
					// the file look like someone else's
					if os.Getuid() != 0 {
						t.Skip("needs a file owned by someone else: root")
					}
					os.Chown(path, 4321, 8765)
					before = stat(t, path)
				}
				r := fault(step, errno)
				err := r.rewrite(t.Context(), path, 0o644, options{lockDir: locks}, func(old []byte) ([]byte, bool, error) {
					// shorter: the old tail must be cut
					return bytes.Replace(old, []byte("ALL: 192.0.2.1 : DENY\n"), nil, 1), true, nil
				})
				if err != nil {
					t.Fatal(err)
				}
				after := stat(t, path)
				if after.Ino != before.Ino || after.Uid != before.Uid || after.Gid != before.Gid || after.Mode != before.Mode {
					t.Errorf("inode %d->%d, owner %d:%d->%d:%d, mode %o->%o", before.Ino, after.Ino, before.Uid, before.Gid, after.Uid, after.Gid, before.Mode, after.Mode)
				}
				if b, _ := os.ReadFile(path); string(b) != "# admin\nALL: 192.0.2.2 : DENY\n" {
					t.Errorf("file %q", b)
				}
				noStrays(t, dir, "hosts.deny", "locks")
				noStrays(t, locks, filepath.Base(LockPath(path, WithLockDir(locks))))
			})
		}
	}
	// a file that does not exist cannot be created in place
	dir := t.TempDir()
	path := filepath.Join(dir, "missing")
	err := fault("create", syscall.EROFS).rewrite(t.Context(), path, 0o644, options{}, func([]byte) ([]byte, bool, error) { return []byte("x\n"), true, nil })
	if !errors.Is(err, syscall.EROFS) || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), path) {
		t.Errorf("missing file: %v", err)
	}
	// another error is not a reason to write in place
	mustWrite(t, path, "old\n", 0o644)
	before := stat(t, path)
	err = fault("create", syscall.EIO).rewrite(t.Context(), path, 0o644, options{}, func([]byte) ([]byte, bool, error) { return []byte("new\n"), true, nil })
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("EIO: %v", err)
	}
	if after := stat(t, path); after.Mtim != before.Mtim {
		t.Error("file written after EIO")
	}
	// the journal is next to the file by default
	if got := JournalPath(path); got != path+JournalSuffix {
		t.Errorf("JournalPath = %q", got)
	}
}

// TestInPlaceFaults: a failure while journaling leaves the file as it was;
// a failure while writing it puts the old contents back; either way no
// journal is left.
func TestInPlaceFaults(t *testing.T) {
	const orig = "# admin\nALL: 192.0.2.1 : DENY\n"
	boom := errors.New("injected fault")
	for _, step := range []string{"journal", "inplace", "inplace-write"} {
		dir := t.TempDir()
		path := filepath.Join(dir, "hosts.deny")
		mustWrite(t, path, orig, 0o644)
		r := rewriter{fault: func(s string) error {
			switch s {
			case "create":
				return syscall.EROFS
			case step:
				return boom
			}
			return nil
		}}
		err := r.rewrite(t.Context(), path, 0o644, options{}, func(old []byte) ([]byte, bool, error) {
			return []byte("ALL: 192.0.2.99 : DENY\n"), true, nil
		})
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), path) {
			t.Errorf("fault at %s: %v", step, err)
		}
		if b, _ := os.ReadFile(path); string(b) != orig {
			t.Errorf("fault at %s: file %q", step, b)
		}
		noStrays(t, dir, "hosts.deny", "hosts.deny"+LockSuffix)
	}
}

// errCrash stands for the process dying at a step.
var errCrash = errors.New("simulated crash")

// crash runs the rewrite of path (in place: the temporary file is
// refused) to the given step and "dies" there, after scribble (if set)
// has done to the file what the interrupted write had done.
func crash(t *testing.T, path string, o options, step string, scribble func(), edit EditFunc) {
	t.Helper()
	r := rewriter{fault: func(s string) error {
		switch s {
		case "create":
			return syscall.EROFS
		case step:
			if scribble != nil {
				scribble()
			}
			panic(errCrash)
		}
		return nil
	}}
	defer func() {
		if v := recover(); v != nil && v != errCrash {
			panic(v)
		}
	}()
	err := r.rewrite(t.Context(), path, 0o644, o, edit)
	t.Fatalf("no crash at %s: %v", step, err)
}

// TestCrashRecovery: a rewrite that dies after its journal was committed
// (before, or half-way through, writing the file) is completed by the next
// writer or reader of the file, before it does anything else.
func TestCrashRecovery(t *testing.T) {
	const orig = "# admin\nALL: 192.0.2.1 : DENY\nALL: 192.0.2.2 : DENY\nALL: 192.0.2.3 : DENY\n"
	const next = "# admin\nALL: 192.0.2.3 : DENY\n" // what the crashed rewrite wrote
	edit := func([]byte) ([]byte, bool, error) { return []byte(next), true, nil }
	half := func(path string) func() {
		return func() {
			// a torn write: the start of the new contents over the old
			f, _ := os.OpenFile(path, os.O_WRONLY, 0)
			f.WriteAt([]byte(next[:12]), 8)
			f.Close()
		}
	}
	type after struct {
		name string
		run  func(t *testing.T, path string, o options) string // returns what it saw
	}
	ops := []after{
		{"RewriteFile", func(t *testing.T, path string, o options) string {
			var saw string
			if err := RewriteFile(t.Context(), path, 0o644, func(old []byte) ([]byte, bool, error) {
				saw = string(old)
				return append(slices.Clone(old), "ALL: 192.0.2.4 : DENY\n"...), true, nil
			}, WithLockDir(o.lockDir)); err != nil {
				t.Fatal(err)
			}
			return saw
		}},
		{"ReadFileLocked", func(t *testing.T, path string, o options) string {
			b, err := ReadFileLocked(t.Context(), path, WithLockDir(o.lockDir))
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}},
		{"OpenHistory", func(t *testing.T, path string, o options) string {
			h, err := OpenHistory(path, WithLockDir(o.lockDir))
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			b, _ := os.ReadFile(path)
			if err := h.Append("ALL: 192.0.2.5 : DENY"); err != nil {
				t.Fatal(err)
			}
			return string(b)
		}},
	}
	for _, step := range []string{"inplace", "inplace-write"} {
		for _, lockDir := range []bool{false, true} {
			for _, op := range ops {
				t.Run(fmt.Sprintf("%s/lockdir=%v/%s", step, lockDir, op.name), func(t *testing.T) {
					dir := t.TempDir()
					path := filepath.Join(dir, "hosts.deny")
					mustWrite(t, path, orig, 0o640)
					var o options
					if lockDir {
						o.lockDir = filepath.Join(dir, "locks")
					}
					var scribble func()
					if step == "inplace" {
						scribble = half(path)
					}
					crash(t, path, o, step, scribble, edit)
					b, _ := os.ReadFile(path)
					if string(b) == next {
						t.Fatalf("crash at %s: the file is already complete", step)
					}
					jpath := o.journalPath(path)
					if _, err := os.Stat(jpath); err != nil {
						t.Fatalf("no journal after the crash: %v", err)
					}
					if saw := op.run(t, path, o); saw != next {
						t.Errorf("%s saw %q, want the completed rewrite %q", op.name, saw, next)
					}
					if _, err := os.Stat(jpath); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("journal still there: %v", err)
					}
					if m := stat(t, path).Mode & 0o777; m != 0o640 {
						t.Errorf("mode %04o", m)
					}
				})
			}
		}
	}
	// a crash while the journal itself was being written leaves the file
	// as it was and a partial NAME.new, which is never used, and is
	// replaced by the next journal
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts.deny")
	mustWrite(t, path, orig, 0o644)
	partial := handJournal(path, []byte(next))
	mustWrite(t, path+JournalSuffix+".new", string(partial[:len(partial)-5]), 0o600)
	if b, err := ReadFileLocked(t.Context(), path); err != nil || string(b) != orig {
		t.Errorf("after a crash while journaling: %q %v", b, err)
	}
	err := fault("create", syscall.EROFS).rewrite(t.Context(), path, 0o644, options{}, func(old []byte) ([]byte, bool, error) {
		return append(old, "x\n"...), true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != orig+"x\n" {
		t.Errorf("file %q", b)
	}
	noStrays(t, dir, "hosts.deny", "hosts.deny"+LockSuffix)
}

// handJournal is a journal written by hand from its documented format.
func handJournal(target string, data []byte) []byte {
	return fmt.Appendf(nil, "scanwarden-journal 1\ntarget %q\nsize %d\nsha256 %x\n\n%s", target, len(data), sha256.Sum256(data), data)
}

// TestJournalRefusals: a journal that is damaged, for another file or
// writable by others is refused with an error naming it, and the file is
// left alone; a journal whose file was deleted is dropped.
func TestJournalRefusals(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts.deny")
	jpath := JournalPath(path)
	const orig = "# admin\n"
	good := handJournal(path, []byte("ALL: 192.0.2.7 : DENY\n"))
	for _, c := range []struct {
		name, want string
		data       []byte
		mode       fs.FileMode
	}{
		{"truncated", "damaged", good[:len(good)-3], 0o600},
		{"bad hash", "damaged", bytes.Replace(good, []byte("192.0.2.7"), []byte("192.0.2.8"), 1), 0o600},
		{"bad magic", "damaged", bytes.Replace(good, []byte("journal 1"), []byte("journal 9"), 1), 0o600},
		{"other target", "not this file", handJournal("/etc/shadow", []byte("x\n")), 0o600},
		{"group-writable", "group- or world-writable", good, 0o620},
	} {
		mustWrite(t, path, orig, 0o644)
		mustWrite(t, jpath, string(c.data), c.mode)
		err := RewriteFile(t.Context(), path, 0o644, func(old []byte) ([]byte, bool, error) { return append(old, "y\n"...), true, nil })
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), jpath) {
			t.Errorf("%s: %v, want an error naming %s and saying %q", c.name, err, jpath, c.want)
		}
		if _, err := ReadFileLocked(t.Context(), path); err == nil {
			t.Errorf("%s: ReadFileLocked read past the journal", c.name)
		}
		if b, _ := os.ReadFile(path); string(b) != orig {
			t.Errorf("%s: file %q", c.name, b)
		}
		os.Remove(jpath)
	}
	// a symbolic link as the journal
	os.Symlink(filepath.Join(dir, "elsewhere"), jpath)
	if err := RewriteFile(t.Context(), path, 0o644, func(old []byte) ([]byte, bool, error) { return old, true, nil }); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlinked journal: %v", err)
	}
	os.Remove(jpath)
	// the file was deleted after the crash: not brought back
	os.Remove(path)
	mustWrite(t, jpath, string(good), 0o600)
	h, err := OpenHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	h.Append("first")
	h.Close()
	if b, _ := os.ReadFile(path); string(b) != "first\n" {
		t.Errorf("file %q", b)
	}
	if _, err := os.Stat(jpath); err == nil {
		t.Error("journal of a deleted file kept")
	}
}

// TestSandboxedRewrite rewrites a file that, as under systemd's
// ProtectSystem=strict with ReadWritePaths=FILE, is a writable bind mount
// in a read-only directory (and, second, in a writable directory, where
// the rename fails with EBUSY): RewriteFile, RemoveFromBlocked and History
// work, in place, and a crash half-way is completed by the next writer.
func TestSandboxedRewrite(t *testing.T) {
	if !sandboxtest.InMountNS(t) {
		return
	}
	for _, roDir := range []bool{true, false} {
		t.Run(fmt.Sprintf("readonly-dir=%v", roDir), func(t *testing.T) {
			top := t.TempDir()
			etc, locks := filepath.Join(top, "etc"), filepath.Join(top, "state", "locks")
			os.Mkdir(etc, 0o755)
			path := filepath.Join(etc, "portsentry.blocked.stcp")
			at := time.Unix(1795521600, 0)
			l1, l2 := HistoryLine(at, "", v4, 1, "tcp"), HistoryLine(at, "", v6, 2, "tcp")
			mustWrite(t, path, l1+"\n"+l2+"\n", 0o640)
			os.Chown(path, 4321, 8765)
			sandboxtest.Sandbox(t, etc, path, roDir)
			before := stat(t, path)
			opt := WithLockDir(locks)

			// without a lock directory, a read-only directory cannot even
			// hold the lock: a clear error, nothing written
			if roDir {
				err := RemoveFromBlocked(path, v4)
				if !errors.Is(err, syscall.EROFS) || !strings.Contains(err.Error(), path+LockSuffix) {
					t.Errorf("lock next to a file in a read-only directory: %v", err)
				}
			}
			if err := RemoveFromBlocked(path, v4, opt); err != nil {
				t.Fatal(err)
			}
			h, err := OpenHistory(path, opt)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.Append(l1); err != nil {
				t.Fatal(err)
			}
			h.Close()
			if b, _ := os.ReadFile(path); string(b) != l2+"\n"+l1+"\n" {
				t.Errorf("file %q", b)
			}
			after := stat(t, path)
			if after.Ino != before.Ino || after.Uid != 4321 || after.Gid != 8765 || after.Mode&0o7777 != 0o640 {
				t.Errorf("inode %d->%d, owner %d:%d, mode %04o: want the same file, 4321:8765 0640", before.Ino, after.Ino, after.Uid, after.Gid, after.Mode&0o7777)
			}
			noStrays(t, etc, filepath.Base(path))
			noStrays(t, locks, filepath.Base(LockPath(path, opt)))

			// a crash half-way, for real: the directory refuses the
			// temporary file by itself, the hook only stops the process
			r := rewriter{fault: func(s string) error {
				if s == "inplace-write" {
					panic(errCrash)
				}
				return nil
			}}
			func() {
				defer func() {
					if v := recover(); v != errCrash {
						panic(v)
					}
				}()
				r.rewrite(context.Background(), path, 0o644, makeOptions([]Option{opt}), func([]byte) ([]byte, bool, error) {
					return []byte(l1 + "\n"), true, nil // shorter: the tail is not cut yet
				})
			}()
			if b, _ := os.ReadFile(path); string(b) == l1+"\n" {
				t.Fatal("the crashed rewrite is complete")
			}
			if err := RemoveFromBlocked(path, v6, opt); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(path); string(b) != l1+"\n" {
				t.Errorf("after recovery: %q, want %q", b, l1+"\n")
			}
			noStrays(t, locks, filepath.Base(LockPath(path, opt)))
		})
	}
}

// TestLocksKeepTheDirectoryOwner: a lock directory, lock file or journal
// that root (`scanwarden unblock`) creates in the state directory of a
// daemon running as its own user is given to that user, so that the
// daemon can still take the lock and complete a journal.
func TestLocksKeepTheDirectoryOwner(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("creating files for another user needs root")
	}
	state := t.TempDir()
	os.Chown(state, 4321, 8765)
	locks := filepath.Join(state, "locks")
	path := filepath.Join(t.TempDir(), "hosts.deny")
	mustWrite(t, path, "a\n", 0o644)
	opt := WithLockDir(locks)
	// in place, so that a journal is made too: it is gone afterwards, but
	// a crash keeps it, and the hook checks it while it is there
	r := rewriter{fault: func(s string) error {
		switch s {
		case "create":
			return syscall.EROFS
		case "inplace":
			if st := stat(t, JournalPath(path, opt)); st.Uid != 4321 || st.Gid != 8765 {
				t.Errorf("journal owned by %d:%d", st.Uid, st.Gid)
			}
		}
		return nil
	}}
	if err := r.rewrite(t.Context(), path, 0o644, makeOptions([]Option{opt}), func(old []byte) ([]byte, bool, error) {
		return append(old, "b\n"...), true, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{locks, LockPath(path, opt)} {
		if st := stat(t, p); st.Uid != 4321 || st.Gid != 8765 {
			t.Errorf("%s owned by %d:%d, want the state directory's 4321:8765", p, st.Uid, st.Gid)
		}
	}
	if st := stat(t, path); st.Uid != 0 {
		t.Errorf("the file itself changed owner: %d", st.Uid)
	}
	// next to a file in a directory of root's, a lock stays root's
	if err := RewriteFile(t.Context(), path, 0o644, func(old []byte) ([]byte, bool, error) { return old, true, nil }); err != nil {
		t.Fatal(err)
	}
	if st := stat(t, path+LockSuffix); st.Uid != 0 {
		t.Errorf("lock next to root's file owned by %d", st.Uid)
	}
}
