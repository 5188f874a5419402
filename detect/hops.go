package detect

// Hops returns the number of hops a packet that arrived with ttl (an IPv4
// TTL or an IPv6 hop limit) has travelled, and the initial value it is
// assumed to have left its sender with: the nearest of the initial values
// stacks use (32, 64, 128 and 255) at or above ttl. This is the inference
// of hop-count filtering (Jin, Wang and Shin, "Hop-count filtering: an
// effective defense against spoofed DDoS traffic", ACM CCS 2003): a
// forger can choose the TTL it sends but not the hops between it and us,
// so a source whose hop count departs from the one its genuine traffic
// shows is suspect. A sender whose initial value is none of these (rare:
// 30 and 60 on some old stacks) is read against the next one up, which
// overstates its distance by a constant, the same for all its packets.
func Hops(ttl uint8) (hops int, initial uint8) {
	switch {
	case ttl <= 32:
		initial = 32
	case ttl <= 64:
		initial = 64
	case ttl <= 128:
		initial = 128
	default:
		initial = 255
	}
	return int(initial - ttl), initial
}
