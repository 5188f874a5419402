package backends

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// fakeProbe answers with err and counts its calls.
type fakeProbe struct {
	err   error
	calls int
}

func (f *fakeProbe) probe(context.Context) error {
	f.calls++
	return f.err
}

var (
	errNoNft   = errors.New("listing the inet tables over netlink: protocol not supported")
	errNoIpset = errors.New("the kernel does not answer ipset requests (CONFIG_IP_SET): invalid argument")
	// errDenied is what netfilter's netlink answers a process without
	// CAP_NET_ADMIN, wrapped as the real probes wrap it
	errDenied = fmt.Errorf("listing the inet tables over netlink: %w", syscall.EPERM)
)

// TestChooseOrder: each preference takes the first backend of its order
// whose probe answers, says why, and asks nothing after the one it takes.
func TestChooseOrder(t *testing.T) {
	for _, tc := range []struct {
		name         string
		prefer       Preference
		nft, ips     error
		want         Kind
		reason       string
		nftN, ipsN   int // calls of each probe
		unprobedWant int
	}{
		{"nftables answers", PreferNftables, nil, nil, Nftables,
			"the kernel's nf_tables answers", 1, 0, 0},
		{"nftables fails, ipset answers", PreferNftables, errNoNft, nil, Ipset,
			"nf_tables: " + errNoNft.Error(), 1, 1, 0},
		{"neither", PreferNftables, errNoNft, errNoIpset, Iptables,
			"nf_tables: " + errNoNft.Error() + "; ipset: " + errNoIpset.Error(), 1, 1, 0},
		{"KILL_ROUTE: ipset answers", PreferIpset, nil, nil, Ipset,
			"KILL_ROUTE is an iptables DROP rule: ipset keeps it visible in iptables -S", 0, 1, 0},
		{"KILL_ROUTE: ipset fails, nftables answers", PreferIpset, nil, errNoIpset, Nftables,
			"KILL_ROUTE is an iptables DROP rule, but ipset: " + errNoIpset.Error() + "; the kernel's nf_tables answers", 1, 1, 0},
		{"KILL_ROUTE: neither", PreferIpset, errNoNft, errNoIpset, Iptables,
			"KILL_ROUTE is an iptables DROP rule, but ipset: " + errNoIpset.Error() + "; nf_tables: " + errNoNft.Error(), 1, 1, 0},
		{"not permitted", PreferNftables, errDenied, fmt.Errorf("ipset: %w", syscall.EPERM), Iptables,
			"nf_tables: could not probe: operation not permitted (only a process with CAP_NET_ADMIN may ask, as the daemon does); " +
				"ipset: could not probe: operation not permitted (only a process with CAP_NET_ADMIN may ask, as the daemon does)", 1, 1, 2},
		{"nftables not permitted, ipset answers", PreferNftables, errDenied, nil, Ipset,
			"nf_tables: could not probe: operation not permitted (only a process with CAP_NET_ADMIN may ask, as the daemon does)", 1, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nft, ips := &fakeProbe{err: tc.nft}, &fakeProbe{err: tc.ips}
			ch := Probes{Nftables: nft.probe, Ipset: ips.probe}.Choose(context.Background(), tc.prefer)
			if ch.Kind != tc.want || ch.Reason != tc.reason {
				t.Errorf("got %s (%s), want %s (%s)", ch.Kind, ch.Reason, tc.want, tc.reason)
			}
			if nft.calls != tc.nftN || ips.calls != tc.ipsN {
				t.Errorf("probes asked: nftables %d, ipset %d; want %d, %d", nft.calls, ips.calls, tc.nftN, tc.ipsN)
			}
			if len(ch.Unprobed) != tc.unprobedWant || ch.Certain() != (tc.unprobedWant == 0) {
				t.Errorf("unprobed %q (certain %v), want %d", ch.Unprobed, ch.Certain(), tc.unprobedWant)
			}
			for _, u := range ch.Unprobed {
				if !strings.Contains(u, "could not probe") || !strings.Contains(ch.Reason, u) {
					t.Errorf("unprobed %q: not said in the reason %q", u, ch.Reason)
				}
			}
		})
	}
}

// TestChooseNilProbe: a missing probe counts as a backend that cannot
// work, never as one that can.
func TestChooseNilProbe(t *testing.T) {
	ch := Probes{}.Choose(context.Background(), PreferIpset)
	if ch.Kind != Iptables || !strings.Contains(ch.Reason, "ipset: not probed") || !strings.Contains(ch.Reason, "nf_tables: not probed") {
		t.Errorf("no probes: %+v", ch)
	}
}

// TestChooseLabelOnce: an error that already names its backend (ipset.New
// says "ipset: ...") is not named twice.
func TestChooseLabelOnce(t *testing.T) {
	ips := &fakeProbe{err: fmt.Errorf("ipset: %w", errNoIpset)}
	ch := Probes{Nftables: (&fakeProbe{err: errNoNft}).probe, Ipset: ips.probe}.Choose(context.Background(), PreferNftables)
	if strings.Contains(ch.Reason, "ipset: ipset:") || !strings.HasSuffix(ch.Reason, "; ipset: "+errNoIpset.Error()) {
		t.Errorf("reason %q", ch.Reason)
	}
}

func TestPreferenceString(t *testing.T) {
	for p, want := range map[Preference]string{PreferNftables: "nftables, else ipset, else iptables", PreferIpset: "ipset, else nftables, else iptables"} {
		if p.String() != want {
			t.Errorf("%d: %q", p, p.String())
		}
	}
	// every kind Choose returns can be opened by name
	for _, k := range []Kind{Nftables, Ipset, Iptables} {
		if !slices.Contains(Kinds(), k) {
			t.Errorf("%s is not a Kind Open knows", k)
		}
	}
}
