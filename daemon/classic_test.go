package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/scanwarden/scanwarden/classic"
	"github.com/scanwarden/scanwarden/conf"
	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/host"
)

func TestClassicModeNames(t *testing.T) {
	for _, c := range []struct {
		m        Modes
		tcp, udp string
	}{
		{Modes{TCP: true, UDP: true}, "stcp", "sudp"},
		{Modes{TCP: true, ClassicTCP: true}, "tcp", "sudp"},
		{Modes{UDP: true, ClassicUDP: true}, "stcp", "udp"},
		{Modes{TCP: true, UDP: true, AdvUDP: true, ClassicTCP: true, ClassicUDP: true}, "tcp", "audp"},
	} {
		if c.m.Name(detect.ProtoTCP) != c.tcp || c.m.Name(detect.ProtoUDP) != c.udp {
			t.Errorf("%+v: %s %s", c.m, c.m.Name(detect.ProtoTCP), c.m.Name(detect.ProtoUDP))
		}
	}
}

// TestClassicConfigWarnings: PORT_BANNER is warned about as unused except
// by a classic TCP daemon, which sends it; a classic UDP daemon says why it
// does not.
func TestClassicConfigWarnings(t *testing.T) {
	c, err := conf.Parse(strings.NewReader("PORT_BANNER=\"go away\"\nSCAN_TRIGGER=\"0\"\nSCAN_TRIGGER=\"2\"\n"), "ps.conf")
	if err != nil {
		t.Fatal(err)
	}
	joined := func(m Modes) string { return strings.Join(ConfigWarnings(c, m), "\n") }
	if w := joined(Modes{TCP: true, UDP: true}); !strings.Contains(w, "ps.conf:1: PORT_BANNER: accepted but not used") || !strings.Contains(w, "ps.conf:3: SCAN_TRIGGER") {
		t.Errorf("stealth mode: %s", w)
	}
	if w := joined(Modes{TCP: true, ClassicTCP: true}); strings.Contains(w, "PORT_BANNER") || !strings.Contains(w, "ps.conf:3: SCAN_TRIGGER") {
		t.Errorf("classic TCP: %s", w)
	}
	if w := joined(Modes{UDP: true, ClassicUDP: true}); !strings.Contains(w, "ps.conf:1: PORT_BANNER: not sent by the classic UDP mode") || strings.Contains(w, "accepted but not used") {
		t.Errorf("classic UDP: %s", w)
	}
}

// freePort returns a TCP port nothing listens on now.
func freePort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// TestClassicPortsAreNoServices: the check on a trap hit counts a
// service's port, not one the classic mode bound itself; the capture's
// trap ports leave out both the classic mode's ports and the services'
// ones, and keep the others.
func TestClassicPortsAreNoServices(t *testing.T) {
	log, _ := test.NewNullLogger()
	ours := freePort(t)
	m := classic.New(true, false, log, func(*detect.Alert) {})
	m.Sync(classic.Settings{TCP: []uint16{ours}, Window: time.Minute, Trigger: 1})
	defer m.Close()
	if !m.Owns(detect.ProtoTCP, ours) {
		t.Skipf("port %d could not be bound", ours)
	}
	// /proc/net lists our listener and a service on 7777
	dir := t.TempDir()
	line := "   %d: 00000000:%04X 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n"
	os.WriteFile(filepath.Join(dir, "tcp"), []byte("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"+
		fmt.Sprintf(line, 0, ours)+fmt.Sprintf(line, 1, 7777)), 0o644)
	d := &daemon{bound: host.ProcNet(dir), modes: Modes{TCP: true, ClassicTCP: true}, classic: m}
	d.boundNow = &boundCache{l: d.bound, now: time.Now}
	for _, c := range []struct {
		proto uint8
		port  uint16
		want  bool
	}{{detect.ProtoTCP, 7777, true}, {detect.ProtoTCP, ours, false}, {detect.ProtoTCP, 11, false}, {detect.ProtoUDP, 7777, false}} {
		if got, err := d.serviceHas(c.proto, c.port); err != nil || got != c.want {
			t.Errorf("serviceHas(%s, %d) = %v, %v; want %v", detect.ProtoName(c.proto), c.port, got, err, c.want)
		}
	}
	c, err := conf.Parse(strings.NewReader(fmt.Sprintf("TCP_PORTS=\"1,11,7777,%d\"\n", ours)), "classic.conf")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := d.computeTraps(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !tr.tcp.Has(1) || !tr.tcp.Has(11) || tr.tcp.Has(7777) || tr.tcp.Has(ours) {
		t.Error("capture traps: want 1 and 11 only")
	}
}

// TestAlertOnce: one alert per source and window, whichever of the
// capture and the classic ports raises it first; forget lets the next one
// through; the table stays within its bound.
func TestAlertOnce(t *testing.T) {
	sec := int64(time.Second)
	a, b := netip.MustParseAddr("198.51.100.50"), netip.MustParseAddr("198.51.100.51")
	o := newAlertOnce(4, int64(time.Minute))
	if !o.admit(a, 0) || o.admit(a, 2*sec) {
		t.Fatal("a second alert of a source within the window")
	}
	if !o.admit(b, sec) {
		t.Fatal("another source's alert held back")
	}
	if !o.admit(a, 61*sec) {
		t.Fatal("no alert once the window has passed")
	}
	o.forget(b)
	if !o.admit(b, 2*sec) {
		t.Fatal("forgotten source held back")
	}
	src := netip.MustParseAddr("198.51.100.100")
	for i := 0; i < 1000; i++ {
		o.admit(src, int64(i))
		src = src.Next()
		if o.last.Len() > 4 {
			t.Fatalf("%d sources held, bound 4", o.last.Len())
		}
	}
	var nilOnce *alertOnce
	if !nilOnce.admit(a, 0) || !nilOnce.admit(a, 1) {
		t.Fatal("no classic mode: alerts held back")
	}
}
