package localproxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
)

func TestForwarding(t *testing.T) {
	up := newUpstream(t, nil)
	tokens := newFakeTokens()
	s := startProxy(t, Options{
		Tokens: tokens,
		Routes: []config.Route{
			bearerRoute("cms", "/cms/", up.URL+"/", "api://cms/Articles.Read"),
			bearerRoute("graph", "/graph/", up.URL+"/v1.0", "User.Read"),
			{Name: "open", Prefix: "/open/", Upstream: up.URL + "/base/", Auth: "none"},
		},
	})
	base := s.BaseURL()
	upHost := strings.TrimPrefix(up.URL, "http://")

	req, _ := http.NewRequest(http.MethodGet, base+"/cms/api/articles?x=1&sort=title%3Aasc", nil)
	req.Header.Set("Authorization", "Bearer client-supplied")
	req.Header.Set("Cookie", "session=1")
	req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	req.Header.Set(HeaderAccount, "alex@fabrikam.test")
	req.Header.Set("X-Trace-Id", "t-1")
	r := do(t, req)
	if r.Status != 200 {
		t.Fatalf("GET: %d %s", r.Status, r.Body)
	}
	got := up.last(t)
	if got.Path != "/api/articles" || got.Query != "x=1&sort=title%3Aasc" {
		t.Errorf("upstream got %s?%s", got.Path, got.Query)
	}
	if got.Host != upHost {
		t.Errorf("upstream Host = %q, want %q", got.Host, upHost)
	}
	tok := tokens.cur["id-alex|api://cms/articles.read"]
	if tok == nil {
		t.Fatalf("no token was issued for alex: %v", tokens.requests())
	}
	if got.Header.Get("Authorization") != tok.Header || len(got.Header.Values("Authorization")) != 1 {
		t.Errorf("Authorization = %q", got.Header.Values("Authorization"))
	}
	for _, h := range []string{"Cookie", "Proxy-Authorization", HeaderAccount, HeaderKey} {
		if got.Header.Get(h) != "" {
			t.Errorf("%s reached the upstream", h)
		}
	}
	if got.Header.Get("X-Trace-Id") != "t-1" {
		t.Error("an ordinary header was dropped")
	}
	if reqs := tokens.requests(); len(reqs) != 1 || reqs[0].Account != "alex@fabrikam.test" || reqs[0].Scopes.Key() != "api://cms/articles.read" {
		t.Errorf("token requests: %+v", reqs)
	}

	// The upstream's base path is kept; the exact prefix without slash maps to the root.
	get(t, base+"/graph/me")
	if p := up.last(t).Path; p != "/v1.0/me" {
		t.Errorf("graph path = %q", p)
	}
	get(t, base+"/graph")
	if p := up.last(t).Path; p != "/v1.0/" {
		t.Errorf("bare prefix path = %q", p)
	}
	// Encoded characters keep their encoding.
	get(t, base+"/graph/users/a%20b%3Fc")
	if g := up.last(t); g.Path != "/v1.0/users/a b?c" {
		t.Errorf("encoded path = %q raw %q", g.Path, g.RawPath)
	}

	// auth none: nothing attached, client credentials still dropped.
	req, _ = http.NewRequest(http.MethodGet, base+"/open/file.txt", nil)
	req.Header.Set("Authorization", "Bearer client-supplied")
	do(t, req)
	if g := up.last(t); g.Path != "/base/file.txt" || g.Header.Get("Authorization") != "" {
		t.Errorf("none route: %s auth %q", g.Path, g.Header.Get("Authorization"))
	}
	if n := tokens.callCount(); n != 4 {
		t.Errorf("token calls = %d, want one per bearer request (4)", n)
	}
}

func TestAccountSelection(t *testing.T) {
	up := newUpstream(t, nil)
	tokens := newFakeTokens()
	s := startProxy(t, Options{
		Tokens: tokens,
		Routes: []config.Route{
			bearerRoute("graph", "/graph/", up.URL, "User.Read"),
			{Name: "pinned", Prefix: "/pinned/", Upstream: up.URL, Scopes: []string{"User.Read"}, Account: "megan@contoso.test"},
		},
	})
	base := s.BaseURL()
	get(t, base+"/graph/me")
	get(t, base+"/graph/me", HeaderAccount, "id-alex")
	get(t, base+"/pinned/me")
	get(t, base+"/pinned/me", HeaderAccount, "adele@contoso.test")
	var accounts []string
	for _, r := range tokens.requests() {
		accounts = append(accounts, r.Account)
	}
	want := []string{"", "id-alex", "megan@contoso.test", "adele@contoso.test"}
	if fmt.Sprint(accounts) != fmt.Sprint(want) {
		t.Errorf("accounts asked for = %q, want %q", accounts, want)
	}
}

func TestTokenErrors(t *testing.T) {
	up := newUpstream(t, nil)
	tokens := newFakeTokens()
	s := startProxy(t, Options{Tokens: tokens, Routes: []config.Route{bearerRoute("graph", "/graph/", up.URL, "User.Read")}})
	tests := []struct {
		err     error
		account string
		status  int
		code    string
		words   string
	}{
		{&auth.AccountError{Account: "adele@contoso.test", Op: "refreshing token", Code: "invalid_grant", Err: auth.ErrNeedsSignIn}, "", 401, "needs_sign_in", "entra-companion login"},
		{auth.ErrNoAccount, "", 401, "needs_sign_in", "entra-companion login"},
		{fmt.Errorf("resolving: %w", auth.ErrUnknownAccount), "nobody@contoso.test", 400, "unknown_account", "nobody@contoso.test"},
		{fmt.Errorf("refreshing: %w", auth.ErrUnavailable), "", 503, "token_unavailable", "network"},
		{auth.ErrKeychainTimeout, "alex@fabrikam.test", 503, "token_unavailable", "keychain"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			tokens.set(func(f *fakeTokens) { f.err = tt.err })
			before := len(up.requests())
			var hdr []string
			if tt.account != "" {
				hdr = []string{HeaderAccount, tt.account}
			}
			r := get(t, s.BaseURL()+"/graph/me", hdr...)
			if r.Status != tt.status || r.Err.Error != tt.code {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, tt.status, tt.code)
			}
			if r.Err.Route != "graph" {
				t.Errorf("route = %q", r.Err.Route)
			}
			wantAccount := tt.account
			if wantAccount == "" {
				wantAccount = "active"
			}
			if r.Err.Account != wantAccount {
				t.Errorf("account = %q, want %q", r.Err.Account, wantAccount)
			}
			if !strings.Contains(r.Err.Message, tt.words) {
				t.Errorf("message %q does not mention %q", r.Err.Message, tt.words)
			}
			if len(up.requests()) != before {
				t.Error("the request reached the upstream without a token")
			}
		})
	}
	if got := s.Status().Counters.TokenErrors; got != int64(len(tests)) {
		t.Errorf("token errors = %d", got)
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	s := startProxy(t, Options{Tokens: newFakeTokens(), Routes: []config.Route{bearerRoute("cms", "/cms/", dead)}})
	r := get(t, s.BaseURL()+"/cms/api/articles?secret=1")
	if r.Status != 502 || r.Err.Error != "upstream_unreachable" || r.Err.Route != "cms" {
		t.Fatalf("got %d %s", r.Status, r.Body)
	}
	if !strings.Contains(r.Err.Message, strings.TrimPrefix(dead, "http://")) || strings.Contains(r.Body, "secret") || strings.Contains(r.Body, "eyJ") {
		t.Errorf("message = %q", r.Err.Message)
	}
	if s.Status().Counters.UpstreamErrors != 1 {
		t.Error("upstream error not counted")
	}
}

// authUpstream accepts only the Authorization values in ok, answering 401 (with an optional
// challenge) otherwise.
type authUpstream struct {
	*upstream
	mu        sync.Mutex
	ok        map[string]bool
	challenge string
}

func newAuthUpstream(t *testing.T) *authUpstream {
	a := &authUpstream{ok: map[string]bool{}}
	a.upstream = newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		ok, ch := a.ok[r.Header.Get("Authorization")], a.challenge
		a.mu.Unlock()
		if !ok {
			if ch != "" {
				w.Header().Set("WWW-Authenticate", ch)
			}
			w.Header().Set("X-Upstream", "said no")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_token"}`)
			return
		}
		w.Write([]byte("ok"))
	})
	return a
}

func (a *authUpstream) accept(hdr string) {
	a.mu.Lock()
	a.ok[hdr] = true
	a.mu.Unlock()
}

// TestRetryAfter401: an upstream that refuses every token gets one retry with a refreshed
// token, then its 401 passes through unchanged; the refreshed token, refused too, is not
// refreshed again on the next request.
func TestRetryAfter401(t *testing.T) {
	up := newAuthUpstream(t)
	tokens := newFakeTokens()
	s := startProxy(t, Options{Tokens: tokens, Routes: []config.Route{bearerRoute("api", "/api/", up.URL, "api://x/.default")}})
	first := get(t, s.BaseURL()+"/api/a")
	if first.Status != 401 || first.Header.Get("X-Upstream") != "said no" || first.Body != `{"error":"invalid_token"}` {
		t.Fatalf("401 changed: %d %v %s", first.Status, first.Header, first.Body)
	}
	reqs := tokens.requests()
	issued := tokens.issuedTokens()
	if len(reqs) != 2 || reqs[0].Rejected != "" || reqs[1].Rejected != issued[0] {
		t.Fatalf("token requests: %+v", reqs)
	}
	u := up.requests()
	if len(u) != 2 || u[0].Header.Get("Authorization") != "Bearer "+issued[0] || u[1].Header.Get("Authorization") != "Bearer "+issued[1] {
		t.Fatalf("upstream requests: %d", len(u))
	}
	get(t, s.BaseURL()+"/api/a")
	if n, calls := len(up.requests()), tokens.callCount(); n != 3 || calls != 3 {
		t.Errorf("upstream requests = %d (want 3), token calls = %d (want 3): a refused refreshed token was refreshed again", n, calls)
	}
	if got := s.Status().Counters.Retries; got != 1 {
		t.Errorf("retries = %d", got)
	}
}

// TestRetryRefreshedToken: a revoked token is refused once, the refreshed one is accepted.
func TestRetryRefreshedToken(t *testing.T) {
	var mu sync.Mutex
	revoked := ""
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		bad := r.Header.Get("Authorization") == "Bearer "+revoked
		mu.Unlock()
		if bad {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "ok")
	})
	tokens := newFakeTokens()
	s := startProxy(t, Options{Tokens: tokens, Routes: []config.Route{bearerRoute("api", "/api/", up.URL, "api://x/.default")}})
	if r := get(t, s.BaseURL()+"/api/a"); r.Status != 200 {
		t.Fatalf("first: %d", r.Status)
	}
	first := tokens.issuedTokens()[0]
	mu.Lock()
	revoked = first
	mu.Unlock()
	if r := get(t, s.BaseURL()+"/api/b"); r.Status != 200 {
		t.Fatalf("after revocation: %d %s", r.Status, r.Body)
	}
	reqs := tokens.requests()
	if len(reqs) != 3 || reqs[1].Rejected != "" || reqs[2].Rejected != first {
		t.Errorf("token requests: %+v", reqs)
	}
	if r := get(t, s.BaseURL()+"/api/c"); r.Status != 200 || tokens.callCount() != 4 || len(up.requests()) != 4 {
		t.Errorf("next request: %d, %d token calls, %d upstream requests", r.Status, tokens.callCount(), len(up.requests()))
	}
}

func TestRetryClaimsChallenge(t *testing.T) {
	claims := `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`
	enc := base64.StdEncoding.EncodeToString([]byte(claims))
	var mu sync.Mutex
	n := 0
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="`+enc+`"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "ok")
	})
	tokens := newFakeTokens()
	s := startProxy(t, Options{Tokens: tokens, Routes: []config.Route{bearerRoute("graph", "/graph/", up.URL, "User.Read")}})
	r := get(t, s.BaseURL()+"/graph/me")
	if r.Status != 200 {
		t.Fatalf("got %d %s", r.Status, r.Body)
	}
	reqs := tokens.requests()
	if len(reqs) != 2 || reqs[1].Claims != claims || reqs[1].Rejected != "" {
		t.Fatalf("token requests: %+v", reqs)
	}
	u := up.requests()
	if len(u) != 2 || u[0].Header.Get("Authorization") == u[1].Header.Get("Authorization") {
		t.Error("the retry did not use the new token")
	}
}

func TestRetryReplaysBody(t *testing.T) {
	var mu sync.Mutex
	n := 0
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n%2 == 1
		mu.Unlock()
		if first {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "ok")
	})
	tokens := newFakeTokens()
	s := startProxy(t, Options{Tokens: tokens, Routes: []config.Route{bearerRoute("api", "/api/", up.URL)}})
	body := strings.Repeat("0123456789abcdef", 4096) // 64 KiB
	req, _ := http.NewRequest(http.MethodPost, s.BaseURL()+"/api/items", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	r := do(t, req)
	if r.Status != 200 {
		t.Fatalf("got %d", r.Status)
	}
	u := up.requests()
	if len(u) != 2 || u[0].Body != body || u[1].Body != body || u[1].Header.Get("Content-Type") != "application/json" {
		t.Fatalf("upstream saw %d requests, bodies %d/%d bytes", len(u), len(u[0].Body), len(u[len(u)-1].Body))
	}

	// A chunked body (unknown length) is streamed, not kept: the 401 passes through.
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(body))
		pw.Close()
	}()
	req, _ = http.NewRequest(http.MethodPost, s.BaseURL()+"/api/items", pr)
	r = do(t, req)
	if r.Status != 401 {
		t.Errorf("chunked body: got %d, want the upstream's 401", r.Status)
	}
	if u := up.requests(); len(u) != 3 || u[2].Body != body {
		t.Errorf("chunked: upstream saw %d requests", len(u))
	}

	// A body over 1 MiB is not kept either.
	big := strings.Repeat("x", maxReplayBody+1)
	mu.Lock()
	n = 0
	mu.Unlock()
	req, _ = http.NewRequest(http.MethodPut, s.BaseURL()+"/api/blob", strings.NewReader(big))
	if r := do(t, req); r.Status != 401 {
		t.Errorf("big body: got %d, want 401", r.Status)
	}
}

func TestRedirects(t *testing.T) {
	var sawAuth sync.Map
	other := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		sawAuth.Store(r.URL.Path, r.Header.Get("Authorization"))
		io.WriteString(w, "elsewhere")
	})
	var up *upstream
	up = newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/base/inside":
			http.Redirect(w, r, up.URL+"/base/target?x=1#frag", http.StatusFound)
		case "/base/relative":
			w.Header().Set("Location", "/base/target2")
			w.WriteHeader(http.StatusMovedPermanently)
		case "/base/outside-base":
			w.Header().Set("Location", "/other/path")
			w.WriteHeader(http.StatusFound)
		case "/base/away":
			http.Redirect(w, r, other.URL+"/landing", http.StatusTemporaryRedirect)
		case "/base/protocol-relative":
			w.Header().Set("Location", "//"+strings.TrimPrefix(other.URL, "http://")+"/pr")
			w.WriteHeader(http.StatusFound)
		default:
			io.WriteString(w, "target "+r.URL.Path)
		}
	})
	s := startProxy(t, Options{Tokens: newFakeTokens(), Routes: []config.Route{bearerRoute("cms", "/cms/", up.URL+"/base")}})
	base := s.BaseURL()
	tests := []struct{ path, location string }{
		{"/cms/inside", base + "/cms/target?x=1#frag"},
		{"/cms/relative", base + "/cms/target2"},
		{"/cms/outside-base", "/other/path"},
		{"/cms/away", other.URL + "/landing"},
		{"/cms/protocol-relative", "//" + strings.TrimPrefix(other.URL, "http://") + "/pr"},
	}
	for _, tt := range tests {
		r := get(t, base+tt.path)
		if r.Status/100 != 3 || r.Header.Get("Location") != tt.location {
			t.Errorf("%s: %d Location %q, want %q", tt.path, r.Status, r.Header.Get("Location"), tt.location)
		}
	}
	// A client that follows redirects: into the upstream it stays on the proxy (token
	// attached); away from it, the other host never sees the token.
	follow := &http.Client{}
	resp, err := follow.Get(base + "/cms/away")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "elsewhere" {
		t.Fatalf("followed to %q", b)
	}
	if v, ok := sawAuth.Load("/landing"); !ok || v.(string) != "" {
		t.Errorf("the other host saw Authorization %q", v)
	}
	resp, err = follow.Get(base + "/cms/inside")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "target /base/target" || !strings.HasPrefix(up.last(t).Header.Get("Authorization"), "Bearer eyJ") {
		t.Errorf("followed inside: %q", b)
	}
}

func TestSSEStreams(t *testing.T) {
	next := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "data: event %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Second):
				return
			}
		}
	})
	s := startProxy(t, Options{Tokens: newFakeTokens(), Routes: []config.Route{bearerRoute("cms", "/cms/", up.URL)}})
	resp, err := client.Get(s.BaseURL() + "/cms/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := 0; i < 3; i++ {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if want := fmt.Sprintf("data: event %d\n", i); line != want {
			t.Fatalf("got %q, want %q", line, want)
		}
		br.ReadString('\n')
		// The upstream sends the next event only now: the proxy did not wait for the end.
		next <- struct{}{}
	}
}

// TestLargeDownloadStreams checks that a large body goes through without being buffered:
// the bytes allocated while copying stay far below the body size.
func TestLargeDownloadStreams(t *testing.T) {
	size := int64(1 << 30)
	if testing.Short() {
		size = 256 << 20
	}
	chunk := make([]byte, 64<<10)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		for left := size; left > 0; {
			n := min(left, int64(len(chunk)))
			if _, err := w.Write(chunk[:n]); err != nil {
				return
			}
			left -= n
		}
	})
	s := startProxy(t, Options{Tokens: newFakeTokens(), Routes: []config.Route{bearerRoute("cms", "/cms/", up.URL)}})
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	resp, err := client.Get(s.BaseURL() + "/cms/download")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	var peak uint64
	var n int64
	for {
		m, err := resp.Body.Read(buf)
		n += int64(m)
		if n%(64<<20) < int64(m) {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if n != size {
		t.Fatalf("got %d bytes, want %d", n, size)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d MiB through the proxy: %d KiB allocated, peak heap in use %d MiB", size>>20, allocated>>10, peak>>20)
	if allocated > 32<<20 {
		t.Errorf("%d MiB allocated while streaming %d MiB: the body is being buffered", allocated>>20, size>>20)
	}
	if peak > before.HeapInuse+64<<20 {
		t.Errorf("heap in use grew to %d MiB", peak>>20)
	}
}

func TestHTTP2ToHTTPSUpstream(t *testing.T) {
	up := newTLSUpstream(t, nil)
	s := startProxy(t, Options{
		Tokens:    newFakeTokens(),
		Transport: up.Client().Transport, // trusts the test CA
		Routes:    []config.Route{bearerRoute("graph", "/graph/", up.URL+"/v1.0", "User.Read")},
	})
	for i := 0; i < 3; i++ {
		if r := get(t, s.BaseURL()+"/graph/me"); r.Status != 200 {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
	}
	if p := up.last(t).Proto; p != "HTTP/2.0" {
		t.Errorf("upstream saw %s, want HTTP/2.0", p)
	}
	// The default transport negotiates HTTP/2 as well (checked against the same TLS server
	// with its CA added to a clone).
	tr := s.base.(*http.Transport)
	if !tr.ForceAttemptHTTP2 || tr.MaxIdleConnsPerHost < 256 {
		t.Errorf("transport not tuned: %+v", tr)
	}
	def := newTransport()
	if !def.ForceAttemptHTTP2 || def.MaxIdleConnsPerHost < 256 || def.Proxy == nil || def.TLSHandshakeTimeout == 0 {
		t.Errorf("default transport: %+v", def)
	}
}

func TestCompanionPages(t *testing.T) {
	up := newUpstream(t, nil)
	tokens := newFakeTokens()
	lister := staticAccounts{
		{ID: "id-adele", Username: "adele@contoso.test", State: auth.StateReady, Active: true},
		{ID: "id-alex", Username: "alex@fabrikam.test", State: auth.StateNeedsSignIn, Detail: "password changed"},
	}
	s := startProxy(t, Options{
		Tokens:   tokens,
		Accounts: lister,
		Routes: []config.Route{
			bearerRoute("graph", "/graph/", up.URL, "User.Read"),
			{Name: "open", Prefix: "/open/", Upstream: up.URL, Auth: "none"},
		},
	})
	base := s.BaseURL()
	r := get(t, base+"/_companion/health")
	if r.Status != 200 || strings.TrimSpace(r.Body) != `{"status":"ok"}` {
		t.Fatalf("health: %d %s", r.Status, r.Body)
	}
	get(t, base+"/graph/me")
	get(t, base+"/graph/me", HeaderAccount, "megan@contoso.test")
	get(t, base+"/open/x")
	get(t, base+"/nothing")
	r = get(t, base+"/_companion/status")
	if r.Status != 200 {
		t.Fatalf("status: %d", r.Status)
	}
	var st Status
	if err := json.Unmarshal([]byte(r.Body), &st); err != nil {
		t.Fatal(err)
	}
	if st.BaseURL != base || len(st.Routes) != 2 {
		t.Errorf("status: %+v", st)
	}
	if len(st.Accounts) != 3 || st.Accounts[0].ID != "id-adele" || !st.Accounts[0].Active || st.Accounts[1].State != auth.StateNeedsSignIn || st.Accounts[2].ID != "id-megan" {
		t.Fatalf("accounts: %+v", st.Accounts)
	}
	adele := st.Accounts[0]
	want := tokens.cur["id-adele|user.read"].ExpiresOn
	if len(adele.Tokens) != 1 || adele.Tokens[0].Route != "graph" || !adele.Tokens[0].ExpiresOn.Equal(want) {
		t.Errorf("adele's tokens: %+v, want expiry %v", adele.Tokens, want)
	}
	c := st.Counters
	if c.Total != 5 || c.ByRoute["graph"] != 2 || c.ByRoute["open"] != 1 || c.ByStatus["2xx"] != 4 || c.ByStatus["4xx"] != 1 {
		t.Errorf("counters: %+v", c)
	}
	for _, tok := range tokens.issuedTokens() {
		if strings.Contains(r.Body, tok) {
			t.Error("the status page shows a token")
		}
	}
	if r := get(t, base+"/_companion/nope"); r.Status != 404 {
		t.Errorf("unknown companion page: %d", r.Status)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/_companion/status", nil)
	if r := do(t, req); r.Status != 405 {
		t.Errorf("POST status: %d", r.Status)
	}
}

type staticAccounts []auth.Account

func (a staticAccounts) Accounts() []auth.Account { return a }

func TestSubscribe(t *testing.T) {
	up := newUpstream(t, nil)
	s := startProxy(t, Options{Tokens: newFakeTokens(), Routes: []config.Route{bearerRoute("graph", "/graph/", up.URL)}})
	got := make(chan LogEntry, 10)
	cancel := s.Subscribe(func(e LogEntry) { got <- e })
	get(t, s.BaseURL()+"/graph/me?token=secret", HeaderAccount, "alex@fabrikam.test")
	get(t, s.BaseURL()+"/elsewhere")
	e := <-got
	if e.Method != "GET" || e.Path != "/graph/me" || e.Route != "graph" || e.Account != "id-alex" || e.Status != 200 || e.Bytes == 0 || e.Duration <= 0 || e.Time.IsZero() {
		t.Errorf("entry: %+v", e)
	}
	e = <-got
	if e.Status != 404 || e.Error != "no_route" || e.Route != "" {
		t.Errorf("entry: %+v", e)
	}
	cancel()
	cancel() // twice is fine
	get(t, s.BaseURL()+"/graph/me")
	select {
	case e := <-got:
		t.Errorf("entry after cancel: %+v", e)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestStartShutdown(t *testing.T) {
	s := newProxy(t, Options{})
	if s.Addr() != nil {
		t.Error("Addr before Start")
	}
	if got := s.BaseURL(); got != "http://127.0.0.1:0" {
		t.Errorf("BaseURL before Start = %q", got)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	addr := s.Addr().String()
	if s.BaseURL() != "http://"+addr {
		t.Errorf("BaseURL %q, Addr %q", s.BaseURL(), addr)
	}
	if r := get(t, s.BaseURL()+"/_companion/health"); r.Status != 200 {
		t.Fatalf("health: %d", r.Status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("still listening after Shutdown")
	}
	if err := s.Start(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}

	// IPv6 loopback, when the machine has it.
	s6, err := New(Options{Listen: "[::1]:0", Logger: s.logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := s6.Start(); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer s6.Shutdown(ctx)
	if !strings.HasPrefix(s6.BaseURL(), "http://[::1]:") {
		t.Errorf("BaseURL = %q", s6.BaseURL())
	}
	if r := get(t, s6.BaseURL()+"/_companion/health"); r.Status != 200 {
		t.Errorf("health over IPv6: %d %s", r.Status, r.Body)
	}
}

func TestServerSettings(t *testing.T) {
	s := startProxy(t, Options{})
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv.ReadHeaderTimeout == 0 || srv.IdleTimeout == 0 || srv.MaxHeaderBytes != 64<<10 || srv.WriteTimeout != 0 {
		t.Errorf("server timeouts: header %v idle %v max %d write %v", srv.ReadHeaderTimeout, srv.IdleTimeout, srv.MaxHeaderBytes, srv.WriteTimeout)
	}
	// Headers over 64 KiB are refused by the server.
	big := strings.Repeat("a", 70<<10)
	r := raw(t, hostOf(s), "GET /_companion/health HTTP/1.1\r\nHost: "+hostOf(s)+"\r\nX-Big: "+big+"\r\n\r\n")
	if r.Status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("big header: %d", r.Status)
	}
}

func TestClientGoneIsNotAnUpstreamError(t *testing.T) {
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	s := startProxy(t, Options{Tokens: newFakeTokens(), Routes: []config.Route{bearerRoute("cms", "/cms/", up.URL)}})
	got := make(chan LogEntry, 1)
	defer s.Subscribe(func(e LogEntry) { got <- e })()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.BaseURL()+"/cms/slow", nil)
	go func() {
		for len(up.requests()) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	if _, err := client.Do(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	e := <-got
	if e.Status != statusClientClosed || s.Status().Counters.UpstreamErrors != 0 {
		t.Errorf("entry %+v, upstream errors %d", e, s.Status().Counters.UpstreamErrors)
	}
}

// TestAbortedStreamIsLogged: when the upstream breaks off a body, the client's connection is
// cut (the ReverseProxy panics with http.ErrAbortHandler) and the request is still logged.
func TestAbortedStreamIsLogged(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1048576")
		w.Write(make([]byte, 64<<10))
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	s := startProxy(t, Options{Tokens: newFakeTokens(), Routes: []config.Route{bearerRoute("cms", "/cms/", up.URL)}})
	got := make(chan LogEntry, 1)
	defer s.Subscribe(func(e LogEntry) { got <- e })()
	resp, err := client.Get(s.BaseURL() + "/cms/api/download")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Errorf("the client read %d bytes and no error: the cut was hidden", n)
	}
	select {
	case e := <-got:
		if e.Status != 200 || e.Error != "aborted" || e.Bytes == 0 {
			t.Errorf("entry: %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no log entry for the aborted request")
	}
	if r := get(t, s.BaseURL()+"/_companion/health"); r.Status != 200 {
		t.Errorf("the proxy is unwell after an abort: %d", r.Status)
	}
}
