// Package excerpt cuts untrusted or long text (a config line, a LAPI
// answer) to a length that reads well inside an error message. It owns
// nothing else.
package excerpt

import "unicode/utf8"

// Max is the most bytes of the text an excerpt keeps: a line of an error
// message stays readable with the file, line and key around it.
const Max = 60

// Of returns s when it is at most Max bytes long, else its first Max
// bytes or fewer (a multi-byte character is not cut in two) and "...".
func Of(s string) string {
	if len(s) <= Max {
		return s
	}
	n := Max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
