package block

import (
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

// StateFile is the list of current bans, kept in STATE_DIR/state.json so
// that blocks survive a restart. Every change is a read-modify-write under
// an exclusive flock on STATE_DIR/lock (so the daemon and `scanwarden
// unblock` never lose each other's changes), written to a temporary file,
// fsynced and renamed over the old one: a crash leaves the old or the new
// list, never half of one.
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
	return s.UpdateThen(fn, nil)
}

// UpdateThen is Update with then (when not nil) run under the same lock
// once fn's bans are in place: the new file is renamed over the old one
// before then runs, and made durable (fsync) only after it, so that what
// then does (a firewall block, within a millisecond of the alert) does not
// wait for the disk. A crash of the process at any point leaves the bans
// recorded; a power loss before the fsync may lose them, as it loses the
// kernel's rules in any case. then runs even when fn changed nothing.
func (s *StateFile) UpdateThen(fn func(bans []Ban) (out []Ban, changed bool, err error), then func()) error {
	return s.locked(true, func() error {
		bans, err := s.read()
		if err != nil {
			return err
		}
		out, changed, err := fn(bans)
		if err != nil {
			return err
		}
		durable := func() error { return nil }
		if changed {
			if durable, err = s.put(out); err != nil {
				return err
			}
		}
		if then != nil {
			then()
		}
		return durable()
	})
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

func (s *StateFile) read() ([]Ban, error) {
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

// put writes bans to a temporary file and renames it over the state, and
// returns the function that makes the new state durable (fsync of the file
// and the directory).
func (s *StateFile) put(bans []Ban) (durable func() error, err error) {
	sortBans(bans)
	if bans == nil {
		bans = []Ban{}
	}
	data, err := json.MarshalIndent(stateDoc{Version: stateVersion, Bans: bans}, "", "  ")
	if err != nil {
		return nil, err
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(s.dir, ".state-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return nil, fmt.Errorf("state %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return nil, fmt.Errorf("state %s: %w", tmp.Name(), err)
	}
	s.giveToOwner(tmp)
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("state %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), s.Path()); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	ok = true
	return func() error {
		f, err := os.Open(s.Path())
		if err != nil {
			return fmt.Errorf("state: %w", err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("state %s: %w", s.Path(), err)
		}
		if d, err := os.Open(s.dir); err == nil {
			d.Sync()
			d.Close()
		}
		return nil
	}, nil
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
