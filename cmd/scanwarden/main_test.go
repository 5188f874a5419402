package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/scanwarden/scanwarden/block/backends"
)

// exchange is one packet of a synthetic capture.
type exchange struct {
	src, dst     string
	sport, dport uint16
	syn, ack     bool
	rst          bool
}

// writePcap writes Ethernet/IPv4/TCP packets 1 ms apart and returns the
// file's path.
func writePcap(t *testing.T, pkts []exchange) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scan.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for i, p := range pkts {
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP(p.src).To4(), DstIP: net.ParseIP(p.dst).To4()}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(p.sport), DstPort: layers.TCPPort(p.dport), SYN: p.syn, ACK: p.ack, RST: p.rst, Window: 1024, Seq: 1}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
			t.Fatal(err)
		}
		data := buf.Bytes()
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(data), Length: len(data)}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// synScan: SYNs from src to closed ports of dst, each answered by RST+ACK.
func synScanPkts(src, dst string, from, n uint16) []exchange {
	var out []exchange
	for p := from; p < from+n; p++ {
		out = append(out,
			exchange{src: src, dst: dst, sport: 40000, dport: p, syn: true},
			exchange{src: dst, dst: src, sport: p, dport: 40000, rst: true, ack: true})
	}
	return out
}

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = realMain(args, &o, &e)
	return o.String(), e.String(), code
}

// noConfig points -c at the built-in defaults, whatever /etc holds.
func noConfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "empty.conf")
	if err := os.WriteFile(p, []byte("# defaults only\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReplayJSON(t *testing.T) {
	pcap := writePcap(t, synScanPkts("198.51.100.66", "198.51.100.10", 4000, 20))
	out, errOut, code := runCLI(t, "replay", "-c", noConfig(t), pcap, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one alert line, got %q", out)
	}
	var a struct {
		Src    string   `json:"src"`
		Type   string   `json:"type"`
		Time   string   `json:"time"`
		Probes int      `json:"probes"`
		Ports  []int    `json:"ports"`
		Dst    []string `json:"dst"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &a); err != nil {
		t.Fatal(err)
	}
	// the 3rd RST+ACK (packet 6, 5 ms in) raises it: threshold 12, 4 a closed port
	if a.Src != "198.51.100.66" || a.Type != "syn" || a.Probes != 3 || a.Time != "2026-11-24T12:00:00.005000000Z" {
		t.Fatalf("alert %+v", a)
	}
	if len(a.Ports) != 3 || a.Ports[0] != 4000 || len(a.Dst) != 1 || a.Dst[0] != "198.51.100.10" {
		t.Fatalf("alert %+v", a)
	}
	if !regexp.MustCompile(`replay: 1 file\(s\), 40 packets \(40 decoded, 0 malformed\), 1 alert\(s\)`).MatchString(errOut) {
		t.Fatalf("summary: %q", errOut)
	}
}

func TestReplayText(t *testing.T) {
	pcap := writePcap(t, synScanPkts("198.51.100.66", "198.51.100.10", 4000, 20))
	out, errOut, code := runCLI(t, "replay", "-c", noConfig(t), pcap)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := "2026-11-24T12:00:00.005000000Z 198.51.100.66 syn scan (score): 3 probes, score 12, last tcp/4002, ports tcp/4000-4002, dst 198.51.100.10\n"
	if out != want {
		t.Fatalf("got  %q\nwant %q", out, want)
	}
}

func TestReplayHome(t *testing.T) {
	pcap := writePcap(t, synScanPkts("198.51.100.66", "198.51.100.10", 4000, 20))
	out, _, code := runCLI(t, "replay", "-c", noConfig(t), "--home", "198.51.100.30/32", "--home", "fd00:77::10", pcap)
	if code != 0 || out != "" {
		t.Fatalf("scan of an unprotected host: exit %d, %q", code, out)
	}
	out, _, code = runCLI(t, "replay", "-c", noConfig(t), "--home", "198.51.100.0/24", pcap)
	if code != 0 || !strings.Contains(out, "198.51.100.66 syn scan") {
		t.Fatalf("scan of a protected host: exit %d, %q", code, out)
	}
	_, errOut, code := runCLI(t, "replay", "--home", "nonsense", pcap)
	if code != 2 || !strings.Contains(errOut, "nonsense") {
		t.Fatalf("bad --home: exit %d, %q", code, errOut)
	}
}

func TestReplayDamagedFile(t *testing.T) {
	pcap := writePcap(t, synScanPkts("198.51.100.66", "198.51.100.10", 4000, 20))
	data, err := os.ReadFile(pcap)
	if err != nil {
		t.Fatal(err)
	}
	// cut the last record short: the alert before it must still be printed
	if err := os.WriteFile(pcap, data[:len(data)-10], 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "replay", "-c", noConfig(t), pcap)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(out, "198.51.100.66 syn scan") {
		t.Fatalf("alert before the damage lost: %q", out)
	}
	if !regexp.MustCompile(`scan\.pcap: packet 40 at offset \d+: truncated`).MatchString(errOut) {
		t.Fatalf("error does not name packet and offset: %q", errOut)
	}
	// a file that is not a capture at all, and one that is missing
	txt := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(txt, []byte("hello, this is not a pcap file\n"), 0o644)
	_, errOut, code = runCLI(t, "replay", "-c", noConfig(t), txt, filepath.Join(t.TempDir(), "missing.pcap"))
	if code != 1 || !strings.Contains(errOut, "notes.txt") || !strings.Contains(errOut, "missing.pcap") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
}

func TestReplayEachFileOnItsOwn(t *testing.T) {
	// the same attacker address in two captures is reported in each,
	// unless --merge makes them one stream
	a := writePcap(t, synScanPkts("198.51.100.66", "198.51.100.10", 4000, 20))
	b := writePcap(t, synScanPkts("198.51.100.66", "198.51.100.10", 5000, 20))
	out, _, code := runCLI(t, "replay", "-c", noConfig(t), "--json", a, b)
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, `"file":"`+a+`"`) {
		t.Fatalf("exit %d, %q", code, out)
	}
	out, _, code = runCLI(t, "replay", "-c", noConfig(t), "--merge", a, b)
	if code != 0 || strings.Count(out, "\n") != 1 {
		t.Fatalf("--merge: exit %d, %q", code, out)
	}
}

func TestReplayConfigErrors(t *testing.T) {
	pcap := writePcap(t, synScanPkts("198.51.100.66", "198.51.100.10", 4000, 20))
	bad := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(bad, []byte("TCP_PORTS=\"1,2\"\nDETECT_TRESHOLD=\"5\"\n"), 0o644)
	_, errOut, code := runCLI(t, "replay", "-c", bad, pcap)
	if code != 1 || !strings.Contains(errOut, "bad.conf:2") || !strings.Contains(errOut, "DETECT_TRESHOLD") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
	_, errOut, code = runCLI(t, "replay", "-c", filepath.Join(t.TempDir(), "nope.conf"), pcap)
	if code != 1 || !strings.Contains(errOut, "nope.conf") {
		t.Fatalf("missing -c file: exit %d, %q", code, errOut)
	}
	// config keys reach the engine: a trap port makes the first SYN alert
	trap := filepath.Join(t.TempDir(), "trap.conf")
	os.WriteFile(trap, []byte("TCP_PORTS=\"4000\"\nSCAN_TRIGGER=\"0\"\n"), 0o644)
	out, _, code := runCLI(t, "replay", "-c", trap, "--json", pcap)
	if code != 0 || !strings.Contains(out, `"probes":1,`) || !strings.Contains(out, `"trigger":"trap"`) {
		t.Fatalf("trap config: exit %d, %q", code, out)
	}
}

func TestUsage(t *testing.T) {
	if _, errOut, code := runCLI(t); code != 2 || !strings.Contains(errOut, "replay") {
		t.Fatalf("no args: %d %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("unknown: %d %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, "replay"); code != 2 || !strings.Contains(errOut, "no capture file") {
		t.Fatalf("replay without files: %d %q", code, errOut)
	}
	if out, _, code := runCLI(t, "help"); code != 0 || !strings.Contains(out, "check-config") {
		t.Fatalf("help: %d %q", code, out)
	}
}

func TestCheckConfig(t *testing.T) {
	root, _ := filepath.Abs("../..")
	shipped, err := os.ReadFile(filepath.Join(root, "etc/scanwarden.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// the shipped config, with its ignore file pointed at the repository's
	cfg := filepath.Join(t.TempDir(), "scanwarden.conf")
	text := strings.Replace(string(shipped), `IGNORE_FILE="/etc/scanwarden/scanwarden.ignore"`, `IGNORE_FILE="`+filepath.Join(root, "etc/scanwarden.ignore")+`"`, 1)
	if text == string(shipped) {
		t.Fatal("shipped config has no IGNORE_FILE line to point elsewhere")
	}
	os.WriteFile(cfg, []byte(text), 0o644)
	out, errOut, code := runCLI(t, "check-config", "-c", cfg)
	if code != 0 || !strings.Contains(out, "OK") || !strings.Contains(out, "3 entries") ||
		!strings.Contains(out, "capture and blocking at real-time priority where the daemon may") {
		t.Fatalf("exit %d, %q %q", code, out, errOut)
	}
	// BLOCK_BACKEND="auto": what this host's kernel offers, and the kernel
	// trap that follows; without the privilege to ask, what was not asked
	ch := backends.Choose(context.Background(), backends.PreferNftables)
	want := []string{cfg + ": BLOCK_BACKEND auto: " + string(ch.Kind) + " (" + ch.Reason + ")"}
	switch {
	case !ch.Certain():
		want = []string{cfg + ": BLOCK_BACKEND auto: not known here: ", "could not probe", "blocking with the backend auto chooses; kernel trap on"}
	case ch.Kind.HasSets():
		want = append(want, "blocking with "+string(ch.Kind)+"; kernel trap on the first probe")
	default:
		want = append(want, "blocking with iptables; no kernel trap")
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("shipped config: no %q in\n%s", w, out)
		}
	}
	// a set backend: the kernel trap is said to be on; normal priority
	os.WriteFile(cfg, []byte("BLOCK_BACKEND=\"nftables\"\nIGNORE_FILE=\"\"\nCAPTURE_REALTIME=\"0\"\n"), 0o644)
	if out, errOut, code := runCLI(t, "check-config", "-c", cfg); code != 0 || !strings.Contains(out, "blocking with nftables; kernel trap on the first probe") ||
		!strings.Contains(out, "capture and blocking at normal priority") {
		t.Fatalf("nftables: exit %d, %q %q", code, out, errOut)
	}
	// a missing ignore file is reported with the key that names it
	os.WriteFile(cfg, []byte(`IGNORE_FILE="/nonexistent/scanwarden.ignore"`+"\n"), 0o644)
	_, errOut, code = runCLI(t, "check-config", "-c", cfg)
	if code != 1 || !strings.Contains(errOut, "IGNORE_FILE") || !strings.Contains(errOut, "scanwarden.conf:1") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
}
func TestPortSentryCommandLine(t *testing.T) {
	// portsentry -tcp is scanwarden run -tcp; a bad config is reported
	// with its file and line before anything is opened
	bad := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(bad, []byte("TCP_PORTS=\"1,70000\"\n"), 0o644)
	_, errOut, code := runCLI(t, "-tcp", "-c", bad)
	if code != 1 || !contains(errOut, "bad.conf:1") {
		t.Fatalf("exit %d: %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, "run", "--log-format", "xml", "-c", noConfig(t)); code != 2 || !contains(errOut, "xml") {
		t.Fatalf("bad log format: %d %q", code, errOut)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
