package backends

// Choosing the firewall backend of BLOCK_BACKEND="auto": the kernel is
// asked, without changing anything, which set backend can work here, and
// the first that can is taken, in the order of a Preference; iptables is
// the last resort.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	nft "github.com/google/nftables"

	"github.com/scanwarden/scanwarden/block/ipset"
	"github.com/scanwarden/scanwarden/block/iptables"
)

// Tunables of the probes.
const (
	// setMatchTimeout bounds each `iptables -m set -h` run: it only loads
	// the extension and prints its help, milliseconds on any host; one
	// that hangs must not stop the daemon from starting.
	setMatchTimeout = 10 * time.Second
	// ipv6Proc exists when the kernel has IPv6: only then must ip6tables
	// work for the ipset backend to block every source the host can see.
	ipv6Proc = "/proc/net/if_inet6"
)

// Preference is the order in which Choose tries the set backends before
// falling back to iptables.
type Preference int

const (
	// PreferNftables tries nftables, then ipset: nftables needs no
	// iptables program at all (one netlink message per block, nothing
	// run), so it has the fewest parts that can fail.
	PreferNftables Preference = iota
	// PreferIpset tries ipset, then nftables: for a config whose
	// KILL_ROUTE is an iptables DROP rule (command.NativeKillRoute), whose
	// administrator looks for the blocks in `iptables -S`. ipset's bans
	// are matched there by one iptables rule per set, at set speed.
	PreferIpset
)

// String names the order, as the log and check-config say it.
func (p Preference) String() string {
	if p == PreferIpset {
		return "ipset, else nftables, else iptables"
	}
	return "nftables, else ipset, else iptables"
}

// Probes ask whether a set backend can work on this host; each returns
// nil when it can, else why not. An error that is fs.ErrPermission
// (EPERM, EACCES) means the question could not be asked: netfilter's
// netlink answers only a process with CAP_NET_ADMIN, and an unprivileged
// check-config has none. A probe changes nothing in the kernel.
type Probes struct {
	// Nftables asks whether the kernel's nf_tables answers over netlink.
	Nftables func(ctx context.Context) error
	// Ipset asks whether the kernel's ip_set answers over netlink and
	// iptables (and ip6tables, when the kernel has IPv6) read the filter
	// table and load the set match.
	Ipset func(ctx context.Context) error
}

// KernelProbes returns the probes of the caller's network namespace (see
// ProbeNftables and ProbeIpset).
func KernelProbes() Probes {
	return Probes{Nftables: ProbeNftables, Ipset: ProbeIpset}
}

// Choice is a backend Choose picked, and why.
type Choice struct {
	// Kind is the backend: Nftables, Ipset or Iptables.
	Kind Kind
	// Reason says why, for the log and check-config: "the kernel's
	// nf_tables answers", "nf_tables: <error>", ...
	Reason string
	// Unprobed names each kernel interface that could not be asked (a
	// permission refused: an unprivileged process), with why. Kind is then
	// what the others allowed, and a process with CAP_NET_ADMIN, as the
	// daemon runs, may choose another.
	Unprobed []string
}

// Certain reports whether every probe Choose needed could be asked, so
// that a privileged process on this host would choose the same.
func (c Choice) Certain() bool { return len(c.Unprobed) == 0 }

// Choose asks this host's kernel (KernelProbes) which backend
// BLOCK_BACKEND="auto" stands for; see Probes.Choose.
func Choose(ctx context.Context, prefer Preference) Choice {
	return KernelProbes().Choose(ctx, prefer)
}

// Choose returns the first backend of prefer's order whose probe answers,
// or Iptables when none does. It probes lazily: a backend after the one
// chosen is not asked about. The reason names the error of each backend
// passed over ("nf_tables: <error>"), and a probe refused for lack of
// privilege is also listed in Unprobed. A nil probe counts as failing.
func (p Probes) Choose(ctx context.Context, prefer Preference) Choice {
	var ch Choice
	ask := func(name string, probe func(context.Context) error) (string, bool) {
		if probe == nil {
			return name + ": not probed", false
		}
		err := probe(ctx)
		if err == nil {
			return "", true
		}
		msg := strings.TrimPrefix(err.Error(), name+": ")
		if errors.Is(err, fs.ErrPermission) {
			// the errno alone: what the probe would have found out is
			// not known
			var errno syscall.Errno
			if errors.As(err, &errno) {
				msg = errno.Error()
			}
			msg = fmt.Sprintf("%s: could not probe: %s (only a process with CAP_NET_ADMIN may ask, as the daemon does)", name, msg)
			ch.Unprobed = append(ch.Unprobed, msg)
			return msg, false
		}
		return name + ": " + msg, false
	}
	switch prefer {
	case PreferIpset:
		const why = "KILL_ROUTE is an iptables DROP rule"
		noIpset, ok := ask("ipset", p.Ipset)
		if ok {
			ch.Kind, ch.Reason = Ipset, why+": ipset keeps it visible in iptables -S"
			return ch
		}
		noNft, ok := ask("nf_tables", p.Nftables)
		if ok {
			ch.Kind, ch.Reason = Nftables, why+", but "+noIpset+"; the kernel's nf_tables answers"
			return ch
		}
		ch.Kind, ch.Reason = Iptables, why+", but "+noIpset+"; "+noNft
	default:
		noNft, ok := ask("nf_tables", p.Nftables)
		if ok {
			ch.Kind, ch.Reason = Nftables, "the kernel's nf_tables answers"
			return ch
		}
		noIpset, ok := ask("ipset", p.Ipset)
		if ok {
			ch.Kind, ch.Reason = Ipset, noNft
			return ch
		}
		ch.Kind, ch.Reason = Iptables, noNft+"; "+noIpset
	}
	return ch
}

// ProbeNftables asks the kernel's nf_tables, over netlink, for the list of
// its inet tables (the family the nftables backend's table is of): nil
// when it answers. It reads only.
func ProbeNftables(context.Context) error {
	c, err := nft.New()
	if err != nil {
		return fmt.Errorf("opening netlink: %w", err)
	}
	if _, err := c.ListTablesOfFamily(nft.TableFamilyINet); err != nil {
		return fmt.Errorf("listing the inet tables over netlink: %w", err)
	}
	return nil
}

// ProbeIpset asks whether the ipset backend can work here: the kernel's
// ip_set answers over netlink (the protocol request ipset.New makes, whose
// refusal for want of privilege is a clean EPERM); the backend's own
// checks pass (ipset.NewDefault: iptables, nf_tables or legacy as the
// backend would run it, reads the tables the backend writes); and
// iptables, and ip6tables when the kernel has IPv6 (ip6tables reading the
// filter table too), load the set match (`iptables -m set -h`). The
// kernel's own set match (xt_set) is loaded with the backend's first rule.
// It reads only: no set, chain or rule is made.
func ProbeIpset(ctx context.Context) error {
	b, err := ipset.New(ipset.Options{})
	if err != nil {
		return err
	}
	b.Close()
	if b, err = ipset.NewDefault(); err != nil {
		return err
	}
	b.Close()
	if err := probeSetMatch(ctx, iptables.IPv4); err != nil {
		return err
	}
	if _, err := os.Stat(ipv6Proc); err != nil {
		return nil // no IPv6 to block
	}
	r, err := iptables.NewRunner(iptables.IPv6)
	if err != nil {
		return fmt.Errorf("ip6tables: %w", err)
	}
	if ok, err := r.ChainExists(iptables.TableFilter, iptables.ChainInput); err != nil || !ok {
		return fmt.Errorf("ip6tables cannot read the filter table's INPUT chain (exists: %v): %v", ok, err)
	}
	return probeSetMatch(ctx, iptables.IPv6)
}

// probeSetMatch checks that f's iptables command has the set match. The
// set extension is one library that the nf_tables and the legacy variants
// of the command share: the one on PATH stands for both.
func probeSetMatch(ctx context.Context, f iptables.Family) error {
	name := "iptables"
	if f == iptables.IPv6 {
		name = "ip6tables"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	cctx, cancel := context.WithTimeout(ctx, setMatchTimeout)
	defer cancel()
	out, err := exec.CommandContext(cctx, path, "-m", "set", "-h").CombinedOutput()
	if err == nil && !bytes.Contains(out, []byte("--match-set")) {
		err = errors.New("its help does not mention --match-set")
	}
	if err != nil {
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return fmt.Errorf("%s has no set match (%s -m set -h: %v: %s)", name, path, err, line)
	}
	return nil
}
