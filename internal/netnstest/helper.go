// Package netnstest is the network-namespace lab of the kernel tests of
// the firewall backends: as root only, each test in network namespaces
// of its own (PREFIX-PID-N-ROLE), deleted when it ends, linked only to
// one another, with no default route and no link to the host. Processes
// run in a namespace are this test binary again under `ip netns exec NS`
// as a helper (see Main), which first checks that it really is in that
// namespace, so nothing can reach the host's own firewall or network by
// mistake. Only tests import it.
package netnstest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Exit codes of the helpers (the tcp helper's tell how its connect went).
const (
	ExitConnected = 0
	ExitFailed    = 1
	ExitBadUse    = 2
	ExitTimeout   = 3
	ExitRefused   = 4
)

// A Helper is what a helper process does with its arguments. An error
// ends it with ExitFailed, after printing the error, unless it is an
// ExitCode.
type Helper func(args []string) error

// ExitCode is an error that ends a helper with that exit code, printing
// nothing more.
type ExitCode int

func (c ExitCode) Error() string { return "exit code " + strconv.Itoa(int(c)) }

// The helper's environment variables are env+these.
const (
	suffixHelper = "_HELPER" // which helper
	suffixNetns  = "_NETNS"  // the namespace it must be in
	suffixArgs   = "_ARGS"   // its arguments, one a line
)

// Main is a TestMain for a package whose helper variables start with env
// (env_HELPER, env_NETNS, env_ARGS): when env_HELPER names one of
// helpers, it runs that one instead of the tests and exits, refusing to
// when not in the namespace env_NETNS names (see CheckNetns).
func Main(m *testing.M, env string, helpers map[string]Helper) {
	if op := os.Getenv(env + suffixHelper); op != "" {
		os.Exit(runHelper(op, env, helpers))
	}
	os.Exit(m.Run())
}

func runHelper(op, env string, helpers map[string]Helper) int {
	ns := os.Getenv(env + suffixNetns)
	if err := CheckNetns(ns); err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %s%s: %v\n", op, env, suffixNetns, err)
		return ExitBadUse
	}
	h, ok := helpers[op]
	if !ok {
		fmt.Fprintf(os.Stderr, "helper %s: unknown helper\n", op)
		return ExitFailed
	}
	err := h(SplitArgs(os.Getenv(env + suffixArgs)))
	var code ExitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	}
	fmt.Fprintf(os.Stderr, "helper %s: %v\n", op, err)
	return ExitFailed
}

// SplitArgs splits the helper arguments s, one a line ("" is none).
func SplitArgs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// CheckNetns makes sure this process runs in the network namespace
// /run/netns/ns, and not in that of PID 1.
func CheckNetns(ns string) error {
	if ns == "" || strings.Contains(ns, "/") {
		return fmt.Errorf("bad namespace name %q", ns)
	}
	self, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return err
	}
	want, err := os.Stat("/run/netns/" + ns)
	if err != nil {
		return err
	}
	if !os.SameFile(self, want) {
		return fmt.Errorf("not in network namespace %s: refusing to run", ns)
	}
	if init, err := os.Stat("/proc/1/ns/net"); err == nil && os.SameFile(self, init) {
		return errors.New("in the network namespace of PID 1: refusing to run")
	}
	return nil
}

// Serve returns the serve helper: it listens on TCP and UDP on each port
// of its arguments (every address of the namespace), prints "ready", then
// "udp PORT SRC PAYLOAD" for every datagram and "tcp PORT SRC" for every
// connection (which it answers "ok" and closes), until its standard input
// closes.
func Serve() Helper {
	return func(ports []string) error {
		if len(ports) == 0 {
			return errors.New("usage: serve PORT [PORT...]")
		}
		var mu sync.Mutex
		say := func(format string, a ...any) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Printf(format+"\n", a...)
		}
		var closers []io.Closer
		for _, port := range ports {
			addr := net.JoinHostPort("::", port)
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				return err
			}
			closers = append(closers, ln, pc)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					say("tcp %s %s", port, c.RemoteAddr())
					_, _ = c.Write([]byte("ok\n"))
					_ = c.Close()
				}
			}()
			go func() {
				buf := make([]byte, 2048)
				for {
					n, from, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					say("udp %s %s %s", port, from, buf[:n])
				}
			}()
		}
		say("ready")
		_, _ = io.Copy(io.Discard, os.Stdin)
		var err error
		for _, c := range closers {
			err = errors.Join(err, c.Close())
		}
		return err
	}
}

// localAddr parses the optional source address args[i]: nil when it is
// missing (any source).
func localAddr(args []string, i int) (net.IP, error) {
	if len(args) <= i {
		return nil, nil
	}
	a, err := netip.ParseAddr(args[i])
	if err != nil {
		return nil, err
	}
	return a.AsSlice(), nil
}

// TCP is the tcp helper, "ADDR:PORT TIMEOUT [SRC]": it connects (from
// SRC when given) to ADDR:PORT within TIMEOUT (a duration) and reads the
// server's "ok". It exits ExitConnected when it did, ExitTimeout when the
// connection timed out (the SYN was dropped), ExitRefused when it was
// reset (the SYN got through to a closed port), ExitBadUse on bad
// arguments, ExitFailed otherwise.
func TCP(args []string) error {
	if len(args) != 2 && len(args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: tcp ADDR:PORT TIMEOUT [SRC]")
		return ExitCode(ExitBadUse)
	}
	d, err := time.ParseDuration(args[1])
	src, err2 := localAddr(args, 2)
	if err != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, "bad arguments:", err, err2)
		return ExitCode(ExitBadUse)
	}
	dialer := net.Dialer{Timeout: d}
	if src != nil {
		dialer.LocalAddr = &net.TCPAddr{IP: src}
	}
	c, err := dialer.Dial("tcp", args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return ExitCode(ExitTimeout)
		case errors.Is(err, syscall.ECONNREFUSED):
			return ExitCode(ExitRefused)
		}
		return ExitCode(ExitFailed)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(d))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ok\n" {
		fmt.Fprintf(os.Stderr, "read %q: %v\n", line, err)
		return ExitCode(ExitFailed)
	}
	return nil
}

// UDP is the udp helper, "ADDR:PORT PAYLOAD COUNT [SRC]": it sends
// PAYLOAD (from SRC when given) to ADDR:PORT in COUNT
// datagrams, 50ms apart (copies, in case the first waits on neighbour
// discovery).
func UDP(args []string) error {
	if len(args) != 3 && len(args) != 4 {
		return errors.New("usage: udp ADDR:PORT PAYLOAD COUNT [SRC]")
	}
	n, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	src, err := localAddr(args, 3)
	if err != nil {
		return err
	}
	var local *net.UDPAddr
	if src != nil {
		local = &net.UDPAddr{IP: src}
	}
	raddr, err := net.ResolveUDPAddr("udp", args[0])
	if err != nil {
		return err
	}
	c, err := net.DialUDP("udp", local, raddr)
	if err != nil {
		return err
	}
	defer c.Close()
	for i := range n {
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := c.Write([]byte(args[1])); err != nil {
			return err
		}
	}
	return nil
}
