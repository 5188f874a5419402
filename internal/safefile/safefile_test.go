package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func mustWrite(t *testing.T, path, content string, perm fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // past the umask
		t.Fatal(err)
	}
}

func lstat(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

// names lists dir.
func names(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestRefusals: every entry point refuses a symbolic link, a world-writable
// file, a file in a world-writable directory (sticky too) and a FIFO, with
// an error naming the path and the rule; a link's target is never touched
// and nothing is created in a world-writable directory.
func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	mustWrite(t, target, "precious\n", 0o600)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling")
	os.Symlink(filepath.Join(dir, "nowhere"), dangling)
	ww := filepath.Join(dir, "ww")
	mustWrite(t, ww, "x\n", 0o666)
	wwDir := filepath.Join(dir, "wwdir")
	os.Mkdir(wwDir, 0o755)
	os.Chmod(wwDir, 0o777|fs.ModeSticky) // like /tmp
	inWW := filepath.Join(wwDir, "f")
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ path, want string }{
		{link, "refusing to use a symbolic link"},
		{dangling, "refusing to use a symbolic link"},
		{ww, "the file is world-writable (mode 0666)"},
		{inWW, "its directory " + wwDir + " is world-writable (mode 0777)"},
		{fifo, "not a regular file"},
	}
	for _, c := range cases {
		check := func(what string, err error) {
			t.Helper()
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
				t.Errorf("%s(%s) = %v, want an error naming it and saying %q", what, c.path, err, c.want)
			}
		}
		_, err := CheckPath(c.path)
		check("CheckPath", err)
		for _, flag := range []int{os.O_RDONLY, os.O_WRONLY | os.O_APPEND | os.O_CREATE, os.O_RDWR | os.O_CREATE} {
			f, err := Open(c.path, flag, 0o600)
			if err == nil {
				f.Close()
			}
			if c.path == fifo && flag != os.O_RDONLY {
				// no reader: ENXIO at once, before any fstat
				if err == nil || !strings.Contains(err.Error(), c.path) {
					t.Errorf("Open(%s, %#x) = %v", c.path, flag, err)
				}
				continue
			}
			check("Open", err)
		}
		_, _, err = ReadFile(c.path)
		check("ReadFile", err)
		_, err = Replace(c.path, []byte("new\n"), Options{Mode: 0o600, UID: -1, GID: -1})
		check("Replace", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "precious\n" {
		t.Errorf("symlink target changed: %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "nowhere")); err == nil {
		t.Error("a dangling link's target was created")
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Error("the link was replaced")
	}
	if n := names(wwDir); len(n) != 0 {
		t.Errorf("files created in a world-writable directory: %q", n)
	}
}

func TestCheckDir(t *testing.T) {
	dir := t.TempDir()
	if err := CheckDir(dir); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []fs.FileMode{0o777, 0o777 | fs.ModeSticky, 0o703} {
		os.Chmod(dir, mode)
		err := CheckDir(dir)
		if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "world-writable") {
			t.Errorf("mode %v: %v, want an error naming %s and saying world-writable", mode, err, dir)
		}
	}
	os.Chmod(dir, 0o700)
	file := filepath.Join(dir, "f")
	mustWrite(t, file, "", 0o600)
	if err := CheckDir(file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file: %v", err)
	}
	if err := CheckDir(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}

// TestOpenRefusesLateLink: a link put in place after the check (the race
// a check of names alone loses) is refused by the open itself.
func TestOpenRefusesLateLink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	mustWrite(t, target, "precious\n", 0o600)
	path := filepath.Join(dir, "pending.jsonl")
	if fi, err := CheckPath(path); fi != nil || err != nil {
		t.Fatal(fi, err)
	}
	os.Symlink(target, path)
	f, err := Open(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err == nil {
		f.Truncate(0)
		f.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "symbolic link") || !strings.Contains(err.Error(), path) {
		t.Errorf("Open = %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "precious\n" {
		t.Errorf("target %q", b)
	}
}

func TestReadFileTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big")
	mustWrite(t, path, "", 0o600)
	if err := os.Truncate(path, MaxSize+1); err != nil { // sparse
		t.Fatal(err)
	}
	if data, _, err := ReadFile(path); err == nil || data != nil || !strings.Contains(err.Error(), path) {
		t.Errorf("ReadFile of %d bytes: %d bytes, %v", MaxSize+1, len(data), err)
	}
}

func TestReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	fi, err := Replace(path, []byte("one\n"), Options{Mode: 0o640, UID: -1, GID: -1})
	if err != nil {
		t.Fatal(err)
	}
	st := lstat(t, path)
	if st.Mode&0o7777 != 0o640 || int(st.Uid) != os.Geteuid() {
		t.Errorf("created with mode %04o uid %d", st.Mode&0o7777, st.Uid)
	}
	if got := fi.Sys().(*syscall.Stat_t); got.Ino != st.Ino || got.Size != st.Size || got.Mtim != st.Mtim {
		t.Errorf("returned ino %d size %d, the file has %d %d", got.Ino, got.Size, st.Ino, st.Size)
	}
	mustWrite(t, path, "old\n", 0o600)
	before := lstat(t, path)
	if _, err := Replace(path, []byte("two\n"), Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two\n" {
		t.Errorf("file %q", b)
	}
	if lstat(t, path).Ino == before.Ino {
		t.Error("written in place, not replaced")
	}
	if n := names(dir); len(n) != 1 {
		t.Errorf("files left: %q", n)
	}
	if os.Geteuid() != 0 {
		t.Skip("giving a file another owner needs root")
	}
	mode := fs.FileMode(0o640) | fs.ModeSetgid
	if _, err := Replace(path, []byte("three\n"), Options{Mode: mode, UID: 4321, GID: 8765}); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, path); st.Uid != 4321 || st.Gid != 8765 || st.Mode&0o7777 != 0o2640 {
		t.Errorf("owner %d:%d mode %04o, want 4321:8765 2640", st.Uid, st.Gid, st.Mode&0o7777)
	}
}

// TestReplaceFaults: a failure at any step before the rename is a
// StepError naming the path and the step, and leaves the file and its
// directory as they were; so does the caller's Check.
func TestReplaceFaults(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	mustWrite(t, path, "orig\n", 0o600)
	before := lstat(t, path)
	boom := errors.New("injected fault")
	for _, step := range []string{StepCreate, StepWrite, StepChmod, StepChown, StepFsync, StepClose, StepRename} {
		_, err := Replace(path, []byte("new\n"), Options{Mode: 0o600, UID: -1, GID: -1, Fault: func(s string) error {
			if s == step {
				return boom
			}
			return nil
		}})
		var se *StepError
		if !errors.As(err, &se) || se.Step != step || !errors.Is(err, boom) || !strings.Contains(err.Error(), path) {
			t.Errorf("fault at %s: %v", step, err)
		}
		if st := lstat(t, path); st.Ino != before.Ino || st.Mtim != before.Mtim {
			t.Errorf("fault at %s: file replaced", step)
		}
		if n := names(dir); len(n) != 1 {
			t.Errorf("fault at %s: files left %q", step, n)
		}
	}
	_, err := Replace(path, []byte("new\n"), Options{Mode: 0o600, UID: -1, GID: -1, Check: func() error { return boom }})
	if err != boom {
		t.Errorf("Check's error: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "orig\n" || len(names(dir)) != 1 {
		t.Errorf("after Check's error: file %q, files %q", b, names(dir))
	}
}

// TestReplaceLinkPlantedBeforeRename: a link put at the path after the
// check is replaced by the rename, its target never written.
func TestReplaceLinkPlantedBeforeRename(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	mustWrite(t, target, "precious\n", 0o600)
	path := filepath.Join(dir, "state.json")
	_, err := Replace(path, []byte("new\n"), Options{Mode: 0o600, UID: -1, GID: -1, Check: func() error {
		return os.Symlink(target, path)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "precious\n" {
		t.Errorf("target %q", b)
	}
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("path is not the new regular file: %v %v", fi, err)
	}
}
