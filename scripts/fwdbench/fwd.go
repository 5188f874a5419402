package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// fwdOptions are the flags of `fwdbench fwd`.
type fwdOptions struct {
	Bans     int
	Duration time.Duration
	Rounds   int
	Backends []string
	Paths    []string
	Prefix   string
}

// config is one firewall state the traffic is measured against, and the
// path the traffic takes.
type config struct {
	backend string // backendNone or a backend's name
	bans    int    // bans loaded (0: the structure empty)
	path    string // pathLocal or pathForward
}

// label names the firewall state.
func (c config) label() string {
	if c.backend == backendNone {
		return "no firewall"
	}
	return fmt.Sprintf("%s, %d bans", c.backend, c.bans)
}

func (c config) String() string { return c.label() + ", " + c.path }

// fwdReport gathers the runs of every configuration.
type fwdReport struct {
	order   []config
	runs    map[config][]runResult
	loads   map[string][]time.Duration
	skipped map[string]string
}

func (r *fwdReport) add(c config, res runResult) {
	if !slices.Contains(r.order, c) {
		r.order = append(r.order, c)
	}
	r.runs[c] = append(r.runs[c], res)
}

// toolsOf names the programs each backend runs, or fwdbench for it.
var toolsOf = map[string][]string{
	"nftables": {},
	"ipset":    {"iptables", "ip6tables"},
	"iptables": {"iptables", "ip6tables", "ip6tables-restore"},
}

// runFwd measures the per-packet cost of the victim's paths (o.Paths: its
// input path, and the path of what it forwards) with no firewall, and for
// each backend with its structure empty and with o.Bans bans, in o.Rounds
// interleaved rounds, and writes the table to w. Progress goes to
// stderr. Its namespaces are deleted on return.
func runFwd(ctx context.Context, w io.Writer, o fwdOptions) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (network namespaces, firewall structures in them)")
	}
	if runtime.NumCPU() < 2 {
		return fmt.Errorf("needs 2 CPUs (generator and sink on cores of their own), this machine has %d", runtime.NumCPU())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("ip (iproute2) is missing: run scripts/deps.sh")
	}
	rep := &fwdReport{runs: map[config][]runResult{}, loads: map[string][]time.Duration{}, skipped: map[string]string{}}
	for _, b := range o.Backends {
		if err := checkBackend(b); err != nil {
			return err
		}
		for _, t := range toolsOf[b] {
			if _, err := exec.LookPath(t); err != nil {
				rep.skipped[b] = t + " is not installed"
			}
		}
	}
	p, err := newPair(ctx, o.Prefix)
	if err != nil {
		return err
	}
	defer p.delete()
	addrs := banAddrs(o.Bans)
	progress := func(c config, res runResult) {
		fmt.Fprintf(os.Stderr, "fwdbench: %-35s %8.1f ns/packet, %9.0f sent/s, %9.0f delivered/s\n",
			c.String()+":", res.NsPerPacket(), perSec(res.Sent, res.Wall), perSec(res.Delivered, res.Wall))
	}
	run := func(c config) error {
		res, err := measure(p, p.path(c.path), o.Duration)
		if err != nil {
			return fmt.Errorf("%v: %w", c, err)
		}
		rep.add(c, res)
		progress(c, res)
		return nil
	}
	for round := 1; round <= o.Rounds; round++ {
		fmt.Fprintf(os.Stderr, "fwdbench: round %d of %d\n", round, o.Rounds)
		for _, pt := range o.Paths {
			if err := run(config{backendNone, 0, pt}); err != nil {
				return err
			}
		}
		for _, b := range o.Backends {
			if err := ctx.Err(); err != nil {
				return err
			}
			if _, skip := rep.skipped[b]; skip {
				continue
			}
			if err := backendRound(ctx, p, b, addrs, o.Paths, rep, run); err != nil {
				if ctx.Err() != nil {
					return ctx.Err() // interrupted: no table
				}
				rep.skipped[b] = err.Error()
				fmt.Fprintf(os.Stderr, "fwdbench: %s skipped: %v\n", b, err)
			}
		}
	}
	rep.print(w, o)
	return nil
}

// backendRound has backend b make its structure in the victim, measures
// each path through it empty and then loaded with addrs, checking each
// time that it drops exactly what it should on that path, and has the
// backend remove it again.
func backendRound(ctx context.Context, p *pair, b string, addrs []netip.Addr, paths []string, rep *fwdReport, run func(config) error) (err error) {
	l, err := newLoader(b, p.victim)
	if err != nil {
		return err
	}
	if err := l.Prepare(ctx); err != nil {
		_ = l.Teardown(ctx) // whatever part was made
		return err
	}
	defer func() {
		if err2 := l.Teardown(ctx); err == nil && err2 != nil {
			err = fmt.Errorf("teardown: %w", err2)
		}
		time.Sleep(quiesce)
	}()
	for _, pt := range paths {
		if err := verify(p, p.path(pt), false); err != nil {
			return fmt.Errorf("empty %s: %w", b, err)
		}
		if err := run(config{b, 0, pt}); err != nil {
			return err
		}
	}
	took, err := l.Fill(ctx, addrs)
	if err != nil {
		return err
	}
	rep.loads[b] = append(rep.loads[b], took)
	if n, err := l.Count(ctx); err != nil {
		return err
	} else if n != len(addrs) {
		return fmt.Errorf("%s holds %d bans after loading %d", b, n, len(addrs))
	}
	for _, pt := range paths {
		if err := verify(p, p.path(pt), true); err != nil {
			return fmt.Errorf("%s with %d bans: %w", b, len(addrs), err)
		}
		if err := run(config{b, len(addrs), pt}); err != nil {
			return err
		}
	}
	return nil
}

func perSec(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// stats are the median, minimum and maximum of some figures.
type stats struct{ med, min, max float64 }

func statsOf(v []float64) stats {
	if len(v) == 0 {
		return stats{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{med, s[0], s[len(s)-1]}
}

func (r *fwdReport) figure(c config, f func(runResult) float64) stats {
	var v []float64
	for _, res := range r.runs[c] {
		v = append(v, f(res))
	}
	return statsOf(v)
}

// print writes the table: per configuration the best per-packet cost
// over the rounds (other jobs only ever add to it), its median and
// maximum, and the best against the configuration it is to be compared
// with (a loaded structure against the same structure empty, an empty one
// against no firewall).
func (r *fwdReport) print(w io.Writer, o fwdOptions) {
	fmt.Fprintf(w, "per-packet cost: IPv6 UDP, %d-byte packets from a generator namespace over veth, %d rounds of %v;\n",
		40+8+payloadLen, o.Rounds, o.Duration)
	fmt.Fprintf(w, "the backends' own structures (block/backends), made in the victim namespace as the daemon makes them\n")
	fmt.Fprintf(w, "(kernel trap off): the bans are dropped at prerouting, raw priority, whatever the destination;\n")
	fmt.Fprintf(w, "path local: to a sink in the victim (its input path); forward: through the victim, which routes it\n")
	fmt.Fprintf(w, "to a sink in a third namespace behind it (its forward path)\n")
	fmt.Fprintf(w, "ns/packet: the generator thread's CPU time per datagram (its send, and the victim's receive or forward\n")
	fmt.Fprintf(w, "path and firewall, which veth runs in the sender's context): best of the rounds, then median and worst\n")
	fmt.Fprintf(w, "%-24s %-8s %9s %10s %12s %11s %11s %11s %10s %9s\n",
		"configuration", "path", "load (s)", "sent/s", "delivered/s", "best ns/pkt", "median", "worst", "vs", "softirqd")
	cost := func(res runResult) float64 { return res.NsPerPacket() }
	var rows []config
	for _, pt := range pathNames {
		for _, c := range r.order {
			if c.path == pt {
				rows = append(rows, c)
			}
		}
	}
	for _, c := range rows {
		s := r.figure(c, cost)
		sent := r.figure(c, func(res runResult) float64 { return perSec(res.Sent, res.Wall) })
		deliv := r.figure(c, func(res runResult) float64 { return perSec(res.Delivered, res.Wall) })
		soft := r.figure(c, func(res runResult) float64 {
			if res.Sent == 0 {
				return 0
			}
			return float64(res.Softirqd.Nanoseconds()) / float64(res.Sent)
		})
		load := "-"
		if c.bans > 0 {
			var v []float64
			for _, d := range r.loads[c.backend] {
				v = append(v, d.Seconds())
			}
			load = fmt.Sprintf("%.2f", statsOf(v).med)
		}
		vs := "-"
		if base, ok := r.baseline(c); ok {
			if b := r.figure(base, cost).min; b > 0 {
				vs = fmt.Sprintf("%+.1f%%", (s.min-b)/b*100)
			}
		}
		fmt.Fprintf(w, "%-24s %-8s %9s %10.0f %12.0f %11.1f %11.1f %11.1f %10s %9.1f\n",
			c.label(), c.path, load, sent.med, deliv.med, s.min, s.med, s.max, vs, soft.med)
	}
	for _, pt := range pathNames {
		if s := r.figure(config{backendNone, 0, pt}, cost); s.min > 0 {
			fmt.Fprintf(w, "noise: 'no firewall, %s' runs lie %.1f%% (median) and %.1f%% (worst) above its best\n",
				pt, (s.med-s.min)/s.min*100, (s.max-s.min)/s.min*100)
		}
	}
	fmt.Fprintf(w, "vs: best against best on the same path, a loaded structure against the same one empty, an empty one against no firewall\n")
	fmt.Fprintf(w, "softirqd: ns/packet ksoftirqd/%d spent meanwhile (receive work deferred out of the generator; not in ns/pkt)\n", genCPU)
	fmt.Fprintf(w, "load (s): %d IPv6 bans, median: nftables and ipset, the backend's Sync (netlink batches into its ban set);\n", o.Bans)
	fmt.Fprintf(w, "  iptables, its rules in its raw-table chain by one ip6tables-restore (the backend itself runs ip6tables twice a ban)\n")
	for _, b := range o.Backends {
		if why, ok := r.skipped[b]; ok {
			fmt.Fprintf(w, "%s: skipped: %s\n", b, why)
		}
	}
}

// baseline is what c is compared with.
func (r *fwdReport) baseline(c config) (config, bool) {
	var base config
	switch {
	case c.backend == backendNone:
		return base, false
	case c.bans == 0:
		base = config{backendNone, 0, c.path}
	default:
		base = config{c.backend, 0, c.path}
	}
	_, ok := r.runs[base]
	return base, ok
}

// parseBackends splits a comma-separated list of backends.
func parseBackends(s string) ([]string, error) {
	var out []string
	for _, b := range strings.Split(s, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		if err := checkBackend(b); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// parsePaths splits a comma-separated list of paths, and returns them in
// pathNames' order.
func parsePaths(s string) ([]string, error) {
	want := map[string]bool{}
	for _, pt := range strings.Split(s, ",") {
		pt = strings.TrimSpace(pt)
		if pt == "" {
			continue
		}
		if !slices.Contains(pathNames, pt) {
			return nil, fmt.Errorf("unknown path %q (want %s)", pt, strings.Join(pathNames, ", "))
		}
		want[pt] = true
	}
	var out []string
	for _, pt := range pathNames {
		if want[pt] {
			out = append(out, pt)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no path")
	}
	return out, nil
}
