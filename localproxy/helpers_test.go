package localproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
)

// fakeTokens is a TokenSource for tests: it counts calls, records requests, can fail with any
// error and mints JWT-looking tokens ("eyJ…") so that leak checks have something to find.
type fakeTokens struct {
	mu       sync.Mutex
	calls    int
	reqs     []auth.TokenRequest
	err      error            // every call fails with it
	errFor   map[string]error // calls for this account name fail with it
	rotate   bool             // a new token on every call
	lifetime time.Duration
	cur      map[string]*auth.AccessToken
	issued   []string
}

func newFakeTokens() *fakeTokens {
	return &fakeTokens{cur: map[string]*auth.AccessToken{}, errFor: map[string]error{}, lifetime: time.Hour}
}

// accountIDs resolves the account names the fake knows.
var accountIDs = map[string]string{
	"":                     "id-adele",
	"adele@contoso.test":   "id-adele",
	"id-adele":             "id-adele",
	"alex@fabrikam.test":   "id-alex",
	"id-alex":              "id-alex",
	"megan@contoso.test":   "id-megan",
	"unknown@nowhere.test": "",
}

func (f *fakeTokens) Token(ctx context.Context, req auth.TokenRequest) (*auth.AccessToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.reqs = append(f.reqs, req)
	if f.err != nil {
		return nil, f.err
	}
	if err := f.errFor[req.Account]; err != nil {
		return nil, err
	}
	id, ok := accountIDs[req.Account]
	if !ok || id == "" {
		return nil, &auth.AccountError{Account: req.Account, Op: "finding account", Err: auth.ErrUnknownAccount}
	}
	key := id + "|" + req.Scopes.Key()
	tok := f.cur[key]
	if tok == nil || f.rotate || req.Claims != "" || (req.Rejected != "" && req.Rejected == tok.Value) {
		tok = f.mint(id, req.Scopes)
		f.cur[key] = tok
	}
	return tok, nil
}

func (f *fakeTokens) mint(id string, scopes auth.Scopes) *auth.AccessToken {
	var rnd [16]byte
	rand.Read(rnd[:])
	exp := time.Now().Add(f.lifetime).Truncate(time.Second)
	payload, _ := json.Marshal(map[string]any{"oid": id, "scp": scopes.String(), "exp": exp.Unix(), "n": len(f.issued)})
	v := "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(payload) + "." + hex.EncodeToString(rnd[:])
	f.issued = append(f.issued, v)
	return &auth.AccessToken{Value: v, Header: "Bearer " + v, ExpiresOn: exp, AccountID: id, Scopes: scopes.List()}
}

func (f *fakeTokens) set(fn func(f *fakeTokens)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeTokens) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeTokens) requests() []auth.TokenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]auth.TokenRequest(nil), f.reqs...)
}

func (f *fakeTokens) issuedTokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.issued...)
}

// seen is a request an upstream received.
type seen struct {
	Method, Path, RawPath, Query, Host, Proto string
	Header                                    http.Header
	Body                                      string
}

// upstream is an httptest server that records requests and answers with handle (default: 200
// with a small JSON body).
type upstream struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []seen
	handle http.HandlerFunc
}

func newUpstream(t *testing.T, handle http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{handle: handle}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func newTLSUpstream(t *testing.T, handle http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{handle: handle}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	u.EnableHTTP2 = true
	u.StartTLS()
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.reqs = append(u.reqs, seen{r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Host, r.Proto, r.Header.Clone(), string(body)})
	u.mu.Unlock()
	if u.handle != nil {
		u.handle(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

func (u *upstream) last(t *testing.T) seen {
	t.Helper()
	r := u.requests()
	if len(r) == 0 {
		t.Fatal("the upstream received no request")
	}
	return r[len(r)-1]
}

// testLogger returns a logger writing JSON lines to a buffer that is safe to read later.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startProxy builds and starts a proxy on 127.0.0.1:0; Listen and Logger default for tests.
func startProxy(t *testing.T, opts Options) *Server {
	t.Helper()
	s := newProxy(t, opts)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

func newProxy(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bearerRoute(name, prefix, upstream string, scopes ...string) config.Route {
	return config.Route{Name: name, Prefix: prefix, Upstream: upstream, Scopes: scopes, Auth: config.AuthBearer}
}

// client never follows redirects.
var client = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       60 * time.Second,
}

type result struct {
	Status int
	Header http.Header
	Body   string
	Err    errorBody
}

func do(t *testing.T, req *http.Request) result {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := result{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		json.Unmarshal(b, &r.Err)
	}
	return r
}

func get(t *testing.T, url string, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

// raw sends a hand-written request (for targets the Go client would never send) and returns
// the status and body.
func raw(t *testing.T, addr, request string) result {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", request, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := result{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
	json.Unmarshal(b, &r.Err)
	return r
}

func hostOf(s *Server) string { return s.Addr().String() }

// makeJWT builds an unsigned JWT-shaped string with the given exp.
func makeJWT(claims map[string]any) string {
	p, _ := json.Marshal(claims)
	var rnd [8]byte
	rand.Read(rnd[:])
	return "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + base64.RawURLEncoding.EncodeToString(p) + "." + hex.EncodeToString(rnd[:])
}

var discardLogger = slog.New(slog.DiscardHandler)
