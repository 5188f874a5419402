package records

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/scanwarden/scanwarden/internal/safefile"
)

// historyPerm is the mode of a history or blocked file scanwarden creates.
// PortSentry 1.2 created them with whatever its umask allowed (0644 under
// the usual 022); the files say who was blocked when, so scanwarden keeps
// them to root. An existing file keeps its mode.
const historyPerm fs.FileMode = 0o600

// History is an open PortSentry history file or blocked file, appended to
// one line at a time. It is safe for concurrent use, and lines appended by
// several Histories or processes to the same file never interleave.
//
// Each Append holds an exclusive flock(2) on the file's lock
// (PATH.scanwarden.lock, or the one WithLockDir names: the lock RewriteFile
// and ReadFileLocked take too), so scanwarden's appends, rewrites and
// locked reads of the file exclude each other; it completes first a
// journal an interrupted in-place rewrite left (see RewriteFile), and
// reopens the path when the file there is no longer the one it has open:
// a blocked file rewritten by RemoveFromBlocked, or a history file moved
// away by logrotate, gets the line, never the replaced file.
type History struct {
	path string
	opts options
	mu   sync.Mutex
	f    *os.File
	// readable is false when f could only be opened write-only (a
	// file the process may write but not read): Append then cannot
	// check the last byte.
	readable bool
	dev      uint64
	ino      uint64
	lock     *os.File
}

// OpenHistory opens path for appending, creating it with mode 0600 when it
// does not exist, and its lock file (path + LockSuffix, or in the
// directory of WithLockDir; 0600). It refuses a symbolic link (the file is
// opened with O_NOFOLLOW, so a link put in place after the check is
// refused too), a path that is not a regular file, a file of more than
// one hard link (also when the file is reopened), and a world-writable
// file or directory; the error names the file. A journal an interrupted
// in-place rewrite of path left is completed first.
func OpenHistory(path string, opts ...Option) (*History, error) {
	if _, err := CheckPath(path); err != nil {
		return nil, err
	}
	o := makeOptions(opts)
	if err := o.prepare(); err != nil {
		return nil, err
	}
	lock, err := openLock(o.lockPath(path))
	if err != nil {
		return nil, err
	}
	if err := (rewriter{}).lockAndRecover(context.Background(), lock, path, o, syscall.LOCK_EX); err != nil {
		lock.Close()
		return nil, err
	}
	syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	h := &History{path: path, opts: o, lock: lock}
	if err := h.open(); err != nil {
		lock.Close()
		return nil, err
	}
	return h, nil
}

// open (re)opens the file at h.path through safefile.Open: its directory
// not world-writable, O_NOFOLLOW, a regular file, not world-writable, and
// of one hard link (a link is no file of scanwarden's). It
// opens it for reading too, so that Append can read the last byte, and
// write-only when reading is not permitted.
func (h *History) open() error {
	readable := true
	f, err := safefile.Open(h.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, historyPerm)
	if errors.Is(err, fs.ErrPermission) {
		readable = false
		f, err = safefile.Open(h.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, historyPerm)
	}
	if err != nil {
		if _, ok := err.(*fs.PathError); ok {
			err = fmt.Errorf("opening history file: %w", err)
		}
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("opening history file: %w", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Nlink > 1 {
		// a hard link planted in the directory would have the lines
		// appended to another file (one the daemon's user owns)
		f.Close()
		return fmt.Errorf("opening history file %s: refusing a file with %d hard links: it may be another file linked there; give it a path of its own", h.path, st.Nlink)
	}
	if h.f != nil {
		h.f.Close()
	}
	h.f, h.readable, h.dev, h.ino = f, readable, st.Dev, st.Ino
	return nil
}

// Path returns the file's path.
func (h *History) Path() string { return h.path }

// Append adds line and a newline to the end of the file in a single
// write(2) on an O_APPEND descriptor, under the exclusive lock (see
// History for the lock and the reopening), so concurrent appenders
// (goroutines or processes) never interleave their lines. line must be
// one line: a trailing newline is accepted, any other newline or carriage
// return is an error and nothing is written.
//
// The record always starts on a line of its own: when the file is not
// empty and does not end in a newline (a line cut short by a crash or
// written by another program), a newline is written before it, in the
// same write. (A file the process may write but not read cannot be
// checked, and is appended to as it is.)
//
// A failed append leaves the file as it was: when the write is short (a
// full disk, a file-size limit), the bytes it did write are truncated
// away, and the error names the file and says how many bytes were
// written, and whether the truncation failed too.
func (h *History) Append(line string) error {
	line = strings.TrimSuffix(line, "\n")
	if strings.ContainsAny(line, "\n\r") {
		return fmt.Errorf("%s: refusing to append a line with a line break in it: %q", h.path, line)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.f == nil {
		return fmt.Errorf("appending to %s: %w", h.path, os.ErrClosed)
	}
	if err := (rewriter{}).lockAndRecover(context.Background(), h.lock, h.path, h.opts, syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(h.lock.Fd()), syscall.LOCK_UN)
	fi, err := os.Lstat(h.path)
	if err != nil || fi.Sys().(*syscall.Stat_t).Dev != h.dev || fi.Sys().(*syscall.Stat_t).Ino != h.ino {
		if err := h.open(); err != nil {
			return err
		}
	}
	fi, err = h.f.Stat()
	if err != nil {
		return fmt.Errorf("appending to %s: %w", h.path, err)
	}
	size := fi.Size()
	buf := make([]byte, 0, len(line)+2)
	if size > 0 && h.readable {
		last := make([]byte, 1)
		if _, err := h.f.ReadAt(last, size-1); err != nil {
			return fmt.Errorf("appending to %s: reading its last byte: %w", h.path, err)
		}
		if last[0] != '\n' {
			buf = append(buf, '\n')
		}
	}
	buf = append(append(buf, line...), '\n')
	rc, err := h.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("appending to %s: %w", h.path, err)
	}
	var n int
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), buf)
			if werr != syscall.EINTR {
				return true
			}
		}
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		// write(2) failed: it wrote nothing (a short write returns its count)
		return fmt.Errorf("appending to %s: %w", h.path, err)
	}
	if n != len(buf) {
		// a line cut short, which the next one would be joined to: cut it
		// off, the file goes back to what it was
		if err := h.f.Truncate(size); err != nil {
			return fmt.Errorf("appending to %s: short write, %d of %d bytes (disk full?), and truncating the partial line off failed, the file ends in it: %w", h.path, n, len(buf), err)
		}
		return fmt.Errorf("appending to %s: short write, %d of %d bytes (disk full?); the partial line was truncated off", h.path, n, len(buf))
	}
	return nil
}

// Close closes the file. Appending after Close is an error.
func (h *History) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.f == nil {
		return fmt.Errorf("closing %s: %w", h.path, os.ErrClosed)
	}
	err := h.f.Close()
	h.lock.Close()
	h.f = nil
	if err != nil {
		return fmt.Errorf("closing %s: %w", h.path, err)
	}
	return nil
}

// BlockedPath returns the blocked file PortSentry 1.2 writes in mode:
// base + "." + mode, e.g. /var/lib/portsentry/portsentry.blocked.stcp. It
// returns "" when base is empty or mode is not one of Modes(), so that a
// bad mode can never name another file.
func BlockedPath(base, mode string) string {
	if base == "" || !ValidMode(mode) {
		return ""
	}
	return base + "." + mode
}

// RemoveFromBlocked rewrites the blocked file path without the history
// lines of addr (an IPv4-mapped address matches its IPv4 form), keeping
// every other line byte for byte. It uses RewriteFile (with opts):
// serialised with other writers by a lock file, written to a temporary
// file and renamed (or journaled and written in place), never
// half-written; when addr has no line, or the file does not exist,
// nothing is written. Waiting for another writer's lock is bounded (10 s).
// Lines appended meanwhile through a History are never lost: Append and
// the rewrite exclude each other. Histories of the same file must be
// opened with the same options.
func RemoveFromBlocked(path string, addr netip.Addr, opts ...Option) error {
	want := addr.Unmap().WithZone("")
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil // nothing to remove, and no lock file to leave behind
	}
	return RewriteFile(context.Background(), path, historyPerm, func(old []byte) ([]byte, bool, error) {
		if old == nil {
			return nil, false, nil
		}
		var out strings.Builder
		out.Grow(len(old))
		removed := false
		for _, line := range strings.SplitAfter(string(old), "\n") {
			if a, ok := LineAddr(line); ok && a == want {
				removed = true
				continue
			}
			out.WriteString(line)
		}
		return []byte(out.String()), removed, nil
	}, opts...)
}

// LineAddr returns the address of a history line (the part after the last
// '/' of its "Host: name/address" field), unmapped and without a zone; ok
// is false when line is not a history line. A trailing newline or CRLF is
// ignored.
func LineAddr(line string) (addr netip.Addr, ok bool) {
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if !strings.HasSuffix(line, " Blocked") {
		return netip.Addr{}, false
	}
	_, rest, found := strings.Cut(line, " Host: ")
	if !found {
		return netip.Addr{}, false
	}
	field, _, found := strings.Cut(rest, " Port: ")
	if !found {
		return netip.Addr{}, false
	}
	i := strings.LastIndexByte(field, '/')
	if i < 0 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(field[i+1:])
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}
