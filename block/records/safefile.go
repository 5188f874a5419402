package records

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/scanwarden/scanwarden/internal/safefile"
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

// CheckPath reports whether path may be read and replaced by scanwarden,
// by the one set of rules every file scanwarden writes is held to
// (safefile.CheckPath): the directory holding it is a directory and is not
// world-writable (sticky or not), and path, when it exists, is not a
// symbolic link, is a regular file and is not world-writable (a
// world-writable file or directory lets any local user add or remove
// blocks). The error says which rule was broken and names the file or
// directory. It returns the file's Lstat information, or nil (and no
// error) when the file does not exist.
func CheckPath(path string) (fs.FileInfo, error) { return safefile.CheckPath(path) }

// ReadFile returns the contents of path after CheckPath's checks; the file
// is opened with O_NOFOLLOW, so a symbolic link put in place after the
// check is refused too, and checked again through the open descriptor. A
// missing file is an error that satisfies errors.Is(err, fs.ErrNotExist).
// Files larger than 64 MiB (safefile.MaxSize) are refused.
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

// readNoFollow reads path through safefile.ReadFile (no symbolic link,
// a regular file, not world-writable, at most safefile.MaxSize bytes) and
// returns its stat.
func readNoFollow(path string) ([]byte, *syscall.Stat_t, error) {
	data, fi, err := safefile.ReadFile(path)
	if err != nil {
		return nil, nil, err
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
	if _, err := os.Stat(o.lockDir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(o.lockDir, lockDirPerm); err != nil {
			return fmt.Errorf("lock directory: %w", err)
		}
		if err := inheritOwner(o.lockDir, nil); err != nil {
			return fmt.Errorf("lock directory %s: %w", o.lockDir, err)
		}
	} else if err != nil {
		return fmt.Errorf("lock directory: %w", err)
	}
	if err := safefile.CheckDir(o.lockDir); err != nil {
		return fmt.Errorf("lock directory: %w", err)
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
//     world-writable), checked again under the lock, and every open of
//     path carries O_NOFOLLOW (see internal/safefile);
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
// Replace mode (safefile.Replace), used whenever it works: the new
// contents go to a temporary file in path's directory, which gets the old file's mode, owner and
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
// the copy before anything else (unless path has more than one hard
// link by then: a link planted in its directory must not get the
// journal's contents; the error says so, and the journal stays). A
// reader that takes the lock never sees a partial file; one that does
// not (tcpd, reading hosts.deny for each connection) can, during the
// write itself (one write(2) of the changed tail: microseconds), see the
// new bytes before the old tail is cut. When the write fails (a full
// disk, an I/O error) the old contents are written back and the journal
// removed; if even that fails the journal stays, and the error says so.
// When it fails before anything was written (path cannot be opened for
// writing: an immutable file, a read-only mount), the journal is removed
// and path is as it was. A missing path cannot be created in this mode:
// the error says the directory refuses a new file.
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

// once is one read-modify-write under the lock: path is read, edited and
// replaced (safefile.Replace), or written in place when its directory will
// not let it be replaced (see RewriteFile).
func (r rewriter) once(path string, perm fs.FileMode, o options, edit EditFunc) error {
	old, st, err := readCurrent(path)
	if err != nil {
		return err
	}
	updated, changed, err := edit(old)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if !changed {
		return nil
	}
	_, err = safefile.Replace(path, updated, r.replaceOptions(path, perm, st))
	return r.orInPlace(path, old, st, updated, o, err)
}

// readCurrent returns path's contents and identity after CheckPath's
// checks, or nil and nil when it does not exist.
func readCurrent(path string) ([]byte, *syscall.Stat_t, error) {
	fi, err := CheckPath(path)
	if err != nil || fi == nil {
		return nil, nil, err
	}
	old, st, err := readNoFollow(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s: %w", path, errChanged)
	}
	return old, st, err
}

// replaceOptions are the options of the replacement of path, whose
// current identity is st (nil when missing): the old file's mode (special
// bits included), owner and group, or perm and the calling process's user
// and group for a new file; and, just before the rename, the check that
// no writer that does not take our lock (an editor, `echo >>`) changed
// path since it was read: errChanged, so that the rewrite starts again
// from their version rather than lose it.
func (r rewriter) replaceOptions(path string, perm fs.FileMode, st *syscall.Stat_t) safefile.Options {
	so := safefile.Options{Mode: perm.Perm(), UID: os.Getuid(), GID: os.Getgid(), Fault: r.fault}
	if st != nil {
		so.Mode = modeOf(st)
		so.UID, so.GID = int(st.Uid), int(st.Gid)
	}
	so.Check = func() error {
		now, err := os.Lstat(path)
		switch {
		case st == nil && err == nil,
			st != nil && err != nil,
			st != nil && !sameFile(st, now.Sys().(*syscall.Stat_t)):
			return fmt.Errorf("%s: %w", path, errChanged)
		}
		return nil
	}
	return so
}

// orInPlace returns err, the outcome of replacing path, unless it means
// that path cannot be replaced but may still be written in place (see
// fallback): path exists and creating the temporary file, giving it the
// old owner (a writer allowed to change the file but not to give a new
// one its owner) or renaming it failed. Then it writes updated in place.
func (r rewriter) orInPlace(path string, old []byte, st *syscall.Stat_t, updated []byte, o options, err error) error {
	var se *safefile.StepError
	if err == nil || !errors.As(err, &se) || !fallback(se.Err) {
		return err
	}
	switch {
	case se.Step == safefile.StepCreate && st == nil:
		return fmt.Errorf("%s: does not exist, and its directory refuses a new file: %w", path, se.Err)
	case se.Step == safefile.StepCreate:
		return r.inPlace(path, old, st, updated, o, fmt.Errorf("creating a temporary file in %s: %w", filepath.Dir(path), se.Err))
	case se.Step == safefile.StepChown && st != nil:
		return r.inPlace(path, old, st, updated, o, err)
	case se.Step == safefile.StepRename && st != nil:
		return r.inPlace(path, old, st, updated, o, fmt.Errorf("renaming %s over it: %w", se.Temp, se.Err))
	}
	return err
}

// modeOf is the mode of a file with stat st: permission bits plus the
// setuid, setgid and sticky bits it has (os.FileMode keeps them apart).
func modeOf(st *syscall.Stat_t) fs.FileMode {
	mode := fs.FileMode(st.Mode & 0o777)
	if st.Mode&syscall.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if st.Mode&syscall.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if st.Mode&syscall.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// sameFile reports whether b is the very file a was, unchanged.
func sameFile(a, b *syscall.Stat_t) bool {
	return a.Dev == b.Dev && a.Ino == b.Ino && a.Size == b.Size &&
		a.Mtim == b.Mtim && a.Ctim == b.Ctim
}

// openLock opens (creating it 0600 when missing) the lock file path
// through safefile.Open: its directory not world-writable, no symbolic
// link, a regular file, not world-writable. A lock file root owns in a
// directory of another user is given to that user (best effort, see
// inheritOwner), unless it has more than one hard link: that is no lock
// file root made, but another file linked there, which must not change
// hands.
func openLock(path string) (*os.File, error) {
	f, err := safefile.Open(path, os.O_RDWR|os.O_CREATE, lockFilePerm)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid == 0 && st.Nlink == 1 {
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
