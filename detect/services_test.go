package detect

import (
	"net/netip"
	"testing"
	"time"
)

// connect is a client's whole TCP connection to server:port as the filter
// passes it: SYN (with a stack's options), SYN-ACK, then FIN+ACKs.
func connect(ts int64, client netip.Addr, sport uint16, server netip.Addr, port uint16) []*Probe {
	syn := tcp(ts, client, sport, server, port, FlagSYN)
	syn.StackSYN = true
	return []*Probe{
		syn,
		tcp(ts+ms/5, server, port, client, sport, FlagSYN|FlagACK),
		tcp(ts+50*ms, client, sport, server, port, FlagFIN|FlagACK),
		tcp(ts+51*ms, server, port, client, sport, FlagFIN|FlagACK),
	}
}

// A client of a real service on a watched port of a host whose bound
// ports the engine cannot read (a replay, a host behind the router) is no
// scanner: the host's SYN-ACK says a service runs there.
func TestServiceAnswerIsNoTrapHit(t *testing.T) {
	e := newReplayEngine(t, Config{TrapTCP: ports(143, 1, 2, 3)})
	var pkts []*Probe
	for i := range 5 {
		pkts = append(pkts, connect(t0+int64(i)*time.Second.Nanoseconds(), benign, uint16(50000+i), victim, 143)...)
	}
	if alerts := run(t, e, pkts...); len(alerts) != 0 {
		t.Fatalf("IMAP client reported: %+v", alerts[0])
	}
	// the service is known now: another client's SYN that the capture
	// sees unanswered (a capture that missed the answer) is no hit either
	other := netip.MustParseAddr("198.51.100.21")
	syn := tcp(t0+10*time.Second.Nanoseconds(), other, 40000, victim, 143, FlagSYN)
	later := tcp(t0+12*time.Second.Nanoseconds(), other, 40001, victim, 8080, FlagSYN)
	if alerts := run(t, e, syn, later); len(alerts) != 0 {
		t.Fatalf("client of a known service reported: %+v", alerts[0])
	}
	// on the daemon's own address the trap ports leave bound ports out
	// already: a SYN there is a hit at once, whatever was learned
	e.SetOwn([]netip.Addr{victim})
	if alerts := run(t, e, tcp(t0+13*time.Second.Nanoseconds(), attacker, 40000, victim, 1, FlagSYN)); len(alerts) != 1 || alerts[0].Trigger != TriggerTrap {
		t.Fatalf("own address: alerts %+v", alerts)
	}
}

func TestTrapHitAwaitsTheAnswer(t *testing.T) {
	trap := ports(143, 1, 2, 3)
	t.Run("closed answer", func(t *testing.T) {
		e := newReplayEngine(t, Config{TrapTCP: trap})
		syn := tcp(t0, attacker, 40000, victim, 1, FlagSYN)
		if a := e.Process(syn); a != nil {
			t.Fatalf("alert before the answer: %+v", a)
		}
		a := e.Process(tcp(t0+ms/10, victim, 1, attacker, 40000, FlagRST|FlagACK))
		if a == nil || a.Trigger != TriggerTrap || a.Time != t0+ms/10 || a.Port != 1 || a.Probes != 1 {
			t.Fatalf("alert on the RST: %+v", a)
		}
	})
	t.Run("no answer", func(t *testing.T) {
		e := newReplayEngine(t, Config{TrapTCP: trap})
		pkts := []*Probe{
			tcp(t0, attacker, 40000, victim, 1, FlagSYN),
			tcp(t0+100*ms, attacker, 40000, victim, 5000, FlagSYN),
		}
		if alerts := run(t, e, pkts...); len(alerts) != 0 {
			t.Fatalf("alert within the wait: %+v", alerts[0])
		}
		// the next probe after trapAnswerWait counts the hit
		a := e.Process(tcp(t0+int64(trapAnswerWait)+ms, attacker, 40000, victim, 5001, FlagSYN))
		if a == nil || a.Trigger != TriggerTrap {
			t.Fatalf("after the wait: %+v", a)
		}
	})
	t.Run("stealth probes never wait", func(t *testing.T) {
		e := newReplayEngine(t, Config{TrapTCP: trap})
		if a := e.Process(tcp(t0, attacker, 40000, victim, 143, FlagFIN)); a == nil || a.Trigger != TriggerTrap {
			t.Fatalf("FIN to a trap port: %+v", a)
		}
	})
	t.Run("SCAN_TRIGGER counts answered hits", func(t *testing.T) {
		e := newReplayEngine(t, Config{TrapTCP: trap, ScanTrigger: 2})
		var pkts []*Probe
		pkts = append(pkts, connect(t0, attacker, 40000, victim, 143)...) // open: no hit
		pkts = append(pkts, tcp(t0+ms, attacker, 40001, victim, 1, FlagSYN), tcp(t0+ms+ms/10, victim, 1, attacker, 40001, FlagRST|FlagACK))
		if alerts := run(t, e, pkts...); len(alerts) != 0 {
			t.Fatalf("one hit alerted with SCAN_TRIGGER=2: %+v", alerts[0])
		}
		a := e.Process(tcp(t0+2*ms, attacker, 40002, victim, 2, FlagSYN))
		if a != nil {
			t.Fatalf("alert before the answer: %+v", a)
		}
		a = e.Process(tcp(t0+2*ms+ms/10, victim, 2, attacker, 40002, FlagRST|FlagACK))
		if a == nil || a.Trigger != TriggerTrap {
			t.Fatalf("second hit: %+v", a)
		}
	})
	t.Run("UDP", func(t *testing.T) {
		e := newReplayEngine(t, Config{TrapUDP: ports(69, 161)})
		pkts := []*Probe{
			udp(t0, benign, 5000, victim, 161),
			udp(t0+ms, victim, 161, benign, 5000), // the agent answers
			udp(t0+2*time.Second.Nanoseconds(), benign, 5001, victim, 161),
		}
		if alerts := run(t, e, pkts...); len(alerts) != 0 {
			t.Fatalf("SNMP client reported: %+v", alerts[0])
		}
		pkts = []*Probe{
			udp(t0, attacker, 5000, victim, 69),
			unreach(t0+ms/10, victim, 69, attacker, 5000, ProtoUDP),
		}
		if alerts := run(t, e, pkts...); len(alerts) != 1 || alerts[0].Trigger != TriggerTrap {
			t.Fatalf("closed UDP trap port: %+v", alerts)
		}
	})
	// repeated probes of one trap port count, once the host has answered
	// it closed or not at all, as they do on the host's own addresses
	// (newEngine: no wait)
	t.Run("repeated probes of one port", func(t *testing.T) {
		for _, c := range []struct {
			name   string
			engine func(testing.TB, Config) *Engine
			answer bool
		}{{"own address", newEngine, true}, {"closed answers", newReplayEngine, true}, {"no answers", newReplayEngine, false}} {
			e := c.engine(t, Config{TrapTCP: ports(111), ScanTrigger: 3})
			gap := ms
			if !c.answer {
				gap = int64(trapAnswerWait) + ms
			}
			var alerts []*Alert
			for i := range 6 {
				ts := t0 + int64(i)*gap
				alerts = append(alerts, run(t, e, tcp(ts, attacker, 40000, victim, 111, FlagSYN))...)
				if c.answer {
					alerts = append(alerts, run(t, e, tcp(ts+ms/10, victim, 111, attacker, 40000, FlagRST|FlagACK))...)
				}
				if i < 2 && len(alerts) != 0 {
					t.Fatalf("%s: alert after %d probes: %+v", c.name, i+1, alerts[0])
				}
			}
			if len(alerts) != 1 || alerts[0].Trigger != TriggerTrap {
				t.Errorf("%s: six SYNs to one trap port, SCAN_TRIGGER 3: %d alerts", c.name, len(alerts))
			}
		}
		// a retransmission during the wait is no second hit
		e := newReplayEngine(t, Config{TrapTCP: ports(111), ScanTrigger: 2})
		pkts := []*Probe{
			tcp(t0, attacker, 40000, victim, 111, FlagSYN),
			tcp(t0+100*ms, attacker, 40000, victim, 111, FlagSYN),
			tcp(t0+200*ms, victim, 111, attacker, 40000, FlagRST|FlagACK),
		}
		if alerts := run(t, e, pkts...); len(alerts) != 0 {
			t.Errorf("a retransmission within the wait counted: %+v", alerts[0])
		}
	})
	t.Run("a service that closed is forgotten", func(t *testing.T) {
		e := newReplayEngine(t, Config{TrapTCP: trap})
		pkts := connect(t0, benign, 50000, victim, 143)
		other := netip.MustParseAddr("198.51.100.21")
		pkts = append(pkts, tcp(t0+time.Second.Nanoseconds(), other, 50001, victim, 143, FlagSYN),
			tcp(t0+time.Second.Nanoseconds()+ms/10, victim, 143, other, 50001, FlagRST|FlagACK))
		alerts := run(t, e, pkts...)
		if len(alerts) != 0 { // the first closed answer is no hit: the port was a service
			t.Fatalf("alerts %+v", alerts)
		}
		a := e.Process(tcp(t0+2*time.Second.Nanoseconds(), attacker, 40000, victim, 143, FlagSYN))
		if a != nil {
			t.Fatalf("alert before the answer: %+v", a)
		}
		a = e.Process(tcp(t0+2*time.Second.Nanoseconds()+ms/10, victim, 143, attacker, 40000, FlagRST|FlagACK))
		if a == nil || a.Trigger != TriggerTrap {
			t.Fatalf("closed port still taken for a service: %+v", a)
		}
	})
}

// TRW's credit: answered connections take evidence back, a bounded amount.
func TestAnsweredConnectionsCredit(t *testing.T) {
	closed := func(ts int64, src netip.Addr, port uint16) []*Probe {
		return []*Probe{tcp(ts, src, 40000+port, victim, port, FlagSYN), tcp(ts+ms/10, victim, port, src, 40000+port, FlagRST|FlagACK)}
	}
	sec := time.Second.Nanoseconds()
	// a mistyped port once: reported by nobody
	e := newEngine(t, Config{})
	if alerts := run(t, e, closed(t0, benign, 8443)...); len(alerts) != 0 {
		t.Fatalf("one mistyped port: %+v", alerts[0])
	}
	// a busy client: many answered connections, three closed ports
	e = newEngine(t, Config{})
	var pkts []*Probe
	for i, p := range []uint16{80, 443, 8080, 25} {
		pkts = append(pkts, connect(t0+int64(i)*sec, benign, uint16(50000+i), victim, p)...)
	}
	for i, p := range []uint16{81, 444, 8081} {
		pkts = append(pkts, closed(t0+int64(10+i)*sec, benign, p)...)
	}
	if alerts := run(t, e, pkts...); len(alerts) != 0 {
		t.Fatalf("busy client with three closed ports: %+v", alerts[0])
	}
	// the credit is bounded: five closed ports are a scan however many
	// connections came first
	pkts = nil
	for i, p := range []uint16{82, 445} {
		pkts = append(pkts, closed(t0+int64(20+i)*sec, benign, p)...)
	}
	if alerts := run(t, e, pkts...); len(alerts) != 1 || alerts[0].Score != 20-2*WeightOpen {
		t.Fatalf("five closed ports after connections: %+v", alerts)
	}
}

// nmap -O against a host that drops its closed-port answers: NULL,
// SYN+FIN+PSH+URG and XMAS probes to two ports, SYN and UDP to a closed
// port, and the SEQ SYNs to the open port that it answers.
func TestOSFingerprintAgainstADroppingHost(t *testing.T) {
	e := newReplayEngine(t, Config{})
	var pkts []*Probe
	ts := t0
	for i := range 6 { // SEQ: six SYNs to the open port, answered
		pkts = append(pkts, tcp(ts, attacker, uint16(60000+i), victim, 80, FlagSYN), tcp(ts+ms/10, victim, 80, attacker, uint16(60000+i), FlagSYN|FlagACK), tcp(ts+ms/5, attacker, uint16(60000+i), victim, 80, FlagRST))
		ts += 100 * ms
	}
	pkts = append(pkts,
		tcp(ts, attacker, 60010, victim, 80, 0),                                  // T2: NULL
		tcp(ts+ms, attacker, 60011, victim, 80, FlagSYN|FlagFIN|FlagPSH|FlagURG), // T3
		tcp(ts+2*ms, attacker, 60012, victim, 31337, FlagSYN),                    // T5
		tcp(ts+3*ms, attacker, 60013, victim, 31337, FlagFIN|FlagPSH|FlagURG),    // T7: XMAS
		udp(ts+4*ms, attacker, 60014, victim, 40125),                             // U1
	)
	alerts := run(t, e, pkts...)
	if len(alerts) != 1 || alerts[0].Src != attacker {
		t.Fatalf("nmap -O: alerts %+v", alerts)
	}
}

// Two kinds of probe no client sends, even to one port, decide: nmap -6 -O
// against a host that answers nothing sends NULL and SYN+FIN+PSH+URG to
// its open port and skips the closed-port probes.
func TestTwoStealthKindsToOnePort(t *testing.T) {
	e := newReplayEngine(t, Config{})
	pkts := []*Probe{
		tcp(t0, attacker, 60010, victim, 80, 0),
		tcp(t0+ms, attacker, 60011, victim, 80, 0), // the same kind again: nothing new
	}
	if alerts := run(t, e, pkts...); len(alerts) != 0 {
		t.Fatalf("one kind to one port: %+v", alerts[0])
	}
	a := e.Process(tcp(t0+2*ms, attacker, 60012, victim, 80, FlagSYN|FlagFIN|FlagPSH|FlagURG))
	if a == nil || a.Trigger != TriggerScore {
		t.Fatalf("NULL and SYN+FIN+PSH+URG to one port: %+v", a)
	}
	// the two kinds within the window: a stray FIN and a NULL an hour
	// later, from a client, are no scan
	e = newEngine(t, Config{})
	hour := int64(time.Hour)
	if alerts := run(t, e, tcp(t0, benign, 40000, victim, 80, FlagFIN), tcp(t0+hour, benign, 40001, victim, 443, 0)); len(alerts) != 0 {
		t.Fatalf("two stealth kinds an hour apart: %+v", alerts[0])
	}
	if alerts := run(t, e, tcp(t0+hour+ms, benign, 40002, victim, 443, FlagFIN|FlagPSH|FlagURG)); len(alerts) != 1 {
		t.Fatalf("NULL and XMAS within the window: %d alerts", len(alerts))
	}
	// a raised threshold asks for more than that
	e = newReplayEngine(t, Config{Threshold: 40})
	pkts = append(pkts, tcp(t0+2*ms, attacker, 60012, victim, 80, FlagSYN|FlagFIN|FlagPSH|FlagURG))
	if alerts := run(t, e, pkts...); len(alerts) != 0 {
		t.Fatalf("threshold 40: %+v", alerts[0])
	}
}

// A reported scanner's kernel resets the host's SYN-ACKs with bare RSTs;
// its probes are no longer kept, but those RSTs are not the host's answers
// to ACK probes of the host's own (a victim that also makes connections of
// its own was reported as an ACK scanner of its scanner).
func TestAlertedScannersRSTsAreNoProbesOfTheHost(t *testing.T) {
	e := newEngine(t, Config{TrapTCP: ports(143)})
	pkts := connect(t0, victim, 50000, benign, 8080) // the victim is a source too
	pkts = append(pkts, tcp(t0+ms, attacker, 40000, victim, 143, FlagSYN))
	for i := range 20 {
		sp := uint16(38832 + i)
		ts := t0 + int64(10+i)*ms
		pkts = append(pkts,
			tcp(ts, attacker, sp, victim, 80, FlagSYN),
			tcp(ts+ms/10, victim, 80, attacker, sp, FlagSYN|FlagACK),
			tcp(ts+ms/5, attacker, sp, victim, 80, FlagRST))
	}
	alerts := run(t, e, pkts...)
	if len(alerts) != 1 || alerts[0].Src != attacker {
		t.Fatalf("alerts %+v", alerts)
	}
}

// An ACK or Maimon probe to a trap port is a trap hit once the host's RST
// shows it belonged to no connection, on any host: the kernel trap lets
// the first one through for that answer.
func TestACKAndMaimonProbesOfATrapPort(t *testing.T) {
	for _, own := range []bool{false, true} {
		mk := newReplayEngine
		if own {
			mk = newEngine
		}
		e := mk(t, Config{TrapTCP: ports(111)})
		pkts := []*Probe{
			tcp(t0, attacker, 41000, victim, 111, FlagACK), // the filter drops it; the RST tells
			tcp(t0+ms/10, victim, 111, attacker, 41000, FlagRST),
		}
		alerts := run(t, e, pkts...)
		if len(alerts) != 1 || alerts[0].Trigger != TriggerTrap || alerts[0].Type != TypeACK {
			t.Fatalf("own=%v: ACK probe of a trap port: %+v", own, alerts)
		}
		e = mk(t, Config{TrapTCP: ports(111)})
		pkts = []*Probe{
			tcp(t0, attacker, 42000, victim, 111, FlagFIN|FlagACK),
			tcp(t0+ms/10, victim, 111, attacker, 42000, FlagRST),
		}
		alerts = run(t, e, pkts...)
		if len(alerts) != 1 || alerts[0].Trigger != TriggerTrap || alerts[0].Type != TypeMaimon {
			t.Fatalf("own=%v: Maimon probe of a trap port: %+v", own, alerts)
		}
	}
	// the close of a real connection on a trap-numbered port of another
	// host is no probe
	e := newReplayEngine(t, Config{TrapTCP: ports(143)})
	if alerts := run(t, e, connect(t0, benign, 50000, victim, 143)...); len(alerts) != 0 {
		t.Fatalf("a connection's close: %+v", alerts[0])
	}
}
