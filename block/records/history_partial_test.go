package records

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAppendShortWrite: an append cut short by RLIMIT_FSIZE (as by a full
// disk) is an error naming the file and leaves the file byte for byte as
// it was; the next append, once there is room, is a whole line right
// after the old content. The limit is set in a child process (the test
// binary run again), so that it does not touch the other tests.
func TestAppendShortWrite(t *testing.T) {
	if os.Getenv("SCANWARDEN_SHORT_WRITE_CHILD") == "1" {
		if err := shortWriteChild(os.Getenv("SCANWARDEN_SHORT_WRITE_PATH")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		fmt.Println("child: ok")
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "portsentry.history")
	cmd := exec.Command(os.Args[0], "-test.run=^TestAppendShortWrite$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SCANWARDEN_SHORT_WRITE_CHILD=1", "SCANWARDEN_SHORT_WRITE_PATH="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "child: ok") {
		t.Fatalf("child did not run the check:\n%s", out)
	}
	t.Logf("child:\n%s", out)
	if b, _ := os.ReadFile(path); string(b) != "one\ntwo\nthree\n" {
		t.Errorf("file %q after the child, want %q", b, "one\ntwo\nthree\n")
	}
}

// shortWriteChild runs in the child process of TestAppendShortWrite.
func shortWriteChild(path string) error {
	// with SIGXFSZ ignored, a write past the limit is short (or EFBIG)
	// instead of killing the process
	signal.Ignore(syscall.SIGXFSZ)
	old := []byte("one\ntwo\n")
	if err := os.WriteFile(path, old, 0o600); err != nil {
		return err
	}
	h, err := OpenHistory(path)
	if err != nil {
		return err
	}
	defer h.Close()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		return err
	}
	saved := lim.Cur
	// only the soft limit: it can be raised back, the hard one could not
	lim.Cur = uint64(len(old)) + 5
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		return err
	}
	err = h.Append("a line much longer than the five bytes left")
	if err == nil {
		return fmt.Errorf("Append past RLIMIT_FSIZE succeeded")
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "short write") {
		return fmt.Errorf("Append past RLIMIT_FSIZE: error %q, want a short write naming %s", err, path)
	}
	fmt.Println("child: Append error:", err)
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, old) {
		return fmt.Errorf("after the short write the file is %q (%v), want %q as it was", b, err, old)
	}
	lim.Cur = saved
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		return err
	}
	if err := h.Append("three"); err != nil {
		return fmt.Errorf("Append after raising the limit: %w", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "one\ntwo\nthree\n" {
		return fmt.Errorf("after the next append the file is %q (%v), want %q", b, err, "one\ntwo\nthree\n")
	}
	return nil
}

// TestAppendStartsOwnLine: a file that does not end in a newline (a line
// cut short by a crash, or another program) gets one before the appended
// record, so the record is a line of its own; an empty file, and one that
// ends in a newline, get nothing more than the record. The same holds for
// a History opened before the file lost its newline.
func TestAppendStartsOwnLine(t *testing.T) {
	for _, tc := range []struct{ name, before, want string }{
		{"no trailing newline", "partial", "partial\nnext line\n"},
		{"lines then a cut one", "one\ntwo\npart", "one\ntwo\npart\nnext line\n"},
		{"empty", "", "next line\n"},
		{"trailing newline", "one\ntwo\n", "one\ntwo\nnext line\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "portsentry.history")
			if err := os.WriteFile(path, []byte(tc.before), 0o600); err != nil {
				t.Fatal(err)
			}
			h, err := OpenHistory(path)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			if err := h.Append("next line"); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(path); string(b) != tc.want {
				t.Errorf("file %q, want %q", b, tc.want)
			}
		})
	}
	t.Run("cut after open", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "portsentry.history")
		h, err := OpenHistory(path)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if err := h.Append("one"); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("cut")
		f.Close()
		if err := h.Append("two"); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != "one\ncut\ntwo\n" {
			t.Errorf("file %q, want %q", b, "one\ncut\ntwo\n")
		}
	})
}

// TestAppendLockExclusive: Append takes the lock exclusively, so it waits
// while a reader holds it shared (ReadFileLocked), which therefore never
// sees an append half-done.
func TestAppendLockExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portsentry.history")
	h, err := OpenHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lf, err := os.Open(path + LockSuffix)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Append("one") }()
	select {
	case err := <-done:
		t.Fatalf("Append returned (%v) while a shared lock was held", err)
	case <-time.After(200 * time.Millisecond):
	}
	syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Append still waiting after the shared lock was released")
	}
	if b, _ := os.ReadFile(path); string(b) != "one\n" {
		t.Errorf("file %q", b)
	}
}
