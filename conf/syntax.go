package conf

import (
	"fmt"
	"strings"

	"github.com/scanwarden/scanwarden/internal/excerpt"
)

const (
	// maxLineLen is the longest line a config or ignore file may have.
	// PortSentry's own buffer is 1 KiB; 64 KiB leaves room for a long
	// port list without letting a corrupt file (no newlines) be read into
	// memory whole.
	maxLineLen = 64 * 1024
	// utf8BOM is dropped from the start of a file: editors on other
	// systems add it, and it must not become part of the first key.
	utf8BOM = "\uFEFF"
)

// splitLine splits one config line (line ending already removed) into its
// key and value. skip is true for blank and comment lines. The accepted
// forms are PortSentry 1.2's KEY="value", 2.x's KEY = "value" and an
// unquoted KEY=value. A "#" inside quotes is part of the value; after the
// closing quote only a "# comment" may follow. In an unquoted value a "#"
// starts a comment when it begins the value or follows a space or tab.
// On failure the returned error carries Key (when it could be read) and
// Msg; the caller adds File and Line.
func splitLine(text string) (key, val string, skip bool, lerr *LineError) {
	t := strings.Trim(text, " \t")
	if t == "" || t[0] == '#' {
		return "", "", true, nil
	}
	if !strings.Contains(t, "=") {
		return "", "", false, &LineError{Msg: fmt.Sprintf(`missing "=": lines are KEY="value", got %q`, excerpt.Of(t))}
	}
	i := 0
	for i < len(t) && isKeyByte(t[i]) {
		i++
	}
	if i == 0 {
		return "", "", false, &LineError{Msg: fmt.Sprintf(`expected KEY="value", got %q`, excerpt.Of(t))}
	}
	key = t[:i]
	rest := strings.TrimLeft(t[i:], " \t")
	if rest == "" || rest[0] != '=' {
		return "", "", false, &LineError{Key: key, Msg: `expected "=" after the key (lines are KEY="value")`}
	}
	v := strings.TrimLeft(rest[1:], " \t")
	if strings.HasPrefix(v, `"`) {
		end := strings.IndexByte(v[1:], '"')
		if end < 0 {
			return "", "", false, &LineError{Key: key, Msg: `unterminated quote: the value has no closing "`}
		}
		val = v[1 : 1+end]
		after := strings.TrimLeft(v[2+end:], " \t")
		if after != "" && after[0] != '#' {
			return "", "", false, &LineError{Key: key, Msg: fmt.Sprintf("unexpected text %q after the closing quote", excerpt.Of(after))}
		}
	} else {
		val = v
		for j := 0; j < len(v); j++ {
			if v[j] == '#' && (j == 0 || v[j-1] == ' ' || v[j-1] == '\t') {
				val = v[:j]
				break
			}
		}
		val = strings.TrimRight(val, " \t")
		if strings.ContainsRune(val, '"') {
			return "", "", false, &LineError{Key: key, Msg: `stray quote: quote the whole value, KEY="value"`}
		}
	}
	for j := 0; j < len(val); j++ {
		if c := val[j]; (c < 0x20 && c != '\t') || c == 0x7f {
			return "", "", false, &LineError{Key: key, Msg: fmt.Sprintf("the value contains a control character (byte 0x%02x)", c)}
		}
	}
	return key, val, false, nil
}

// isKeyByte reports whether c may appear in a key: letters, digits and "_".
// Only upper-case keys are known; lower case is read so that the error can
// say which key was meant.
func isKeyByte(c byte) bool {
	return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
}
