package daemon

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/host"
)

func TestTrapsLessBoundPorts(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// a listener on 143 (0x8F), a connection from 111 (0x6F, not
	// listening), an IPv6 listener on 2000 (0x7D0), UDP on 161 (0xA1)
	write("tcp", `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:008F 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0A00000A:006F 0A000014:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
`)
	write("tcp6", `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:07D0 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0
`)
	write("udp", `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  1: 00000000:00A1 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4 2 0 0
`)
	// no udp6: IPv6 off
	// the traps of the default config less what is bound
	d := &daemon{bound: host.ProcNet(dir), modes: Modes{TCP: true, UDP: true}}
	tr, err := d.computeTraps(conf.Default(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if tr.tcp.Has(143) || !tr.tcp.Has(111) || tr.tcp.Has(2001) || !tr.tcp.Has(31337) || tr.udp.Has(161) || !tr.udp.Has(7) {
		t.Fatal("stealth traps wrong")
	}
	// advanced TCP: every port below 1024 but the excluded and bound ones
	d.modes = Modes{TCP: true, AdvTCP: true}
	tr, _ = d.computeTraps(conf.Default(), 2)
	if !tr.tcp.Has(22) || !tr.tcp.Has(1023) || tr.tcp.Has(1024) || tr.tcp.Has(113) || tr.tcp.Has(143) || tr.udp.Has(7) {
		t.Fatal("advanced traps wrong")
	}
	if d.modes.Name(detect.ProtoTCP) != "atcp" || d.modes.Name(detect.ProtoUDP) != "sudp" {
		t.Fatal("mode names")
	}
}

// A refused alert is re-armed in every capture loop: after rearmAfter, and
// at once on a new target when it was refused on a single probe (the
// budget forged sources spend), so that a scanner whose first probe hit a
// trap port is still blocked during a flood.
func TestRearmRequest(t *testing.T) {
	q1, q2 := make(chan rearmReq, 1), make(chan rearmReq, 1)
	d := &daemon{rearms: []chan rearmReq{q1, q2}}
	src := netip.MustParseAddr("198.51.100.101")
	for _, tc := range []struct {
		probes uint32
		onNew  bool
	}{{1, true}, {4, false}} {
		a := &detect.Alert{Src: src, Time: 1000, Probes: tc.probes}
		d.rearm(a)
		for i, q := range d.rearms {
			select {
			case r := <-q:
				if r.src != src || r.at != 1000+int64(rearmAfter) || r.onNew != tc.onNew {
					t.Errorf("%d probes, loop %d: %+v, want onNew %v at %d", tc.probes, i, r, tc.onNew, 1000+int64(rearmAfter))
				}
			default:
				t.Errorf("%d probes: loop %d got no request", tc.probes, i)
			}
		}
	}
}

// gatedLister is a host.PortLister whose TCP answers the test gives, one call
// at a time; an answer with release set returns only once it is closed.
type gatedLister chan gatedAnswer

type gatedAnswer struct {
	tcp     detect.PortSet
	release chan struct{}
}

func (g gatedLister) BoundPorts(proto uint8) (detect.PortSet, error) {
	if proto != detect.ProtoTCP {
		return detect.PortSet{}, nil
	}
	a := <-g
	if a.release != nil {
		<-a.release
	}
	return a.tcp, nil
}

// Two refreshes that overlap never publish two different trap sets under
// one generation (a capture loop that took the first would never take the
// second), and the last read of the bound ports is what stays.
func TestRefreshTrapsOverlap(t *testing.T) {
	g := make(gatedLister)
	d := &daemon{bound: g, modes: Modes{TCP: true}, cfg: conf.Default(), log: logrus.New()}
	go func() { g <- gatedAnswer{} }()
	first, err := d.computeTraps(d.cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	d.traps.Store(first)

	var bound111, bound143 detect.PortSet
	bound111.Add(111)
	bound143.Add(111)
	bound143.Add(143)
	// A reads (111 bound) and is held before it publishes; B reads
	// (111 and 143 bound) and publishes meanwhile
	aDone, bDone, holdA := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() { d.refreshTraps(); close(aDone) }()
	g <- gatedAnswer{tcp: bound111, release: holdA}
	go func() { d.refreshTraps(); close(bDone) }()
	g <- gatedAnswer{tcp: bound143}
	<-bDone
	// A's set was computed over the first one: it must read again
	// rather than publish over B's under B's generation
	close(holdA)
	select {
	case <-aDone:
	case g <- gatedAnswer{tcp: bound143}:
		<-aDone
	}
	tr := d.traps.Load()
	if !tr.tcp.Has(1) || tr.tcp.Has(111) || tr.tcp.Has(143) {
		t.Fatalf("published traps: 1:%v 111:%v 143:%v, want the last read (111 and 143 bound)", tr.tcp.Has(1), tr.tcp.Has(111), tr.tcp.Has(143))
	}
	if tr.gen != 2 {
		t.Fatalf("generation %d, want 2 (one set published since the first)", tr.gen)
	}
}

// countingLister counts its reads.
type countingLister struct{ n int }

func (c *countingLister) BoundPorts(proto uint8) (detect.PortSet, error) {
	c.n++
	var s detect.PortSet
	s.Add(22)
	return s, nil
}

// TestBoundCache: trap hits read the bound ports at most once per
// boundFresh and protocol, however many there are.
func TestBoundCache(t *testing.T) {
	l := &countingLister{}
	now := time.Unix(1000, 0)
	c := &boundCache{l: l, now: func() time.Time { return now }}
	for i := 0; i < 1000; i++ {
		if ok, err := c.has(detect.ProtoTCP, 22); !ok || err != nil {
			t.Fatal("22 not bound")
		}
		if ok, _ := c.has(detect.ProtoTCP, 23); ok {
			t.Fatal("23 bound")
		}
	}
	if l.n != 1 {
		t.Fatalf("%d reads for 2000 hits within boundFresh, want 1", l.n)
	}
	c.has(detect.ProtoUDP, 22)
	now = now.Add(boundFresh + time.Millisecond)
	c.has(detect.ProtoTCP, 22)
	if l.n != 3 {
		t.Fatalf("%d reads, want 3 (UDP once, TCP again after boundFresh)", l.n)
	}
}
