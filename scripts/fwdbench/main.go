// Command fwdbench measures what scanwarden's firewall backends cost the
// packets they do not block, and how fast bans go in. It is a part of
// `make bench` (scripts/bench-sets.sh and scripts/bench.sh run it) and
// prints figures; it asserts nothing about speed.
//
//	fwdbench fwd [-bans 100000] [-duration 1s] [-rounds 5] [-backends nftables,ipset,iptables] [-paths local,forward]
//	fwdbench load -backend nftables|ipset|iptables [-n 100000]   (inside ip netns exec NS)
//	fwdbench bans [-n 300]                                       (inside ip netns exec NS)
//
// fwd creates three network namespaces of its own (swfwd-PID-gen,
// swfwd-PID-vic and swfwd-PID-far): the generator and the victim joined
// by a veth pair on fd00:77::/64, the victim and the far one by another
// on fd00:78::/64, the victim forwarding between them, with no route
// anywhere else; it deletes them when it ends (also on SIGINT or
// SIGTERM). A generator thread in the first, pinned to CPU 0, sends
// 66-byte IPv6 UDP datagrams with sendmmsg as fast as it can to a sink
// thread, pinned to CPU 1, which reads them with recvmmsg: on the local
// path the sink is in the victim (the datagrams take its input path), on
// the forward path in the far namespace (the victim routes them: its
// forward path, as a router's, or a host's that publishes a container's
// port).
//
// What is measured, and why: veth hands a packet to the peer's stack in
// the sender's own context (netif_rx, then the receive softirq as the send
// ends), so the victim's whole receive or forward path, its firewall
// hooks and lookups included, runs on the generator's core and is charged
// to the generator thread's CPU clock (CLOCK_THREAD_CPUTIME_ID; this
// kernel has no separate IRQ time accounting). Its CPU time per datagram
// is the per-packet cost, and it does not move when other jobs share the
// two cores (they take wall time, not this thread's CPU time), which is
// why it is the figure rather than packets per second, which is printed as
// well. Work the kernel defers to ksoftirqd is shown in a column of its
// own.
//
// It measures no firewall at all, then for each backend its structure
// empty and loaded with -bans IPv6 bans, on each path. The structures are
// the backends' own, made in the victim by the backends themselves
// (block/backends, as the daemon opens them; the kernel trap off): the
// bans dropped at prerouting, raw priority, before routing and
// connection tracking, so on both paths: nftables, its table inet
// scanwarden, the bans in sets with timeouts; ipset, hash:ip sets with
// timeouts matched by ip6tables rules of its raw-table chain; iptables,
// its raw-table chain with one DROP rule per ban, the linear contrast.
// The set backends are loaded by their own Sync, as the daemon loads them
// on start; the iptables backend's rules, exactly as it writes them, by
// one ip6tables-restore (the backend runs ip6tables twice a ban: hours for
// 100,000). Each backend step runs in a process of its own in the
// victim's namespace (`ip netns exec NS fwdbench step`, which refuses the
// host's namespace). The generator's address is never banned; its
// second address is the last ban, and every load is checked, on each
// path, to drop that address and pass the other before it is measured.
// Rounds interleave the configurations, the empty and loaded variant of a
// backend back to back; the figure is the best round (other jobs on the
// cores only ever add to the cost), with the median and worst beside it.
//
// load and bans change the firewall of the namespace they run in, and
// refuse to run in the host's own: the caller creates a namespace and runs
// them with `ip netns exec`. load has a backend make its structure, loads
// -n IPv6 bans into it as fwd does, prints the time, and has the backend
// remove it. bans makes -n IPv6 and up to 254 IPv4 bans through
// scanwarden's iptables backend (block/iptables), one Block call each,
// and prints bans per second.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "fwdbench: %v\n", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// errUsage marks a command-line error.
var errUsage = errors.New("usage: fwdbench fwd|load|bans [flags] (fwdbench CMD -h for the flags)")

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errUsage
	}
	fs := flag.NewFlagSet("fwdbench "+args[0], flag.ContinueOnError)
	switch args[0] {
	case "fwd":
		var o fwdOptions
		var list, paths string
		fs.IntVar(&o.Bans, "bans", defaultBans, "bans in each loaded structure (IPv6)")
		fs.DurationVar(&o.Duration, "duration", defaultDuration, "length of one measuring run")
		fs.IntVar(&o.Rounds, "rounds", defaultRounds, "rounds over every configuration")
		fs.StringVar(&list, "backends", strings.Join(backendNames, ","), "backends to measure, comma-separated")
		fs.StringVar(&paths, "paths", strings.Join(pathNames, ","), "paths to measure, comma-separated: local (to the victim), forward (through it)")
		fs.StringVar(&o.Prefix, "prefix", fmt.Sprintf("%s%d-", nsPrefix, os.Getpid()), "prefix of the namespaces created")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		var err error
		if o.Backends, err = parseBackends(list); err != nil {
			return fmt.Errorf("%w: -backends: %v", errUsage, err)
		}
		if o.Paths, err = parsePaths(paths); err != nil {
			return fmt.Errorf("%w: -paths: %v", errUsage, err)
		}
		if o.Bans < 1 || o.Rounds < 1 || o.Duration <= 0 {
			return fmt.Errorf("%w: -bans, -rounds and -duration must be positive", errUsage)
		}
		return runFwd(ctx, os.Stdout, o)
	case "load":
		backend := fs.String("backend", "", "nftables, ipset or iptables")
		n := fs.Int("n", defaultBans, "bans to load (IPv6)")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *n < 1 {
			return fmt.Errorf("%w: -n must be positive", errUsage)
		}
		return runLoad(ctx, os.Stdout, *backend, *n)
	case "bans":
		n := fs.Int("n", defaultBanRuns, "IPv6 bans to make (and as many IPv4 ones, at most 254)")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		return runBans(ctx, os.Stdout, *n)
	case stepCmd:
		return runStep(ctx, os.Stdout, args[1:])
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	return nil
}
