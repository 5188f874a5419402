package conf

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics; what it accepts validates, and what it
// refuses is refused with a *LineError that names the file.
func FuzzParse(f *testing.F) {
	if shipped, err := os.ReadFile(filepath.Join("..", "etc", "scanwarden.conf")); err == nil {
		f.Add(shipped)
	}
	for _, s := range []string{
		"",
		"TCP_PORTS=\"1,11,15-20\"\r\nRESOLVE_HOST = \"0\"\n",
		"PORT_BANNER=\"# not a comment\" # a comment\n",
		"BLOCK_TCP=\"2\"\nKILL_RUN_CMD=\"/bin/x $TARGET$ $PORT$\"\nBLOCK_TCP=\"0\"\n",
		"HOME_NETWORKS=\"10.0.0.0/8, ::ffff:1.2.3.4, 2001:db8::/32\"\nINTERFACES=\"eth0,eth1\"\n",
		"DETECT_WINDOW=10m\nBAN_EXPIRY_TCP=0\nMAX_SOURCES=64 # min\n",
		"KEY\n", "TCP_PORTS=\"1", "=\"\"", "\uFEFFSYSLOG=\"1\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(bytes.NewReader(data), "fuzz.conf")
		if err != nil {
			if c != nil {
				t.Fatal("config returned along with an error")
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("error is not a *LineError: %v", err)
			}
			if le.File != "fuzz.conf" || !strings.HasPrefix(err.Error(), "fuzz.conf") || le.Msg == "" {
				t.Fatalf("error does not name the file or the problem: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config does not validate: %v", err)
		}
		for _, w := range c.Warnings {
			if !strings.HasPrefix(w, "fuzz.conf:") {
				t.Fatalf("warning does not name file and line: %q", w)
			}
		}
	})
}

// FuzzParseIgnore: ParseIgnore never panics, and every entry it keeps is a
// valid masked prefix.
func FuzzParseIgnore(f *testing.F) {
	for _, s := range []string{"127.0.0.1/32\n0.0.0.0\n", "::1/128 # lo\r\n", "::ffff:10.0.0.0/104\n", "fe80::1%eth0\n", "1.2.3.4/33"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseIgnore(bytes.NewReader(data), "fuzz.ignore")
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) || le.Line < 1 {
				t.Fatalf("bad error: %v", err)
			}
			return
		}
		for _, p := range l.Prefixes() {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() && p.Bits() >= 96 {
				t.Fatalf("bad entry %v", p)
			}
			if !l.Contains(p.Addr()) {
				t.Fatalf("list does not contain its own entry %v", p)
			}
		}
	})
}

// FuzzParsePortList: ParsePortList never panics, and String of an accepted
// list parses back to the same set.
func FuzzParsePortList(f *testing.F) {
	for _, s := range []string{"1,2,3", "512-515, 540", "0-65535", "65536", "10-5", " , ,7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, err := ParsePortList(v)
		if err != nil {
			return
		}
		back, err := ParsePortList(s.String())
		if err != nil || back != s {
			t.Fatalf("%q: String %q does not round-trip (%v)", v, s.String(), err)
		}
	})
}
