// Command labsrv is the benign traffic of scanwarden's network-namespace lab
// (scripts/lab.sh): a server that answers HTTP and DNS-like UDP, and a
// client that keeps talking to it the way ordinary users do, each request
// on a new connection or from a new source port.
//
//	labsrv serve  -http ADDR:PORT[,ADDR:PORT...] -udp ADDR:PORT[,ADDR:PORT...]
//	labsrv client -http URL[,URL...] -udp ADDR:PORT[,ADDR:PORT...] -n N -interval D [-src ADDR]
//
// serve answers 200 "ok" to every HTTP request and answers every UDP
// datagram: a DNS query gets a NOERROR response carrying its question, any
// other datagram is echoed. It runs until SIGINT or SIGTERM.
//
// client makes N rounds (N=0: until SIGINT or SIGTERM); each round is one
// HTTP GET per URL on a new TCP connection and one DNS query per UDP target
// from a new socket, waiting for the answer. With -src every connection and
// datagram is sent from that address (one of the host's), as a scanner's
// fresh address would. It prints a summary on exit and exits 1 when any
// request failed or none was made, 2 on bad usage.
//
// It is lab tooling only: it is never pointed at anything but the lab's
// namespaces by the scripts.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  labsrv serve  -http ADDR:PORT[,...] -udp ADDR:PORT[,...]
  labsrv client -http URL[,...] -udp ADDR:PORT[,...] [-n N] [-interval D] [-timeout D] [-src ADDR]
`)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "client":
		err = client(os.Args[2:])
	case "-h", "-help", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "labsrv: unknown command %q\n", os.Args[1])
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "labsrv %s: %v\n", os.Args[1], err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// list splits a comma-separated flag value, dropping empty items.
func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// serve is the serve command: it listens on every -http and -udp address
// and answers there until SIGINT or SIGTERM, or until a listener fails,
// then shuts everything down. It reports each address it listens on, and
// "stopped" after a signal, on stderr.
func serve(args []string) error {
	httpAddrs, udpAddrs, err := parseServe(args)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	s := &servers{errc: make(chan error, 16)}
	for _, a := range httpAddrs {
		if err := s.startHTTP(a); err != nil {
			return err
		}
	}
	for _, a := range udpAddrs {
		if err := s.startUDP(a); err != nil {
			return err
		}
	}

	select {
	case <-ctx.Done():
	case err = <-s.errc:
	}
	s.shutdown()
	if err == nil {
		fmt.Fprintln(os.Stderr, "labsrv: stopped")
	}
	return err
}

// parseServe parses the flags of serve and returns its HTTP and UDP listen
// addresses.
func parseServe(args []string) (httpAddrs, udpAddrs []string, err error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	httpFlag := fs.String("http", "", "HTTP listen addresses, ADDR:PORT[,...]")
	udpFlag := fs.String("udp", "", "UDP listen addresses, ADDR:PORT[,...]")
	if err := fs.Parse(args); err != nil {
		return nil, nil, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, nil, usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	if *httpFlag == "" && *udpFlag == "" {
		return nil, nil, usageError{"nothing to serve: give -http and/or -udp"}
	}
	return list(*httpFlag), list(*udpFlag), nil
}

// servers are the listeners serve has started. A listener that fails
// sends its error on errc.
type servers struct {
	errc  chan error
	http  []*http.Server
	conns []net.PacketConn
	wg    sync.WaitGroup
}

// startHTTP listens on addr and serves HTTP there (answerOK) on a
// goroutine of its own, one request per connection.
func (s *servers) startHTTP(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(answerOK),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
	}
	// Every request on its own connection, as the client makes them.
	srv.SetKeepAlivesEnabled(false)
	s.http = append(s.http, srv)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.errc <- fmt.Errorf("http %s: %w", ln.Addr(), err)
		}
	}()
	fmt.Fprintf(os.Stderr, "labsrv: http on %s\n", ln.Addr())
	return nil
}

// answerOK is the HTTP handler: it reads (up to 64 KiB of) the request
// body and answers 200 "ok".
func answerOK(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<16))
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "ok\n")
}

// startUDP listens on addr and answers its datagrams (serveUDP) on a
// goroutine of its own.
func (s *servers) startUDP(addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("udp listen: %w", err)
	}
	s.conns = append(s.conns, pc)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := serveUDP(pc); !errors.Is(err, net.ErrClosed) {
			s.errc <- fmt.Errorf("udp %s: %w", pc.LocalAddr(), err)
		}
	}()
	fmt.Fprintf(os.Stderr, "labsrv: udp on %s\n", pc.LocalAddr())
	return nil
}

// shutdown shuts the HTTP servers down (giving each 2 seconds to finish
// its requests), closes the UDP sockets and waits for every listener's
// goroutine to end.
func (s *servers) shutdown() {
	for _, srv := range s.http {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.wg.Wait()
}

// serveUDP answers datagrams until reading fails; it returns that error
// (net.ErrClosed once the connection is closed for shutdown).
func serveUDP(pc net.PacketConn) error {
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		if _, err := pc.WriteTo(answer(buf[:n]), from); err != nil {
			fmt.Fprintf(os.Stderr, "labsrv: udp answer to %s: %v\n", from, err)
		}
	}
}

// DNS header fields used by answer and the client.
const (
	dnsHeaderLen = 12
	dnsQR        = 0x8000 // response
	dnsOpcode    = 0x7800
	dnsRD        = 0x0100 // recursion desired
	dnsRA        = 0x0080 // recursion available
	dnsFormErr   = 1
)

// answer returns the reply to one datagram. A DNS query with one question
// gets a NOERROR response with the question and no answers; a DNS-sized
// datagram whose question does not parse gets FORMERR; anything shorter
// than a DNS header is echoed.
func answer(q []byte) []byte {
	if len(q) < dnsHeaderLen || binary.BigEndian.Uint16(q[2:])&dnsQR != 0 {
		return append([]byte(nil), q...)
	}
	flags := binary.BigEndian.Uint16(q[2:])
	qlen, ok := questionLen(q)
	r := make([]byte, dnsHeaderLen, dnsHeaderLen+qlen)
	copy(r, q[:2]) // ID
	f := dnsQR | dnsRA | flags&(dnsOpcode|dnsRD)
	if !ok {
		binary.BigEndian.PutUint16(r[2:], f|dnsFormErr)
		return r
	}
	binary.BigEndian.PutUint16(r[2:], f)
	binary.BigEndian.PutUint16(r[4:], 1) // QDCOUNT
	return append(r, q[dnsHeaderLen:dnsHeaderLen+qlen]...)
}

// questionLen returns the length of the single question following the DNS
// header of q, and whether q holds exactly one well-formed question.
func questionLen(q []byte) (int, bool) {
	if binary.BigEndian.Uint16(q[4:]) != 1 {
		return 0, false
	}
	i := dnsHeaderLen
	for {
		if i >= len(q) {
			return 0, false
		}
		l := int(q[i])
		if l == 0 {
			i++
			break
		}
		if l > 63 {
			return 0, false
		}
		i += 1 + l
	}
	if i+4 > len(q) {
		return 0, false
	}
	return i + 4 - dnsHeaderLen, true
}

// query builds a DNS query for name (type A, class IN) with the given ID.
func query(id uint16, name string) []byte {
	b := make([]byte, dnsHeaderLen, 64)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], dnsRD)
	binary.BigEndian.PutUint16(b[4:], 1)
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(b, byte(len(label)))
		b = append(b, label...)
	}
	return append(b, 0, 0, 1, 0, 1)
}

type tally struct {
	ok, failed int
	lastErr    error
}

func (t *tally) add(err error) {
	if err != nil {
		t.failed++
		t.lastErr = err
		return
	}
	t.ok++
}

func (t *tally) String() string {
	s := fmt.Sprintf("%d/%d ok", t.ok, t.ok+t.failed)
	if t.lastErr != nil {
		s += fmt.Sprintf(" (last error: %v)", t.lastErr)
	}
	return s
}

func client(args []string) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	urls := fs.String("http", "", "URLs to GET, each on a new connection, URL[,...]")
	udps := fs.String("udp", "", "UDP servers to query, each from a new source port, ADDR:PORT[,...]")
	n := fs.Int("n", 10, "rounds of requests (0: until SIGINT or SIGTERM)")
	interval := fs.Duration("interval", 500*time.Millisecond, "pause between rounds")
	timeout := fs.Duration("timeout", 2*time.Second, "timeout of each request")
	src := fs.String("src", "", "source address of every request (default: the kernel's choice)")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	httpTargets, udpTargets := list(*urls), list(*udps)
	if len(httpTargets) == 0 && len(udpTargets) == 0 {
		return usageError{"nothing to do: give -http and/or -udp"}
	}
	if *n < 0 || *interval < 0 || *timeout <= 0 {
		return usageError{"-n and -interval must not be negative, -timeout must be positive"}
	}
	tcpDialer := &net.Dialer{Timeout: *timeout}
	udpDialer := &net.Dialer{Timeout: *timeout}
	if *src != "" {
		a, err := netip.ParseAddr(*src)
		if err != nil || a.Zone() != "" {
			return usageError{fmt.Sprintf("-src %q: not an IP address", *src)}
		}
		tcpDialer.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
		udpDialer.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	hc := &http.Client{
		Timeout: *timeout,
		// A new TCP connection for every request: no keep-alive, no proxy.
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: tcpDialer.DialContext},
	}
	var h, u tally
	start := time.Now()
	rounds := 0
	for ; *n == 0 || rounds < *n; rounds++ {
		if rounds > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(*interval):
			}
		}
		if ctx.Err() != nil {
			break
		}
		for _, url := range httpTargets {
			h.add(get(hc, url))
		}
		for _, addr := range udpTargets {
			u.add(ask(udpDialer, addr, *timeout))
		}
	}
	fmt.Printf("labsrv client: %d rounds in %.1fs: http %s, udp %s\n",
		rounds, time.Since(start).Seconds(), &h, &u)
	switch {
	case h.failed+u.failed > 0:
		return fmt.Errorf("%d requests failed", h.failed+u.failed)
	case h.ok+u.ok == 0:
		return errors.New("no request was made")
	}
	return nil
}

func get(hc *http.Client, url string) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)); err != nil {
		return fmt.Errorf("GET %s: body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// ask sends one DNS query from a new socket (so a new source port) made by
// d and waits for the answer with the same ID.
func ask(d *net.Dialer, addr string, timeout time.Duration) error {
	c, err := d.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := c.Write(query(id, "benign.lab.example.")); err != nil {
		return fmt.Errorf("udp %s: %w", addr, err)
	}
	buf := make([]byte, 1500)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return fmt.Errorf("udp %s: %w", addr, err)
		}
		if n >= dnsHeaderLen && binary.BigEndian.Uint16(buf) == id &&
			binary.BigEndian.Uint16(buf[2:])&dnsQR != 0 {
			return nil
		}
	}
}
