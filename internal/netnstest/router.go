package netnstest

// Router labs: the "victim" role forwards between its clients and a host
// behind it, as a router, a container host publishing ports or a host of
// bridged VMs does, so that a backend's rules can be shown to act on
// forwarded and DNATed traffic and before connection tracking.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Inside is the host behind the victim in a router lab.
type Inside struct {
	Role   string         // the host's role
	Port   string         // the victim's end of the link (the host's end is its eth0)
	Victim []netip.Prefix // the victim's addresses on the link, one per family, with their networks
	Addrs  []netip.Prefix // the host's addresses, with their networks
}

// WireInside links the victim to in.Role with a veth pair, turns on IPv4
// and IPv6 forwarding in the victim, and routes between in.Role and the
// clients: in.Role reaches each of the networks outside through the
// victim's address of its family on the link, and each client reaches the
// networks of in.Addrs through gateways (the victim's addresses on the
// clients' side, one per family). Nothing gets a default route. It waits
// until the link is up.
//
// The lab's interfaces have no IPv6 link-local address (see New), and
// without one the kernel solicits no neighbour for a packet it forwards
// (its solicitation would have no source): the victim is given the IPv6
// neighbours of in.Role and of the clients as permanent entries.
func (l *Lab) WireInside(in Inside, outside []netip.Prefix, gateways []netip.Addr, clients ...string) {
	l.t.Helper()
	l.veth(Link{Role: in.Role, Port: in.Port})
	l.Run("victim", "sysctl", "-q", "-w", "net.ipv6.conf."+in.Port+".addr_gen_mode=1", "net.ipv6.conf."+in.Port+".accept_dad=0",
		"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	l.addPrefixes(in.Role, "eth0", in.Addrs)
	l.Run(in.Role, "ip", "link", "set", "eth0", "up")
	l.addPrefixes("victim", in.Port, in.Victim)
	l.Run("victim", "ip", "link", "set", in.Port, "up")
	l.waitLinks(in.Port, Link{Role: in.Role})
	var batch strings.Builder
	for _, p := range outside {
		gw, ok := sameFamily(in.Victim, p.Addr())
		if !ok {
			l.t.Fatalf("no address of the victim on %s for %v", in.Port, p)
		}
		fmt.Fprintf(&batch, "route add %s via %s\n", p.Masked(), gw.Addr())
	}
	l.RunInput(in.Role, batch.String(), "ip", "-batch", "-")
	for _, c := range clients {
		batch.Reset()
		for _, p := range in.Addrs {
			var gw netip.Addr
			for _, g := range gateways {
				if g.Is4() == p.Addr().Is4() {
					gw = g
				}
			}
			if !gw.IsValid() {
				l.t.Fatalf("no gateway for %v", p)
			}
			fmt.Fprintf(&batch, "route add %s via %s\n", p.Masked(), gw)
		}
		l.RunInput(c, batch.String(), "ip", "-batch", "-")
	}
	for _, r := range append([]string{in.Role}, clients...) {
		l.pinNeighbours(r)
	}
}

// pinNeighbours makes role and the victim IPv6 neighbours of each other
// for good: the victim gets role's global IPv6 addresses on its eth0,
// with that link's address, on the device it routes them to; role gets
// the victim's global IPv6 addresses on that device, with its address.
// (A client the backend then blocks could not resolve the victim either:
// its solicitations are dropped like the rest of what it sends.)
func (l *Lab) pinNeighbours(role string) {
	l.t.Helper()
	mine := l.globals6(role, "eth0")
	if len(mine) == 0 {
		return
	}
	var routes []struct {
		Dev string `json:"dev"`
	}
	if err := json.Unmarshal([]byte(l.Run("victim", "ip", "-j", "-6", "route", "get", mine[0])), &routes); err != nil || len(routes) != 1 {
		l.t.Fatalf("the victim's route to %s: %v %v", mine[0], routes, err)
	}
	dev := routes[0].Dev
	var batch strings.Builder
	mac := strings.TrimSpace(l.Run(role, "cat", "/sys/class/net/eth0/address"))
	for _, a := range mine {
		fmt.Fprintf(&batch, "neigh replace %s lladdr %s dev %s nud permanent\n", a, mac, dev)
	}
	l.RunInput("victim", batch.String(), "ip", "-batch", "-")
	batch.Reset()
	mac = strings.TrimSpace(l.Run("victim", "cat", "/sys/class/net/"+dev+"/address"))
	for _, a := range l.globals6("victim", dev) {
		fmt.Fprintf(&batch, "neigh replace %s lladdr %s dev eth0 nud permanent\n", a, mac)
	}
	l.RunInput(role, batch.String(), "ip", "-batch", "-")
}

// globals6 returns the global IPv6 addresses of dev in role.
func (l *Lab) globals6(role, dev string) []string {
	l.t.Helper()
	var links []struct {
		Addrs []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(l.Run(role, "ip", "-j", "-6", "addr", "show", "dev", dev, "scope", "global")), &links); err != nil {
		l.t.Fatalf("the IPv6 addresses of %s in %s: %v", dev, role, err)
	}
	var out []string
	for _, link := range links {
		for _, a := range link.Addrs {
			out = append(out, a.Local)
		}
	}
	return out
}

// sameFamily returns the first of ps of a's family.
func sameFamily(ps []netip.Prefix, a netip.Addr) (netip.Prefix, bool) {
	for _, p := range ps {
		if p.Addr().Is4() == a.Is4() {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// addPrefixes gives dev in role the addresses ps with their prefix
// lengths (IPv6 ones without DAD), in one batch.
func (l *Lab) addPrefixes(role, dev string, ps []netip.Prefix) {
	l.t.Helper()
	var batch strings.Builder
	for _, p := range ps {
		if p.Addr().Is4() {
			fmt.Fprintf(&batch, "addr add %s dev %s\n", p, dev)
		} else {
			fmt.Fprintf(&batch, "addr add %s dev %s nodad\n", p, dev)
		}
	}
	l.RunInput(role, batch.String(), "ip", "-batch", "-")
}

// Publish makes the victim forward TCP and UDP to port of its address dst
// on to `to`, as a router or a container host publishes a service: a DNAT
// rule in the nat table's PREROUTING, through iptables or ip6tables by
// to's family (a table of iptables', which no backend's Flush touches).
// It skips the test when the command is missing.
func (l *Lab) Publish(dst netip.Addr, port int, to netip.AddrPort) {
	l.t.Helper()
	bin, target := l.tool(to.Addr()), to.String()
	for _, proto := range []string{"tcp", "udp"} {
		l.Run("victim", bin, "-t", "nat", "-A", "PREROUTING", "-d", dst.String(), "-p", proto, "--dport", strconv.Itoa(port),
			"-j", "DNAT", "--to-destination", target)
	}
}

// ConntrackCount returns how many connections the kernel tracks in role's
// namespace (/proc/sys/net/netfilter/nf_conntrack_count, which is the
// namespace's own). It skips the test when the kernel has no connection
// tracking to read.
func (l *Lab) ConntrackCount(role string) int {
	l.t.Helper()
	out, err := l.Try(role, "cat", "/proc/sys/net/netfilter/nf_conntrack_count")
	if err != nil {
		l.t.Skipf("no connection tracking to count (nf_conntrack): %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		l.t.Fatalf("nf_conntrack_count in %s: %q: %v", role, out, err)
	}
	return n
}

// RulesIn returns `bin -t table -S [chain]` in the victim, without
// iptables-nft's "# Warning" lines.
func (l *Lab) RulesIn(bin, table string, chain ...string) ([]string, error) {
	out, err := l.Try("victim", bin, append([]string{"-t", table, "-S"}, chain...)...)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, s := range strings.Split(strings.TrimSpace(out), "\n") {
		if s != "" && !strings.HasPrefix(s, "#") {
			lines = append(lines, s)
		}
	}
	return lines, nil
}

// MustRulesIn is RulesIn that fails the test on an error.
func (l *Lab) MustRulesIn(bin, table string, chain ...string) []string {
	l.t.Helper()
	r, err := l.RulesIn(bin, table, chain...)
	if err != nil {
		l.t.Fatal(err)
	}
	return r
}

// floodFirstPort is the first source port of a flood: each packet of a
// flood comes from the next one, so that each is a connection of its own
// to connection tracking.
const floodFirstPort = 20000

// Flood sends n TCP SYNs (proto "tcp") or UDP datagrams ("udp") from
// role's src to port of dst through the flood helper, each from another
// source port (see Flood).
func (l *Lab) Flood(role, proto string, src, dst netip.Addr, port, n int) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.CmdTimeout)
	defer cancel()
	c := l.HelperCmd(ctx, role, "flood", proto, src.String(), dst.String(), strconv.Itoa(port), strconv.Itoa(n))
	if out, err := c.CombinedOutput(); err != nil {
		l.t.Fatalf("%s flood from %v to %v port %d: %v: %s", proto, src, dst, port, err, out)
	}
}

// Flood is the flood helper, "PROTO SRC DST PORT N": it sends N TCP SYNs
// (PROTO tcp) or UDP datagrams (udp) from SRC to PORT of DST through a
// raw socket, from source ports floodFirstPort onwards (one connection
// each), as fast as the socket takes them.
func Flood(args []string) error {
	if len(args) != 5 || (args[0] != "tcp" && args[0] != "udp") {
		return errors.New("usage: flood tcp|udp SRC DST PORT N")
	}
	proto := args[0]
	src, err := netip.ParseAddr(args[1])
	if err != nil {
		return err
	}
	dst, err := netip.ParseAddr(args[2])
	if err != nil {
		return err
	}
	port, err := strconv.ParseUint(args[3], 10, 16)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(args[4])
	if err != nil || n < 1 || floodFirstPort+n > 65536 {
		return fmt.Errorf("bad count %q", args[4])
	}
	if src.Is4() != dst.Is4() {
		return fmt.Errorf("%v and %v are of different families", src, dst)
	}
	domain := unix.AF_INET6
	var sa, da unix.Sockaddr = &unix.SockaddrInet6{Addr: src.As16()}, &unix.SockaddrInet6{Addr: dst.As16()}
	if dst.Is4() {
		domain = unix.AF_INET
		sa, da = &unix.SockaddrInet4{Addr: src.As4()}, &unix.SockaddrInet4{Addr: dst.As4()}
	}
	ipproto := unix.IPPROTO_TCP
	if proto == "udp" {
		ipproto = unix.IPPROTO_UDP
	}
	fd, err := unix.Socket(domain, unix.SOCK_RAW|unix.SOCK_CLOEXEC, ipproto)
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind %v: %w", src, err)
	}
	for i := range n {
		sport := uint16(floodFirstPort + i)
		seg := tcpSegment(src, dst, sport, uint16(port), 1<<1) // SYN
		if proto == "udp" {
			seg = udpDatagram(src, dst, sport, uint16(port), []byte("flood!"))
		}
		err := unix.Sendto(fd, seg, 0, da)
		for errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) {
			time.Sleep(time.Millisecond)
			err = unix.Sendto(fd, seg, 0, da)
		}
		if err != nil {
			return fmt.Errorf("sendto %v: %w", dst, err)
		}
	}
	return nil
}

// udpDatagram builds a UDP header and payload (of an even length) with
// its checksum over the pseudo-header of src and dst.
func udpDatagram(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	d := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(d[0:], sport)
	binary.BigEndian.PutUint16(d[2:], dport)
	binary.BigEndian.PutUint16(d[4:], uint16(8+len(payload)))
	d = append(d, payload...)
	binary.BigEndian.PutUint16(d[6:], checksum(src, dst, unix.IPPROTO_UDP, d))
	return d
}

// trackComment marks the rules of WatchTracked.
const trackComment = "netnstest-tracked"

// WatchTracked makes the victim count, for each of srcs, the packets
// from it that connection tracking has an entry for (new or found): a
// rule without target per source in the mangle table's PREROUTING
// (priority -150, after conntrack at -200), matching --ctstate
// NEW,ESTABLISHED,RELATED, through iptables or ip6tables. A packet
// dropped before conntrack never reaches it. Tracked reads the counts.
// It skips the test when the command is missing.
func (l *Lab) WatchTracked(srcs ...netip.Addr) {
	l.t.Helper()
	for _, a := range srcs {
		bin := l.tool(a)
		l.Run("victim", bin, "-t", "mangle", "-A", "PREROUTING", "-s", a.String(), "-m", "conntrack", "--ctstate", "NEW,ESTABLISHED,RELATED",
			"-m", "comment", "--comment", trackComment)
	}
}

// Tracked returns how many packets from src connection tracking had an
// entry for since WatchTracked.
func (l *Lab) Tracked(src netip.Addr) uint64 {
	l.t.Helper()
	out := l.Run("victim", l.tool(src), "-t", "mangle", "-v", "-S", "PREROUTING")
	want := "-s " + netip.PrefixFrom(src, src.BitLen()).String() + " "
	for line := range strings.Lines(out) {
		if !strings.Contains(line, want) || !strings.Contains(line, trackComment) {
			continue
		}
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "-c" {
				n, err := strconv.ParseUint(f[i+1], 10, 64)
				if err != nil {
					l.t.Fatalf("counters of %q: %v", line, err)
				}
				return n
			}
		}
	}
	l.t.Fatalf("no counting rule of %v in the victim's mangle PREROUTING:\n%s", src, out)
	return 0
}

// tool returns iptables or ip6tables, by a's family, skipping the test
// when it is missing.
func (l *Lab) tool(a netip.Addr) string {
	l.t.Helper()
	bin := "iptables"
	if a.Is6() {
		bin = "ip6tables"
	}
	if _, err := exec.LookPath(bin); err != nil {
		l.t.Skipf("%s is missing, for the test's own rules: %v", bin, err)
	}
	return bin
}

// ServeIn is Serve in role's namespace instead of the victim's.
func (l *Lab) ServeIn(role string, ports ...int) *Server {
	l.t.Helper()
	return l.serveIn(role, ports...)
}

// BridgeNetfilter turns on or off, in role, br_netfilter's passing of
// bridged IPv4 and IPv6 frames through the IP hooks
// (net.bridge.bridge-nf-call-iptables and -ip6tables, the namespace's
// own settings). It skips the test when the kernel has no br_netfilter.
func (l *Lab) BridgeNetfilter(role string, on bool) {
	l.t.Helper()
	if _, err := os.Stat("/proc/sys/net/bridge"); err != nil {
		l.t.Skipf("no br_netfilter in the kernel (net.bridge.bridge-nf-call-iptables): %v", err)
	}
	v := "0"
	if on {
		v = "1"
	}
	l.Run(role, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables="+v, "net.bridge.bridge-nf-call-ip6tables="+v)
}
