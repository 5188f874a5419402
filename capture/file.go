package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/scanwarden/scanwarden/detect"
)

// File magic numbers, as the first four bytes read big-endian.
const (
	magicMicroLE  = 0xd4c3b2a1 // classic pcap, little-endian, microseconds
	magicMicroBE  = 0xa1b2c3d4
	magicNanoLE   = 0x4d3cb2a1 // classic pcap, nanoseconds (tcpdump --nano)
	magicNanoBE   = 0xa1b23c4d
	magicModLE    = 0x34cdb2a1 // Kuznetzov's modified pcap (old Red Hat tcpdump): 24-byte record headers
	magicModBE    = 0xa1b2cd34
	magicPcapNG   = 0x0a0d0d0a // pcapng Section Header Block, either byte order
	magicGzipMask = 0xffff0000
	magicGzip     = 0x1f8b0000

	pcapFileHeaderLen = 24
)

// FileError is a structural problem in a capture file: a truncated or
// corrupt record. It names the file, the 1-based number of the record
// (every record counts, decodable or not) and the byte offset where that
// record starts.
type FileError struct {
	File   string
	Packet uint64
	Offset int64
	Err    error
}

// Error formats as "FILE: packet N at offset X: problem".
func (e *FileError) Error() string {
	return fmt.Sprintf("%s: packet %d at offset %d: %v", e.File, e.Packet, e.Offset, e.Err)
}

// Unwrap returns the problem (io.ErrUnexpectedEOF for a truncated file).
func (e *FileError) Unwrap() error { return e.Err }

// truncatedError is a record cut short by the end of the file.
type truncatedError struct {
	what       string
	want, have int
	header     bool // the record header itself is cut short
}

func (e *truncatedError) Error() string {
	if e.header {
		return fmt.Sprintf("truncated %s: %d of %d bytes", e.what, e.have, e.want)
	}
	return fmt.Sprintf("truncated %s: header says %d bytes, %d remain", e.what, e.want, e.have)
}

func (e *truncatedError) Unwrap() error { return io.ErrUnexpectedEOF }

// FileSource reads probes from a pcap or pcapng file. Classic pcap is read
// by a lean record reader of our own straight out of a 1 MiB buffer
// (records are parsed in the buffered bytes themselves, which bufio is
// asked for only when they run out; packets are decoded in place, nothing
// is copied or allocated per record); pcapng by gopacket's
// pcapgo.NgReader over the same buffer.
// A FileSource is not safe for concurrent use.
type FileSource struct {
	name string
	f    *os.File
	cr   countingReader
	br   *bufio.Reader
	link layers.LinkType
	dec  *Decoder

	// classic pcap
	bigEndian  bool
	nanoFactor int64 // 1000 for microsecond files, 1 for nanosecond ones
	recHdrLen  int   // 16, or 24 for the modified format
	off        int64 // offset of the next record
	// win is the unread part of what the buffer holds, from the next
	// record on: records are read straight out of it, and the buffer is
	// only told what was consumed (used bytes) when win runs short.
	win  []byte
	used int

	// pcapng
	ng         *pcapgo.NgReader
	ngOrder    binary.ByteOrder  // the byte order of the section being read
	ngDecs     []ngDecoder       // one decoder per link type met, in order of appearance
	ngReadable bool              // an interface of a link type the Decoder reads was seen
	ngBad      []layers.LinkType // the unsupported link types of the interfaces seen, each once

	records uint64 // records read so far (the number of the last one)
	skipped uint64 // records of a link type we cannot decode (pcapng interfaces)
	err     error  // sticky: once the file is broken, every Next says so
}

type ngDecoder struct {
	link layers.LinkType
	dec  *Decoder // nil: unsupported link type, its packets are skipped
}

// countingReader counts the bytes read from the file, so that the offset
// of a pcapng record is known: count minus what bufio still buffers.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// OpenFile opens a capture file: classic pcap in either byte order with
// microsecond or nanosecond timestamps (and the old modified format), or
// pcapng. A file of any other kind is an error naming its magic number; a
// capture of a link type the Decoder does not support is an error naming
// the link type. In a pcapng file, the packets of an interface of such a
// link type (the first one's included) are skipped and counted, and the
// file is refused only when none of its interfaces has a supported link
// type: by OpenFile when the file fits in the read buffer, else by Next
// at its end.
func OpenFile(path string) (*FileSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open capture: %w", err)
	}
	s := &FileSource{name: path, f: f, cr: countingReader{r: f}}
	s.br = bufio.NewReaderSize(&s.cr, FileBufferSize)
	if err := s.open(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func (s *FileSource) open() error {
	head, err := s.br.Peek(4)
	if len(head) < 4 {
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: read: %w", s.name, err)
		}
		return fmt.Errorf("%s: not a pcap or pcapng file (%d bytes long)", s.name, len(head))
	}
	magic := binary.BigEndian.Uint32(head)
	switch magic {
	case magicMicroLE, magicMicroBE, magicNanoLE, magicNanoBE, magicModLE, magicModBE:
		return s.openPcap(magic)
	case magicPcapNG:
		return s.openPcapNG()
	}
	if magic&magicGzipMask == magicGzip {
		return fmt.Errorf("%s: not a pcap or pcapng file (magic 0x%08x): it looks gzip-compressed, decompress it first", s.name, magic)
	}
	return fmt.Errorf("%s: not a pcap or pcapng file (magic 0x%08x)", s.name, magic)
}

func (s *FileSource) openPcap(magic uint32) error {
	h, err := s.br.Peek(pcapFileHeaderLen)
	if len(h) < pcapFileHeaderLen {
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: read: %w", s.name, err)
		}
		return fmt.Errorf("%s: truncated pcap file header: %d of %d bytes", s.name, len(h), pcapFileHeaderLen)
	}
	s.bigEndian = magic == magicMicroBE || magic == magicNanoBE || magic == magicModBE
	s.nanoFactor = 1000
	if magic == magicNanoLE || magic == magicNanoBE {
		s.nanoFactor = 1
	}
	s.recHdrLen = 16
	if magic == magicModLE || magic == magicModBE {
		s.recHdrLen = 24
	}
	if major := s.u16(h[4:6]); major != 2 {
		return fmt.Errorf("%s: unsupported pcap version %d.%d (only 2.x exists)", s.name, major, s.u16(h[6:8]))
	}
	// The low 16 bits are the link type; the high ones may carry FCS
	// information, which the IP layer's own length makes moot.
	s.link = layers.LinkType(s.u32(h[20:24]) & 0xffff)
	if s.dec, err = NewDecoder(s.link); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	s.br.Discard(pcapFileHeaderLen)
	s.off = pcapFileHeaderLen
	return nil
}

func (s *FileSource) openPcapNG() (err error) {
	defer func() {
		// pcapgo is not ours: whatever it does with a corrupt header
		// becomes an error, never a crash of the replay.
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: corrupt pcapng header: %v", s.name, r)
		}
	}()
	// The first section's byte order, which the reader is about to
	// consume with its header: the magic 0x1a2b3c4d after the block
	// type and length (open has peeked 4 bytes; a shorter file is the
	// reader's error).
	s.ngOrder = binary.LittleEndian
	if h, _ := s.br.Peek(12); len(h) == 12 {
		_, _, s.ngOrder = ngBlockHeader(h, s.ngOrder)
	}
	// pcapgo wraps its input in a bufio.Reader unless it already is one
	// (of at least 4 KiB): ours is used as it is, so the offset of what
	// it reads is s.cr.n - s.br.Buffered().
	s.ng, err = pcapgo.NewNgReader(s.br, pcapgo.NgReaderOptions{
		WantMixedLinkType: true,
		// a section's interfaces are forgotten at the next one: note
		// whether one of them could be read, for the end of the file
		SectionEndCallback: func(ifaces []pcapgo.NgInterface, _ pcapgo.NgSectionInfo) {
			for _, i := range ifaces {
				s.noteLink(i.LinkType)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("%s: bad pcapng header: %w", s.name, err)
	}
	links, whole := s.peekNGLinkTypes()
	if len(links) == 0 {
		// No interface in the first MiB: there can be no packet before
		// one either. Decoders are made as interfaces appear.
		s.link = s.ng.LinkType()
		return nil
	}
	// The first interface's link type is the file's; its packets, like
	// those of any interface of a link type the Decoder cannot read, are
	// skipped and counted. The file is refused only when none of its
	// interfaces can be read: here when the buffer holds it whole, else
	// at its end.
	s.link = links[0]
	s.dec = s.ngDecoderOf(links[0])
	for _, l := range links {
		s.noteLink(l)
	}
	if whole && !s.ngReadable {
		return s.noLinkError(links)
	}
	return nil
}

// peekNGLinkTypes returns the link types of the Interface Description
// Blocks in what the buffer holds (the reader reads interfaces as packets
// need them, so it does not know them yet), without consuming anything,
// in order and each once; whole is true when the buffer holds the file to
// its end and every block of it was walked.
func (s *FileSource) peekNGLinkTypes() (links []layers.LinkType, whole bool) {
	b, err := s.br.Peek(FileBufferSize)
	order := s.ngOrder
	off := 0
	for off+12 <= len(b) {
		var typ uint32
		var n int
		typ, n, order = ngBlockHeader(b[off:], order)
		if typ == 1 { // Interface Description Block
			if l := layers.LinkType(order.Uint16(b[off+8:])); !slices.Contains(links, l) {
				links = append(links, l)
			}
		}
		if n == 0 {
			return links, false
		}
		off += n
	}
	return links, off == len(b) && errors.Is(err, io.EOF)
}

// ngByteOrderMagic is a pcapng section header's byte-order magic, as
// written in its byte order.
const ngByteOrderMagic = 0x1a2b3c4d

// ngBlockHeader reads the header of the block that starts b (at least 12
// bytes) of a section of byte order order: its type, its length (0 when
// that is no block length: under 12 or not a multiple of 4), and the
// byte order from the block on, which a section header sets.
func ngBlockHeader(b []byte, order binary.ByteOrder) (typ uint32, n int, _ binary.ByteOrder) {
	if typ = order.Uint32(b); typ == magicPcapNG { // the same in either order
		order = binary.LittleEndian
		if binary.BigEndian.Uint32(b[8:]) == ngByteOrderMagic {
			order = binary.BigEndian
		}
	}
	if n = int(order.Uint32(b[4:])); n < 12 || n%4 != 0 {
		n = 0
	}
	return typ, n, order
}

// Block types that carry a packet: the reader skips every other kind.
const (
	ngPacketBlock         = 2 // obsolete Packet Block
	ngSimplePacketBlock   = 3
	ngEnhancedPacketBlock = 6
)

// ngPacketOffset returns the offset of the block the reader's next
// packet comes from. The reader skips the blocks before it (section
// headers, interfaces, statistics, name resolution): they are walked
// here, in what the buffer holds or can hold, following the byte order
// each section header sets. A block that cannot be walked (cut short,
// corrupt, or larger than the buffer) stops the walk at its own offset,
// where the reader's error would be.
func (s *FileSource) ngPacketOffset() int64 {
	off := s.cr.n - int64(s.br.Buffered())
	b, _ := s.br.Peek(s.br.Buffered()) // nothing read: b starts at off
	pos := 0
	for {
		if len(b)-pos < 12 && len(b) < FileBufferSize {
			// the buffer ends within the header: read on (rare, at
			// the buffer's end; Peek keeps what it holds in place)
			b, _ = s.br.Peek(min(pos+12, FileBufferSize))
		}
		if len(b)-pos < 12 {
			return off + int64(pos)
		}
		var typ uint32
		var n int
		typ, n, s.ngOrder = ngBlockHeader(b[pos:], s.ngOrder)
		switch typ {
		case ngPacketBlock, ngSimplePacketBlock, ngEnhancedPacketBlock:
			return off + int64(pos)
		}
		if n == 0 || pos+n > FileBufferSize {
			return off + int64(pos)
		}
		if pos+n > len(b) {
			if b, _ = s.br.Peek(pos + n); pos+n > len(b) {
				return off + int64(pos)
			}
		}
		pos += n
	}
}

// noteLink notes an interface of link type link: whether the Decoder
// reads it (a decoder made for it already says).
func (s *FileSource) noteLink(link layers.LinkType) {
	if s.ngReadable || slices.Contains(s.ngBad, link) {
		return
	}
	var ok bool
	if i := slices.IndexFunc(s.ngDecs, func(d ngDecoder) bool { return d.link == link }); i >= 0 {
		ok = s.ngDecs[i].dec != nil
	} else {
		_, err := NewDecoder(link)
		ok = err == nil
	}
	if ok {
		s.ngReadable = true
	} else {
		s.ngBad = append(s.ngBad, link)
	}
}

// noLinkError is the error of a pcapng file none of whose interfaces has
// a link type the Decoder reads; links are their link types.
func (s *FileSource) noLinkError(links []layers.LinkType) error {
	_, err := NewDecoder(links[0])
	if len(links) == 1 {
		return fmt.Errorf("%s: %w", s.name, err) // as for a classic pcap file
	}
	names := make([]string, len(links))
	for i, l := range links {
		names[i] = linkTypeDesc(l)
	}
	return fmt.Errorf("%s: no interface of a supported link type (%s): %w", s.name, strings.Join(names, ", "), err)
}

func (s *FileSource) u16(b []byte) uint16 {
	if s.bigEndian {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func (s *FileSource) u32(b []byte) uint32 {
	if s.bigEndian {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

// Name returns the path the file was opened with.
func (s *FileSource) Name() string { return s.name }

// LinkType returns the file's link type (for pcapng, that of its first
// interface).
func (s *FileSource) LinkType() layers.LinkType { return s.link }

// Stats returns the decoding counters so far; Packets counts every record
// read. Records of a pcapng interface with an unsupported link type count
// in Packets and Ignored.
func (s *FileSource) Stats() Stats {
	var t Stats
	if s.ng == nil {
		t = s.dec.Stats()
	} else {
		// One decoder per link type met (usually just one).
		for _, d := range s.ngDecs {
			if d.dec != nil {
				t.add(d.dec.Stats())
			}
		}
	}
	t.Packets += s.skipped
	t.Ignored += s.skipped
	return t
}

func (t *Stats) add(o Stats) {
	t.Packets += o.Packets
	t.Decoded += o.Decoded
	t.Ignored += o.Ignored
	t.Malformed += o.Malformed
	t.Fragments += o.Fragments
	t.Reassembled += o.Reassembled
	t.Evicted += o.Evicted
	t.Expired += o.Expired
}

// Close closes the file; Next then returns an error wrapping
// os.ErrClosed. Close is idempotent.
func (s *FileSource) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if s.err == nil {
		s.err = fmt.Errorf("%s: %w", s.name, os.ErrClosed)
	}
	return err
}

// Next fills p with the next probe in the file and returns nil, or returns
// io.EOF after the last record. Records that hold no probe (other
// protocols, malformed packets, pending fragments) are skipped and
// counted, never reported as errors; only a broken file structure is,
// as a *FileError naming the record number and offset, and, in place of
// io.EOF, a pcapng file none of whose interfaces could be read (see
// OpenFile). After an error,
// every later call returns the same error. Next allocates nothing for
// classic pcap files.
func (s *FileSource) Next(p *detect.Probe) error {
	if s.err != nil {
		return s.err
	}
	if s.ng != nil {
		return s.nextNG(p)
	}
	for {
		n := s.recHdrLen
		s.records++
		h := s.win
		if len(h) < n {
			var err error
			if h, err = s.fill(n); len(h) < n {
				if len(h) == 0 && errors.Is(err, io.EOF) {
					s.records--
					s.err = io.EOF
					return io.EOF
				}
				return s.fail(s.readErr(err, &truncatedError{what: "record header", want: n, have: len(h), header: true}))
			}
		}
		sec := int64(s.u32(h[0:4]))
		frac := int64(s.u32(h[4:8]))
		caplen := s.u32(h[8:12])
		if caplen > MaxRecordLen {
			return s.fail(fmt.Errorf("corrupt record: header says %d bytes, more than the %d-byte maximum", caplen, MaxRecordLen))
		}
		end := n + int(caplen)
		if len(h) < end {
			var err error
			if h, err = s.fill(end); len(h) < end {
				return s.fail(s.readErr(err, &truncatedError{what: "record", want: int(caplen), have: len(h) - n}))
			}
		}
		data := h[n:end]
		s.win, s.used = h[end:], s.used+end
		s.off += int64(end)
		if s.dec.Decode(data, sec*1e9+frac*s.nanoFactor, p) {
			return nil
		}
	}
}

// fill hands the buffer back the bytes consumed from it, refills it and
// returns the new window (s.win): at least n bytes from the next record
// on, or fewer at the end of the file or on a read error, which it then
// returns. Slices of the previous window are invalid after it.
func (s *FileSource) fill(n int) ([]byte, error) {
	s.br.Discard(s.used) // never fails: used bytes are buffered
	s.used = 0
	s.win = nil
	if b, err := s.br.Peek(n); len(b) < n {
		return b, err
	}
	s.win, _ = s.br.Peek(s.br.Buffered())
	return s.win, nil
}

// readErr prefers a real read error over the truncation it caused.
func (s *FileSource) readErr(err error, trunc error) error {
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read: %w", err)
	}
	return trunc
}

// fail records a structural error at the current record.
func (s *FileSource) fail(err error) error {
	s.err = &FileError{File: s.name, Packet: s.records, Offset: s.off, Err: err}
	return s.err
}

func (s *FileSource) nextNG(p *detect.Probe) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.fail(fmt.Errorf("corrupt pcapng block: %v", r))
		}
	}()
	for {
		s.off = s.ngPacketOffset()
		s.records++
		data, ci, err := s.ng.ZeroCopyReadPacketData()
		if err != nil {
			if errors.Is(err, io.EOF) {
				s.records--
				return s.endNG()
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return s.fail(fmt.Errorf("truncated pcapng block: %w", err))
			}
			return s.fail(fmt.Errorf("corrupt pcapng block: %w", err))
		}
		dec := s.ngDecoder(ci.InterfaceIndex)
		if dec == nil {
			s.skipped++
			continue
		}
		var ts int64
		if !ci.Timestamp.IsZero() {
			ts = ci.Timestamp.UnixNano()
		}
		if dec.Decode(data, ts, p) {
			return nil
		}
	}
}

// endNG ends a pcapng file: io.EOF, or an error naming the file when
// none of its interfaces had a link type the Decoder reads (their packets
// were all skipped).
func (s *FileSource) endNG() error {
	s.err = io.EOF
	for i := range s.ng.NInterfaces() { // the last section's
		if iface, err := s.ng.Interface(i); err == nil {
			s.noteLink(iface.LinkType)
		}
	}
	if !s.ngReadable && len(s.ngBad) > 0 {
		s.err = s.noLinkError(s.ngBad)
	}
	return s.err
}

// ngDecoder returns the decoder for a pcapng interface's link type, or nil
// when that link type is not supported.
func (s *FileSource) ngDecoder(iface int) *Decoder {
	link := s.link
	if i, err := s.ng.Interface(iface); err == nil {
		link = i.LinkType
	}
	return s.ngDecoderOf(link)
}

// ngDecoderOf returns the decoder for link, made at its first use, or nil
// when link is not supported.
func (s *FileSource) ngDecoderOf(link layers.LinkType) *Decoder {
	for i := range s.ngDecs {
		if s.ngDecs[i].link == link {
			return s.ngDecs[i].dec
		}
	}
	dec, err := NewDecoder(link)
	if err != nil {
		dec = nil
	}
	s.ngDecs = append(s.ngDecs, ngDecoder{link: link, dec: dec})
	s.noteLink(link)
	return dec
}
