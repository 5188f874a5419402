package block

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/scanwarden/scanwarden/internal/safefile"
)

// stateVersion is the state file's format version.
const stateVersion = 1

// pendingName is the file in STATE_DIR a new ban is appended to, as one
// JSON line, before the firewall is changed (Pend): one small write
// to a file kept open instead of a rewrite and rename of the whole state,
// which took ~0.35 ms on ext4 (the rename over an existing file starts
// writeback), so that the block is in place sooner. Every read merges it;
// every durable rewrite of the state empties it (it is truncated, not
// removed, so that the next ban does not create a file: ~60 µs more).
const pendingName = "pending.jsonl"

// StateFile is the list of current bans, kept in STATE_DIR/state.json so
// that blocks survive a restart. Every change is a read-modify-write under
// an exclusive flock on STATE_DIR/lock (so the daemon and `scanwarden
// unblock` never lose each other's changes), written to a temporary file,
// fsynced and renamed over the old one: a crash leaves the old or the new
// list, never half of one. A new ban is first appended to
// STATE_DIR/pending.jsonl (see Pend), which reads merge in until the
// next rewrite folds it into the list.
//
// Every file of STATE_DIR is opened, read and replaced through
// internal/safefile, under its one set of checks: STATE_DIR must not be
// world-writable, and state.json, pending.jsonl and lock are never reached
// through a symbolic link (O_NOFOLLOW), must be regular files and must
// not be world-writable. A refusal is an error naming the file or the
// directory, and nothing is read or written through it.
type StateFile struct {
	dir string
	// owner of dir: files root creates there (a root `scanwarden
	// unblock` beside a daemon running as its own user) are given to it,
	// so that the daemon can still read and lock them.
	uid, gid int

	// The last list read or written, and the identity of the file it came
	// from: a reader whose file has not changed (same inode, size and
	// modification time; every write renames a new inode in) takes it
	// from here instead of parsing the file again, so that a flood of
	// alerts costs a stat each, not a parse.
	mu     sync.Mutex
	cached []Ban
	key    fileKey

	// lockMu is held around the flock: a flock belongs to an open file,
	// and the lock file is kept open, so goroutines of this process
	// exclude each other here. It guards files too.
	lockMu sync.Mutex
	files  *keptFiles
}

// keptFiles are the lock file and pending.jsonl, kept open between calls
// (opening, and creating, them cost more than the rest of Pend up to
// the firewall). Each is checked against its path on every use and opened
// again when the file there is another (removed, or replaced by hand).
// Closed when the StateFile is garbage.
type keptFiles struct {
	lock, pending *os.File
}

func (k *keptFiles) close() {
	for _, f := range []*os.File{k.lock, k.pending} {
		if f != nil {
			f.Close()
		}
	}
}

type fileKey struct {
	ino   uint64
	size  int64
	mtime int64
}

type stateDoc struct {
	Version int   `json:"version"`
	Bans    []Ban `json:"bans"`
}

// OpenState returns the state kept in dir, creating dir (0700) when it is
// missing. A dir that is not a directory, or is world-writable (even
// sticky, like /tmp: any local user could put links in place of the
// state's files there), is refused with an error naming it; so is, for a
// process that does not run as root, a dir that belongs to another user
// than root and the one it runs as (safefile.CheckDirOwner: that user
// could replace the state's files). Root may open the directory of
// another user: `scanwarden unblock`, `list` and `flush`, run by root,
// use the STATE_DIR of a daemon that runs as its own user, and the files
// they create there are given to that user; the daemon itself refuses a
// STATE_DIR of another user whatever user it runs as (daemon.CheckFiles).
func OpenState(dir string) (*StateFile, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := safefile.CheckDir(dir); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if os.Geteuid() != 0 {
		if err := safefile.CheckDirOwner(dir); err != nil {
			return nil, fmt.Errorf("state directory: %w", err)
		}
	}
	s := &StateFile{dir: dir, uid: -1, gid: -1, files: &keptFiles{}}
	if fi, err := os.Stat(dir); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			s.uid, s.gid = int(st.Uid), int(st.Gid)
		}
	}
	runtime.AddCleanup(s, func(k *keptFiles) { k.close() }, s.files)
	return s, nil
}

// kept returns the open file *fp if it is still the file at dir/name (the
// name itself, not what a symbolic link there points to), or opens that
// through safefile.Open (creating it, 0600, owned by the directory's
// owner; refusing a world-writable directory, a symbolic link, anything
// but a regular file, a world-writable file) and keeps it in *fp. Called
// with lockMu held.
func (s *StateFile) kept(fp **os.File, name string, flag int) (*os.File, error) {
	path := filepath.Join(s.dir, name)
	if f := *fp; f != nil {
		var a, b syscall.Stat_t
		if syscall.Lstat(path, &a) == nil && syscall.Fstat(int(f.Fd()), &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino {
			return f, nil
		}
		f.Close()
		*fp = nil
	}
	f, err := safefile.Open(path, flag|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	s.giveToOwner(f)
	*fp = f
	return f, nil
}

// Close closes the files the StateFile keeps open (the lock file and
// pending.jsonl); the state itself is on disk. A later call opens them
// again, so Close is for a StateFile no longer in use: the one of a
// config a reload replaced. It never fails.
func (s *StateFile) Close() error {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	s.files.close()
	s.files.lock, s.files.pending = nil, nil
	return nil
}

// Path is the state file's path.
func (s *StateFile) Path() string { return filepath.Join(s.dir, "state.json") }

// Load returns the bans, sorted by address. A missing file is an empty
// list.
func (s *StateFile) Load() ([]Ban, error) {
	var bans []Ban
	err := s.locked(false, func() error {
		var err error
		bans, err = s.read()
		return err
	})
	return bans, err
}

// Update runs fn on the bans under the lock and saves what it returns
// (when it returns changed == true).
func (s *StateFile) Update(fn func(bans []Ban) (out []Ban, changed bool, err error)) error {
	return s.locked(true, func() error {
		bans, err := s.read()
		if err != nil {
			return err
		}
		out, changed, err := fn(bans)
		if err != nil || !changed {
			return err
		}
		if err := s.write(out); err != nil {
			return err
		}
		s.dropPending()
		return nil
	})
}

// ErrBusy is returned by Pend without wait when the state's lock is held
// (by this process or another).
var ErrBusy = errors.New("state: the lock is held")

// RecordThen is Pend, waiting for the lock, followed (when then ran) by
// Fold: the ban recorded durably in the state file before it returns.
func (s *StateFile) RecordThen(ban Ban, now time.Time, admit func() bool, then func()) (taken bool, err error) {
	ran := false
	taken, err = s.Pend(ban, now, admit, func() {
		ran = true
		if then != nil {
			then()
		}
	}, true)
	if err != nil || !ran {
		return taken, err
	}
	return false, s.Fold()
}

// Pend records ban (replacing an expired ban of its address) as a line of
// pending.jsonl and runs then, under the state's lock, unless the state
// holds a ban of the address still in force at now (then taken is true
// and nothing is done) or admit, when not nil, says no (asked only when
// the address is not taken; nothing is done either). From the line on, no
// crash of the process can lose the ban: every read merges it in. then
// (the firewall change) is not delayed by the disk; Fold makes the state
// file hold the ban. Without wait, a held lock is not waited for: Pend
// returns ErrBusy and does nothing. On an error, then does not run.
func (s *StateFile) Pend(ban Ban, now time.Time, admit func() bool, then func(), wait bool) (taken bool, err error) {
	err = s.lockedWait(true, wait, func() error {
		cur, ok, err := s.banOf(ban.Addr)
		if err != nil {
			return err
		}
		if ok && !cur.Expired(now) {
			taken = true
			return nil
		}
		if admit != nil && !admit() {
			return nil
		}
		line, err := json.Marshal(ban)
		if err != nil {
			return err
		}
		f, err := s.kept(&s.files.pending, pendingName, os.O_RDWR|os.O_APPEND)
		if err != nil {
			return fmt.Errorf("state: %w", err)
		}
		if _, err := f.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("state %s: %w", s.pendingPath(), err)
		}
		if then != nil {
			then()
		}
		return nil
	})
	return taken, err
}

// Fold rewrites the state file with the pending lines in it, made
// durable, and empties pending.jsonl (nothing is written when it is
// empty).
func (s *StateFile) Fold() error { return s.FoldThen(nil) }

// FoldThen is Fold, then runs then (when not nil) with the bans, still
// under the lock: what then does (hosts.deny) cannot be undone meanwhile
// by an unblock of another process. then runs too when the rewrite failed
// (the bans are still in pending.jsonl), not when the state could not be
// read.
func (s *StateFile) FoldThen(then func(bans []Ban)) error {
	return s.locked(true, func() error {
		data, err := s.readPending()
		if err != nil {
			return fmt.Errorf("state %s: %w", s.pendingPath(), err)
		}
		bans, err := s.read()
		if err != nil {
			return err
		}
		if len(data) > 0 {
			err = s.write(bans) // on an error the bans stay in pending.jsonl
			if err == nil {
				s.dropPending()
			}
		}
		if then != nil {
			then(bans)
		}
		return err
	})
}

func (s *StateFile) pendingPath() string { return filepath.Join(s.dir, pendingName) }

// dropPending empties pending.jsonl, durably, once the state file holds
// what it held (under the lock).
func (s *StateFile) dropPending() {
	f, err := s.kept(&s.files.pending, pendingName, os.O_RDWR|os.O_APPEND)
	if err != nil {
		return
	}
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 && f.Truncate(0) == nil {
		f.Sync()
	}
}

// readPending returns what pending.jsonl holds, through the kept file; a
// reader that may not write the state directory (`scanwarden list` as
// another user) reads it by name, under the same checks.
func (s *StateFile) readPending() ([]byte, error) {
	f, err := s.kept(&s.files.pending, pendingName, os.O_RDWR|os.O_APPEND)
	if err != nil {
		data, _, err := safefile.ReadFile(s.pendingPath())
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return data, err
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return nil, err
	}
	data := make([]byte, fi.Size())
	n, err := f.ReadAt(data, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return data[:n], nil
}

// mergePending returns bans with the bans of pending.jsonl put in (a
// line's ban replaces a ban of the same address). A line that cannot be
// read (a crash in the middle of its write) is skipped.
func (s *StateFile) mergePending(bans []Ban) ([]Ban, error) {
	data, err := s.readPending()
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", s.pendingPath(), err)
	}
	changed := false
	eachPending(data, func(b Ban) {
		if i := findBan(bans, b.Addr); i >= 0 {
			bans[i] = b
		} else {
			bans = append(bans, b)
		}
		changed = true
	})
	if changed {
		sortBans(bans)
	}
	return bans, nil
}

// eachPending calls fn with the ban of each line of pending.jsonl's data,
// in order, skipping a line that cannot be read (a crash or a full disk
// in the middle of its write). The next line Pend writes follows such a
// torn line on the same line of the file: it is read from where it starts
// (a line's ban starts with banStart, which cannot occur inside a JSON
// string, where '"' is escaped), so that it is not lost with the torn one.
func eachPending(data []byte, fn func(Ban)) {
	for _, line := range bytes.Split(data, []byte("\n")) {
		for len(line) > 0 {
			var b Ban
			if json.Unmarshal(line, &b) == nil {
				if b.Addr.IsValid() {
					fn(b)
				}
				break
			}
			i := bytes.Index(line[1:], banStart)
			if i < 0 {
				break
			}
			line = line[1+i:]
		}
	}
}

// banStart is how json.Marshal begins a Ban: its first field is Addr.
var banStart = []byte(`{"addr":`)

// banOf returns addr's ban as read() would have it (the last pending line
// of addr, else the state file's), without copying or sorting the whole
// list: Pend asks it on the capture thread, and a state of 100,000 bans
// took tens of milliseconds to read whole. Called under the lock.
func (s *StateFile) banOf(addr netip.Addr) (Ban, bool, error) {
	data, err := s.readPending()
	if err != nil {
		return Ban{}, false, fmt.Errorf("state %s: %w", s.pendingPath(), err)
	}
	var last Ban
	found := false
	eachPending(data, func(b Ban) {
		if b.Addr == addr {
			last, found = b, true
		}
	})
	if found {
		return last, true, nil
	}
	var st syscall.Stat_t
	if syscall.Lstat(s.Path(), &st) == nil {
		s.mu.Lock()
		if b, ok, hit := s.cachedBan(keyOf(&st), addr); hit {
			s.mu.Unlock()
			return b, ok, nil
		}
		s.mu.Unlock()
	}
	bans, err := s.readFile() // parses and caches the file
	if err != nil {
		return Ban{}, false, err
	}
	if i, ok := searchBan(bans, addr); ok {
		return bans[i], true, nil
	}
	return Ban{}, false, nil
}

// cachedBan looks addr up in the cached list when it came from the file
// with key (hit), without copying it. Called with mu held.
func (s *StateFile) cachedBan(key fileKey, addr netip.Addr) (b Ban, ok, hit bool) {
	if key != s.key || key.ino == 0 {
		return Ban{}, false, false
	}
	if i, ok := searchBan(s.cached, addr); ok {
		return s.cached[i], true, true
	}
	return Ban{}, false, true
}

func (s *StateFile) locked(exclusive bool, fn func() error) error {
	return s.lockedWait(exclusive, true, fn)
}

// lockedWait runs fn under the lock; without wait it returns ErrBusy at
// once when the lock is held.
func (s *StateFile) lockedWait(exclusive, wait bool, fn func() error) error {
	if !wait {
		if !s.lockMu.TryLock() {
			return ErrBusy
		}
	} else {
		s.lockMu.Lock()
	}
	defer s.lockMu.Unlock()
	f, err := s.kept(&s.files.lock, "lock", os.O_RDWR)
	if err != nil {
		return fmt.Errorf("state lock: %w", err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if !wait {
		how |= syscall.LOCK_NB
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return ErrBusy
		}
		return fmt.Errorf("state lock %s: %w", f.Name(), err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}

// read returns the bans of the state file with pending.jsonl merged in.
func (s *StateFile) read() ([]Ban, error) {
	bans, err := s.readFile()
	if err != nil {
		return nil, err
	}
	return s.mergePending(bans)
}

func (s *StateFile) readFile() ([]Ban, error) {
	// a stat first: an unchanged file is taken from the cache unopened
	// (a symbolic link put in its place is another inode, and is opened,
	// and refused)
	var st syscall.Stat_t
	if err := syscall.Lstat(s.Path(), &st); err == nil {
		if bans, ok := s.fromCache(keyOf(&st)); ok {
			return bans, nil
		}
	}
	f, err := safefile.Open(s.Path(), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	defer f.Close()
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	key := keyOf(&st)
	if bans, ok := s.fromCache(key); ok {
		return bans, nil
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	var doc stateDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("state %s: %w", s.Path(), err)
	}
	if doc.Version != stateVersion {
		return nil, fmt.Errorf("state %s: format version %d, this scanwarden reads %d", s.Path(), doc.Version, stateVersion)
	}
	for i, b := range doc.Bans {
		if !b.Addr.IsValid() {
			return nil, fmt.Errorf("state %s: ban %d has no valid address", s.Path(), i+1)
		}
	}
	sortBans(doc.Bans)
	s.mu.Lock()
	s.cached, s.key = slices.Clone(doc.Bans), key
	s.mu.Unlock()
	return doc.Bans, nil
}

func keyOf(st *syscall.Stat_t) fileKey {
	return fileKey{ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano()}
}

// fromCache returns a copy of the cached list if it came from the file
// with key.
func (s *StateFile) fromCache(key fileKey) ([]Ban, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if key != s.key || key.ino == 0 {
		return nil, false
	}
	return slices.Clone(s.cached), true
}

// write saves bans through safefile.Replace (the state's directory and
// state.json checked, no symbolic link followed): a temporary file, mode
// 0600, given to the directory's owner when root writes it (best effort,
// as giveToOwner), fsynced and renamed over the state; the directory is
// fsynced too, and a failure of that alone is not an error (the state was
// replaced).
func (s *StateFile) write(bans []Ban) error {
	sortBans(bans)
	if bans == nil {
		bans = []Ban{}
	}
	data, err := json.MarshalIndent(stateDoc{Version: stateVersion, Bans: bans}, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	o := safefile.Options{Mode: 0o600, UID: -1, GID: -1, OwnerOptional: true}
	if os.Geteuid() == 0 && s.uid > 0 {
		o.UID, o.GID = s.uid, s.gid
	}
	fi, err := safefile.Replace(s.Path(), data, o)
	var se *safefile.StepError
	if err != nil && !(errors.As(err, &se) && se.Step == safefile.StepSyncDir) {
		return fmt.Errorf("state: %w", err)
	}
	// the list as the cache's, under the file's identity (the rename
	// keeps the inode and the modification time): the next read, in a
	// moment for the next ban, need not parse what was just written
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.mu.Lock()
		s.cached, s.key = slices.Clone(bans), keyOf(st)
		s.mu.Unlock()
	}
	return nil
}

// giveToOwner makes a file root created in the state directory belong to
// the directory's owner (nothing happens for other users, who cannot
// chown, or when the owner is root).
func (s *StateFile) giveToOwner(f *os.File) {
	if os.Geteuid() != 0 || s.uid <= 0 {
		return
	}
	if fi, err := f.Stat(); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == s.uid && int(st.Gid) == s.gid {
			return
		}
	}
	f.Chown(s.uid, s.gid)
}

func sortBans(bans []Ban) {
	slices.SortFunc(bans, func(a, b Ban) int { return a.Addr.Compare(b.Addr) })
}

// searchBan finds addr's ban in bans sorted by sortBans.
func searchBan(bans []Ban, addr netip.Addr) (int, bool) {
	return slices.BinarySearchFunc(bans, addr, func(b Ban, a netip.Addr) int { return b.Addr.Compare(a) })
}

// findBan returns the index of addr's ban, or -1.
func findBan(bans []Ban, addr netip.Addr) int {
	for i := range bans {
		if bans[i].Addr == addr {
			return i
		}
	}
	return -1
}

// expiry returns when a ban made at now for proto lasts until; the zero
// time for d == 0 (never).
func expiry(now time.Time, d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return now.Add(d)
}
