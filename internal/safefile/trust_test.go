package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// nobody is the uid and gid the root-only tests give files to: a user
// that is neither root nor the one running the tests.
const nobody = 65534

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
}

func TestCheckTrustedGoodFiles(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "scanwarden.conf")
	mustWrite(t, conf, "x\n", 0o644)
	// a file of root or of the running user, mode 0644, in a directory
	// of theirs (t.TempDir is under /tmp: sticky, so it is no problem)
	if w, err := CheckTrusted(conf); err != nil || len(w) != 0 {
		t.Fatalf("0644 file: %v %q", err, w)
	}
	// a link to it, in a trusted directory, is followed
	link := filepath.Join(dir, "link.conf")
	os.Symlink("scanwarden.conf", link)
	if w, err := CheckTrusted(link); err != nil || len(w) != 0 {
		t.Fatalf("link: %v %q", err, w)
	}
	// a program of the system
	if _, err := os.Stat("/bin/sh"); err == nil {
		if w, err := CheckTrusted("/bin/sh"); err != nil || len(w) != 0 {
			t.Fatalf("/bin/sh: %v %q", err, w)
		}
	}
	// a file in a sticky world-writable directory: only its owner may
	// replace it
	sticky := filepath.Join(dir, "sticky")
	os.Mkdir(sticky, 0o755)
	os.Chmod(sticky, 0o777|os.ModeSticky)
	p := filepath.Join(sticky, "prog")
	mustWrite(t, p, "#!/bin/sh\n", 0o755)
	if w, err := CheckTrusted(p); err != nil || len(w) != 0 {
		t.Fatalf("file in a sticky directory: %v %q", err, w)
	}
}

func TestCheckTrustedRefusals(t *testing.T) {
	dir := t.TempDir()
	ww := filepath.Join(dir, "ww.conf")
	mustWrite(t, ww, "x\n", 0o666)
	_, err := CheckTrusted(ww)
	if err == nil || !strings.Contains(err.Error(), ww) || !strings.Contains(err.Error(), "writable by every user (mode 0666)") {
		t.Errorf("world-writable file: %v", err)
	}

	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o755)
	os.Chmod(open, 0o777)
	prog := filepath.Join(open, "notify")
	mustWrite(t, prog, "#!/bin/sh\n", 0o755)
	_, err = CheckTrusted(prog)
	if err == nil || !strings.Contains(err.Error(), prog+": "+open+": the directory is writable by every user") {
		t.Errorf("file in a world-writable directory: %v", err)
	}
	// a link in a good directory to a file under a bad one is refused
	link := filepath.Join(dir, "notify")
	os.Symlink(prog, link)
	if _, err := CheckTrusted(link); err == nil || !strings.Contains(err.Error(), open) {
		t.Errorf("link to a file in a world-writable directory: %v", err)
	}
	// so is a link that sits in a bad directory
	good := filepath.Join(dir, "good")
	mustWrite(t, good, "x\n", 0o644)
	link = filepath.Join(open, "good")
	os.Symlink(good, link)
	if _, err := CheckTrusted(link); err == nil || !strings.Contains(err.Error(), open) {
		t.Errorf("link in a world-writable directory: %v", err)
	}

	if _, err := CheckTrusted(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	if _, err := CheckTrusted(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := CheckTrusted(filepath.Join(good, "x")); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file as a directory: %v", err)
	}
	// ".." after a link leads where the kernel takes it, from the link's
	// target, not where the path reads as text: good/up/../notify is
	// open/notify when good/up leads to open/sub
	os.Mkdir(filepath.Join(open, "sub"), 0o755)
	os.Mkdir(filepath.Join(dir, "gooddir"), 0o755)
	mustWrite(t, filepath.Join(dir, "gooddir", "notify"), "#!/bin/sh\n", 0o755)
	os.Symlink(filepath.Join(open, "sub"), filepath.Join(dir, "gooddir", "up"))
	dotdot := filepath.Join(dir, "gooddir", "up") + "/../notify"
	if _, err := CheckTrusted(dotdot); err == nil || !strings.Contains(err.Error(), open+": the directory is writable by every user") {
		t.Errorf(".. after a link into a world-writable directory: %v", err)
	}
	// and a relative path is taken from the working directory as it is
	t.Chdir(filepath.Join(dir, "gooddir"))
	if _, err := CheckTrusted("up/../notify"); err == nil || !strings.Contains(err.Error(), open) {
		t.Errorf("relative .. after a link: %v", err)
	}
	if _, err := CheckTrusted("notify"); err != nil {
		t.Errorf("relative path of a good file: %v", err)
	}

	loop := filepath.Join(dir, "loop")
	os.Symlink("loop", loop)
	if _, err := CheckTrusted(loop); err == nil || !strings.Contains(err.Error(), "symbolic links") {
		t.Errorf("link loop: %v", err)
	}
}

func TestCheckTrustedForeignOwner(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "scanwarden.conf")
	mustWrite(t, conf, "x\n", 0o644)
	if err := os.Chown(conf, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	_, err := CheckTrusted(conf)
	if err == nil || !strings.Contains(err.Error(), conf+": the file belongs to") || !strings.Contains(err.Error(), "65534") ||
		!strings.Contains(err.Error(), "neither root nor the user scanwarden runs as (root)") {
		t.Errorf("foreign file: %v", err)
	}
	// a directory of another user on the way
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	prog := filepath.Join(sub, "notify")
	mustWrite(t, prog, "#!/bin/sh\n", 0o755)
	os.Chown(sub, nobody, nobody)
	if _, err := CheckTrusted(prog); err == nil || !strings.Contains(err.Error(), sub+": the directory belongs to") {
		t.Errorf("foreign directory: %v", err)
	}
	// group-writable by another group: a warning, not a refusal
	os.Chown(sub, 0, 0)
	os.Chown(prog, 0, nobody)
	os.Chmod(prog, 0o775)
	w, err := CheckTrusted(prog)
	if err != nil || len(w) != 1 || !strings.Contains(w[0], prog+": the file is writable by") || !strings.Contains(w[0], "65534") {
		t.Errorf("group-writable: %v %q", err, w)
	}
	// by root's group: nothing to say
	os.Chown(prog, 0, 0)
	if w, err := CheckTrusted(prog); err != nil || len(w) != 0 {
		t.Errorf("group-writable by root's group: %v %q", err, w)
	}
}

func TestCheckDirOwner(t *testing.T) {
	dir := t.TempDir()
	if err := CheckDirOwner(dir); err != nil {
		t.Fatalf("own directory: %v", err)
	}
	if err := CheckDirOwner(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	needRoot(t)
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o700)
	if err := os.Chown(state, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	err := CheckDirOwner(state)
	if err == nil || !strings.HasPrefix(err.Error(), state+": refusing to use this directory: it belongs to") || !strings.Contains(err.Error(), "65534") {
		t.Errorf("foreign directory: %v", err)
	}
	fi, _ := os.Stat(state)
	if err := CheckOwner(state, fi); err == nil || !strings.Contains(err.Error(), state) {
		t.Errorf("CheckOwner: %v", err)
	}
	// root's own
	os.Chown(state, 0, 0)
	if err := CheckDirOwner(state); err != nil {
		t.Errorf("root's directory: %v", err)
	}
}
