package daemon

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"
)

// TestControlReload: `scanwarden reload` gets the housekeeping's verdict
// through the socket: nil once the reload is done, the daemon's reason
// (every line of it) when it refused; other requests are refused.
func TestControlReload(t *testing.T) {
	log, _ := test.NewNullLogger()
	d := &daemon{log: log, reloads: make(chan reloadReq)}
	path := filepath.Join(t.TempDir(), "control.sock")
	ln, err := listenControl(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go d.serveControl(ctx, ln)
	verdicts := []error{nil, errors.New("/etc/scanwarden/scanwarden.conf:3: BLOCK_TCP: must be 0, 1 or 2\n/etc/scanwarden/scanwarden.conf:9: TRAP_HOLD: must be from 1s to 1m0s")}
	go func() { // the housekeeping
		for _, v := range verdicts {
			req := <-d.reloads
			req.done <- v
		}
	}()
	if err := Reload(path); err != nil {
		t.Fatalf("a reload done: %v", err)
	}
	err = Reload(path)
	var re *RefusedError
	if !errors.As(err, &re) || re.Reason != verdicts[1].Error() {
		t.Fatalf("a refused reload: %v", err)
	}
	// an unknown request
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("shutdown\n"))
	buf := make([]byte, 100)
	n, _ := c.Read(buf)
	c.Close()
	if !strings.HasPrefix(string(buf[:n]), `refused: unknown command "shutdown"`) {
		t.Fatalf("unknown command: %q", buf[:n])
	}
	// a second daemon does not take the socket of a running one
	if _, err := listenControl(path); err == nil || !strings.Contains(err.Error(), "another scanwarden answers") {
		t.Fatalf("second daemon: %v", err)
	}
	cancel()
	// once the daemon has stopped: the file is gone, Reload says so
	for i := 0; ; i++ {
		if _, err := os.Lstat(path); err != nil {
			break
		}
		if i == 100 {
			t.Fatal("the socket file stays after the daemon stopped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := Reload(path); err == nil || !strings.Contains(err.Error(), "no scanwarden daemon answers on "+path) {
		t.Fatalf("no daemon: %v", err)
	}
}

// TestControlStaleSocket: a socket file a dead daemon left is replaced;
// a file that is not a socket is not touched.
func TestControlStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "control.sock")
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close() // the file stays, nobody listens: a crashed daemon's
	ln, err := listenControl(path)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	ln.Close()
	other := filepath.Join(dir, "plain")
	os.WriteFile(other, []byte("data"), 0o644)
	if _, err := listenControl(other); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("plain file: %v", err)
	}
	if b, _ := os.ReadFile(other); string(b) != "data" {
		t.Fatal("the plain file was changed")
	}
	if ln, err := listenControl(""); ln != nil || err != nil {
		t.Fatalf("empty path: %v %v", ln, err)
	}
}
