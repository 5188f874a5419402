package command

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func needSh(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
}

func TestExecRunnerOutputAndExit(t *testing.T) {
	needSh(t)
	ctx := t.Context()
	out, err := ExecRunner{}.Run(ctx, []string{"/bin/sh", "-c", `echo out; echo err >&2; pwd; cat; echo "$#:$1"`, "sh", "a b"})
	if err != nil {
		t.Fatal(err)
	}
	// stdout and stderr combined, stdin empty (/dev/null), cwd /
	if got, want := string(out), "out\nerr\n/\n1:a b\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}

	out, err = ExecRunner{}.Run(ctx, []string{"/bin/sh", "-c", "echo failing; exit 3"})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || ee.Status != "exit status 3" {
		t.Fatalf("err = %v, want exit status 3", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "/bin/sh -c") || !strings.Contains(msg, "exit status 3") {
		t.Errorf("error %q does not name the command and the status", msg)
	}
	if string(out) != "failing\n" {
		t.Errorf("output on failure %q", out)
	}

	_, err = ExecRunner{}.Run(ctx, []string{"/bin/sh", "-c", "kill -SEGV $$"})
	if !errors.As(err, &ee) || ee.Code != -1 || !strings.Contains(ee.Status, "signal") {
		t.Errorf("err = %v, want a signal", err)
	}

	_, err = ExecRunner{}.Run(ctx, []string{"/nonexistent/prog", "x"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/prog") {
		t.Errorf("err = %v, want one naming the missing program", err)
	}
	_, err = ExecRunner{}.Run(ctx, []string{"scanwarden-no-such-program-anywhere"})
	if err == nil || !strings.Contains(err.Error(), "scanwarden-no-such-program-anywhere") {
		t.Errorf("err = %v, want one naming the missing program", err)
	}
	if _, err := (ExecRunner{}).Run(ctx, nil); err == nil {
		t.Error("empty argv: no error")
	}
	// a bare name is looked up in PATH
	if out, err := (ExecRunner{}).Run(ctx, []string{"sh", "-c", "echo found"}); err != nil || string(out) != "found\n" {
		t.Errorf("bare name: %q, %v", out, err)
	}
}

func TestExecRunnerCapsOutput(t *testing.T) {
	needSh(t)
	out, err := ExecRunner{}.Run(t.Context(), []string{"/bin/sh", "-c", "head -c 200000 /dev/zero; echo; echo done"})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < MaxOutput || len(out) > MaxOutput+200 {
		t.Fatalf("output %d bytes, want just over %d", len(out), MaxOutput)
	}
	if !strings.HasSuffix(string(out), "[scanwarden: output truncated, 134470 more bytes discarded]\n") {
		t.Errorf("no or wrong truncation note: %q", out[MaxOutput-10:])
	}
}

// alive reports whether pid exists (and is not a zombie we could reap).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// state is the field after "(comm)"
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

func TestExecRunnerTimeoutKillsGroup(t *testing.T) {
	needSh(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	_, err := ExecRunner{Timeout: 300 * time.Millisecond}.Run(t.Context(),
		[]string{"/bin/sh", "-c", `sleep 60 & echo $! > "$1"; wait`, "sh", pidFile})
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "300ms timeout") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if elapsed > 10*time.Second {
		t.Errorf("Run took %v to give up", elapsed)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the command's child %d survived the timeout", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExecRunnerContextCanceled(t *testing.T) {
	needSh(t)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err := ExecRunner{}.Run(ctx, []string{"/bin/sh", "-c", "sleep 60"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// TestExecRunnerBackgroundChild: a command that exits 0 but leaves a
// process holding its output open is a success, and does not hold Run up
// for long; the process is left alone.
func TestExecRunnerBackgroundChild(t *testing.T) {
	needSh(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	out, err := ExecRunner{}.Run(t.Context(), []string{"/bin/sh", "-c", `sleep 60 & echo $! > "$1"; echo started`, "sh", pidFile})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "started\n" {
		t.Errorf("output %q", out)
	}
	if d := time.Since(start); d > waitDelay+5*time.Second {
		t.Errorf("Run took %v", d)
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 || !alive(pid) {
		t.Errorf("background child %d was killed", pid)
	}
	if pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func TestFakeRunner(t *testing.T) {
	boom := errors.New("boom")
	f := &FakeRunner{
		Results: []FakeResult{{Output: []byte("one")}, {Err: boom}},
		Default: FakeResult{Output: []byte("default")},
	}
	ctx := t.Context()
	argv := []string{"/sbin/route", "add", "192.0.2.1"}
	if out, err := f.Run(ctx, argv); string(out) != "one" || err != nil {
		t.Errorf("call 1: %q %v", out, err)
	}
	argv[2] = "changed by the caller"
	if _, err := f.Run(ctx, []string{"/b"}); err != boom {
		t.Errorf("call 2: %v", err)
	}
	if out, err := f.Run(ctx, []string{"/c"}); string(out) != "default" || err != nil {
		t.Errorf("call 3: %q %v", out, err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.Run(canceled, []string{"/d"}); !errors.Is(err, context.Canceled) {
		t.Errorf("call 4: %v", err)
	}
	calls := f.Calls()
	want := [][]string{{"/sbin/route", "add", "192.0.2.1"}, {"/b"}, {"/c"}, {"/d"}}
	if !slices.EqualFunc(calls, want, slices.Equal) {
		t.Errorf("calls %q, want %q", calls, want)
	}
	calls[0][0] = "x"
	if f.Calls()[0][0] != "/sbin/route" {
		t.Error("Calls does not return a copy")
	}

	g := &FakeRunner{Func: func(_ context.Context, argv []string) ([]byte, error) {
		return []byte(strings.Join(argv, ",")), nil
	}}
	if out, _ := g.Run(ctx, []string{"a", "b"}); string(out) != "a,b" {
		t.Errorf("Func: %q", out)
	}
}
