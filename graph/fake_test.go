package graph

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/entra-companion/entra-companion/auth/jwt"
	"github.com/entra-companion/entra-companion/graph/profile"
)

// readMaybeGzip reads a request body, gunzipping it when the SDK compressed it.
func readMaybeGzip(r *http.Request) ([]byte, error) {
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		rd = zr
	}
	return io.ReadAll(rd)
}

type credFunc func(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error)

func (f credFunc) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return f(ctx, opts)
}

// staticCreds hands out a fixed token (or error) and fixed claims: for the fake Graph tests.
type staticCreds struct {
	token  string
	err    error
	claims jwt.Claims
	calls  atomic.Int32
}

func (c *staticCreds) Credential(string) azcore.TokenCredential {
	return credFunc(func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
		c.calls.Add(1)
		if c.err != nil {
			return azcore.AccessToken{}, c.err
		}
		return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
	})
}

func (c *staticCreds) IDTokenClaims(string) (jwt.Claims, error) {
	if c.claims == nil {
		return nil, errors.New("no id token")
	}
	return c.claims, nil
}

const fakeToken = "fake-access-token-value-that-must-never-leak"

// fakeGraph is a scripted Graph: each path answers from its queue of responses, then 200 with
// the default body.
type fakeGraph struct {
	srv *httptest.Server
	mu  sync.Mutex
	// script per "METHOD path": answers served before the default.
	script map[string][]fakeAnswer
	calls  map[string]int
	auth   []string // Authorization headers seen
	batch  http.HandlerFunc
}

type fakeAnswer struct {
	status  int
	headers map[string]string
	body    string
}

func newFakeGraph(t *testing.T) *fakeGraph {
	f := &fakeGraph{script: map[string][]fakeAnswer{}, calls: map[string]int{}}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGraph) on(key string, answers ...fakeAnswer) {
	f.mu.Lock()
	f.script[key] = append(f.script[key], answers...)
	f.mu.Unlock()
}

func (f *fakeGraph) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[key]
}

var fakeDefaults = map[string]string{
	"GET /v1.0/me":                    `{"id":"u1","displayName":"Fake User","userPrincipalName":"fake@x","userType":"Member"}`,
	"GET /v1.0/organization":          `{"value":[{"id":"t1","displayName":"Fake Org","verifiedDomains":[{"name":"x","isDefault":true}]}]}`,
	"GET /v1.0/me/transitiveMemberOf": `{"value":[{"id":"g1"},{"@odata.type":"#microsoft.graph.group","id":"g2","displayName":"G2","groupTypes":[],"mailEnabled":true,"securityEnabled":true}]}`,
}

func (f *fakeGraph) serve(w http.ResponseWriter, r *http.Request) {
	key := r.Method + " " + r.URL.Path
	f.mu.Lock()
	if batch := f.batch; batch != nil && key == "POST /v1.0/$batch" {
		f.calls[key]++
		f.mu.Unlock()
		batch(w, r)
		return
	}
	f.calls[key]++
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	var a *fakeAnswer
	if q := f.script[key]; len(q) > 0 {
		a = &q[0]
		f.script[key] = q[1:]
	}
	f.mu.Unlock()
	if a != nil {
		for k, v := range a.headers {
			w.Header().Set(k, v)
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(a.status)
		w.Write([]byte(a.body))
		return
	}
	if key == "GET /v1.0/me/photo/$value" {
		w.Header().Set("Content-Type", "image/png")
		w.Write([]byte("\x89PNG\r\n\x1a\nfake"))
		return
	}
	body, ok := fakeDefaults[key]
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":{"code":"Request_ResourceNotFound","message":"no such path"}}`))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(body))
}

func throttled(retryAfter string) fakeAnswer {
	return fakeAnswer{status: 429, headers: map[string]string{"Retry-After": retryAfter},
		body: `{"error":{"code":"TooManyRequests","message":"Too many requests."}}`}
}

// newFakeClient returns a client of f whose waits are recorded instead of slept.
func newFakeClient(t *testing.T, f *fakeGraph, creds Credentials, maxRetries int) (*Client, *[]time.Duration) {
	t.Helper()
	c, err := New(Options{BaseURL: f.srv.URL + "/v1.0", Credentials: creds, HTTPClient: f.srv.Client(), MaxRetries: maxRetries})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	waits := &[]time.Duration{}
	c.retry.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		*waits = append(*waits, d)
		mu.Unlock()
		return ctx.Err()
	}
	return c, waits
}

func noLeak(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), fakeToken[:20]) {
		t.Errorf("error shows the token: %v", err)
	}
}

func TestRetryWaitsAreCappedAndBounded(t *testing.T) {
	f := newFakeGraph(t)
	c, waits := newFakeClient(t, f, &staticCreds{token: fakeToken}, 0)
	ctx := context.Background()
	date := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
	// Retry-After in seconds (capped), as an HTTP date, and absent (backoff 1s, 2s, 4s…).
	f.on("GET /v1.0/me", throttled("3600"), throttled(date), fakeAnswer{status: 503, body: `{"error":{"code":"serviceNotAvailable","message":"x"}}`})
	p, err := c.Profile(ctx, "a")
	if err != nil || p.DisplayName != "Fake User" {
		t.Fatalf("%v %v", p, err)
	}
	if len(*waits) != 3 || (*waits)[0] != MaxRetryWait || (*waits)[1] > 3*time.Second || (*waits)[1] < time.Second || (*waits)[2] < 4*time.Second || (*waits)[2] > 5*time.Second {
		t.Errorf("waits %v", *waits)
	}
	if f.count("GET /v1.0/me") != 4 {
		t.Errorf("%d calls", f.count("GET /v1.0/me"))
	}

	// Always throttled: 1 + DefaultMaxRetries calls, then ErrThrottled.
	*waits = nil
	for range 10 {
		f.on("GET /v1.0/organization", throttled("1"))
	}
	_, err = c.Organization(ctx, "a")
	if !errors.Is(err, ErrThrottled) || f.count("GET /v1.0/organization") != 1+DefaultMaxRetries || len(*waits) != DefaultMaxRetries {
		t.Errorf("err %v after %d calls, waits %v", err, f.count("GET /v1.0/organization"), *waits)
	}
	noLeak(t, err)
}

func TestErrorMapping(t *testing.T) {
	f := newFakeGraph(t)
	creds := &staticCreds{token: fakeToken}
	c, _ := newFakeClient(t, f, creds, -1)
	ctx := context.Background()

	f.on("GET /v1.0/me", fakeAnswer{status: 401, body: `{"error":{"code":"InvalidAuthenticationToken","message":"Access token has expired."}}`})
	_, err := c.Profile(ctx, "a")
	var ge *Error
	if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &ge) || ge.Code != "InvalidAuthenticationToken" || ge.Status != 401 {
		t.Errorf("401: %v", err)
	}
	noLeak(t, err)

	f.on("GET /v1.0/me", fakeAnswer{status: 500, headers: map[string]string{"Content-Type": "text/html", "request-id": "rid-1"}, body: "<html>oops</html>"})
	_, err = c.Profile(ctx, "a")
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &ge) || ge.Status != 500 {
		t.Errorf("500 html: %v", err)
	}

	f.on("GET /v1.0/me", fakeAnswer{status: 403, body: `{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges"}}`})
	_, err = c.Profile(ctx, "a")
	var ce *profile.ConsentError
	if !errors.As(err, &ce) || ce.Permission != "User.Read" {
		t.Errorf("403: %v", err)
	}

	f.on("GET /v1.0/me/photo/$value", fakeAnswer{status: 404, body: `{"error":{"code":"ImageNotFound","message":"Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown."}}`})
	if p, err := c.Photo(ctx, "a"); p != nil || err != nil {
		t.Errorf("no photo: %v %v", p, err)
	}
	if p, err := c.Photo(ctx, "a"); err != nil || p.ContentType != "image/png" {
		t.Errorf("photo: %+v %v", p, err)
	}

	// The credential's own failure is passed on as is, not taken for Graph's.
	errSignIn := errors.New("sign-in required")
	c2, _ := newFakeClient(t, f, &staticCreds{err: errSignIn}, 0)
	_, err = c2.Profile(ctx, "a")
	if !errors.Is(err, errSignIn) || errors.Is(err, ErrUnavailable) {
		t.Errorf("credential error: %v", err)
	}

	// Nobody listening.
	dead := httptest.NewTLSServer(http.NotFoundHandler())
	dead.Close()
	c3, err := New(Options{BaseURL: dead.URL + "/v1.0", Credentials: creds, HTTPClient: f.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c3.Profile(ctx, "a")
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &ge) || ge.Status != 0 {
		t.Errorf("connection refused: %v", err)
	}
	noLeak(t, err)

	// Every request to the base URL's host carried the token.
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.auth {
		if a != "Bearer "+fakeToken && a != "" {
			t.Errorf("Authorization %q", a)
		}
		if a == "" {
			t.Error("a request went out without Authorization")
		}
	}
}

func TestBatchRefusedFallsBack(t *testing.T) {
	f := newFakeGraph(t) // answers 404 to $batch
	c, _ := newFakeClient(t, f, &staticCreds{token: fakeToken, claims: jwt.Claims{"tid": "11111111-1111-1111-1111-111111111111", "oid": "22222222-2222-2222-2222-222222222222"}}, 0)
	snap, err := c.Refresh(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if f.count("POST /v1.0/$batch") != 1 || f.count("GET /v1.0/me") != 1 || f.count("GET /v1.0/organization") != 1 {
		t.Errorf("calls %v", f.calls)
	}
	if snap.Organization.DisplayName != "Fake Org" || len(snap.Groups) != 2 || snap.Groups[0].Kind != profile.KindUnknown || snap.Groups[1].Kind != profile.KindMailSecurity {
		b, _ := json.Marshal(snap)
		t.Errorf("snapshot %s", b)
	}
	if snap.HomeTenantID != "11111111-1111-1111-1111-111111111111" || snap.AccountID != "22222222-2222-2222-2222-222222222222.11111111-1111-1111-1111-111111111111" {
		t.Errorf("home %s account %s", snap.HomeTenantID, snap.AccountID)
	}
}

func TestBatchStepThrottled(t *testing.T) {
	f := newFakeGraph(t)
	c, waits := newFakeClient(t, f, &staticCreds{token: fakeToken}, 0)
	// The batch answers the profile and organization but throttles the groups step.
	f.mu.Lock()
	f.batch = func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Requests []struct{ ID, URL string } `json:"requests"`
		}
		if r.Header.Get("Content-Encoding") == "gzip" {
			t.Log("batch body is gzip-compressed")
		}
		body, err := readMaybeGzip(r)
		if err != nil || json.Unmarshal(body, &req) != nil {
			http.Error(w, "bad batch", 400)
			return
		}
		var out []map[string]any
		for _, q := range req.Requests {
			path, _, _ := strings.Cut(q.URL, "?")
			switch path {
			case "/me/transitiveMemberOf":
				out = append(out, map[string]any{"id": q.ID, "status": 429,
					"headers": map[string]string{"Retry-After": "7", "Content-Type": "application/json"},
					"body":    map[string]any{"error": map[string]any{"code": "TooManyRequests", "message": "slow down"}}})
			default:
				var b any
				json.Unmarshal([]byte(fakeDefaults["GET /v1.0"+path]), &b)
				out = append(out, map[string]any{"id": q.ID, "status": 200,
					"headers": map[string]string{"Content-Type": "application/json"}, "body": b})
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"responses": out})
	}
	f.mu.Unlock()
	snap, err := c.Refresh(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Groups) != 2 || snap.GroupsErr != nil || snap.Profile.DisplayName != "Fake User" || snap.Organization.TenantID != "t1" {
		t.Errorf("snapshot: %+v", snap)
	}
	if f.count("GET /v1.0/me/transitiveMemberOf") != 1 || f.count("GET /v1.0/me") != 0 || len(*waits) != 1 || (*waits)[0] != 7*time.Second {
		t.Errorf("calls %v waits %v", f.calls, *waits)
	}
}

func TestLaterPageErrors(t *testing.T) {
	f := newFakeGraph(t) // $batch 404: one by one
	claims := jwt.Claims{"groups": []any{"c1", "c2"}}
	c, _ := newFakeClient(t, f, &staticCreds{token: fakeToken, claims: claims}, -1)
	next := `{"@odata.nextLink":"` + f.srv.URL + `/v1.0/me/transitiveMemberOf?$skiptoken=x","value":[{"@odata.type":"#microsoft.graph.directoryRole","id":"r1","displayName":"Role"}]}`

	// A later page refused: the page iterator's error still says which permission is missing.
	f.on("GET /v1.0/me/transitiveMemberOf", fakeAnswer{status: 200, body: next},
		fakeAnswer{status: 403, body: `{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges"}}`})
	snap, err := c.Refresh(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	var ce *profile.ConsentError
	if !errors.As(snap.GroupsErr, &ce) || len(snap.Groups) != 2 || snap.Groups[0].ID != "c1" {
		t.Errorf("GroupsErr %v groups %+v", snap.GroupsErr, snap.Groups)
	}

	// A later page failing with a server error keeps Graph's code and message.
	f.on("GET /v1.0/me/transitiveMemberOf", fakeAnswer{status: 200, body: next},
		fakeAnswer{status: 502, body: `{"error":{"code":"UnknownError","message":"bad gateway"}}`})
	groups, err := c.Groups(context.Background(), "a")
	var ge *Error
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &ge) || ge.Code != "UnknownError" || ge.Message != "bad gateway" || ge.Status != 502 {
		t.Errorf("err %v", err)
	}
	if len(groups) != 1 || groups[0].Kind != profile.KindRole {
		t.Errorf("groups before the failure: %+v", groups)
	}
}
