// Command gensyn writes a synthetic SYN-scan capture for benchmarks: a
// classic pcap file (Ethernet, microsecond timestamps) of N TCP SYN probes
// shaped like nmap's (window 1024, one MSS option, random TTL, IP ID and
// sequence number, one source port per scanner) from S sources, each
// scanning distinct ports of one destination, interleaved: packet k comes
// from source k mod S. Timestamps increase by -step per packet.
//
//	gensyn -o FILE [-n 1000000] [-sources 10000] [-dst 192.0.2.10] [-step 1us] [-seed 1]
//
// Sources are 203.0.113.1-254, then 100.64.0.1 onwards (100.64.0.0/10):
// documentation and shared address space, only ever written to the file.
// The output is deterministic for the same flags. It is written to a
// temporary file beside FILE and renamed, so FILE is never half-written.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

const (
	ethLen   = 14
	ipLen    = 20
	tcpLen   = 24 // 20 + MSS option
	frameLen = ethLen + ipLen + tcpLen

	// maxSources: 254 documentation addresses plus 100.64.0.0/10 less its
	// first address and its last.
	maxSources = 254 + (1 << 22) - 2
)

// start is the first packet's timestamp: fixed, so the file is reproducible.
var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func main() {
	out := flag.String("o", "", "output pcap file (required)")
	n := flag.Int("n", 1_000_000, "number of packets")
	sources := flag.Int("sources", 10_000, fmt.Sprintf("number of scanning sources (at most %d)", maxSources))
	dst := flag.String("dst", "192.0.2.10", "destination IPv4 address")
	step := flag.Duration("step", time.Microsecond, "time between packets")
	seed := flag.Uint64("seed", 1, "random seed (TTL, IP ID, ports, sequence numbers)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: gensyn -o FILE [-n N] [-sources S] [-dst ADDR] [-step D] [-seed N]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*out, *n, *sources, *dst, *step, *seed); err != nil {
		fmt.Fprintf(os.Stderr, "gensyn: %v\n", err)
		os.Exit(1)
	}
}

func run(out string, n, sources int, dstS string, step time.Duration, seed uint64) error {
	switch {
	case flag.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	case out == "":
		return errors.New("-o FILE is required")
	case n < 1:
		return fmt.Errorf("-n %d: need at least one packet", n)
	case sources < 1 || sources > maxSources:
		return fmt.Errorf("-sources %d: want 1 to %d", sources, maxSources)
	case step < time.Microsecond:
		return fmt.Errorf("-step %v: the file has microsecond timestamps, want at least 1µs", step)
	}
	dst, err := netip.ParseAddr(dstS)
	if err != nil || !dst.Is4() {
		return fmt.Errorf("-dst %q: want an IPv4 address", dstS)
	}

	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if err := write(tmp, n, sources, dst.As4(), step, seed); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gensyn: wrote %s: %d SYN packets from %d sources to %s\n", out, n, sources, dst)
	return nil
}

// source returns the address of source i.
func source(i int) [4]byte {
	if i < 254 {
		return [4]byte{203, 0, 113, byte(i + 1)}
	}
	a := (uint32(100)<<24 | uint32(64)<<16) + uint32(i-254) + 1
	return [4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}
}

func write(f *os.File, n, sources int, dst [4]byte, step time.Duration, seed uint64) error {
	w := bufio.NewWriterSize(f, 1<<20)
	// Classic pcap header: microsecond magic, version 2.4, snaplen 262144,
	// link type 1 (Ethernet).
	var gh [24]byte
	binary.LittleEndian.PutUint32(gh[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(gh[4:], 2)
	binary.LittleEndian.PutUint16(gh[6:], 4)
	binary.LittleEndian.PutUint32(gh[16:], 262144)
	binary.LittleEndian.PutUint32(gh[20:], 1)
	if _, err := w.Write(gh[:]); err != nil {
		return err
	}

	rng := rand.New(rand.NewPCG(seed, 0x5ca4))
	// Each scanner keeps one source port and one TTL, as nmap does.
	sport := make([]uint16, sources)
	ttl := make([]uint8, sources)
	for i := range sources {
		sport[i] = uint16(32768 + rng.IntN(28000))
		ttl[i] = uint8(37 + rng.IntN(23))
	}

	var rec [16 + frameLen]byte
	hdr, pkt := rec[:16], rec[16:]
	binary.LittleEndian.PutUint32(hdr[8:], frameLen)
	binary.LittleEndian.PutUint32(hdr[12:], frameLen)

	// Ethernet: locally administered MACs, IPv4.
	copy(pkt[0:6], []byte{0x02, 0, 0, 0, 0, 0x0a})
	copy(pkt[6:12], []byte{0x02, 0, 0, 0, 0, 0x01})
	binary.BigEndian.PutUint16(pkt[12:], 0x0800)
	ip := pkt[ethLen : ethLen+ipLen]
	tcp := pkt[ethLen+ipLen:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], ipLen+tcpLen)
	ip[9] = 6 // TCP
	copy(ip[16:20], dst[:])
	tcp[12] = (tcpLen / 4) << 4
	tcp[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(tcp[14:], 1024)
	copy(tcp[20:24], []byte{2, 4, 0x05, 0xb4}) // MSS 1460

	ts := start
	for k := range n {
		s := k % sources
		round := k / sources
		src := source(s)
		// Distinct ports per source (round < 65535), different orders
		// across sources.
		dport := uint16(1 + (round+s*31)%65535)

		binary.BigEndian.PutUint16(ip[4:], uint16(rng.Uint32()))
		ip[8] = ttl[s]
		copy(ip[12:16], src[:])
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], checksum(0, ip))

		binary.BigEndian.PutUint16(tcp[0:], sport[s])
		binary.BigEndian.PutUint16(tcp[2:], dport)
		binary.BigEndian.PutUint32(tcp[4:], rng.Uint32())
		tcp[16], tcp[17] = 0, 0
		binary.BigEndian.PutUint16(tcp[16:], checksum(pseudo(src, dst, tcpLen), tcp))

		binary.LittleEndian.PutUint32(hdr[0:], uint32(ts.Unix()))
		binary.LittleEndian.PutUint32(hdr[4:], uint32(ts.Nanosecond()/1000))
		if _, err := w.Write(rec[:]); err != nil {
			return err
		}
		ts = ts.Add(step)
	}
	return w.Flush()
}

// pseudo returns the partial sum of the TCP pseudo-header.
func pseudo(src, dst [4]byte, length int) uint32 {
	var sum uint32
	sum += uint32(src[0])<<8 | uint32(src[1])
	sum += uint32(src[2])<<8 | uint32(src[3])
	sum += uint32(dst[0])<<8 | uint32(dst[1])
	sum += uint32(dst[2])<<8 | uint32(dst[3])
	sum += 6 + uint32(length)
	return sum
}

// checksum returns the Internet checksum of b added to the partial sum.
func checksum(sum uint32, b []byte) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
