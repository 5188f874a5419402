package ipset

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/block/iptables"
)

// The set types the backend uses.
const (
	typeHashIP     = "hash:ip"
	typeHashNet    = "hash:net"
	typeBitmapPort = "bitmap:port"
)

// The names of scanwarden's sets. Each family has its ban, trap, spared
// and exemption sets; the trap ports are shared by both families.
const (
	SetBan4    = "scanwarden-ban4"
	SetBan6    = "scanwarden-ban6"
	SetTrap4   = "scanwarden-trap4"
	SetTrap6   = "scanwarden-trap6"
	SetSpared4 = "scanwarden-spared4"
	SetSpared6 = "scanwarden-spared6"
	SetNever4  = "scanwarden-never4"
	SetNever6  = "scanwarden-never6"
	SetTCP     = "scanwarden-tcp"
	SetUDP     = "scanwarden-udp"
	// tmpSuffix names the set a set is rebuilt in before the two are
	// swapped (see rebuild).
	tmpSuffix = "-tmp"
)

// header is what describes a set: what the backend asks for when it
// creates one, and what the kernel says of an existing one.
type header struct {
	typ string
	// family is the set's family: unix.AF_INET or AF_INET6 for hash
	// types, 0 for bitmap:port.
	family uint8
	// timeout says whether elements have timeouts (the set was created
	// with a default timeout, here 0: permanent unless an element says
	// otherwise).
	timeout bool
	// maxElem bounds a hash set's elements.
	maxElem uint32
	// portFrom and portTo are a bitmap:port set's range.
	portFrom, portTo uint16
	// refs and entries are what the kernel reports: rules referring to
	// the set, and its elements. They are not compared.
	refs, entries uint32
}

// sameKind reports whether sets of headers h and o can be swapped: the
// kernel swaps sets of the same type and family only.
func (h header) sameKind(o header) bool { return h.typ == o.typ && h.family == o.family }

// matches reports whether an existing set of header h is what want asks
// for.
func (h header) matches(want header) bool {
	if !h.sameKind(want) {
		return false
	}
	if h.typ == typeBitmapPort {
		return h.portFrom == want.portFrom && h.portTo == want.portTo
	}
	return h.timeout == want.timeout && h.maxElem == want.maxElem
}

// String writes h as ipset list -t would: "hash:ip family inet timeout
// maxelem 1048576".
func (h header) String() string {
	switch h.typ {
	case typeBitmapPort:
		return fmt.Sprintf("%s range %d-%d", h.typ, h.portFrom, h.portTo)
	}
	fam := "inet"
	if h.family == unix.AF_INET6 {
		fam = "inet6"
	}
	s := fmt.Sprintf("%s family %s maxelem %d", h.typ, fam, h.maxElem)
	if h.timeout {
		s += " timeout"
	}
	return s
}

// member is one element of a set: an address (hash:ip, a full-length
// prefix), a network (hash:net) or a port (bitmap:port), and its
// remaining timeout in seconds (0: permanent, or a set without timeouts).
type member struct {
	prefix  netip.Prefix
	port    uint16
	timeout uint32
}

// setOps is the boundary between the Backend and the kernel's sets:
// netlinkSets, or a test's memory. Names are set names; a missing set is
// an error wrapping unix.ENOENT where an operation needs the set.
type setOps interface {
	// list returns the header of set name and, unless headerOnly, its
	// members (remaining timeouts as the kernel reports them). ok is
	// false, and err nil, when there is no such set.
	list(name string, headerOnly bool) (h header, members []member, ok bool, err error)
	// create makes set name as h describes it; it fails when a set of
	// that name exists.
	create(name string, h header) error
	// destroy removes set name; a missing set is nil. It fails while a
	// rule refers to the set.
	destroy(name string) error
	// swap exchanges the names (and so the contents) of two sets of the
	// same type and family; rules referring to the one go on referring
	// to the name they named.
	swap(a, b string) error
	// add puts members into set name, with their timeouts when timeouts
	// is set; a member already there gets the new timeout. One member is
	// one netlink message, many are batched.
	add(name string, timeouts bool, ms []member) error
	// del removes members from set name; absent members are not an
	// error.
	del(name string, ms []member) error
	// close releases the connection to the kernel.
	close() error
}

// isNoSet reports whether err says that a set does not exist.
func isNoSet(err error) bool { return errors.Is(err, unix.ENOENT) }

// family describes one address family's sets and firewall: its runner
// (nil when unsupported) and why there is none.
type family struct {
	f               iptables.Family
	nfproto         uint8
	ban, trap, nevr string
	spared          string
	r               iptables.Runner
	why             error
}

// banHeader is the ban set of fam: hash:ip with timeouts.
func banHeader(fam *family) header {
	return header{typ: typeHashIP, family: fam.nfproto, timeout: true, maxElem: banSetSize}
}

// trapHeader is the trap set of fam, of size elements; the spared set is
// its like.
func trapHeader(fam *family, size int) header {
	return header{typ: typeHashIP, family: fam.nfproto, timeout: true, maxElem: uint32(size)}
}

// neverHeader is the exemption set of fam: hash:net.
func neverHeader(fam *family) header {
	return header{typ: typeHashNet, family: fam.nfproto, maxElem: neverSetSize}
}

// portHeader is a trap port set: bitmap:port over every port.
var portHeader = header{typ: typeBitmapPort, portFrom: 0, portTo: 65535}

// addrMember is the member of a hash:ip set for a.
func addrMember(a netip.Addr, timeout uint32) member {
	return member{prefix: netip.PrefixFrom(a, a.BitLen()), timeout: timeout}
}

// byTimeout orders members longest-lasting first: permanent ones, then by
// remaining timeout, then by address (for a stable order).
func byTimeout(a, b member) int {
	if (a.timeout == 0) != (b.timeout == 0) {
		if a.timeout == 0 {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(b.timeout, a.timeout); c != 0 {
		return c
	}
	return a.prefix.Addr().Compare(b.prefix.Addr())
}

// fit returns the members of a set that go into a set of header want when
// it is rebuilt: without timeouts when want has none, and, when there are
// more than want holds, the longest-lasting ones.
func fit(ms []member, want header) []member {
	out := slices.Clone(ms)
	if !want.timeout {
		for i := range out {
			out[i].timeout = 0
		}
	}
	if want.typ != typeBitmapPort && uint32(len(out)) > want.maxElem {
		slices.SortFunc(out, byTimeout)
		out = out[:want.maxElem]
	}
	return out
}
