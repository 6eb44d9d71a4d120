package sim_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"

	"github.com/entra-companion/entra-companion/sim"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// claims decodes a JWT's payload without validating it.
func claims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decoding JWT payload: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("parsing JWT payload: %v", err)
	}
	return c
}

func header(t *testing.T, tok string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatalf("decoding JWT header: %v", err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("parsing JWT header: %v", err)
	}
	return h
}

// call sends a request and decodes a JSON answer (nil if the body is not JSON).
func call(t *testing.T, c *http.Client, method, u, token string, body io.Reader) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", u, err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp, m
}

// tokenPost posts a form to a tenant's token endpoint.
func tokenPost(t *testing.T, s *sim.Server, tenant string, v url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := s.Client().PostForm(s.Authority(tenant)+"oauth2/v2.0/token", v)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("token response is not JSON: %v", err)
	}
	return resp.StatusCode, m
}

// wantEntraError checks an Entra error body: status, error, AADSTS code and the fields.
func wantEntraError(t *testing.T, status int, body map[string]any, wantStatus int, wantErr string, wantCode int) {
	t.Helper()
	if status != wantStatus || body["error"] != wantErr {
		t.Fatalf("got %d %v (%v), want %d %s", status, body["error"], body["error_description"], wantStatus, wantErr)
	}
	codes, _ := body["error_codes"].([]any)
	if len(codes) != 1 || codes[0] != float64(wantCode) {
		t.Fatalf("error_codes = %v, want [%d]", body["error_codes"], wantCode)
	}
	desc, _ := body["error_description"].(string)
	if !strings.HasPrefix(desc, "AADSTS"+strconv.Itoa(wantCode)+": ") || !strings.Contains(desc, "\r\nTrace ID: ") ||
		!strings.Contains(desc, "\r\nCorrelation ID: ") || !strings.Contains(desc, "\r\nTimestamp: ") {
		t.Fatalf("error_description = %q", desc)
	}
	for _, k := range []string{"timestamp", "trace_id", "correlation_id"} {
		if v, _ := body[k].(string); v == "" {
			t.Fatalf("missing %s in %v", k, body)
		}
	}
}

// pkcePair returns a verifier and its S256 challenge.
func pkcePair(seed string) (verifier, challenge string) {
	h := sha256.Sum256([]byte(seed))
	verifier = base64.RawURLEncoding.EncodeToString(h[:]) + "-verifier"
	c := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(c[:])
}

const testRedirect = "http://localhost:51234/callback"

// authCode gets a code with login_hint and prompt=none (auto-approval), response_mode=query.
func authCode(t *testing.T, s *sim.Server, tenant, upn, challenge, scope string) string {
	t.Helper()
	q := url.Values{
		"client_id": {sim.PublicClientID}, "response_type": {"code"}, "redirect_uri": {testRedirect},
		"scope": {scope}, "state": {"st8"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
		"prompt": {"none"}, "login_hint": {upn},
	}
	loc := authorizeRedirect(t, s, tenant, q)
	if loc.Query().Get("state") != "st8" {
		t.Fatalf("state not echoed: %s", loc)
	}
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("no code in %s (error %s: %s)", loc, loc.Query().Get("error"), loc.Query().Get("error_description"))
	}
	return code
}

// authorizeRedirect GETs the authorize endpoint and returns the 302 Location.
func authorizeRedirect(t *testing.T, s *sim.Server, tenant string, q url.Values) *url.URL {
	t.Helper()
	c := s.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(s.Authority(tenant) + "oauth2/v2.0/authorize?" + q.Encode())
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize answered %s, want 302", resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// userTokens signs upn in with the raw code flow and returns the token response.
func userTokens(t *testing.T, s *sim.Server, tenant, upn, scope string) map[string]any {
	t.Helper()
	v, ch := pkcePair(upn + scope)
	code := authCode(t, s, tenant, upn, ch, scope)
	status, body := tokenPost(t, s, tenant, url.Values{
		"client_id": {sim.PublicClientID}, "grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {testRedirect}, "code_verifier": {v}, "scope": {scope}, "client_info": {"1"},
	})
	if status != http.StatusOK {
		t.Fatalf("code redemption: %d %v", status, body)
	}
	return body
}

func refresh(t *testing.T, s *sim.Server, tenant, rt, scope string) (int, map[string]any) {
	t.Helper()
	return tokenPost(t, s, tenant, url.Values{
		"client_id": {sim.PublicClientID}, "grant_type": {"refresh_token"}, "refresh_token": {rt},
		"scope": {scope}, "client_info": {"1"},
	})
}

// memCache is an MSAL cache accessor that keeps the serialized cache in memory.
type memCache struct {
	mu   sync.Mutex
	data []byte
}

func (m *memCache) Replace(_ context.Context, c cache.Unmarshaler, _ cache.ReplaceHints) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return nil
	}
	return c.Unmarshal(m.data)
}

func (m *memCache) Export(_ context.Context, c cache.Marshaler, _ cache.ExportHints) error {
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data = b
	return nil
}

// refreshTokens returns the refresh token secrets in the cache.
func (m *memCache) refreshTokens(t *testing.T) []string {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	var c struct {
		RefreshToken map[string]struct {
			Secret string `json:"secret"`
		} `json:"RefreshToken"`
	}
	if err := json.Unmarshal(m.data, &c); err != nil {
		t.Fatalf("reading the msal cache: %v", err)
	}
	var out []string
	for _, rt := range c.RefreshToken {
		out = append(out, rt.Secret)
	}
	return out
}

func (m *memCache) refreshToken(t *testing.T) string {
	t.Helper()
	rts := m.refreshTokens(t)
	if len(rts) != 1 {
		t.Fatalf("want one refresh token in the cache, got %d", len(rts))
	}
	return rts[0]
}

func newPublic(t *testing.T, s *sim.Server, tenant string, acc *memCache) public.Client {
	t.Helper()
	opts := []public.Option{
		public.WithAuthority(s.Authority(tenant)),
		public.WithHTTPClient(s.Client()),
		public.WithInstanceDiscovery(false),
	}
	if acc != nil {
		opts = append(opts, public.WithCache(acc))
	}
	pca, err := public.New(sim.PublicClientID, opts...)
	if err != nil {
		t.Fatalf("public.New: %v", err)
	}
	return pca
}

func scopeList(v any) []string {
	s, _ := v.(string)
	return strings.Fields(s)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func decodeJSON(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", resp.Request.URL, err)
	}
}

func readBody(t *testing.T, resp *http.Response, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
