package etc

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/scanwarden/scanwarden/conf"
)

// backendDoc returns the values the shipped config's BLOCK_BACKEND
// comment documents (its `#   "value"  ...` lines) and its Default: line.
func backendDoc(t *testing.T) (values []string, def string) {
	t.Helper()
	f, err := os.Open("scanwarden.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	value := regexp.MustCompile(`^#\s+"([a-z-]+)"\s`)
	in := false
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# BLOCK_BACKEND - "):
			in = true
		case !in:
		case strings.HasPrefix(line, "BLOCK_BACKEND="):
			return values, def
		case strings.HasPrefix(line, "# Default: "):
			def = strings.TrimSuffix(strings.TrimPrefix(line, "# Default: "), ".")
		default:
			if m := value.FindStringSubmatch(line); m != nil {
				values = append(values, m[1])
			}
		}
	}
	t.Fatal("no BLOCK_BACKEND setting after its comment in scanwarden.conf")
	return nil, ""
}

// TestShippedBackend: the shipped config blocks with "auto", says so as
// its default, and documents every BLOCK_BACKEND value the daemon accepts
// and no other.
func TestShippedBackend(t *testing.T) {
	c, err := conf.Load("scanwarden.conf")
	if err != nil {
		t.Fatal(err)
	}
	if c.BlockBackend != conf.BackendAuto || !c.KernelTrap {
		t.Errorf("shipped BLOCK_BACKEND %q, KERNEL_TRAP %v; want auto, on", c.BlockBackend, c.KernelTrap)
	}
	values, def := backendDoc(t)
	if def != `"auto"` {
		t.Errorf("BLOCK_BACKEND's comment gives the default %s, want \"auto\"", def)
	}
	all := []conf.Backend{conf.BackendAuto, conf.BackendIptables, conf.BackendNftables, conf.BackendIpset, conf.BackendDryRun, conf.BackendNone}
	for _, b := range all {
		if !slices.Contains(values, string(b)) {
			t.Errorf("BLOCK_BACKEND %q is not documented in scanwarden.conf (documented: %q)", b, values)
		}
	}
	for _, v := range values {
		if _, err := conf.Parse(strings.NewReader(`BLOCK_BACKEND="`+v+`"`+"\n"), "doc"); err != nil {
			t.Errorf("documented BLOCK_BACKEND %q is refused: %v", v, err)
		}
	}
	if len(values) != len(all) {
		t.Errorf("documented values %q, want %q", values, all)
	}
}
