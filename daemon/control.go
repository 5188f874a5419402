package daemon

// The control socket: `scanwarden reload` asks the running daemon to
// reload and waits for its verdict, so that `systemctl reload` (its
// ExecReload) fails with the daemon's own error when the config is
// refused, and returns only once the new config is in force.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// DefaultControlSocket is where `scanwarden reload` asks when it runs
// outside the unit (whose RUNTIME_DIRECTORY says where): the unit's
// RuntimeDirectory.
const DefaultControlSocket = "/run/scanwarden/control.sock"

// Control socket tunables.
const (
	// controlReadTimeout bounds the wait for a client's request line.
	controlReadTimeout = 5 * time.Second
	// controlLineMax bounds a request line.
	controlLineMax = 64
	// ReloadTimeout bounds `scanwarden reload`'s wait for the verdict: a
	// reload restores every ban into a new backend at most, which takes
	// seconds with iptables and many bans; systemd's own limit for
	// ExecReload (TimeoutStartSec, 90 s by default) is above it.
	ReloadTimeout = 60 * time.Second
)

// reloadReq is a reload asked through the control socket; the
// housekeeping answers on done (nil: the new config is in force).
type reloadReq struct{ done chan error }

// listenControl binds the control socket at path (nil, nil for an empty
// path). A socket file left by a daemon that is gone is replaced; one a
// running daemon answers on is left to it (an error). The socket is made
// 0600: root and the daemon's own user may reload it.
func listenControl(path string) (*net.UnixListener, error) {
	if path == "" {
		return nil, nil
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: a file that is not a socket is in the way", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another scanwarden answers on it", path)
		}
		os.Remove(path) // a dead daemon's
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// serveControl answers the control socket's clients until ctx ends: one
// request line each ("reload"), one answer line ("ok", or "refused: " and
// the reason).
func (d *daemon) serveControl(ctx context.Context, ln *net.UnixListener) {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				d.log.Errorf("control socket: %v", err)
			}
			return
		}
		go d.controlClient(ctx, c)
	}
}

// controlClient serves one client: root or the daemon's own user only.
func (d *daemon) controlClient(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	if uid, ok := peerUID(c); !ok || uid != 0 && int(uid) != os.Getuid() {
		fmt.Fprintf(c, "refused: only root and uid %d may control this daemon\n", os.Getuid())
		return
	}
	c.SetReadDeadline(time.Now().Add(controlReadTimeout))
	line, err := bufio.NewReaderSize(c, controlLineMax).ReadSlice('\n')
	if err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	switch cmd := strings.TrimSpace(string(line)); cmd {
	case "reload":
		req := reloadReq{done: make(chan error, 1)}
		select {
		case d.reloads <- req:
		case <-ctx.Done():
			fmt.Fprintln(c, "refused: the daemon is stopping")
			return
		}
		select {
		case err := <-req.done:
			if err != nil {
				fmt.Fprintf(c, "refused: %s\n", oneLine(err.Error()))
				return
			}
			fmt.Fprintln(c, "ok")
		case <-ctx.Done():
			fmt.Fprintln(c, "refused: the daemon is stopping")
		}
	default:
		fmt.Fprintf(c, "refused: unknown command %q\n", cmd)
	}
}

// oneLine makes a multi-line error (every problem of a config) one line
// of the answer, its lines joined by " | ".
func oneLine(s string) string { return strings.Join(strings.Split(strings.TrimSpace(s), "\n"), " | ") }

// peerUID is the uid of the process at the other end of c.
func peerUID(c *net.UnixConn) (uint32, bool) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return 0, false
	}
	return cred.Uid, true
}

// Reload asks the daemon listening on the control socket at path to
// reload its config, and waits (ReloadTimeout at most) for its verdict:
// nil once the new config is in force, or the daemon's reason for
// refusing it.
func Reload(path string) error {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return fmt.Errorf("no scanwarden daemon answers on %s: %w", path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ReloadTimeout))
	if _, err := fmt.Fprintln(c, "reload"); err != nil {
		return fmt.Errorf("asking the daemon to reload: %w", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("waiting for the daemon's verdict: %w", err)
	}
	switch line = strings.TrimSpace(line); {
	case line == "ok":
		return nil
	case strings.HasPrefix(line, "refused: "):
		return &RefusedError{Reason: strings.ReplaceAll(strings.TrimPrefix(line, "refused: "), " | ", "\n")}
	}
	return fmt.Errorf("the daemon answered %q", line)
}

// RefusedError is the daemon's refusal of a reload: the running config
// stays.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string {
	return "the daemon refused the new config and keeps the running one:\n" + e.Reason
}
