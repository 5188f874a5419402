package records

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Tunables of the safe file handling, in one place.
const (
	// LockSuffix is appended to a file's path to name the lock file that
	// RewriteFile holds an exclusive flock(2) on for the whole
	// read-modify-write. The file itself cannot be the lock: rename(2)
	// puts a new inode in its place, so a writer that opened the old one
	// would hold a lock on a file nobody else sees any more. The lock file
	// is created (mode 0600) on first use and left in place: deleting it
	// would let two writers lock two different inodes.
	LockSuffix = ".scanwarden.lock"
	// maxFileSize bounds what is read into memory. hosts.deny files that
	// other tools (denyhosts, sshguard) fill can reach a few MiB; 64 MiB is
	// far beyond any sane one and still harmless to hold.
	maxFileSize = 64 << 20
	// lockTimeout is how long RewriteFile waits for another process's
	// lock (a `scanwarden unblock` racing the daemon) before giving up
	// with an error that names the lock file. A rewrite takes
	// milliseconds; ten seconds means the holder is stuck.
	lockTimeout = 10 * time.Second
	// lockPollMin and lockPollMax bound the back-off between attempts
	// to take a contended lock (flock cannot be interrupted by a
	// context, so it is polled non-blocking).
	lockPollMin = 500 * time.Microsecond
	lockPollMax = 20 * time.Millisecond
	// rewriteAttempts is how often a rewrite is tried again when the
	// file changed between being read and being replaced: a writer that
	// does not use our lock (an editor, fail2ban's hostsdeny action
	// appending with `>>`) got in between, and its change must not be
	// lost.
	rewriteAttempts = 5
)

// errChanged says the file changed while it was being rewritten.
var errChanged = errors.New("changed by another writer while being rewritten")

// CheckPath reports whether path may be read and replaced by scanwarden:
// it must not be a symbolic link, must be a regular file when it exists,
// and neither it nor the directory holding it may be world-writable (a
// world-writable file or directory lets any local user add or remove
// blocks). The error says which rule was broken and names the file or
// directory. It returns the file's Lstat information, or nil (and no
// error) when the file does not exist.
func CheckPath(path string) (fs.FileInfo, error) {
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: directory: %w", path, err)
	}
	if !di.IsDir() {
		return nil, fmt.Errorf("%s: %s is not a directory", path, dir)
	}
	if di.Mode().Perm()&0o002 != 0 {
		return nil, fmt.Errorf("%s: refusing to use it: its directory %s is world-writable (mode %04o)", path, dir, di.Mode().Perm())
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := checkInfo(path, fi); err != nil {
		return nil, err
	}
	return fi, nil
}

// checkInfo applies CheckPath's rules to the file itself.
func checkInfo(path string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s: refusing to use a symbolic link (point the configuration at the real file)", path)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s: not a regular file (%s)", path, fi.Mode().Type())
	case fi.Mode().Perm()&0o002 != 0:
		return fmt.Errorf("%s: refusing to use it: the file is world-writable (mode %04o)", path, fi.Mode().Perm())
	}
	return nil
}

// ReadFile returns the contents of path after CheckPath's checks; the file
// is opened without following a symbolic link. A missing file is an error
// that satisfies errors.Is(err, fs.ErrNotExist). Files larger than 64 MiB
// are refused.
func ReadFile(path string) ([]byte, error) {
	fi, err := CheckPath(path)
	if err != nil {
		return nil, err
	}
	if fi == nil {
		return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
	}
	data, _, err := readNoFollow(path)
	return data, err
}

// readNoFollow reads path, refusing a symbolic link, a non-regular file,
// a world-writable one or one over maxFileSize, and returns its stat.
func readNoFollow(path string) ([]byte, *syscall.Stat_t, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, nil, fmt.Errorf("%s: refusing to use a symbolic link (point the configuration at the real file)", path)
		}
		return nil, nil, err // *PathError names the file
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if err := checkInfo(path, fi); err != nil {
		return nil, nil, err
	}
	if fi.Size() > maxFileSize {
		return nil, nil, fmt.Errorf("%s: %d bytes, more than the %d this program reads", path, fi.Size(), maxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, nil, fmt.Errorf("%s: more than the %d bytes this program reads", path, maxFileSize)
	}
	return data, fi.Sys().(*syscall.Stat_t), nil
}

// EditFunc computes a file's new contents from its current ones (nil when
// the file does not exist). It returns changed == false to leave the file
// exactly as it is; it must not keep old or modify it in place.
type EditFunc func(old []byte) (updated []byte, changed bool, err error)

// RewriteFile replaces the contents of path with what edit makes of them,
// so that every reader sees either the old file or the new one, never a
// mix, and a crash leaves one of the two:
//
//   - path and its directory pass CheckPath (no symlink, not
//     world-writable), checked again under the lock;
//   - concurrent RewriteFile calls, in this process or another, are
//     serialised by an exclusive flock(2) on path+LockSuffix, held from
//     the read to the rename;
//   - the new contents go to a temporary file in the same directory,
//     which gets the old file's mode, owner and group (a missing file is
//     created with perm, owned by the calling process's user and group),
//     is fsynced and renamed over path; the directory is then fsynced;
//   - when edit reports no change, nothing is written;
//   - on any error the temporary file is removed and path is untouched;
//   - a writer that does not take the lock (an editor, `echo >>`) and
//     changes the file between the read and the rename is detected by
//     its inode, size and times, and the rewrite starts over from its
//     version, so its change is kept.
//
// Extended attributes (ACLs, SELinux labels) of the old file are not
// copied, and a hard link to it keeps pointing at the old contents.
func RewriteFile(ctx context.Context, path string, perm fs.FileMode, edit EditFunc) error {
	return rewriter{}.rewrite(ctx, path, perm, edit)
}

// rewriter does RewriteFile's work; fault, set only by tests, injects an
// error at a named step.
type rewriter struct {
	fault func(step string) error
}

func (r rewriter) inject(step string) error {
	if r.fault == nil {
		return nil
	}
	return r.fault(step)
}

func (r rewriter) rewrite(ctx context.Context, path string, perm fs.FileMode, edit EditFunc) error {
	if _, err := CheckPath(path); err != nil {
		return err
	}
	unlock, err := lockFile(ctx, path+LockSuffix)
	if err != nil {
		return err
	}
	defer unlock()
	for attempt := 1; ; attempt++ {
		err := r.once(path, perm, edit)
		if !errors.Is(err, errChanged) || attempt == rewriteAttempts {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
}

// once is one read-modify-write under the lock.
func (r rewriter) once(path string, perm fs.FileMode, edit EditFunc) error {
	fi, err := CheckPath(path)
	if err != nil {
		return err
	}
	var old []byte
	var st *syscall.Stat_t
	if fi != nil {
		old, st, err = readNoFollow(path)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", path, errChanged)
		}
		if err != nil {
			return err
		}
	}
	updated, changed, err := edit(old)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if !changed {
		return nil
	}
	dir, base := filepath.Split(path)
	tmp, err := os.CreateTemp(dir, "."+base+".scanwarden-*")
	if err != nil {
		return fmt.Errorf("%s: creating the temporary file: %w", path, err)
	}
	tmpName := tmp.Name()
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	step := func(name string, err error) error {
		if err == nil {
			err = r.inject(name)
		}
		if err != nil {
			return fmt.Errorf("%s: %s of temporary file %s: %w", path, name, tmpName, err)
		}
		return nil
	}
	_, err = tmp.Write(updated)
	if err := step("write", err); err != nil {
		return err
	}
	mode, uid, gid := perm.Perm(), os.Getuid(), os.Getgid()
	if st != nil {
		mode = fs.FileMode(st.Mode & 0o777)
		uid, gid = int(st.Uid), int(st.Gid)
	}
	// Chmod with the special bits too (setgid on a hosts.deny would be
	// odd, but it is the administrator's): os.FileMode keeps them apart.
	if err := step("chmod", chmodExact(tmp, mode, st)); err != nil {
		return err
	}
	// chown only when needed: a daemon without CAP_CHOWN can still write a
	// file it owns, and chown to the owner it already has always works.
	tfi, err := tmp.Stat()
	if err != nil {
		return step("stat", err)
	}
	tst := tfi.Sys().(*syscall.Stat_t)
	var chownErr error
	if int(tst.Uid) != uid || int(tst.Gid) != gid {
		chownErr = tmp.Chown(uid, gid)
	}
	if err := step("chown", chownErr); err != nil {
		return err
	}
	if st != nil && st.Mode&0o7000 != 0 {
		// chown clears setuid/setgid: set the exact mode again.
		if err := step("chmod", chmodExact(tmp, mode, st)); err != nil {
			return err
		}
	}
	if err := step("fsync", tmp.Sync()); err != nil {
		return err
	}
	if err := step("close", tmp.Close()); err != nil {
		return err
	}
	// Someone who does not take our lock may have changed the file since
	// we read it; start again from their version rather than lose it.
	now, err := os.Lstat(path)
	switch {
	case st == nil && err == nil:
		return fmt.Errorf("%s: %w", path, errChanged)
	case st != nil && err != nil:
		return fmt.Errorf("%s: %w", path, errChanged)
	case st != nil && !sameFile(st, now.Sys().(*syscall.Stat_t)):
		return fmt.Errorf("%s: %w", path, errChanged)
	}
	// the fault is injected before the rename: after it, there is
	// nothing left to undo
	if err := r.inject("rename"); err != nil {
		return step("rename", err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return step("rename", err)
	}
	done = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("%s: replaced, but syncing its directory failed (the change may not survive a crash): %w", path, err)
	}
	return nil
}

// chmodExact sets mode plus the setuid, setgid and sticky bits st had.
func chmodExact(f *os.File, mode fs.FileMode, st *syscall.Stat_t) error {
	if st != nil {
		if st.Mode&syscall.S_ISUID != 0 {
			mode |= fs.ModeSetuid
		}
		if st.Mode&syscall.S_ISGID != 0 {
			mode |= fs.ModeSetgid
		}
		if st.Mode&syscall.S_ISVTX != 0 {
			mode |= fs.ModeSticky
		}
	}
	return f.Chmod(mode)
}

// sameFile reports whether b is the very file a was, unchanged.
func sameFile(a, b *syscall.Stat_t) bool {
	return a.Dev == b.Dev && a.Ino == b.Ino && a.Size == b.Size &&
		a.Mtim == b.Mtim && a.Ctim == b.Ctim
}

// syncDir fsyncs a directory so that a rename in it is durable.
func syncDir(dir string) error {
	if dir == "" {
		dir = "."
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// openLock opens (creating it 0600 when missing) the lock file path,
// refusing a symbolic link or anything but a regular file.
func openLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("lock file %s: refusing to use a symbolic link", path)
		}
		return nil, fmt.Errorf("lock file: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	return f, nil
}

// flock takes a flock(2) of kind how (LOCK_EX or LOCK_SH) on f, named
// path in errors, waiting at most lockTimeout or until ctx is done.
func flock(ctx context.Context, f *os.File, path string, how int) error {
	deadline := time.Now().Add(lockTimeout)
	wait := lockPollMin
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			return fmt.Errorf("locking %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("locking %s: held by another process for more than %s", path, lockTimeout)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("locking %s: %w", path, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, lockPollMax)
	}
}

// lockFile takes an exclusive flock on the lock file path and returns the
// function that releases it.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := openLock(path)
	if err != nil {
		return nil, err
	}
	if err := flock(ctx, f, path, syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil // closing the last descriptor releases the lock
}
