// Command fwdbench measures what scanwarden's firewall backends cost the
// packets they do not block, and how fast bans go in. It is a part of
// `make bench` (scripts/bench-sets.sh and scripts/bench.sh run it) and
// prints figures; it asserts nothing about speed.
//
//	fwdbench fwd [-bans 100000] [-duration 1s] [-rounds 5] [-backends nftables,ipset,iptables]
//	fwdbench load -backend nftables|ipset|iptables [-n 100000]   (inside ip netns exec NS)
//	fwdbench bans [-n 300]                                       (inside ip netns exec NS)
//
// fwd creates two network namespaces of its own (swfwd-PID-gen and
// swfwd-PID-vic) joined by a veth pair, on fd00:77::/64 only, with no
// route anywhere else, and deletes them when it ends (also on SIGINT or
// SIGTERM). A generator thread in the first, pinned to CPU 0, sends
// 66-byte IPv6 UDP datagrams with sendmmsg as fast as it can to a sink
// thread in the victim, pinned to CPU 1, which reads them with recvmmsg.
//
// What is measured, and why: veth hands a packet to the peer's stack in
// the sender's own context (netif_rx, then the receive softirq as the send
// ends), so the victim's whole receive path, its firewall hook and lookup
// included, runs on the generator's core and is charged to the generator
// thread's CPU clock (CLOCK_THREAD_CPUTIME_ID; this kernel has no separate
// IRQ time accounting). Its CPU time per datagram is the per-packet cost,
// and it does not move when other jobs share the two cores (they take
// wall time, not this thread's CPU time), which is why it is the figure
// rather than packets per second, which is printed as well. Work the kernel
// defers to ksoftirqd is shown in a column of its own.
//
// It measures no firewall at all, then for each backend its structure
// empty and loaded with -bans IPv6 bans put straight into the kernel, the
// way the backend lays them out: nftables, an inet table with a set with
// timeouts and one input-hook rule (over netlink); ipset, a hash:ip inet6 set
// with timeouts filled over netlink and one ip6tables -m set rule;
// iptables, a chain jumped to from INPUT with one DROP rule per ban
// (ip6tables-restore), the linear contrast. The generator's address is
// never banned; its second address is the last ban, and every load is
// checked to drop that address and pass the other before it is measured.
// Rounds interleave the configurations, the empty and loaded variant of a
// backend back to back; the figure is the best round (other jobs on the
// cores only ever add to the cost), with the median and worst beside it.
//
// load and bans change the firewall of the namespace they run in, and
// refuse to run in the host's own: the caller creates a namespace and runs
// them with `ip netns exec`. bans makes -n IPv6 and up to 254 IPv4 bans
// through scanwarden's iptables backend (block/iptables), one Block call
// each, and prints bans per second.
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
		var list string
		fs.IntVar(&o.Bans, "bans", defaultBans, "bans in each loaded structure (IPv6)")
		fs.DurationVar(&o.Duration, "duration", defaultDuration, "length of one measuring run")
		fs.IntVar(&o.Rounds, "rounds", defaultRounds, "rounds over every configuration")
		fs.StringVar(&list, "backends", strings.Join(backends, ","), "backends to measure, comma-separated")
		fs.StringVar(&o.Prefix, "prefix", fmt.Sprintf("%s%d-", nsPrefix, os.Getpid()), "prefix of the namespaces created")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		var err error
		if o.Backends, err = parseBackends(list); err != nil {
			return fmt.Errorf("%w: -backends: %v", errUsage, err)
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
