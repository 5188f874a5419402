// Package command runs PortSentry's external commands (KILL_ROUTE,
// KILL_RUN_CMD) without a shell.
//
// PortSentry 1.2 pasted the scanner's address into the command text and
// handed it to system(3). scanwarden splits the template into words once,
// at configuration time, the way a POSIX shell splits words (whitespace,
// '…' and "…" quotes, backslash escapes) and nothing more, then puts the
// values into the words: an address, port or mode can never become a
// second argument, an option or a shell construct. A template that needs
// a shell (a pipe, a redirection, a variable, a glob, …) is refused with
// an error that names the key and the construct; put such a command in a
// script and name the script in the template.
package command

import (
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"github.com/scanwarden/scanwarden/block/records"
)

// The placeholders a template may use, as PortSentry 1.2 spells them.
const (
	// Target is replaced by the scanner's address.
	Target = "$TARGET$"
	// Port is replaced by the port of the probe that raised the alert.
	Port = "$PORT$"
	// Mode is replaced by the mode the probe was caught in: tcp, udp,
	// stcp, sudp, atcp or audp.
	Mode = "$MODE$"
)

type placeholder uint8

const (
	literal placeholder = iota
	phTarget
	phPort
	phMode
)

// placeholderAt returns the placeholder starting at s[i] and its length.
func placeholderAt(s string, i int) (placeholder, int) {
	rest := s[i:]
	switch {
	case strings.HasPrefix(rest, Target):
		return phTarget, len(Target)
	case strings.HasPrefix(rest, Port):
		return phPort, len(Port)
	case strings.HasPrefix(rest, Mode):
		return phMode, len(Mode)
	}
	return literal, 0
}

// part is a piece of a word: literal text or a placeholder.
type part struct {
	lit string
	ph  placeholder
}

type word []part

// Template is a parsed command template: a program and its arguments,
// some holding placeholders. It is immutable and safe for concurrent use.
type Template struct {
	key   string
	text  string
	words []word
}

// TemplateError is why ParseTemplate refused a template.
type TemplateError struct {
	// Key is the config key the template came from (KILL_ROUTE, ...).
	Key string
	// Template is the template as given.
	Template string
	// Offset is the byte offset of the offending construct in Template,
	// or -1 when the error is about the whole template.
	Offset int
	// Problem says what is wrong, e.g. `pipe "|"`.
	Problem string
	// NeedsShell is true when the construct only a shell could carry
	// out: the remedy is a wrapper script.
	NeedsShell bool
}

// Error names the key, the template, the construct and its offset, and,
// for a shell construct, suggests a wrapper script.
func (e *TemplateError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %q: %s", e.Key, e.Template, e.Problem)
	if e.Offset >= 0 {
		fmt.Fprintf(&sb, " at offset %d", e.Offset)
	}
	if e.NeedsShell {
		fmt.Fprintf(&sb, ": scanwarden runs commands without a shell; put the command in a script (#!/bin/sh, taking the address as \"$1\") and set %s to the script's path followed by %s", e.Key, Target)
	}
	return sb.String()
}

// reservedWord reports whether a shell treats w specially in command
// position (POSIX's reserved words, plus bash's).
func reservedWord(w string) bool {
	switch w {
	case "!", "{", "}", "case", "do", "done", "elif", "else", "esac", "fi", "for", "if", "in",
		"then", "until", "while", "function", "select", "time", "coproc":
		return true
	}
	return false
}

// quoting says whether the lexer is inside quotes, and which.
type quoting uint8

const (
	unquoted quoting = iota
	inSingle         // '…'
	inDouble         // "…"
)

// lexer holds ParseTemplate's state.
type lexer struct {
	key, s    string
	words     []word
	cur       word
	inWord    bool // a word has begun (possibly an empty quoted one)
	quoted    bool // the current word has quoting or escapes in it
	wordStart int
	state     quoting
	quoteAt   int // where the quotes in force (state) were opened
}

func (l *lexer) fail(off int, problem string, shell bool) error {
	return &TemplateError{Key: l.key, Template: l.s, Offset: off, Problem: problem, NeedsShell: shell}
}

func (l *lexer) begin(i int) {
	if !l.inWord {
		l.inWord, l.quoted, l.wordStart = true, false, i
	}
}

func (l *lexer) lit(s string) {
	if n := len(l.cur); n > 0 && l.cur[n-1].ph == literal {
		l.cur[n-1].lit += s
		return
	}
	l.cur = append(l.cur, part{lit: s})
}

func (l *lexer) end() error {
	if !l.inWord {
		return nil
	}
	if len(l.words) == 0 && !l.quoted && len(l.cur) == 1 && l.cur[0].ph == literal && reservedWord(l.cur[0].lit) {
		return l.fail(l.wordStart, fmt.Sprintf("shell keyword %q", l.cur[0].lit), true)
	}
	if len(l.cur) == 0 {
		l.cur = word{{}} // an empty quoted word: an empty argument
	}
	l.words = append(l.words, l.cur)
	l.cur, l.inWord = nil, false
	return nil
}

// dollar handles a '$' that does not start a placeholder: an error when a
// shell would expand it, otherwise a literal '$'.
func (l *lexer) dollar(i int) error {
	if i+1 >= len(l.s) {
		l.lit("$")
		return nil
	}
	c := l.s[i+1]
	switch {
	case c == '(':
		return l.fail(i, "command substitution \"$(\"", true)
	case c == '{':
		return l.fail(i, "parameter expansion \"${\"", true)
	case c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		j := i + 1
		for j < len(l.s) && (l.s[j] == '_' || 'a' <= l.s[j] && l.s[j] <= 'z' || 'A' <= l.s[j] && l.s[j] <= 'Z' || '0' <= l.s[j] && l.s[j] <= '9') {
			j++
		}
		return l.fail(i, fmt.Sprintf("variable %q (only %s, %s and %s are replaced)", l.s[i:j], Target, Port, Mode), true)
	case '0' <= c && c <= '9' || strings.IndexByte("@*#?-$!", c) >= 0:
		return l.fail(i, fmt.Sprintf("special parameter %q", l.s[i:i+2]), true)
	case c == '\'' || c == '"':
		return l.fail(i, fmt.Sprintf("quoting %q", l.s[i:i+2]), true)
	}
	l.lit("$")
	return nil
}

func isControl(c byte) bool { return (c < 0x20 && c != '\t') || c == 0x7f }

func (l *lexer) control(i int) error {
	if l.s[i] == '\n' {
		return l.fail(i, "line break (a second command)", true)
	}
	return l.fail(i, fmt.Sprintf("control character %q", l.s[i]), false)
}

// ParseTemplate splits tmpl, the value of config key key (KILL_ROUTE,
// KILL_RUN_CMD), into a program and arguments, the way a POSIX shell
// splits words and no further:
//
//   - words are separated by spaces and tabs;
//   - '…' quotes everything up to the next '; "…" quotes everything up to
//     the next unescaped ", where \ escapes only $ ` " and \; outside
//     quotes \ makes the next character literal;
//   - $TARGET$, $PORT$ and $MODE$ are placeholders wherever they are,
//     inside quotes too (PortSentry replaced them before its shell saw
//     the text); a '$' a shell would not expand (before a space, '/' or
//     the end) is literal.
//
// Everything a shell would do beyond that is an error (*TemplateError)
// naming key and the construct: | ; & < > ( ) ` outside quotes, $( ${
// $NAME $1 $? and the like, * ? [ (globs), { } (bash's brace
// expansion), ~ or # at the start of a word,
// a NAME=value assignment or a shell keyword as the first word, a line
// break; so are a backslash right before a placeholder, an unterminated
// quote, a trailing backslash and other control characters.
//
// The program (the first word) must be literal, and either an absolute
// path or a bare name; a bare name is looked up in PATH when the command
// is run (as the shell would), so a template can be checked on a machine
// that does not have the program. A relative path with a '/' is refused:
// it would depend on the daemon's working directory.
func ParseTemplate(key, tmpl string) (*Template, error) {
	l := &lexer{key: key, s: tmpl}
	if err := l.split(); err != nil {
		return nil, err
	}
	if err := l.checkProgram(); err != nil {
		return nil, err
	}
	return &Template{key: key, text: tmpl, words: l.words}, nil
}

// split splits l.s into l.words, or returns the error for the first
// construct it refuses; with no error, there is at least one word.
func (l *lexer) split() error {
	for i := 0; i < len(l.s); {
		if ph, n := placeholderAt(l.s, i); n > 0 {
			l.begin(i)
			l.cur = append(l.cur, part{ph: ph})
			i += n
			continue
		}
		if isControl(l.s[i]) {
			return l.control(i)
		}
		var err error
		switch l.state {
		case inSingle:
			i = l.single(i)
		case inDouble:
			i, err = l.double(i)
		default:
			i, err = l.unquoted(i)
		}
		if err != nil {
			return err
		}
	}
	if l.state != unquoted {
		return l.fail(l.quoteAt, "unterminated quote", false)
	}
	if err := l.end(); err != nil {
		return err
	}
	if len(l.words) == 0 {
		return l.fail(-1, "empty command", false)
	}
	return nil
}

// single takes the byte at i inside '…' quotes, where everything but the
// closing quote is literal, and returns where the next byte starts.
func (l *lexer) single(i int) int {
	if l.s[i] == '\'' {
		l.state = unquoted
	} else {
		l.lit(l.s[i : i+1])
	}
	return i + 1
}

// double takes the byte at i (and the one after it, for an escape) inside
// "…" quotes, and returns where the next byte starts: a '"' closes the
// quotes, '`' and a '$' a shell would expand are refused, a '\' escapes
// only $ ` " and \ (and may not precede a placeholder), anything else is
// literal.
func (l *lexer) double(i int) (int, error) {
	switch l.s[i] {
	case '"':
		l.state = unquoted
	case '`':
		return 0, l.fail(i, "command substitution \"`\"", true)
	case '$':
		if err := l.dollar(i); err != nil {
			return 0, err
		}
	case '\\':
		if i+1 < len(l.s) {
			if _, n := placeholderAt(l.s, i+1); n > 0 {
				return 0, l.fail(i, "backslash before a placeholder", false)
			}
			if strings.IndexByte("$`\"\\", l.s[i+1]) >= 0 {
				l.lit(l.s[i+1 : i+2])
				return i + 2, nil
			}
		}
		l.lit(`\`)
	default:
		l.lit(l.s[i : i+1])
	}
	return i + 1, nil
}

// unquoted takes the byte at i (and the one after it, for an escape)
// outside quotes, and returns where the next byte starts: a space or tab
// ends the word, a quote opens quotes, '\' makes the next byte literal,
// shell syntax is refused (see operator and dollar), anything else is
// literal.
func (l *lexer) unquoted(i int) (int, error) {
	switch c := l.s[i]; c {
	case ' ', '\t':
		if err := l.end(); err != nil {
			return 0, err
		}
	case '\'', '"':
		l.begin(i)
		l.quoted = true
		l.quoteAt = i
		if c == '\'' {
			l.state = inSingle
		} else {
			l.state = inDouble
		}
	case '\\':
		return l.escape(i)
	case '$':
		l.begin(i)
		if err := l.dollar(i); err != nil {
			return 0, err
		}
	case '~', '#':
		if !l.inWord {
			what := "tilde expansion \"~\""
			if c == '#' {
				what = "comment \"#\""
			}
			return 0, l.fail(i, what, true)
		}
		l.lit(l.s[i : i+1])
	case '=':
		if len(l.words) == 0 && l.inWord && !l.quoted && isName(l.s[l.wordStart:i]) {
			return 0, l.fail(l.wordStart, fmt.Sprintf("variable assignment %q", l.s[l.wordStart:i+1]), true)
		}
		l.begin(i)
		l.lit("=")
	default:
		if err := l.operator(i); err != nil {
			return 0, err
		}
		l.begin(i)
		l.lit(l.s[i : i+1])
	}
	return i + 1, nil
}

// escape takes the '\' at i outside quotes and the byte after it, which
// it makes literal, and returns where the next byte starts. A '\' at the
// end, before a placeholder or before a control character is refused.
func (l *lexer) escape(i int) (int, error) {
	l.begin(i)
	l.quoted = true
	if i+1 >= len(l.s) {
		return 0, l.fail(i, "trailing backslash", false)
	}
	if _, n := placeholderAt(l.s, i+1); n > 0 {
		return 0, l.fail(i, "backslash before a placeholder", false)
	}
	if isControl(l.s[i+1]) {
		return 0, l.control(i + 1)
	}
	l.lit(l.s[i+1 : i+2])
	return i + 2, nil
}

// operator returns the error for the byte at i outside quotes when a
// shell would take it as an operator, a substitution, a glob or a brace,
// and nil for any other byte.
func (l *lexer) operator(i int) error {
	switch c := l.s[i]; c {
	case '|':
		return l.fail(i, `pipe "|"`, true)
	case ';':
		return l.fail(i, `command separator ";"`, true)
	case '&':
		return l.fail(i, `"&" (background job or &&)`, true)
	case '<', '>':
		return l.fail(i, fmt.Sprintf("redirection %q", c), true)
	case '(', ')':
		return l.fail(i, fmt.Sprintf("subshell %q", c), true)
	case '`':
		return l.fail(i, "command substitution \"`\"", true)
	case '*', '?', '[':
		return l.fail(i, fmt.Sprintf("glob pattern %q", c), true)
	case '{', '}':
		// bash, /bin/sh on some systems, expands a{b,c}
		return l.fail(i, fmt.Sprintf("brace %q (brace expansion or command group)", c), true)
	}
	return nil
}

// checkProgram checks the first word, the program: literal, not empty,
// and an absolute path or a bare name.
func (l *lexer) checkProgram() error {
	prog := l.words[0]
	if len(prog) != 1 || prog[0].ph != literal {
		return l.fail(-1, "the program (first word) cannot contain a placeholder", false)
	}
	switch p := prog[0].lit; {
	case p == "":
		return l.fail(-1, "empty program name", false)
	case strings.Contains(p, "/") && !path.IsAbs(p):
		return l.fail(-1, fmt.Sprintf("relative program path %q: give an absolute path, or a bare name to look up in PATH", p), false)
	}
	return nil
}

// isName reports whether s is a shell variable name.
func isName(s string) bool {
	if s == "" || '0' <= s[0] && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// Key returns the config key the template came from.
func (t *Template) Key() string { return t.key }

// String returns the template as written, for logs.
func (t *Template) String() string { return t.text }

// Program returns the program as written: an absolute path, or a bare
// name looked up in PATH when run.
func (t *Template) Program() string { return t.words[0][0].lit }

// Uses reports whether the template contains placeholder p (Target, Port
// or Mode).
func (t *Template) Uses(p string) bool {
	want, n := placeholderAt(p, 0)
	if n != len(p) {
		return false
	}
	for _, w := range t.words {
		for _, pt := range w {
			if pt.ph == want {
				return true
			}
		}
	}
	return false
}

// values returns the placeholders' values, indexed by placeholder.
func values(target netip.Addr, port uint16, mode string) [4]string {
	return [4]string{
		phTarget: target.Unmap().String(),
		phPort:   strconv.Itoa(int(port)),
		phMode:   mode,
	}
}

// Check reports whether Argv can build a command from target and mode:
// target must be a valid address and mode one of tcp, udp, stcp, sudp,
// atcp, audp. The error names the key and the bad value.
func (t *Template) Check(target netip.Addr, mode string) error {
	if !target.IsValid() {
		return fmt.Errorf("%s: invalid target address", t.key)
	}
	if !records.ValidMode(mode) {
		return fmt.Errorf("%s: invalid mode %q (want one of %s)", t.key, mode, strings.Join(records.Modes(), ", "))
	}
	return nil
}

// Argv returns the command to run for a scanner: the template's words
// with $TARGET$ replaced by target.Unmap().String() (an IPv4-mapped
// address as IPv4), $PORT$ by port in decimal and $MODE$ by mode. The
// values go into the words after the split: each word stays exactly one
// argument, whatever the values. When Check(target, mode) reports an
// error, Argv returns nil, which every Runner refuses to run.
func (t *Template) Argv(target netip.Addr, port uint16, mode string) []string {
	if t.Check(target, mode) != nil {
		return nil
	}
	v := values(target, port, mode)
	argv := make([]string, len(t.words))
	for i, w := range t.words {
		var sb strings.Builder
		for _, p := range w {
			if p.ph == literal {
				sb.WriteString(p.lit)
			} else {
				sb.WriteString(v[p.ph])
			}
		}
		argv[i] = sb.String()
	}
	return argv
}

// Expand returns the command line as PortSentry 1.2 logged it: the
// template text with the placeholders replaced by the values Argv uses
// (quotes and escapes left as written). It is for log lines such as
// `has been blocked via dropped route using command: "…"`; it validates
// nothing, and is never run.
func (t *Template) Expand(target netip.Addr, port uint16, mode string) string {
	v := values(target, port, mode)
	r := strings.NewReplacer(Target, v[phTarget], Port, v[phPort], Mode, v[phMode])
	return r.Replace(t.text)
}
