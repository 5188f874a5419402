package capture

import (
	"net"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/scanwarden/scanwarden/detect"
)

// An IPv6 packet with an IPv4-mapped source or destination is ignored:
// such addresses are never sent (RFC 4291 2.5.5.2), and detect.Addr
// writes IPv4 addresses that way, so one taken in would pass for IPv4
// traffic. So is one from or to ::, which detect.Addr cannot tell from
// no address. The same for an ICMPv6 error quoting such a packet.
func TestDecodeIgnoresV4MappedIPv6(t *testing.T) {
	mapped := net.ParseIP("::ffff:198.51.100.201").To16()
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"mapped source", ip6TCP(t, mapped, v6B, 7, 8, detect.FlagSYN, nil)},
		{"mapped destination", ip6TCP(t, v6A, mapped, 7, 8, detect.FlagSYN, nil)},
		{"unreachable quoting a mapped source", icmp6Unreach(t, v6B, v6A, 4, ip6TCP(t, mapped, v6B, 7, 8, detect.FlagSYN, nil))},
		{"unreachable quoting a mapped destination", icmp6Unreach(t, v6B, v6A, 4, ip6TCP(t, v6A, mapped, 7, 8, detect.FlagSYN, nil))},
		{"unspecified source", ip6TCP(t, net.IPv6unspecified, v6B, 7, 8, detect.FlagSYN, nil)},
		{"unspecified destination", ip6UDP(t, v6A, net.IPv6unspecified, 7, 8, nil)},
		{"unreachable quoting an unspecified destination", icmp6Unreach(t, v6B, v6A, 4, ip6UDP(t, v6A, net.IPv6unspecified, 7, 8, nil))},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := mustDecoder(t, layers.LinkTypeRaw)
			var p detect.Probe
			if d.Decode(c.data, ts0, &p) {
				t.Fatalf("decoded %+v", p)
			}
			if s := d.Stats(); s.Ignored != 1 || s.Decoded != 0 || s.Malformed != 0 {
				t.Errorf("stats %+v, want one ignored", s)
			}
		})
	}
	// the same IPv4 address, as IPv4, is decoded
	d := mustDecoder(t, layers.LinkTypeRaw)
	var p detect.Probe
	if !d.Decode(ip4TCP(t, v4A, v4B, 7, 8, detect.FlagSYN, nil), ts0, &p) || p.Src != addr(v4A) || p.Src.Netip().String() != "198.51.100.201" {
		t.Errorf("IPv4: %+v", p)
	}
}
