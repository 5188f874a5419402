package conf

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestParseIgnore(t *testing.T) {
	text := "\uFEFF# PortSentry's ignore file\r\n" +
		"#\r\n" +
		"127.0.0.1/32\r\n" +
		"0.0.0.0\r\n" +
		"\r\n" +
		"  192.0.2.7/24   # office network, host bits set\n" +
		"198.51.100.9#no space before the comment\n" +
		"2001:db8::/32\n" +
		"::1\n" +
		"\t::ffff:203.0.113.5\t\n" +
		"::ffff:10.0.0.0/104\n" +
		"192.168.1.10 admin workstation\n" + // a note after the address, as PortSentry 1.2 reads it
		"172.16.0.0/12\tvpn-clients # and a comment\n" +
		"127.0.0.1/32\n" // repeat: dropped
	l, err := ParseIgnore(strings.NewReader(text), "portsentry.ignore")
	if err != nil {
		t.Fatal(err)
	}
	want := prefixes("127.0.0.1/32", "0.0.0.0/32", "192.0.2.0/24", "198.51.100.9/32", "2001:db8::/32",
		"::1/128", "203.0.113.5/32", "10.0.0.0/8", "192.168.1.10/32", "172.16.0.0/12")
	if got := l.Prefixes(); !reflect.DeepEqual(got, want) {
		t.Errorf("Prefixes()\n got %v\nwant %v", got, want)
	}
	if l.Len() != len(want) {
		t.Errorf("Len() = %d", l.Len())
	}

	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.0.0.2", false}, // /32 only
		{"0.0.0.0", true},
		{"0.0.0.1", false}, // 0.0.0.0 is one address, not 0.0.0.0/0
		{"8.8.8.8", false},
		{"192.0.2.200", true},
		{"192.0.3.1", false},
		{"198.51.100.9", true},
		{"2001:db8:1::5", true},
		{"2001:db9::1", false},
		{"::1", true},
		{"::2", false},
		{"203.0.113.5", true},      // stored unmapped
		{"10.200.0.1", true},       // ::ffff:10.0.0.0/104 is 10.0.0.0/8
		{"::ffff:127.0.0.1", true}, // mapped address matches IPv4 entry
		{"::ffff:192.0.2.9", true},
		{"::ffff:8.8.8.8", false},
		{"fe80::1%eth0", false},
		{"2001:db8::1%eth0", true}, // zone disregarded
	}
	for _, tt := range tests {
		if got := l.Contains(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Contains(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if l.Contains(netip.Addr{}) {
		t.Error("Contains(zero Addr) = true")
	}
	var nilList *IgnoreList
	if nilList.Contains(netip.MustParseAddr("127.0.0.1")) || nilList.Len() != 0 || nilList.Prefixes() != nil {
		t.Error("nil list is not empty")
	}
	// Prefixes returns a copy.
	p := l.Prefixes()
	p[0] = netip.MustParsePrefix("0.0.0.0/0")
	if l.Contains(netip.MustParseAddr("8.8.8.8")) {
		t.Error("Prefixes() shares the list's storage")
	}
}

func TestParseIgnoreErrors(t *testing.T) {
	tests := []struct {
		text string
		line int
		msg  string
	}{
		{"127.0.0.1/32\nlocalhost\n", 2, `"localhost" is not an IPv4 or IPv6 address`},
		{"\n\n192.0.2.0/33\n", 3, "not an address/bits prefix"},
		{"192.0.2.0/\n", 1, "not an address/bits prefix"},
		{"192.0.2.0/255.255.255.0\n", 1, "not an address/bits prefix"},
		{"2001:db8::/129\n", 1, "not an address/bits prefix"},
		{"192.0.2.1 192.0.2.2\n", 1, `one address or ADDRESS/BITS per line (put 192.0.2.2 on a line of its own)`},
		{"192.0.2.1\t2001:db8::/32 lab\n", 1, "one address"},
		{"localhost 127.0.0.1\n", 1, "one address"},
		{"host-a 192.0.2.1\n", 1, "one address"},
		{"backup 192.0.2.1/24\n", 1, "one address"},
		{"fe80::1%eth0\n", 1, "zone"},
		{"300.1.1.1\n", 1, "not an IPv4 or IPv6 address"},
		{"# ok\r\n10.0.0.1\r\n10.0.0.x\r\n", 3, `"10.0.0.x"`},
	}
	for _, tt := range tests {
		l, err := ParseIgnore(strings.NewReader(tt.text), "x.ignore")
		if l != nil {
			t.Errorf("%q: list returned along with an error", tt.text)
		}
		var le *LineError
		if !errors.As(err, &le) {
			t.Errorf("%q: error %v is not a *LineError", tt.text, err)
			continue
		}
		if le.File != "x.ignore" || le.Line != tt.line || le.Key != "" || !strings.Contains(le.Msg, tt.msg) {
			t.Errorf("%q: got %v, want line %d containing %q", tt.text, err, tt.line, tt.msg)
		}
		if !strings.HasPrefix(err.Error(), "x.ignore:"+strconv.Itoa(tt.line)+": ") {
			t.Errorf("%q: error text %q", tt.text, err)
		}
	}
	_, err := ParseIgnore(strings.NewReader(strings.Repeat("1", maxLineLen+1)), "x.ignore")
	if err == nil || !strings.Contains(err.Error(), "x.ignore:1: line longer than") {
		t.Errorf("long line: %v", err)
	}
}

func TestLoadIgnore(t *testing.T) {
	l, err := LoadIgnore(filepath.Join("..", "etc", "scanwarden.ignore"))
	if err != nil {
		t.Fatal(err)
	}
	want := prefixes("127.0.0.1/32", "::1/128", "0.0.0.0/32")
	if got := l.Prefixes(); !reflect.DeepEqual(got, want) {
		t.Errorf("shipped ignore file: %v, want %v", got, want)
	}

	_, err = LoadIgnore(filepath.Join(t.TempDir(), "nope.ignore"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing ignore file: %v does not wrap fs.ErrNotExist", err)
	}

	path := filepath.Join(t.TempDir(), "bad.ignore")
	if err := os.WriteFile(path, []byte("127.0.0.1\nnot-an-address\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadIgnore(path)
	var le *LineError
	if !errors.As(err, &le) || le.File != path || le.Line != 2 {
		t.Errorf("bad ignore file: %v", err)
	}
}

func TestIgnoreContainsDoesNotAllocate(t *testing.T) {
	l, err := ParseIgnore(strings.NewReader("127.0.0.1/32\n0.0.0.0\n2001:db8::/32\n192.0.2.0/24\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	a4, a6, mapped := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:192.0.2.1")
	allocs := testing.AllocsPerRun(100, func() {
		l.Contains(a4)
		l.Contains(a6)
		l.Contains(mapped)
	})
	if allocs != 0 {
		t.Errorf("Contains allocates: %v per run", allocs)
	}
}

func TestParseIgnoreReportsEveryLine(t *testing.T) {
	_, err := ParseIgnore(strings.NewReader("127.0.0.1\nlocalhost\n::1\n300.1.1.1\n10.0.0.0/40\n"), "x.ignore")
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 3 {
		t.Fatalf("got %v", err)
	}
	for i, line := range []int{2, 4, 5} {
		if errs[i].Line != line || errs[i].File != "x.ignore" {
			t.Errorf("problem %d: %v", i, errs[i])
		}
	}
	if n := strings.Count(err.Error(), "\n"); n != 2 {
		t.Errorf("message has %d line breaks: %q", n, err)
	}
}
