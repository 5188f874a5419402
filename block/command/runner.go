package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// DefaultTimeout is how long ExecRunner lets a command run when its
	// Timeout is not set. A route or firewall command takes milliseconds;
	// a notification script that talks to a mail or chat server may take
	// seconds; one still running after 30 s is stuck, and blocks are
	// waiting behind it.
	DefaultTimeout = 30 * time.Second
	// MaxOutput is how much of a command's combined standard output and
	// error ExecRunner keeps for the log; the rest is read and discarded
	// so that the command never blocks on a full pipe.
	MaxOutput = 64 << 10
	// waitDelay is how long ExecRunner waits for the output pipe to close
	// once the command has exited (or been killed): a background process
	// the command left behind may hold it open, and must not hold up the
	// daemon.
	waitDelay = 2 * time.Second
)

// errEmpty is the error of running no command at all.
var errEmpty = errors.New("command: no program to run (Template.Argv gives none for an invalid address or mode; see Template.Check)")

// Runner runs one command, given as argv (argv[0] the program), and
// returns its combined standard output and error. Implementations never
// involve a shell.
type Runner interface {
	// Run runs argv to completion or until ctx is done, and returns its
	// output (possibly partial) along with any error.
	Run(ctx context.Context, argv []string) (output []byte, err error)
}

// ExecRunner runs commands with os/exec: no shell; argv[0] an absolute
// path or a name looked up in PATH (never in the current directory);
// standard input /dev/null; working directory /; the daemon's
// environment; its own process group. When Timeout (DefaultTimeout if
// zero or negative) passes or ctx is done first, the whole process group
// is killed with SIGKILL. Background processes a command leaves behind
// after exiting normally are left alone (as PortSentry's system(3) left
// them); their output stops being read after 2 s. At most MaxOutput
// bytes of output are kept, and a line saying so is added when more was
// written.
type ExecRunner struct {
	Timeout time.Duration
}

var _ Runner = ExecRunner{}

// ExitError is the error of a command that ran and failed (a non-zero
// exit status or a signal).
type ExitError struct {
	// Argv is the command.
	Argv []string
	// Status is what the process ended with, e.g. "exit status 2" or
	// "signal: segmentation fault".
	Status string
	// Code is the exit status, -1 when the process was killed by a
	// signal.
	Code int
}

// Error names the command and how it ended.
func (e *ExitError) Error() string {
	return fmt.Sprintf("command %s: %s", quoteArgv(e.Argv), e.Status)
}

// quoteArgv renders argv for an error message, each word quoted when it
// is not plain.
func quoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsFunc(a, func(r rune) bool {
			return r <= ' ' || r == '"' || r == '\'' || r == '\\' || r > '~'
		}) {
			q[i] = fmt.Sprintf("%q", a)
		} else {
			q[i] = a
		}
	}
	return "`" + strings.Join(q, " ") + "`"
}

// cappedBuffer keeps the first max bytes written to it and counts the
// rest.
type cappedBuffer struct {
	mu      sync.Mutex
	buf     []byte
	max     int
	dropped int64
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.max - len(c.buf)
	if room > len(p) {
		room = len(p)
	}
	if room > 0 {
		c.buf = append(c.buf, p[:room]...)
	}
	c.dropped += int64(len(p) - max(room, 0))
	return len(p), nil
}

func (c *cappedBuffer) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dropped == 0 {
		return c.buf
	}
	out := c.buf
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, fmt.Sprintf("[scanwarden: output truncated, %d more bytes discarded]\n", c.dropped)...)
}

// Run runs argv as described on ExecRunner. The error names the command
// and says how it ended: an *ExitError for a non-zero exit or a signal,
// an error wrapping context.DeadlineExceeded that gives the timeout when
// it was killed for taking too long, the context's error when ctx was
// done, or the reason it could not be started (not found, not
// executable). The output read so far is returned with any error.
func (r ExecRunner) Run(ctx context.Context, argv []string) ([]byte, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errEmpty
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, argv[0], argv[1:]...)
	cmd.Dir = "/"
	cmd.Stdin = nil // /dev/null
	out := &cappedBuffer{max: MaxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// the command and everything it started: its process group
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if err == syscall.ESRCH {
			return os.ErrProcessDone
		}
		return err
	}
	cmd.WaitDelay = waitDelay
	err := cmd.Run()
	output := out.bytes()
	if err == nil {
		return output, nil
	}
	if ctx.Err() != nil {
		return output, fmt.Errorf("command %s: %w", quoteArgv(argv), ctx.Err())
	}
	if runCtx.Err() != nil && cmd.ProcessState != nil {
		return output, fmt.Errorf("command %s: killed (with its process group) after the %s timeout: %w", quoteArgv(argv), timeout, context.DeadlineExceeded)
	}
	if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		// exited 0 but left a process holding the output open: a success
		return output, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return output, &ExitError{Argv: append([]string(nil), argv...), Status: ee.ProcessState.String(), Code: ee.ExitCode()}
	}
	return output, fmt.Errorf("command %s: %w", quoteArgv(argv), err)
}

// FakeResult is what a FakeRunner call returns.
type FakeResult struct {
	// Output is returned as the command's output.
	Output []byte
	// Err is returned as the command's error.
	Err error
}

// FakeRunner is a Runner for tests: it records every call and returns
// scripted results, running nothing. Set Results (returned in order, then
// Default for every further call) or Func (which decides every result
// and wins over Results) before the first call. It is safe for
// concurrent use.
type FakeRunner struct {
	Results []FakeResult
	Default FakeResult
	Func    func(ctx context.Context, argv []string) ([]byte, error)

	mu    sync.Mutex
	calls [][]string
	next  int
}

var _ Runner = (*FakeRunner)(nil)

// Run records argv (a copy) and returns the next scripted result. An
// empty argv is refused with ExecRunner's error, and not recorded. When
// ctx is done already it records the call and returns ctx's error, as a
// real runner would fail to start.
func (f *FakeRunner) Run(ctx context.Context, argv []string) ([]byte, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errEmpty
	}
	f.mu.Lock()
	f.calls = append(f.calls, append([]string(nil), argv...))
	res := f.Default
	if f.next < len(f.Results) {
		res = f.Results[f.next]
		f.next++
	}
	fn := f.Func
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if fn != nil {
		return fn(ctx, argv)
	}
	return res.Output, res.Err
}

// Calls returns a copy of the argv of every call so far, in order.
func (f *FakeRunner) Calls() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]string, len(f.calls))
	for i, c := range f.calls {
		out[i] = append([]string(nil), c...)
	}
	return out
}
