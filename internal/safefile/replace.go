package safefile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// The steps of Replace, as StepError.Step names them and as Options.Fault
// is called with them.
const (
	StepCreate  = "create"         // creating the temporary file
	StepWrite   = "write"          // writing the contents to it
	StepChmod   = "chmod"          // giving it Options.Mode
	StepStat    = "stat"           // fstat of it
	StepChown   = "chown"          // giving it Options.UID and GID
	StepFsync   = "fsync"          // fsync of it
	StepClose   = "close"          // closing it
	StepRename  = "rename"         // renaming it over the path
	StepSyncDir = "sync directory" // fsync of the directory, after the rename
)

// Options say what Replace gives the new file besides its contents.
type Options struct {
	// Mode is the new file's mode, set exactly (the umask does not
	// apply): permission bits and fs.ModeSetuid, fs.ModeSetgid and
	// fs.ModeSticky.
	Mode fs.FileMode
	// UID and GID are the new file's owner and group; -1 keeps what the
	// file was created with (the caller's user, and its group or, in a
	// setgid directory, the directory's). chown(2) is called only when
	// the file does not have them already, so a caller without
	// CAP_CHOWN can always ask for its own.
	UID, GID int
	// OwnerOptional makes a failing chown no error: the file keeps the
	// owner it was created with.
	OwnerOptional bool
	// Check, when not nil, is called when the new file is complete and
	// durable, just before it is renamed over the path (the caller's
	// last chance to see that someone changed the path meanwhile). An
	// error stops the replacement, the path untouched, and is returned
	// as it is.
	Check func() error
	// Fault, set by tests only, is called after each step named by a
	// Step constant (before the rename for StepRename; before
	// StepCreate too); an error it returns is taken for that step's.
	Fault func(step string) error
}

// StepError is an error of one step of Replace. Before StepRename the
// path is untouched and the temporary file is gone; at StepSyncDir the
// path was replaced, but the change may not survive a crash.
type StepError struct {
	Path string // the file being replaced
	Temp string // the temporary file ("" at StepCreate)
	Step string // one of the Step constants
	Err  error  // what the step returned
}

func (e *StepError) Error() string {
	switch e.Step {
	case StepCreate:
		return fmt.Sprintf("%s: creating the temporary file: %v", e.Path, e.Err)
	case StepSyncDir:
		return fmt.Sprintf("%s: replaced, but syncing its directory failed (the change may not survive a crash): %v", e.Path, e.Err)
	}
	return fmt.Sprintf("%s: %s of temporary file %s: %v", e.Path, e.Step, e.Temp, e.Err)
}

// Unwrap returns the step's error.
func (e *StepError) Unwrap() error { return e.Err }

// Replace makes data the contents of path so that every reader sees the
// old file or the new one, never a mix, and a crash leaves one of the
// two:
//
//   - path passes CheckPath first (a directory that is not
//     world-writable; no symbolic link, nothing but a regular file, not
//     world-writable, at path); a refusal is returned as it is;
//   - data is written to a new temporary file in path's directory, named
//     .NAME.scanwarden-RANDOM.tmp and created with O_EXCL, mode 0600;
//   - it is given o.Mode, and o.UID and o.GID (see Options), then
//     fsynced and closed;
//   - o.Check runs, then the file is renamed over path (rename(2)
//     replaces a symbolic link planted meanwhile, never its target), and
//     path's directory is fsynced.
//
// Any error before the rename is a *StepError (or o.Check's error, or
// CheckPath's): the temporary file is removed, path untouched. After the
// rename only a failed directory fsync is an error, a *StepError with
// Step StepSyncDir. A hard link to the old file keeps the old contents,
// and the old file's extended attributes (ACLs, SELinux labels) are not
// copied. It returns the new file's information (its inode, size and
// modification time are path's now).
//
// Replace does not lock: callers that read, change and replace a file
// serialise themselves.
func Replace(path string, data []byte, o Options) (fs.FileInfo, error) {
	if _, err := CheckPath(path); err != nil {
		return nil, err
	}
	r := replacement{path: path, o: o}
	if err := r.fault(StepCreate); err != nil {
		return nil, &StepError{Path: path, Step: StepCreate, Err: err}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".scanwarden-*.tmp")
	if err != nil {
		return nil, &StepError{Path: path, Step: StepCreate, Err: err}
	}
	r.tmp = tmp
	renamed := false
	defer func() {
		// also when a step panics
		if !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	fi, err := r.fill(data)
	if err != nil {
		return nil, err
	}
	if err := r.commit(); err != nil {
		return nil, err
	}
	renamed = true
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fi, &StepError{Path: path, Temp: tmp.Name(), Step: StepSyncDir, Err: err}
	}
	return fi, nil
}

// replacement is the state of one Replace.
type replacement struct {
	path string
	o    Options
	tmp  *os.File
}

func (r *replacement) fault(step string) error {
	if r.o.Fault == nil {
		return nil
	}
	return r.o.Fault(step)
}

// step turns err, or else the fault injected at step, into a *StepError.
func (r *replacement) step(name string, err error) error {
	if err == nil {
		err = r.fault(name)
	}
	if err != nil {
		return &StepError{Path: r.path, Temp: r.tmp.Name(), Step: name, Err: err}
	}
	return nil
}

// fill writes data to the temporary file and gives it its mode and owner,
// makes it durable and closes it; it returns its information.
func (r *replacement) fill(data []byte) (fs.FileInfo, error) {
	_, err := r.tmp.Write(data)
	if err := r.step(StepWrite, err); err != nil {
		return nil, err
	}
	if err := r.step(StepChmod, r.tmp.Chmod(r.o.Mode)); err != nil {
		return nil, err
	}
	if err := r.step(StepChown, r.chown()); err != nil {
		return nil, err
	}
	if r.o.Mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
		// chown clears setuid and setgid: set the exact mode again
		if err := r.step(StepChmod, r.tmp.Chmod(r.o.Mode)); err != nil {
			return nil, err
		}
	}
	if err := r.step(StepFsync, r.tmp.Sync()); err != nil {
		return nil, err
	}
	fi, err := r.tmp.Stat()
	if err != nil {
		return nil, r.step(StepStat, err)
	}
	if err := r.step(StepClose, r.tmp.Close()); err != nil {
		return nil, err
	}
	return fi, nil
}

// chown gives the temporary file o.UID and o.GID when it does not have
// them.
func (r *replacement) chown() error {
	if r.o.UID < 0 && r.o.GID < 0 {
		return nil
	}
	fi, err := r.tmp.Stat()
	if err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	if (r.o.UID < 0 || int(st.Uid) == r.o.UID) && (r.o.GID < 0 || int(st.Gid) == r.o.GID) {
		return nil
	}
	if err := r.tmp.Chown(r.o.UID, r.o.GID); err != nil && !r.o.OwnerOptional {
		return err
	}
	return nil
}

// commit runs the caller's check and renames the temporary file over the
// path.
func (r *replacement) commit() error {
	if r.o.Check != nil {
		if err := r.o.Check(); err != nil {
			return err
		}
	}
	// the fault is injected before the rename: after it, there is
	// nothing left to undo
	err := r.fault(StepRename)
	if err == nil {
		err = os.Rename(r.tmp.Name(), r.path)
	}
	if err != nil {
		return &StepError{Path: r.path, Temp: r.tmp.Name(), Step: StepRename, Err: err}
	}
	return nil
}
