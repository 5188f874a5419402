package conf

import (
	"reflect"
	"strings"
	"testing"

	"github.com/scanwarden/scanwarden/detect"
)

func TestParsePortList(t *testing.T) {
	tests := []struct {
		in   string
		want []uint16
		str  string
	}{
		{"", nil, ""},
		{" , ,", nil, ""},
		{"80", []uint16{80}, "80"},
		{"443,80,22,80", []uint16{22, 80, 443}, "22,80,443"},
		{"1,2", []uint16{1, 2}, "1,2"},
		{"1,2,3", []uint16{1, 2, 3}, "1-3"},
		{"512-515, 540", []uint16{512, 513, 514, 515, 540}, "512-515,540"},
		{"5-5", []uint16{5}, "5"},
		{"\t7 ,\t9 - 10 ", []uint16{7, 9, 10}, "7,9,10"},
		{"65534-65535,0", []uint16{0, 65534, 65535}, "0,65534,65535"},
		{"63,64,65,127,128", []uint16{63, 64, 65, 127, 128}, "63-65,127,128"},
		{"1,11,15,79,111,119,143,540,635,1080,1524,2000,5742,6667,12345,12346,20034,27665,31337,32771,32772,32773,32774,40421,49724,54320",
			[]uint16{1, 11, 15, 79, 111, 119, 143, 540, 635, 1080, 1524, 2000, 5742, 6667, 12345, 12346, 20034, 27665, 31337, 32771, 32772, 32773, 32774, 40421, 49724, 54320},
			"1,11,15,79,111,119,143,540,635,1080,1524,2000,5742,6667,12345,12346,20034,27665,31337,32771-32774,40421,49724,54320"},
	}
	for _, tt := range tests {
		s, err := ParsePortList(tt.in)
		if err != nil {
			t.Errorf("ParsePortList(%q): %v", tt.in, err)
			continue
		}
		if got := s.Ports(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParsePortList(%q).Ports() = %v, want %v", tt.in, got, tt.want)
		}
		if got := s.String(); got != tt.str {
			t.Errorf("ParsePortList(%q).String() = %q, want %q", tt.in, got, tt.str)
		}
		if s.Len() != len(tt.want) {
			t.Errorf("ParsePortList(%q).Len() = %d", tt.in, s.Len())
		}
		back, err := ParsePortList(s.String())
		if err != nil || back != s {
			t.Errorf("String() of %q does not parse back to the same set: %v", tt.in, err)
		}
	}
}

func TestParsePortListErrors(t *testing.T) {
	tests := []struct{ in, msg string }{
		{"x", `bad port "x": not a number`},
		{"80,http", `bad port "http"`},
		{"65536", "port 65536 out of range 0..65535"},
		{"1-70000", `bad port range "1-70000": port 70000 out of range`},
		{"20-10", `reversed port range "20-10"`},
		{"-5", `bad port range "-5": want FIRST-LAST`},
		{"5-", `bad port range "5-"`},
		{"1-2-3", `bad port range "1-2-3"`},
		{"0x50", `bad port "0x50"`},
		{"1 2", `bad port "1 2"`},
		{"1.5", `bad port "1.5"`},
	}
	for _, tt := range tests {
		_, err := ParsePortList(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ParsePortList(%q) = %v, want an error containing %q", tt.in, err, tt.msg)
		}
	}
}

func TestPortSetOps(t *testing.T) {
	var s detect.PortSet
	if s.Len() != 0 || s.Ports() != nil || s.String() != "" || s.Has(0) {
		t.Fatal("the zero PortSet is not empty")
	}
	for _, p := range []uint16{0, 63, 64, 65535} {
		s.Add(p)
		if !s.Has(p) {
			t.Errorf("Has(%d) after Add", p)
		}
	}
	if s.Has(1) || s.Has(62) || s.Has(65) || s.Has(65534) {
		t.Error("Has reports a port never added")
	}
	s.Remove(63)
	if s.Has(63) || s.Len() != 3 {
		t.Errorf("after Remove(63): %s", s)
	}
	s.AddRange(10, 5) // reversed: no-op
	if s.Len() != 3 {
		t.Errorf("reversed AddRange changed the set: %s", s)
	}
	s.AddRange(65530, 65535)
	if s.Len() != 8 || s.String() != "0,64,65530-65535" {
		t.Errorf("after AddRange: %d %s", s.Len(), s)
	}
	var all detect.PortSet
	all.AddRange(0, 65535)
	if all.Len() != 65536 || all.String() != "0-65535" || len(all.Ports()) != 65536 {
		t.Errorf("full set: %d ports, %q", all.Len(), all.String())
	}
}

func TestPortSetHasDoesNotAllocate(t *testing.T) {
	s := Default().TCPPorts
	var hits int
	allocs := testing.AllocsPerRun(100, func() {
		for p := 0; p < 65536; p += 7 {
			if s.Has(uint16(p)) {
				hits++
			}
		}
	})
	if allocs != 0 {
		t.Errorf("Has allocates: %v per run", allocs)
	}
	if hits == 0 {
		t.Error("no hit at all")
	}
}

func BenchmarkPortSetHas(b *testing.B) {
	s := Default().TCPPorts
	n := 0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if s.Has(uint16(i)) {
			n++
		}
	}
	_ = n
}

func TestPortsText(t *testing.T) {
	for _, c := range []struct {
		in   []uint16
		want string
	}{
		{nil, ""}, {[]uint16{1}, "1"}, {[]uint16{1, 2}, "1,2"}, {[]uint16{1, 11, 32771, 32772, 32773, 32774, 40421}, "1,11,32771-32774,40421"},
	} {
		if got := detect.PortsText(c.in); got != c.want {
			t.Errorf("detect.PortsText(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}
