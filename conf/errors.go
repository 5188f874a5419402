package conf

import (
	"fmt"
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
	// Default is, for a key the file does not set (Line 0), the default
	// value the problem is about; Error prints it after the key, as
	// "KEY (default VALUE): ". "" otherwise.
	Default string
	// Msg says what is wrong, in words an administrator can act on.
	Msg string
}

// Error returns "FILE:LINE: KEY: what is wrong", leaving out the parts that
// are not known (no "KEY: " without a key, no ":LINE" without a line); a
// key left at its default reads "FILE: KEY (default VALUE): what is
// wrong".
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
		if e.Default != "" {
			b.WriteString(" (default ")
			b.WriteString(e.Default)
			b.WriteByte(')')
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// maxErrors bounds the problems one file reports: a file that is not a
// config at all (a binary given to -c) would otherwise print one per
// line. Parsing stops at the next problem, which says so.
const maxErrors = 100

// Errors is every problem found in one file (Parse, ParseIgnore) or by one
// Validate, each a *LineError naming the file, the line and the key when
// they are known: the lines' problems in file order, then those across
// keys. Error lists them one per line. It unwraps to its *LineErrors, so
// errors.As(err, &le) with le a *LineError finds the first one, and
// errors.As(err, &errs) with errs an Errors finds them all.
type Errors []*LineError

// Error returns the problems' messages, one per line.
func (e Errors) Error() string {
	var b strings.Builder
	for i, le := range e {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(le.Error())
	}
	return b.String()
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (e Errors) Unwrap() []error {
	out := make([]error, len(e))
	for i, le := range e {
		out[i] = le
	}
	return out
}

// collector gathers a file's problems up to maxErrors.
type collector struct {
	errs Errors
}

// add records le and reports whether parsing may go on: false once
// maxErrors problems are recorded, when a last one saying so is added.
func (c *collector) add(le *LineError) bool {
	if len(c.errs) == maxErrors {
		c.errs = append(c.errs, &LineError{File: le.File, Line: le.Line,
			Msg: fmt.Sprintf("more than %d problems: stopped reading at this line (is this the right file?)", maxErrors)})
		return false
	}
	c.errs = append(c.errs, le)
	return true
}

// err returns the problems as an error, nil when there are none.
func (c *collector) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	return c.errs
}
