package hostsdeny

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/records"
	"github.com/scanwarden/scanwarden/internal/sandboxtest"
)

// TestWithLockDir: the lock lives in the directory given, under a name
// made from the file's path, and nothing but the file appears next to it.
func TestWithLockDir(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts.deny")
	locks := filepath.Join(dir, "state", "locks")
	b, err := New(path, tmplDebian, WithLockDir(locks))
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(locks, strings.ReplaceAll(strings.TrimPrefix(path, "/"), "/", "_")+".lock")
	if b.LockPath() != want {
		t.Errorf("LockPath() = %q, want %q", b.LockPath(), want)
	}
	if err := b.Block(t.Context(), ban(a1)); err != nil {
		t.Fatal(err)
	}
	if got := read(t, path); got != "ALL: 198.51.100.5 : DENY\n" {
		t.Errorf("file %q", got)
	}
	if _, err := os.Stat(want); err != nil {
		t.Errorf("lock file: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "hosts.deny" && e.Name() != "state" {
			t.Errorf("left next to the file: %s", e.Name())
		}
	}
	if d, _ := New(path, tmplDebian); d.LockPath() != path+records.LockSuffix {
		t.Errorf("default LockPath() = %q", d.LockPath())
	}
	if _, err := New(path, tmplDebian, WithLockDir("var/lib/scanwarden")); err == nil || !strings.Contains(err.Error(), "not an absolute path") {
		t.Errorf("relative lock directory: %v", err)
	}
}

// handJournal is a journal written by hand, from the format
// block/records documents.
func handJournal(target string, data string) []byte {
	return fmt.Appendf(nil, "scanwarden-journal 1\ntarget %q\nsize %d\nsha256 %x\n\n%s", target, len(data), sha256.Sum256([]byte(data)), data)
}

// TestSandboxedHostsDeny runs the backend on a hosts.deny that is, as
// under systemd's ProtectSystem=strict with ReadWritePaths=/etc/hosts.deny,
// a writable bind mount in a read-only directory (and, second, a bind
// mount in a writable directory): every operation works, in place, keeping
// the inode, owner and mode; concurrent writers in two processes lose
// nothing; and a rewrite interrupted after its journal was written is
// completed by the next backend before anything else.
func TestSandboxedHostsDeny(t *testing.T) {
	if !sandboxtest.InMountNS(t) {
		return
	}
	for _, roDir := range []bool{true, false} {
		t.Run(fmt.Sprintf("readonly-dir=%v", roDir), func(t *testing.T) {
			ctx := t.Context()
			top := t.TempDir()
			etc, locks := filepath.Join(top, "etc"), filepath.Join(top, "var", "lib", "scanwarden", "locks")
			os.Mkdir(etc, 0o755)
			path := filepath.Join(etc, "hosts.deny")
			const admin = "# admin\nsshd: 192.0.2.50\n"
			if err := os.WriteFile(path, []byte(admin), 0o640); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, 0o640)
			os.Chown(path, 0, 4242)
			sandboxtest.Sandbox(t, etc, path, roDir)

			if roDir {
				// the default lock, next to the file, cannot be made
				// here: a clear error, and nothing written
				d, _ := New(path, tmplDebian)
				err := d.Block(ctx, ban(a1))
				if !errors.Is(err, syscall.EROFS) || !strings.Contains(err.Error(), path+records.LockSuffix) {
					t.Errorf("Block with the lock next to the file: %v, want EROFS naming the lock file", err)
				}
				if got := read(t, path); got != admin {
					t.Fatalf("file changed: %q", got)
				}
			}

			b, err := New(path, tmplDebian, WithLockDir(locks))
			if err != nil {
				t.Fatal(err)
			}
			before := stat(t, path)
			step := func(what string, err error, want string) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if got := read(t, path); got != admin+want {
					t.Errorf("after %s:\n%q\nwant\n%q", what, got, admin+want)
				}
			}
			step("Block", b.Block(ctx, ban(a1)), "ALL: 198.51.100.5 : DENY\n")
			step("Block", b.Block(ctx, ban(a6)), "ALL: 198.51.100.5 : DENY\nALL: [fd00:77::5] : DENY\n")
			if got := list(t, b); !slices.Equal(got, []string{"198.51.100.5", "fd00:77::5"}) {
				t.Errorf("List = %v", got)
			}
			step("Unblock", b.Unblock(ctx, a1), "ALL: [fd00:77::5] : DENY\n")
			step("Sync", b.Sync(ctx, []block.Ban{ban(a2), ban(a6)}), "ALL: [fd00:77::5] : DENY\nALL: 198.51.100.6 : DENY\n")
			step("Flush", b.Flush(ctx), "")
			after := stat(t, path)
			if after.Ino != before.Ino || after.Uid != 0 || after.Gid != 4242 || after.Mode&0o7777 != 0o640 {
				t.Errorf("inode %d->%d, owner %d:%d, mode %04o: want the same file, 0:4242 0640", before.Ino, after.Ino, after.Uid, after.Gid, after.Mode&0o7777)
			}
			ents, _ := os.ReadDir(etc)
			if len(ents) != 1 {
				t.Errorf("files in %s: %v", etc, ents)
			}
			ents, _ = os.ReadDir(locks)
			if len(ents) != 1 || filepath.Join(locks, ents[0].Name()) != b.LockPath() {
				t.Errorf("files in %s: %v, want only %s", locks, ents, b.LockPath())
			}

			// two processes, each with five goroutines, and ten
			// goroutines with their own Backend here
			if err := os.WriteFile(path, []byte("# admin\n"), 0o640); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), "SCANWARDEN_HOSTSDENY_HELPER=block", "HELPER_PATH="+path, "HELPER_LOCKDIR="+locks)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			err = blockAll(ctx, b, 10, false, 4)
			if werr := cmd.Wait(); werr != nil {
				t.Fatalf("helper process: %v\n%s", werr, out.String())
			}
			if err != nil {
				t.Fatal(err)
			}
			exactlyOnce(t, b, path)
			if stat(t, path).Ino != before.Ino {
				t.Error("file replaced")
			}

			// a crash after the journal was committed, with the file
			// torn: the next backend's first operation completes it
			journal := records.JournalPath(path, records.WithLockDir(locks))
			done := "# admin\nALL: 198.51.100.5 : DENY\n"
			if err := os.WriteFile(journal, handJournal(path, done), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(done[:20]), 0o640); err != nil {
				t.Fatal(err)
			}
			nb, err := New(path, tmplDebian, WithLockDir(locks))
			if err != nil {
				t.Fatal(err)
			}
			if got := list(t, nb); !slices.Equal(got, []string{"198.51.100.5"}) {
				t.Errorf("List after a crash = %v", got)
			}
			if got := read(t, path); got != done {
				t.Errorf("file after recovery %q, want %q", got, done)
			}
			if _, err := os.Stat(journal); err == nil {
				t.Error("journal left after recovery")
			}
			// and a writer as the first operation
			done2 := done + "ALL: [fd00:77::5] : DENY\n"
			os.WriteFile(journal, handJournal(path, done2), 0o600)
			os.WriteFile(path, []byte(done2[:len(done)+3]), 0o640)
			nb, _ = New(path, tmplDebian, WithLockDir(locks))
			step2 := nb.Block(ctx, ban(a2))
			if step2 != nil {
				t.Fatal(step2)
			}
			if got := read(t, path); got != done2+"ALL: 198.51.100.6 : DENY\n" {
				t.Errorf("Block after a crash: file %q", got)
			}
			if _, err := os.Stat(journal); err == nil {
				t.Error("journal left after recovery")
			}
			if after := stat(t, path); after.Gid != 4242 || after.Mode&0o7777 != 0o640 {
				t.Errorf("owner or mode changed: gid %d mode %04o", after.Gid, after.Mode&0o7777)
			}
		})
	}
}
