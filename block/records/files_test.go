package records

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func stat(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

func mustWrite(t *testing.T, path, content string, perm fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // past the umask
		t.Fatal(err)
	}
}

func TestOpenHistoryAppend(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "portsentry.history")
	h, err := OpenHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	if h.Path() != path {
		t.Errorf("Path() = %q", h.Path())
	}
	if err := h.Append("one"); err != nil {
		t.Fatal(err)
	}
	if err := h.Append("two\n"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"a\nb", "a\rb", "a\n\n"} {
		if err := h.Append(bad); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Append(%q) = %v, want an error naming the file", bad, err)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Append("after close"); err == nil {
		t.Error("Append after Close succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "one\ntwo\n" {
		t.Errorf("file %q", b)
	}
	if m := stat(t, path).Mode & 0o7777; m != 0o600 {
		t.Errorf("new history file mode %04o, want 0600", m)
	}
	// an existing file keeps its mode and is appended to
	os.Chmod(path, 0o644)
	h, err = OpenHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	h.Append("three")
	h.Close()
	if b, _ := os.ReadFile(path); string(b) != "one\ntwo\nthree\n" {
		t.Errorf("file %q", b)
	}
	if m := stat(t, path).Mode & 0o7777; m != 0o644 {
		t.Errorf("mode %04o, want 0644 kept", m)
	}
}

func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	mustWrite(t, real, "x\n", 0o600)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	ww := filepath.Join(dir, "ww")
	mustWrite(t, ww, "x\n", 0o666)
	wwDir := filepath.Join(dir, "wwdir")
	os.Mkdir(wwDir, 0o755)
	os.Chmod(wwDir, 0o777|fs.ModeSticky) // like /tmp
	inWW := filepath.Join(wwDir, "f")
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ path, want string }{
		{link, "symbolic link"},
		{ww, "the file is world-writable (mode 0666)"},
		{inWW, "its directory " + wwDir + " is world-writable (mode 0777)"},
		{fifo, "not a regular file"},
		{filepath.Join(dir, "nodir", "f"), "no such file"},
	}
	noop := func(old []byte) ([]byte, bool, error) { return []byte("new\n"), true, nil }
	for _, c := range cases {
		check := func(what string, err error) {
			t.Helper()
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
				t.Errorf("%s(%s) = %v, want an error naming it and saying %q", what, c.path, err, c.want)
			}
		}
		h, err := OpenHistory(c.path)
		if err == nil {
			h.Close()
		}
		check("OpenHistory", err)
		check("RewriteFile", RewriteFile(t.Context(), c.path, 0o644, noop))
		if c.path != inWW && !strings.Contains(c.path, "nodir") {
			_, err = ReadFile(c.path)
			check("ReadFile", err)
		}
	}
	if b, _ := os.ReadFile(real); string(b) != "x\n" {
		t.Errorf("symlink target changed: %q", b)
	}
	if _, err := os.Stat(inWW); err == nil {
		t.Error("file created in a world-writable directory")
	}
}

// TestHelperProcess is run as a separate process by the tests that need a
// second writer; it does nothing in a normal run.
func TestHelperProcess(t *testing.T) {
	switch os.Getenv("SCANWARDEN_RECORDS_HELPER") {
	case "append":
		path, who := os.Getenv("HELPER_PATH"), os.Getenv("HELPER_WHO")
		n, _ := strconv.Atoi(os.Getenv("HELPER_N"))
		if err := appendMany(path, who, n); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// appendMany appends n long lines tagged who from 4 goroutines, each with
// its own History.
func appendMany(path, who string, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := OpenHistory(path)
			if err != nil {
				errs <- err
				return
			}
			defer h.Close()
			for i := g; i < n; i += 4 {
				if err := h.Append(fmt.Sprintf("%s %d %s", who, i, strings.Repeat("x", 3000))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func helper(t *testing.T, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// TestConcurrentAppend: two processes with four goroutines each append
// lines of 3 kB; every line arrives whole, once.
func TestConcurrentAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history")
	const n = 400
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for _, who := range []string{"p1", "p2"} {
		cmd := helper(t, "SCANWARDEN_RECORDS_HELPER=append", "HELPER_PATH="+path, "HELPER_WHO="+who, "HELPER_N="+strconv.Itoa(n))
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	if err := appendMany(path, "self", n); err != nil {
		t.Fatal(err)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper: %v\n%s", err, outs[i])
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	seen := map[string]bool{}
	tail := " " + strings.Repeat("x", 3000)
	for _, l := range lines {
		if !strings.HasSuffix(l, tail) || seen[l] {
			t.Fatalf("broken or repeated line (%d bytes) %.60q", len(l), l)
		}
		seen[l] = true
	}
	if len(seen) != 3*n {
		t.Errorf("%d lines, want %d", len(seen), 3*n)
	}
}

func historyLines(t *testing.T, at time.Time) (string, []string) {
	t.Helper()
	ls := []string{
		"# a comment the administrator added",
		HistoryLine(at, "", v4, 111, "tcp"),
		HistoryLine(at, "", netip.MustParseAddr("192.0.2.13"), 111, "tcp"),
		HistoryLine(at, "scanner.example.net", v4, 1, "udp"),
		HistoryLine(at, "", v6, 53, "udp"),
		"",
		HistoryLine(at, "", netip.MustParseAddr("192.0.2.120"), 1, "tcp"),
	}
	return strings.Join(ls, "\n") + "\n", ls
}

func TestRemoveFromBlocked(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "portsentry.blocked.stcp")
	at := time.Unix(1795521600, 0)
	content, ls := historyLines(t, at)
	mustWrite(t, path, content, 0o640)

	if err := RemoveFromBlocked(path, mapped); err != nil { // = 192.0.2.12
		t.Fatal(err)
	}
	want := strings.Join([]string{ls[0], ls[2], ls[4], ls[5], ls[6]}, "\n") + "\n"
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Errorf("after removing 192.0.2.12:\n%s\nwant\n%s", b, want)
	}
	if err := RemoveFromBlocked(path, v6); err != nil {
		t.Fatal(err)
	}
	want = strings.Join([]string{ls[0], ls[2], ls[5], ls[6]}, "\n") + "\n"
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Errorf("after removing %s:\n%s\nwant\n%s", v6, b, want)
	}
	if m := stat(t, path).Mode & 0o7777; m != 0o640 {
		t.Errorf("mode %04o, want 0640 kept", m)
	}
	// nothing to remove: the file is not rewritten
	before := stat(t, path)
	if err := RemoveFromBlocked(path, netip.MustParseAddr("203.0.113.1")); err != nil {
		t.Fatal(err)
	}
	if after := stat(t, path); after.Ino != before.Ino || after.Mtim != before.Mtim {
		t.Error("file rewritten although nothing was removed")
	}
	// a missing file has nothing to remove, and is not created
	missing := filepath.Join(dir, "portsentry.blocked.udp")
	if err := RemoveFromBlocked(missing, v4); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("RemoveFromBlocked created the file")
	}
	// no temporary files left, only the lock files
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if n := e.Name(); n != "portsentry.blocked.stcp" && !strings.HasSuffix(n, LockSuffix) {
			t.Errorf("stray file %s", n)
		}
	}
}

// TestRewriteFaults injects a failure at every step of a rewrite: the
// original is untouched and no temporary file is left.
func TestRewriteFaults(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	const orig = "original\nno final newline"
	mustWrite(t, path, orig, 0o640)
	before := stat(t, path)
	boom := errors.New("injected fault")
	for _, step := range []string{"write", "chmod", "chown", "fsync", "close", "rename"} {
		r := rewriter{fault: func(s string) error {
			if s == step {
				return boom
			}
			return nil
		}}
		err := r.rewrite(t.Context(), path, 0o644, options{}, func(old []byte) ([]byte, bool, error) {
			return append(old, "\nnew line\n"...), true, nil
		})
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), step) {
			t.Errorf("fault at %s: err = %v", step, err)
		}
		if b, _ := os.ReadFile(path); string(b) != orig {
			t.Errorf("fault at %s: file now %q", step, b)
		}
		if after := stat(t, path); after.Ino != before.Ino || after.Mtim != before.Mtim {
			t.Errorf("fault at %s: file replaced", step)
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 2 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("fault at %s: files left %q", step, names)
		}
	}
	// an error from the edit itself
	err := RewriteFile(t.Context(), path, 0o644, func([]byte) ([]byte, bool, error) { return nil, false, boom })
	if !errors.Is(err, boom) {
		t.Errorf("edit error: %v", err)
	}
	// and the lock was released every time
	if err := RewriteFile(t.Context(), path, 0o644, func(old []byte) ([]byte, bool, error) {
		return []byte("done\n"), true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "done\n" {
		t.Errorf("file %q", b)
	}
}

func TestRewriteCreatesAndKeepsOwner(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "new")
	calls := 0
	err := RewriteFile(t.Context(), path, 0o644, func(old []byte) ([]byte, bool, error) {
		calls++
		if old != nil {
			t.Errorf("old = %q for a missing file", old)
		}
		return []byte("a\n"), true, nil
	})
	if err != nil || calls != 1 {
		t.Fatal(err, calls)
	}
	st := stat(t, path)
	if st.Mode&0o7777 != 0o644 || int(st.Uid) != os.Getuid() {
		t.Errorf("created with mode %04o uid %d, want 0644 and ours", st.Mode&0o7777, st.Uid)
	}
	if os.Getuid() != 0 {
		t.Skip("keeping another owner needs root")
	}
	if err := os.Chown(path, 4321, 8765); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(path, 0o2640); err != nil {
		t.Fatal(err)
	}
	before := stat(t, path)
	if err := RewriteFile(t.Context(), path, 0o644, func(old []byte) ([]byte, bool, error) {
		return append(old, "b\n"...), true, nil
	}); err != nil {
		t.Fatal(err)
	}
	after := stat(t, path)
	if after.Ino == before.Ino {
		t.Error("file rewritten in place, not replaced")
	}
	if after.Uid != 4321 || after.Gid != 8765 || after.Mode&0o7777 != 0o2640 {
		t.Errorf("owner %d:%d mode %04o, want 4321:8765 2640", after.Uid, after.Gid, after.Mode&0o7777)
	}
	if b, _ := os.ReadFile(path); string(b) != "a\nb\n" {
		t.Errorf("file %q", b)
	}
}

// TestRewriteSeesForeignWriter: a writer that does not take the lock
// appends while we hold the old contents; its line survives.
func TestRewriteSeesForeignWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts.deny")
	mustWrite(t, path, "a\n", 0o644)
	calls := 0
	err := RewriteFile(t.Context(), path, 0o644, func(old []byte) ([]byte, bool, error) {
		calls++
		if calls == 1 {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return nil, false, err
			}
			f.WriteString("foreign\n")
			f.Close()
		}
		return append(slices.Clone(old), "ours\n"...), true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Errorf("edit called %d times, want 2", calls)
	}
	if b, _ := os.ReadFile(path); string(b) != "a\nforeign\nours\n" {
		t.Errorf("file %q", b)
	}
}

// TestLockTimesOutWithContext: a held lock makes RewriteFile wait, and
// give up when the context is done, naming the lock file.
func TestLockWaitsForContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	unlock, err := lockFile(t.Context(), path+LockSuffix)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err = RewriteFile(ctx, path, 0o644, func([]byte) ([]byte, bool, error) { return []byte("x"), true, nil })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), path+LockSuffix) {
		t.Errorf("err = %v", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("file written without the lock")
	}
}

// TestHistoryFollowsReplacement: a History keeps writing to the file at
// its path when that file is replaced by RemoveFromBlocked or moved away
// (logrotate), never to the old one.
func TestHistoryFollowsReplacement(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "portsentry.blocked.atcp")
	h, err := OpenHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	at := time.Unix(1795521600, 0)
	l1 := HistoryLine(at, "", v4, 1, "tcp")
	l2 := HistoryLine(at, "", v6, 2, "tcp")
	l3 := HistoryLine(at, "", v4, 3, "tcp")
	h.Append(l1)
	h.Append(l2)
	if err := RemoveFromBlocked(path, v4); err != nil {
		t.Fatal(err)
	}
	if err := h.Append(l3); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != l2+"\n"+l3+"\n" {
		t.Errorf("after a rewrite:\n%s", b)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := h.Append(l1); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != l1+"\n" {
		t.Errorf("after a rotation: %q", b)
	}
	if m := stat(t, path).Mode & 0o7777; m != 0o600 {
		t.Errorf("recreated with mode %04o", m)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err == nil {
		t.Error("second Close: no error")
	}
}

// TestAppendWhileRemoving: lines appended while another writer keeps
// removing an address's lines are never lost.
func TestAppendWhileRemoving(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portsentry.blocked.stcp")
	other := netip.MustParseAddr("192.0.2.99")
	const n = 300
	stop := make(chan struct{})
	removed := make(chan error, 1)
	go func() {
		var err error
		for {
			select {
			case <-stop:
				removed <- err
				return
			default:
			}
			if e := RemoveFromBlocked(path, v4); e != nil && err == nil {
				err = e
			}
		}
	}()
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := OpenHistory(path)
			if err != nil {
				t.Error(err)
				return
			}
			defer h.Close()
			for i := range n {
				a := v4
				if i%2 == 0 {
					a = other
				}
				if err := h.Append(HistoryLine(time.Unix(int64(g*n+i), 0), "", a, uint16(g*n+i), "tcp")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-removed; err != nil {
		t.Fatal(err)
	}
	if err := RemoveFromBlocked(path, v4); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("%d lines of %s survive, want %d", len(lines), other, n)
	}
	for _, l := range lines {
		if a, ok := LineAddr(l); !ok || a != other {
			t.Fatalf("unexpected line %q", l)
		}
	}
}
