package detect

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// TestMakeTableLayout: a huge table starts within one element after a
// huge page boundary, is n zero elements long with no room to grow
// into the padding, and its memory is advised for huge pages (the "hg"
// flag of its mapping). A table smaller than a huge page is exactly n
// long.
func TestMakeTableLayout(t *testing.T) {
	n := DefaultMaxSources
	tab := makeTable[source](n, true)
	if len(tab) != n || cap(tab) != n {
		t.Fatalf("len %d cap %d, want %d and %d", len(tab), cap(tab), n, n)
	}
	size := unsafe.Sizeof(source{})
	start := uintptr(unsafe.Pointer(&tab[0]))
	if off := start % hugePage; off >= size {
		t.Errorf("the table starts %d bytes after a huge page boundary, want less than one element (%d)", off, size)
	}
	for i := range tab {
		if tab[i] != (source{}) {
			t.Fatalf("element %d is not zero", i)
		}
	}
	if small := makeTable[source](10, true); len(small) != 10 || cap(small) != 10 {
		t.Errorf("a small table: len %d cap %d, want 10", len(small), cap(small))
	}
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage"); err != nil {
		t.Skipf("no transparent huge pages in this kernel (%v): the advice is not checked", err)
	}
	flags, err := vmFlags(start)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(" "+flags+" ", " hg ") {
		t.Errorf("the table's mapping has flags %q, without hg (MADV_HUGEPAGE)", flags)
	}
}

// vmFlags returns the VmFlags of the mapping of this process holding
// addr, from /proc/self/smaps.
func vmFlags(addr uintptr) (string, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return "", err
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := strings.Cut(strings.Fields(line + " ")[0], "-"); ok && !strings.HasSuffix(line, ":") {
			a, err1 := strconv.ParseUint(lo, 16, 64)
			b, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil {
				in = uint64(addr) >= a && uint64(addr) < b
				continue
			}
		}
		if v, ok := strings.CutPrefix(line, "VmFlags:"); ok && in {
			return strings.TrimSpace(v), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no mapping holds %#x", addr)
}

// TestHugePagesSameVerdicts: an engine whose tables are laid out for
// huge pages gives the same alerts and counts, packet by packet, as one
// in plain allocations, through a forged flood that fills and recycles
// every table and real scanners inside it.
func TestHugePagesSameVerdicts(t *testing.T) {
	cfg := Config{TrapTCP: ports(1)}
	plain := newEngine(t, cfg)
	cfg.HugePages = true
	huge := newEngine(t, cfg)
	step := func(i int, p *Probe) {
		a0, a1 := plain.Process(p), huge.Process(p)
		if (a0 == nil) != (a1 == nil) || a0 != nil && !reflect.DeepEqual(a0.Clone(), a1.Clone()) {
			t.Fatalf("packet %d: plain tables %+v, huge %+v", i, a0, a1)
		}
	}
	for i := range 3 * DefaultMaxSources * 2 {
		src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		ts := t0 + int64(i)*int64(time.Microsecond)
		step(i, tcp(ts, src, 1234, victim, uint16(80+i%3), FlagSYN))
		if i%1000 == 0 {
			scanner := netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i/1000%5)})
			port := uint16(2000 + i/1000)
			step(i, tcp(ts, scanner, 40000, victim, port, FlagSYN))
			step(i, tcp(ts+1, victim, port, scanner, 40000, FlagRST|FlagACK))
		}
	}
	if s0, s1 := plain.Stats(), huge.Stats(); s0 != s1 {
		t.Fatalf("stats: plain tables %+v, huge %+v", s0, s1)
	}
	if plain.Stats().Alerts == 0 || plain.Stats().Evicted == 0 {
		t.Fatalf("the run raised no alert or evicted no source: %+v", plain.Stats())
	}
}
