// Package hostsdeny blocks scanners the way PortSentry's KILL_HOSTS_DENY
// did: one line per blocked address in a hosts_access(5) deny file
// (/etc/hosts.deny), the line being the KILL_HOSTS_DENY template with
// $TARGET$ replaced by the address.
//
// scanwarden recognises its own lines exactly: a line is ours when it is
// the template rendered for some address, character for character. Any
// other line, including an administrator's entry for the same address in
// another form (`ALL: 198.51.100.5` when the template is `ALL: $TARGET$ :
// DENY`), a comment or a blank line, is never changed, moved or removed,
// and keeps its bytes (a missing final newline included; the one exception
// is that appending after a last line without a newline has to end that
// line). A line continued from the one before it (which ends with a
// backslash) is part of that rule, never ours; and an entry appended after
// such a line is preceded by a blank line so that it does not become part
// of it.
//
// The file is changed only through records.RewriteFile: refused when it is
// a symbolic link or it or its directory is world-writable (the checks of
// internal/safefile, which every file scanwarden writes is held to; every
// open of the file carries O_NOFOLLOW); read, changed and written under
// an exclusive flock(2) on its lock file and a mutex in the process; not
// rewritten at all when there is nothing to change. The lock file is a
// separate, stable file (rename puts a new inode at PATH, so PATH itself
// cannot carry the lock): PATH.scanwarden.lock by default,
// LOCKDIR/NAME.lock with WithLockDir (the daemon and the CLI use
// STATE_DIR/locks, e.g. /var/lib/scanwarden/locks/etc_hosts.deny.lock).
//
// Two ways of writing, chosen per change (see records.RewriteFile):
//
//   - replace, whenever the directory allows it: a temporary file with
//     the old file's mode, owner and group, fsynced, renamed over the old
//     one and the directory fsynced. Readers (tcpd) see the old file or
//     the new one; a crash leaves one of the two. A missing file is
//     created with mode 0644, owned by the daemon's user.
//   - journaled in place, when the directory is read-only or the file a
//     bind mount (a service with ProtectSystem=strict and
//     ReadWritePaths=/etc/hosts.deny): the new contents are committed to
//     a journal next to the lock file, then written over the file (only
//     from the first byte that changes), which is cut to length and
//     fsynced, then the journal is removed. Owner, mode, ACLs and inode
//     are kept. A crash may leave the file half-written on disk, and the
//     backend's next operation (whichever: Block, Unblock, Sync, Flush,
//     List), or any other scanwarden writer of the file, completes it
//     from the journal before anything else. A reader that does not lock
//     (tcpd) may see a mix for the microseconds of the write. A missing
//     file cannot be created this way: create it (empty) first.
package hostsdeny

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/records"
)

const (
	// Target is the placeholder KILL_HOSTS_DENY puts the address in.
	Target = "$TARGET$"
	// filePerm is the mode of a hosts.deny scanwarden has to create:
	// the mode Debian ships it with (tcpd runs as the daemons' users and
	// must read it).
	filePerm fs.FileMode = 0o644
	// maxAddrText is the longest address as an entry writes it: a full
	// IPv6 address in brackets is 41 characters.
	maxAddrText = 41
	// templateKey names the template in errors.
	templateKey = "KILL_HOSTS_DENY"
)

// Backend keeps scanners out with hosts.deny entries. It implements
// block.Blocker and is safe for concurrent use.
type Backend struct {
	path    string
	tmpl    string
	segs    []string // tmpl split at Target: len(segs) >= 2
	lockDir string   // "" is next to the file
	mu      sync.Mutex
}

// Option is an option of New.
type Option func(*Backend)

// WithLockDir keeps the file's lock and journal in dir, an absolute
// directory created (0700) on first use, instead of next to the file (see
// records.WithLockDir for the names): a daemon whose /etc is read-only
// cannot create /etc/hosts.deny.scanwarden.lock. Every process writing
// the file must use the same dir; scanwarden's daemon and its unblock and
// flush commands use STATE_DIR/locks. An empty dir is the default.
func WithLockDir(dir string) Option {
	return func(b *Backend) { b.lockDir = dir }
}

var _ block.Blocker = (*Backend)(nil)

// New returns a backend writing entries made from template (the value of
// KILL_HOSTS_DENY, e.g. PortSentry 1.2's `ALL: $TARGET$` or Debian's
// `ALL: $TARGET$ : DENY`) to path, which must be absolute. The template
// must be one hosts_access(5) rule: it contains $TARGET$ after the ':'
// that ends the daemon list, no line break or other control character
// (tabs are fine), does not start with '#' (a comment) or end with '\' (a
// continuation), and has no $PORT$ or $MODE$: scanwarden keeps one entry
// per address whatever port or mode caught it, and must recognise its
// entries again (use KILL_RUN_CMD for per-port actions). Nothing is read
// or written until the first operation (which completes a journal an
// interrupted in-place rewrite left before anything else).
func New(path, template string, opts ...Option) (*Backend, error) {
	if path == "" || !filepath.IsAbs(path) {
		return nil, fmt.Errorf("hosts.deny file %q: not an absolute path", path)
	}
	if err := checkTemplate(template); err != nil {
		return nil, err
	}
	b := &Backend{path: path, tmpl: template, segs: strings.Split(template, Target)}
	for _, o := range opts {
		o(b)
	}
	if b.lockDir != "" && !filepath.IsAbs(b.lockDir) {
		return nil, fmt.Errorf("hosts.deny lock directory %q: not an absolute path", b.lockDir)
	}
	return b, nil
}

// ropts are the records options of the file.
func (b *Backend) ropts() []records.Option {
	return []records.Option{records.WithLockDir(b.lockDir)}
}

// LockPath returns the lock file that serialises the writers of the file.
func (b *Backend) LockPath() string { return records.LockPath(b.path, b.ropts()...) }

func checkTemplate(t string) error {
	bad := func(why string) error { return fmt.Errorf("%s %q: %s", templateKey, t, why) }
	if strings.TrimSpace(t) == "" {
		return bad("empty")
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return bad(fmt.Sprintf("control character %q at offset %d (an entry is one line)", c, i))
		}
	}
	i := strings.Index(t, Target)
	if i < 0 {
		return bad("no " + Target + " to put the address in")
	}
	for _, p := range []string{"$PORT$", "$MODE$"} {
		if strings.Contains(t, p) {
			return bad(p + " is not supported in hosts.deny entries: scanwarden keeps one entry per address, whatever port or mode caught it, and recognises its entries by the template; use KILL_RUN_CMD for per-port actions")
		}
	}
	if !strings.Contains(t[:i], ":") {
		return bad("not a hosts_access(5) rule: want DAEMONS: " + Target + ", e.g. \"ALL: " + Target + "\"")
	}
	if strings.HasPrefix(strings.TrimLeft(t, " \t"), "#") {
		return bad("starts with '#', which makes every entry a comment")
	}
	if strings.HasSuffix(t, `\`) {
		return bad(`ends with '\', which would join every entry with the line after it`)
	}
	if strings.Contains(t, Target+Target) {
		return bad("two " + Target + " next to each other")
	}
	return nil
}

// Name returns "hosts.deny".
func (b *Backend) Name() string { return "hosts.deny" }

// Traits: Records, hosts.deny records a block for TCP wrappers.
func (b *Backend) Traits() block.Traits { return block.Traits{Records: true} }

// Prepare needs nothing: the file is written on the first block.
func (b *Backend) Prepare(context.Context) error { return nil }

// Close holds nothing open between calls.
func (b *Backend) Close() error { return nil }

// Path returns the file the backend writes.
func (b *Backend) Path() string { return b.path }

// Template returns the KILL_HOSTS_DENY template.
func (b *Backend) Template() string { return b.tmpl }

// norm returns addr as hosts.deny names it: unmapped; an invalid address
// or one with a zone (hosts_access cannot express it) is an error.
func norm(addr netip.Addr) (netip.Addr, error) {
	if !addr.IsValid() {
		return netip.Addr{}, errors.New("hosts.deny: invalid address")
	}
	if addr.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("hosts.deny: %s: an address with a zone cannot be written to hosts.deny", addr)
	}
	return addr.Unmap(), nil
}

// addrText is an address as hosts_access(5) writes it: IPv4 as it is,
// IPv6 in brackets.
func addrText(a netip.Addr) string {
	if a.Is4() {
		return a.String()
	}
	return "[" + a.String() + "]"
}

// render is the entry line (without newline) for a normalised address.
func (b *Backend) render(a netip.Addr) string {
	return strings.Join(b.segs, addrText(a))
}

// Entry returns the line Block writes for addr (without the newline):
// the template with $TARGET$ replaced by the address, IPv4 (and
// IPv4-mapped IPv6) as dotted quad, IPv6 in brackets, `[2001:db8::1]`.
func (b *Backend) Entry(addr netip.Addr) (string, error) {
	a, err := norm(addr)
	if err != nil {
		return "", err
	}
	return b.render(a), nil
}

// Describe returns Entry(addr), or "" for an address hosts.deny cannot
// name; the Manager logs it in the "blocked via wrappers" line.
func (b *Backend) Describe(addr netip.Addr) string {
	s, _ := b.Entry(addr)
	return s
}

// parse returns the address of line (without its newline) when line is
// one of our entries: the template rendered for that address exactly.
func (b *Backend) parse(line string) (netip.Addr, bool) {
	if !strings.HasPrefix(line, b.segs[0]) {
		return netip.Addr{}, false
	}
	rest := line[len(b.segs[0]):]
	next := b.segs[1]
	for l := 1; l <= len(rest) && l <= maxAddrText && isAddrChar(rest[l-1]); l++ {
		if next == "" && l != len(rest) || next != "" && !strings.HasPrefix(rest[l:], next) {
			continue
		}
		text := rest[:l]
		if len(text) > 2 && text[0] == '[' && text[len(text)-1] == ']' {
			text = text[1 : len(text)-1]
		}
		a, err := netip.ParseAddr(text)
		if err != nil || a.Is4In6() || a.Zone() != "" {
			continue // never in an entry of ours: we write those as IPv4
		}
		if b.render(a) == line {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func isAddrChar(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' ||
		c == '.' || c == ':' || c == '[' || c == ']'
}

// entry is one line of the file: its bytes, terminator included, and
// whether it is ours and for which address.
type entry struct {
	text string
	ours bool
	addr netip.Addr
}

// lines splits a file into lines, recognising ours. A line that continues
// the one before it (after a backslash-newline) is never ours.
func (b *Backend) lines(data []byte) []entry {
	if len(data) == 0 {
		return nil
	}
	parts := strings.SplitAfter(string(data), "\n")
	if parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	out := make([]entry, len(parts))
	cont := false
	for i, p := range parts {
		out[i].text = p
		if !cont {
			out[i].addr, out[i].ours = b.parse(strings.TrimSuffix(p, "\n"))
		}
		cont = strings.HasSuffix(p, "\\\n")
	}
	return out
}

// join puts lines back together.
func join(es []entry) []byte {
	var sb strings.Builder
	for _, e := range es {
		sb.WriteString(e.text)
	}
	return []byte(sb.String())
}

// appendLine adds line at the end, ending the last line first if it has no
// newline, and after a blank line if the last line continues onto the
// next.
func appendLine(es []entry, line string) []entry {
	if n := len(es); n > 0 {
		if !strings.HasSuffix(es[n-1].text, "\n") {
			es[n-1].text += "\n"
		}
		if strings.HasSuffix(es[n-1].text, "\\\n") {
			es = append(es, entry{text: "\n"})
		}
	}
	return append(es, entry{text: line + "\n", ours: true})
}

// editBlock adds a's entry unless one is there.
func (b *Backend) editBlock(old []byte, a netip.Addr) ([]byte, bool) {
	es := b.lines(old)
	for _, e := range es {
		if e.ours && e.addr == a {
			return old, false
		}
	}
	return join(appendLine(es, b.render(a))), true
}

// editKeep keeps only our entries for which keep is true, other lines
// untouched.
func (b *Backend) editKeep(old []byte, keep func(netip.Addr) bool) ([]byte, bool) {
	es := b.lines(old)
	out := es[:0:0]
	for _, e := range es {
		if e.ours && !keep(e.addr) {
			continue
		}
		out = append(out, e)
	}
	if len(out) == len(es) {
		return old, false
	}
	return join(out), true
}

// editSync makes our entries exactly want (normalised, no duplicates),
// keeping the first entry of each wanted address where it is and
// appending the missing ones in want's order.
func (b *Backend) editSync(old []byte, want []netip.Addr) ([]byte, bool) {
	wanted := make(map[netip.Addr]bool, len(want))
	for _, a := range want {
		wanted[a] = true
	}
	es := b.lines(old)
	out := make([]entry, 0, len(es)+len(want))
	have := map[netip.Addr]bool{}
	changed := false
	for _, e := range es {
		if e.ours {
			if !wanted[e.addr] || have[e.addr] {
				changed = true
				continue
			}
			have[e.addr] = true
		}
		out = append(out, e)
	}
	for _, a := range want {
		if !have[a] {
			have[a] = true
			out = appendLine(out, b.render(a))
			changed = true
		}
	}
	if !changed {
		return old, false
	}
	return join(out), true
}

// rewrite runs one edit under the lock.
func (b *Backend) rewrite(ctx context.Context, edit func(old []byte) ([]byte, bool)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return records.RewriteFile(ctx, b.path, filePerm, func(old []byte) ([]byte, bool, error) {
		updated, changed := edit(old)
		return updated, changed, nil
	}, b.ropts()...)
}

// Block makes sure the file has ban.Addr's entry: it appends it (creating
// the file with mode 0644 when missing) unless an identical line is there
// already, in which case the file is not rewritten. An address with a
// zone is an error.
func (b *Backend) Block(ctx context.Context, ban block.Ban) error {
	a, err := norm(ban.Addr)
	if err != nil {
		return err
	}
	return b.rewrite(ctx, func(old []byte) ([]byte, bool) { return b.editBlock(old, a) })
}

// Unblock removes every line that is addr's entry, and nothing else; when
// there is none (or no file), nothing is written.
func (b *Backend) Unblock(ctx context.Context, addr netip.Addr) error {
	a, err := norm(addr)
	if err != nil {
		return err
	}
	return b.rewrite(ctx, func(old []byte) ([]byte, bool) {
		return b.editKeep(old, func(x netip.Addr) bool { return x != a })
	})
}

// List returns the addresses that have an entry, each once, in file
// order. A missing file blocks nothing. The file is read under its lock
// (shared, after completing a leftover journal), so that an in-place
// rewrite is never seen half-done.
func (b *Backend) List(ctx context.Context) ([]netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := records.ReadFileLocked(ctx, b.path, b.ropts()...)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, e := range b.lines(data) {
		if e.ours && !seen[e.addr] {
			seen[e.addr] = true
			out = append(out, e.addr)
		}
	}
	return out, nil
}

// Sync makes the entries exactly those of want's addresses: missing ones
// appended, ours for other addresses and duplicates removed, other lines
// untouched; the file is rewritten only when that changes something. A
// ban whose address hosts.deny cannot name is an error and nothing is
// changed.
func (b *Backend) Sync(ctx context.Context, want []block.Ban) error {
	addrs := make([]netip.Addr, 0, len(want))
	for _, w := range want {
		a, err := norm(w.Addr)
		if err != nil {
			return err
		}
		addrs = append(addrs, a)
	}
	return b.rewrite(ctx, func(old []byte) ([]byte, bool) { return b.editSync(old, addrs) })
}

// Flush removes every entry of ours and nothing else.
func (b *Backend) Flush(ctx context.Context) error {
	return b.rewrite(ctx, func(old []byte) ([]byte, bool) {
		return b.editKeep(old, func(netip.Addr) bool { return false })
	})
}
