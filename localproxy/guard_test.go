package localproxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/entra-companion/entra-companion/config"
)

func TestValidHost(t *testing.T) {
	tests := []struct {
		host string
		port int
		want bool
	}{
		{"127.0.0.1:8631", 8631, true},
		{"localhost:8631", 8631, true},
		{"LocalHost:8631", 8631, true},
		{"[::1]:8631", 8631, true},
		{"127.0.0.1:8632", 8631, false},
		{"127.0.0.1", 8631, false},
		{"127.0.0.1", 80, true},
		{"localhost:", 80, false},
		{"[::1]:", 80, false},
		{"127.0.0.1:08631", 8631, false},
		{"127.0.0.1:+8631", 8631, false},
		{"127.0.0.1:8631:1", 8631, false},
		{"evil.example:8631", 8631, false},
		{"localhost.evil.example:8631", 8631, false},
		{"localhost.:8631", 8631, false},
		{"127.0.0.2:8631", 8631, false},
		{"0.0.0.0:8631", 8631, false},
		{"[::ffff:127.0.0.1]:8631", 8631, false},
		{"[::1]8631", 8631, false},
		{"[::1", 8631, false},
		{"2130706433:8631", 8631, false},
		{"", 8631, false},
		{":8631", 8631, false},
	}
	for _, tt := range tests {
		if got := validHost(tt.host, tt.port); got != tt.want {
			t.Errorf("validHost(%q, %d) = %v, want %v", tt.host, tt.port, got, tt.want)
		}
	}
}

func TestValidOrigin(t *testing.T) {
	def, err := compileOrigins(nil)
	if err != nil {
		t.Fatal(err)
	}
	custom, err := compileOrigins([]string{"http://localhost:3000", "https://app.contoso.test:*", "https://portal.contoso.test"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		origin  string
		allowed []originPattern
		want    bool
	}{
		{"http://localhost:5173", def, true},
		{"http://127.0.0.1:3000", def, true},
		{"https://[::1]:8443", def, true},
		{"http://LOCALHOST:5173", def, true},
		{"http://localhost", def, true},
		{"null", def, false},
		{"", def, false},
		{"http://evil.example", def, false},
		{"http://localhost.evil.example:3000", def, false},
		{"http://localhost:3000/path", def, false},
		{"http://user@localhost:3000", def, false},
		{"file://", def, false},
		{"chrome-extension://abcdef", def, false},
		{"ftp://localhost:21", def, false},
		{"http://localhost:", def, false},
		{"http://localhost:abc", def, false},
		{"http://localhost:3000", custom, true},
		{"http://localhost:3001", custom, false},
		{"https://localhost:3000", custom, false},
		{"https://app.contoso.test:4200", custom, true},
		{"https://app.contoso.test", custom, true},
		{"https://portal.contoso.test", custom, true},
		{"https://portal.contoso.test:443", custom, true},
		{"https://portal.contoso.test:8443", custom, false},
		{"http://127.0.0.1:3000", custom, false},
	}
	for _, tt := range tests {
		if got := validOrigin(tt.origin, tt.allowed); got != tt.want {
			t.Errorf("validOrigin(%q) = %v, want %v", tt.origin, got, tt.want)
		}
	}
}

func TestBadOriginPatterns(t *testing.T) {
	for _, p := range []string{"*", "null", "http://*:3000", "http://*.contoso.test", "localhost:3000", "http://localhost:3000/", "ftp://localhost:21", "http://localhost:x"} {
		if _, err := compileOrigins([]string{p}); err == nil {
			t.Errorf("allowed origin %q was accepted", p)
		}
	}
}

func TestListenMustBeLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":8631", "192.168.1.10:8631", "[::]:0", "example.com:80", "127.0.0.1"} {
		if _, err := New(Options{Listen: addr}); err == nil {
			t.Errorf("Listen %q was accepted", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0", "127.0.0.2:0"} {
		if _, err := New(Options{Listen: addr}); err != nil {
			t.Errorf("Listen %q: %v", addr, err)
		}
	}
}

func TestRouteValidation(t *testing.T) {
	up := "https://api.contoso.test"
	bad := [][]config.Route{
		{{Name: "", Prefix: "/a/", Upstream: up}},
		{{Name: "a b", Prefix: "/a/", Upstream: up}},
		{{Name: "a", Prefix: "a/", Upstream: up}},
		{{Name: "a", Prefix: "/a/../b/", Upstream: up}},
		{{Name: "a", Prefix: "/a/./", Upstream: up}},
		{{Name: "a", Prefix: "/a//b/", Upstream: up}},
		{{Name: "a", Prefix: "/a%2f/", Upstream: up}},
		{{Name: "a", Prefix: "/a?x/", Upstream: up}},
		{{Name: "a", Prefix: "/_companion/", Upstream: up}},
		{{Name: "a", Prefix: "/_companion/x/", Upstream: up}},
		{{Name: "a", Prefix: "/a/", Upstream: "ftp://x"}},
		{{Name: "a", Prefix: "/a/", Upstream: "/relative"}},
		{{Name: "a", Prefix: "/a/", Upstream: "https://user:pw@x"}},
		{{Name: "a", Prefix: "/a/", Upstream: "https://x/?q=1"}},
		{{Name: "a", Prefix: "/a/", Upstream: "http://api.contoso.test"}}, // token over plain http
		{{Name: "a", Prefix: "/a/", Upstream: up, Auth: "basic"}},
		{{Name: "a", Prefix: "/a/", Upstream: up}, {Name: "a", Prefix: "/b/", Upstream: up}},
		{{Name: "a", Prefix: "/a/", Upstream: up}, {Name: "b", Prefix: "/a", Upstream: up}},
	}
	for i, routes := range bad {
		if _, err := New(Options{Listen: "127.0.0.1:0", Routes: routes, Tokens: newFakeTokens()}); err == nil {
			t.Errorf("case %d: routes %+v were accepted", i, routes)
		}
	}
	good := []config.Route{
		{Name: "cms", Prefix: "/cms", Upstream: "http://localhost:1337/", Auth: "strapi"},
		{Name: "plain", Prefix: "/plain/", Upstream: "http://example.com", Auth: "none"},
		{Name: "graph", Prefix: "/graph/", Upstream: "https://graph.microsoft.com/v1.0", Scopes: []string{"User.Read"}},
	}
	s, err := New(Options{Listen: "127.0.0.1:0", Routes: good, Tokens: newFakeTokens()})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Routes(); len(got) != 3 || got[0].Prefix != "/plain/" || got[1].Prefix != "/graph/" || got[2].Prefix != "/cms/" || got[0].Auth != "none" || got[2].Auth != "strapi" {
		t.Errorf("Routes() = %+v", got)
	}
	if _, err := New(Options{Listen: "127.0.0.1:0", Routes: good}); err == nil {
		t.Error("routes needing tokens were accepted without a token source")
	}
}

func TestPathOK(t *testing.T) {
	tests := []struct {
		path, raw string
		want      bool
	}{
		{"/cms/api/articles", "", true},
		{"/cms/", "", true},
		{"/cms/a.b/.well-known/x", "", true},
		{"/cms/..x/...", "", true},
		{"/cms/../graph/", "", false},
		{"/cms/..", "", false},
		{"/cms/./x", "", false},
		{"/cms/.", "", false},
		{"/cms/..;/graph", "", false},
		{"/cms\\..\\graph", "", false},
		{"/cms/a\x00b", "", false},
		{"/cms/%2e%2e/graph", "", false}, // double-encoded dots, decoded once
		{"/cms/a/b", "/cms/a%2Fb", false},
		{"/cms/a\\b", "/cms/a%5cb", false},
		{"/cms/a b", "/cms/a%20b", true},
		{"cms/x", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		if got := pathOK(tt.path, tt.raw); got != tt.want {
			t.Errorf("pathOK(%q, %q) = %v, want %v", tt.path, tt.raw, got, tt.want)
		}
	}
}

// guardProxy runs a proxy with a "none" route to an upstream that answers 200, and a bearer
// route, so that a request that passes the guards is visible.
func guardProxy(t *testing.T, opts Options) (*Server, *upstream) {
	t.Helper()
	up := newUpstream(t, nil)
	opts.Routes = []config.Route{
		{Name: "open", Prefix: "/open/", Upstream: up.URL, Auth: config.AuthNone},
		bearerRoute("graph", "/graph/", up.URL, "User.Read"),
	}
	if opts.Tokens == nil {
		opts.Tokens = newFakeTokens()
	}
	return startProxy(t, opts), up
}

// TestGuards sends each kind of bad request on the wire and checks the refusal.
func TestGuards(t *testing.T) {
	s, up := guardProxy(t, Options{})
	addr := hostOf(s)
	p := strings.TrimPrefix(addr, "127.0.0.1:")
	tests := []struct {
		name    string
		request string
		status  int
		code    string
	}{
		{"ok", "GET /open/x HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", 200, ""},
		{"ok localhost", "GET /open/x HTTP/1.1\r\nHost: localhost:" + p + "\r\n\r\n", 200, ""},
		{"dns rebinding", "GET /open/x HTTP/1.1\r\nHost: evil.example:" + p + "\r\n\r\n", 403, codeForbiddenHost},
		{"other port", "GET /open/x HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n", 403, codeForbiddenHost},
		{"no port", "GET /open/x HTTP/1.1\r\nHost: localhost\r\n\r\n", 403, codeForbiddenHost},
		{"companion rebinding", "GET /_companion/status HTTP/1.1\r\nHost: evil.example:" + p + "\r\n\r\n", 403, codeForbiddenHost},
		{"absolute form", "GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n", 403, codeBadTarget},
		{"absolute form to self", "GET http://" + addr + "/open/x HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", 403, codeBadTarget},
		{"connect", "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", 403, codeBadTarget},
		{"options star", "OPTIONS * HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", 403, codeBadTarget},
		{"foreign origin", "GET /open/x HTTP/1.1\r\nHost: " + addr + "\r\nOrigin: https://evil.example\r\n\r\n", 403, codeForbiddenOrigin},
		{"null origin", "GET /open/x HTTP/1.1\r\nHost: " + addr + "\r\nOrigin: null\r\n\r\n", 403, codeForbiddenOrigin},
		{"two origins", "GET /open/x HTTP/1.1\r\nHost: " + addr + "\r\nOrigin: http://localhost:3000\r\nOrigin: https://evil.example\r\n\r\n", 403, codeForbiddenOrigin},
		{"loopback origin", "GET /open/x HTTP/1.1\r\nHost: " + addr + "\r\nOrigin: http://localhost:3000\r\n\r\n", 200, ""},
		{"cross-site", "GET /open/x HTTP/1.1\r\nHost: " + addr + "\r\nSec-Fetch-Site: cross-site\r\n\r\n", 403, codeCrossSite},
		{"cross-site from allowed origin", "GET /open/x HTTP/1.1\r\nHost: " + addr + "\r\nSec-Fetch-Site: cross-site\r\nOrigin: http://localhost:5173\r\n\r\n", 200, ""},
		{"same-site", "GET /open/x HTTP/1.1\r\nHost: " + addr + "\r\nSec-Fetch-Site: same-site\r\n\r\n", 200, ""},
		{"same-origin", "GET /open/x HTTP/1.1\r\nHost: " + addr + "\r\nSec-Fetch-Site: same-origin\r\n\r\n", 200, ""},
		{"none", "GET /open/x HTTP/1.1\r\nHost: " + addr + "\r\nSec-Fetch-Site: none\r\n\r\n", 200, ""},
		{"dot dot", "GET /open/../graph/me HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", 403, codeBadPath},
		{"encoded dot dot", "GET /open/%2e%2e/graph/me HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", 403, codeBadPath},
		{"mixed dot dot", "GET /open/.%2E/graph/me HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", 403, codeBadPath},
		{"encoded slash", "GET /open/..%2fgraph/me HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", 403, codeBadPath},
		{"encoded slash in prefix", "GET /open%2f..%2fgraph/me HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", 403, codeBadPath},
		{"encoded slash alone", "GET /open/a%2Fb HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", 403, codeBadPath},
		{"encoded prefix", "GET /%6fpen/x HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", 403, codeBadPath},
		{"double encoded", "GET /open/%252e%252e/graph HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", 403, codeBadPath},
		{"backslash", "GET /open/..\\graph/me HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", 403, codeBadPath},
		{"dot segment", "GET /open/./x HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", 403, codeBadPath},
		{"no route", "GET /admin HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", 404, "no_route"},
		{"prefix lookalike", "GET /opener/x HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", 404, "no_route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(up.requests())
			r := raw(t, addr, tt.request)
			if r.Status != tt.status || r.Err.Error != tt.code {
				t.Fatalf("got %d %q (%s), want %d %q", r.Status, r.Err.Error, r.Body, tt.status, tt.code)
			}
			if tt.code != "" {
				if n := len(up.requests()); n != before {
					t.Errorf("a refused request reached the upstream")
				}
				if r.Err.Message == "" {
					t.Error("the refusal has no message")
				}
			}
		})
	}
	r := raw(t, addr, "GET /admin HTTP/1.1\r\nHost: "+addr+"\r\n\r\n")
	if !strings.Contains(r.Err.Message, "/open/") || !strings.Contains(r.Err.Message, "/graph/") {
		t.Errorf("no_route message does not list the prefixes: %q", r.Err.Message)
	}
}

// TestHostCheckInProcess: Handler() mounted in another server checks the port that server
// listens on.
func TestHostCheckInProcess(t *testing.T) {
	up := newUpstream(t, nil)
	s := newProxy(t, Options{Routes: []config.Route{{Name: "open", Prefix: "/open/", Upstream: up.URL, Auth: "none"}}})
	ts := newUpstream(t, s.Handler().ServeHTTP)
	if r := get(t, ts.URL+"/open/x"); r.Status != 200 {
		t.Fatalf("in-process request: %d %s", r.Status, r.Body)
	}
	req, _ := http.NewRequest("GET", ts.URL+"/open/x", nil)
	req.Host = "evil.example" + strings.TrimPrefix(ts.URL, "http://127.0.0.1")
	if r := do(t, req); r.Status != 403 || r.Err.Error != codeForbiddenHost {
		t.Fatalf("rebinding in process: %d %s", r.Status, r.Body)
	}
}

func TestClientKey(t *testing.T) {
	const key = "k3y-0123456789abcdef0123456789abcdef0123456"
	s, up := guardProxy(t, Options{Key: key})
	base := s.BaseURL()
	tests := []struct {
		name   string
		path   string
		hdr    []string
		status int
	}{
		{"missing", "/open/x", nil, 403},
		{"wrong", "/open/x", []string{HeaderKey, "nope"}, 403},
		{"prefix of the key", "/open/x", []string{HeaderKey, key[:10]}, 403},
		{"longer than the key", "/open/x", []string{HeaderKey, key + "x"}, 403},
		{"right", "/open/x", []string{HeaderKey, key}, 200},
		{"health without key", "/_companion/health", nil, 403},
		{"status without key", "/_companion/status", nil, 403},
		{"health with key", "/_companion/health", []string{HeaderKey, key}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, base+tt.path, tt.hdr...)
			if r.Status != tt.status {
				t.Fatalf("got %d %s, want %d", r.Status, r.Body, tt.status)
			}
			if tt.status == 403 && r.Err.Error != codeMissingKey {
				t.Errorf("code %q, want %q", r.Err.Error, codeMissingKey)
			}
		})
	}
	// A preflight carries no custom header: it needs no key.
	req, _ := http.NewRequest(http.MethodOptions, base+"/open/x", nil)
	req.Header.Set("Origin", "http://localhost:3000")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "x-entra-proxy-key")
	if r := do(t, req); r.Status != http.StatusNoContent {
		t.Errorf("preflight without key: %d %s", r.Status, r.Body)
	}
	// The key is not forwarded.
	if r := get(t, base+"/open/x", HeaderKey, key); r.Status != 200 || up.last(t).Header.Get(HeaderKey) != "" {
		t.Errorf("the key reached the upstream: %d %v", r.Status, up.last(t).Header)
	}
}

func TestCORS(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Write([]byte("ok"))
	})
	s := startProxy(t, Options{
		AllowedOrigins: []string{"http://localhost:3000", "https://app.contoso.test:*"},
		Routes:         []config.Route{{Name: "open", Prefix: "/open/", Upstream: up.URL, Auth: "none"}},
	})
	base := s.BaseURL()

	preflight := func(origin, headers string) result {
		req, _ := http.NewRequest(http.MethodOptions, base+"/open/items", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		if headers != "" {
			req.Header.Set("Access-Control-Request-Headers", headers)
		}
		req.Header.Set("Access-Control-Request-Private-Network", "true")
		return do(t, req)
	}
	r := preflight("http://localhost:3000", "content-type, x-entra-account, x-trace-id, authorization, cookie, sec-foo")
	if r.Status != http.StatusNoContent {
		t.Fatalf("preflight: %d %s", r.Status, r.Body)
	}
	if got := r.Header.Get("Access-Control-Allow-Origin"); got != "http://localhost:3000" {
		t.Errorf("ACAO = %q", got)
	}
	if !strings.Contains(r.Header.Get("Vary"), "Origin") {
		t.Errorf("Vary = %q", r.Header.Get("Vary"))
	}
	ah := strings.ToLower(r.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"content-type", "x-entra-account", "x-entra-proxy-key", "x-trace-id"} {
		if !strings.Contains(ah, h) {
			t.Errorf("Allow-Headers %q lacks %s", ah, h)
		}
	}
	for _, h := range []string{"authorization", "cookie", "sec-foo"} {
		if strings.Contains(ah, h) {
			t.Errorf("Allow-Headers %q allows %s", ah, h)
		}
	}
	if !strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "POST") || r.Header.Get("Access-Control-Max-Age") == "" {
		t.Errorf("preflight headers: %v", r.Header)
	}
	if r.Header.Get("Access-Control-Allow-Private-Network") != "true" {
		t.Error("private network access not allowed")
	}
	if len(up.requests()) != 0 {
		t.Error("the preflight reached the upstream")
	}
	if r := preflight("http://localhost:3001", ""); r.Status != 403 || r.Err.Error != codeForbiddenOrigin {
		t.Errorf("preflight from another port: %d %s", r.Status, r.Body)
	}
	if r := preflight("https://evil.example", ""); r.Status != 403 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from evil: %d %v", r.Status, r.Header)
	}

	// A simple request from an allowed origin gets ACAO (once: the upstream's is replaced).
	r = get(t, base+"/open/items", "Origin", "https://app.contoso.test:4200")
	if r.Status != 200 {
		t.Fatalf("GET: %d %s", r.Status, r.Body)
	}
	if got := r.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != "https://app.contoso.test:4200" {
		t.Errorf("ACAO = %q", got)
	}
	if r.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Error("the upstream's Allow-Credentials passed")
	}
	if !strings.Contains(strings.Join(r.Header.Values("Vary"), ","), "Origin") {
		t.Errorf("Vary = %q", r.Header.Values("Vary"))
	}
	// Errors answered by the proxy carry ACAO too, so the page can read them.
	r = get(t, base+"/nothing", "Origin", "http://localhost:3000")
	if r.Status != 404 || r.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Errorf("no_route from allowed origin: %d %v", r.Status, r.Header)
	}
	// Without Origin: no CORS headers.
	r = get(t, base+"/open/items")
	if r.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("without Origin the upstream's answer should pass unchanged, ACAO = %q", r.Header.Get("Access-Control-Allow-Origin"))
	}
	// An OPTIONS without Access-Control-Request-Method is an ordinary request.
	req, _ := http.NewRequest(http.MethodOptions, base+"/open/items", nil)
	if r := do(t, req); r.Status != 200 || len(up.requests()) == 0 || up.last(t).Method != http.MethodOptions {
		t.Errorf("plain OPTIONS: %d", r.Status)
	}
}

func TestGuardMessagesAreComplete(t *testing.T) {
	for _, c := range []string{codeForbiddenHost, codeForbiddenOrigin, codeCrossSite, codeBadTarget, codeBadPath, codeMissingKey} {
		if guardMessages[c] == "" {
			t.Errorf("no message for %s", c)
		}
	}
}
