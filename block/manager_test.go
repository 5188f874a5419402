package block

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/scanwarden/scanwarden/detect"
)

// calls is a shared, ordered record of what the fakes were asked to do.
type calls struct {
	mu sync.Mutex
	l  []string
}

func (c *calls) add(format string, a ...any) {
	c.mu.Lock()
	c.l = append(c.l, fmt.Sprintf(format, a...))
	c.mu.Unlock()
}

func (c *calls) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.l)
}

// fakeBlocker is an in-memory backend that can be told to fail.
type fakeBlocker struct {
	name string
	c    *calls
	set  map[netip.Addr]int // entries (a count, to catch duplicates)
	fail error
	// listFail makes List fail.
	listFail error
}

func newFake(name string, c *calls) *fakeBlocker {
	return &fakeBlocker{name: name, c: c, set: map[netip.Addr]int{}}
}

func (f *fakeBlocker) Name() string { return f.name }
func (f *fakeBlocker) Block(_ context.Context, b Ban) error {
	f.c.add("%s block %s", f.name, b.Addr)
	if f.fail != nil {
		return f.fail
	}
	if f.set[b.Addr] == 0 {
		f.set[b.Addr] = 1
	}
	return nil
}
func (f *fakeBlocker) Unblock(_ context.Context, a netip.Addr) error {
	f.c.add("%s unblock %s", f.name, a)
	if f.fail != nil {
		return f.fail
	}
	delete(f.set, a)
	return nil
}
func (f *fakeBlocker) List(context.Context) ([]netip.Addr, error) {
	if f.listFail != nil {
		return nil, f.listFail
	}
	var out []netip.Addr
	for a := range f.set {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}
func (f *fakeBlocker) Sync(_ context.Context, want []Ban) error {
	f.c.add("%s sync %d", f.name, len(want))
	if f.fail != nil {
		return f.fail
	}
	clear(f.set)
	for _, b := range want {
		f.set[b.Addr] = 1
	}
	return nil
}
func (f *fakeBlocker) Flush(context.Context) error {
	f.c.add("%s flush", f.name)
	clear(f.set)
	return nil
}
func (f *fakeBlocker) Describe(a netip.Addr) string { return "ALL: " + a.String() }

func (f *fakeBlocker) Traits() Traits                { return Traits{} }
func (f *fakeBlocker) Prepare(context.Context) error { return nil }
func (f *fakeBlocker) Close() error                  { return nil }

// promptBlocker is a fakeBlocker whose Traits say Prompt.
type promptBlocker struct{ *fakeBlocker }

func (promptBlocker) Traits() Traits { return Traits{Prompt: true} }

// recorderBlocker is a fakeBlocker whose Traits say Records (hosts.deny).
type recorderBlocker struct{ *fakeBlocker }

func (recorderBlocker) Traits() Traits { return Traits{Records: true} }

type fakeAction struct {
	name string
	c    *calls
	fail error
}

func (f *fakeAction) Run(_ context.Context, b Ban, mode string) (string, []byte, error) {
	line := fmt.Sprintf("%s %s %d %s", f.name, b.Addr, b.Port, mode)
	f.c.add("run %s", line)
	return line, []byte("done\n"), f.fail
}

type fakeJournal struct {
	c *calls
}

func (j *fakeJournal) History(line string) error { j.c.add("history %s", line); return nil }
func (j *fakeJournal) Blocked(mode, line string) error {
	j.c.add("blocked.%s %s", mode, line)
	return nil
}
func (j *fakeJournal) Unblocked(a netip.Addr) error { j.c.add("unblocked %s", a); return nil }

var (
	scanner = netip.MustParseAddr("198.51.100.66")
	local   = netip.MustParseAddr("198.51.100.10")
	gateway = netip.MustParseAddr("198.51.100.1")
	dns     = netip.MustParseAddr("198.51.100.53")
	ignored = netip.MustParseAddr("203.0.113.7")
)

type rig struct {
	m       *Manager
	c       *calls
	fw, hd  *fakeBlocker
	route   *fakeAction
	cmd     *fakeAction
	hook    *test.Hook
	now     time.Time
	dir     string
	state   *StateFile
	journal *fakeJournal
}

// newRig builds a manager over fakes with a never-block list of a local
// address, a gateway, a resolver and ignore entries.
func newRig(t *testing.T, p Policy) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{c: &calls{}, dir: dir, now: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	r.fw, r.hd = newFake("iptables", r.c), newFake("hosts.deny", r.c)
	r.route, r.cmd = &fakeAction{name: "route", c: r.c}, &fakeAction{name: "cmd", c: r.c}
	nb := NewNeverBlock([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("0.0.0.0/32"), netip.MustParsePrefix("203.0.113.0/28")})
	nb.SetHost(map[netip.Addr]string{
		local: "an address of this host", netip.MustParseAddr("fd00:77::10"): "an address of this host",
		gateway: "a default gateway", netip.MustParseAddr("fd00:77::1"): "a default gateway",
		dns: "a resolver in resolv.conf", netip.MustParseAddr("fe80::53"): "a resolver in resolv.conf",
	}, true)
	st, err := OpenState(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	r.state = st
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	r.hook = hook
	r.journal = &fakeJournal{c: r.c}
	m, err := NewManager(Options{
		Policy: p, Blockers: []Blocker{promptBlocker{r.fw}, recorderBlocker{r.hd}}, Route: r.route, RunCmd: r.cmd,
		Never: nb, State: st, Journal: r.journal, Log: log,
		Now: func() time.Time { return r.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	return r
}

func alert(src netip.Addr, typ detect.ScanType, port uint16) *detect.Alert {
	return &detect.Alert{Src: src, Type: typ, Trigger: detect.TriggerTrap, Probes: 1, Score: 3, Port: port, Proto: typ.Proto()}
}

func defaultPolicy() Policy {
	return Policy{BlockTCP: Act, BlockUDP: Act, ExpiryTCP: time.Hour, ExpiryUDP: 10 * time.Minute, RateLimit: 60}
}

func (r *rig) messages() []string {
	var out []string
	for _, e := range r.hook.AllEntries() {
		out = append(out, e.Message)
	}
	return out
}

// TestRecordsNameTheAlertingPort: a source that mostly sent SYNs and is
// reported on a datagram to port 161 (one engine sees both protocols) is
// recorded with "Port: 161 UDP", the pair that packet was, in the history
// line and the attackalert line; its type (a TCP one) still chooses the
// policy: BLOCK_TCP, BAN_EXPIRY_TCP and the stcp mode.
func TestRecordsNameTheAlertingPort(t *testing.T) {
	r := newRig(t, defaultPolicy())
	a := alert(scanner, detect.TypeSYN, 161)
	a.Proto = detect.ProtoUDP
	if out, err := r.m.Handle(context.Background(), a, "stcp"); err != nil || out != Blocked {
		t.Fatalf("Handle: %v %v", out, err)
	}
	hist := fmt.Sprintf("%d - %s Host: 198.51.100.66/198.51.100.66 Port: 161 UDP Blocked", r.now.Unix(), r.now.Local().Format("01/02/2006 15:04:05"))
	if got := r.c.list(); !slices.Contains(got, "history "+hist) || !slices.Contains(got, "blocked.stcp "+hist) {
		t.Errorf("records:\n%s\nwant %q", strings.Join(got, "\n"), hist)
	}
	if msgs := strings.Join(r.messages(), "\n"); !strings.Contains(msgs, "attackalert: TCP SYN/Normal scan from host: 198.51.100.66/198.51.100.66 to UDP port: 161") {
		t.Errorf("attackalert line:\n%s", msgs)
	}
	if bans, _ := r.m.List(); len(bans) != 1 || bans[0].Until.Sub(bans[0].Since) != time.Hour {
		t.Errorf("a TCP scanner's ban: %+v, want BAN_EXPIRY_TCP's hour", bans)
	}
}

func TestHandleBlocksEverywhereOnce(t *testing.T) {
	r := newRig(t, defaultPolicy())
	ctx := context.Background()
	out, err := r.m.Handle(ctx, alert(scanner, detect.TypeSYN, 111), "stcp")
	if err != nil || out != Blocked {
		t.Fatalf("Handle: %v %v", out, err)
	}
	hist := fmt.Sprintf("%d - %s Host: 198.51.100.66/198.51.100.66 Port: 111 TCP Blocked", r.now.Unix(), r.now.Local().Format("01/02/2006 15:04:05"))
	want := []string{
		"iptables block 198.51.100.66",
		"hosts.deny block 198.51.100.66",
		"run cmd 198.51.100.66 111 stcp",
		"history " + hist,
		"blocked.stcp " + hist,
	}
	got := r.c.list()
	// KILL_ROUTE runs between the backends and KILL_RUN_CMD
	want = slices.Insert(want, 2, "run route 198.51.100.66 111 stcp")
	if !slices.Equal(got, want) {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	msgs := strings.Join(r.messages(), "\n")
	for _, w := range []string{
		"attackalert: TCP SYN/Normal scan from host: 198.51.100.66/198.51.100.66 to TCP port: 111",
		`attackalert: Host 198.51.100.66 has been blocked via wrappers with string: "ALL: 198.51.100.66"`,
		`attackalert: Host 198.51.100.66 has been blocked via dropped route using command: "route 198.51.100.66 111 stcp"`,
		`attackalert: External command run for host: 198.51.100.66 using command: "cmd 198.51.100.66 111 stcp"`,
	} {
		if !strings.Contains(msgs, w) {
			t.Errorf("log lacks %q:\n%s", w, msgs)
		}
	}
	bans, _ := r.m.List()
	if len(bans) != 1 || bans[0].Addr != scanner || bans[0].Proto != "tcp" || !bans[0].Until.Equal(r.now.Add(time.Hour)) {
		t.Fatalf("state %+v", bans)
	}
	// a second alert (a restart of the scan, or a second engine) changes nothing
	before := len(r.c.list())
	out, err = r.m.Handle(ctx, alert(scanner, detect.TypeFIN, 79), "stcp")
	if err != nil || out != AlreadyBlocked || len(r.c.list()) != before {
		t.Fatalf("second alert: %v %v %v", out, err, r.c.list()[before:])
	}
	if !strings.Contains(strings.Join(r.messages(), "\n"), "attackalert: Host: 198.51.100.66/198.51.100.66 is already blocked Ignoring") {
		t.Fatal("no already-blocked line")
	}
}

func TestHandleModes(t *testing.T) {
	ctx := context.Background()
	// BLOCK_UDP 0: history only
	p := defaultPolicy()
	p.BlockUDP = LogOnly
	r := newRig(t, p)
	if out, err := r.m.Handle(ctx, alert(scanner, detect.TypeUDP, 161), "sudp"); err != nil || out != LoggedOnly {
		t.Fatalf("%v %v", out, err)
	}
	if got := r.c.list(); len(got) != 1 || !strings.HasSuffix(got[0], "Port: 161 UDP Blocked") {
		t.Fatalf("BLOCK_UDP=0: %q", got)
	}
	if bans, _ := r.m.List(); len(bans) != 0 {
		t.Fatalf("BLOCK_UDP=0 recorded a ban: %+v", bans)
	}
	// BLOCK_TCP 2: KILL_RUN_CMD only
	p = defaultPolicy()
	p.BlockTCP = RunCmdOnly
	r = newRig(t, p)
	if out, err := r.m.Handle(ctx, alert(scanner, detect.TypeXMAS, 1), "stcp"); err != nil || out != CommandOnly {
		t.Fatalf("%v %v", out, err)
	}
	if got := r.c.list(); len(got) != 2 || !strings.HasPrefix(got[0], "history ") || got[1] != "run cmd 198.51.100.66 1 stcp" {
		t.Fatalf("BLOCK_TCP=2: %q", got)
	}
	// KILL_RUN_CMD_FIRST
	p = defaultPolicy()
	p.KillRunCmdFirst = true
	r = newRig(t, p)
	r.m.Handle(ctx, alert(scanner, detect.TypeSYN, 1), "stcp")
	if got := r.c.list(); got[0] != "run cmd 198.51.100.66 1 stcp" || got[1] != "iptables block 198.51.100.66" {
		t.Fatalf("KILL_RUN_CMD_FIRST: %q", got)
	}
}

func TestNeverBlock(t *testing.T) {
	r := newRig(t, defaultPolicy())
	ctx := context.Background()
	for _, a := range []string{"198.51.100.10", "fd00:77::10", "198.51.100.1", "fd00:77::1", "198.51.100.53", "fe80::53",
		"203.0.113.7", "127.0.0.1", "::1", "0.0.0.0", "224.0.0.1", "::ffff:198.51.100.10"} {
		out, err := r.m.Handle(ctx, alert(netip.MustParseAddr(a), detect.TypeSYN, 1), "stcp")
		if err != nil || out != Ignored {
			t.Errorf("%s: %v %v", a, out, err)
		}
	}
	if got := r.c.list(); len(got) != 0 {
		t.Fatalf("never-block addresses reached the backends: %q", got)
	}
	// a complete new read replaces the host's addresses
	nb := r.m.o.Never
	nb.SetHost(map[netip.Addr]string{local: "an address of this host"}, true)
	if nb.Reason(gateway) != "" || nb.Reason(dns) != "" || nb.Reason(local) == "" {
		t.Fatal("a complete read did not replace the host's addresses")
	}
}

func TestNeverBlockKeepsAddressesWhenRefreshFails(t *testing.T) {
	nb := NewNeverBlock(nil)
	nb.SetHost(map[netip.Addr]string{local: "an address of this host"}, true)
	nb.SetHost(map[netip.Addr]string{gateway: "a default gateway"}, false)
	if nb.Reason(local) == "" || nb.Reason(gateway) == "" {
		t.Fatal("a failed refresh dropped the host's address")
	}
	// ignore entries: IPv4-mapped forms and zones match as the plain ones
	nb.SetIgnore([]netip.Prefix{netip.MustParsePrefix("::ffff:203.0.113.0/120"), netip.MustParsePrefix("fe80::/64")})
	for _, a := range []string{"203.0.113.9", "::ffff:203.0.113.9", "fe80::1%eth0"} {
		if nb.Reason(netip.MustParseAddr(a)) != "in the ignore file" {
			t.Errorf("%s not ignored", a)
		}
	}
	if nb.Reason(netip.MustParseAddr("203.0.114.1")) != "" {
		t.Error("an address outside the ignore entries is ignored")
	}
}

func TestRateLimitUnderForgedFlood(t *testing.T) {
	p := defaultPolicy()
	p.RateLimit = 25
	r := newRig(t, p)
	r.m.o.Blockers = []Blocker{r.fw} // keep the fakes' call log small
	r.m.o.Route, r.m.o.RunCmd, r.m.o.Journal = nil, nil, nil
	ctx := context.Background()
	start := r.now
	protected := []netip.Addr{local, gateway, dns, ignored}
	outcomes := map[Outcome]int{}
	const n = 100_000
	for i := 0; i < n; i++ {
		r.now = start.Add(time.Duration(i) * time.Minute / n) // all within one minute
		src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if i%1000 == 0 {
			src = protected[(i/1000)%len(protected)]
		}
		out, err := r.m.Handle(ctx, alert(src, detect.TypeSYN, 1), "stcp")
		if err != nil {
			t.Fatal(err)
		}
		outcomes[out]++
	}
	if len(r.fw.set) != 25 || outcomes[Blocked] != 25 || outcomes[Ignored] != 100 {
		t.Fatalf("%d rules, outcomes %v", len(r.fw.set), outcomes)
	}
	for _, a := range protected {
		if r.fw.set[a] != 0 {
			t.Fatalf("%s blocked", a)
		}
	}
	said := 0
	for _, m := range r.messages() {
		if strings.Contains(m, "new blocks a minute") {
			said++
		}
	}
	if said != 1 {
		t.Fatalf("the rate limit was reported %d times, want once", said)
	}
	// a real scanner in the midst of the one-packet flood, reported with
	// several probes, has a budget of its own
	real := alert(scanner, detect.TypeSYN, 22)
	real.Probes, real.Trigger, real.Score = 5, detect.TriggerScore, 13
	if out, _ := r.m.Handle(ctx, real, "stcp"); out != Blocked {
		t.Fatalf("a scanner of several probes during the flood: %v", out)
	}
	// which is bounded too
	for i := 0; i < 30; i++ {
		a := alert(netip.AddrFrom4([4]byte{10, 200, 0, byte(i)}), detect.TypeSYN, 22)
		a.Probes = 4
		out, _ := r.m.Handle(ctx, a, "stcp")
		outcomes[out]++
	}
	if len(r.fw.set) != 25+25 {
		t.Fatalf("%d rules after the multi-probe burst, want 50", len(r.fw.set))
	}
	// a minute later there is room again
	r.now = start.Add(2 * time.Minute)
	if out, _ := r.m.Handle(ctx, alert(netip.MustParseAddr("198.51.100.99"), detect.TypeSYN, 1), "stcp"); out != Blocked {
		t.Fatalf("after the flood: %v", out)
	}
}

func TestFailingBackendDoesNotLoseTheBlock(t *testing.T) {
	r := newRig(t, defaultPolicy())
	ctx := context.Background()
	r.fw.fail = errors.New("xtables lock busy")
	out, err := r.m.Handle(ctx, alert(scanner, detect.TypeSYN, 1), "stcp")
	if out != Blocked || err == nil || !strings.Contains(err.Error(), "xtables lock busy") {
		t.Fatalf("%v %v", out, err)
	}
	if r.hd.set[scanner] != 1 {
		t.Fatal("hosts.deny skipped because iptables failed")
	}
	// the ban is in the state: a restart puts the rule in place
	r.fw.fail = nil
	if err := r.m.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if r.fw.set[scanner] != 1 {
		t.Fatal("Restore did not add the missing rule")
	}
}

func TestExpireAndRestore(t *testing.T) {
	r := newRig(t, defaultPolicy())
	ctx := context.Background()
	udpScanner := netip.MustParseAddr("198.51.100.67")
	r.m.Handle(ctx, alert(scanner, detect.TypeSYN, 1), "stcp")    // 1 h
	r.m.Handle(ctx, alert(udpScanner, detect.TypeUDP, 7), "sudp") // 10 min
	r.now = r.now.Add(30 * time.Minute)
	if n, err := r.m.Expire(ctx); n != 1 || err != nil {
		t.Fatalf("Expire: %d %v", n, err)
	}
	if r.fw.set[udpScanner] != 0 || r.hd.set[udpScanner] != 0 || r.fw.set[scanner] != 1 {
		t.Fatalf("after expiry: fw %v hd %v", r.fw.set, r.hd.set)
	}
	if !slices.Contains(r.c.list(), "unblocked 198.51.100.67") {
		t.Fatal("blocked file not cleaned")
	}
	// a backend that fails to unblock keeps the ban for the next round
	r.now = r.now.Add(time.Hour)
	r.hd.fail = errors.New("read-only file system")
	if _, err := r.m.Expire(ctx); err == nil {
		t.Fatal("no error")
	}
	if bans, _ := r.m.List(); len(bans) != 1 {
		t.Fatalf("ban dropped although hosts.deny still has it: %+v", bans)
	}
	r.hd.fail = nil
	if n, err := r.m.Expire(ctx); n != 1 || err != nil {
		t.Fatalf("retry: %d %v", n, err)
	}
	// a restart with stale backends (a crash after kill -9): Restore syncs
	r.m.Handle(ctx, alert(scanner, detect.TypeSYN, 1), "stcp")
	r.fw.set[netip.MustParseAddr("198.51.100.99")] = 1 // left over, no ban
	delete(r.hd.set, scanner)                          // lost
	if err := r.m.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if len(r.fw.set) != 1 || r.fw.set[scanner] != 1 || r.hd.set[scanner] != 1 {
		t.Fatalf("after Restore: fw %v hd %v", r.fw.set, r.hd.set)
	}
}

func TestUnblockAndFlush(t *testing.T) {
	r := newRig(t, defaultPolicy())
	ctx := context.Background()
	other := netip.MustParseAddr("fd00:77::66")
	r.m.Handle(ctx, alert(scanner, detect.TypeSYN, 1), "stcp")
	r.m.Handle(ctx, alert(other, detect.TypeSYN, 1), "stcp")
	notBanned, err := r.m.Unblock(ctx, scanner, netip.MustParseAddr("192.0.2.1"))
	if err != nil || len(notBanned) != 1 || notBanned[0].String() != "192.0.2.1" {
		t.Fatalf("Unblock: %v %v", notBanned, err)
	}
	if r.fw.set[scanner] != 0 || r.hd.set[scanner] != 0 {
		t.Fatal("still blocked")
	}
	if bans, _ := r.m.List(); len(bans) != 1 || bans[0].Addr != other {
		t.Fatalf("state %+v", bans)
	}
	n, err := r.m.Flush(ctx)
	if n != 1 || err != nil || len(r.fw.set) != 0 || len(r.hd.set) != 0 {
		t.Fatalf("Flush: %d %v", n, err)
	}
	if bans, _ := r.m.List(); len(bans) != 0 {
		t.Fatalf("state after flush %+v", bans)
	}
}

func TestStateFile(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if bans, err := st.Load(); err != nil || len(bans) != 0 {
		t.Fatalf("empty state: %v %v", bans, err)
	}
	// concurrent read-modify-writes, each through its own lock: none lost
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st2, _ := OpenState(dir)
			err := st2.Update(func(bans []Ban) ([]Ban, bool, error) {
				return append(bans, Ban{Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), Proto: "tcp"}), true, nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	bans, err := st.Load()
	if err != nil || len(bans) != 40 {
		t.Fatalf("%d bans, %v", len(bans), err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Fatalf("temporary file left: %s", e.Name())
		}
	}
	fi, _ := os.Stat(st.Path())
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("state mode %v", fi.Mode())
	}
	// a damaged state file is an error naming it, not an empty list
	os.WriteFile(st.Path(), []byte("{\"version\":1,\"bans\":[{\"addr\":"), 0o600)
	if _, err := st.Load(); err == nil || !strings.Contains(err.Error(), st.Path()) {
		t.Fatalf("damaged state: %v", err)
	}
}

func TestRateLimiterWindow(t *testing.T) {
	r := newRateLimiter(3)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var got []bool
	for _, s := range []int{0, 10, 20, 30, 59, 60, 61, 70, 119, 121} {
		ok, _ := r.allow(t0.Add(time.Duration(s) * time.Second))
		got = append(got, ok)
	}
	want := []bool{true, true, true, false, false, true, false, true, true, true}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
}

func TestTwoManagersOneState(t *testing.T) {
	// PortSentry's -tcp and -udp daemons share the state: the same source
	// is blocked once, whichever sees it first
	r := newRig(t, defaultPolicy())
	log, _ := test.NewNullLogger()
	other, err := NewManager(Options{Policy: defaultPolicy(), Blockers: []Blocker{r.fw}, Never: r.m.o.Never, State: r.state, Journal: r.journal, Log: log, Now: r.m.o.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	outs := make([]Outcome, 2)
	for i, m := range []*Manager{r.m, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], _ = m.Handle(ctx, alert(scanner, detect.TypeSYN, 1), "stcp")
		}()
	}
	wg.Wait()
	slices.Sort(outs)
	if outs[0] != AlreadyBlocked || outs[1] != Blocked {
		t.Fatalf("outcomes %v", outs)
	}
	n := 0
	for _, c := range r.c.list() {
		if strings.HasPrefix(c, "history ") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d history lines", n)
	}
}

func TestStateFilesBelongToTheDirectorysOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	dir := filepath.Join(t.TempDir(), "state")
	os.Mkdir(dir, 0o700)
	os.Chown(dir, 4321, 4321) // the daemon's user
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	// root (a `scanwarden unblock`) writes the state
	if err := st.Update(func(b []Ban) ([]Ban, bool, error) {
		return append(b, Ban{Addr: scanner, Proto: "tcp"}), true, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"state.json", "lock"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 4321 || st.Gid != 4321 {
			t.Errorf("%s owned by %d:%d", name, st.Uid, st.Gid)
		}
	}
}

func TestRecordThenPendingLine(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a := netip.MustParseAddr("198.51.100.7")
	ban := Ban{Addr: a, Proto: "tcp", Since: now, Until: now.Add(time.Hour)}
	ran := 0
	taken, err := st.RecordThen(ban, now, nil, func() {
		ran++
		// the firewall changes once the ban is on disk as a pending line
		data, err := os.ReadFile(st.pendingPath())
		if err != nil || !strings.Contains(string(data), a.String()) {
			t.Errorf("no pending line before the block: %v %q", err, data)
		}
	})
	if taken || err != nil || ran != 1 {
		t.Fatalf("taken %v err %v ran %d", taken, err, ran)
	}
	if data, err := os.ReadFile(st.pendingPath()); len(data) != 0 || err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("pending line left after the state was written: %q %v", data, err)
	}
	// in force: taken, nothing run
	if taken, err := st.RecordThen(ban, now, nil, func() { ran++ }); !taken || err != nil || ran != 1 {
		t.Fatalf("second record: taken %v err %v ran %d", taken, err, ran)
	}
	// refused by admit (the rate limit): nothing recorded, nothing run
	c := netip.MustParseAddr("198.51.100.9")
	if taken, err := st.RecordThen(Ban{Addr: c, Proto: "tcp"}, now, func() bool { return false }, func() { ran++ }); taken || err != nil || ran != 1 {
		t.Fatalf("refused record: taken %v err %v ran %d", taken, err, ran)
	}
	if bans, _ := st.Load(); findBan(bans, c) >= 0 {
		t.Fatal("a refused ban was recorded")
	}
	// a crash after the pending line: every read has the ban, a torn last
	// line is skipped, and the next rewrite folds it in
	b := netip.MustParseAddr("198.51.100.8")
	line, _ := json.Marshal(Ban{Addr: b, Proto: "udp", Since: now})
	os.WriteFile(st.pendingPath(), append(line, []byte("\n{\"addr\":\"198.51")...), 0o600)
	bans, err := st.Load()
	if err != nil || len(bans) != 2 || bans[1].Addr != b || bans[1].Proto != "udp" {
		t.Fatalf("after a crash: %+v %v", bans, err)
	}
	if err := st.Update(func(bans []Ban) ([]Ban, bool, error) { return bans, true, nil }); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(st.pendingPath()); len(data) != 0 || err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("pending line not folded in by the rewrite: %q %v", data, err)
	}
	if bans, _ := st.Load(); len(bans) != 2 {
		t.Fatalf("lost a ban folding the pending line in: %+v", bans)
	}
}

func TestRuleAt(t *testing.T) {
	r := newRig(t, defaultPolicy())
	before := time.Now()
	d, err := r.m.Decide(context.Background(), alert(scanner, detect.TypeSYN, 1), "stcp")
	if d.Outcome != Blocked || err != nil {
		t.Fatalf("%v %v", d.Outcome, err)
	}
	if at := d.RuleAt; at.Before(before) || at.After(time.Now()) {
		t.Fatalf("RuleAt %v not within the Decide call", at)
	}
}

// TestBeginFinish: Begin changes the firewall and writes only the pending
// line (no hosts.deny, command, record or log line, no state rewrite);
// Finish does the rest, with the same calls, lines and state as Decide.
// A later alert's Begin is refused the same way as by Decide (already
// blocked, rate limited), and Begin declines what is not its case.
func TestBeginFinish(t *testing.T) {
	r := newRig(t, defaultPolicy())
	ctx := context.Background()
	p := r.m.Begin(ctx, alert(scanner, detect.TypeSYN, 111), "stcp")
	if p == nil {
		t.Fatal("Begin declined the common case")
	}
	if got := r.c.list(); !slices.Equal(got, []string{"iptables block 198.51.100.66"}) {
		t.Fatalf("after Begin: %v, want the firewall alone", got)
	}
	if msgs := r.messages(); len(msgs) != 0 {
		t.Errorf("Begin logged: %v", msgs)
	}
	if _, err := os.Stat(r.state.Path()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Begin wrote the state file: %v", err)
	}
	if bans, _ := r.m.List(); len(bans) != 1 || bans[0].Addr != scanner {
		t.Fatalf("the pending ban is not read: %+v", bans)
	}
	d, err := p.Finish(ctx)
	if err != nil || d.Outcome != Blocked || d.RuleAt.IsZero() {
		t.Fatalf("Finish: %+v %v", d, err)
	}
	hist := fmt.Sprintf("%d - %s Host: 198.51.100.66/198.51.100.66 Port: 111 TCP Blocked", r.now.Unix(), r.now.Local().Format("01/02/2006 15:04:05"))
	want := []string{"iptables block 198.51.100.66", "hosts.deny block 198.51.100.66", "run route 198.51.100.66 111 stcp",
		"run cmd 198.51.100.66 111 stcp", "history " + hist, "blocked.stcp " + hist}
	if got := r.c.list(); !slices.Equal(got, want) {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	msgs := strings.Join(r.messages(), "\n")
	for _, w := range []string{
		"attackalert: TCP SYN/Normal scan from host: 198.51.100.66/198.51.100.66 to TCP port: 111",
		`attackalert: Host 198.51.100.66 has been blocked via wrappers with string: "ALL: 198.51.100.66"`,
	} {
		if !strings.Contains(msgs, w) {
			t.Errorf("log lacks %q:\n%s", w, msgs)
		}
	}
	data, err := os.ReadFile(r.state.Path())
	if err != nil || !strings.Contains(string(data), scanner.String()) {
		t.Fatalf("state after Finish: %v %s", err, data)
	}
	if data, err := os.ReadFile(r.state.pendingPath()); err != nil || len(data) != 0 {
		t.Errorf("pending line left after Finish: %q %v", data, err)
	}

	// already blocked: Begin touches nothing, Finish says so
	before := len(r.c.list())
	p = r.m.Begin(ctx, alert(scanner, detect.TypeFIN, 79), "stcp")
	if d, err := p.Finish(ctx); err != nil || d.Outcome != AlreadyBlocked || len(r.c.list()) != before {
		t.Fatalf("second alert: %+v %v %v", d, err, r.c.list()[before:])
	}

	// rate limited (a limit of one block a minute, of one-probe sources)
	lim := defaultPolicy()
	lim.RateLimit = 1
	r2 := newRig(t, lim)
	if d, err := r2.m.Begin(ctx, alert(scanner, detect.TypeSYN, 111), "stcp").Finish(ctx); err != nil || d.Outcome != Blocked {
		t.Fatalf("first of the minute: %+v %v", d, err)
	}
	p = r2.m.Begin(ctx, alert(netip.MustParseAddr("198.51.100.67"), detect.TypeSYN, 111), "stcp")
	if d, err := p.Finish(ctx); err != nil || d.Outcome != RateLimited {
		t.Fatalf("over the limit: %+v %v", d, err)
	}
	if bans, _ := r2.m.List(); len(bans) != 1 {
		t.Fatalf("a refused source was recorded: %+v", bans)
	}

	// not Begin's case: Decide's
	for name, c := range map[string]struct {
		pol Policy
		src netip.Addr
	}{
		"never-block source": {defaultPolicy(), gateway},
		"BLOCK_TCP 2":        {Policy{BlockTCP: RunCmdOnly, BlockUDP: Act, RateLimit: 60}, scanner},
		"KILL_RUN_CMD_FIRST": {Policy{BlockTCP: Act, BlockUDP: Act, KillRunCmdFirst: true, RateLimit: 60}, scanner},
	} {
		r := newRig(t, c.pol)
		if p := r.m.Begin(ctx, alert(c.src, detect.TypeSYN, 111), "stcp"); p != nil || len(r.c.list()) != 0 {
			t.Errorf("%s: Begin did not decline (%v)", name, r.c.list())
		}
	}
	// a firewall backend that is not Prompt (iptables runs a binary)
	r3 := newRig(t, defaultPolicy())
	r3.m.o.Blockers[0] = r3.fw
	if p := r3.m.Begin(ctx, alert(scanner, detect.TypeSYN, 111), "stcp"); p != nil || len(r3.c.list()) != 0 {
		t.Errorf("Begin with a backend that is not Prompt: %v", r3.c.list())
	}
}

// TestBeginNeverWaits: Begin declines, doing nothing, while the manager or
// the state's lock is busy (a Resync, another process's block, a
// command), so that the capture thread that calls it never waits.
func TestBeginNeverWaits(t *testing.T) {
	r := newRig(t, defaultPolicy())
	ctx := context.Background()
	// the state's lock held by another process (another open file)
	other, err := OpenState(filepath.Join(r.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	held, release, errc := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		errc <- other.Update(func(bans []Ban) ([]Ban, bool, error) {
			close(held)
			<-release
			return bans, false, nil
		})
	}()
	select {
	case <-held:
	case err := <-errc:
		t.Fatalf("the other process's Update: %v", err)
	}
	if p := r.m.Begin(ctx, alert(scanner, detect.TypeSYN, 111), "stcp"); p != nil || len(r.c.list()) != 0 {
		t.Fatalf("Begin under another process's lock: %v %v", p, r.c.list())
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// the manager busy (Decide holds it)
	r.m.mu.Lock()
	p := r.m.Begin(ctx, alert(scanner, detect.TypeSYN, 111), "stcp")
	r.m.mu.Unlock()
	if p != nil {
		t.Fatal("Begin while the manager is busy")
	}
	// free again: the alert is Decide's, which blocks it
	if d, err := r.m.Decide(ctx, alert(scanner, detect.TypeSYN, 111), "stcp"); err != nil || d.Outcome != Blocked {
		t.Fatalf("Decide after the declines: %+v %v", d, err)
	}
}

// TestFinishAfterUnblock: a ban lifted by another process between Begin
// and Finish gets no hosts.deny entry from Finish.
func TestFinishAfterUnblock(t *testing.T) {
	r := newRig(t, defaultPolicy())
	ctx := context.Background()
	p := r.m.Begin(ctx, alert(scanner, detect.TypeSYN, 111), "stcp")
	if p == nil {
		t.Fatal("Begin declined")
	}
	other, err := OpenState(r.state.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Update(func(bans []Ban) ([]Ban, bool, error) {
		i := findBan(bans, scanner)
		if i < 0 {
			return bans, false, errors.New("the pending ban is not read")
		}
		return slices.Delete(bans, i, i+1), true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Finish(ctx); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	for _, c := range r.c.list() {
		if strings.HasPrefix(c, "hosts.deny block") {
			t.Fatalf("hosts.deny written for an unblocked source: %v", r.c.list())
		}
	}
	if bans, _ := r.m.List(); len(bans) != 0 {
		t.Fatalf("the unblocked ban came back: %+v", bans)
	}
}

// Pend finds a ban in force wherever read() would: in a pending line (the
// last of its address wins), in the state file this StateFile wrote
// (cached), or in one another process wrote (not cached); an expired ban
// does not count.
func TestPendTaken(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	a, b, c := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("198.51.100.8"), netip.MustParseAddr("198.51.100.9")
	other, err := OpenState(dir) // another process
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Update(func([]Ban) ([]Ban, bool, error) {
		return []Ban{{Addr: a, Proto: "tcp", Until: now.Add(time.Hour)}, {Addr: b, Proto: "tcp", Until: now.Add(-time.Second)}}, true, nil
	}); err != nil {
		t.Fatal(err)
	}
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	pend := func(addr netip.Addr) bool {
		t.Helper()
		taken, err := st.Pend(Ban{Addr: addr, Proto: "tcp", Until: now.Add(time.Hour)}, now, nil, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		return taken
	}
	if !pend(a) {
		t.Error("a ban in force in a state file another process wrote: not taken")
	}
	if pend(b) {
		t.Error("an expired ban counted as taken")
	}
	if !pend(b) {
		t.Error("the pending line just written: not taken")
	}
	// a later pending line that expired replaces an earlier one in force
	line, _ := json.Marshal(Ban{Addr: b, Proto: "tcp", Until: now.Add(-time.Second)})
	f, err := os.OpenFile(st.pendingPath(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(append(line, '\n'))
	f.Close()
	if pend(b) {
		t.Error("the last pending line of an address (expired) not the one that counts")
	}
	// folded into the file this StateFile writes (and caches)
	if err := st.Fold(); err != nil {
		t.Fatal(err)
	}
	if !pend(a) || !pend(b) {
		t.Error("bans of the state file this StateFile wrote: not taken")
	}
	if pend(c) {
		t.Error("an address without a ban counted as taken")
	}
}

// A source judged forged is never blocked, whatever BLOCK_x says: no
// backend, command, state entry or history line (fail2ban reads it), no
// name lookup, and the rate limit is not spent on it; its line says
// "forged ... in the name of", not PortSentry's "from host:". A
// never-block address stays "ignored" whatever its verdict.
func TestForgedNeverBlocked(t *testing.T) {
	for _, mode := range []Response{Act, RunCmdOnly, LogOnly} {
		p := defaultPolicy()
		p.BlockTCP, p.RateLimit = mode, 1
		r := newRig(t, p)
		ctx := context.Background()
		for i := range 5 {
			a := alert(netip.AddrFrom4([4]byte{198, 51, 100, byte(20 + i)}), detect.TypeSYN, 1)
			a.Origin = detect.Judgement{Verdict: detect.Forged, Evidence: "frames from 02:00:00:00:00:66, the MAC of 198.51.100.66"}
			dec, err := r.m.Decide(ctx, a, "stcp")
			if err != nil || dec.Outcome != Forged {
				t.Fatalf("mode %v: %v %v", mode, dec.Outcome, err)
			}
			// Begin, as the capture thread calls it, decides it too
			if p := r.m.Begin(ctx, a, "stcp"); p != nil {
				if dec, err := p.Finish(ctx); err != nil || dec.Outcome != Forged {
					t.Fatalf("mode %v, Begin: %v %v", mode, dec.Outcome, err)
				}
			}
		}
		if got := r.c.list(); len(got) != 0 {
			t.Fatalf("mode %v: forged sources reached %q", mode, got)
		}
		if bans, err := r.state.Load(); err != nil || len(bans) != 0 {
			t.Fatalf("mode %v: state %v %v", mode, bans, err)
		}
		found := false
		for _, e := range r.hook.AllEntries() {
			if strings.Contains(e.Message, "from host:") {
				t.Errorf("mode %v: a PortSentry line for a forged source: %q", mode, e.Message)
			}
			if strings.HasPrefix(e.Message, "attackalert: forged TCP SYN/Normal scan in the name of host: 198.51.100.20 to TCP port: 1: not blocked (frames from") &&
				e.Data["forged"] == true {
				found = true
			}
		}
		if !found {
			t.Errorf("mode %v: no forged line in %q", mode, r.messages())
		}
		// the rate limit (1 a minute) was not spent: a real scanner is blocked
		if mode == Act {
			if out, err := r.m.Handle(ctx, alert(scanner, detect.TypeSYN, 1), "stcp"); err != nil || out != Blocked {
				t.Fatalf("the real scanner after forged ones: %v %v", out, err)
			}
		}
	}
	r := newRig(t, defaultPolicy())
	a := alert(gateway, detect.TypeSYN, 1)
	a.Origin = detect.Judgement{Verdict: detect.Forged, Evidence: "x"}
	if out, err := r.m.Handle(context.Background(), a, "stcp"); err != nil || out != Ignored {
		t.Fatalf("a forged never-block address: %v %v", out, err)
	}
}

// TestDecisionWhy: an Ignored decision says why (the ignore file apart
// from what the host protects), a Forged one its evidence.
func TestDecisionWhy(t *testing.T) {
	r := newRig(t, defaultPolicy())
	ctx := context.Background()
	for a, want := range map[string]string{
		"203.0.113.7":   ReasonIgnoreFile,
		"198.51.100.1":  "a default gateway",
		"198.51.100.10": "an address of this host",
		"::1":           "a loopback address",
	} {
		d, err := r.m.Decide(ctx, alert(netip.MustParseAddr(a), detect.TypeSYN, 1), "stcp")
		if err != nil || d.Outcome != Ignored || d.Why != want {
			t.Errorf("%s: %v %q %v, want ignored %q", a, d.Outcome, d.Why, err, want)
		}
	}
	fa := alert(scanner, detect.TypeSYN, 1)
	fa.Origin = detect.Judgement{Verdict: detect.Forged, Evidence: "frames from another host's MAC"}
	if d, err := r.m.Decide(ctx, fa, "stcp"); err != nil || d.Outcome != Forged || d.Why != fa.Origin.Evidence {
		t.Errorf("forged: %v %q %v", d.Outcome, d.Why, err)
	}
	if d, err := r.m.Decide(ctx, alert(scanner, detect.TypeSYN, 1), "stcp"); err != nil || d.Outcome != Blocked || d.Why != "" {
		t.Errorf("blocked: %v %q %v", d.Outcome, d.Why, err)
	}
}

// TestCensus: each backend's count is what its List holds now, in the
// backends' order; a backend whose List fails is left out, with its error.
func TestCensus(t *testing.T) {
	r := newRig(t, defaultPolicy())
	ctx := context.Background()
	got, err := r.m.Census(ctx)
	if err != nil || !slices.Equal(got, []BackendCount{{"iptables", 0}, {"hosts.deny", 0}}) {
		t.Fatalf("before any block: %v %v", got, err)
	}
	for _, a := range []string{"198.51.100.66", "198.51.100.67", "fd00:77::66"} {
		if out, err := r.m.Handle(ctx, alert(netip.MustParseAddr(a), detect.TypeSYN, 1), "stcp"); out != Blocked || err != nil {
			t.Fatalf("%s: %v %v", a, out, err)
		}
	}
	// an administrator removed one entry from the firewall by hand
	delete(r.fw.set, netip.MustParseAddr("198.51.100.67"))
	got, err = r.m.Census(ctx)
	if err != nil || !slices.Equal(got, []BackendCount{{"iptables", 2}, {"hosts.deny", 3}}) {
		t.Fatalf("after three blocks and a removal: %v %v", got, err)
	}
	r.fw.listFail = errors.New("iptables: exit status 4")
	got, err = r.m.Census(ctx)
	if err == nil || !strings.Contains(err.Error(), "iptables: listing its blocks") || !slices.Equal(got, []BackendCount{{"hosts.deny", 3}}) {
		t.Fatalf("with a failing List: %v %v", got, err)
	}
}

// TestImpose: a decision made elsewhere goes into the state and every
// backend, and nothing else (no history, blocked-file line or command);
// an address already banned keeps its ban; never-block addresses and
// expired decisions are refused; a failing backend keeps the ban in the
// state for the re-sync.
func TestImpose(t *testing.T) {
	r := newRig(t, defaultPolicy())
	ctx := context.Background()
	fleet := netip.MustParseAddr("198.51.100.77")
	until := r.now.Add(2 * time.Hour)
	d, err := r.m.Impose(ctx, Ban{Addr: fleet, Until: until, Reason: "crowdsec: scanwarden/portscan-syn", Source: SourceCrowdSec})
	if err != nil || d.Outcome != Blocked || !d.Until.Equal(until) || d.RuleAt.IsZero() {
		t.Fatalf("impose: %+v %v", d, err)
	}
	if got := r.c.list(); !slices.Equal(got, []string{"iptables block 198.51.100.77", "hosts.deny block 198.51.100.77"}) {
		t.Fatalf("calls: %q (want the two backends and nothing else)", got)
	}
	bans, _ := r.m.List()
	if len(bans) != 1 || bans[0].Addr != fleet || bans[0].Source != SourceCrowdSec || !bans[0].Until.Equal(until) || !bans[0].Since.Equal(r.now) {
		t.Fatalf("state: %+v", bans)
	}
	// again (another decision for the address): nothing changes
	if d, err := r.m.Impose(ctx, Ban{Addr: fleet, Until: until.Add(time.Hour), Source: SourceCrowdSec}); err != nil || d.Outcome != AlreadyBlocked {
		t.Fatalf("second decision: %+v %v", d, err)
	}
	// a source this host banned itself keeps its own ban
	if out, err := r.m.Handle(ctx, alert(scanner, detect.TypeSYN, 111), "stcp"); out != Blocked || err != nil {
		t.Fatal(out, err)
	}
	before := len(r.c.list())
	if d, err := r.m.Impose(ctx, Ban{Addr: scanner, Until: r.now.Add(time.Minute), Source: SourceCrowdSec}); err != nil || d.Outcome != AlreadyBlocked || len(r.c.list()) != before {
		t.Fatalf("own ban: %+v %v %q", d, err, r.c.list()[before:])
	}
	bans, _ = r.m.List()
	if i := findBan(bans, scanner); i < 0 || bans[i].Source != "" || !bans[i].Until.Equal(r.now.Add(time.Hour)) {
		t.Fatalf("the own ban changed: %+v", bans)
	}
	for _, c := range []struct {
		b   Ban
		why string
	}{
		{Ban{Addr: gateway, Until: until}, "a default gateway"},
		{Ban{Addr: netip.MustParseAddr("203.0.113.7"), Until: until}, ReasonIgnoreFile},
		{Ban{Addr: netip.MustParseAddr("198.51.100.78"), Until: r.now.Add(-time.Second)}, "expired"},
	} {
		if d, err := r.m.Impose(ctx, c.b); err != nil || d.Outcome != Ignored || d.Why != c.why {
			t.Errorf("%s: %+v %v, want ignored %q", c.b.Addr, d, err, c.why)
		}
	}
	// a backend that fails: the ban is in the state, the error returned
	r.fw.fail = errors.New("iptables: exit status 4")
	other := netip.MustParseAddr("fd00:77::78")
	if d, err := r.m.Impose(ctx, Ban{Addr: other, Source: SourceCrowdSec}); d.Outcome != Blocked || err == nil || !strings.Contains(err.Error(), "iptables") {
		t.Fatalf("failing backend: %+v %v", d, err)
	}
	bans, _ = r.m.List()
	if i := findBan(bans, other); i < 0 || !bans[i].Until.IsZero() {
		t.Fatalf("the ban of a failing backend is not in the state: %+v", bans)
	}
}

// TestFailedOutcome: a ban the state cannot record is Failed, with the
// error, and nothing is blocked, whatever the path: an alert's block, a
// logged-only mode (which reads the state for "already blocked"), and a
// decision imposed by the fleet.
func TestFailedOutcome(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []Response{Act, LogOnly} {
		p := defaultPolicy()
		p.BlockTCP = mode
		r := newRig(t, p)
		if err := os.WriteFile(r.state.Path(), []byte(`{"version":1,"bans":[{"addr":`), 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := r.m.Decide(ctx, alert(scanner, detect.TypeSYN, 111), "stcp")
		if d.Outcome != Failed || err == nil || !strings.Contains(err.Error(), r.state.Path()) {
			t.Errorf("BLOCK_TCP %v over a damaged state: %v, %v", mode, d.Outcome, err)
		}
		if d.Outcome.String() != "failed" {
			t.Errorf("outcome named %q", d.Outcome.String())
		}
		if got := r.c.list(); len(got) != 0 {
			t.Errorf("BLOCK_TCP %v over a damaged state: %q", mode, got)
		}
		if d, err := r.m.Impose(ctx, Ban{Addr: scanner, Until: r.now.Add(time.Hour), Source: SourceCrowdSec}); d.Outcome != Failed || err == nil {
			t.Errorf("Impose over a damaged state: %v, %v", d.Outcome, err)
		}
	}
}

// TestExpireOutlast: a ban that runs out while a decision made elsewhere
// still bans its address is held by that decision (its end, source and
// reason; the rules untouched), and lifted once that decision has ended.
func TestExpireOutlast(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, defaultPolicy())
	held := netip.MustParseAddr("198.51.100.70")
	other := netip.MustParseAddr("198.51.100.71")
	fleetUntil := r.now.Add(3 * time.Hour)
	r.m.o.Outlast = func(a netip.Addr, now time.Time) (Ban, bool) {
		if a != held {
			return Ban{}, false
		}
		return Ban{Addr: a, Until: fleetUntil, Source: SourceCrowdSec, Reason: "CrowdSec decision: test (cscli)"}, true
	}
	for _, a := range []netip.Addr{held, other} {
		if d, err := r.m.Decide(ctx, alert(a, detect.TypeSYN, 111), "stcp"); err != nil || d.Outcome != Blocked {
			t.Fatalf("%s: %v %v", a, d.Outcome, err)
		}
	}
	before := len(r.c.list())
	r.now = r.now.Add(2 * time.Hour) // past the hour of a TCP block
	if n, err := r.m.Expire(ctx); err != nil || n != 1 {
		t.Fatalf("Expire: %d, %v; want 1 (the other)", n, err)
	}
	if got := r.c.list()[before:]; slices.ContainsFunc(got, func(c string) bool { return strings.Contains(c, held.String()) }) {
		t.Errorf("the held ban's rules were touched: %q", got)
	}
	bans, err := r.m.List()
	if err != nil || len(bans) != 1 || bans[0].Addr != held || bans[0].Source != SourceCrowdSec || !bans[0].Until.Equal(fleetUntil) ||
		bans[0].Reason != "CrowdSec decision: test (cscli)" || bans[0].Type != "syn" {
		t.Fatalf("bans after expiry: %+v, %v", bans, err)
	}
	if !slices.ContainsFunc(r.messages(), func(m string) bool {
		return strings.Contains(m, "block of "+held.String()+" ran out here; CrowdSec decision: test (cscli) holds it until")
	}) {
		t.Errorf("no log line for the held ban: %q", r.messages())
	}
	// the decision has ended too: lifted
	r.now = fleetUntil.Add(time.Second)
	if n, err := r.m.Expire(ctx); err != nil || n != 1 {
		t.Fatalf("Expire after the decision: %d, %v", n, err)
	}
	if bans, _ := r.m.List(); len(bans) != 0 {
		t.Fatalf("bans left: %+v", bans)
	}
}
