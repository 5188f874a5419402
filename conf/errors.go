package conf

import (
	"strconv"
	"strings"
)

// LineError is the error for a bad line in a config or ignore file, or for a
// bad combination of keys found by Validate. It always says what is wrong
// (Msg), and names the file, the line and the key whenever they are known.
type LineError struct {
	// File is the name the file was parsed under ("" when the value did
	// not come from a file, e.g. a Default() left unchanged).
	File string
	// Line is the 1-based line number (0 when the value did not come from
	// a line of the file).
	Line int
	// Key is the config key the line sets ("" for ignore files and for
	// lines whose key could not be read).
	Key string
	// Msg says what is wrong, in words an administrator can act on.
	Msg string
}

// Error returns "FILE:LINE: KEY: what is wrong", leaving out the parts that
// are not known (no "KEY: " without a key, no ":LINE" without a line).
func (e *LineError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}
