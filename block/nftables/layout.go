package nftables

// The table's objects, as the kernel is to have them (see doc.go).

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync/atomic"

	nft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/block"
)

// Names of the table's chains, sets and counter.
const (
	chainPrerouting = "prerouting"
	chainInput      = "input"
	chainTrap       = "trap"

	setBan4     = "ban4"
	setBan6     = "ban6"
	setTrap4    = "trap4"
	setTrap6    = "trap6"
	setSpared4  = "spared4"
	setSpared6  = "spared6"
	setNever4   = "never4"
	setNever6   = "never6"
	setTCPTraps = "tcp_traps"
	setUDPTraps = "udp_traps"

	counterOverflow = "trap_overflow"

	// tagPrefix starts the comment of every rule the backend writes.
	tagPrefix = "scanwarden:"
)

// family is what differs between the IPv4 and IPv6 halves of the table.
type family struct {
	nfproto          byte // NFPROTO_IPV4 or _IPV6
	name             string
	saddrOff, addrSz uint32 // source address in the network header
	key              nft.SetDatatype
	ban, trap, never string // set names
	spared           string
}

var (
	fam4 = family{nfproto: unix.NFPROTO_IPV4, name: "ip", saddrOff: 12, addrSz: 4, key: nft.TypeIPAddr,
		ban: setBan4, trap: setTrap4, never: setNever4, spared: setSpared4}
	fam6 = family{nfproto: unix.NFPROTO_IPV6, name: "ip6", saddrOff: 8, addrSz: 16, key: nft.TypeIP6Addr,
		ban: setBan6, trap: setTrap6, never: setNever6, spared: setSpared6}
	families = []family{fam4, fam6}
)

// setKind says what a set holds, and so what is kept when it is rebuilt.
type setKind int

const (
	kindBan    setKind = iota // addresses with timeouts, written by userspace
	kindTrap                  // addresses with timeouts, written by the kernel
	kindSpared                // addresses with timeouts, written by Release
	kindNever                 // address intervals
	kindPorts                 // ports
)

// setSpec is one set as it must be.
type setSpec struct {
	name string
	kind setKind
	key  nft.SetDatatype
	size uint32 // 0: no bound
}

func (s setSpec) timeout() bool {
	return s.kind == kindBan || s.kind == kindTrap || s.kind == kindSpared
}

func (s setSpec) dynamic() bool  { return s.kind == kindTrap }
func (s setSpec) interval() bool { return s.kind == kindNever }

// setSpecs are the table's sets, with trap and spared sets of trapSize
// elements.
func setSpecs(trapSize uint32) []setSpec {
	return []setSpec{
		{setBan4, kindBan, nft.TypeIPAddr, banSetSize},
		{setBan6, kindBan, nft.TypeIP6Addr, banSetSize},
		{setTrap4, kindTrap, nft.TypeIPAddr, trapSize},
		{setTrap6, kindTrap, nft.TypeIP6Addr, trapSize},
		{setSpared4, kindSpared, nft.TypeIPAddr, trapSize},
		{setSpared6, kindSpared, nft.TypeIP6Addr, trapSize},
		{setNever4, kindNever, nft.TypeIPAddr, 0},
		{setNever6, kindNever, nft.TypeIP6Addr, 0},
		{setTCPTraps, kindPorts, nft.TypeInetService, 0},
		{setUDPTraps, kindPorts, nft.TypeInetService, 0},
	}
}

// matches reports whether the kernel's set k is s: same key type, flags
// and bound. Anything else (an administrator's edit, an older layout) is
// rebuilt.
func (s setSpec) matches(k *nft.Set) bool {
	return k.KeyType.GetNFTMagic() == s.key.GetNFTMagic() && k.KeyType.Bytes == s.key.Bytes &&
		k.HasTimeout == s.timeout() && k.Dynamic == s.dynamic() && k.Interval == s.interval() &&
		!k.IsMap && !k.Constant && !k.Anonymous && !k.Concatenation && k.Timeout == 0 &&
		k.Size == s.size
}

// setIDs numbers the sets a transaction creates (the kernel wants an ID
// unique within the batch). Ours, not the library's global counter, which
// is not safe for concurrent use.
var setIDs atomic.Uint32

// set returns the nftables Set of s in t, with a fresh ID for creating it.
func (s setSpec) set(t *nft.Table) *nft.Set {
	return &nft.Set{
		Table: t, ID: setIDs.Add(1), Name: s.name, KeyType: s.key,
		HasTimeout: s.timeout(), Dynamic: s.dynamic(), Interval: s.interval(), Size: s.size,
	}
}

// ref returns a Set value naming the existing set name in t, for element
// operations.
func ref(t *nft.Table, s setSpec) *nft.Set {
	return &nft.Set{Table: t, Name: s.name, KeyType: s.key, HasTimeout: s.timeout(), Interval: s.interval()}
}

// ruleSpec is one rule as it must be: its expressions and the comment that
// identifies it.
type ruleSpec struct {
	name  string
	exprs []expr.Any
}

// tag is the rule's comment: "scanwarden:NAME#HASH", the hash over its
// expressions, so that a rule that was changed, or written by an older
// version with other expressions, is told apart from the one wanted.
func (r ruleSpec) tag() string {
	h := fnv.New32a()
	for _, e := range r.exprs {
		b, err := expr.Marshal(byte(nft.TableFamilyINet), e)
		if err != nil {
			// Our own expressions always marshal; if one does not, the
			// tag never matches and the rule is rewritten (and the
			// write reports the error).
			return tagPrefix + r.name + "#invalid"
		}
		h.Write(b)
	}
	return fmt.Sprintf("%s%s#%08x", tagPrefix, r.name, h.Sum32())
}

// userData is the rule's comment in nft's user data format, so that
// `nft list ruleset` shows it.
func (r ruleSpec) userData() []byte {
	return userdata.AppendString(nil, userdata.TypeComment, r.tag())
}

// ruleTag returns the comment of a kernel rule ("" when it has none).
func ruleTag(r *nft.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return strings.TrimRight(s, "\x00")
}

// Expression builders, all working in register 1.

func matchFamily(f family) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f.nfproto}},
	}
}

func loadSaddr(f family) expr.Any {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: f.saddrOff, Len: f.addrSz}
}

func lookup(set string) expr.Any { return &expr.Lookup{SourceRegister: 1, SetName: set} }

func verdict(k expr.VerdictKind) expr.Any { return &expr.Verdict{Kind: k} }

// saddrIn is "ip saddr @set" (or ip6).
func saddrIn(f family, set string) []expr.Any {
	return append(matchFamily(f), loadSaddr(f), lookup(set))
}

// TCP flag bits, in the flags byte of the TCP header (offset 13).
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// tcpFlags is "tcp flags & mask == want" (on a TCP segment).
func tcpFlags(mask, want byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{mask}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{want}},
	}
}

// l4proto is "meta l4proto proto".
func l4proto(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

// dportIn is "th dport @set".
func dportIn(set string) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		lookup(set),
	}
}

// ctNewOrInvalid is "ct state new,invalid": a packet of no connection
// conntrack knows (the first of one it picks up, or one it refuses).
func ctNewOrInvalid() []expr.Any {
	zero := make([]byte, 4)
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, expr.CtStateBitNEW|expr.CtStateBitINVALID), Xor: zero},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: zero},
	}
}

// catchMatch is the match of catch c (see block.TrapCatches) in family f:
//
//	tcp      tcp flags & ack == 0 tcp dport @tcp_traps
//	udp      udp dport @udp_traps
//	stealth  tcp flags & (syn|rst|ack) == 0
//	ack      tcp flags & (syn|rst|ack) == ack tcp dport @tcp_traps ct state new,invalid
func catchMatch(f family, c block.TrapCatch) []expr.Any {
	e := matchFamily(f)
	switch c {
	case block.CatchTCP:
		e = slices.Concat(e, l4proto(unix.IPPROTO_TCP), tcpFlags(tcpACK, 0), dportIn(setTCPTraps))
	case block.CatchUDP:
		e = slices.Concat(e, l4proto(unix.IPPROTO_UDP), dportIn(setUDPTraps))
	case block.CatchStealth:
		e = slices.Concat(e, l4proto(unix.IPPROTO_TCP), tcpFlags(tcpSYN|tcpRST|tcpACK, 0))
	case block.CatchACK:
		e = slices.Concat(e, l4proto(unix.IPPROTO_TCP), tcpFlags(tcpSYN|tcpRST|tcpACK, tcpACK), dportIn(setTCPTraps), ctNewOrInvalid())
	default:
		panic("nftables: unknown catch " + string(c))
	}
	return e
}

// preroutingRules are the rules of the prerouting chain: loopback is
// accepted (the host's own traffic, from addresses that are never
// blocked), then what the ban and trap sets hold is dropped.
func preroutingRules() []ruleSpec {
	rs := []ruleSpec{{"accept-lo", []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIF, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, loopbackIndex)},
		verdict(expr.VerdictAccept),
	}}}
	for _, f := range families {
		rs = append(rs, ruleSpec{"drop-" + f.ban, append(saddrIn(f, f.ban), verdict(expr.VerdictDrop))})
	}
	for _, f := range families {
		rs = append(rs, ruleSpec{"drop-" + f.trap, append(saddrIn(f, f.trap), verdict(expr.VerdictDrop))})
	}
	return rs
}

// inputRules are the rules of the input chain: with jump, go through the
// trap's catch; none otherwise.
func inputRules(jump bool) []ruleSpec {
	if jump {
		return []ruleSpec{jumpRule()}
	}
	return nil
}

func jumpRule() ruleSpec {
	return ruleSpec{"jump-trap", []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chainTrap}}}
}

// trapRules are the rules of the trap chain for t: loopback, the
// exemptions and the spared sources return; then, for each catch (see
// block.TrapCatches) and family, a caught packet adds its source to the trap set,
// with the timeout holdTimeout(t.Hold), and is dropped (an ACK outside
// any connection returns instead: it goes on to the host, whose reset
// userspace sees); one whose add failed (the set is full) is counted,
// and dropped or let through the same way, without holding its source.
func trapRules(t *block.Trap) []ruleSpec {
	lo := make([]byte, unix.IFNAMSIZ)
	copy(lo, "lo")
	rs := []ruleSpec{
		{"return-lo", []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: lo},
			verdict(expr.VerdictReturn),
		}},
	}
	for _, f := range families {
		rs = append(rs, ruleSpec{"return-" + f.never, append(saddrIn(f, f.never), verdict(expr.VerdictReturn))})
	}
	for _, f := range families {
		rs = append(rs, ruleSpec{"return-" + f.spared, append(saddrIn(f, f.spared), verdict(expr.VerdictReturn))})
	}
	timeout := holdTimeout(t.Hold)
	for _, f := range families {
		for _, c := range block.TrapCatches {
			if !t.Armed(c) {
				continue
			}
			name := string(c) + "-" + f.name
			v := verdict(expr.VerdictDrop)
			if !c.Drops() {
				v = verdict(expr.VerdictReturn)
			}
			rs = append(rs,
				ruleSpec{"trap-" + name, append(catchMatch(f, c),
					loadSaddr(f),
					&expr.Dynset{SrcRegKey: 1, SetName: f.trap, Operation: uint32(unix.NFT_DYNSET_OP_ADD), Timeout: timeout},
					v)},
				ruleSpec{"overflow-" + name, append(catchMatch(f, c),
					&expr.Objref{Type: int(nft.ObjTypeCounter), Name: counterOverflow},
					v)},
			)
		}
	}
	return rs
}

// portElems returns ports as inet_service elements.
func portElems(ports []uint16) []nft.SetElement {
	out := make([]nft.SetElement, 0, len(ports))
	for _, p := range ports {
		out = append(out, nft.SetElement{Key: binary.BigEndian.AppendUint16(nil, p)})
	}
	return out
}
