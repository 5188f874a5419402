package records

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/detect"
)

var (
	v4     = netip.MustParseAddr("192.0.2.12")
	v6     = netip.MustParseAddr("2001:db8::1")
	mapped = netip.MustParseAddr("::ffff:192.0.2.12")
	zoned  = netip.MustParseAddr("fe80::1%eth0")
)

// withLocal runs f with the local time zone set to loc.
func withLocal(t *testing.T, loc *time.Location, f func()) {
	t.Helper()
	saved := time.Local
	time.Local = loc
	defer func() { time.Local = saved }()
	f()
}

func TestHistoryLineGolden(t *testing.T) {
	// the facts file's example: 942286729 is 1999-11-11 02:18:49 UTC,
	// written in US Central time
	cst := time.FixedZone("CST", -6*3600)
	withLocal(t, cst, func() {
		at := time.Unix(942286729, 0)
		cases := []struct {
			host  string
			addr  netip.Addr
			port  uint16
			proto string
			want  string
		}{
			{"192.0.2.12", v4, 111, "TCP", "942286729 - 11/10/1999 20:18:49 Host: 192.0.2.12/192.0.2.12 Port: 111 TCP Blocked"},
			{"", mapped, 111, "tcp", "942286729 - 11/10/1999 20:18:49 Host: 192.0.2.12/192.0.2.12 Port: 111 TCP Blocked"},
			{"scanner.example.net", v4, 31337, "udp", "942286729 - 11/10/1999 20:18:49 Host: scanner.example.net/192.0.2.12 Port: 31337 UDP Blocked"},
			{"2001:db8::1", v6, 0, "UDP", "942286729 - 11/10/1999 20:18:49 Host: 2001:db8::1/2001:db8::1 Port: 0 UDP Blocked"},
			{"fe80::1%eth0", zoned, 65535, "tcp", "942286729 - 11/10/1999 20:18:49 Host: fe80::1/fe80::1 Port: 65535 TCP Blocked"},
			// a name that could forge or hide a line is replaced by the address
			{"evil/10.0.0.1 Port: 1 TCP Blocked", v4, 1, "tcp", "942286729 - 11/10/1999 20:18:49 Host: 192.0.2.12/192.0.2.12 Port: 1 TCP Blocked"},
			{"a\nb", v4, 1, "tcp", "942286729 - 11/10/1999 20:18:49 Host: 192.0.2.12/192.0.2.12 Port: 1 TCP Blocked"},
			{strings.Repeat("a", 254), v4, 1, "tcp", "942286729 - 11/10/1999 20:18:49 Host: 192.0.2.12/192.0.2.12 Port: 1 TCP Blocked"},
		}
		for _, c := range cases {
			if got := HistoryLine(at, c.host, c.addr, c.port, c.proto); got != c.want {
				t.Errorf("HistoryLine(%q, %v, %d, %q)\n got %q\nwant %q", c.host, c.addr, c.port, c.proto, got, c.want)
			}
		}
		// zero-padded fields, local date across midnight
		jan := time.Date(2026, 1, 2, 3, 4, 5, 999, time.UTC) // 2026-01-01 21:04:05 CST
		want := strconv.FormatInt(jan.Unix(), 10) + " - 01/01/2026 21:04:05 Host: 192.0.2.12/192.0.2.12 Port: 7 UDP Blocked"
		if got := HistoryLine(jan, "", v4, 7, "udp"); got != want {
			t.Errorf("got %q\nwant %q", got, want)
		}
	})
}

func TestAlertsGolden(t *testing.T) {
	cases := []struct{ got, want string }{
		{ScanAlert("TCP SYN/Normal scan", "192.0.2.12", v4, "TCP", 111),
			"attackalert: TCP SYN/Normal scan from host: 192.0.2.12/192.0.2.12 to TCP port: 111"},
		{ScanAlert(" TCP NULL scan", "scanner.example.net", mapped, "tcp", 1),
			"attackalert:  TCP NULL scan from host: scanner.example.net/192.0.2.12 to TCP port: 1"},
		{ScanAlert("UDP scan", "", v6, "udp", 161),
			"attackalert: UDP scan from host: 2001:db8::1/2001:db8::1 to UDP port: 161"},
		{ConnectAlert("192.0.2.12", v4, "TCP", 11),
			"attackalert: Connect from host: 192.0.2.12/192.0.2.12 to TCP port: 11"},
		{WrappersBlocked(v4, "ALL: 192.0.2.12 : DENY"),
			`attackalert: Host 192.0.2.12 has been blocked via wrappers with string: "ALL: 192.0.2.12 : DENY"`},
		{WrappersBlocked(v6, "ALL: [2001:db8::1]"),
			`attackalert: Host 2001:db8::1 has been blocked via wrappers with string: "ALL: [2001:db8::1]"`},
		{RouteBlocked(mapped, "/sbin/iptables -I INPUT -s 192.0.2.12 -j DROP"),
			`attackalert: Host 192.0.2.12 has been blocked via dropped route using command: "/sbin/iptables -I INPUT -s 192.0.2.12 -j DROP"`},
		{CommandRun(v4, "/usr/local/bin/notify.sh 192.0.2.12 111 stcp"),
			`attackalert: External command run for host: 192.0.2.12 using command: "/usr/local/bin/notify.sh 192.0.2.12 111 stcp"`},
		{AlreadyBlocked("192.0.2.12", v4), "attackalert: Host: 192.0.2.12/192.0.2.12 is already blocked Ignoring"},
		{AlreadyBlocked("::1", netip.MustParseAddr("::1")), "attackalert: Host: ::1/::1 is already blocked Ignoring"},
		{AlreadyBlocked("bad name", v4), "attackalert: Host: 192.0.2.12/192.0.2.12 is already blocked Ignoring"},
		{Starting("PortSentry 1.2"), "adminalert: PortSentry 1.2 is starting."},
		{ListenMode("tcp", 111), "adminalert: Going into listen mode on TCP port: 111"},
		{Active(), "adminalert: PortSentry is now active and listening."},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("\n got %q\nwant %q", c.got, c.want)
		}
	}
}

func TestModes(t *testing.T) {
	for _, m := range Modes() {
		if !ValidMode(m) {
			t.Errorf("ValidMode(%q) = false", m)
		}
		if got, want := BlockedPath("/var/lib/portsentry/portsentry.blocked", m), "/var/lib/portsentry/portsentry.blocked."+m; got != want {
			t.Errorf("BlockedPath = %q, want %q", got, want)
		}
	}
	if len(Modes()) != 6 {
		t.Errorf("Modes() = %q", Modes())
	}
	for _, m := range []string{"", "TCP", "tcp ", "../x", "/x", "stcp/..", "ttcp"} {
		if ValidMode(m) || BlockedPath("/x/blocked", m) != "" {
			t.Errorf("mode %q accepted", m)
		}
	}
	if BlockedPath("", "tcp") != "" {
		t.Error("BlockedPath with an empty base")
	}
}

func TestLineAddr(t *testing.T) {
	cases := []struct {
		line string
		want string // "" for not a history line
	}{
		{"942286729 - 11/10/1999 20:18:49 Host: 192.0.2.12/192.0.2.12 Port: 111 TCP Blocked\n", "192.0.2.12"},
		{"942286729 - 11/10/1999 20:18:49 Host: scanner.example.net/2001:db8::1 Port: 111 UDP Blocked\r\n", "2001:db8::1"},
		{"1 - 11/10/1999 20:18:49 Host: ::ffff:192.0.2.12/::ffff:192.0.2.12 Port: 1 TCP Blocked", "192.0.2.12"},
		{"# 1 - Host: a/192.0.2.12 Port: 1 TCP", ""},
		{"Host: 192.0.2.12 Port: 1 TCP Blocked", ""},
		{"1 - x Host: a/not-an-ip Port: 1 TCP Blocked", ""},
		{"", ""},
	}
	for _, c := range cases {
		a, ok := LineAddr(c.line)
		if c.want == "" {
			if ok {
				t.Errorf("LineAddr(%q) = %v, want none", c.line, a)
			}
			continue
		}
		if !ok || a != netip.MustParseAddr(c.want) {
			t.Errorf("LineAddr(%q) = %v %v, want %s", c.line, a, ok, c.want)
		}
	}
}

// TestHistoryReadByFail2ban writes history lines with HistoryLine and
// runs fail2ban's own portsentry filter over them with fail2ban-regex:
// every line must match, with the right address and time.
func TestHistoryReadByFail2ban(t *testing.T) {
	const filter = "/etc/fail2ban/filter.d/portsentry.conf"
	f2b, err := exec.LookPath("fail2ban-regex")
	if err != nil {
		t.Skip("fail2ban-regex not installed (Debian package fail2ban)")
	}
	if _, err := os.Stat(filter); err != nil {
		t.Skipf("%s missing: %v", filter, err)
	}
	path := filepath.Join(t.TempDir(), "portsentry.history")
	h, err := OpenHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	type rec struct {
		host  string
		addr  netip.Addr
		port  uint16
		proto string
	}
	recs := []rec{
		{"", v4, 111, "tcp"},
		{"", v4, 161, "udp"},
		{"", v6, 1, "TCP"},
		{"", v6, 53, "UDP"},
		{"scanner.example.net", netip.MustParseAddr("198.51.100.66"), 31337, "tcp"},
		{"scanner6.example.net", netip.MustParseAddr("fd00:77::66"), 32771, "udp"},
		{"", mapped, 12345, "tcp"},
		{"", netip.MustParseAddr("fd00:77::1:2:3:4"), 65535, "tcp"},
	}
	var want []string
	for i, r := range recs {
		at := base.Add(time.Duration(i) * time.Minute)
		host := r.host
		if host == "" {
			host = r.addr.Unmap().String()
		}
		if err := h.Append(HistoryLine(at, host, r.addr, r.port, r.proto)); err != nil {
			t.Fatal(err)
		}
		want = append(want, r.addr.Unmap().String()+" "+strconv.FormatInt(at.Unix(), 10))
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(f2b, path, filter).CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed`).FindStringSubmatch(string(out))
	n := strconv.Itoa(len(recs))
	if m == nil || m[1] != n || m[2] != "0" || m[3] != n || m[4] != "0" {
		t.Fatalf("fail2ban-regex did not match every line (want %s of %s):\n%s", n, n, out)
	}
	// which address and time did it take from each line?
	out, err = exec.Command(f2b, "-o", "row", path, filter).CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex -o row: %v\n%s", err, out)
	}
	rows := regexp.MustCompile(`(?m)^\['([^']+)',\s+(\d+)\.0,`).FindAllStringSubmatch(string(out), -1)
	var got []string
	for _, r := range rows {
		got = append(got, r[1]+" "+r[2])
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("fail2ban read\n%s\nwant\n%s\n(output:\n%s)", strings.Join(got, "\n"), strings.Join(want, "\n"), out)
	}
}

// logwatch's services/portsentry patterns, as given in the facts file and
// shipped in Debian's logwatch 7.7.
var (
	lwScan    = regexp.MustCompile(`attackalert: (.+) scan from host: [^/]+/(\S+) to (\w+) port: (\d+)`)
	lwBlocked = regexp.MustCompile(`Host (\S+) has been blocked`)
	lwAlready = regexp.MustCompile(`Host: (\S+) is already blocked`)
)

// scanTypes are every detect.ScanType.
var scanTypes = []detect.ScanType{detect.TypeSYN, detect.TypeConnect, detect.TypeFIN, detect.TypeNULL,
	detect.TypeXMAS, detect.TypeACK, detect.TypeMaimon, detect.TypeUDP, detect.TypeOdd}

// alertLines are attackalert lines for every scan type and address form,
// with what logwatch must read from them.
type alertLine struct {
	line    string
	pattern *regexp.Regexp
	groups  []string
}

func alertLines() []alertLine {
	var out []alertLine
	for _, a := range []netip.Addr{v4, v6, mapped} {
		ua := a.Unmap().String()
		for _, st := range scanTypes {
			proto := detect.ProtoName(st.Proto())
			label := st.PortSentryLabel()
			if st == detect.TypeConnect {
				continue // not a "scan" line, see TestConnectIsNotAScan
			}
			for _, host := range []string{"", "scanner.example.net"} {
				out = append(out, alertLine{ScanAlert(label, host, a, proto, 32771), lwScan,
					[]string{strings.TrimSuffix(label, " scan"), ua, proto, "32771"}})
			}
		}
		out = append(out,
			alertLine{WrappersBlocked(a, "ALL: x"), lwBlocked, []string{ua}},
			alertLine{RouteBlocked(a, "/sbin/route add -host x reject"), lwBlocked, []string{ua}},
			alertLine{AlreadyBlocked("", a), lwAlready, []string{ua + "/" + ua}},
			alertLine{AlreadyBlocked("scanner.example.net", a), lwAlready, []string{"scanner.example.net/" + ua}},
		)
	}
	return out
}

func TestAlertsReadByLogwatch(t *testing.T) {
	for _, c := range alertLines() {
		m := c.pattern.FindStringSubmatch(c.line)
		if m == nil {
			t.Errorf("%q does not match logwatch's %q", c.line, c.pattern)
			continue
		}
		if strings.Join(m[1:], "|") != strings.Join(c.groups, "|") {
			t.Errorf("%q: logwatch reads %q, want %q", c.line, m[1:], c.groups)
		}
	}
}

// TestConnectIsNotAScan: 1.2's Connect line has no "scan", and logwatch
// does not count it as one; it is written exactly as 1.2 did all the same.
func TestConnectIsNotAScan(t *testing.T) {
	line := ConnectAlert("", v4, "TCP", 11)
	if lwScan.MatchString(line) {
		t.Errorf("%q matches logwatch's scan pattern", line)
	}
	if got := ScanAlert(detect.TypeConnect.PortSentryLabel(), "", v4, "TCP", 11); got != line {
		t.Errorf("ScanAlert with the Connect label %q, ConnectAlert %q", got, line)
	}
}

// logwatchDir is Debian's logwatch share directory, or
// $SCANWARDEN_LOGWATCH_DIR (for a package unpacked with dpkg-deb -x).
func logwatchDir() string {
	if d := os.Getenv("SCANWARDEN_LOGWATCH_DIR"); d != "" {
		return d
	}
	return "/usr/share/logwatch"
}

// TestLogwatchScript checks the patterns against the logwatch service
// script itself, and runs it over our lines.
func TestLogwatchScript(t *testing.T) {
	dir := logwatchDir()
	script := filepath.Join(dir, "scripts", "services", "portsentry")
	src, err := os.ReadFile(script)
	if err != nil {
		t.Skipf("logwatch's portsentry service is not installed (Debian package logwatch, or set SCANWARDEN_LOGWATCH_DIR to an unpacked usr/share/logwatch): %v", err)
	}
	for _, p := range []string{
		`m|attackalert: (.+) scan from host: [^/]+/(\S+) to (\w+) port: (\d+)|`,
		`/Host (\S+) has been blocked/`,
		`/Host: (\S+) is already blocked/`,
		`/PortSentry is now active/`,
	} {
		if !strings.Contains(string(src), p) {
			t.Errorf("%s no longer has %s: the patterns this test checks against are out of date", script, p)
		}
	}
	perl, err := exec.LookPath("perl")
	if err != nil {
		t.Skip("no perl to run the script")
	}
	var in strings.Builder
	in.WriteString(Active() + "\n")
	for _, c := range alertLines() {
		in.WriteString(c.line + "\n")
	}
	cmd := exec.Command(perl, "-I", filepath.Join(dir, "lib"), script)
	cmd.Stdin = strings.NewReader(in.String())
	cmd.Env = append(os.Environ(), "LOGWATCH_DETAIL_LEVEL=10", "LOGWATCH_NUMERIC=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	report := string(out)
	if strings.Contains(report, "Unmatched entries") {
		t.Errorf("logwatch did not recognise some lines:\n%s", report)
	}
	for _, want := range []string{
		"Warning: Portscans detected",
		"   TCP SYN/Normal from:",
		"    TCP NULL from:", // the leading space of 1.2's label
		"   UDP from:",
		"      192.0.2.12: ports: 32771",
		"      2001:db8::1: ports: 32771",
		"Warning: Blocked route from/to 192.0.2.12 4 times(s).",
		"Warning: Blocked route from/to 2001:db8::1 2 times(s).",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("logwatch's report lacks %q:\n%s", want, report)
		}
	}
}
