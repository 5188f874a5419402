package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/scanwarden/scanwarden/block"
	"github.com/scanwarden/scanwarden/block/backends"
	"github.com/scanwarden/scanwarden/block/iptables"
)

// loader puts bans into one of scanwarden's firewall backends in a
// network namespace, through the backend itself (block/backends, as the
// daemon opens it), so that what is measured is the layout the daemon
// writes: its chains, hooks, priorities and sets, whatever they are.
type loader interface {
	// Name is the backend's name (BLOCK_BACKEND).
	Name() string
	// Prepare has the backend make its structure, empty, as the daemon
	// does on start (Blocker.Prepare): from then on every packet
	// arriving in the namespace meets it.
	Prepare(ctx context.Context) error
	// Fill adds bans of addrs and returns how long the adding took (the
	// kernel work only, not the process around it).
	Fill(ctx context.Context, addrs []netip.Addr) (time.Duration, error)
	// Count returns how many addresses the backend blocks, as it lists
	// them from the kernel (Blocker.List).
	Count(ctx context.Context) (int, error)
	// Teardown has the backend remove everything it made
	// (Blocker.Flush); nothing fwdbench added stays.
	Teardown(ctx context.Context) error
}

// backendNames lists the backends fwdbench knows, in the order it
// measures them.
var backendNames = []string{string(backends.Nftables), string(backends.Ipset), string(backends.Iptables)}

// checkBackend fails unless name is one of backendNames.
func checkBackend(name string) error {
	for _, b := range backendNames {
		if b == name {
			return nil
		}
	}
	return fmt.Errorf("unknown backend %q (want %s)", name, strings.Join(backendNames, ", "))
}

// newLoader returns the loader of backend in network namespace ns, which
// runs each step in a process of its own inside ns (`ip netns exec NS
// fwdbench step ...`): the backends act on the namespace they run in, and
// the step refuses to run in the host's (checkNotHostNS).
func newLoader(backend, ns string) (loader, error) {
	if err := checkBackend(backend); err != nil {
		return nil, err
	}
	if ns == "" {
		return nil, errors.New("no network namespace given: fwdbench never changes the firewall of the namespace it runs in")
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this program to run its steps in %s: %w", ns, err)
	}
	return nsLoader{backend: backend, ns: ns, exe: exe}, nil
}

// nsLoader is the loader of a backend in another network namespace: each
// step is `ip netns exec NS fwdbench step -backend B -op OP`.
type nsLoader struct{ backend, ns, exe string }

func (l nsLoader) Name() string { return l.backend }

// step runs one step in the namespace and returns the value it printed
// last ("fill NS", "count N"), or "" for a step that prints none.
func (l nsLoader) step(ctx context.Context, op string, args ...string) (string, error) {
	out, err := runIn(ctx, l.ns, nil, l.exe, append([]string{stepCmd, "-backend", l.backend, "-op", op}, args...)...)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if v, ok := strings.CutPrefix(line, op+" "); ok {
			return v, nil
		}
	}
	return "", nil
}

func (l nsLoader) Prepare(ctx context.Context) error {
	_, err := l.step(ctx, "prepare")
	return err
}

// Fill passes the number of bans, not the addresses: the step makes the
// same banAddrs(len(addrs)).
func (l nsLoader) Fill(ctx context.Context, addrs []netip.Addr) (time.Duration, error) {
	if want := banAddrs(len(addrs)); len(want) == 0 || want[0] != addrs[0] || want[len(want)-1] != addrs[len(addrs)-1] {
		return 0, errors.New("fill: the addresses are not banAddrs'")
	}
	v, err := l.step(ctx, "fill", "-n", strconv.Itoa(len(addrs)))
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("fill: the step printed no time (%q)", v)
	}
	return time.Duration(ns), nil
}

func (l nsLoader) Count(ctx context.Context) (int, error) {
	v, err := l.step(ctx, "count")
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("count: the step printed no count (%q)", v)
	}
	return n, nil
}

func (l nsLoader) Teardown(ctx context.Context) error {
	_, err := l.step(ctx, "teardown")
	return err
}

// stepCmd is the command of one step, run by nsLoader inside the
// namespace.
const stepCmd = "step"

// runStep is `fwdbench step`: one step of a loader in the current
// network namespace, which must not be the host's. It prints "fill NS"
// (the nanoseconds the fill took) and "count N".
func runStep(ctx context.Context, w io.Writer, args []string) error {
	fs := flag.NewFlagSet("fwdbench "+stepCmd, flag.ContinueOnError)
	backend := fs.String("backend", "", strings.Join(backendNames, ", "))
	op := fs.String("op", "", "prepare, fill, count or teardown")
	n := fs.Int("n", 0, "fill: bans to add (banAddrs)")
	if err := parse(fs, args); err != nil {
		return err
	}
	b, err := openBackend(*backend)
	if err != nil {
		return err
	}
	defer b.Close()
	switch *op {
	case "prepare":
		return b.Prepare(ctx)
	case "fill":
		if *n < 1 {
			return fmt.Errorf("%w: -n must be positive", errUsage)
		}
		took, err := b.Fill(ctx, banAddrs(*n))
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "fill %d\n", took.Nanoseconds())
		return nil
	case "count":
		have, err := b.Count(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "count %d\n", have)
		return nil
	case "teardown":
		return b.Teardown(ctx)
	}
	return fmt.Errorf("%w: -op %q: want prepare, fill, count or teardown", errUsage, *op)
}

// localBackend is a backend opened in the current network namespace
// (never the host's), as the daemon opens it (backends.Open).
type localBackend struct {
	name string
	b    block.Blocker
}

// openBackend opens backend name in the current network namespace, after
// checking that it is not the host's.
func openBackend(name string) (*localBackend, error) {
	if err := checkNotHostNS(); err != nil {
		return nil, err
	}
	if err := checkBackend(name); err != nil {
		return nil, fmt.Errorf("%w: -backend: %v", errUsage, err)
	}
	b, err := backends.Open(backends.Kind(name))
	if err != nil {
		return nil, err
	}
	return &localBackend{name: name, b: b}, nil
}

func (l *localBackend) Name() string { return l.name }

func (l *localBackend) Close() { _ = l.b.Close() }

func (l *localBackend) Prepare(ctx context.Context) error {
	if err := l.b.Prepare(ctx); err != nil {
		return fmt.Errorf("%s: prepare: %w", l.name, err)
	}
	return nil
}

// Fill: the set backends take the bans as the daemon gives them on start
// (Sync, in batches over netlink), each with BAN_EXPIRY_TCP's default
// timeout. The iptables backend runs ip6tables twice per ban, hours for
// 100,000: its rules, exactly as it writes them, go into its chain in one
// ip6tables-restore instead (the ip6tables the backend runs in a new
// namespace, the default one on $PATH; Count, the backend's own listing,
// checks that it sees them).
func (l *localBackend) Fill(ctx context.Context, addrs []netip.Addr) (time.Duration, error) {
	t0 := time.Now()
	if l.name == string(backends.Iptables) {
		body := "*" + string(iptables.TableRaw) + "\n" + iptRules(addrs) + "COMMIT\n"
		if _, err := runIn(ctx, "", []byte(body), "ip6tables-restore", "-w", "5", "--noflush"); err != nil {
			return 0, fmt.Errorf("iptables: loading %d rules: %w", len(addrs), err)
		}
		return time.Since(t0), nil
	}
	until := t0.Add(banTimeout)
	bans := make([]block.Ban, len(addrs))
	for i, a := range addrs {
		bans[i] = block.Ban{Addr: a, Proto: "tcp", Type: "syn", Reason: "fwdbench", Since: t0, Until: until}
	}
	if err := l.b.Sync(ctx, bans); err != nil {
		return 0, fmt.Errorf("%s: sync of %d bans: %w", l.name, len(addrs), err)
	}
	return time.Since(t0), nil
}

func (l *localBackend) Count(ctx context.Context) (int, error) {
	list, err := l.b.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: list: %w", l.name, err)
	}
	return len(list), nil
}

func (l *localBackend) Teardown(ctx context.Context) error {
	if err := l.b.Flush(ctx); err != nil {
		return fmt.Errorf("%s: flush: %w", l.name, err)
	}
	return nil
}

// iptRules is the restore text of addrs' rules in the iptables backend's
// chain, as the backend writes them.
func iptRules(addrs []netip.Addr) string {
	var b strings.Builder
	for _, a := range addrs {
		fmt.Fprintf(&b, "-A %s -s %s -m comment --comment scanwarden -j DROP\n", iptables.ChainScanwarden, netip.PrefixFrom(a, a.BitLen()))
	}
	return b.String()
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
