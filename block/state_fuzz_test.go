package block

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzStateParse reads arbitrary state.json and pending.jsonl contents
// (an empty state means no state.json) the way the daemon does, and
// checks that:
//   - nothing panics;
//   - Load fails exactly when state.json is not a valid state (its JSON,
//     its version, every ban's address), rather than returning part of it;
//   - a loaded list loses no valid ban: every ban of state.json and every
//     pending line that reads as a ban with an address is there (a pending
//     line replaces an older ban of its address), each address once;
//   - a ban Pend appends after whatever pending.jsonl holds (a line torn
//     by a crash or a full disk) is read back, and Fold, which empties
//     pending.jsonl into state.json, keeps the list as Load had it.
func FuzzStateParse(f *testing.F) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	doc := func(bans ...Ban) []byte {
		b, err := json.MarshalIndent(stateDoc{Version: stateVersion, Bans: bans}, "", "  ")
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	line := func(b Ban) []byte {
		l, err := json.Marshal(b)
		if err != nil {
			f.Fatal(err)
		}
		return append(l, '\n')
	}
	a := Ban{Addr: netip.MustParseAddr("198.51.100.7"), Proto: "tcp", Port: 22, Type: "syn", Reason: "syn scan", Since: since}
	b := Ban{Addr: netip.MustParseAddr("2001:db8::7"), Proto: "udp", Port: 53, Type: "udp", Since: since, Until: since.Add(time.Hour)}
	c := Ban{Addr: netip.MustParseAddr("203.0.113.9"), Proto: "tcp", Port: 80, Type: "fin", Since: since}
	for _, seed := range []struct{ state, pending []byte }{
		{nil, nil},
		{doc(), nil},
		{doc(a, b), nil},
		{doc(a), line(b)},
		{doc(a, b), append(line(c), line(Ban{Addr: a.Addr, Proto: "udp", Since: since})...)},
		{nil, append(line(a), "\n\n{\"addr\":\"\"}\nnull\n[]\n"...)},
		{[]byte(`{"version":2,"bans":[]}`), nil},
		{[]byte(`{"version":1,"bans":[{"addr":""}]}`), nil},
		{[]byte(`{"version":1,"bans":[{"addr":"198.51.100.7","since":"2026-01-02T03:04:05+01:00"}]}`), nil},
		{[]byte(`{"version":1,"bans":null}`), line(c)},
		{[]byte("{"), nil},
	} {
		f.Add(seed.state, seed.pending)
	}

	now := since.Add(time.Minute)
	fresh := Ban{Addr: netip.MustParseAddr("192.0.2.77"), Proto: "tcp", Port: 23, Type: "syn", Reason: "fuzz", Since: now}
	f.Fuzz(func(t *testing.T, stateData, pending []byte) {
		dir := t.TempDir()
		if len(stateData) > 0 {
			if err := os.WriteFile(filepath.Join(dir, "state.json"), stateData, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, pendingName), pending, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenState(dir)
		if err != nil {
			t.Fatal(err)
		}
		bans, err := s.Load()
		stateBans, valid := refState(stateData)
		if (err == nil) != valid {
			t.Fatalf("Load: %v, but state.json valid = %v", err, valid)
		}
		if err != nil {
			return
		}
		checkNothingLost(t, bans, stateBans, pending)

		// a ban appended after whatever pending.jsonl ends with
		taken, err := s.Pend(fresh, now, nil, nil, true)
		if err != nil {
			t.Fatalf("Pend: %v", err)
		}
		before, err := s.Load()
		if err != nil {
			t.Fatalf("Load after Pend: %v", err)
		}
		if !taken {
			if i := findBan(before, fresh.Addr); i < 0 || !sameBan(before[i], fresh) {
				t.Fatalf("the ban Pend appended after %q is lost: %+v", pending, before)
			}
		}
		// Fold may fail (a time JSON cannot write), not lose a ban
		s.Fold()
		after, err := s.Load()
		if err != nil {
			t.Fatalf("Load after Fold: %v", err)
		}
		if len(after) != len(before) {
			t.Fatalf("Fold: %d bans, %d before", len(after), len(before))
		}
		for i := range after {
			if !sameBan(after[i], before[i]) {
				t.Fatalf("Fold: ban %d %+v, before %+v", i, after[i], before[i])
			}
		}
	})
}

// refState reads state.json's contents as its format says, without the
// StateFile: the bans, and whether it is a valid state (no file is one).
func refState(data []byte) ([]Ban, bool) {
	if len(data) == 0 {
		return nil, true
	}
	var doc stateDoc
	if json.Unmarshal(data, &doc) != nil || doc.Version != stateVersion {
		return nil, false
	}
	for _, b := range doc.Bans {
		if !b.Addr.IsValid() {
			return nil, false
		}
	}
	return doc.Bans, true
}

// refPending returns the bans of the lines of pending.jsonl that read as
// bans by themselves, in order; clean when every line is empty or a JSON
// value (nothing torn), and last when the last line that is not empty is
// a ban.
func refPending(data []byte) (bans []Ban, clean, last bool) {
	clean = true
	for _, l := range bytes.Split(data, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var b Ban
		err := json.Unmarshal(l, &b)
		if err != nil {
			clean = false
		}
		last = err == nil && b.Addr.IsValid()
		if last {
			bans = append(bans, b)
		}
	}
	return bans, clean, last
}

// checkNothingLost checks a loaded list against the bans of state.json
// and of the whole pending lines (see refPending).
func checkNothingLost(t *testing.T, got, state []Ban, pending []byte) {
	t.Helper()
	for i := 1; i < len(got); i++ {
		if got[i-1].Addr.Compare(got[i].Addr) > 0 {
			t.Fatalf("not sorted: %v before %v", got[i-1].Addr, got[i].Addr)
		}
	}
	lines, clean, last := refPending(pending)
	inPending := map[netip.Addr]bool{}
	for _, b := range lines {
		inPending[b.Addr] = true
	}
	for _, b := range state {
		if findBan(got, b.Addr) < 0 {
			t.Fatalf("ban of %v in state.json lost", b.Addr)
		}
		// a torn line may yield the ban written after it (any address)
		if clean && !inPending[b.Addr] && findSame(got, b) < 0 {
			t.Fatalf("ban of %v in state.json changed: %+v", b.Addr, b)
		}
	}
	for _, b := range lines {
		if findBan(got, b.Addr) < 0 {
			t.Fatalf("pending ban of %v lost", b.Addr)
		}
	}
	// the last line is the last word on its address
	if last && findSame(got, lines[len(lines)-1]) < 0 {
		t.Fatalf("last pending ban %+v not read as it is", lines[len(lines)-1])
	}
}

// findSame returns the index of a ban the same as b, or -1 (state.json
// may list an address twice).
func findSame(bans []Ban, b Ban) int {
	for i := range bans {
		if sameBan(bans[i], b) {
			return i
		}
	}
	return -1
}

func sameBan(x, y Ban) bool {
	return x.Addr == y.Addr && x.Proto == y.Proto && x.Port == y.Port && x.Type == y.Type &&
		x.Reason == y.Reason && x.Since.Equal(y.Since) && x.Until.Equal(y.Until)
}

// eachPending finds a ban after a torn line by the way json.Marshal
// begins one.
func TestBanStart(t *testing.T) {
	line, err := json.Marshal(Ban{Addr: netip.MustParseAddr("192.0.2.1"), Reason: `{"addr":"x"}`})
	if err != nil || !bytes.HasPrefix(line, banStart) || bytes.Count(line, banStart) != 1 {
		t.Fatalf("%s (%v) does not start with %s alone", line, err, banStart)
	}
}
