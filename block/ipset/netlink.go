package ipset

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The ipset netlink protocol, as the kernel's uapi
// (include/uapi/linux/netfilter/ipset/ip_set.h) numbers it.
const (
	ipsetProtocol = 6 // IPSET_PROTOCOL the library speaks too

	cmdList = 7  // IPSET_CMD_LIST
	cmdAdd  = 9  // IPSET_CMD_ADD
	cmdDel  = 10 // IPSET_CMD_DEL

	// attributes of a command
	attrProtocol = 1 // IPSET_ATTR_PROTOCOL, u8
	attrSetName  = 2 // IPSET_ATTR_SETNAME, string
	attrTypeName = 3 // IPSET_ATTR_TYPENAME, string
	attrFamily   = 5 // IPSET_ATTR_FAMILY, u8
	attrFlags    = 6 // IPSET_ATTR_FLAGS, be32
	attrData     = 7 // IPSET_ATTR_DATA, nested
	attrADT      = 8 // IPSET_ATTR_ADT, nested DATA attributes
	attrLineNo   = 9 // IPSET_ATTR_LINENO, be32 (required with ADT)

	// attributes inside DATA
	attrIP         = 1  // IPSET_ATTR_IP, nested IPADDR_IPV4/IPV6
	attrCIDR       = 3  // IPSET_ATTR_CIDR, u8
	attrPort       = 4  // IPSET_ATTR_PORT and PORT_FROM, be16
	attrPortTo     = 5  // IPSET_ATTR_PORT_TO, be16
	attrTimeout    = 6  // IPSET_ATTR_TIMEOUT, be32
	attrMaxElem    = 19 // IPSET_ATTR_MAXELEM, be32
	attrElements   = 24 // IPSET_ATTR_ELEMENTS, be32
	attrReferences = 25 // IPSET_ATTR_REFERENCES, be32
	attrIPv4       = 1  // IPSET_ATTR_IPADDR_IPV4 inside IP
	attrIPv6       = 2  // IPSET_ATTR_IPADDR_IPV6 inside IP

	// flagListHeader (IPSET_FLAG_LIST_HEADER) asks a list for the header
	// only.
	flagListHeader = 1 << 2

	nlaNested   = 1 << 15 // NLA_F_NESTED
	nlaNetOrder = 1 << 14 // NLA_F_NET_BYTEORDER
	nlaTypeMask = ^uint16(nlaNested | nlaNetOrder)

	// The ipset error numbers met here (IPSET_ERR_*).
	errProtocol = nl.IPSET_ERR_PROTOCOL
	errFindType = nl.IPSET_ERR_FIND_TYPE
	errBusy     = nl.IPSET_ERR_BUSY
	errTimeout  = nl.IPSET_ERR_TIMEOUT
	errHashFull = nl.IPSET_ERR_TYPE_SPECIFIC // IPSET_ERR_HASH_FULL, the first of the hash types'
)

// netlinkSets is setOps over netlink, in one network namespace: the
// single-element and set commands go through vishvananda/netlink's ipset
// functions; listing and batched additions and deletions, which the
// library does not offer (it sends one message per element, and its
// listing logs unknown attributes through the standard logger), are
// messages of this file, over the library's nl package, on a second
// socket.
type netlinkSets struct {
	h     *netlink.Handle
	socks map[int]*nl.SocketHandle
	// closed: close ran; a second Close closes nothing twice.
	closed bool
}

var _ setOps = (*netlinkSets)(nil)

// newNetlinkSets opens netlink sockets in the network namespace at path
// (a /run/netns/NAME or /proc/PID/ns/net file; "" is the caller's own)
// and checks that the kernel speaks ipset.
func newNetlinkSets(path string) (*netlinkSets, error) {
	ns := netns.None()
	if path != "" {
		var err error
		if ns, err = netns.GetFromPath(path); err != nil {
			return nil, fmt.Errorf("network namespace %s: %w", path, err)
		}
		defer ns.Close()
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_NETFILTER)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	tv := unix.NsecToTimeval(netlinkTimeout.Nanoseconds())
	if err := errors.Join(s.SetSendTimeout(&tv), s.SetReceiveTimeout(&tv)); err != nil {
		s.Close()
		h.Close()
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	n := &netlinkSets{h: h, socks: map[int]*nl.SocketHandle{unix.NETLINK_NETFILTER: {Socket: s}}}
	if err := safe(func() error { _, _, err := h.IpsetProtocol(); return err }); err != nil {
		_ = n.close()
		return nil, fmt.Errorf("the kernel does not answer ipset requests (CONFIG_IP_SET): %w", kernelError(err))
	}
	return n, nil
}

func (n *netlinkSets) close() error {
	if n.closed {
		return nil
	}
	n.closed = true
	n.h.Close()
	for _, s := range n.socks {
		s.Close()
	}
	return nil
}

// safe runs a library call, turning a panic into an error: the library
// asserts that every error of the kernel is a syscall.Errno, and a
// malformed answer must not bring the daemon down.
func safe(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("netlink: %v", p)
		}
	}()
	return f()
}

// kernelError turns an errno of the ipset subsystem into an error saying
// what it means; errors.Is still finds the errno.
func kernelError(err error) error {
	var no syscall.Errno
	var ie nl.IPSetError
	code := 0
	switch {
	case errors.As(err, &ie):
		code = int(ie)
	case errors.As(err, &no):
		code = int(no)
		if code >= nl.IPSET_ERR_PRIVATE {
			err = nl.IPSetError(code)
		}
	default:
		return err
	}
	what := ""
	switch code {
	case int(unix.ENOENT):
		what = "no such set"
	case int(unix.EEXIST):
		what = "the set exists"
	case errBusy:
		what = "the set is in use (a firewall rule refers to it)"
	case errTimeout:
		what = "the set has no timeout support"
	case errFindType:
		what = "the kernel lacks the set type"
	case errProtocol:
		what = "the kernel refused the message (ipset protocol)"
	case errHashFull:
		what = "the set is full"
	default:
		return err
	}
	return fmt.Errorf("%s (%w)", what, err)
}

func (n *netlinkSets) create(name string, h header) error {
	o := netlink.IpsetCreateOptions{Family: h.family, MaxElements: h.maxElem, PortFrom: h.portFrom, PortTo: h.portTo}
	if h.timeout {
		var zero uint32 // the default: permanent unless an element says otherwise
		o.Timeout = &zero
	}
	if err := safe(func() error { return n.h.IpsetCreate(name, h.typ, o) }); err != nil {
		return fmt.Errorf("creating set %s (%s): %w", name, h, kernelError(err))
	}
	return nil
}

func (n *netlinkSets) destroy(name string) error {
	err := safe(func() error { return n.h.IpsetDestroy(name) })
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("destroying set %s: %w", name, kernelError(err))
	}
	return nil
}

func (n *netlinkSets) swap(a, b string) error {
	if err := safe(func() error { return n.h.IpsetSwap(a, b) }); err != nil {
		return fmt.Errorf("swapping sets %s and %s: %w", a, b, kernelError(err))
	}
	return nil
}

func (n *netlinkSets) add(name string, timeouts bool, ms []member) error {
	if len(ms) == 1 && ms[0].prefix.IsValid() {
		e := entry(ms[0])
		if timeouts {
			e.Timeout = &ms[0].timeout
		}
		if err := safe(func() error { return n.h.IpsetAdd(name, e) }); err != nil {
			return fmt.Errorf("adding %s to set %s: %w", ms[0].prefix, name, kernelError(err))
		}
		return nil
	}
	return n.batch(cmdAdd, name, timeouts, ms)
}

func (n *netlinkSets) del(name string, ms []member) error {
	if len(ms) == 1 && ms[0].prefix.IsValid() {
		if err := safe(func() error { return n.h.IpsetDel(name, entry(ms[0])) }); err != nil {
			return fmt.Errorf("removing %s from set %s: %w", ms[0].prefix, name, kernelError(err))
		}
		return nil
	}
	return n.batch(cmdDel, name, false, ms)
}

// entry is the library's element for m, with Replace set: the kernel's
// "exist" flag, so that adding an element that is there sets its
// timeout, and deleting one that is not is no error.
func entry(m member) *netlink.IPSetEntry {
	a := m.prefix.Addr()
	e := &netlink.IPSetEntry{IP: net.IP(a.AsSlice()), Replace: true}
	if m.prefix.Bits() != a.BitLen() {
		e.CIDR = uint8(m.prefix.Bits())
	}
	return e
}

// batch adds (cmdAdd) or deletes (cmdDel) members with as few messages as
// maxBatchBytes allows, each carrying the "exist" flag (no NLM_F_EXCL).
// The kernel stops a message at its first failing element; then that
// message's elements are sent again one at a time, so that every element
// that can be added is, and the error names those that cannot (the first
// one a full set refused, and how many more).
func (n *netlinkSets) batch(cmd int, name string, timeouts bool, ms []member) error {
	var errs []error
	full := 0 // elements refused because the set is full
	for start := 0; start < len(ms); {
		var adt attrs
		end := start
		for end < len(ms) && len(adt.b) < maxBatchBytes {
			putMember(&adt, ms[end], timeouts)
			end++
		}
		if err := n.exec(cmd, name, adt.b); err != nil {
			if isNoSet(err) {
				return errors.Join(append(errs, memberError(cmd, name, ms[start], err))...)
			}
			for _, m := range ms[start:end] {
				var one attrs
				putMember(&one, m, timeouts)
				err := n.exec(cmd, name, one.b)
				switch {
				case err == nil:
				case errors.Is(err, nl.IPSetError(errHashFull)) && full > 0:
					full++ // said once, counted after
				default:
					if errors.Is(err, nl.IPSetError(errHashFull)) {
						full++
					}
					errs = append(errs, memberError(cmd, name, m, err))
				}
			}
		}
		start = end
	}
	if full > 1 {
		errs = append(errs, fmt.Errorf("and %d more not added to set %s: the set is full", full-1, name))
	}
	return errors.Join(errs...)
}

func memberError(cmd int, name string, m member, err error) error {
	what := m.prefix.String()
	if !m.prefix.IsValid() {
		what = fmt.Sprintf("port %d", m.port)
	}
	if cmd == cmdAdd {
		return fmt.Errorf("adding %s to set %s: %w", what, name, kernelError(err))
	}
	return fmt.Errorf("removing %s from set %s: %w", what, name, kernelError(err))
}

// exec sends one ADD or DEL message of the elements in adt (DATA
// attributes) to set name and waits for the kernel's answer.
func (n *netlinkSets) exec(cmd int, name string, adt []byte) error {
	var a attrs
	a.u8(attrProtocol, ipsetProtocol)
	a.str(attrSetName, name)
	a.be32(attrLineNo, 0)
	a.put(attrADT|nlaNested, adt)
	req := n.request(cmd, unix.NLM_F_ACK, a.b)
	return errnoError(req.ExecuteIter(unix.NETLINK_NETFILTER, 0, func([]byte) bool { return true }))
}

// request is an ipset message of cmd on the second socket: the netfilter
// header and the attributes in body.
func (n *netlinkSets) request(cmd int, flags uint16, body []byte) *nl.NetlinkRequest {
	req := &nl.NetlinkRequest{
		NlMsghdr: unix.NlMsghdr{Type: uint16(cmd | unix.NFNL_SUBSYS_IPSET<<8), Flags: unix.NLM_F_REQUEST | flags},
		Sockets:  n.socks,
	}
	// struct nfgenmsg: family, version, resource id (big endian)
	req.AddRawData([]byte{unix.AF_INET, nl.NFNETLINK_V0, 0, 0})
	req.AddRawData(body)
	return req
}

// errnoError makes an ipset errno an nl.IPSetError, as the library does.
func errnoError(err error) error {
	var no syscall.Errno
	if errors.As(err, &no) && int(no) >= nl.IPSET_ERR_PRIVATE {
		return nl.IPSetError(no)
	}
	return err
}

// putMember appends m as a DATA attribute.
func putMember(a *attrs, m member, timeouts bool) {
	d := a.nest(attrData)
	if m.prefix.IsValid() {
		ip := a.nest(attrIP)
		addr := m.prefix.Addr()
		if addr.Is4() {
			b := addr.As4()
			a.put(attrIPv4|nlaNetOrder, b[:])
		} else {
			b := addr.As16()
			a.put(attrIPv6|nlaNetOrder, b[:])
		}
		a.end(ip)
		if m.prefix.Bits() != addr.BitLen() {
			a.u8(attrCIDR, uint8(m.prefix.Bits()))
		}
	} else {
		a.be16(attrPort, m.port)
	}
	if timeouts {
		a.be32(attrTimeout, m.timeout)
	}
	a.end(d)
}

// list dumps set name (IPSET_CMD_LIST, with IPSET_FLAG_LIST_HEADER when
// headerOnly).
func (n *netlinkSets) list(name string, headerOnly bool) (header, []member, bool, error) {
	var a attrs
	a.u8(attrProtocol, ipsetProtocol)
	a.str(attrSetName, name)
	if headerOnly {
		a.be32(attrFlags, flagListHeader)
	}
	req := n.request(cmdList, unix.NLM_F_DUMP, a.b)
	var h header
	var ms []member
	var perr error
	err := errnoError(req.ExecuteIter(unix.NETLINK_NETFILTER, 0, func(msg []byte) bool {
		if perr == nil {
			perr = parseListMessage(msg, &h, &ms)
		}
		return true
	}))
	if errors.Is(err, unix.ENOENT) {
		return header{}, nil, false, nil
	}
	if err == nil {
		err = perr
	}
	if err != nil {
		return header{}, nil, false, fmt.Errorf("listing set %s: %w", name, kernelError(err))
	}
	return h, ms, true, nil
}

// parseListMessage reads one message of a set's dump (after the netlink
// header: the netfilter header and attributes) into h and ms.
func parseListMessage(msg []byte, h *header, ms *[]member) error {
	if len(msg) < 4 {
		return errors.New("short ipset message")
	}
	return eachAttr(msg[4:], func(typ uint16, v []byte) error {
		switch typ {
		case attrTypeName:
			h.typ = cString(v)
		case attrFamily:
			if len(v) < 1 {
				return errors.New("bad family attribute")
			}
			h.family = v[0]
		case attrData:
			return parseHeaderData(v, h)
		case attrADT:
			return eachAttr(v, func(typ uint16, v []byte) error {
				if typ != attrData {
					return nil
				}
				m, err := parseMember(v)
				if err != nil {
					return err
				}
				*ms = append(*ms, m)
				return nil
			})
		}
		return nil
	})
}

func parseHeaderData(b []byte, h *header) error {
	return eachAttr(b, func(typ uint16, v []byte) error {
		switch typ {
		case attrTimeout:
			h.timeout = true
		case attrMaxElem:
			return readBE32(v, &h.maxElem)
		case attrReferences:
			return readBE32(v, &h.refs)
		case attrElements:
			return readBE32(v, &h.entries)
		case attrPort:
			return readBE16(v, &h.portFrom)
		case attrPortTo:
			return readBE16(v, &h.portTo)
		}
		return nil
	})
}

func parseMember(b []byte) (member, error) {
	var m member
	var addr netip.Addr
	cidr := -1
	err := eachAttr(b, func(typ uint16, v []byte) error {
		switch typ {
		case attrIP:
			return eachAttr(v, func(typ uint16, v []byte) error {
				var ok bool
				if addr, ok = netip.AddrFromSlice(v); !ok || (typ == attrIPv4) != addr.Is4() {
					return fmt.Errorf("bad address attribute %x", v)
				}
				return nil
			})
		case attrCIDR:
			if len(v) < 1 {
				return errors.New("bad cidr attribute")
			}
			cidr = int(v[0])
		case attrPort:
			return readBE16(v, &m.port)
		case attrTimeout:
			return readBE32(v, &m.timeout)
		}
		return nil
	})
	if err != nil {
		return m, err
	}
	if addr.IsValid() {
		if cidr < 0 {
			cidr = addr.BitLen()
		}
		if m.prefix, err = addr.Prefix(cidr); err != nil {
			return m, err
		}
	}
	return m, nil
}

// eachAttr calls f with the type (without the nested and byte order
// flags) and value of each netlink attribute in b.
func eachAttr(b []byte, f func(typ uint16, v []byte) error) error {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask
		if l < 4 || l > len(b) {
			return fmt.Errorf("bad netlink attribute length %d", l)
		}
		if err := f(typ, b[4:l]); err != nil {
			return err
		}
		l = (l + 3) &^ 3
		if l > len(b) {
			break
		}
		b = b[l:]
	}
	return nil
}

func readBE32(v []byte, p *uint32) error {
	if len(v) < 4 {
		return errors.New("short 32-bit attribute")
	}
	*p = binary.BigEndian.Uint32(v)
	return nil
}

func readBE16(v []byte, p *uint16) error {
	if len(v) < 2 {
		return errors.New("short 16-bit attribute")
	}
	*p = binary.BigEndian.Uint16(v)
	return nil
}

func cString(v []byte) string {
	for i, c := range v {
		if c == 0 {
			return string(v[:i])
		}
	}
	return string(v)
}

// attrs builds netlink attributes, nested ones included.
type attrs struct{ b []byte }

// put appends an attribute of type typ (flags included) holding v.
func (a *attrs) put(typ uint16, v []byte) {
	a.b = binary.NativeEndian.AppendUint16(a.b, uint16(4+len(v)))
	a.b = binary.NativeEndian.AppendUint16(a.b, typ)
	a.b = append(a.b, v...)
	for len(a.b)%4 != 0 {
		a.b = append(a.b, 0)
	}
}

func (a *attrs) u8(typ uint16, v uint8) { a.put(typ, []byte{v}) }
func (a *attrs) str(typ uint16, s string) {
	a.put(typ, append([]byte(s), 0))
}
func (a *attrs) be16(typ uint16, v uint16) {
	a.put(typ|nlaNetOrder, binary.BigEndian.AppendUint16(nil, v))
}
func (a *attrs) be32(typ uint16, v uint32) {
	a.put(typ|nlaNetOrder, binary.BigEndian.AppendUint32(nil, v))
}

// nest starts a nested attribute of type typ and returns where; end
// closes it.
func (a *attrs) nest(typ uint16) int {
	at := len(a.b)
	a.put(typ|nlaNested, nil)
	return at
}

func (a *attrs) end(at int) {
	binary.NativeEndian.PutUint16(a.b[at:at+2], uint16(len(a.b)-at))
}
