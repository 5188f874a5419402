package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// runIn runs name with args in network namespace ns ("" for the current
// one) through `ip netns exec`, with stdin as its standard input when not
// nil, and returns its combined output; a failure names the command and
// carries the tail of its output.
func runIn(ctx context.Context, ns string, stdin []byte, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	argv := append([]string{name}, args...)
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, tail(string(out), 300))
	}
	return string(out), nil
}

// tail returns at most the last n bytes of s, trimmed.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}

// inNS runs f on a goroutine locked to an OS thread that has entered
// network namespace ns ("" for the current one) and, when cpu >= 0, is
// pinned to that CPU. The thread is never returned to the Go scheduler's
// pool (its goroutine exits locked, so the runtime ends it): no other
// goroutine ever runs in the namespace. inNS waits for f and returns its
// error.
func inNS(ns string, cpu int, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// no UnlockOSThread: the thread dies with the goroutine
		errc <- func() error {
			if err := enterNS(ns); err != nil {
				return err
			}
			if cpu >= 0 {
				var set unix.CPUSet
				set.Set(cpu)
				if err := unix.SchedSetaffinity(0, &set); err != nil {
					return fmt.Errorf("pinning a thread to CPU %d: %w", cpu, err)
				}
			}
			return f()
		}()
	}()
	return <-errc
}

// enterNS moves the calling (locked) thread into network namespace ns;
// "" leaves it where it is.
func enterNS(ns string) error {
	if ns == "" {
		return nil
	}
	fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", ns, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering network namespace %s: %w", ns, err)
	}
	return nil
}

// errHostNS is returned by checkNotHostNS outside a namespace of its own.
var errHostNS = errors.New("this runs only in a network namespace made with ip netns add (ip netns exec NS ...), never in the host's: it changes the firewall")

// initNetIno is the inode number of the initial network namespace's nsfs
// file (PROC_NET_INIT_INO in the kernel's proc_ns.h), the same on every
// Linux machine.
const initNetIno = 0xEFFFFFF9

// checkNotHostNS fails unless the calling thread runs in a network
// namespace that is bound under /run/netns (made by `ip netns add`), is not
// the kernel's initial one and is not PID 1's, so that a firewall change
// can never reach the host's own. (Under `ip netns exec` every thread of
// the process, and every command it runs, is in that namespace.)
func checkNotHostNS() error {
	self, err := os.Stat("/proc/thread-self/ns/net")
	if err != nil {
		return fmt.Errorf("reading this thread's network namespace: %w", err)
	}
	if st, ok := self.Sys().(*syscall.Stat_t); !ok || st.Ino == initNetIno {
		return errHostNS
	}
	// PID 1's may be unreadable (a restricted /proc): then the two other
	// conditions decide
	if host, err := os.Stat("/proc/1/ns/net"); err == nil && os.SameFile(self, host) {
		return errHostNS
	}
	named, _ := filepath.Glob("/run/netns/*")
	for _, f := range named {
		if fi, err := os.Stat(f); err == nil && os.SameFile(self, fi) {
			return nil
		}
	}
	return errHostNS
}

// pair is the generator and victim namespaces joined by a veth pair,
// and the far namespace behind the victim, which routes to it.
type pair struct {
	gen, victim, far string
}

// path is where the generator's datagrams go: the namespace and address
// of their sink.
type path struct {
	name string
	ns   string
	dst  netip.Addr
}

// The paths measured: a datagram addressed to the victim (its input
// path), and one the victim forwards to the far namespace (its forward
// path). Both meet the bans at prerouting.
const (
	pathLocal   = "local"
	pathForward = "forward"
)

// pathNames lists the paths in the order they are measured.
var pathNames = []string{pathLocal, pathForward}

// path returns the path named name.
func (p *pair) path(name string) path {
	if name == pathForward {
		return path{name: name, ns: p.far, dst: farAddr}
	}
	return path{name: pathLocal, ns: p.victim, dst: victimAddr}
}

// newPair creates the namespaces PREFIX-gen, PREFIX-vic and PREFIX-far
// (failing if any exists): a veth pair between the generator and the
// victim on fd00:77::/64, another between the victim and the far one on
// fd00:78::/64, with fixed MAC addresses and static neighbour entries
// (no neighbour discovery during a run), IPv6 without DAD, link-local
// addresses or router solicitations, the generator's two addresses, the
// victim's two and the far one's; the victim forwards IPv6, and the
// generator and the far namespace reach each other's network through
// it. On failure what was created is removed.
func newPair(ctx context.Context, prefix string) (p *pair, err error) {
	p = &pair{gen: prefix + "gen", victim: prefix + "vic", far: prefix + "far"}
	for _, ns := range []string{p.gen, p.victim, p.far} {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			return nil, fmt.Errorf("network namespace %s exists already", ns)
		}
	}
	defer func() {
		if err != nil {
			p.delete()
			p = nil
		}
	}()
	var steps [][]string
	for _, ns := range []string{p.gen, p.victim, p.far} {
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
			[]string{"ip", "netns", "exec", ns, "sysctl", "-q", "-w",
				"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
				"net.ipv6.conf.default.addr_gen_mode=1",
				"net.ipv6.conf.all.router_solicitations=0", "net.ipv6.conf.default.router_solicitations=0",
				"net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0"})
	}
	steps = append(steps,
		[]string{"ip", "netns", "exec", p.victim, "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"},
		[]string{"ip", "-n", p.gen, "link", "add", ifName, "address", genMAC, "type", "veth",
			"peer", "name", ifName, "address", victimMAC, "netns", p.victim},
		[]string{"ip", "-n", p.victim, "link", "add", farIfName, "address", victimFarMAC, "type", "veth",
			"peer", "name", ifName, "address", farMAC, "netns", p.far},
		[]string{"ip", "-n", p.gen, "addr", "add", genAddr.String() + "/64", "dev", ifName, "nodad"},
		[]string{"ip", "-n", p.gen, "addr", "add", bannedAddr.String() + "/64", "dev", ifName, "nodad"},
		[]string{"ip", "-n", p.victim, "addr", "add", victimAddr.String() + "/64", "dev", ifName, "nodad"},
		[]string{"ip", "-n", p.victim, "addr", "add", victimFarAddr.String() + "/64", "dev", farIfName, "nodad"},
		[]string{"ip", "-n", p.far, "addr", "add", farAddr.String() + "/64", "dev", ifName, "nodad"},
		[]string{"ip", "-n", p.gen, "link", "set", ifName, "up"},
		[]string{"ip", "-n", p.victim, "link", "set", ifName, "up"},
		[]string{"ip", "-n", p.victim, "link", "set", farIfName, "up"},
		[]string{"ip", "-n", p.far, "link", "set", ifName, "up"},
		[]string{"ip", "-n", p.gen, "neigh", "replace", victimAddr.String(), "lladdr", victimMAC, "dev", ifName, "nud", "permanent"},
		[]string{"ip", "-n", p.victim, "neigh", "replace", genAddr.String(), "lladdr", genMAC, "dev", ifName, "nud", "permanent"},
		[]string{"ip", "-n", p.victim, "neigh", "replace", bannedAddr.String(), "lladdr", genMAC, "dev", ifName, "nud", "permanent"},
		[]string{"ip", "-n", p.victim, "neigh", "replace", farAddr.String(), "lladdr", farMAC, "dev", farIfName, "nud", "permanent"},
		[]string{"ip", "-n", p.far, "neigh", "replace", victimFarAddr.String(), "lladdr", victimFarMAC, "dev", ifName, "nud", "permanent"},
		[]string{"ip", "-n", p.gen, "route", "add", farNet.String(), "via", victimAddr.String(), "dev", ifName},
		[]string{"ip", "-n", p.far, "route", "add", labNet.String(), "via", victimFarAddr.String(), "dev", ifName},
	)
	for _, s := range steps {
		if _, err := runIn(ctx, "", nil, s[0], s[1:]...); err != nil {
			return p, fmt.Errorf("setting up the namespaces: %w", err)
		}
	}
	return p, nil
}

// delete removes the namespaces (and with them the veth pairs and every
// firewall structure loaded in them); a namespace already gone is no
// error. It reports what it could not delete on stderr.
func (p *pair) delete() {
	for _, ns := range []string{p.gen, p.victim, p.far} {
		if _, err := os.Stat("/run/netns/" + ns); err != nil {
			continue
		}
		// not under the caller's context: cleanup must run after a cancel
		if _, err := runIn(context.Background(), "", nil, "ip", "netns", "del", ns); err != nil {
			fmt.Fprintf(os.Stderr, "fwdbench: warning: %v\n", err)
		}
	}
}
