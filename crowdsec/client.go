// Package crowdsec speaks to CrowdSec's Local API (LAPI), so that hosts
// share their blocks through the engine already deployed for that rather
// than a protocol of scanwarden's own:
//
//   - push: each block is sent as an alert carrying a ban decision, as a
//     CrowdSec machine does (the credentials are those `cscli machines add`
//     writes), in order, from an on-disk queue that keeps what the LAPI
//     could not take yet across outages and restarts (Pusher);
//   - pull: the fleet's ban decisions are read from the decision stream,
//     as a bouncer does (the key `cscli bouncers add` prints), and handed
//     to the daemon to enforce and, when the LAPI deletes them, to lift
//     (Puller).
//
// It owns the LAPI's wire format, the login, the queue file and the
// record of which decisions stand for which address. It may not touch the
// firewall, the engine or the config file: the daemon hands it plain
// values, and enforces what it pulls through the block manager.
package crowdsec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/scanwarden/scanwarden/internal/excerpt"
	"github.com/scanwarden/scanwarden/internal/safefile"
)

// Tunables of the LAPI client.
const (
	// requestTimeout bounds one request to the LAPI: a LAPI that hangs
	// costs a pull or a send this long, then it is tried again later.
	requestTimeout = 10 * time.Second
	// maxBody bounds what is read of a LAPI answer: a decision stream at
	// startup holds every active decision (about 150 bytes each), so 64
	// MiB is some 400,000 of them.
	maxBody = 64 << 20
	// defaultAgent names scanwarden to the LAPI (its logs, cscli bouncers
	// list) when the caller gives no version. The LAPI wants NAME/VERSION:
	// it refuses a machine's login with a User-Agent of another form.
	defaultAgent = "scanwarden/dev"
)

// Credentials are a machine's LAPI credentials, as
// local_api_credentials.yaml holds them (what `cscli machines add NAME
// --password P -f FILE` writes).
type Credentials struct {
	URL      string
	Login    string
	Password string
}

// ReadCredentials reads a credentials file: `key: value` lines, of which
// url, login and password are needed (others, such as ca_cert_path, are
// ignored); values may be quoted. An error names the file and the line.
func ReadCredentials(path string) (Credentials, error) {
	b, _, err := safefile.ReadFile(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("crowdsec credentials: %w", err)
	}
	var c Credentials
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || line == "---" {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return Credentials{}, fmt.Errorf("%s:%d: want \"key: value\", got %q", path, i+1, excerpt.Of(line))
		}
		value = unquote(strings.TrimSpace(value))
		switch strings.TrimSpace(key) {
		case "url":
			c.URL = value
		case "login":
			c.Login = value
		case "password":
			c.Password = value
		}
	}
	for _, f := range []struct{ name, v string }{{"url", c.URL}, {"login", c.Login}, {"password", c.Password}} {
		if f.v == "" {
			return Credentials{}, fmt.Errorf("%s: no %s (the file `cscli machines add NAME --password P -f FILE` writes has url, login and password)", path, f.name)
		}
	}
	if _, err := baseURL(c.URL); err != nil {
		return Credentials{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ReadBouncerKey reads a file holding a bouncer's API key (what `cscli
// bouncers add NAME -o raw` prints), alone on its first line.
func ReadBouncerKey(path string) (string, error) {
	b, _, err := safefile.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("crowdsec bouncer key: %w", err)
	}
	key, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	key = strings.TrimSpace(key)
	if key == "" || strings.ContainsAny(key, " \t") {
		return "", fmt.Errorf("%s: want the bouncer key alone on the first line (cscli bouncers add NAME -o raw)", path)
	}
	return key, nil
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
		return v[1 : len(v)-1]
	}
	return v
}

// baseURL checks a LAPI URL (http or https, a host, no query) and returns
// it without a trailing slash.
func baseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return "", fmt.Errorf("LAPI url %q: want http://HOST:PORT or https://HOST:PORT", excerpt.Of(raw))
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// Alert is one alert as the LAPI's POST /v1/alerts takes it (CrowdSec's
// models.Alert, the fields scanwarden fills).
type Alert struct {
	Scenario        string     `json:"scenario"`
	ScenarioHash    string     `json:"scenario_hash"`
	ScenarioVersion string     `json:"scenario_version"`
	Message         string     `json:"message"`
	EventsCount     int32      `json:"events_count"`
	StartAt         string     `json:"start_at"`
	StopAt          string     `json:"stop_at"`
	Capacity        int32      `json:"capacity"`
	Leakspeed       string     `json:"leakspeed"`
	Simulated       bool       `json:"simulated"`
	Remediation     bool       `json:"remediation"`
	Events          []struct{} `json:"events"`
	Source          Source     `json:"source"`
	Decisions       []Decision `json:"decisions"`
}

// Source is an alert's source.
type Source struct {
	Scope string `json:"scope"`
	Value string `json:"value"`
	IP    string `json:"ip,omitempty"`
}

// Decision is a LAPI decision, as alerts carry them and the stream gives
// them.
type Decision struct {
	ID       int64  `json:"id,omitempty"`
	Duration string `json:"duration"`
	Origin   string `json:"origin"`
	Scenario string `json:"scenario"`
	Scope    string `json:"scope"`
	Type     string `json:"type"`
	Value    string `json:"value"`
}

// stream is the answer of GET /v1/decisions/stream.
type stream struct {
	New     []Decision `json:"new"`
	Deleted []Decision `json:"deleted"`
}

// client makes the LAPI's requests.
type client struct {
	base  string
	http  *http.Client
	agent string // the User-Agent, NAME/VERSION

	// machine login (push; the pusher's one goroutine uses them)
	login, password string
	token           string
	tokenUntil      time.Time

	// bouncer key (pull)
	key string
}

func newClient(base, version string) (*client, error) {
	b, err := baseURL(base)
	if err != nil {
		return nil, err
	}
	agent := defaultAgent
	if version = strings.Map(agentRune, version); version != "" {
		agent = "scanwarden/" + version
	}
	// a redirect is not followed: the LAPI makes none, and a client that
	// follows one turns a POST into a GET (alerts a 301 answers would be
	// taken for sent) and hands the X-Api-Key header to another host
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &client{base: b, http: &http.Client{Timeout: requestTimeout, CheckRedirect: noRedirect}, agent: agent}, nil
}

// agentRune keeps the characters of a version that a User-Agent's
// product version may hold.
func agentRune(r rune) rune {
	if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '+' || r == '_' {
		return r
	}
	return -1
}

// StatusError is a LAPI answer other than success (a redirect among
// them: it is not followed, and Body names where it leads).
type StatusError struct {
	Method, Path string
	Code         int
	Body         string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("LAPI %s %s: %d %s: %s", e.Method, e.Path, e.Code, http.StatusText(e.Code), excerpt.Of(strings.TrimSpace(e.Body)))
}

// do makes one request and decodes a JSON answer into out (nil: the body
// is read and dropped).
func (c *client) do(ctx context.Context, method, path string, hdr http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", c.agent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	name, _, _ := strings.Cut(path, "?") // for errors: the query is no news
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("LAPI %s %s: %w", method, name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("LAPI %s %s: reading the answer: %w", method, name, err)
	}
	if len(b) > maxBody {
		return fmt.Errorf("LAPI %s %s: answer over %d bytes", method, name, maxBody)
	}
	if resp.StatusCode/100 != 2 {
		body := string(b)
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
			body = "a redirect to " + loc + ", not followed: set the LAPI's own URL"
		}
		return &StatusError{Method: method, Path: name, Code: resp.StatusCode, Body: body}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("LAPI %s %s: %w", method, name, err)
		}
	}
	return nil
}

// tokenLife is how long a login's token is used at most; the LAPI's own
// lasts an hour, and a 401 asks for a new one at once.
const tokenLife = 30 * time.Minute

// bearer returns a machine token, logging in when there is none or it is
// old.
func (c *client) bearer(ctx context.Context, scenarios []string) (string, error) {
	if c.token != "" && time.Now().Before(c.tokenUntil) {
		return c.token, nil
	}
	var out struct {
		Token string `json:"token"`
	}
	in := map[string]any{"machine_id": c.login, "password": c.password, "scenarios": scenarios}
	if err := c.do(ctx, http.MethodPost, "/v1/watchers/login", nil, in, &out); err != nil {
		return "", err
	}
	if out.Token == "" {
		return "", errors.New("LAPI login: no token in the answer")
	}
	c.token, c.tokenUntil = out.Token, time.Now().Add(tokenLife)
	return c.token, nil
}

// alertsPath is where alerts are posted: a StatusError of another path
// (the login's) says nothing of the alerts.
const alertsPath = "/v1/alerts"

// pushAlerts sends alerts in one request, logging in first when needed
// (and once again on a 401: a token the LAPI forgot).
func (c *client) pushAlerts(ctx context.Context, alerts []Alert, scenarios []string) error {
	for try := 0; ; try++ {
		tok, err := c.bearer(ctx, scenarios)
		if err != nil {
			return err
		}
		err = c.do(ctx, http.MethodPost, alertsPath, http.Header{"Authorization": {"Bearer " + tok}}, alerts, nil)
		var se *StatusError
		if try == 0 && errors.As(err, &se) && se.Code == http.StatusUnauthorized {
			c.token = ""
			continue
		}
		return err
	}
}

// pullStream reads the decision stream: startup asks for every active
// decision (the first pull), otherwise what changed since the last pull
// with this key. Only the fleet's own decisions (origins crowdsec and
// cscli: its agents, scanwarden among them, and its administrators) of
// single addresses are asked for: community block lists are a firewall
// bouncer's business.
func (c *client) pullStream(ctx context.Context, startup bool) (stream, error) {
	q := url.Values{"origins": {"crowdsec,cscli"}, "scopes": {"ip"}}
	if startup {
		q.Set("startup", "true")
	}
	var s stream
	err := c.do(ctx, http.MethodGet, "/v1/decisions/stream?"+q.Encode(), http.Header{"X-Api-Key": {c.key}}, nil, &s)
	return s, err
}
