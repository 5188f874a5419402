package records

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/scanwarden/scanwarden/internal/safefile"
)

// The journal of an in-place rewrite (see RewriteFile) is, byte for byte:
//
//	scanwarden-journal 1\n
//	target "/etc/hosts.deny"\n      the file's absolute path, Go-quoted
//	size 1234\n                     the length of the new contents
//	sha256 <64 hex digits>\n        their SHA-256
//	\n
//	<the new contents>
//
// It is written to NAME.new, fsynced and renamed to NAME, so a journal
// that exists is complete (the size and hash catch a damaged disk). It is
// mode 0600; one that is group- or world-writable, or owned by anyone but
// root, the caller or the owner of its directory, is refused.
const (
	journalMagic = "scanwarden-journal 1"
	// journalHeaderMax bounds the header read before the contents: the
	// four lines with the longest path Linux allows (PATH_MAX 4096,
	// quoted) fit.
	journalHeaderMax = 4*4096 + 256
)

// absPath is path made absolute and clean, as a journal names its target.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return filepath.Clean(path)
}

// encodeJournal returns the journal of data for target.
func encodeJournal(target string, data []byte) []byte {
	sum := sha256.Sum256(data)
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\ntarget %s\nsize %d\nsha256 %s\n\n", journalMagic, strconv.Quote(absPath(target)), len(data), hex.EncodeToString(sum[:]))
	b.Write(data)
	return b.Bytes()
}

// decodeJournal returns the target and the contents of a journal,
// checking its form, size and hash.
func decodeJournal(b []byte) (target string, data []byte, err error) {
	fields := make([]string, 0, 4)
	rest := b
	for len(fields) < 5 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return "", nil, errors.New("truncated header")
		}
		fields = append(fields, string(rest[:i]))
		rest = rest[i+1:]
	}
	if fields[0] != journalMagic {
		return "", nil, fmt.Errorf("first line %q, want %q", fields[0], journalMagic)
	}
	if fields[4] != "" {
		return "", nil, errors.New("no blank line after the header")
	}
	q, ok := strings.CutPrefix(fields[1], "target ")
	if !ok {
		return "", nil, fmt.Errorf("second line %q is not the target", fields[1])
	}
	if target, err = strconv.Unquote(q); err != nil {
		return "", nil, fmt.Errorf("target %s: %w", q, err)
	}
	s, ok := strings.CutPrefix(fields[2], "size ")
	size, err := strconv.ParseInt(s, 10, 64)
	if !ok || err != nil || size < 0 {
		return "", nil, fmt.Errorf("bad size line %q", fields[2])
	}
	h, ok := strings.CutPrefix(fields[3], "sha256 ")
	want, err := hex.DecodeString(h)
	if !ok || err != nil || len(want) != sha256.Size {
		return "", nil, fmt.Errorf("bad sha256 line %q", fields[3])
	}
	if int64(len(rest)) != size {
		return "", nil, fmt.Errorf("%d bytes of contents, the header says %d", len(rest), size)
	}
	if got := sha256.Sum256(rest); !bytes.Equal(got[:], want) {
		return "", nil, errors.New("contents do not match their SHA-256")
	}
	return target, rest, nil
}

// writeJournal commits the journal of data for target at jpath: written
// to jpath+".new", fsynced, renamed and its directory fsynced. On error
// nothing is left behind.
func (r rewriter) writeJournal(jpath, target string, data []byte) error {
	tmp := jpath + ".new"
	// a leftover of a crash while a journal was being written: never
	// committed, so the file was not touched after it
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	f, err := safefile.Open(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, lockFilePerm)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	inheritOwner(tmp, f) // best effort, as for the lock file
	if _, err := f.Write(encodeJournal(target, data)); err != nil {
		return fmt.Errorf("journal %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("journal %s: fsync: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("journal %s: %w", tmp, err)
	}
	if err := r.inject("journal"); err != nil {
		return fmt.Errorf("journal %s: %w", jpath, err)
	}
	if err := os.Rename(tmp, jpath); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	ok = true
	if err := safefile.SyncDir(filepath.Dir(jpath)); err != nil {
		// the file must not be touched before the journal is durable
		os.Remove(jpath)
		return fmt.Errorf("journal %s: syncing its directory: %w", jpath, err)
	}
	return nil
}

// readJournal reads the journal at jpath after checking that it may be
// trusted: opened by safefile.Open (its directory not world-writable, not
// a symbolic link, a regular file), and, more strictly than other files,
// not group- or world-writable and owned by root, the caller or its
// directory's owner. A missing journal satisfies errors.Is(err,
// fs.ErrNotExist).
func readJournal(jpath string) ([]byte, error) {
	f, err := safefile.Open(jpath, os.O_RDONLY, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	switch {
	case fi.Mode().Perm()&0o022 != 0:
		return nil, fmt.Errorf("journal %s: refusing to use it: it is group- or world-writable (mode %04o)", jpath, fi.Mode().Perm())
	}
	if st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		di, err := os.Stat(filepath.Dir(jpath))
		if err != nil || di.Sys().(*syscall.Stat_t).Uid != st.Uid {
			return nil, fmt.Errorf("journal %s: refusing to use it: owned by uid %d, neither root, us nor the owner of its directory", jpath, st.Uid)
		}
	}
	limit := int64(safefile.MaxSize + journalHeaderMax)
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading journal %s: %w", jpath, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("journal %s: more than the %d bytes a journal can hold", jpath, limit)
	}
	return data, nil
}

// lockAndRecover takes the flock how (LOCK_EX or LOCK_SH) on lf, the lock
// file of path, and, when a journal of path is there, completes it first
// under an exclusive lock. It returns holding the lock how with no
// journal left, or with an error and no lock held.
func (r rewriter) lockAndRecover(ctx context.Context, lf *os.File, path string, o options, how int) error {
	lockPath, jpath := o.lockPath(path), o.journalPath(path)
	unlock := func() { syscall.Flock(int(lf.Fd()), syscall.LOCK_UN) }
	for attempt := 1; ; attempt++ {
		if err := flock(ctx, lf, lockPath, how); err != nil {
			return err
		}
		_, err := os.Lstat(jpath)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err == nil && attempt > rewriteAttempts {
			// completed each time, and back each time: some writer keeps
			// crashing, or does not take the lock
			err = fmt.Errorf("%s is back after being completed %d times", jpath, rewriteAttempts)
		}
		if err != nil {
			unlock()
			return fmt.Errorf("%s: journal: %w", path, err)
		}
		if how != syscall.LOCK_EX {
			// completing it writes the file: take the lock exclusively,
			// then come back for the one asked for
			if err := flock(ctx, lf, lockPath, syscall.LOCK_EX); err != nil {
				unlock()
				return err
			}
		}
		if err := recoverJournal(path, jpath); err != nil {
			unlock()
			return err
		}
		if how == syscall.LOCK_EX {
			return nil
		}
		unlock()
	}
}

// recoverJournal completes the in-place rewrite of path that the journal
// at jpath describes (the caller holds the exclusive lock), then removes
// the journal. A journal whose file is gone is removed: the file was
// deleted since, and is not brought back. A file with more than one hard
// link is not written: the error names it and the journal, which stays.
func recoverJournal(path, jpath string) error {
	raw, err := readJournal(jpath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	target, data, err := decodeJournal(raw)
	if err != nil {
		return fmt.Errorf("%s: the journal %s of an interrupted in-place rewrite is damaged (%v): check the file and remove the journal", path, jpath, err)
	}
	if target != absPath(path) {
		return fmt.Errorf("%s: the journal %s is for %s, not this file: remove it", path, jpath, target)
	}
	fi, err := CheckPath(path)
	if err != nil {
		return err
	}
	if fi != nil {
		cur, st, err := readNoFollow(path)
		if err != nil {
			return err
		}
		if bytes.Equal(cur, data) {
			// the write was done, but maybe not on disk: the journal
			// goes only once the file is
			if err := syncFile(path); err != nil {
				return fmt.Errorf("%s: completing the interrupted rewrite from the journal %s: %w", path, jpath, err)
			}
		} else {
			if st.Nlink > 1 {
				return fmt.Errorf("%s: refusing to complete the interrupted rewrite from the journal %s: the file has %d hard links (one planted in its directory would have the journal written into another file): check the file and remove the journal", path, jpath, st.Nlink)
			}
			// st: the file written is the one just read (cur), and
			// still has one link
			if _, err := (rewriter{}).writeInPlace(path, st, cur, data); err != nil {
				return fmt.Errorf("%s: completing the interrupted rewrite from the journal %s: %w", path, jpath, err)
			}
		}
	}
	if err := removeJournal(jpath); err != nil {
		return fmt.Errorf("%s: completed from the journal, but removing %s failed: %w", path, jpath, err)
	}
	return nil
}

// syncFile fsyncs the file at path.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	return nil
}

// removeJournal removes the journal at jpath durably: its directory is
// fsynced, so that a power cut cannot bring back a journal whose rewrite
// is done, which the next writer would apply again over the lines
// written since.
func removeJournal(jpath string) error {
	if err := os.Remove(jpath); err != nil {
		return err
	}
	if err := safefile.SyncDir(filepath.Dir(jpath)); err != nil {
		return fmt.Errorf("fsync of %s: %w", filepath.Dir(jpath), err)
	}
	return nil
}

// inPlace writes updated over path's current contents old (whose
// identity is st), journaled; see RewriteFile. why says why path could not
// be replaced.
func (r rewriter) inPlace(path string, old []byte, st *syscall.Stat_t, updated []byte, o options, why error) error {
	jpath := o.journalPath(path)
	if err := r.writeJournal(jpath, path, updated); err != nil {
		return fmt.Errorf("%s: cannot be replaced (%v), and rewriting it in place needs a journal: %w", path, why, err)
	}
	written := false
	err := r.inject("inplace")
	if err == nil {
		written, err = r.writeInPlace(path, st, old, updated)
	}
	if err == nil {
		if err := removeJournal(jpath); err != nil {
			return fmt.Errorf("%s: rewritten in place, but removing its journal failed (remove it, or the next writer writes these contents again): %w", path, err)
		}
		return nil
	}
	if !written {
		// the file was not touched (it could not be opened, changed
		// meanwhile, had no room): the journal must not complete later
		// a rewrite that is reported failed now
		if rerr := os.Remove(jpath); rerr != nil {
			return fmt.Errorf("%s: rewriting in place failed, nothing was written (%w), but removing the journal %s failed: remove it, or the next writer writes these contents: %v", path, err, jpath, rerr)
		}
		if errors.Is(err, errChanged) {
			return err
		}
		return fmt.Errorf("%s: cannot be replaced (%v), and writing it in place failed, nothing was written: %w", path, why, err)
	}
	// the write may have stopped part-way: put the old contents back
	if _, rerr := (rewriter{}).writeInPlace(path, nil, nil, old); rerr != nil {
		return fmt.Errorf("%s: rewriting in place failed (%w), and so did writing the old contents back (%v): the journal %s holds the new contents and the next change completes them", path, err, rerr, jpath)
	}
	os.Remove(jpath)
	return fmt.Errorf("%s: rewriting in place failed, the old contents were written back: %w", path, err)
}

// writeInPlace makes path's contents updated, keeping its inode: the
// bytes from the first that differs from cur (what path holds now; nil
// when unknown) are written, the file is cut to the new length and
// fsynced. With st set, a file that is no longer st (inode, size, times)
// is errChanged and nothing is written. written says whether the file
// may have been changed: false when it failed before the first write
// (the open, the check of st, reserving the room).
func (r rewriter) writeInPlace(path string, st *syscall.Stat_t, cur, updated []byte) (written bool, err error) {
	f, err := safefile.Open(path, os.O_WRONLY, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if st != nil && !sameFile(st, fi.Sys().(*syscall.Stat_t)) {
		return false, fmt.Errorf("%s: %w", path, errChanged)
	}
	if n := int64(len(updated)); n > fi.Size() {
		// reserve the room first, so that a full disk fails here, with
		// nothing written yet (not every file system can)
		err := syscall.Fallocate(int(f.Fd()), 1 /* FALLOC_FL_KEEP_SIZE */, 0, n)
		if err != nil && !errors.Is(err, syscall.EOPNOTSUPP) && !errors.Is(err, syscall.ENOSYS) && !errors.Is(err, syscall.EINVAL) {
			return false, fmt.Errorf("%s: reserving %d bytes: %w", path, n, err)
		}
	}
	p := 0
	for p < len(cur) && p < len(updated) && cur[p] == updated[p] {
		p++
	}
	if _, err := f.WriteAt(updated[p:], int64(p)); err != nil {
		return true, err
	}
	if err := r.inject("inplace-write"); err != nil {
		return true, fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Truncate(int64(len(updated))); err != nil {
		return true, err
	}
	if err := f.Sync(); err != nil {
		return true, fmt.Errorf("%s: fsync: %w", path, err)
	}
	return true, nil
}

// ReadFileLocked is ReadFile under path's lock (shared with other
// readers, exclusive of writers), after completing a journal an
// interrupted in-place rewrite left: what it returns is never a
// half-written file, whichever mode RewriteFile used. A missing file is
// an error satisfying errors.Is(err, fs.ErrNotExist), and takes no lock.
func ReadFileLocked(ctx context.Context, path string, opts ...Option) ([]byte, error) {
	fi, err := CheckPath(path)
	if err != nil {
		return nil, err
	}
	if fi == nil {
		return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
	}
	o := makeOptions(opts)
	if err := o.prepare(); err != nil {
		return nil, err
	}
	lf, err := openLock(o.lockPath(path))
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	if err := (rewriter{}).lockAndRecover(ctx, lf, path, o, syscall.LOCK_SH); err != nil {
		return nil, err
	}
	data, _, err := readNoFollow(path)
	return data, err
}
