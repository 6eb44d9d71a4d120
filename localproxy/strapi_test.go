package localproxy

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
)

// fakeStrapi is a Strapi-like upstream: the Microsoft callback turns an access token into a
// JWT (whose sub is the token's oid), and /api/* needs one of the JWTs it issued and has not
// revoked.
type fakeStrapi struct {
	*upstream
	exchanges atomic.Int32
	mu        sync.Mutex
	jwts      map[string]string // jwt → oid
	ttl       time.Duration
	delay     time.Duration
	status    int // callback answers this when not 0
	issued    []string
}

func newFakeStrapi(t *testing.T) *fakeStrapi {
	f := &fakeStrapi{jwts: map[string]string{}, ttl: 30 * 24 * time.Hour}
	f.upstream = newUpstream(t, f.serve)
	return f
}

func (f *fakeStrapi) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == strapiCallback {
		f.exchanges.Add(1)
		f.mu.Lock()
		delay, status, ttl := f.delay, f.status, f.ttl
		f.mu.Unlock()
		time.Sleep(delay)
		if status != 0 {
			w.WriteHeader(status)
			io.WriteString(w, `{"error":{"status":400,"name":"ApplicationError","message":"provider disabled"}}`)
			return
		}
		at := r.URL.Query().Get("access_token")
		exp, ok := jwtExpiry(at)
		if !ok || exp.Before(time.Now()) {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var claims struct {
			OID string `json:"oid"`
		}
		parts := strings.Split(at, ".")
		b, _ := decodeSegment(parts[1])
		json.Unmarshal(b, &claims)
		jwt := makeJWT(map[string]any{"id": 7, "sub": claims.OID, "iat": time.Now().Unix(), "exp": time.Now().Add(ttl).Unix()})
		f.mu.Lock()
		f.jwts[jwt] = claims.OID
		f.issued = append(f.issued, jwt)
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"jwt": jwt, "user": map[string]any{"id": 7, "username": claims.OID, "email": claims.OID + "@contoso.test"}})
		return
	}
	jwt := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	oid, ok := f.jwts[jwt]
	f.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"status":401,"name":"UnauthorizedError","message":"Missing or invalid credentials"}}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"user": oid, "path": r.URL.Path})
}

func (f *fakeStrapi) revokeAll() {
	f.mu.Lock()
	f.jwts = map[string]string{}
	f.mu.Unlock()
}

func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func strapiProxy(t *testing.T, f *fakeStrapi, tokens *fakeTokens) *Server {
	return startProxy(t, Options{
		Tokens:      tokens,
		GraphScopes: auth.NewScopes("https://graph.microsoft.com/User.Read"),
		Routes:      []config.Route{{Name: "cms", Prefix: "/cms/", Upstream: f.URL, Auth: config.AuthStrapi}},
	})
}

func TestStrapiExchangeIsCached(t *testing.T) {
	f := newFakeStrapi(t)
	tokens := newFakeTokens()
	s := strapiProxy(t, f, tokens)
	for i := 0; i < 5; i++ {
		r := get(t, s.BaseURL()+"/cms/api/articles")
		if r.Status != 200 || !strings.Contains(r.Body, `"user":"id-adele"`) {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
		}
	}
	if n := f.exchanges.Load(); n != 1 {
		t.Errorf("exchanges = %d, want 1", n)
	}
	for _, req := range tokens.requests() {
		if req.Scopes.Key() != "https://graph.microsoft.com/user.read" {
			t.Errorf("Graph token asked with scopes %q", req.Scopes.Key())
		}
	}
	if n := tokens.callCount(); n != 5 {
		t.Errorf("token calls = %d, want one per request", n)
	}
	// Incoming credentials never reach Strapi; the JWT does.
	last := f.last(t)
	if !strings.HasPrefix(last.Header.Get("Authorization"), "Bearer eyJ") || last.Header.Get("Cookie") != "" {
		t.Errorf("upstream headers: %v", last.Header)
	}
	// Another account gets its own JWT.
	r := get(t, s.BaseURL()+"/cms/api/articles", HeaderAccount, "alex@fabrikam.test")
	if r.Status != 200 || !strings.Contains(r.Body, `"user":"id-alex"`) || f.exchanges.Load() != 2 {
		t.Errorf("alex: %d %s, %d exchanges", r.Status, r.Body, f.exchanges.Load())
	}
	// The status page knows the JWT's expiry per account and route.
	st := s.Status()
	if len(st.Accounts) != 2 || len(st.Accounts[1].Tokens) != 1 || st.Accounts[1].Tokens[0].Route != "cms" {
		t.Errorf("status accounts: %+v", st.Accounts)
	}
}

func TestStrapiSingleflight(t *testing.T) {
	f := newFakeStrapi(t)
	f.delay = 100 * time.Millisecond
	s := strapiProxy(t, f, newFakeTokens())
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(s.BaseURL() + "/cms/api/articles")
			if err != nil {
				errs <- err.Error()
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- resp.Status
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := f.exchanges.Load(); n != 1 {
		t.Errorf("exchanges = %d, want 1", n)
	}
}

func TestStrapiReexchangeBeforeExpiry(t *testing.T) {
	f := newFakeStrapi(t)
	f.ttl = time.Hour
	s := newProxy(t, Options{
		Tokens: newFakeTokens(),
		Routes: []config.Route{{Name: "cms", Prefix: "/cms/", Upstream: f.URL, Auth: config.AuthStrapi}},
	})
	var offset atomic.Int64
	s.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	get(t, s.BaseURL()+"/cms/api/a")
	offset.Store(int64(58 * time.Minute))
	get(t, s.BaseURL()+"/cms/api/a")
	if n := f.exchanges.Load(); n != 1 {
		t.Errorf("exchanges at exp-2m = %d, want 1", n)
	}
	offset.Store(int64(59*time.Minute + 30*time.Second))
	get(t, s.BaseURL()+"/cms/api/a")
	if n := f.exchanges.Load(); n != 2 {
		t.Errorf("exchanges at exp-30s = %d, want 2", n)
	}
}

func TestStrapiReexchangeAfter401(t *testing.T) {
	f := newFakeStrapi(t)
	s := strapiProxy(t, f, newFakeTokens())
	if r := get(t, s.BaseURL()+"/cms/api/a"); r.Status != 200 {
		t.Fatal(r.Status)
	}
	f.revokeAll() // e.g. Strapi's JWT secret rotated
	body := `{"data":{"title":"x"}}`
	req, _ := http.NewRequest(http.MethodPost, s.BaseURL()+"/cms/api/articles", strings.NewReader(body))
	r := do(t, req)
	if r.Status != 200 {
		t.Fatalf("after revocation: %d %s", r.Status, r.Body)
	}
	if n := f.exchanges.Load(); n != 2 {
		t.Errorf("exchanges = %d, want 2", n)
	}
	if u := f.requests(); u[len(u)-1].Body != body {
		t.Error("the body was not replayed")
	}
	if s.Status().Counters.Retries != 1 {
		t.Error("retry not counted")
	}
}

func TestStrapiExchangeFailures(t *testing.T) {
	f := newFakeStrapi(t)
	f.status = http.StatusBadRequest
	tokens := newFakeTokens()
	s := strapiProxy(t, f, tokens)
	r := get(t, s.BaseURL()+"/cms/api/a")
	if r.Status != 502 || r.Err.Error != codeExchange || r.Err.Route != "cms" || !strings.Contains(r.Err.Message, "Microsoft provider") {
		t.Errorf("exchange refused: %d %s", r.Status, r.Body)
	}
	for _, tok := range tokens.issuedTokens() {
		if strings.Contains(r.Body, tok) {
			t.Error("the answer holds the Graph token")
		}
	}
	tokens.set(func(f *fakeTokens) { f.err = auth.ErrNeedsSignIn })
	if r := get(t, s.BaseURL()+"/cms/api/a"); r.Status != 401 || r.Err.Error != codeNeedsSignIn {
		t.Errorf("no Graph token: %d %s", r.Status, r.Body)
	}
	f.Close()
	tokens.set(func(f *fakeTokens) { f.err = nil })
	if r := get(t, s.BaseURL()+"/cms/api/a"); r.Status != 502 || r.Err.Error != codeUpstream || strings.Contains(r.Body, "access_token") {
		t.Errorf("Strapi down: %d %s", r.Status, r.Body)
	}
}

func TestJWTExpiry(t *testing.T) {
	exp := time.Unix(1900000000, 0)
	tests := []struct {
		tok  string
		want time.Time
		ok   bool
	}{
		{makeJWT(map[string]any{"exp": 1900000000}), exp, true},
		{makeJWT(map[string]any{"exp": 1900000000.5}), exp.Add(500 * time.Millisecond), true},
		{makeJWT(map[string]any{"sub": "x"}), time.Time{}, false},
		{makeJWT(map[string]any{"exp": "soon"}), time.Time{}, false},
		{makeJWT(map[string]any{"exp": -1}), time.Time{}, false},
		{"not a jwt", time.Time{}, false},
		{"a.b", time.Time{}, false},
		{"a.!!!.c", time.Time{}, false},
		{"", time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := jwtExpiry(tt.tok)
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("jwtExpiry(%q) = %v %v, want %v %v", tt.tok, got, ok, tt.want, tt.ok)
		}
	}
}
