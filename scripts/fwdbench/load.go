package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// loader puts bans straight into one kind of kernel structure of a
// network namespace, the way the matching scanwarden backend lays them out,
// without going through the backend (so that a 100,000-ban load takes
// seconds, not the hours one iptables run per ban would).
type loader interface {
	// Name is the backend the structure belongs to.
	Name() string
	// Prepare creates the structure empty and hooks it into the input
	// path: after it, every packet to the namespace is looked up in it.
	Prepare(ctx context.Context) error
	// Fill adds addrs to the structure prepared (one kernel transaction
	// where the structure allows it).
	Fill(ctx context.Context, addrs []netip.Addr) error
	// Count returns how many bans the structure holds, as the kernel
	// lists them.
	Count(ctx context.Context) (int, error)
	// Teardown removes the structure and its hook; nothing fwdbench added
	// stays.
	Teardown(ctx context.Context) error
}

// backends lists the loaders fwdbench knows, in the order it measures them.
var backends = []string{"nftables", "ipset", "iptables"}

// newLoader returns the loader of backend in namespace ns ("" for the
// current one).
func newLoader(backend, ns string) (loader, error) {
	switch backend {
	case "nftables":
		return nftLoader{ns}, nil
	case "ipset":
		return ipsetLoader{ns}, nil
	case "iptables":
		return iptLoader{ns}, nil
	}
	return nil, fmt.Errorf("unknown backend %q (want %s)", backend, strings.Join(backends, ", "))
}

// banAddrs returns n distinct IPv6 addresses to ban: fd00:77::1:0:0:0
// onwards, and as the last one bannedAddr, which the generator's namespace
// owns, so that a load can be checked to drop it.
func banAddrs(n int) []netip.Addr {
	if n <= 0 {
		return nil
	}
	out := make([]netip.Addr, 0, n)
	a := banBase
	for range n - 1 {
		out = append(out, a)
		a = a.Next()
	}
	return append(out, bannedAddr)
}

// nftLoader: an inet table with a set of IPv6 addresses with timeouts and
// one rule in an input-hook chain dropping its members ("meta nfproto ipv6
// ip6 saddr @ban6 drop"), as the nftables backend has it: one set lookup
// per packet whatever the set's size. Written over netlink
// (github.com/google/nftables), so no nft program is needed.
type nftLoader struct{ ns string }

func (nftLoader) Name() string { return "nftables" }

// nftChunk and nftPerFlush: elements per netlink message and messages
// per transaction. An element with its timeout is 80 bytes, and a
// message's element list is one netlink attribute, whose length is 16 bits:
// google/nftables silently sends a wrapped length for more than 819
// elements, and the kernel then adds only some of them. 512 elements make
// 41 KB; two messages a transaction stay well inside the socket's default
// send buffer (212992 bytes), which bounds a whole batch.
const (
	nftChunk    = 512
	nftPerFlush = 2
)

// conn opens a netlink connection to nf_tables in the loader's namespace
// and passes it to f.
func (l nftLoader) conn(f func(c *nftables.Conn) error) error {
	var opts []nftables.ConnOption
	if l.ns != "" {
		fd, err := unix.Open("/run/netns/"+l.ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening network namespace %s: %w", l.ns, err)
		}
		defer unix.Close(fd)
		opts = append(opts, nftables.WithNetNSFd(fd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return f(c)
}

func (l nftLoader) table() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: nftTable}
}

func (l nftLoader) set() *nftables.Set {
	return &nftables.Set{Table: l.table(), Name: nftSet, KeyType: nftables.TypeIP6Addr, HasTimeout: true, Size: banSetSize}
}

func (l nftLoader) Prepare(context.Context) error {
	return l.conn(func(c *nftables.Conn) error {
		t := c.AddTable(l.table())
		set := l.set()
		if err := c.AddSet(set, nil); err != nil {
			return fmt.Errorf("nftables: set %s: %w", nftSet, err)
		}
		accept := nftables.ChainPolicyAccept
		ch := c.AddChain(&nftables.Chain{
			Name: "input", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(nftPriority), Policy: &accept,
		})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16},
			&expr.Lookup{SourceRegister: 1, SetName: nftSet},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
		if err := c.Flush(); err != nil {
			return fmt.Errorf("nftables: creating table inet %s: %w", nftTable, err)
		}
		return nil
	})
}

func (l nftLoader) Fill(ctx context.Context, addrs []netip.Addr) error {
	return l.conn(func(c *nftables.Conn) error {
		set := l.set()
		elems := make([]nftables.SetElement, 0, nftChunk)
		for i, msgs := 0, 0; i < len(addrs); i += nftChunk {
			if err := ctx.Err(); err != nil {
				return err
			}
			elems = elems[:0]
			for _, a := range addrs[i:min(i+nftChunk, len(addrs))] {
				elems = append(elems, nftables.SetElement{Key: a.AsSlice(), Timeout: banTimeout})
			}
			if err := c.SetAddElements(set, elems); err != nil {
				return fmt.Errorf("nftables: adding to %s: %w", nftSet, err)
			}
			if msgs++; msgs == nftPerFlush || i+nftChunk >= len(addrs) {
				if err := c.Flush(); err != nil {
					return fmt.Errorf("nftables: adding to %s: %w", nftSet, err)
				}
				msgs = 0
			}
		}
		return nil
	})
}

func (l nftLoader) Count(context.Context) (n int, err error) {
	err = l.conn(func(c *nftables.Conn) error {
		elems, err := c.GetSetElements(l.set())
		if err != nil {
			return fmt.Errorf("nftables: listing %s: %w", nftSet, err)
		}
		n = len(elems)
		return nil
	})
	return n, err
}

func (l nftLoader) Teardown(context.Context) error {
	return l.conn(func(c *nftables.Conn) error {
		c.DelTable(l.table())
		if err := c.Flush(); err != nil {
			return fmt.Errorf("nftables: deleting table inet %s: %w", nftTable, err)
		}
		return nil
	})
}

// ipsetLoader: an ipset hash:ip set (family inet6, with timeouts) filled
// over netlink, one message per element as the ipset backend adds bans, and
// one ip6tables rule matching it in INPUT.
type ipsetLoader struct{ ns string }

func (ipsetLoader) Name() string { return "ipset" }

// ipsetRule is the ip6tables rule that drops the set's members.
var ipsetRule = []string{"INPUT", "-m", "set", "--match-set", ipsetName, "src", "-j", "DROP"}

func (l ipsetLoader) Prepare(ctx context.Context) error {
	timeout := uint32(banTimeout.Seconds())
	err := inNS(l.ns, -1, func() error {
		h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		defer h.Close()
		opts := netlink.IpsetCreateOptions{
			Family:      unix.AF_INET6,
			Timeout:     &timeout,
			MaxElements: banSetSize,
		}
		if err := h.IpsetCreate(ipsetName, "hash:ip", opts); err != nil {
			return fmt.Errorf("ipset create %s hash:ip family inet6: %w", ipsetName, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = runIn(ctx, l.ns, nil, "ip6tables", append([]string{"-w", "5", "-I"}, ipsetRule...)...)
	return err
}

func (l ipsetLoader) Fill(ctx context.Context, addrs []netip.Addr) error {
	timeout := uint32(banTimeout.Seconds())
	return inNS(l.ns, -1, func() error {
		h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		defer h.Close()
		if len(addrs) > banSetSize {
			return fmt.Errorf("%d bans: the set holds at most %d", len(addrs), banSetSize)
		}
		for _, a := range addrs {
			if err := ctx.Err(); err != nil {
				return err
			}
			e := &netlink.IPSetEntry{IP: net.IP(a.AsSlice()), Timeout: &timeout}
			if err := h.IpsetAdd(ipsetName, e); err != nil {
				return fmt.Errorf("ipset add %s %s: %w", ipsetName, a, err)
			}
		}
		return nil
	})
}

func (l ipsetLoader) Count(context.Context) (n int, err error) {
	err = inNS(l.ns, -1, func() error {
		h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		defer h.Close()
		r, err := h.IpsetList(ipsetName)
		if err != nil {
			return fmt.Errorf("ipset list %s: %w", ipsetName, err)
		}
		n = len(r.Entries)
		return nil
	})
	return n, err
}

func (l ipsetLoader) Teardown(ctx context.Context) error {
	if _, err := runIn(ctx, l.ns, nil, "ip6tables", append([]string{"-w", "5", "-D"}, ipsetRule...)...); err != nil {
		return err
	}
	return inNS(l.ns, -1, func() error {
		h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		defer h.Close()
		if err := h.IpsetDestroy(ipsetName); err != nil {
			return fmt.Errorf("ipset destroy %s: %w", ipsetName, err)
		}
		return nil
	})
}

// iptLoader: the iptables backend's layout, a chain jumped to from INPUT
// with one "-s ADDR/128 -m comment --comment scanwarden -j DROP" rule per
// ban, loaded with one ip6tables-restore (the backend itself runs
// ip6tables twice per ban). Rules are matched one after the other: the
// contrast to the sets.
type iptLoader struct{ ns string }

func (iptLoader) Name() string { return "iptables" }

func (l iptLoader) restore(ctx context.Context, body string) error {
	_, err := runIn(ctx, l.ns, []byte("*filter\n"+body+"COMMIT\n"), "ip6tables-restore", "-w", "5", "--noflush")
	return err
}

func (l iptLoader) Prepare(ctx context.Context) error {
	return l.restore(ctx, fmt.Sprintf(":%[1]s - [0:0]\n-A INPUT -j %[1]s\n", iptChain))
}

// iptRules is the restore text of addrs' rules.
func iptRules(addrs []netip.Addr) string {
	var b strings.Builder
	for _, a := range addrs {
		fmt.Fprintf(&b, "-A %s -s %s -m comment --comment scanwarden -j DROP\n", iptChain, netip.PrefixFrom(a, a.BitLen()))
	}
	return b.String()
}

func (l iptLoader) Fill(ctx context.Context, addrs []netip.Addr) error {
	return l.restore(ctx, iptRules(addrs))
}

func (l iptLoader) Count(ctx context.Context) (int, error) {
	out, err := runIn(ctx, l.ns, nil, "ip6tables", "-w", "5", "-S", iptChain)
	if err != nil {
		return 0, err
	}
	return strings.Count(out, "\n-A "+iptChain+" "), nil
}

func (l iptLoader) Teardown(ctx context.Context) error {
	// declaring the chain flushes it; then the jump and the chain go
	return l.restore(ctx, fmt.Sprintf(":%[1]s - [0:0]\n-D INPUT -j %[1]s\n-X %[1]s\n", iptChain))
}
