// Package safefile is the one way scanwarden opens, reads and atomically
// replaces the files it keeps: the state (STATE_DIR/state.json,
// STATE_DIR/pending.jsonl, STATE_DIR/lock), PortSentry's history and
// blocked files, hosts.deny, and the lock files that serialise their
// writers. Every function here applies the same checks:
//
//   - the directory holding the file must be a directory and must not be
//     world-writable, sticky bit or not (in such a directory any local
//     user could swap the file for a link to another one, or plant it
//     before scanwarden creates it);
//   - the file itself is never reached through a symbolic link: every
//     open of it carries O_NOFOLLOW, so a link put in place after a check
//     is refused too (with ELOOP, reported as a refusal naming the file);
//   - the file must be a regular file and must not be world-writable;
//     these are checked on the open descriptor (fstat), not on the name.
//
// Directories above the one holding the file are followed as usual: the
// checks are about the last component, the one an unprivileged user could
// replace. Errors name the file (or directory) and the rule it broke.
//
// Who owns a file is a second policy, for what scanwarden trusts rather
// than writes (trust.go): CheckOwner and CheckDirOwner refuse a file or
// directory that belongs to a user other than root and the one scanwarden
// runs as (STATE_DIR is held to it), and CheckTrusted holds the files it
// takes instructions from and the programs it runs to it along the whole
// path, with nothing on the way writable by every user.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// MaxSize bounds what ReadFile reads into memory: 64 MiB, far beyond any
// sane hosts.deny (those other tools fill reach a few MiB), history or
// blocked file, and still harmless to hold.
const MaxSize = 64 << 20

// CheckDir reports whether dir may hold files scanwarden reads or writes:
// it must exist, be a directory (symbolic links to one are followed) and
// not be world-writable, even with the sticky bit (like /tmp). The error
// names dir and says which rule was broken.
func CheckDir(dir string) error {
	di, err := os.Stat(dir)
	switch {
	case err != nil:
		return err // *PathError names dir
	case !di.IsDir():
		return fmt.Errorf("%s: not a directory", dir)
	case di.Mode().Perm()&0o002 != 0:
		return fmt.Errorf("%s: refusing to use this directory: it is world-writable (mode %04o), so any local user could replace the files in it", dir, di.Mode().Perm())
	}
	return nil
}

// checkParent is CheckDir for the directory holding path, with errors that
// name path first.
func checkParent(path string) error {
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	switch {
	case err != nil:
		return fmt.Errorf("%s: directory: %w", path, err)
	case !di.IsDir():
		return fmt.Errorf("%s: %s is not a directory", path, dir)
	case di.Mode().Perm()&0o002 != 0:
		return fmt.Errorf("%s: refusing to use it: its directory %s is world-writable (mode %04o)", path, dir, di.Mode().Perm())
	}
	return nil
}

// CheckPath reports whether path may be read and replaced: the directory
// holding it passes CheckDir, and path, when it exists, is not a symbolic
// link, is a regular file and is not world-writable. It returns the
// file's Lstat information, or nil and no error when the file does not
// exist. It is a check of names, made before a file is created or
// replaced; Open, ReadFile and Replace make it themselves, and check the
// file again on the descriptor they open.
func CheckPath(path string) (fs.FileInfo, error) {
	if err := checkParent(path); err != nil {
		return nil, err
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
		return symlinkError(path)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s: not a regular file (%s)", path, fi.Mode().Type())
	case fi.Mode().Perm()&0o002 != 0:
		return fmt.Errorf("%s: refusing to use it: the file is world-writable (mode %04o)", path, fi.Mode().Perm())
	}
	return nil
}

func symlinkError(path string) error {
	return fmt.Errorf("%s: refusing to use a symbolic link (point the configuration at the real file)", path)
}

// Open opens path with flag (os.O_RDONLY, os.O_WRONLY, os.O_RDWR, with
// os.O_APPEND and os.O_CREATE as needed; perm is the mode of a file it
// creates, before the umask) after checking the directory holding it
// (CheckDir). It adds O_NOFOLLOW, so a symbolic link at path is refused
// however late it was put there, O_CLOEXEC, and O_NONBLOCK, so that a FIFO
// at path fails at once instead of hanging (Go clears it again for a
// regular file). The opened file is then checked through its descriptor:
// a regular file, not world-writable; otherwise it is closed and the error
// says why (a file Open itself created with a world-writable perm, the
// umask letting that through, is refused too, and left in place).
func Open(path string, flag int, perm fs.FileMode) (*os.File, error) {
	if err := checkParent(path); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, perm)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, symlinkError(path)
		}
		return nil, err // *PathError names the file
	}
	fi, err := f.Stat()
	if err == nil {
		err = checkInfo(path, fi)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ReadFile returns the contents of path and the Stat of the file they
// were read from, opened by Open (all its checks). A missing file is an
// error satisfying errors.Is(err, fs.ErrNotExist). A file larger than
// MaxSize is refused, and nothing is returned.
func ReadFile(path string) ([]byte, fs.FileInfo, error) {
	f, err := Open(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if fi.Size() > MaxSize {
		return nil, nil, fmt.Errorf("%s: %d bytes, more than the %d this program reads", path, fi.Size(), MaxSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > MaxSize {
		return nil, nil, fmt.Errorf("%s: more than the %d bytes this program reads", path, MaxSize)
	}
	return data, fi, nil
}

// SyncDir fsyncs the directory dir, so that a file created or renamed in
// it survives a crash.
func SyncDir(dir string) error {
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
