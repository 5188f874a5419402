package nftables

// The kernel tests send the attacker's packets from inside its network
// namespace by running this test binary again under `ip netns exec NS`,
// with SWNFT_HELPER saying what to do: TestMain sees it and does that
// instead of running tests (see internal/netnstest). Every helper first checks that it really is in
// the namespace SWNFT_NETNS names (and not in that of PID 1), so nothing
// can reach the host's own network by mistake. The backend itself runs in
// the test process, on a descriptor of the victim's namespace.

import (
	"testing"

	"github.com/scanwarden/scanwarden/internal/netnstest"
)

func TestMain(m *testing.M) {
	netnstest.Main(m, "SWNFT", map[string]netnstest.Helper{
		"serve":    netnstest.Serve(),
		"tcp":      netnstest.TCP,
		"udp":      netnstest.UDP,
		"raw":      netnstest.Raw,
		"flood":    netnstest.Flood,
		"rawreply": netnstest.RawReply,
	})
}
