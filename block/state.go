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
	"slices"
	"sync"
	"syscall"
	"time"
)

// stateVersion is the state file's format version.
const stateVersion = 1

// pendingName is the file in STATE_DIR a new ban is appended to, as one
// JSON line, before the firewall is changed (RecordThen): one small write
// instead of a rewrite and rename of the whole state, which took ~0.35 ms
// on ext4 (the rename over an existing file starts writeback), so that
// the block is in place sooner. Every read merges it; every durable
// rewrite of the state removes it.
const pendingName = "pending.jsonl"

// StateFile is the list of current bans, kept in STATE_DIR/state.json so
// that blocks survive a restart. Every change is a read-modify-write under
// an exclusive flock on STATE_DIR/lock (so the daemon and `scanwarden
// unblock` never lose each other's changes), written to a temporary file,
// fsynced and renamed over the old one: a crash leaves the old or the new
// list, never half of one. A new ban is first appended to
// STATE_DIR/pending.jsonl (see RecordThen), which reads merge in until the
// next rewrite folds it into the list.
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
// missing.
func OpenState(dir string) (*StateFile, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	s := &StateFile{dir: dir, uid: -1, gid: -1}
	if fi, err := os.Stat(dir); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			s.uid, s.gid = int(st.Uid), int(st.Gid)
		}
	}
	return s, nil
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

// RecordThen records ban (replacing an expired ban of its address) and
// runs then, unless the state holds a ban of the address still in force
// at now (then taken is true and nothing is done) or admit, when not nil,
// says no (asked only when the address is not taken; nothing is done
// either). All of it happens under
// the state's lock: the ban is appended as one line to pending.jsonl
// (merged by every read, so that from then on no crash of the process can
// lose it), then runs (the firewall change, not delayed by the disk), and
// only then is the state file rewritten, made durable, and the pending
// line dropped. On an error before then ran, then does not run.
func (s *StateFile) RecordThen(ban Ban, now time.Time, admit func() bool, then func()) (taken bool, err error) {
	err = s.locked(true, func() error {
		bans, err := s.read()
		if err != nil {
			return err
		}
		if i := findBan(bans, ban.Addr); i >= 0 {
			if !bans[i].Expired(now) {
				taken = true
				return nil
			}
			bans[i] = ban
		} else {
			bans = append(bans, ban)
		}
		if admit != nil && !admit() {
			return nil
		}
		line, err := json.Marshal(ban)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(s.pendingPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("state: %w", err)
		}
		s.giveToOwner(f)
		_, err = f.Write(append(line, '\n'))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("state %s: %w", s.pendingPath(), err)
		}
		if then != nil {
			then()
		}
		if err := s.write(bans); err != nil {
			return err // the ban stays in pending.jsonl
		}
		s.dropPending()
		return nil
	})
	return taken, err
}

func (s *StateFile) pendingPath() string { return filepath.Join(s.dir, pendingName) }

// dropPending removes pending.jsonl once the state file holds what it
// held (under the lock).
func (s *StateFile) dropPending() {
	if err := os.Remove(s.pendingPath()); err == nil {
		if d, err := os.Open(s.dir); err == nil {
			d.Sync()
			d.Close()
		}
	}
}

// mergePending returns bans with the bans of pending.jsonl put in (a
// line's ban replaces a ban of the same address). A line that cannot be
// read (a crash in the middle of its write) is skipped.
func (s *StateFile) mergePending(bans []Ban) ([]Ban, error) {
	data, err := os.ReadFile(s.pendingPath())
	if errors.Is(err, fs.ErrNotExist) {
		return bans, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	changed := false
	for _, line := range bytes.Split(data, []byte("\n")) {
		var b Ban
		if len(line) == 0 || json.Unmarshal(line, &b) != nil || !b.Addr.IsValid() {
			continue
		}
		if i := findBan(bans, b.Addr); i >= 0 {
			bans[i] = b
		} else {
			bans = append(bans, b)
		}
		changed = true
	}
	if changed {
		sortBans(bans)
	}
	return bans, nil
}

func (s *StateFile) locked(exclusive bool, fn func() error) error {
	f, err := os.OpenFile(filepath.Join(s.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("state lock: %w", err)
	}
	defer f.Close()
	s.giveToOwner(f)
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
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
	f, err := os.Open(s.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	key := fileKey{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		key.ino = st.Ino
	}
	s.mu.Lock()
	if key == s.key && key.ino != 0 {
		bans := slices.Clone(s.cached)
		s.mu.Unlock()
		return bans, nil
	}
	s.mu.Unlock()
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

// write saves bans: a temporary file, fsynced, renamed over the state.
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
	tmp, err := os.CreateTemp(s.dir, ".state-*.tmp")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("state %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("state %s: %w", tmp.Name(), err)
	}
	s.giveToOwner(tmp)
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("state %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("state %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), s.Path()); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	ok = true
	if d, err := os.Open(s.dir); err == nil {
		d.Sync()
		d.Close()
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
