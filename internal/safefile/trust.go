package safefile

// Who may change a file: the owner checks. The checks of safefile.go are
// about the files scanwarden writes (no symbolic link, nothing
// world-writable). The files it takes instructions from (its config file
// and ignore file) and the programs it runs (KILL_ROUTE, KILL_RUN_CMD) need
// more: nobody but root and the user scanwarden runs as may be able to
// change them, or the directories that lead to them, or that user could
// make scanwarden run what they like. The same goes for the owner of
// STATE_DIR, who could replace the state's files.

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// maxLinks bounds the symbolic links CheckTrusted follows for one path,
// as the kernel does (ELOOP after 40).
const maxLinks = 40

// owner returns the uid and gid of fi; ok is false when the file system
// gave no owner.
func owner(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, -1, false
	}
	return int(st.Uid), int(st.Gid), true
}

// trustedUID reports whether a file owned by uid is trusted: root's, or the
// effective user's (the user scanwarden runs as).
func trustedUID(uid int) bool { return uid == 0 || uid == os.Geteuid() }

// trustedGID reports whether the members of group gid may change what
// scanwarden trusts: root's group, or the effective group of scanwarden.
func trustedGID(gid int) bool { return gid == 0 || gid == os.Getegid() }

// userName is "user NAME (uid N)", or "uid N" when it has no name.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		return fmt.Sprintf("user %s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// groupName is "group NAME (gid N)", or "gid N" when it has no name.
func groupName(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil && g.Name != "" {
		return fmt.Sprintf("group %s (gid %d)", g.Name, gid)
	}
	return fmt.Sprintf("gid %d", gid)
}

// runningAs describes the user scanwarden runs as, for messages.
func runningAs() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	return userName(os.Geteuid())
}

// CheckOwner reports whether the file or directory at path, whose Stat (or
// Lstat) is fi, belongs to a user scanwarden trusts: root, or the user it
// runs as (its effective uid). Any other owner could change it, or, for a
// directory, replace the files in it, whatever its mode says. The error
// names path, its owner and the user scanwarden runs as.
func CheckOwner(path string, fi fs.FileInfo) error {
	uid, _, ok := owner(fi)
	if !ok || trustedUID(uid) {
		return nil
	}
	return fmt.Errorf("%s: belongs to %s, neither root nor the user scanwarden runs as (%s), so that user could change it", path, userName(uid), runningAs())
}

// CheckDirOwner reports whether dir (symbolic links followed) belongs to
// root or to the user scanwarden runs as (CheckOwner): a directory of
// another user is refused, since that user could replace the files in it,
// as a world-writable one is by CheckDir. The error names dir and its
// owner.
func CheckDirOwner(dir string) error {
	di, err := os.Stat(dir)
	if err != nil {
		return err // *PathError names dir
	}
	uid, _, ok := owner(di)
	if !ok || trustedUID(uid) {
		return nil
	}
	return fmt.Errorf("%s: refusing to use this directory: it belongs to %s, neither root nor the user scanwarden runs as (%s), so that user could replace the files in it (chown it to the user scanwarden runs as)",
		dir, userName(uid), runningAs())
}

// CheckTrusted reports whether path may be trusted as instructions (a
// config or ignore file) or run as a program: whether only root and the
// user scanwarden runs as can change what path names. Every directory met
// while resolving path, from "/" down, symbolic links followed (and the
// directories their targets lead through), and the file itself must:
//
//   - belong to root or to the user scanwarden runs as (CheckOwner);
//   - not be writable by every user; a directory with the sticky bit (like
//     /tmp) is the exception, since there only the owner of an entry may
//     rename or remove it, and that owner is checked in turn.
//
// The file must be a regular file. These are refusals: err names path,
// the file or directory at fault and the reason. Write permission for a
// group other than root's or scanwarden's own (its effective group) is
// returned as a warning instead, one per file or directory: the members of
// that group could change the file, which is worth knowing but common on
// systems where, say, /usr/local belongs to the group staff.
func CheckTrusted(path string) (warnings []string, err error) {
	// Not filepath.Abs: it cleans the path as text, and "link/../x" is
	// not "x" to the kernel when link leads elsewhere. The walk below
	// resolves each ".." where the kernel would.
	if !filepath.IsAbs(path) {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		path = wd + "/" + path
	}
	check := func(name string, fi fs.FileInfo, last bool) error {
		w, err := checkTrustedStep(path, name, fi, last)
		if w != "" {
			warnings = append(warnings, w)
		}
		return err
	}

	rootInfo, err := os.Stat("/")
	if err != nil {
		return nil, err
	}
	if err := check("/", rootInfo, false); err != nil {
		return warnings, err
	}
	rest := components(path)
	cur, links, reached := "/", 0, false
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		if c == ".." {
			cur = filepath.Dir(cur)
			reached = false
			continue
		}
		next := filepath.Join(cur, c)
		fi, err := os.Lstat(next)
		if err != nil {
			return warnings, err // *PathError names the file; fs.ErrNotExist when missing
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if links++; links > maxLinks {
				return warnings, fmt.Errorf("%s: too many levels of symbolic links", path)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return warnings, err
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			rest = append(components(target), rest...)
			continue
		}
		last := len(rest) == 0
		if !last && !fi.IsDir() {
			return warnings, fmt.Errorf("%s: %s is not a directory", path, next)
		}
		if err := check(next, fi, last); err != nil {
			return warnings, err
		}
		if last && !fi.Mode().IsRegular() {
			return warnings, fmt.Errorf("%s: not a regular file (%s)", path, fi.Mode().Type())
		}
		cur, reached = next, last
	}
	if !reached {
		// the path ended at a directory ("/", "..")
		return warnings, fmt.Errorf("%s: not a regular file (%s is a directory)", path, cur)
	}
	return warnings, nil
}

// checkTrustedStep checks one step of CheckTrusted's walk to path: name,
// the file (last) or a directory on the way, whose stat is fi. It returns
// the error that makes the path untrusted, or a warning (a group other
// than root's or scanwarden's may write it).
func checkTrustedStep(path, name string, fi fs.FileInfo, last bool) (warning string, err error) {
	at := name
	if name != path {
		at = path + ": " + name
	}
	uid, gid, ok := owner(fi)
	if !ok {
		return "", nil
	}
	what := "the file"
	if !last {
		what = "the directory"
	}
	if !trustedUID(uid) {
		return "", fmt.Errorf("%s: %s belongs to %s, neither root nor the user scanwarden runs as (%s), so that user could change what scanwarden reads or runs",
			at, what, userName(uid), runningAs())
	}
	perm := fi.Mode().Perm()
	if fi.IsDir() && fi.Mode()&fs.ModeSticky != 0 {
		return "", nil
	}
	if perm&0o002 != 0 {
		return "", fmt.Errorf("%s: %s is writable by every user (mode %04o), so any local user could change what scanwarden reads or runs", at, what, perm)
	}
	if perm&0o020 != 0 && !trustedGID(gid) {
		return fmt.Sprintf("%s: %s is writable by %s (mode %04o), neither root's group nor scanwarden's: its members could change what scanwarden reads or runs",
			at, what, groupName(gid), perm), nil
	}
	return "", nil
}

// components splits a path into its names, leaving out empty ones and ".".
func components(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}
