package block

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The files of STATE_DIR and of the journal are held to one set of checks
// (internal/safefile): no symbolic link is followed, a world-writable file
// or directory is refused, and a refusal leaves the file a link points to
// as it was.

// precious writes a file that must survive a test untouched, and returns
// the function that checks it did.
func precious(t *testing.T, path string) func() {
	t.Helper()
	const content = "root:x:0:0:root:/root:/bin/sh\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if b, err := os.ReadFile(path); err != nil || string(b) != content {
			t.Errorf("the link's target %s changed: %q %v", path, b, err)
		}
	}
}

func safetyBan(last byte) Ban {
	now := time.Now()
	return Ban{Addr: netip.AddrFrom4([4]byte{198, 51, 100, last}), Proto: "tcp", Since: now, Until: now.Add(time.Hour)}
}

func wantRefusal(t *testing.T, what string, err error, path, why string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), why) {
		t.Errorf("%s: %v, want an error naming %s and saying %q", what, err, path, why)
	}
}

// TestStatePendingSymlinkRefused: a link planted at pending.jsonl (by
// whoever could write STATE_DIR) is never followed: recording, folding,
// updating (`scanwarden unblock`) and reading fail with an error naming
// it, and the file it points to is neither read, appended to nor
// truncated.
func TestStatePendingSymlinkRefused(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "passwd")
	intact := precious(t, victim)
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	pending := st.pendingPath()
	os.Remove(pending)
	if err := os.Symlink(victim, pending); err != nil {
		t.Fatal(err)
	}
	err = st.Update(func(bans []Ban) ([]Ban, bool, error) { return append(bans, safetyBan(1)), true, nil })
	wantRefusal(t, "Update", err, pending, "symbolic link")
	intact()
	ran := false
	_, err = st.RecordThen(safetyBan(2), time.Now(), nil, func() { ran = true })
	wantRefusal(t, "RecordThen", err, pending, "symbolic link")
	if ran {
		t.Error("RecordThen ran its then with the ban not recorded")
	}
	intact()
	wantRefusal(t, "Fold", st.Fold(), pending, "symbolic link")
	_, err = st.Load()
	wantRefusal(t, "Load", err, pending, "symbolic link")
	intact()
	// planted while the file is kept open: the next use sees the swap
	os.Remove(pending)
	if _, err := st.RecordThen(safetyBan(3), time.Now(), nil, nil); err != nil {
		t.Fatal(err)
	}
	os.Remove(pending)
	os.Symlink(victim, pending)
	_, err = st.Pend(safetyBan(4), time.Now(), nil, nil, true)
	wantRefusal(t, "Pend after the swap", err, pending, "symbolic link")
	err = st.Update(func(bans []Ban) ([]Ban, bool, error) { return nil, true, nil })
	wantRefusal(t, "Update after the swap", err, pending, "symbolic link")
	intact()
}

// TestStateJSONSymlinkRefused: a link planted at state.json is neither
// read through nor replaced: the error names it, and its target is
// untouched.
func TestStateJSONSymlinkRefused(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "shadow")
	intact := precious(t, victim)
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, st.Path()); err != nil {
		t.Fatal(err)
	}
	_, err = st.Load()
	wantRefusal(t, "Load", err, st.Path(), "symbolic link")
	err = st.Update(func(bans []Ban) ([]Ban, bool, error) { return append(bans, safetyBan(1)), true, nil })
	wantRefusal(t, "Update", err, st.Path(), "symbolic link")
	if fi, err := os.Lstat(st.Path()); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi, err)
	}
	intact()

	// a state read and cached, then swapped for a link: refused too
	os.Remove(st.Path())
	if err := st.Update(func(bans []Ban) ([]Ban, bool, error) { return append(bans, safetyBan(2)), true, nil }); err != nil {
		t.Fatal(err)
	}
	os.Remove(st.Path())
	os.Symlink(victim, st.Path())
	_, err = st.Load()
	wantRefusal(t, "Load of a swapped state", err, st.Path(), "symbolic link")
	intact()
}

// TestStateLockSymlinkRefused: the lock file is not opened (O_RDWR,
// O_CREATE) through a link either.
func TestStateLockSymlinkRefused(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	intact := precious(t, victim)
	lock := filepath.Join(dir, "lock")
	os.Symlink(victim, lock)
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Load()
	wantRefusal(t, "Load", err, lock, "symbolic link")
	intact()
}

// TestStateWorldWritableRefused: a world-writable STATE_DIR (sticky or not)
// is refused by OpenState, with an error naming it; one made
// world-writable later is refused when a file in it is opened or
// replaced; a world-writable state.json is refused.
func TestStateWorldWritableRefused(t *testing.T) {
	for _, mode := range []fs.FileMode{0o777, 0o777 | fs.ModeSticky} {
		dir := filepath.Join(t.TempDir(), "state")
		os.Mkdir(dir, 0o700)
		os.Chmod(dir, mode)
		st, err := OpenState(dir)
		wantRefusal(t, "OpenState of mode "+mode.String(), err, dir, "world-writable")
		if st != nil {
			t.Error("OpenState returned a state with its error")
		}
		if n, _ := os.ReadDir(dir); len(n) != 0 {
			t.Errorf("files created in a world-writable STATE_DIR: %v", n)
		}
	}

	dir := filepath.Join(t.TempDir(), "state")
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(func(bans []Ban) ([]Ban, bool, error) { return append(bans, safetyBan(1)), true, nil }); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	err = st.Update(func(bans []Ban) ([]Ban, bool, error) { return append(bans, safetyBan(2)), true, nil })
	wantRefusal(t, "Update in a directory made world-writable", err, dir, "world-writable")
	os.Chmod(dir, 0o700)
	if bans, err := st.Load(); err != nil || len(bans) != 1 {
		t.Errorf("the refused Update changed the state: %v %v", bans, err)
	}

	os.Chmod(st.Path(), 0o666)
	st2, err := OpenState(dir) // nothing cached
	if err != nil {
		t.Fatal(err)
	}
	_, err = st2.Load()
	wantRefusal(t, "Load of a world-writable state.json", err, st.Path(), "world-writable")
}

// TestJournalSymlinksRefused: a link planted at the history file or at a
// blocked file is refused, by an append and by the removal of a line, and
// its target is untouched.
func TestJournalSymlinksRefused(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	intact := precious(t, victim)
	history := filepath.Join(dir, "portsentry.history")
	base := filepath.Join(dir, "portsentry.blocked")
	blocked := base + ".stcp"
	j := NewJournal(history, base)
	defer j.Close()
	os.Symlink(victim, history)
	os.Symlink(victim, blocked)
	wantRefusal(t, "History", j.History("line"), history, "symbolic link")
	wantRefusal(t, "Blocked", j.Blocked("stcp", "line"), blocked, "symbolic link")
	wantRefusal(t, "Unblocked", j.Unblocked(netip.MustParseAddr("198.51.100.1")), blocked, "symbolic link")
	intact()

	// planted after the history file was opened (it is kept open): the
	// next append sees the swap and refuses it
	os.Remove(history)
	if err := j.History("first"); err != nil {
		t.Fatal(err)
	}
	os.Remove(history)
	os.Symlink(victim, history)
	wantRefusal(t, "History after the swap", j.History("second"), history, "symbolic link")
	intact()

	// the history file's directory made world-writable while it is open
	os.Remove(history)
	os.Chmod(dir, 0o777)
	err := j.History("third")
	wantRefusal(t, "History in a world-writable directory", err, dir, "world-writable")
	if _, err := os.Lstat(history); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("history file created in a world-writable directory: %v", err)
	}
}
