package capture

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/scanwarden/scanwarden/detect"
)

// TestFileRecordsAcrossBuffers: classic pcap records are read out of the
// buffered bytes in place, and the buffer refilled when they run out. A
// file several buffers long, of records of every size up to MaxRecordLen,
// is read whole and in order; cut inside a record or a record header far
// beyond the first buffer, it fails at that record, with its number and
// offset.
func TestFileRecordsAcrossBuffers(t *testing.T) {
	const n = 3000
	var recs []record
	offs := make([]int, n) // offset of each record
	off := pcapFileHeaderLen
	for i := range n {
		frame := withEth(t, ip4TCP(t, v4A, v4B, 40000, uint16(1+i), detect.FlagSYN, nmapSYNOpts))
		size := len(frame) + (i*7919)%3000
		if i%400 == 399 {
			size = MaxRecordLen // the largest record there can be
		}
		frame = append(frame, make([]byte, size-len(frame))...) // an Ethernet trailer
		recs = append(recs, record{tBase.Add(time.Duration(i) * time.Microsecond), frame})
		offs[i] = off
		off += 16 + size
	}
	full := pcapBytes(binary.LittleEndian, 0xa1b2c3d4, layers.LinkTypeEthernet, recs)
	if len(full) != off || off < 4*FileBufferSize {
		t.Fatalf("%d bytes, want %d and at least four buffers", len(full), off)
	}
	write := fileWriter(t, t.TempDir())

	got, s, err := readAll(t, write("big.pcap", full))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d probes, want %d (stats %+v)", len(got), n, s.Stats())
	}
	for i, p := range got {
		if p.DstPort != uint16(1+i) || p.TS != recs[i].ts.UnixNano() {
			t.Fatalf("probe %d: port %d at %d, want %d at %d", i, p.DstPort, p.TS, 1+i, recs[i].ts.UnixNano())
		}
	}

	// A record that starts beyond the second buffer and is longer than 100 bytes.
	k := 0
	for k = range offs {
		if offs[k] > 2*FileBufferSize && len(recs[k].data) > 100 {
			break
		}
	}
	for _, c := range []struct {
		name string
		cut  int
		want string
	}{
		{"inside a record", offs[k] + 16 + 100,
			fmt.Sprintf("packet %d at offset %d: truncated record: header says %d bytes, 100 remain", k+1, offs[k], len(recs[k].data))},
		{"inside a record header", offs[k] + 7,
			fmt.Sprintf("packet %d at offset %d: truncated record header: 7 of 16 bytes", k+1, offs[k])},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := write("cut.pcap", full[:c.cut])
			got, _, err := readAll(t, p)
			if len(got) != k {
				t.Errorf("%d probes before the error, want %d", len(got), k)
			}
			if want := p + ": " + c.want; err == nil || err.Error() != want {
				t.Errorf("err = %v\nwant %s", err, want)
			}
		})
	}
}
