package records

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
	// JournalSuffix is appended to a file's path to name the journal of
	// an in-place rewrite when no lock directory is given (see
	// RewriteFile); with WithLockDir the journal is DIR/NAME.journal.
	JournalSuffix = ".scanwarden.journal"
	// lockDirPerm is the mode of a lock directory RewriteFile creates:
	// the journal in it holds the next contents of the file, which only
	// scanwarden has any business reading or writing.
	lockDirPerm fs.FileMode = 0o700
	// lockFilePerm is the mode of the lock and journal files.
	lockFilePerm fs.FileMode = 0o600
	// maxLockName bounds the length of a lock or journal file name built
	// from the guarded file's path (NAME_MAX is 255; the longest suffix,
	// ".journal.new", takes 12); longer names are shortened with a hash.
	maxLockName = 200
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

// Option changes where RewriteFile, OpenHistory, RemoveFromBlocked and
// ReadFileLocked keep a file's lock and journal.
type Option func(*options)

type options struct {
	lockDir string // "" is next to the file
}

func makeOptions(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	return o
}

// WithLockDir keeps the lock file and the journal of the guarded file in
// dir instead of next to it, as dir/NAME.lock and dir/NAME.journal, NAME
// being the file's absolute path without its leading '/', each '/' turned
// into '_' and every byte other than letters, digits, '.' and '-' written
// as %XX (so /etc/hosts.deny gives etc_hosts.deny.lock, and two files never
// share a lock); a name longer than 200 bytes is cut and ends in a hash of
// the path. dir is created (mode 0700) on first use. Every process that
// writes the file must use the same dir: it is the lock that serialises
// them.
//
// This is how a writer whose file sits in a directory it may not write (a
// service with ProtectSystem=strict and ReadWritePaths=/etc/hosts.deny:
// /etc is read-only, the file alone is writable) can still lock it, and
// journal an in-place rewrite. An empty dir is the default: next to the
// file, PATH.scanwarden.lock and PATH.scanwarden.journal.
func WithLockDir(dir string) Option {
	if dir != "" {
		dir = filepath.Clean(dir)
	}
	return func(o *options) { o.lockDir = dir }
}

// LockPath returns the lock file of path under opts (see WithLockDir).
func LockPath(path string, opts ...Option) string {
	return makeOptions(opts).lockPath(path)
}

// JournalPath returns where the journal of an in-place rewrite of path is
// kept under opts (see RewriteFile and WithLockDir).
func JournalPath(path string, opts ...Option) string {
	return makeOptions(opts).journalPath(path)
}

func (o options) lockPath(path string) string {
	if o.lockDir == "" {
		return path + LockSuffix
	}
	return filepath.Join(o.lockDir, lockName(path)+".lock")
}

func (o options) journalPath(path string) string {
	if o.lockDir == "" {
		return path + JournalSuffix
	}
	return filepath.Join(o.lockDir, lockName(path)+".journal")
}

// lockName is the file name that stands for path in a lock directory
// (see WithLockDir). Escaping '_' and every unusual byte makes it
// one-to-one: two paths never get the same name (short of a hash
// collision for paths over maxLockName).
func lockName(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	path = strings.TrimPrefix(filepath.Clean(path), "/")
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-':
			b.WriteByte(c)
		case c == '/':
			b.WriteByte('_')
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	name := b.String()
	if name == "" {
		name = "_"
	}
	if len(name) > maxLockName {
		// '~' never comes out of the escaping above, so a shortened name
		// cannot be another path's full one
		sum := sha256.Sum256([]byte(path))
		name = name[:maxLockName-33] + "~" + hex.EncodeToString(sum[:16])
	}
	return name
}

// prepare makes sure the lock directory exists and may be used: created
// with mode 0700 when missing (given, when root creates it, the owner of
// the directory holding it, so that a daemon running as that user can
// use it), a directory, not world-writable.
func (o options) prepare() error {
	if o.lockDir == "" {
		return nil
	}
	fi, err := os.Stat(o.lockDir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(o.lockDir, lockDirPerm); err != nil {
			return fmt.Errorf("lock directory: %w", err)
		}
		if err := inheritOwner(o.lockDir, nil); err != nil {
			return fmt.Errorf("lock directory %s: %w", o.lockDir, err)
		}
		fi, err = os.Stat(o.lockDir)
	}
	if err != nil {
		return fmt.Errorf("lock directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("lock directory %s: not a directory", o.lockDir)
	}
	if fi.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("lock directory %s: refusing to use it: it is world-writable (mode %04o)", o.lockDir, fi.Mode().Perm())
	}
	return nil
}

// inheritOwner gives path (or f, when not nil) the owner and group of the
// directory holding it when the caller is root and the directory belongs
// to someone else: a lock directory, lock or journal that `scanwarden
// unblock` (root) creates in the state directory of a daemon running as
// its own user must stay usable by that daemon.
func inheritOwner(path string, f *os.File) error {
	if os.Geteuid() != 0 {
		return nil
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return err
	}
	ds := di.Sys().(*syscall.Stat_t)
	if ds.Uid == 0 {
		return nil
	}
	if f != nil {
		return f.Chown(int(ds.Uid), int(ds.Gid))
	}
	return os.Lchown(path, int(ds.Uid), int(ds.Gid))
}

// RewriteFile replaces the contents of path with what edit makes of them,
// serialised with every other scanwarden writer of path, and so that a
// crash never leaves a half-written file behind. In every mode:
//
//   - path and its directory pass CheckPath (no symlink, not
//     world-writable), checked again under the lock;
//   - concurrent RewriteFile calls (and History appends), in this process
//     or another, are serialised by a flock(2) on the lock file,
//     path+LockSuffix or the one WithLockDir names, held from the read to
//     the end of the write; the lock file is created (0600) when missing
//     and left in place;
//   - a journal left by a rewrite that was interrupted (see in place,
//     below) is completed first, before path is read;
//   - when edit reports no change, nothing is written;
//   - a writer that does not take the lock (an editor, `echo >>`) and
//     changes the file between the read and the write is detected by its
//     inode, size and times, and the rewrite starts over from its
//     version, so its change is kept.
//
// Replace mode, used whenever it works: the new contents go to a temporary
// file in path's directory, which gets the old file's mode, owner and
// group (a missing file is created with perm, owned by the calling
// process's user and group), is fsynced and renamed over path; the
// directory is then fsynced. Every reader sees the old file or the new
// one, never a mix, and a crash leaves one of the two. On any error the
// temporary file is removed and path is untouched. Extended attributes
// (ACLs, SELinux labels) of the old file are not copied, and a hard link
// to it keeps pointing at the old contents.
//
// In-place mode, when path exists but creating the temporary file, giving
// it the old owner, or the rename fails with EROFS, EACCES, EPERM, EBUSY
// or EXDEV (path is a bind mount, writable, in a read-only directory, as
// systemd's ReadWritePaths= makes it under ProtectSystem=strict): the
// complete new contents, with the path they are for and their SHA-256,
// are written to the journal (JournalPath: next to path, or in the lock
// directory), fsynced and renamed into place; then path itself is opened
// for writing, its bytes from the first that changes on are written,
// it is truncated to the new length and fsynced; then the journal is
// removed. The inode, owner, mode, ACLs and links are kept by
// construction. A crash after the journal was written may leave path
// half-written on disk; the next scanwarden writer of path (RewriteFile,
// OpenHistory, History.Append, ReadFileLocked: every operation of the
// hosts.deny backend) finds the journal under the lock and completes
// the copy before anything else. A reader that takes the lock never sees
// a partial file; one that does not (tcpd, reading hosts.deny for each
// connection) can, during the write itself (one write(2) of the changed
// tail: microseconds), see the new bytes before the old tail is cut.
// When the write fails (a full disk, an I/O error) the old contents are
// written back and the journal removed; if even that fails the journal
// stays, and the error says so. A missing path cannot be created in this
// mode: the error says the directory refuses a new file.
func RewriteFile(ctx context.Context, path string, perm fs.FileMode, edit EditFunc, opts ...Option) error {
	return rewriter{}.rewrite(ctx, path, perm, makeOptions(opts), edit)
}

// rewriter does RewriteFile's work; fault, set only by tests, injects an
// error at a named step (and may panic, to stand for a crash there).
type rewriter struct {
	fault func(step string) error
}

func (r rewriter) inject(step string) error {
	if r.fault == nil {
		return nil
	}
	return r.fault(step)
}

func (r rewriter) rewrite(ctx context.Context, path string, perm fs.FileMode, o options, edit EditFunc) error {
	if _, err := CheckPath(path); err != nil {
		return err
	}
	if err := o.prepare(); err != nil {
		return err
	}
	lf, err := openLock(o.lockPath(path))
	if err != nil {
		return err
	}
	defer lf.Close() // closing the last descriptor releases the lock
	if err := r.lockAndRecover(ctx, lf, path, o, syscall.LOCK_EX); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := r.once(path, perm, o, edit)
		if !errors.Is(err, errChanged) || attempt == rewriteAttempts {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
}

// fallback reports whether err, from creating the temporary file, giving
// it its owner or renaming it, means path cannot be replaced but may
// still be written in place.
func fallback(err error) bool {
	for _, e := range []syscall.Errno{syscall.EROFS, syscall.EACCES, syscall.EPERM, syscall.EBUSY, syscall.EXDEV} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// once is one read-modify-write under the lock.
func (r rewriter) once(path string, perm fs.FileMode, o options, edit EditFunc) error {
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
	err = r.inject("create")
	var tmp *os.File
	if err == nil {
		tmp, err = os.CreateTemp(dir, "."+base+".scanwarden-*")
	}
	if err != nil {
		if st != nil && fallback(err) {
			return r.inPlace(path, old, st, updated, o, fmt.Errorf("creating a temporary file in %s: %w", filepath.Clean(dir), err))
		}
		if fallback(err) {
			return fmt.Errorf("%s: does not exist, and its directory refuses a new file: %w", path, err)
		}
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
	// giveUp removes the temporary file and writes path in place instead.
	giveUp := func(why error) error {
		tmp.Close()
		os.Remove(tmpName)
		done = true
		return r.inPlace(path, old, st, updated, o, why)
	}
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
		if st != nil && fallback(err) {
			// a writer allowed to change the file but not to give a
			// new one its owner: in place, the owner stays
			return giveUp(err)
		}
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
	err = r.inject("rename")
	if err == nil {
		err = os.Rename(tmpName, path)
	}
	if err != nil {
		if st != nil && fallback(err) {
			return giveUp(fmt.Errorf("renaming %s over it: %w", tmpName, err))
		}
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
// refusing a symbolic link or anything but a regular file. A lock file
// root owns in a directory of another user is given to that user (best
// effort, see inheritOwner).
func openLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, lockFilePerm)
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
	if fi.Sys().(*syscall.Stat_t).Uid == 0 {
		inheritOwner(path, f) // a failure only matters to the other user, who will say so
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
