package alertfmt

// The oracle of the tests: writeAlert as cmd/scanwarden had it before this
// package, verbatim (encoding/json's reflection, fmt, a map), the
// definition of the bytes AppendText and AppendJSON must produce. Do not
// "fix" it: a change to the output formats is a change to both.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/scanwarden/scanwarden/detect"
)

// jsonAlert is one line of `replay --json`.
type jsonAlert struct {
	Src     string   `json:"src"`
	Type    string   `json:"type"`
	Time    string   `json:"time"`
	Probes  uint32   `json:"probes"`
	Ports   []uint16 `json:"ports"`
	Dst     []string `json:"dst"`
	Proto   string   `json:"proto"`
	Port    uint16   `json:"port"`
	Trigger string   `json:"trigger"`
	Score   int      `json:"score"`
	First   string   `json:"first"`
	File    string   `json:"file,omitempty"`
	// Forged: the source was judged forged (the probes were sent in its
	// name by someone else); the daemon would not block it. Evidence is
	// what the judgement rests on, for a forged or a genuine source.
	Forged   bool   `json:"forged,omitempty"`
	Evidence string `json:"evidence,omitempty"`
}

// writeAlert prints one alert as a JSON object or a readable line.
func writeAlert(w io.Writer, a *detect.Alert, file string, asJSON bool) error {
	if asJSON {
		j := jsonAlert{
			Src:     a.Src.String(),
			Type:    a.Type.String(),
			Time:    detect.FormatTime(a.Time),
			Probes:  a.Probes,
			Ports:   []uint16{},
			Dst:     make([]string, 0, len(a.Dst)),
			Proto:   strings.ToLower(detect.ProtoName(a.Proto)),
			Port:    a.Port,
			Trigger: a.Trigger.String(),
			Score:   a.Score,
			First:   detect.FormatTime(a.First),
			File:    file,
			Forged:  a.Origin.Verdict == detect.Forged,
		}
		if a.Origin.Verdict == detect.Forged || a.Origin.Verdict == detect.Genuine {
			j.Evidence = a.Origin.Evidence
		}
		seen := map[uint16]bool{}
		for _, p := range a.Ports {
			if !seen[p.Port] {
				seen[p.Port] = true
				j.Ports = append(j.Ports, p.Port)
			}
		}
		for _, d := range a.Dst {
			j.Dst = append(j.Dst, d.String())
		}
		b, err := json.Marshal(j)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	forged := ""
	if a.Origin.Verdict == detect.Forged {
		forged = ", forged: " + a.Origin.Evidence
	}
	_, err := fmt.Fprintf(w, "%s %s %s scan (%s): %d probes, score %d, last %s/%d, ports %s, dst %s%s\n",
		detect.FormatTime(a.Time), a.Src, a.Type, a.Trigger, a.Probes, a.Score,
		strings.ToLower(detect.ProtoName(a.Proto)), a.Port, portList(a.Ports), addrList(a.Dst), forged)
	return err
}

// portList prints ports compactly: tcp/1-5,22 udp/53.
func portList(ps []detect.PortRef) string {
	var b strings.Builder
	for i := 0; i < len(ps); {
		proto := ps[i].Proto
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strings.ToLower(detect.ProtoName(proto)))
		b.WriteByte('/')
		first := true
		for i < len(ps) && ps[i].Proto == proto {
			j := i
			for j+1 < len(ps) && ps[j+1].Proto == proto && ps[j+1].Port == ps[j].Port+1 {
				j++
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			b.WriteString(strconv.Itoa(int(ps[i].Port)))
			if j > i {
				b.WriteByte('-')
				b.WriteString(strconv.Itoa(int(ps[j].Port)))
			}
			i = j + 1
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

func addrList(as []netip.Addr) string {
	if len(as) == 0 {
		return "-"
	}
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}
