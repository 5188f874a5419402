package iptables

// The kernel tests run the backend, a listener and clients inside network
// namespaces by running this test binary again under `ip netns exec NS`,
// with SWIPT_HELPER saying what to do: TestMain sees it and does that
// instead of running tests. Every helper first checks that it really is in
// the namespace SWIPT_NETNS names, so nothing can reach the host's own
// firewall or network by mistake.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/block"
)

const (
	envHelper = "SWIPT_HELPER" // backend, serve, tcp or udp
	envNetns  = "SWIPT_NETNS"  // the namespace the helper must be in
	envArgs   = "SWIPT_ARGS"   // its arguments, one a line
)

// Exit codes of the tcp helper.
const (
	exitConnected = 0
	exitFailed    = 1
	exitBadUse    = 2
	exitTimeout   = 3
)

func TestMain(m *testing.M) {
	if op := os.Getenv(envHelper); op != "" {
		os.Exit(helperMain(op, os.Getenv(envNetns), splitArgs(os.Getenv(envArgs))))
	}
	os.Exit(m.Run())
}

func splitArgs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func helperMain(op, ns string, args []string) int {
	if err := checkNetns(ns); err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", op, err)
		return exitBadUse
	}
	var err error
	switch op {
	case "backend":
		err = helperBackend(args)
	case "serve":
		err = helperServe(args)
	case "tcp":
		return helperTCP(args)
	case "udp":
		err = helperUDP(args)
	default:
		err = fmt.Errorf("unknown helper %q", op)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", op, err)
		return exitFailed
	}
	return 0
}

// checkNetns makes sure this process runs in the named namespace, and not
// in that of PID 1.
func checkNetns(ns string) error {
	if ns == "" || strings.Contains(ns, "/") {
		return fmt.Errorf("bad %s %q", envNetns, ns)
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

// helperBackend runs commands against a fresh NewDefault Backend, one per
// argument: "describe", "block ADDR", "try-block ADDR", "unblock ADDR",
// "sync ADDR...", "list", "flush", "ensure 4|6". list prints "list
// ADDR...", describe the Backend's String, try-block "error: ..." when
// Block fails (the other commands end the helper with their error).
func helperBackend(cmds []string) error {
	ctx := context.Background()
	b, err := NewDefault()
	if err != nil {
		return err
	}
	for _, c := range cmds {
		f := strings.Fields(c)
		if len(f) == 0 {
			continue
		}
		var addrs []netip.Addr
		for _, s := range f[1:] {
			if f[0] == "ensure" {
				break
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				return fmt.Errorf("%q: %w", c, err)
			}
			addrs = append(addrs, a)
		}
		switch {
		case f[0] == "describe":
			fmt.Println(b.String())
		case f[0] == "block" && len(addrs) == 1:
			err = b.Block(ctx, block.Ban{Addr: addrs[0], Proto: "tcp", Since: time.Now()})
		case f[0] == "try-block" && len(addrs) == 1:
			if err := b.Block(ctx, block.Ban{Addr: addrs[0], Proto: "tcp"}); err != nil {
				fmt.Println("error:", err)
			}
		case f[0] == "unblock" && len(addrs) == 1:
			err = b.Unblock(ctx, addrs[0])
		case f[0] == "sync":
			var want []block.Ban
			for _, a := range addrs {
				want = append(want, block.Ban{Addr: a, Proto: "tcp"})
			}
			err = b.Sync(ctx, want)
		case f[0] == "list":
			var got []netip.Addr
			if got, err = b.List(ctx); err == nil {
				s := make([]string, len(got))
				for i, a := range got {
					s[i] = a.String()
				}
				fmt.Println(strings.TrimSpace("list " + strings.Join(s, " ")))
			}
		case f[0] == "flush":
			err = b.Flush(ctx)
		case f[0] == "ensure" && len(f) == 2 && (f[1] == "4" || f[1] == "6"):
			err = b.EnsureChain(map[string]Family{"4": IPv4, "6": IPv6}[f[1]])
		default:
			return fmt.Errorf("bad command %q", c)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
	}
	return nil
}

// helperServe listens on TCP and UDP port args[0] of every address of the
// namespace, prints "ready", then "udp SRC PAYLOAD" for every datagram
// (which it also echoes) and "tcp SRC" for every connection (which it
// answers "ok" and closes), until its standard input closes.
func helperServe(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: serve PORT")
	}
	addr := net.JoinHostPort("::", args[0])
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", a...)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			say("tcp %s", c.RemoteAddr())
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
			say("udp %s %s", from, buf[:n])
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	say("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = ln.Close()
	return pc.Close()
}

// helperTCP connects to args[0] within args[1] (a duration) and reads the
// server's "ok": exit 0 when it did, exitTimeout when the connection
// timed out, exitFailed for any other failure.
func helperTCP(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tcp ADDR:PORT TIMEOUT")
		return exitBadUse
	}
	d, err := time.ParseDuration(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitBadUse
	}
	c, err := net.DialTimeout("tcp", args[0], d)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return exitTimeout
		}
		return exitFailed
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(d))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ok\n" {
		fmt.Fprintf(os.Stderr, "read %q: %v\n", line, err)
		return exitFailed
	}
	return exitConnected
}

// helperUDP sends args[1] to args[0] in args[2] datagrams, 50ms apart
// (copies, in case the first waits on neighbour discovery).
func helperUDP(args []string) error {
	if len(args) != 3 {
		return errors.New("usage: udp ADDR:PORT PAYLOAD COUNT")
	}
	var n int
	if _, err := fmt.Sscan(args[2], &n); err != nil {
		return err
	}
	c, err := net.Dial("udp", args[0])
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
