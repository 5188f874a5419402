package nftables

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
	"time"

	nft "github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/nlmsg"
)

// TestAddBatchMatchesLibrary: Block's own batch is what google/nftables
// sends for the same add (SetAddElements and Flush), sequence numbers
// and port ids aside, with a timeout and without one, IPv4 and IPv6.
func TestAddBatchMatchesLibrary(t *testing.T) {
	for _, c := range []struct {
		set     string
		key     []byte
		timeout time.Duration
	}{
		{setBan4, []byte{198, 51, 100, 7}, 90 * time.Second},
		{setBan6, bytes.Repeat([]byte{0xfd}, 16), 0},
		{setBan4, []byte{198, 51, 100, 8}, 1500 * time.Millisecond},
	} {
		var lib []byte
		conn := recordingConn(t, &lib)
		fam := fam4
		if len(c.key) == 16 {
			fam = fam6
		}
		tbl := &nft.Table{Name: DefaultTable, Family: nft.TableFamilyINet}
		conn.SetAddElements(ref(tbl, setSpec{name: c.set, kind: kindBan, key: fam.key}), []nft.SetElement{{Key: c.key, Timeout: c.timeout}})
		conn.Flush()
		ours := addBatch(DefaultTable, c.set, c.key, c.timeout, 7)
		if got, want := anonymous(t, ours), anonymous(t, lib); !bytes.Equal(got, want) {
			t.Errorf("%s %x %v:\nours %x\nlib  %x", c.set, c.key, c.timeout, got, want)
		}
		// and the sequence numbers: begin, add, end
		var seqs []uint32
		for b := ours; len(b) >= unix.NLMSG_HDRLEN; b = b[nlmsg.Align(int(binary.NativeEndian.Uint32(b))):] {
			seqs = append(seqs, binary.NativeEndian.Uint32(b[8:12]))
		}
		if len(seqs) != 3 || seqs[0] != 7 || seqs[1] != 8 || seqs[2] != 9 {
			t.Errorf("sequence numbers %v, want 7 8 9", seqs)
		}
	}
}

// anonymous returns the messages of b with their sequence number and port
// id zeroed.
func anonymous(t *testing.T, b []byte) []byte {
	t.Helper()
	out := bytes.Clone(b)
	for rest := out; len(rest) > 0; {
		if len(rest) < unix.NLMSG_HDRLEN {
			t.Fatalf("trailing %d bytes", len(rest))
		}
		l := nlmsg.Align(int(binary.NativeEndian.Uint32(rest)))
		clear(rest[8:16])
		rest = rest[min(l, len(rest)):]
	}
	return out
}

// TestDelBatchMatchesLibrary: Release's own batch is what google/nftables
// sends for the same delete (SetDeleteElements and Flush), sequence
// numbers and port ids aside, IPv4 and IPv6.
func TestDelBatchMatchesLibrary(t *testing.T) {
	for _, c := range []struct {
		set string
		key []byte
	}{
		{setTrap4, []byte{198, 51, 100, 7}},
		{setTrap6, bytes.Repeat([]byte{0xfd}, 16)},
	} {
		var lib []byte
		conn := recordingConn(t, &lib)
		fam := fam4
		if len(c.key) == 16 {
			fam = fam6
		}
		tbl := &nft.Table{Name: DefaultTable, Family: nft.TableFamilyINet}
		conn.SetDeleteElements(ref(tbl, setSpec{name: c.set, kind: kindTrap, key: fam.key}), []nft.SetElement{{Key: c.key}})
		conn.Flush()
		ours := delBatch(DefaultTable, c.set, c.key, 7)
		if got, want := anonymous(t, ours), anonymous(t, lib); !bytes.Equal(got, want) {
			t.Errorf("%s %x:\nours %x\nlib  %x", c.set, c.key, got, want)
		}
		if bytes.Equal(anonymous(t, ours), anonymous(t, addBatch(DefaultTable, c.set, c.key, 0, 7))) {
			t.Errorf("%s %x: the delete batch is the add batch", c.set, c.key)
		}
	}
}

// TestOpsBatchMatchesLibrary: Release's batch of several element
// messages is what google/nftables sends for the same adds and deletes
// queued on one connection and flushed, sequence numbers and port ids
// aside, IPv4 and IPv6; its sequence numbers run from the batch begin to
// its end.
func TestOpsBatchMatchesLibrary(t *testing.T) {
	for _, fam := range []family{fam4, fam6} {
		key := bytes.Repeat([]byte{0xfd}, int(fam.addrSz))
		ops := []elemOp{
			{set: fam.trap, key: key},
			{del: true, set: fam.trap, key: key},
			{set: fam.spared, key: key},
			{del: true, set: fam.spared, key: key},
			{set: fam.spared, key: key, timeout: spareTimeout},
		}
		var lib []byte
		conn := recordingConn(t, &lib)
		tbl := &nft.Table{Name: DefaultTable, Family: nft.TableFamilyINet}
		for _, o := range ops {
			kind := kindSpared
			if o.set == fam.trap {
				kind = kindTrap
			}
			s := ref(tbl, setSpec{name: o.set, kind: kind, key: fam.key})
			e := []nft.SetElement{{Key: o.key, Timeout: o.timeout}}
			var err error
			if o.del {
				err = conn.SetDeleteElements(s, e)
			} else {
				err = conn.SetAddElements(s, e)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		conn.Flush()
		ours := opsBatch(DefaultTable, ops, 7)
		if got, want := anonymous(t, ours), anonymous(t, lib); !bytes.Equal(got, want) {
			t.Errorf("%s:\nours %x\nlib  %x", fam.name, got, want)
		}
		var seqs []uint32
		for b := ours; len(b) >= unix.NLMSG_HDRLEN; b = b[nlmsg.Align(int(binary.NativeEndian.Uint32(b))):] {
			seqs = append(seqs, binary.NativeEndian.Uint32(b[8:12]))
		}
		if want := []uint32{7, 8, 9, 10, 11, 12, 13}; !slices.Equal(seqs, want) {
			t.Errorf("%s: sequence numbers %v, want %v", fam.name, seqs, want)
		}
	}
}

// recordingConn is a google/nftables connection that sends nothing and
// appends every message it would send, marshalled, to out.
func recordingConn(t *testing.T, out *[]byte) *nft.Conn {
	t.Helper()
	conn, err := nft.New(nft.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		for _, m := range req {
			b, err := m.MarshalBinary()
			if err != nil {
				return nil, err
			}
			*out = append(*out, b...)
		}
		return nil, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}
