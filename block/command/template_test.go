package command

import (
	"bytes"
	"errors"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

var (
	v4     = netip.MustParseAddr("198.51.100.7")
	v6     = netip.MustParseAddr("fd00:77::7")
	mapped = netip.MustParseAddr("::ffff:198.51.100.7")
)

// accepted are templates ParseTemplate takes, with their argv for v4,
// port 111, mode stcp. The first ones are PortSentry 1.2's own examples
// (portsentry.conf) that need no shell.
var accepted = []struct {
	tmpl string
	argv []string
}{
	{`/sbin/route add -host $TARGET$ reject`, []string{"/sbin/route", "add", "-host", "198.51.100.7", "reject"}},
	{`/sbin/route add $TARGET$ 333.444.555.666`, []string{"/sbin/route", "add", "198.51.100.7", "333.444.555.666"}},
	{`/sbin/ipchains -I input -s $TARGET$ -j DENY -l`, []string{"/sbin/ipchains", "-I", "input", "-s", "198.51.100.7", "-j", "DENY", "-l"}},
	{`/sbin/ipfwadm -I -i deny -S $TARGET$ -o`, []string{"/sbin/ipfwadm", "-I", "-i", "deny", "-S", "198.51.100.7", "-o"}},
	{`/sbin/iptables -I INPUT -s $TARGET$ -j DROP`, []string{"/sbin/iptables", "-I", "INPUT", "-s", "198.51.100.7", "-j", "DROP"}},
	{`/sbin/ipfw add 1 deny all from $TARGET$:255.255.255.255 to any`, []string{"/sbin/ipfw", "add", "1", "deny", "all", "from", "198.51.100.7:255.255.255.255", "to", "any"}},
	{`/sbin/route add -net $TARGET$ -netmask 255.255.255.255 127.0.0.1 -blackhole`, []string{"/sbin/route", "add", "-net", "198.51.100.7", "-netmask", "255.255.255.255", "127.0.0.1", "-blackhole"}},
	{`/usr/local/bin/notify.sh $TARGET$ $PORT$ $MODE$`, []string{"/usr/local/bin/notify.sh", "198.51.100.7", "111", "stcp"}},
	// quoting and escapes as sh splits them
	{`/usr/bin/logger -t "port sentry" 'blocked $TARGET$' mode=$MODE$`, []string{"/usr/bin/logger", "-t", "port sentry", "blocked 198.51.100.7", "mode=stcp"}},
	{`/bin/echo a\ b "x\"y" 'it''s' "\$ \\ \q"`, []string{"/bin/echo", "a b", `x"y`, "its", `$ \ \q`}},
	{`/bin/echo "" ''`, []string{"/bin/echo", "", ""}},
	{"/bin/echo\t $ a$ $/x cost$ \t", []string{"/bin/echo", "$", "a$", "$/x", "cost$"}},
	{`/bin/echo "$TARGET$" x$PORT$y a~b a#b c=d '|;&<>*?[{$(x)'`, []string{"/bin/echo", "198.51.100.7", "x111y", "a~b", "a#b", "c=d", "|;&<>*?[{$(x)"}},
	{`/bin/echo "it's \"$MODE$\""`, []string{"/bin/echo", `it's "stcp"`}},
	{`notify-send $TARGET$`, []string{"notify-send", "198.51.100.7"}},
	{`/bin/echo héllo wörld`, []string{"/bin/echo", "héllo", "wörld"}},
	{`/bin/echo \#not-a-comment \~ '!'`, []string{"/bin/echo", "#not-a-comment", "~", "!"}},
}

func TestParseTemplateAccepts(t *testing.T) {
	for _, c := range accepted {
		tp, err := ParseTemplate("KILL_RUN_CMD", c.tmpl)
		if err != nil {
			t.Errorf("ParseTemplate(%q): %v", c.tmpl, err)
			continue
		}
		argv := tp.Argv(v4, 111, "stcp")
		if !slices.Equal(argv, c.argv) {
			t.Errorf("%q:\n got %q\nwant %q", c.tmpl, argv, c.argv)
		}
		if tp.String() != c.tmpl || tp.Key() != "KILL_RUN_CMD" || tp.Program() != c.argv[0] {
			t.Errorf("%q: String %q Key %q Program %q", c.tmpl, tp.String(), tp.Key(), tp.Program())
		}
	}
}

// TestSplitLikeShell checks that for every accepted template our argv is
// what /bin/sh made of the text PortSentry would have handed to
// system(3): the placeholders replaced first, then the shell's split.
func TestSplitLikeShell(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to compare with")
	}
	for _, c := range accepted {
		tp, err := ParseTemplate("KILL_RUN_CMD", c.tmpl)
		if err != nil {
			t.Fatal(err)
		}
		// only the known, fixed templates above are ever given to sh
		script := "set -- " + tp.Expand(v4, 111, "stcp") + "\nprintf '%s\\0' \"$@\""
		out, err := exec.Command(sh, "-c", script).Output()
		if err != nil {
			t.Fatalf("%q: sh: %v", c.tmpl, err)
		}
		got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
		if !slices.Equal(got, c.argv) {
			t.Errorf("%q: sh splits it into %q, the table says %q", c.tmpl, got, c.argv)
		}
	}
}

func TestParseTemplateRefuses(t *testing.T) {
	cases := []struct {
		tmpl    string
		problem string // substring of TemplateError.Problem
		offset  int
		shell   bool
	}{
		// PortSentry 1.2's own Solaris/BSD example needs a pipe
		{`/bin/echo 'block in log on le0 from $TARGET$/32 to any' | /sbin/ipf -f -`, `pipe "|"`, 56, true},
		{`/sbin/iptables -I INPUT -s $TARGET$ -j DROP && /usr/bin/logger x`, `"&"`, 44, true},
		{`/bin/a; /bin/b`, `separator ";"`, 6, true},
		{`/bin/a $TARGET$ &`, `"&"`, 16, true},
		{`/bin/a > /tmp/x`, `redirection '>'`, 7, true},
		{`/bin/a < /etc/passwd`, `redirection '<'`, 7, true},
		{"/bin/a `id`", "command substitution \"`\"", 7, true},
		{"/bin/a \"`id`\"", "command substitution \"`\"", 8, true},
		{`/bin/a $(id)`, `command substitution "$("`, 7, true},
		{`/bin/a "$(id)"`, `command substitution "$("`, 8, true},
		{`/bin/a ${HOME}`, `parameter expansion "${"`, 7, true},
		{`/bin/a $HOME`, `variable "$HOME"`, 7, true},
		{`/bin/a "x$target$"`, `variable "$target"`, 9, true},
		{`/bin/a $1`, `special parameter "$1"`, 7, true},
		{`/bin/a $?`, `special parameter "$?"`, 7, true},
		{`/bin/a $'x'`, `quoting "$'"`, 7, true},
		{`/bin/rm /tmp/*`, `glob pattern '*'`, 13, true},
		{`/bin/a file?`, `glob pattern '?'`, 11, true},
		{`/bin/a [ab]`, `glob pattern '['`, 7, true},
		{`/bin/a x{1,2}`, `brace '{'`, 8, true},
		{`/bin/a ~/x`, `tilde expansion`, 7, true},
		{`/bin/a # comment`, `comment "#"`, 7, true},
		{`/bin/a (x)`, `subshell '('`, 7, true},
		{"/bin/a x\n/bin/b", `line break`, 8, true},
		{`PATH=/tmp /bin/a`, `variable assignment "PATH="`, 0, true},
		{`if /bin/a`, `shell keyword "if"`, 0, true},
		{`! /bin/a`, `shell keyword "!"`, 0, true},
		{`/bin/a 'open`, `unterminated quote`, 7, false},
		{`/bin/a "open`, `unterminated quote`, 7, false},
		{`/bin/a x\`, `trailing backslash`, 8, false},
		{`/bin/a \$TARGET$`, `backslash before a placeholder`, 7, false},
		{`/bin/a "\$TARGET$"`, `backslash before a placeholder`, 8, false},
		{"/bin/a \x01", `control character`, 7, false},
		{"/bin/a '\x1b'", `control character`, 8, false},
		{``, `empty command`, -1, false},
		{" \t ", `empty command`, -1, false},
		{`$TARGET$ x`, `program (first word) cannot contain a placeholder`, -1, false},
		{`/bin/$MODE$`, `program (first word) cannot contain a placeholder`, -1, false},
		{`'' x`, `empty program name`, -1, false},
		{`bin/notify $TARGET$`, `relative program path "bin/notify"`, -1, false},
		{`./notify $TARGET$`, `relative program path "./notify"`, -1, false},
	}
	for _, c := range cases {
		_, err := ParseTemplate("KILL_ROUTE", c.tmpl)
		var te *TemplateError
		if !errors.As(err, &te) {
			t.Errorf("ParseTemplate(%q) = %v, want a *TemplateError", c.tmpl, err)
			continue
		}
		if !strings.Contains(te.Problem, c.problem) || te.Offset != c.offset || te.NeedsShell != c.shell {
			t.Errorf("ParseTemplate(%q): problem %q offset %d shell %v; want %q, %d, %v", c.tmpl, te.Problem, te.Offset, te.NeedsShell, c.problem, c.offset, c.shell)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "KILL_ROUTE ") || !strings.Contains(msg, c.problem) {
			t.Errorf("error %q does not name the key and the construct", msg)
		}
		if c.shell != strings.Contains(msg, "put the command in a script") {
			t.Errorf("error %q: wrapper-script hint should be there exactly for shell constructs", msg)
		}
	}
}

func TestArgvValues(t *testing.T) {
	tp, err := ParseTemplate("KILL_RUN_CMD", `/x --addr=$TARGET$ $PORT$ "$MODE$ $TARGET$"`)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		addr netip.Addr
		port uint16
		mode string
		want []string
	}{
		{v4, 0, "tcp", []string{"/x", "--addr=198.51.100.7", "0", "tcp 198.51.100.7"}},
		{mapped, 65535, "audp", []string{"/x", "--addr=198.51.100.7", "65535", "audp 198.51.100.7"}},
		{v6, 53, "sudp", []string{"/x", "--addr=fd00:77::7", "53", "sudp fd00:77::7"}},
	} {
		got := tp.Argv(c.addr, c.port, c.mode)
		if err := tp.Check(c.addr, c.mode); err != nil || !slices.Equal(got, c.want) {
			t.Errorf("Argv(%v, %d, %q) = %q (Check: %v); want %q", c.addr, c.port, c.mode, got, err, c.want)
		}
	}
	for _, mode := range []string{"", "TCP", "stcp ", "tcp; rm", "x"} {
		err := tp.Check(v4, mode)
		if argv := tp.Argv(v4, 1, mode); argv != nil || err == nil || !strings.Contains(err.Error(), "KILL_RUN_CMD: invalid mode") {
			t.Errorf("mode %q: Argv = %q, Check = %v; want nil and an error", mode, argv, err)
		}
	}
	err = tp.Check(netip.Addr{}, "tcp")
	if argv := tp.Argv(netip.Addr{}, 1, "tcp"); argv != nil || err == nil {
		t.Errorf("invalid address: Argv = %q, Check = %v; want nil and an error", argv, err)
	}
	// and no runner runs a nil argv
	if _, err := (ExecRunner{}).Run(t.Context(), tp.Argv(v4, 1, "bogus")); err == nil || !strings.Contains(err.Error(), "Template.Check") {
		t.Errorf("running a nil argv: %v", err)
	}
	if _, err := (&FakeRunner{}).Run(t.Context(), nil); err == nil {
		t.Error("FakeRunner ran a nil argv")
	}
	if !tp.Uses(Target) || !tp.Uses(Port) || !tp.Uses(Mode) || tp.Uses("$X$") {
		t.Error("Uses is wrong")
	}
	tp2, _ := ParseTemplate("KILL_ROUTE", `/sbin/route add -host $TARGET$ reject`)
	if tp2.Uses(Port) || tp2.Uses(Mode) || !tp2.Uses(Target) {
		t.Error("Uses is wrong for a template without $PORT$")
	}
}

func TestExpand(t *testing.T) {
	for _, c := range []struct{ tmpl, want string }{
		{`/sbin/route add -host $TARGET$ reject`, `/sbin/route add -host 198.51.100.7 reject`},
		{`/sbin/iptables -I INPUT -s $TARGET$ -j DROP`, `/sbin/iptables -I INPUT -s 198.51.100.7 -j DROP`},
		{`/usr/local/bin/notify.sh $TARGET$ $PORT$ $MODE$`, `/usr/local/bin/notify.sh 198.51.100.7 111 stcp`},
		// as PortSentry logged it: the text as written, quotes included
		{`/usr/bin/logger -t "port  sentry" '$TARGET$'`, `/usr/bin/logger -t "port  sentry" '198.51.100.7'`},
	} {
		tp, err := ParseTemplate("KILL_ROUTE", c.tmpl)
		if err != nil {
			t.Fatal(err)
		}
		if got := tp.Expand(mapped, 111, "stcp"); got != c.want {
			t.Errorf("Expand(%q) = %q, want %q", c.tmpl, got, c.want)
		}
	}
}

// TestHostileValuesStayOneArgument: whatever a word holds, substitution
// happens after the split, so the number and position of arguments never
// change.
func TestHostileValuesStayOneArgument(t *testing.T) {
	tp, err := ParseTemplate("KILL_RUN_CMD", `/usr/bin/printf "[%s]\n" $TARGET$ x$TARGET$y '$PORT$' $MODE$`)
	if err != nil {
		t.Fatal(err)
	}
	zoned := netip.MustParseAddr("fe80::1%eth0 -rf")
	argv := tp.Argv(zoned, 7, "udp")
	want := []string{"/usr/bin/printf", `[%s]\n`, "fe80::1%eth0 -rf", "xfe80::1%eth0 -rfy", "7", "udp"}
	if !slices.Equal(argv, want) {
		t.Fatalf("argv %q, want %q", argv, want)
	}
	if _, err := exec.LookPath("/usr/bin/printf"); err != nil {
		t.Skip("no /usr/bin/printf")
	}
	out, err := ExecRunner{}.Run(t.Context(), argv)
	if err != nil {
		t.Fatal(err)
	}
	wantOut := "[fe80::1%eth0 -rf]\n[xfe80::1%eth0 -rfy]\n[7]\n[udp]\n"
	if !bytes.Equal(out, []byte(wantOut)) {
		t.Errorf("output %q, want %q", out, wantOut)
	}
}

func TestNativeKillRoute(t *testing.T) {
	cases := []struct {
		tmpl string
		want bool
	}{
		{`/sbin/iptables -I INPUT -s $TARGET$ -j DROP`, true},
		{`/usr/sbin/ip6tables -A INPUT -s $TARGET$ -j DROP`, true},
		{`iptables -w -I INPUT -s $TARGET$ -j REJECT`, true},
		{`/sbin/iptables -w 5 -I INPUT 1 -s $TARGET$ -j DROP`, true},
		{`/usr/sbin/iptables --wait --insert INPUT --source $TARGET$ --jump DROP`, true},
		{`/sbin/iptables -t filter -A INPUT -j DROP -s $TARGET$`, true},
		{`/sbin/iptables -I INPUT -s "$TARGET$" -j DROP`, true},
		{`  /sbin/iptables   -I INPUT -s $TARGET$ -j DROP  `, true},
		// PortSentry 1.2's other Linux examples
		{`/sbin/ipchains -I input -s $TARGET$ -j DENY -l`, false},
		{`/sbin/route add -host $TARGET$ reject`, false},
		{`/sbin/route add $TARGET$ 333.444.555.666`, false},
		{`/sbin/ipfwadm -I -i deny -S $TARGET$ -o`, false},
		{`/usr/sbin/ipfw add 1 deny all from $TARGET$:255.255.255.255 to any`, false},
		// iptables doing something else
		{`/sbin/iptables -I FORWARD -s $TARGET$ -j DROP`, false},
		{`/sbin/iptables -I input -s $TARGET$ -j DROP`, false},
		{`/sbin/iptables -t raw -I PREROUTING -s $TARGET$ -j DROP`, false},
		{`/sbin/iptables -t nat -I INPUT -s $TARGET$ -j DROP`, false},
		{`/sbin/iptables -I INPUT -s $TARGET$ -p tcp -j DROP`, false},
		{`/sbin/iptables -I INPUT -i eth0 -s $TARGET$ -j DROP`, false},
		{`/sbin/iptables -I INPUT -s $TARGET$ -j LOG`, false},
		{`/sbin/iptables -I INPUT -s $TARGET$ -j ACCEPT`, false},
		{`/sbin/iptables -I INPUT -s $TARGET$ -j drop`, false},
		{`/sbin/iptables -I INPUT -s $TARGET$ -j REJECT --reject-with tcp-reset`, false},
		{`/sbin/iptables -I INPUT -s $TARGET$/32 -j DROP`, false},
		{`/sbin/iptables -I INPUT ! -s $TARGET$ -j DROP`, false},
		{`/sbin/iptables -I INPUT -d $TARGET$ -j DROP`, false},
		{`/sbin/iptables -I INPUT -s $TARGET$`, false},
		{`/sbin/iptables -I INPUT -j DROP`, false},
		{`/sbin/iptables -s $TARGET$ -j DROP`, false},
		{`/sbin/iptables -I INPUT -I INPUT -s $TARGET$ -j DROP`, false},
		{`/sbin/iptables -I INPUT -s $TARGET$ -s $TARGET$ -j DROP`, false},
		{`/sbin/iptables -D INPUT -s $TARGET$ -j DROP`, false},
		{`/sbin/iptables -I INPUT -s $TARGET$ -j DROP -m comment --comment $PORT$`, false},
		{`/sbin/iptables -I $TARGET$ -s $TARGET$ -j DROP`, false},
		{`/usr/sbin/iptables-legacy -I INPUT -s $TARGET$ -j DROP`, false},
		{`/usr/local/sbin/iptables -I INPUT -s $TARGET$ -j DROP`, false},
		{`/home/x/iptables -I INPUT -s $TARGET$ -j DROP`, false},
		{`/sbin/iptables -I INPUT -s $TARGET$ -j DROP && /bin/true`, false},
		{`/sbin/iptables -I INPUT -s $TARGET$ -j DROP -w`, true},
		{``, false},
	}
	for _, c := range cases {
		if got := NativeKillRoute(c.tmpl); got != c.want {
			t.Errorf("NativeKillRoute(%q) = %v, want %v", c.tmpl, got, c.want)
		}
	}
}

func FuzzParseTemplate(f *testing.F) {
	for _, c := range accepted {
		f.Add(c.tmpl)
	}
	for _, s := range []string{`/a | b`, `/a "$(x)"`, `/a '\'`, `/a "\`, `/a $`, `/a $TARGET`, `/a $TARGET$$PORT$$MODE$`, `x=y`, `/a "$TARGET$'`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := ParseTemplate("KILL_RUN_CMD", s)
		NativeKillRoute(s)
		if err != nil {
			var te *TemplateError
			if !errors.As(err, &te) || te.Offset >= len(s) {
				t.Fatalf("%q: bad error %v", s, err)
			}
			return
		}
		a1 := tp.Argv(v4, 1, "tcp")
		a2 := tp.Argv(netip.MustParseAddr("fe80::1%x y"), 65535, "audp")
		if len(a1) != len(a2) || len(a1) != len(tp.words) || a1[0] != a2[0] || a1[0] == "" {
			t.Fatalf("%q: the values changed the words: %q vs %q", s, a1, a2)
		}
		for i := range a1 {
			if strings.ContainsAny(a1[i], "\x00\n") {
				t.Fatalf("%q: argument %q has a NUL or newline", s, a1[i])
			}
		}
		_ = tp.Expand(v4, 1, "tcp")
	})
}
