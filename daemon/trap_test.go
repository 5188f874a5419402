package daemon

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/detect"
)

// fakeTrapper records the traps it is given, and the sources released.
type fakeTrapper struct {
	set       []block.Trap
	released  []netip.Addr
	fail      error
	overflows uint64
}

var _ block.Trapper = (*fakeTrapper)(nil)

func (f *fakeTrapper) SetTrap(_ context.Context, t block.Trap) error {
	if f.fail != nil {
		return f.fail
	}
	f.set = append(f.set, t)
	return nil
}

func (f *fakeTrapper) Release(_ context.Context, a netip.Addr) error {
	f.released = append(f.released, a)
	return nil
}

func (f *fakeTrapper) TrapOverflows(context.Context) (uint64, error) { return f.overflows, nil }

func testTraps() *traps {
	t := &traps{tcp: &detect.PortSet{}, udp: &detect.PortSet{}, gen: 1}
	for _, p := range []uint16{31337, 1, 111} {
		t.tcp.Add(p)
	}
	t.udp.Add(7)
	return t
}

func TestTrapFor(t *testing.T) {
	ign, err := conf.ParseIgnore(strings.NewReader("192.0.2.0/24\n"), "ignore")
	if err != nil {
		t.Fatal(err)
	}
	never := block.NewNeverBlock(ign.Prefixes())
	never.SetHost(map[netip.Addr]string{netip.MustParseAddr("198.51.100.10"): "an address of this host"}, true)
	both := Modes{TCP: true, UDP: true}
	c := conf.Default()
	c.BlockBackend = conf.BackendNftables
	tr, why := trapFor(c, both, testTraps(), never)
	if why != "" || !slices.Equal(tr.TCP, []uint16{1, 111, 31337}) || !slices.Equal(tr.UDP, []uint16{7}) {
		t.Fatalf("trap %+v, off: %q", tr, why)
	}
	// provisional: held for TRAP_HOLD, not for the ban's length
	if tr.Size != conf.DefaultTrapSetSize || tr.Hold != conf.DefaultTrapHold || tr.Hold == c.BanExpiryTCP {
		t.Errorf("size %d hold %v, want %d and %v", tr.Size, tr.Hold, conf.DefaultTrapSetSize, conf.DefaultTrapHold)
	}
	c.TrapHold, c.TrapSetSize = 2*time.Second, 16
	if tr, _ := trapFor(c, both, testTraps(), never); tr.Hold != 2*time.Second || tr.Size != 16 {
		t.Errorf("TRAP_HOLD 2s, TRAP_SET_SIZE 16: hold %v size %d", tr.Hold, tr.Size)
	}
	c.TrapHold, c.TrapSetSize = conf.DefaultTrapHold, conf.DefaultTrapSetSize
	for _, want := range []string{"192.0.2.0/24", "198.51.100.10/32", "127.0.0.0/8", "::1/128"} {
		if !slices.Contains(tr.Exempt, netip.MustParsePrefix(want)) {
			t.Errorf("exemptions %v lack %s", tr.Exempt, want)
		}
	}

	// BLOCK_UDP 0 and the -tcp mode leave UDP out
	c.BlockUDP = conf.BlockLogOnly
	if tr, _ := trapFor(c, both, testTraps(), never); len(tr.UDP) != 0 || len(tr.TCP) != 3 {
		t.Errorf("BLOCK_UDP 0: %+v", tr)
	}
	c.BlockUDP = conf.BlockAct
	if tr, _ := trapFor(c, Modes{TCP: true}, testTraps(), never); len(tr.UDP) != 0 {
		t.Errorf("-tcp: %+v", tr)
	}

	// no trap: each reason
	for _, tc := range []struct {
		change func(*conf.Config)
		why    string
	}{
		{func(c *conf.Config) { c.KernelTrap = false }, "KERNEL_TRAP"},
		{func(c *conf.Config) { c.BlockBackend = conf.BackendIptables }, "no kernel sets"},
		{func(c *conf.Config) { c.ScanTrigger = 3 }, "SCAN_TRIGGER is 3"},
		{func(c *conf.Config) { c.BlockTCP, c.BlockUDP = conf.BlockLogOnly, conf.BlockRunCmdOnly }, "no trap port"},
	} {
		c := conf.Default()
		c.BlockBackend = conf.BackendIpset
		tc.change(c)
		tr, why := trapFor(c, both, testTraps(), never)
		if tr.Enabled() || !strings.Contains(why, tc.why) {
			t.Errorf("want off for %q: %+v %q", tc.why, tr, why)
		}
		// an off trap still carries the hold and the size
		if tr.Hold != conf.DefaultTrapHold || tr.Size != conf.DefaultTrapSetSize {
			t.Errorf("off for %q: hold %v size %d", tc.why, tr.Hold, tr.Size)
		}
	}
	// SCAN_TRIGGER 1 is PortSentry's first hit too
	c = conf.Default()
	c.BlockBackend, c.ScanTrigger = conf.BackendIpset, 1
	if tr, _ := trapFor(c, both, testTraps(), never); !tr.Enabled() {
		t.Error("SCAN_TRIGGER 1 should trap")
	}
}

func TestKernelTrapUpdate(t *testing.T) {
	log, hook := test.NewNullLogger()
	log.SetOutput(io.Discard)
	k := &kernelTrap{log: log}
	ctx := context.Background()
	want := block.Trap{TCP: []uint16{1, 2}, Hold: 5 * time.Second, Size: 300}

	k.update(ctx, nil, want, "") // no set backend: nothing to do
	f := &fakeTrapper{}
	k.update(ctx, f, want, "")
	k.update(ctx, f, want, "") // the same: not applied again
	if len(f.set) != 1 {
		t.Fatalf("applied %d times", len(f.set))
	}
	// the adminalert line says the trap is provisional: the hold and the
	// budget
	if e := hook.LastEntry(); e == nil || !strings.Contains(e.Message, "kernel trap set") ||
		!strings.Contains(e.Message, "holds its source in the kernel for 5s") || !strings.Contains(e.Message, "at most 300 sources held at once") {
		t.Errorf("the trap's adminalert line: %v", e)
	}
	want2 := want
	want2.Exempt = []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}
	k.update(ctx, f, want2, "")
	if len(f.set) != 2 || len(f.set[1].Exempt) != 1 {
		t.Fatalf("a new exemption was not applied: %+v", f.set)
	}
	// a new TRAP_HOLD (a reload) is applied too
	held := want2
	held.Hold = 2 * time.Second
	k.update(ctx, f, held, "")
	if len(f.set) != 3 || f.set[2].Hold != 2*time.Second {
		t.Fatalf("a new hold was not applied: %+v", f.set)
	}
	k.update(ctx, f, want2, "")
	// a reload's new backend gets the trap even when unchanged
	g := &fakeTrapper{}
	k.update(ctx, g, want2, "")
	if len(g.set) != 1 {
		t.Fatal("new backend not given the trap")
	}
	// a failure is retried next time
	g.fail = errors.New("netlink: operation not permitted")
	k.update(ctx, g, want, "")
	g.fail = nil
	k.update(ctx, g, want, "")
	if len(g.set) != 2 || !slices.Equal(g.set[1].Exempt, want.Exempt) {
		t.Fatalf("failed update not retried: %+v", g.set)
	}
	// turning it off
	k.update(ctx, g, block.Trap{}, "KERNEL_TRAP is 0")
	if len(g.set) != 3 || g.set[2].Enabled() {
		t.Fatal("trap not removed")
	}

	// overflow: logged when the counter grows, once per growth
	k.update(ctx, g, want, "")
	hook.Reset()
	g.overflows = 5
	k.checkOverflow(ctx)
	k.checkOverflow(ctx)
	n := 0
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "trap set is full") {
			n++
			if e.Level != logrus.WarnLevel || !strings.Contains(e.Message, "5 first hits") {
				t.Errorf("overflow line: %s %q", e.Level, e.Message)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d overflow lines, want 1", n)
	}
}

func TestKernelTrapped(t *testing.T) {
	never := block.NewNeverBlock(nil)
	never.SetHost(map[netip.Addr]string{netip.MustParseAddr("198.51.100.10"): "an address of this host"}, true)
	k := &kernelTrap{}
	k.live.Store(&block.Trap{TCP: []uint16{111, 31337}, UDP: []uint16{7}})
	src := netip.MustParseAddr("198.51.100.66")
	for _, tc := range []struct {
		a    detect.Alert
		want bool
	}{
		{detect.Alert{Src: src, Type: detect.TypeSYN, Trigger: detect.TriggerTrap, Proto: detect.ProtoTCP, Port: 31337}, true},
		{detect.Alert{Src: src, Type: detect.TypeUDP, Trigger: detect.TriggerTrap, Proto: detect.ProtoUDP, Port: 7}, true},
		{detect.Alert{Src: src, Type: detect.TypeUDP, Trigger: detect.TriggerTrap, Proto: detect.ProtoUDP, Port: 111}, false},
		{detect.Alert{Src: src, Type: detect.TypeACK, Trigger: detect.TriggerTrap, Proto: detect.ProtoTCP, Port: 111}, false},
		{detect.Alert{Src: src, Type: detect.TypeSYN, Trigger: detect.TriggerScore, Proto: detect.ProtoTCP, Port: 111}, false},
		{detect.Alert{Src: netip.MustParseAddr("198.51.100.10"), Type: detect.TypeSYN, Trigger: detect.TriggerTrap, Proto: detect.ProtoTCP, Port: 111}, false},
	} {
		if got := k.trapped(&tc.a, never); got != tc.want {
			t.Errorf("%+v: trapped %v, want %v", tc.a, got, tc.want)
		}
	}
}
