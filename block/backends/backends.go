// Package backends is the factory of the firewall backends: it names the
// kinds of BLOCK_BACKEND that put objects of their own into the kernel,
// opens one by name, removes what the others left behind, and chooses the
// one BLOCK_BACKEND="auto" stands for by asking the kernel (Choose,
// choose.go). It owns no policy and reads no config file: the daemon
// passes the name, or the preference auto is to follow.
package backends

import (
	"context"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/ipset"
	"github.com/scanwarden/scanwarden/block/iptables"
	"github.com/scanwarden/scanwarden/block/nftables"
)

// Kind names a firewall backend, as BLOCK_BACKEND writes it.
type Kind string

// The firewall backends.
const (
	// Iptables inserts one DROP rule per source with iptables/ip6tables
	// (block/iptables).
	Iptables Kind = "iptables"
	// Nftables keeps the sources in sets of its own inet table
	// (block/nftables).
	Nftables Kind = "nftables"
	// Ipset keeps the sources in ipsets matched by iptables rules
	// (block/ipset).
	Ipset Kind = "ipset"
)

// HasSets reports whether k keeps the blocked sources in kernel sets,
// which can hold a kernel trap (block.Trapper).
func (k Kind) HasSets() bool { return k == Nftables || k == Ipset }

// kinds are every firewall backend, with how to reach it.
var kinds = []struct {
	kind Kind
	open func() (block.Blocker, error)
}{
	{Iptables, func() (block.Blocker, error) { return iptables.NewDefault() }},
	{Nftables, func() (block.Blocker, error) { return nftables.New(nftables.Options{}) }},
	{Ipset, func() (block.Blocker, error) { return ipset.NewDefault() }},
}

// Kinds returns every firewall backend's name.
func Kinds() []Kind {
	out := make([]Kind, len(kinds))
	for i, k := range kinds {
		out[i] = k.kind
	}
	return out
}

// Open returns the backend k, ready to block; the caller closes it. It
// fails when k is unknown or its kernel interface cannot be reached (no
// iptables binary, no nf_tables or ip_set).
func Open(k Kind) (block.Blocker, error) {
	for _, c := range kinds {
		if c.kind == k {
			return c.open()
		}
	}
	return nil, fmt.Errorf("BLOCK_BACKEND %q unknown", k)
}

// RemoveOthers flushes what the firewall backends other than keep left in
// the kernel (after BLOCK_BACKEND changed): their rules would go on
// dropping sources whose bans nothing lifts any more, and a kernel trap
// would go on trapping. Flush touches only scanwarden's own chain, table
// or sets, and is a no-op where there are none; the bans themselves are in
// the state, for keep's backend to restore. A backend that cannot be
// reached here can have left nothing.
func RemoveOthers(ctx context.Context, keep Kind, log logrus.FieldLogger) {
	for _, c := range kinds {
		if c.kind == keep {
			continue
		}
		b, err := c.open()
		if err != nil {
			continue
		}
		// Flush also takes out a kernel trap a killed daemon left
		had, _ := b.List(ctx)
		if err := b.Flush(ctx); err != nil {
			log.Errorf("BLOCK_BACKEND is %q now: removing what %q left: %v", keep, c.kind, err)
		} else if len(had) > 0 {
			log.Warnf("adminalert: BLOCK_BACKEND is %q now: removed the %d block(s) %q had left in the kernel (the bans in force are restored with %q)", keep, len(had), c.kind, keep)
		}
		b.Close()
	}
}
