package hostsdeny

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/records"
)

const (
	tmpl12     = "ALL: $TARGET$"
	tmplDebian = "ALL: $TARGET$ : DENY"
)

var (
	a1     = netip.MustParseAddr("198.51.100.5")
	a2     = netip.MustParseAddr("198.51.100.6")
	a6     = netip.MustParseAddr("fd00:77::5")
	mapped = netip.MustParseAddr("::ffff:198.51.100.6")
)

func ban(a netip.Addr) block.Ban { return block.Ban{Addr: a, Proto: "tcp", Port: 111, Type: "syn"} }

// setup returns a backend on a hosts.deny in a fresh directory holding
// content (no file when content is "-").
func setup(t *testing.T, tmpl, content string) (*Backend, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hosts.deny")
	if content != "-" {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := New(path, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return b, path
}

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func stat(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

// unchanged fails unless op leaves the file's bytes, inode and mtime as
// they were: it was not rewritten.
func unchanged(t *testing.T, path, what string, op func() error) {
	t.Helper()
	before, content := stat(t, path), read(t, path)
	time.Sleep(2 * time.Millisecond) // so that a rewrite would show in mtime
	if err := op(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	after := stat(t, path)
	if after.Ino != before.Ino || after.Mtim != before.Mtim || read(t, path) != content {
		t.Errorf("%s rewrote the file", what)
	}
}

func list(t *testing.T, b *Backend) []string {
	t.Helper()
	addrs, err := b.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}

func TestNewRefuses(t *testing.T) {
	for _, c := range []struct{ path, tmpl, want string }{
		{"hosts.deny", tmpl12, "not an absolute path"},
		{"", tmpl12, "not an absolute path"},
		{"/etc/hosts.deny", "", "empty"},
		{"/etc/hosts.deny", "ALL: 1.2.3.4", "no $TARGET$"},
		{"/etc/hosts.deny", "ALL: $TARGET$ : spawn /bin/echo $PORT$", "$PORT$ is not supported"},
		{"/etc/hosts.deny", "ALL: $TARGET$ # $MODE$", "$MODE$ is not supported"},
		{"/etc/hosts.deny", "ALL: $TARGET$\nALL: x", "control character"},
		{"/etc/hosts.deny", "ALL: $TARGET$\r", "control character"},
		{"/etc/hosts.deny", "$TARGET$", "not a hosts_access(5) rule"},
		{"/etc/hosts.deny", "ALL $TARGET$ : DENY", "not a hosts_access(5) rule"},
		{"/etc/hosts.deny", "#ALL: $TARGET$", "comment"},
		{"/etc/hosts.deny", " \t# ALL: $TARGET$", "comment"},
		{"/etc/hosts.deny", `ALL: $TARGET$ \`, "join every entry"},
		{"/etc/hosts.deny", "ALL: $TARGET$$TARGET$", "next to each other"},
	} {
		_, err := New(c.path, c.tmpl)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%q, %q) = %v, want an error saying %q", c.path, c.tmpl, err, c.want)
		}
	}
	for _, tmpl := range []string{tmpl12, tmplDebian, "sshd, in.telnetd: $TARGET$", "ALL:$TARGET$", "ALL: $TARGET$ : spawn (/bin/echo %a from %h >> /var/log/denied) & : DENY", "ALL\t: $TARGET$, $TARGET$/32"} {
		if _, err := New("/etc/hosts.deny", tmpl); err != nil {
			t.Errorf("New(%q): %v", tmpl, err)
		}
	}
}

func TestEntry(t *testing.T) {
	b, _ := setup(t, tmplDebian, "-")
	for _, c := range []struct {
		addr netip.Addr
		want string
	}{
		{a1, "ALL: 198.51.100.5 : DENY"},
		{mapped, "ALL: 198.51.100.6 : DENY"},
		{a6, "ALL: [fd00:77::5] : DENY"},
		{netip.MustParseAddr("2001:db8::1"), "ALL: [2001:db8::1] : DENY"},
		{netip.MustParseAddr("::1"), "ALL: [::1] : DENY"},
	} {
		got, err := b.Entry(c.addr)
		if err != nil || got != c.want {
			t.Errorf("Entry(%v) = %q, %v; want %q", c.addr, got, err, c.want)
		}
		if b.Describe(c.addr) != c.want {
			t.Errorf("Describe(%v) = %q", c.addr, b.Describe(c.addr))
		}
	}
	if _, err := b.Entry(netip.MustParseAddr("fe80::1%eth0")); err == nil {
		t.Error("Entry with a zone: no error")
	}
	if _, err := b.Entry(netip.Addr{}); err == nil {
		t.Error("Entry with an invalid address: no error")
	}
	if b.Name() != "hosts.deny" || b.Template() != tmplDebian || !strings.HasSuffix(b.Path(), "/hosts.deny") {
		t.Error("Name, Template or Path wrong")
	}
}

// admin is a hosts.deny with an administrator's own lines, some of them
// about the addresses the tests block.
const admin = `# /etc/hosts.deny: list of hosts that are _not_ allowed to access the system.
#                  See the manual pages hosts_access(5) and hosts_options(5).

ALL: 198.51.100.5
sshd: 198.51.100.6 : DENY
ALL: [fd00:77::5]/128
# ALL: 198.51.100.5 : DENY
   ALL: 198.51.100.5 : DENY
ALL: 198.51.100.005 : DENY
ALL: 198.51.100.5 : DENY ` + "\n"

func TestOperationsBothTemplates(t *testing.T) {
	for _, tmpl := range []string{tmpl12, tmplDebian} {
		t.Run(tmpl, func(t *testing.T) {
			ctx := t.Context()
			start := admin
			if tmpl == tmpl12 {
				// the 1.2 template's rendering of 198.51.100.5 is in
				// admin; use a file without it
				start = strings.Replace(admin, "ALL: 198.51.100.5\n", "", 1)
			}
			b, path := setup(t, tmpl, start)
			entry := func(a netip.Addr) string { e, _ := b.Entry(a); return e + "\n" }
			if got := list(t, b); len(got) != 0 {
				t.Fatalf("List of an administrator's file = %q, want nothing of ours", got)
			}
			for _, a := range []netip.Addr{a1, mapped, a6} {
				if err := b.Block(ctx, ban(a)); err != nil {
					t.Fatal(err)
				}
			}
			want := start + entry(a1) + entry(a2) + entry(a6)
			if got := read(t, path); got != want {
				t.Fatalf("after Block:\n%s\nwant\n%s", got, want)
			}
			if got := list(t, b); !slices.Equal(got, []string{"198.51.100.5", "198.51.100.6", "fd00:77::5"}) {
				t.Errorf("List = %q", got)
			}
			// idempotent: no second entry, no rewrite
			unchanged(t, path, "Block again", func() error { return b.Block(ctx, ban(a2)) })
			unchanged(t, path, "Block mapped", func() error { return b.Block(ctx, ban(mapped)) })

			if err := b.Unblock(ctx, mapped); err != nil {
				t.Fatal(err)
			}
			want = start + entry(a1) + entry(a6)
			if got := read(t, path); got != want {
				t.Fatalf("after Unblock:\n%s\nwant\n%s", got, want)
			}
			unchanged(t, path, "Unblock again", func() error { return b.Unblock(ctx, a2) })

			// Sync: a duplicate and a stray entry of ours appear
			os.WriteFile(path, []byte(want+entry(a1)+entry(netip.MustParseAddr("203.0.113.9"))), 0o644)
			if err := b.Sync(ctx, []block.Ban{ban(a6), ban(a1), ban(a2), ban(a2)}); err != nil {
				t.Fatal(err)
			}
			want = start + entry(a1) + entry(a6) + entry(a2)
			if got := read(t, path); got != want {
				t.Fatalf("after Sync:\n%s\nwant\n%s", got, want)
			}
			unchanged(t, path, "Sync again", func() error { return b.Sync(ctx, []block.Ban{ban(a2), ban(a1), ban(a6)}) })

			if err := b.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if got := read(t, path); got != start {
				t.Fatalf("after Flush:\n%s\nwant the administrator's file back:\n%s", got, start)
			}
			unchanged(t, path, "Flush again", func() error { return b.Flush(ctx) })
			if got := list(t, b); len(got) != 0 {
				t.Errorf("List after Flush = %q", got)
			}
		})
	}
}

// TestAdministratorLineWithTheSameText: with the 1.2 template, an
// administrator's `ALL: 198.51.100.5` is indistinguishable from ours, so
// Block finds the address blocked and adds nothing; with Debian's it is
// someone else's line, and survives Block, Unblock, Sync and Flush.
func TestAdministratorLineWithTheSameText(t *testing.T) {
	ctx := t.Context()
	b, path := setup(t, tmplDebian, "ALL: 198.51.100.5\n")
	b.Block(ctx, ban(a1))
	b.Unblock(ctx, a1)
	b.Block(ctx, ban(a1))
	b.Sync(ctx, nil)
	b.Flush(ctx)
	if got := read(t, path); got != "ALL: 198.51.100.5\n" {
		t.Errorf("administrator's line not kept as it was: %q", got)
	}

	b, path = setup(t, tmpl12, "ALL: 198.51.100.5\n")
	unchanged(t, path, "Block of an address with the same line", func() error { return b.Block(ctx, ban(a1)) })
}

func TestFileShapes(t *testing.T) {
	ctx := t.Context()
	for _, c := range []struct {
		name, start, want string
		op                func(*Backend) error
	}{
		{"missing file created", "-", "ALL: 198.51.100.5 : DENY\n",
			func(b *Backend) error { return b.Block(ctx, ban(a1)) }},
		{"empty file", "", "ALL: 198.51.100.5 : DENY\n",
			func(b *Backend) error { return b.Block(ctx, ban(a1)) }},
		{"last line without newline is ended", "sshd: ALL", "sshd: ALL\nALL: 198.51.100.5 : DENY\n",
			func(b *Backend) error { return b.Block(ctx, ban(a1)) }},
		{"after a continued line, a blank line first", "sshd: 10.0.0.1, \\\n", "sshd: 10.0.0.1, \\\n\nALL: 198.51.100.5 : DENY\n",
			func(b *Backend) error { return b.Block(ctx, ban(a1)) }},
		{"a continuation is not ours", "sshd: 10.0.0.1 \\\nALL: 198.51.100.5 : DENY\n", "sshd: 10.0.0.1 \\\nALL: 198.51.100.5 : DENY\n",
			func(b *Backend) error { return b.Flush(ctx) }},
		{"removing the last line keeps the others' newlines", "a\nALL: 198.51.100.5 : DENY", "a\n",
			func(b *Backend) error { return b.Unblock(ctx, a1) }},
		{"a CRLF line is not ours", "x\r\nALL: 198.51.100.5 : DENY\r\nALL: 198.51.100.5 : DENY\n", "x\r\nALL: 198.51.100.5 : DENY\r\n",
			func(b *Backend) error { return b.Unblock(ctx, a1) }},
		{"blank lines and comments stay in place", "\n# c\n\nALL: 198.51.100.5 : DENY\n\n# d\n", "\n# c\n\n\n# d\n",
			func(b *Backend) error { return b.Flush(ctx) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, path := setup(t, tmplDebian, c.start)
			if err := c.op(b); err != nil {
				t.Fatal(err)
			}
			if got := read(t, path); got != c.want {
				t.Errorf("file\n%q\nwant\n%q", got, c.want)
			}
		})
	}
	// a created file is 0644
	b, path := setup(t, tmpl12, "-")
	if err := b.Block(ctx, ban(a6)); err != nil {
		t.Fatal(err)
	}
	if m := stat(t, path).Mode & 0o7777; m != 0o644 {
		t.Errorf("created with mode %04o, want 0644", m)
	}
	if got := read(t, path); got != "ALL: [fd00:77::5]\n" {
		t.Errorf("file %q", got)
	}
	// operations that change nothing do not create the file
	b, path = setup(t, tmpl12, "-")
	for _, op := range []func() error{
		func() error { return b.Unblock(ctx, a1) },
		func() error { return b.Flush(ctx) },
		func() error { return b.Sync(ctx, nil) },
	} {
		if err := op(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("file created by an operation with nothing to write")
	}
	if got := list(t, b); len(got) != 0 {
		t.Errorf("List of a missing file = %q", got)
	}
}

func TestBadAddresses(t *testing.T) {
	ctx := t.Context()
	b, path := setup(t, tmpl12, "x\n")
	zoned := netip.MustParseAddr("fe80::1%eth0")
	for what, err := range map[string]error{
		"Block zone":    b.Block(ctx, ban(zoned)),
		"Block invalid": b.Block(ctx, ban(netip.Addr{})),
		"Unblock zone":  b.Unblock(ctx, zoned),
		"Sync zone":     b.Sync(ctx, []block.Ban{ban(a1), ban(zoned)}),
	} {
		if err == nil {
			t.Errorf("%s: no error", what)
		}
	}
	if got := read(t, path); got != "x\n" {
		t.Errorf("file changed: %q", got)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Block(canceled, ban(a1)); err == nil {
		t.Error("Block with a canceled context: no error")
	}
}

func TestRefusesUnsafeFiles(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	os.WriteFile(real, []byte("x\n"), 0o644)
	link := filepath.Join(dir, "hosts.deny")
	os.Symlink(real, link)
	ww := filepath.Join(dir, "ww")
	os.WriteFile(ww, []byte("x\n"), 0o644)
	os.Chmod(ww, 0o666)
	wwDir := filepath.Join(dir, "open")
	os.Mkdir(wwDir, 0o755)
	os.Chmod(wwDir, 0o777)
	inWW := filepath.Join(wwDir, "hosts.deny")
	os.WriteFile(inWW, []byte("x\n"), 0o644)
	for _, c := range []struct{ path, want string }{
		{link, "symbolic link"},
		{ww, "the file is world-writable"},
		{inWW, "its directory " + wwDir + " is world-writable"},
	} {
		b, err := New(c.path, tmpl12)
		if err != nil {
			t.Fatal(err)
		}
		for what, err := range map[string]error{
			"Block":   b.Block(ctx, ban(a1)),
			"Unblock": b.Unblock(ctx, a1),
			"Sync":    b.Sync(ctx, []block.Ban{ban(a1)}),
			"Flush":   b.Flush(ctx),
		} {
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
				t.Errorf("%s on %s: %v, want an error naming it and saying %q", what, c.path, err, c.want)
			}
		}
		if _, err := b.List(ctx); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("List on %s: %v", c.path, err)
		}
	}
	for _, p := range []string{real, ww, inWW} {
		if got := read(t, p); got != "x\n" {
			t.Errorf("%s changed: %q", p, got)
		}
	}
}

func TestKeepsOwnerAndMode(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	ctx := t.Context()
	b, path := setup(t, tmplDebian, "# mine\n")
	if err := os.Chown(path, 4321, 8765); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o640)
	before := stat(t, path)
	if err := b.Block(ctx, ban(a1)); err != nil {
		t.Fatal(err)
	}
	if after := stat(t, path); after.Ino == before.Ino {
		t.Error("file changed in place instead of replaced")
	}
	if err := b.Block(ctx, ban(a6)); err != nil {
		t.Fatal(err)
	}
	after := stat(t, path)
	if after.Uid != 4321 || after.Gid != 8765 || after.Mode&0o7777 != 0o640 {
		t.Errorf("owner %d:%d mode %04o, want 4321:8765 0640", after.Uid, after.Gid, after.Mode&0o7777)
	}
	if got := read(t, path); got != "# mine\nALL: 198.51.100.5 : DENY\nALL: [fd00:77::5] : DENY\n" {
		t.Errorf("file %q", got)
	}
}

// addrs50 are the addresses the concurrency tests block.
func addrs50() []netip.Addr {
	var out []netip.Addr
	for i := range 40 {
		out = append(out, netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)}))
	}
	for i := range 10 {
		out = append(out, netip.MustParseAddr(fmt.Sprintf("fd00:77::%x", 0x100+i)))
	}
	return out
}

// blockAll blocks every address of addrs50 in a random order from n
// goroutines; with shared, all use b, otherwise each its own Backend on
// the same file.
func blockAll(ctx context.Context, b *Backend, n int, shared bool, seed uint64) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := b
			if !shared {
				var err error
				if mine, err = New(b.path, b.tmpl, WithLockDir(b.lockDir)); err != nil {
					errs <- err
					return
				}
			}
			as := addrs50()
			rand.New(rand.NewPCG(seed, uint64(g))).Shuffle(len(as), func(i, j int) { as[i], as[j] = as[j], as[i] })
			for _, a := range as {
				if err := mine.Block(ctx, ban(a)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// exactlyOnce checks that the file holds the administrator's first line
// and then every address's entry once.
func exactlyOnce(t *testing.T, b *Backend, path string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(read(t, path), "\n"), "\n")
	if lines[0] != "# admin" {
		t.Errorf("first line %q", lines[0])
	}
	count := map[string]int{}
	for _, l := range lines[1:] {
		count[l]++
	}
	for _, a := range addrs50() {
		e, _ := b.Entry(a)
		if count[e] != 1 {
			t.Errorf("%q appears %d times", e, count[e])
		}
		delete(count, e)
	}
	for l := range count {
		t.Errorf("unexpected line %q", l)
	}
}

func TestConcurrentBlockGoroutines(t *testing.T) {
	for _, shared := range []bool{true, false} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			b, path := setup(t, tmplDebian, "# admin\n")
			if err := blockAll(t.Context(), b, 10, shared, 1); err != nil {
				t.Fatal(err)
			}
			exactlyOnce(t, b, path)
			got := list(t, b)
			if len(got) != 50 {
				t.Errorf("List has %d addresses", len(got))
			}
		})
	}
}

// TestHelperProcess is the second process of TestConcurrentBlockProcesses;
// it does nothing in a normal run.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("SCANWARDEN_HOSTSDENY_HELPER") != "block" {
		return
	}
	b, err := New(os.Getenv("HELPER_PATH"), tmplDebian, WithLockDir(os.Getenv("HELPER_LOCKDIR")))
	if err == nil {
		err = blockAll(context.Background(), b, 5, true, 2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func TestConcurrentBlockProcesses(t *testing.T) {
	b, path := setup(t, tmplDebian, "# admin\n")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SCANWARDEN_HOSTSDENY_HELPER=block", "HELPER_PATH="+path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err := blockAll(t.Context(), b, 5, true, 3)
	if werr := cmd.Wait(); werr != nil {
		t.Fatalf("helper process: %v\n%s", werr, out.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	exactlyOnce(t, b, path)
	if _, err := os.Stat(path + records.LockSuffix); err != nil {
		t.Errorf("lock file: %v", err)
	}
}

// TestFailedWriteKeepsOriginal fills a small tmpfs so that writing the
// new file fails: the original stays as it was and nothing is left over.
func TestFailedWriteKeepsOriginal(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0755"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	path := filepath.Join(dir, "hosts.deny")
	var sb strings.Builder
	for i := 0; sb.Len() < 40<<10; i++ {
		fmt.Fprintf(&sb, "sshd: 10.%d.%d.%d\n", i>>16&255, i>>8&255, i&255)
	}
	orig := sb.String()
	if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := New(path, tmplDebian)
	if err != nil {
		t.Fatal(err)
	}
	before := stat(t, path)
	err = b.Block(t.Context(), ban(a1))
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "no space") {
		t.Fatalf("Block on a full disk: %v, want an error naming the file and the cause", err)
	}
	if after := stat(t, path); after.Ino != before.Ino || read(t, path) != orig {
		t.Error("original changed")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "hosts.deny" && e.Name() != "hosts.deny"+records.LockSuffix {
			t.Errorf("left over: %s", e.Name())
		}
	}
	// once there is room, it works
	if err := os.WriteFile(path, []byte("# small\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.Block(t.Context(), ban(a1)); err != nil {
		t.Fatal(err)
	}
	if got := read(t, path); got != "# small\nALL: 198.51.100.5 : DENY\n" {
		t.Errorf("file %q", got)
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		"ALL: 198.51.100.5 : DENY", "ALL: [fd00:77::5] : DENY", "ALL: [::ffff:1.2.3.4] : DENY", "ALL: ::1 : DENY",
		"ALL: 1.2.3.4", "ALL: [1:2:3:4:5:6:7:8]", "ALL: 01.2.3.4 : DENY", "ALL: [] : DENY", "ALL: [ : DENY", "",
	} {
		f.Add(0, s)
		f.Add(1, s)
		f.Add(2, s)
	}
	tmpls := []string{tmplDebian, tmpl12, "ALL: $TARGET$, $TARGET$ : DENY"}
	f.Fuzz(func(t *testing.T, which int, line string) {
		b, err := New("/etc/hosts.deny", tmpls[uint(which)%uint(len(tmpls))])
		if err != nil {
			t.Fatal(err)
		}
		a, ok := b.parse(line)
		if ok && b.render(a) != line {
			t.Fatalf("%q parsed as %v, which renders as %q", line, a, b.render(a))
		}
		if ok && (a.Is4In6() || a.Zone() != "") {
			t.Fatalf("%q parsed as non-canonical %v", line, a)
		}
	})
}

// FuzzEdit runs the edits over arbitrary files: no panic, lines that are
// not ours are kept byte for byte and in order, and each edit is
// idempotent.
func FuzzEdit(f *testing.F) {
	f.Add([]byte(admin), uint8(1))
	f.Add([]byte("ALL: 198.51.100.5 : DENY\nALL: 198.51.100.5 : DENY"), uint8(2))
	f.Add([]byte("x \\\nALL: [fd00:77::5] : DENY\n\\"), uint8(3))
	f.Add([]byte(""), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, pick uint8) {
		b, err := New("/etc/hosts.deny", tmplDebian)
		if err != nil {
			t.Fatal(err)
		}
		as := []netip.Addr{a1, a2, a6}
		a := as[int(pick)%len(as)]
		others := func(d []byte) string {
			var sb strings.Builder
			for _, e := range b.lines(d) {
				if !e.ours {
					sb.WriteString(strings.TrimSuffix(e.text, "\n"))
					sb.WriteByte('\n')
				}
			}
			return sb.String()
		}
		check := func(what string, out []byte) {
			if got, want := others(out), others(data); got != want && !(strings.HasSuffix(want, "\\\n") && strings.TrimSuffix(got, "\n") == want) {
				t.Fatalf("%s changed other lines:\n%q\nto\n%q", what, want, got)
			}
		}
		blocked, _ := b.editBlock(data, a)
		check("Block", blocked)
		if again, changed := b.editBlock(blocked, a); changed || !bytes.Equal(again, blocked) {
			t.Fatalf("Block not idempotent on %q", data)
		}
		n := 0
		for _, e := range b.lines(blocked) {
			if e.ours && e.addr == a {
				n++
			}
		}
		if n == 0 {
			t.Fatalf("Block left no entry in %q", blocked)
		}
		removed, _ := b.editKeep(blocked, func(x netip.Addr) bool { return x != a })
		check("Unblock", removed)
		for _, e := range b.lines(removed) {
			if e.ours && e.addr == a {
				t.Fatalf("Unblock left an entry in %q", removed)
			}
		}
		synced, _ := b.editSync(data, []netip.Addr{a, a1})
		check("Sync", synced)
		if again, changed := b.editSync(synced, []netip.Addr{a1, a}); changed || !bytes.Equal(again, synced) {
			t.Fatalf("Sync not idempotent on %q", data)
		}
		flushed, _ := b.editKeep(data, func(netip.Addr) bool { return false })
		check("Flush", flushed)
		for _, e := range b.lines(flushed) {
			if e.ours {
				t.Fatalf("Flush left %q", e.text)
			}
		}
	})
}
