package ipset

import (
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// A member written as the kernel expects it reads back the same, and the
// encoding is the kernel's (checked byte by byte for one IPv4 element).
func TestMemberEncoding(t *testing.T) {
	for _, m := range []member{
		addrMember(netip.MustParseAddr("198.51.100.7"), 3600),
		addrMember(netip.MustParseAddr("fd00:77::7"), 0),
		{prefix: netip.MustParsePrefix("203.0.113.0/24")},
		{prefix: netip.MustParsePrefix("fd00:77::/64")},
		{port: 65535},
	} {
		var a attrs
		putMember(&a, m, m.timeout != 0)
		var got []member
		err := eachAttr(a.b, func(typ uint16, v []byte) error {
			if typ != attrData {
				t.Errorf("%v: attribute %d, want DATA", m, typ)
			}
			p, err := parseMember(v)
			got = append(got, p)
			return err
		})
		if err != nil || len(got) != 1 || got[0] != m {
			t.Errorf("%+v read back as %+v, %v", m, got, err)
		}
	}
	var a attrs
	putMember(&a, addrMember(netip.MustParseAddr("198.51.100.7"), 3600), true)
	want := []byte{
		24, 0, 7, 0x80, // DATA, nested
		12, 0, 1, 0x80, // IP, nested
		8, 0, 1, 0x40, 198, 51, 100, 7, // IPADDR_IPV4, network order
		8, 0, 6, 0x40, 0, 0, 0x0e, 0x10, // TIMEOUT 3600, network order
	}
	if string(a.b) != string(want) {
		t.Errorf("encoding:\n% x\nwant\n% x", a.b, want)
	}
}

// A listing message (as the kernel writes one: the netfilter header, the
// set's name, type and family, its header data and its members) is read
// into a header and members.
func TestParseListMessage(t *testing.T) {
	var a attrs
	a.u8(attrProtocol, ipsetProtocol)
	a.str(attrSetName, SetBan4)
	a.str(attrTypeName, typeHashIP)
	a.u8(4, 6) // revision
	a.u8(attrFamily, unix.AF_INET)
	d := a.nest(attrData)
	a.be32(attrTimeout, 0)
	a.be32(attrMaxElem, 1<<20)
	a.u8(21, 12) // bucket size: unknown attributes are skipped
	a.be32(attrReferences, 1)
	a.be32(attrElements, 2)
	a.end(d)
	adt := a.nest(attrADT)
	putMember(&a, addrMember(netip.MustParseAddr("198.51.100.7"), 60), true)
	putMember(&a, addrMember(netip.MustParseAddr("198.51.100.8"), 0), true)
	a.end(adt)
	msg := append([]byte{unix.AF_INET, 0, 0, 0}, a.b...)
	var h header
	var ms []member
	if err := parseListMessage(msg, &h, &ms); err != nil {
		t.Fatal(err)
	}
	if want := (header{typ: typeHashIP, family: unix.AF_INET, timeout: true, maxElem: 1 << 20, refs: 1, entries: 2}); h != want {
		t.Errorf("header %+v, want %+v", h, want)
	}
	if len(ms) != 2 || ms[0].timeout != 60 || ms[1].prefix.Addr() != netip.MustParseAddr("198.51.100.8") {
		t.Errorf("members %+v", ms)
	}
	// damage is an error, not a panic
	for cut := 5; cut < len(msg); cut += 7 {
		bad := append([]byte(nil), msg[:cut]...)
		bad = append(bad, 0xff, 0xff, 0, 0)
		_ = parseListMessage(bad, &h, &ms)
	}
	if err := parseListMessage(append(msg[:4:4], 200, 0, 1, 0), &h, &ms); err == nil {
		t.Error("an attribute longer than the message: no error")
	}
}

func TestErrorText(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
		is   error
	}{
		{syscall.Errno(errHashFull), "the set is full", nl.IPSetError(errHashFull)},
		{nl.IPSetError(errBusy), "in use", nl.IPSetError(errBusy)},
		{unix.ENOENT, "no such set", unix.ENOENT},
		{unix.EPERM, "operation not permitted", unix.EPERM},
	} {
		err := kernelError(c.err)
		if !strings.Contains(err.Error(), c.want) || !errors.Is(err, c.is) {
			t.Errorf("kernelError(%v) = %v, want %q, wrapping %v", c.err, err, c.want, c.is)
		}
	}
}
