package localproxy

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
	"github.com/entra-companion/entra-companion/sim"
)

// These tests run the proxy against the simulated cloud over TLS. The token source is a fake
// backed by sim.IssueAccessToken (the real broker is tested in auth).

// simTokens mints real sim tokens; account names are UPNs ("" is Adele) and account IDs too.
type simTokens struct {
	sim    *sim.Server
	mu     sync.Mutex
	cur    map[string]*auth.AccessToken
	reqs   []auth.TokenRequest
	issued []string
}

func newSimTokens(s *sim.Server) *simTokens {
	return &simTokens{sim: s, cur: map[string]*auth.AccessToken{}}
}

func (t *simTokens) Token(ctx context.Context, req auth.TokenRequest) (*auth.AccessToken, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reqs = append(t.reqs, req)
	upn := req.Account
	if upn == "" {
		upn = sim.UserAdele
	}
	if _, ok := t.sim.User(upn); !ok {
		return nil, &auth.AccountError{Account: upn, Op: "finding account", Err: auth.ErrUnknownAccount}
	}
	key := upn + "|" + req.Scopes.Key()
	tok := t.cur[key]
	if tok == nil || req.Claims != "" || (req.Rejected != "" && req.Rejected == tok.Value) {
		v, err := t.sim.IssueAccessToken(upn, req.Scopes.List()...)
		if err != nil {
			return nil, &auth.AccountError{Account: upn, Op: "refreshing token", Err: auth.ErrUnavailable}
		}
		exp, _ := jwtExpiry(v)
		tok = &auth.AccessToken{Value: v, Header: "Bearer " + v, ExpiresOn: exp, AccountID: upn, Scopes: req.Scopes.List()}
		t.cur[key] = tok
		t.issued = append(t.issued, v)
	}
	return tok, nil
}

func (t *simTokens) requests() []auth.TokenRequest {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]auth.TokenRequest(nil), t.reqs...)
}

const (
	cmsRead   = "api://entra-companion-cms/Articles.Read"
	graphRead = "https://graph.microsoft.com/User.Read"
)

type echo struct {
	Method, Path, Proto, Host string
	RawQuery                  string   `json:"raw_query"`
	Headers                   []string `json:"headers"`
	Authorized                bool     `json:"authorized"`
	Auth                      string   `json:"auth"`
	User                      string   `json:"preferred_username"`
	AuthError                 string   `json:"auth_error"`
}

func simProxy(t *testing.T, s *sim.Server, tokens TokenSource, logger *logBuffer) *Server {
	opts := Options{
		Tokens:      tokens,
		Transport:   s.Client().Transport,
		GraphScopes: auth.NewScopes(graphRead),
		Routes: []config.Route{
			bearerRoute("cms", "/cms/", s.CMSURL(), cmsRead),
			bearerRoute("graph", "/graph/", s.GraphURL(), graphRead),
			{Name: "strapi", Prefix: "/strapi/", Upstream: s.CMSURL(), Auth: config.AuthStrapi},
		},
	}
	if logger != nil {
		opts.Logger = logger.logger()
	}
	return startProxy(t, opts)
}

func getEcho(t *testing.T, url string, hdr ...string) echo {
	t.Helper()
	r := get(t, url, hdr...)
	if r.Status != 200 {
		t.Fatalf("GET %s: %d %s", url, r.Status, r.Body)
	}
	var e echo
	if err := json.Unmarshal([]byte(r.Body), &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestSimBearer(t *testing.T) {
	s := sim.Start(t)
	tokens := newSimTokens(s)
	p := simProxy(t, s, tokens, nil)
	base := p.BaseURL()

	e := getEcho(t, base+"/cms/api/echo?x=1", "Cookie", "a=b", "Authorization", "Bearer nope")
	if !e.Authorized || e.Auth != "entra" || !strings.EqualFold(e.User, sim.UserAdele) || e.Path != "/api/echo" || e.RawQuery != "x=1" {
		t.Errorf("echo: %+v", e)
	}
	if e.Proto != "HTTP/2.0" {
		t.Errorf("the proxy reached the CMS over %s, want HTTP/2.0", e.Proto)
	}
	for _, h := range e.Headers {
		if h == "Cookie" || h == HeaderAccount || h == HeaderKey {
			t.Errorf("%s reached the CMS", h)
		}
	}
	e = getEcho(t, base+"/cms/api/echo", HeaderAccount, sim.UserAlex)
	if !strings.EqualFold(e.User, sim.UserAlex) {
		t.Errorf("X-Entra-Account: token of %q", e.User)
	}
	if r := get(t, base+"/cms/api/articles"); r.Status != 200 || !strings.Contains(r.Body, `"data"`) {
		t.Errorf("articles: %d %s", r.Status, r.Body)
	}
	r := get(t, base+"/graph/me")
	if r.Status != 200 || !strings.Contains(strings.ToLower(r.Body), sim.UserAdele) {
		t.Errorf("graph /me: %d %s", r.Status, r.Body)
	}
	if r := get(t, base+"/cms/api/echo", HeaderAccount, "nobody@nowhere.test"); r.Status != 400 || r.Err.Error != codeUnknownAccount {
		t.Errorf("unknown account: %d %s", r.Status, r.Body)
	}
}

// TestSimContinuousAccessEvaluation: after a revocation the CMS and Graph answer 401 with a
// claims challenge; the proxy gets a token with those claims and retries once.
func TestSimContinuousAccessEvaluation(t *testing.T) {
	s := sim.Start(t)
	tokens := newSimTokens(s)
	p := simProxy(t, s, tokens, nil)
	base := p.BaseURL()
	getEcho(t, base+"/cms/api/echo")
	if r := get(t, base+"/graph/me"); r.Status != 200 {
		t.Fatalf("graph: %d", r.Status)
	}
	s.RevokeAccessTokens(sim.UserAdele)
	// /api/echo answers 200 even for a refused token; /api/articles answers the 401.
	if r := get(t, base+"/cms/api/articles"); r.Status != 200 {
		t.Errorf("CMS after revocation: %d %s", r.Status, r.Body)
	}
	if e := getEcho(t, base+"/cms/api/echo"); !e.Authorized {
		t.Errorf("echo after the retry: %+v", e)
	}
	if r := get(t, base+"/graph/me"); r.Status != 200 {
		t.Errorf("graph after revocation: %d %s", r.Status, r.Body)
	}
	var withClaims int
	for _, r := range tokens.requests() {
		if r.Claims != "" {
			withClaims++
			if !strings.HasPrefix(r.Claims, "{") {
				t.Errorf("claims not decoded: %q", r.Claims)
			}
		}
	}
	if withClaims != 2 || p.Status().Counters.Retries != 2 {
		t.Errorf("token requests with claims = %d, retries = %d, want 2 and 2", withClaims, p.Status().Counters.Retries)
	}
}

func TestSimStrapiExchange(t *testing.T) {
	s := sim.Start(t)
	tokens := newSimTokens(s)
	p := simProxy(t, s, tokens, nil)
	base := p.BaseURL()
	for i := 0; i < 3; i++ {
		e := getEcho(t, base+"/strapi/api/echo")
		if !e.Authorized || e.Auth != "cms" || !strings.EqualFold(e.User, sim.UserAdele) {
			t.Fatalf("echo: %+v", e)
		}
	}
	if r := get(t, base+"/strapi/api/users/me"); r.Status != 200 || !strings.Contains(strings.ToLower(r.Body), sim.UserAdele) {
		t.Errorf("users/me: %d %s", r.Status, r.Body)
	}
	if n := s.Count(sim.EndpointCMSCallback); n != 1 {
		t.Errorf("exchanges = %d, want 1", n)
	}
	e := getEcho(t, base+"/strapi/api/echo", HeaderAccount, sim.UserAlex)
	if !strings.EqualFold(e.User, sim.UserAlex) || s.Count(sim.EndpointCMSCallback) != 2 {
		t.Errorf("alex: %+v, %d exchanges", e, s.Count(sim.EndpointCMSCallback))
	}
	for _, r := range tokens.requests() {
		if r.Scopes.Key() != strings.ToLower(graphRead) {
			t.Errorf("the exchange used a token for %q", r.Scopes.Key())
		}
	}
}

func TestSimStreams(t *testing.T) {
	s := sim.Start(t)
	p := simProxy(t, s, newSimTokens(s), nil)
	base := p.BaseURL()

	start := time.Now()
	resp, err := client.Get(base + "/cms/api/stream?n=4&interval_ms=300")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	var firstAt time.Duration
	events := 0
	for {
		line, err := br.ReadString('\n')
		if strings.HasPrefix(line, "data: ") {
			events++
			if events == 1 {
				firstAt = time.Since(start)
			}
		}
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	total := time.Since(start)
	if events != 4 || firstAt > total/2 {
		t.Errorf("%d events; first after %v of %v: the stream was buffered", events, firstAt, total)
	}

	const size = 64 << 20
	resp, err = client.Get(base + "/cms/api/download?size=67108864")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("download: %d", resp.StatusCode)
	}
	buf := make([]byte, 256<<10)
	want := make([]byte, len(buf))
	var off int64
	for {
		n, err := io.ReadFull(resp.Body, buf)
		if n > 0 {
			sim.DownloadBytes(off, want[:n])
			if string(buf[:n]) != string(want[:n]) {
				t.Fatalf("bytes differ at %d", off)
			}
			off += int64(n)
		}
		if err != nil {
			break
		}
	}
	if off != size {
		t.Errorf("downloaded %d bytes, want %d", off, size)
	}
}

func TestSimCMSDown(t *testing.T) {
	s := sim.Start(t)
	p := simProxy(t, s, newSimTokens(s), nil)
	base := p.BaseURL()
	getEcho(t, base+"/cms/api/echo")
	s.StopCMS()
	r := get(t, base+"/cms/api/echo")
	if r.Status != 502 || r.Err.Error != codeUpstream || r.Err.Route != "cms" {
		t.Errorf("CMS down: %d %s", r.Status, r.Body)
	}
	if r := get(t, base+"/strapi/api/echo"); r.Status != 502 || r.Err.Error != codeUpstream {
		t.Errorf("strapi exchange with the CMS down: %d %s", r.Status, r.Body)
	}
	if err := s.StartCMS(); err != nil {
		t.Fatal(err)
	}
	getEcho(t, base+"/cms/api/echo")
}

// TestSimNoTokenInLogs: a session against the sim, then no sim-issued token in the log or on
// the status page.
func TestSimNoTokenInLogs(t *testing.T) {
	s := sim.Start(t)
	tokens := newSimTokens(s)
	var logs logBuffer
	p := simProxy(t, s, tokens, &logs)
	base := p.BaseURL()
	getEcho(t, base+"/cms/api/echo")
	getEcho(t, base+"/strapi/api/echo")
	get(t, base+"/graph/me")
	s.RevokeAccessTokens(sim.UserAdele)
	get(t, base+"/cms/api/articles")
	status := get(t, base+"/_companion/status")
	tokens.mu.Lock()
	issued := append([]string(nil), tokens.issued...)
	tokens.mu.Unlock()
	for _, text := range []string{logs.String(), status.Body} {
		if strings.Contains(text, "eyJ") {
			t.Error("JWT-shaped text in the log or status page")
		}
		for _, tok := range issued {
			if strings.Contains(text, tok) {
				t.Error("an issued token in the log or status page")
			}
		}
	}
}
