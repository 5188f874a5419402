package nftables

import (
	"bytes"
	"encoding/binary"
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
		conn, err := nft.New(nft.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
			for _, m := range req {
				b, err := m.MarshalBinary()
				if err != nil {
					return nil, err
				}
				lib = append(lib, b...)
			}
			return nil, nil
		}))
		if err != nil {
			t.Fatal(err)
		}
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
		conn, err := nft.New(nft.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
			for _, m := range req {
				b, err := m.MarshalBinary()
				if err != nil {
					return nil, err
				}
				lib = append(lib, b...)
			}
			return nil, nil
		}))
		if err != nil {
			t.Fatal(err)
		}
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
