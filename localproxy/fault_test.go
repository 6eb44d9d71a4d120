package localproxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
	"github.com/entra-companion/entra-companion/sim"
)

// The proxy's fault matrix, with the real token broker against the simulated cloud: each
// test breaks one thing, checks what the client sees, that no request reached an upstream
// without a valid token (other than those the test's own revocation made stale), and that no
// account was lost: all three are still listed and, once the fault clears, each gets its
// answer through the proxy without any sign-in.

const (
	faultGraph = "https://graph.microsoft.com/.default"
	faultCMS   = sim.CMSAudience + "/.default"
)

// faultRig is a proxy over a real broker with Adele, Alex and Adele as a guest in Fabrikam.
type faultRig struct {
	t       *testing.T
	sim     *sim.Server
	broker  *auth.Broker
	proxy   *Server
	logs    *logBuffer
	ids     map[string]string // "adele", "alex", "guest" → account ID
	signIns int
}

func faultSignIns(s *sim.Server) int {
	return s.GrantCount("authorization_code") + s.GrantCount("device_code")
}

// newFaultRig signs the accounts in with one broker, then serves the proxy from a second one
// on the same keychain (a new process: no access token in memory, so the first request of
// each account and route redeems its refresh token).
func newFaultRig(t *testing.T, mod ...func(*auth.Options)) *faultRig {
	t.Helper()
	s := sim.Start(t)
	logs := &logBuffer{}
	opts := auth.Options{
		ClientID: sim.PublicClientID, Authority: s.Authority("organizations"),
		DefaultScopes: []string{faultGraph}, Store: auth.NewMemoryStore(), StateDir: t.TempDir(),
		HTTPClient: s.Client(), Logger: logs.logger(), RetryDelay: 10 * time.Millisecond, Retries: -1,
	}
	ctx := context.Background()
	signer, err := auth.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := &faultRig{t: t, sim: s, logs: logs, ids: map[string]string{}}
	for _, u := range []struct{ name, upn, tenant string }{
		{"adele", sim.UserAdele, "organizations"}, {"alex", sim.UserAlex, "organizations"}, {"guest", sim.UserAdele, sim.TenantFabrikam},
	} {
		a, err := signer.SignIn(ctx, auth.SignInOptions{Authority: s.Authority(u.tenant), LoginHint: u.upn, OpenURL: s.Browser(u.upn)})
		if err != nil {
			t.Fatalf("signing in %s: %v", u.name, err)
		}
		r.ids[u.name] = a.ID
	}
	signer.Close()
	r.signIns = faultSignIns(s)
	for _, m := range mod {
		m(&opts)
	}
	if r.broker, err = auth.New(ctx, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.broker.Close() })
	r.proxy = startProxy(t, Options{
		Tokens: r.broker, Accounts: r.broker, Transport: s.Client().Transport,
		GraphScopes: auth.NewScopes(faultGraph), Logger: logs.logger(),
		Routes: []config.Route{
			bearerRoute("graph", "/graph/", "https://"+s.GraphHost()+"/", faultGraph),
			bearerRoute("cms", "/cms/", s.CMSURL()+"/", faultCMS),
			{Name: "strapi", Prefix: "/strapi/", Upstream: s.CMSURL() + "/", Auth: config.AuthStrapi},
		},
	})
	return r
}

// get sends GET path through the proxy for an account ("adele", "alex", "guest").
func (r *faultRig) get(path, who string) result {
	r.t.Helper()
	return get(r.t, r.proxy.BaseURL()+path, HeaderAccount, r.ids[who])
}

// rejected is how many requests Graph and the CMS refused for a missing or invalid token.
func (r *faultRig) rejected() int {
	n := 0
	for _, e := range []sim.Endpoint{sim.EndpointGraphMe, sim.EndpointCMSArticles, sim.EndpointCMSUsersMe, sim.EndpointCMSCallback} {
		n += r.sim.Rejected(e)
	}
	return n
}

// intact clears the faults and checks that nothing was lost: three accounts listed, none
// needing sign-in, each served through every route without an interactive sign-in, and no
// token in the log.
func (r *faultRig) intact() {
	r.t.Helper()
	r.sim.ClearFaults()
	if err := r.sim.StartCMS(); err != nil {
		r.t.Fatal(err)
	}
	if n := len(r.broker.Accounts()); n != 3 {
		r.t.Errorf("%d accounts listed, want 3", n)
	}
	for _, a := range r.broker.Accounts() {
		if a.State == auth.StateNeedsSignIn {
			r.t.Errorf("%s needs sign-in: %s", a.Username, a.Detail)
		}
	}
	for who := range r.ids {
		for _, p := range []string{"/graph/v1.0/me", "/cms/api/articles", "/strapi/api/users/me"} {
			if res := r.get(p, who); res.Status != 200 {
				r.t.Errorf("%s %s after the fault: %d %s", who, p, res.Status, res.Body)
			}
		}
	}
	if n := faultSignIns(r.sim) - r.signIns; n != 0 {
		r.t.Errorf("%d interactive sign-ins", n)
	}
	if strings.Contains(r.logs.String(), "eyJ") {
		r.t.Error("JWT-shaped text in the log")
	}
}

// faultAnswer checks one of the proxy's own error answers.
func faultAnswer(t *testing.T, res result, status int, code, route, account string, words ...string) {
	t.Helper()
	if res.Status != status || res.Err.Error != code || res.Err.Route != route || res.Err.Account != account {
		t.Fatalf("got %d %s (route %q, account %q), want %d %s on %s for %s: %s", res.Status, res.Err.Error, res.Err.Route, res.Err.Account, status, code, route, account, res.Body)
	}
	for _, w := range words {
		if !strings.Contains(res.Err.Message, w) {
			t.Errorf("the answer does not say %q: %s", w, res.Err.Message)
		}
	}
	if strings.Contains(res.Body, "eyJ") {
		t.Error("JWT-shaped text in the answer")
	}
	t.Logf("the client sees: %d %s", res.Status, res.Body)
}

// Token endpoint down, throttling, hanging or answering garbage: 503 token_unavailable naming
// the account and route; Graph never sees the request.
func TestFaultProxyTokenEndpoint(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault sim.Fault
		mod   func(*auth.Options)
		words []string
	}{
		{"500", sim.Fault{Status: 500}, nil, []string{"500"}},
		{"503 Retry-After", sim.Fault{Status: 503, RetryAfter: 120 * time.Second}, nil, []string{"503"}},
		{"malformed", sim.Fault{Malformed: true}, nil, []string{"malformed"}},
		{"hang", sim.Fault{Hang: true}, func(o *auth.Options) {
			hc := *o.HTTPClient
			hc.Timeout = 300 * time.Millisecond
			o.HTTPClient = &hc
		}, []string{"did not answer in time"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mods []func(*auth.Options)
			if tc.mod != nil {
				mods = append(mods, tc.mod)
			}
			r := newFaultRig(t, mods...)
			tc.fault.Count, tc.fault.Grant = 100, "refresh_token"
			r.sim.InjectFault(sim.EndpointToken, tc.fault)
			me := r.sim.Count(sim.EndpointGraphMe)
			res := r.get("/graph/v1.0/me", "alex")
			faultAnswer(t, res, 503, codeTokenUnavail, "graph", r.ids["alex"], tc.words...)
			if r.sim.Count(sim.EndpointGraphMe) != me {
				t.Error("the request reached Graph without a token")
			}
			r.intact()
		})
	}
}

// invalid_grant and interaction_required: 401 needs_sign_in for that account, the others are
// served, and the upstream never sees a request without a token.
func TestFaultProxyNeedsSignIn(t *testing.T) {
	t.Parallel()
	r := newFaultRig(t)
	r.sim.RequireMFA(sim.UserAlex)
	res := r.get("/cms/api/articles", "alex")
	faultAnswer(t, res, 401, codeNeedsSignIn, "cms", r.ids["alex"], "sign in again")
	if res := r.get("/cms/api/articles", "adele"); res.Status != 200 {
		t.Errorf("adele while alex needs sign-in: %d %s", res.Status, res.Body)
	}
	r.sim.InjectFault(sim.EndpointToken, sim.Fault{Error: "invalid_grant", Grant: "refresh_token"})
	faultAnswer(t, r.get("/graph/v1.0/me", "guest"), 401, codeNeedsSignIn, "graph", r.ids["guest"], "sign in again")
	if n := r.rejected(); n != 0 {
		t.Errorf("%d requests reached an upstream without a valid token", n)
	}
	if n := len(r.broker.Accounts()); n != 3 {
		t.Errorf("%d accounts listed", n)
	}
	// One sign-in each heals them.
	ctx := context.Background()
	for _, who := range []struct{ upn, tenant string }{{sim.UserAlex, "organizations"}, {sim.UserAdele, sim.TenantFabrikam}} {
		if _, err := r.broker.SignIn(ctx, auth.SignInOptions{Authority: r.sim.Authority(who.tenant), LoginHint: who.upn, OpenURL: r.sim.Browser(who.upn)}); err != nil {
			t.Fatal(err)
		}
	}
	r.signIns = faultSignIns(r.sim)
	r.intact()
}

// insufficient_claims: after a CAE revocation Graph and the CMS answer 401 with a claims
// challenge; the proxy gets a token with those claims and retries once: the client sees 200.
func TestFaultProxyClaimsChallenge(t *testing.T) {
	t.Parallel()
	r := newFaultRig(t)
	for _, p := range []string{"/graph/v1.0/me", "/cms/api/articles"} {
		if res := r.get(p, "adele"); res.Status != 200 {
			t.Fatalf("%s: %d", p, res.Status)
		}
	}
	refreshes, retries := r.sim.GrantCount("refresh_token"), r.proxy.Status().Counters.Retries
	r.sim.RevokeAccessTokens(sim.UserAdele)
	for _, p := range []string{"/graph/v1.0/me", "/cms/api/articles"} {
		if res := r.get(p, "adele"); res.Status != 200 {
			t.Errorf("%s after the revocation: %d %s", p, res.Status, res.Body)
		}
	}
	if n := r.proxy.Status().Counters.Retries - retries; n != 2 {
		t.Errorf("%d retries, want one per route", n)
	}
	if n := r.sim.GrantCount("refresh_token") - refreshes; n != 2 {
		t.Errorf("%d refreshes, want one per route (with the claims)", n)
	}
	if n := r.rejected(); n != 2 {
		t.Errorf("upstreams refused %d requests, want the 2 the revocation made stale", n)
	}
	r.intact()
}

// Key rotation: the CMS and Graph keep accepting tokens signed with the old key while JWKS
// lists it; once the old key is dropped, the proxy's retry after the 401 fetches a token
// signed with the new one.
func TestFaultProxySigningKeyRotation(t *testing.T) {
	t.Parallel()
	r := newFaultRig(t)
	paths := []string{"/graph/v1.0/me", "/cms/api/articles", "/strapi/api/articles"}
	for _, p := range paths {
		if res := r.get(p, "adele"); res.Status != 200 {
			t.Fatalf("%s: %d", p, res.Status)
		}
	}
	refreshes := r.sim.GrantCount("refresh_token")
	r.sim.RotateSigningKey()
	for _, p := range paths {
		if res := r.get(p, "adele"); res.Status != 200 {
			t.Errorf("%s after the rotation: %d %s", p, res.Status, res.Body)
		}
	}
	if n := r.sim.GrantCount("refresh_token") - refreshes; n != 0 {
		t.Errorf("%d refreshes after a rotation that keeps the old key", n)
	}
	r.sim.DropOldSigningKeys()
	for _, p := range paths {
		if res := r.get(p, "adele"); res.Status != 200 {
			t.Errorf("%s after the old key was dropped: %d %s", p, res.Status, res.Body)
		}
	}
	if n := r.rejected(); n != 2 {
		t.Errorf("upstreams refused %d requests, want the 2 old-key tokens (graph, cms)", n)
	}
	r.intact()
}

// Graph's own errors pass through unchanged (the client sees Graph's status, body and
// Retry-After); only a 401 is retried, once, with a fresh token; a Graph that keeps refusing
// does not cause a refresh storm.
func TestFaultProxyGraphErrors(t *testing.T) {
	t.Parallel()
	r := newFaultRig(t)
	if res := r.get("/graph/v1.0/me", "adele"); res.Status != 200 {
		t.Fatal(res.Status)
	}
	for _, tc := range []struct {
		status int
		code   string
	}{{403, "Authorization_RequestDenied"}, {429, "TooManyRequests"}, {500, "generalException"}, {503, "serviceNotAvailable"}} {
		r.sim.InjectFault(sim.EndpointGraphMe, sim.Fault{Status: tc.status, RetryAfter: 7 * time.Second})
		refreshes, retries := r.sim.GrantCount("refresh_token"), r.proxy.Status().Counters.Retries
		res := r.get("/graph/v1.0/me", "adele")
		if res.Status != tc.status || !strings.Contains(res.Body, tc.code) || res.Header.Get("Retry-After") != "7" {
			t.Errorf("Graph %d reached the client as %d (Retry-After %q): %s", tc.status, res.Status, res.Header.Get("Retry-After"), res.Body)
		}
		if r.sim.GrantCount("refresh_token") != refreshes || r.proxy.Status().Counters.Retries != retries {
			t.Errorf("Graph %d made the proxy refresh or retry", tc.status)
		}
		if res := r.get("/graph/v1.0/me", "adele"); res.Status != 200 {
			t.Errorf("after Graph %d: %d", tc.status, res.Status)
		}
	}

	// A 401 once: retried with a new token, the client sees 200.
	r.sim.InjectFault(sim.EndpointGraphMe, sim.Fault{Status: 401})
	refreshes := r.sim.GrantCount("refresh_token")
	if res := r.get("/graph/v1.0/me", "adele"); res.Status != 200 {
		t.Errorf("after one Graph 401: %d %s", res.Status, res.Body)
	}
	if n := r.sim.GrantCount("refresh_token") - refreshes; n != 1 {
		t.Errorf("%d refreshes after one 401, want 1", n)
	}
	// A Graph that refuses every token: the client gets the 401, and refreshes stay bounded.
	r.sim.InjectFault(sim.EndpointGraphMe, sim.Fault{Status: 401, Count: 20})
	refreshes = r.sim.GrantCount("refresh_token")
	for range 5 {
		if res := r.get("/graph/v1.0/me", "adele"); res.Status != 401 || !strings.Contains(res.Body, "InvalidAuthenticationToken") {
			t.Errorf("Graph refusing every token: %d %s", res.Status, res.Body)
		}
	}
	if n := r.sim.GrantCount("refresh_token") - refreshes; n > 1 {
		t.Errorf("5 requests refused by Graph caused %d refreshes, want at most 1", n)
	}
	r.intact()
}

// CMS down and back: 502 upstream_unreachable naming the route while it is down, the cached
// tokens kept (no refresh when it comes back).
func TestFaultProxyCMSDownAndBack(t *testing.T) {
	t.Parallel()
	r := newFaultRig(t)
	for _, p := range []string{"/cms/api/articles", "/strapi/api/articles"} {
		if res := r.get(p, "alex"); res.Status != 200 {
			t.Fatalf("%s: %d", p, res.Status)
		}
	}
	refreshes := r.sim.GrantCount("refresh_token")
	r.sim.StopCMS()
	faultAnswer(t, r.get("/cms/api/articles", "alex"), 502, codeUpstream, "cms", r.ids["alex"])
	faultAnswer(t, r.get("/strapi/api/articles", "alex"), 502, codeUpstream, "strapi", r.ids["alex"])
	if res := r.get("/graph/v1.0/me", "alex"); res.Status != 200 {
		t.Errorf("Graph while the CMS is down: %d", res.Status)
	}
	if err := r.sim.StartCMS(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/cms/api/articles", "/strapi/api/articles"} {
		if res := r.get(p, "alex"); res.Status != 200 {
			t.Errorf("%s with the CMS back: %d %s", p, res.Status, res.Body)
		}
	}
	if n := r.sim.GrantCount("refresh_token") - refreshes; n != 0 {
		t.Errorf("%d refreshes across the outage, want none: the tokens were kept", n)
	}
	r.intact()
}

// Slowloris: a client that sends its headers a byte at a time is cut off after
// ReadHeaderTimeout, and many such clients do not keep others from being served.
func TestFaultProxySlowloris(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, nil)
	s := newProxy(t, Options{Routes: []config.Route{{Name: "open", Prefix: "/open/", Upstream: up.URL, Auth: config.AuthNone}}})
	if s.readHeaderTimeout != 10*time.Second {
		t.Errorf("default ReadHeaderTimeout %v", s.readHeaderTimeout)
	}
	s.readHeaderTimeout = 300 * time.Millisecond
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	addr := hostOf(s)

	const n = 50
	var wg sync.WaitGroup
	cut := make([]time.Duration, n)
	for i := range n {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			start := time.Now()
			req := "GET /open/x HTTP/1.1\r\nHost: " + addr + "\r\nX-Slow: " + strings.Repeat("a", 1000)
			for j := 0; j < len(req); j++ {
				c.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := c.Write([]byte{req[j]}); err != nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
				if time.Since(start) > 5*time.Second {
					break
				}
			}
			// The server closed the connection: reading gets EOF (or a reset) at once.
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err = io.ReadAll(c)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("slow client %d: the connection is still open after %v", i, time.Since(start))
			}
			cut[i] = time.Since(start)
		})
	}
	time.Sleep(100 * time.Millisecond)
	if res := get(t, s.BaseURL()+"/open/x"); res.Status != 200 {
		t.Errorf("a normal client among %d slow ones: %d", n, res.Status)
	}
	wg.Wait()
	for i, d := range cut {
		if d > 3*time.Second {
			t.Errorf("slow client %d was cut off after %v, ReadHeaderTimeout is 300 ms", i, d)
		}
	}
	if len(up.requests()) != 1 {
		t.Errorf("the upstream saw %d requests, want the normal one", len(up.requests()))
	}
}

// Oversized requests: headers over 64 KiB in one or in many fields, and a request line as long,
// are refused with 431 before any routing; the server goes on serving.
func TestFaultProxyOversizedHeaders(t *testing.T) {
	t.Parallel()
	s, up := guardProxy(t, Options{})
	addr := hostOf(s)
	var many strings.Builder
	for i := range 2000 {
		many.WriteString("X-H" + strings.Repeat("x", 4) + string(rune('a'+i%26)) + ": " + strings.Repeat("v", 30) + "\r\n")
	}
	for name, req := range map[string]string{
		"one header":   "GET /open/x HTTP/1.1\r\nHost: " + addr + "\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n",
		"many headers": "GET /open/x HTTP/1.1\r\nHost: " + addr + "\r\n" + many.String() + "\r\n",
		"long target":  "GET /open/" + strings.Repeat("a", 70<<10) + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n",
	} {
		if res := raw(t, addr, req); res.Status != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%s: %d", name, res.Status)
		}
	}
	if len(up.requests()) != 0 {
		t.Error("an oversized request reached the upstream")
	}
	if res := get(t, s.BaseURL()+"/open/x"); res.Status != 200 {
		t.Errorf("after the oversized requests: %d", res.Status)
	}
}

// A Strapi exchange with a Graph token Graph no longer accepts (revoked by CAE, or signed with
// a key the authority dropped): the CMS refuses the exchange, so the proxy gets a fresh Graph
// token and exchanges once more; the client sees 200, and a Strapi that keeps refusing does
// not cause a refresh per request.
func TestFaultProxyStrapiExchangeStaleGraphToken(t *testing.T) {
	t.Parallel()
	r := newFaultRig(t)
	for _, who := range []string{"adele", "alex"} {
		if res := r.get("/graph/v1.0/me", who); res.Status != 200 { // caches each one's Graph token
			t.Fatal(res.Status)
		}
	}
	r.sim.RevokeAccessTokens(sim.UserAdele)
	if res := r.get("/strapi/api/articles", "adele"); res.Status != 200 {
		t.Errorf("first exchange after a CAE revocation: %d %s", res.Status, res.Body)
	}
	r.sim.RotateSigningKey()
	r.sim.DropOldSigningKeys()
	if res := r.get("/strapi/api/articles", "alex"); res.Status != 200 {
		t.Errorf("first exchange after the signing key was dropped: %d %s", res.Status, res.Body)
	}
	// Graph refusing every token: one fresh token, then the refusal reaches the client.
	r.sim.InjectFault(sim.EndpointGraphMe, sim.Fault{Status: 401, Count: 100})
	refreshes := r.sim.GrantCount("refresh_token")
	for range 3 {
		if res := r.get("/strapi/api/articles", "guest"); res.Status != 502 || res.Err.Error != codeExchange {
			t.Errorf("Strapi refusing every token: %d %s", res.Status, res.Body)
		}
	}
	if n := r.sim.GrantCount("refresh_token") - refreshes; n > 2 {
		t.Errorf("3 refused exchanges caused %d refreshes, want at most 2", n)
	}
	r.intact()
}

// A password reset with continuous access evaluation: refresh tokens revoked and access tokens
// refused. The first request finds out (the upstream's claims challenge, then invalid_grant)
// and answers 401 needs_sign_in; the following ones answer the same at once, without sending
// the refused token upstream again or asking the authority each time.
func TestFaultProxyPasswordReset(t *testing.T) {
	t.Parallel()
	r := newFaultRig(t)
	if res := r.get("/cms/api/articles", "alex"); res.Status != 200 {
		t.Fatal(res.Status)
	}
	r.sim.RevokeRefreshTokens(sim.UserAlex)
	r.sim.RevokeAccessTokens(sim.UserAlex)
	rejected, calls := r.rejected(), r.sim.Count(sim.EndpointToken)
	for range 10 {
		faultAnswer(t, r.get("/cms/api/articles", "alex"), 401, codeNeedsSignIn, "cms", r.ids["alex"], "sign in again")
	}
	if n := r.rejected() - rejected; n != 1 {
		t.Errorf("the refused token went upstream %d times, want once", n)
	}
	if n := r.sim.Count(sim.EndpointToken) - calls; n != 1 {
		t.Errorf("%d token endpoint calls for 10 requests, want 1", n)
	}
	if res := r.get("/cms/api/articles", "adele"); res.Status != 200 {
		t.Errorf("another account: %d", res.Status)
	}
	r.sim.RestoreRefreshTokens(sim.UserAlex)
	if _, err := r.broker.SignIn(context.Background(), auth.SignInOptions{Authority: r.sim.Authority("organizations"), LoginHint: sim.UserAlex, OpenURL: r.sim.Browser(sim.UserAlex)}); err != nil {
		t.Fatal(err)
	}
	r.signIns = faultSignIns(r.sim)
	r.intact()
}
