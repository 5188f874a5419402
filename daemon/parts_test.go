package daemon

import (
	"context"
	"net/netip"
	"reflect"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/command"
	"github.com/scanwarden/scanwarden/detect"
	"github.com/scanwarden/scanwarden/internal/conftest"
)

// TestCommandTemplates: KILL_ROUTE and KILL_RUN_CMD run through the runner
// with $TARGET$, $PORT$ and $MODE$ substituted into the split words, in
// PortSentry's order, and a native iptables KILL_ROUTE runs nothing.
func TestCommandTemplates(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		src        string
		want       [][]string
	}{
		{"route and command", `KILL_ROUTE="/sbin/route add -host $TARGET$ reject"
KILL_RUN_CMD="/usr/local/bin/notify 'scan from' $TARGET$ port=$PORT$ $MODE$"`, "198.51.100.66",
			[][]string{{"/sbin/route", "add", "-host", "198.51.100.66", "reject"}, {"/usr/local/bin/notify", "scan from", "198.51.100.66", "port=22", "stcp"}}},
		{"command first", `KILL_ROUTE="/sbin/route add -host $TARGET$ reject"
KILL_RUN_CMD="/usr/local/bin/notify $TARGET$"
KILL_RUN_CMD_FIRST="1"`, "fd00:77::66",
			[][]string{{"/usr/local/bin/notify", "fd00:77::66"}, {"/sbin/route", "add", "-host", "fd00:77::66", "reject"}}},
		{"native KILL_ROUTE", `KILL_ROUTE="/sbin/iptables -I INPUT -s $TARGET$ -j DROP"`, "198.51.100.66", nil},
		{"log only", `BLOCK_TCP="0"
KILL_RUN_CMD="/usr/local/bin/notify $TARGET$"`, "198.51.100.66", nil},
		{"command only", `BLOCK_TCP="2"
KILL_ROUTE="/sbin/route add -host $TARGET$ reject"
KILL_RUN_CMD="/usr/local/bin/notify $TARGET$ $MODE$"`, "198.51.100.66",
			[][]string{{"/usr/local/bin/notify", "198.51.100.66", "stcp"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c, err := LoadConfig(conftest.DryConfig(t, dir, tc.conf), true)
			if err != nil {
				t.Fatal(err)
			}
			runner := &command.FakeRunner{}
			m, closeM, err := newManager(c, logrus.New(), block.NewNeverBlock(nil), runner, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer closeM()
			if _, err := m.Handle(context.Background(), &detect.Alert{Src: netip.MustParseAddr(tc.src), Type: detect.TypeSYN, Port: 22}, "stcp"); err != nil {
				t.Fatal(err)
			}
			if got := runner.Calls(); (len(got) > 0 || len(tc.want) > 0) && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ran %q, want %q", got, tc.want)
			}
		})
	}
}
