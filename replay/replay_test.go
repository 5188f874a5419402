package replay

import (
	"context"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/scanwarden/scanwarden/detect"
)

// A replay judges every alert's source by what the capture itself shows.
// decoy.pcap is nmap -sS -D 198.51.100.150,198.51.100.151,ME from
// 198.51.100.112: all three probe in step from the attacker's MAC, which
// its ARP request for the victim binds to 198.51.100.112, and nobody
// answers the victim's ARP requests for the decoys.
func TestReplayJudgesDecoys(t *testing.T) {
	file := filepath.Join("..", "testdata", "pcaps", "decoy.pcap")
	got := map[netip.Addr]detect.Judgement{}
	_, err := Files(context.Background(), []string{file}, Options{}, func(a *detect.Alert, _ string) error {
		got[a.Src] = a.Origin
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]detect.Verdict{
		"198.51.100.112": detect.Genuine,
		"198.51.100.150": detect.Forged,
		"198.51.100.151": detect.Forged,
	}
	if len(got) != len(want) {
		t.Fatalf("alerts for %v, want %d sources", got, len(want))
	}
	for src, v := range want {
		j, ok := got[netip.MustParseAddr(src)]
		if !ok || j.Verdict != v {
			t.Errorf("%s: %v %q, want %v", src, j.Verdict, j.Evidence, v)
		}
		if v == detect.Forged && !strings.Contains(j.Evidence, "the MAC of 198.51.100.112") {
			t.Errorf("%s: evidence %q does not name the attacker", src, j.Evidence)
		}
	}
}

// Every other recorded capture has no forged source: the verdicts only
// ever take the framed out of a block, never a real scanner.
func TestReplayNoForgedScanners(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "pcaps", "*.pcap*"))
	if err != nil || len(files) < 10 {
		t.Fatalf("captures: %v %v", files, err)
	}
	for _, f := range files {
		if filepath.Base(f) == "decoy.pcap" {
			continue
		}
		_, err := Files(context.Background(), []string{f}, Options{}, func(a *detect.Alert, _ string) error {
			if a.Origin.Verdict == detect.Forged || a.Origin.Verdict == detect.Unjudged || a.Origin.Verdict == detect.Pending {
				t.Errorf("%s: %s judged %v: %s", filepath.Base(f), a.Src, a.Origin.Verdict, a.Origin.Evidence)
			}
			return nil
		})
		if err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// The engine's tables laid out for huge pages, as a replay has them, give
// the same alerts, judgements included, as plain ones on every recorded
// capture, one by one and merged.
func TestReplayHugeTablesSameAlerts(t *testing.T) {
	var files []string
	for _, g := range []string{"pcaps/*.pcap*", "captures/*.pcap"} {
		m, err := filepath.Glob(filepath.Join("..", "testdata", g))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 20 {
		t.Fatalf("only %d captures", len(files))
	}
	defer func(h bool) { hugeTables = h }(hugeTables)
	replayAll := func(huge, merge bool) ([]*detect.Alert, Summary) {
		hugeTables = huge
		var got []*detect.Alert
		sum, err := Files(context.Background(), files, Options{Merge: merge}, func(a *detect.Alert, _ string) error {
			got = append(got, a.Clone())
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got, sum
	}
	for _, merge := range []bool{false, true} {
		plain, sum0 := replayAll(false, merge)
		huge, sum1 := replayAll(true, merge)
		if len(plain) == 0 {
			t.Fatal("no alerts at all")
		}
		if !reflect.DeepEqual(plain, huge) || sum0 != sum1 {
			t.Errorf("merge %v: plain tables: %d alerts %+v; huge: %d alerts %+v", merge, len(plain), sum0, len(huge), sum1)
		}
	}
}
