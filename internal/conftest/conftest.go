// Package conftest writes configs for tests: a config whose blocking
// touches only files under a test's own directory. Tests only.
package conftest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// DryConfig writes dir/scanwarden.conf with the dry-run backend and the
// state, hosts.deny, history and blocked files under dir, then the lines
// of extra, and returns its path.
func DryConfig(t *testing.T, dir string, extra string) string {
	t.Helper()
	p := filepath.Join(dir, "scanwarden.conf")
	text := fmt.Sprintf(`STATE_DIR=%q
HOSTS_DENY_FILE=%q
HISTORY_FILE=%q
BLOCKED_FILE=%q
IGNORE_FILE=""
BLOCK_BACKEND="dry-run"
%s
`, filepath.Join(dir, "state"), filepath.Join(dir, "hosts.deny"), filepath.Join(dir, "history"), filepath.Join(dir, "blocked"), extra)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
