package block

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const stateOwnerChild = "SCANWARDEN_TEST_STATE_OWNER"

// TestOpenStateForeignOwner: a process that does not run as root refuses
// a STATE_DIR of another user (who could replace the state's files), and
// takes one of root's or its own. The test runs itself again as nobody.
func TestOpenStateForeignOwner(t *testing.T) {
	if dir := os.Getenv(stateOwnerChild); dir != "" {
		_, err := OpenState(filepath.Join(dir, "foreign"))
		if err == nil || !strings.Contains(err.Error(), "foreign: refusing to use this directory: it belongs to") || !strings.Contains(err.Error(), "4321") {
			t.Fatalf("foreign STATE_DIR: %v", err)
		}
		for _, name := range []string{"roots", "own"} {
			if _, err := OpenState(filepath.Join(dir, name)); err != nil {
				t.Fatalf("%s STATE_DIR: %v", name, err)
			}
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown and to run as another user")
	}
	const nobody = 65534
	// a directory nobody may enter, holding a copy of this test binary
	dir, err := os.MkdirTemp("", "stateowner")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "block.test")
	copyTestBinary(t, os.Args[0], bin)
	for name, uid := range map[string]int{"foreign": 4321, "roots": 0, "own": nobody} {
		p := filepath.Join(dir, name)
		os.Mkdir(p, 0o755)
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run=^TestOpenStateForeignOwner$", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), stateOwnerChild+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	// root itself opens the STATE_DIR of another user: its unblock and
	// flush beside a daemon that runs as its own user
	if _, err := OpenState(filepath.Join(dir, "foreign")); err != nil {
		t.Fatalf("root: %v", err)
	}
}

func copyTestBinary(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
