package jwt

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func claimsFor(iss string) map[string]any {
	return map[string]any{
		"iss": iss, "aud": "api://app", "tid": "tenant1", "oid": "o", "scp": "read",
		"iat": t0.Add(-time.Minute).Unix(), "nbf": t0.Add(-time.Minute).Unix(), "exp": t0.Add(time.Hour).Unix(),
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func failed(r *Result) map[string]string {
	out := map[string]string{}
	for _, c := range r.Failed() {
		out[c.Name] = c.Detail
	}
	return out
}

func TestVerify(t *testing.T) {
	ks := keys(t)
	p := newIDP(t)
	p.setKeys(jwkOf("k1", &ks[0].PublicKey), x5cOf(t, "k2", ks[1]))
	iss := p.iss("tenant1")
	rs := map[string]any{"alg": "RS256", "kid": "k1", "typ": "JWT"}

	for _, tc := range []struct {
		name   string
		token  string
		opts   VerifyOptions
		failed map[string]string // check name → part of the detail; nil = valid
	}{
		{name: "valid RS256", token: sign(t, ks[0], rs, claimsFor(iss)), opts: VerifyOptions{Audience: "api://app"}},
		{name: "valid PS256", token: sign(t, ks[0], map[string]any{"alg": "PS256", "kid": "k1"}, claimsFor(iss))},
		{name: "valid RS512", token: sign(t, ks[0], map[string]any{"alg": "RS512", "kid": "k1"}, claimsFor(iss))},
		{name: "x5c key", token: sign(t, ks[1], map[string]any{"alg": "RS256", "kid": "k2"}, claimsFor(iss))},
		{name: "expected issuer", token: sign(t, ks[0], rs, claimsFor(iss)), opts: VerifyOptions{Issuer: iss}},
		{name: "client id for api:// audience", token: sign(t, ks[0], rs, with(claimsFor(iss), "aud", "app")), opts: VerifyOptions{Audience: "api://app"}},
		{name: "audience array", token: sign(t, ks[0], rs, with(claimsFor(iss), "aud", []string{"x", "api://app"})), opts: VerifyOptions{Audience: "api://app"}},
		{name: "expired within leeway", token: sign(t, ks[0], rs, with(claimsFor(iss), "exp", t0.Add(-4*time.Minute).Unix()))},
		{
			name: "wrong audience", token: sign(t, ks[0], rs, claimsFor(iss)), opts: VerifyOptions{Audience: "api://other"},
			failed: map[string]string{"audience": "audience is api://app, expected api://other"},
		},
		{
			name: "no audience", token: sign(t, ks[0], rs, with(claimsFor(iss), "aud", nil)), opts: VerifyOptions{Audience: "api://app"},
			failed: map[string]string{"audience": "no aud claim, expected api://app"},
		},
		{
			name: "expired", token: sign(t, ks[0], rs, with(claimsFor(iss), "exp", t0.Add(-3*time.Hour-12*time.Minute).Unix())),
			failed: map[string]string{"expiry": "expired 3h12m ago at 2026-03-01T08:48:00Z"},
		},
		{
			name: "no exp", token: sign(t, ks[0], rs, with(claimsFor(iss), "exp", nil)),
			failed: map[string]string{"expiry": "no valid exp claim"},
		},
		{
			name: "not yet valid", token: sign(t, ks[0], rs, with(claimsFor(iss), "nbf", t0.Add(10*time.Minute).Unix())),
			failed: map[string]string{"not_before": "not valid until 2026-03-01T12:10:00Z, 10m0s from now"},
		},
		{
			name: "tampered payload", token: tamper(sign(t, ks[0], rs, claimsFor(iss)), with(claimsFor(iss), "scp", "admin")),
			failed: map[string]string{"signature": "signature does not match: the token was altered or signed by someone else"},
		},
		{
			name: "signed by another key", token: sign(t, ks[1], rs, claimsFor(iss)),
			failed: map[string]string{"signature": "signature does not match"},
		},
		{
			name: "graph token", token: sign(t, ks[1], with(rs, "nonce", "abc"), claimsFor(iss)),
			failed: map[string]string{"signature": "only Graph itself can check"},
		},
		{
			name: "HS256", token: sign(t, ks[0], map[string]any{"alg": "HS256", "kid": "k1"}, claimsFor(iss)),
			failed: map[string]string{"signature": "algorithm HS256 uses a shared secret"},
		},
		{
			name: "alg none", token: sign(t, ks[0], map[string]any{"alg": "none"}, claimsFor(iss)),
			failed: map[string]string{"signature": "not signed (alg none)"},
		},
		{
			name: "unknown kid", token: sign(t, ks[0], map[string]any{"alg": "RS256", "kid": "gone"}, claimsFor(iss)),
			failed: map[string]string{"key": "signed by key kid=gone which the issuer's keys at " + p.srv.URL + "/keys don't list (rotated out?)", "signature": "not checked"},
		},
		{
			name: "expected another issuer", token: sign(t, ks[0], rs, claimsFor(iss)), opts: VerifyOptions{Issuer: p.iss("tenant2")},
			failed: map[string]string{"issuer": "issuer is " + iss + ", expected " + p.iss("tenant2")},
		},
		{
			name: "issuer not https", token: sign(t, ks[0], rs, claimsFor("http://evil.example/t/v2.0")),
			failed: map[string]string{"issuer": "issuer http://evil.example/t/v2.0 is refused", "signature": "not checked"},
		},
		{
			name: "no issuer", token: sign(t, ks[0], rs, with(claimsFor(iss), "iss", nil)),
			failed: map[string]string{"issuer": "no iss claim", "signature": "not checked"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t: t0}
			v := &Verifier{HTTPClient: p.srv.Client(), Now: clk.Now}
			before := p.discovery.Load()
			res, err := v.Verify(context.Background(), tc.token, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := failed(res)
			if tc.failed == nil {
				if !res.Valid || len(got) > 0 {
					t.Fatalf("not valid: %v", got)
				}
				if res.Issuer != iss || res.JWKSURI != p.srv.URL+"/keys" {
					t.Errorf("Issuer %q JWKSURI %q", res.Issuer, res.JWKSURI)
				}
				if len(res.Checks) != 6 {
					t.Errorf("checks: %+v", res.Checks)
				}
				return
			}
			if res.Valid {
				t.Fatal("valid")
			}
			for name, want := range tc.failed {
				if !strings.Contains(got[name], want) {
					t.Errorf("check %s: %q, want it to contain %q", name, got[name], want)
				}
				mustNotLeak(t, got[name], tc.token)
			}
			for name, detail := range got {
				if _, ok := tc.failed[name]; !ok {
					t.Errorf("check %s failed too: %s", name, detail)
				}
			}
			if tc.name == "issuer not https" && p.discovery.Load() != before {
				t.Error("a non-https issuer was fetched")
			}
		})
	}
}

// tamper replaces the payload of a signed token.
func tamper(tok string, claims map[string]any) string {
	parts := strings.Split(tok, ".")
	return parts[0] + "." + enc(claims) + "." + parts[2]
}

func TestVerifyTenantTemplateAndForeignIssuer(t *testing.T) {
	k := keys(t)[0]
	p := newIDP(t)
	p.setKeys(jwkOf("k1", &k.PublicKey))
	p.mu.Lock()
	p.issuer = p.srv.URL + "/{tenantid}/v2.0"
	p.mu.Unlock()
	hdr := map[string]any{"alg": "RS256", "kid": "k1"}
	v := &Verifier{HTTPClient: p.srv.Client(), Now: (&clock{t: t0}).Now}

	// A multi-tenant ("organizations") issuer: the template takes the token's tid.
	tok := sign(t, k, hdr, claimsFor(p.srv.URL+"/tenant1/v2.0"))
	res, err := v.Verify(context.Background(), tok, VerifyOptions{Issuer: p.srv.URL + "/organizations/v2.0"})
	if err != nil || !res.Valid {
		t.Fatalf("template: %v %v", err, failed(res))
	}
	if res.Issuer != p.srv.URL+"/tenant1/v2.0" {
		t.Errorf("Issuer = %s", res.Issuer)
	}

	// The token claims tenant2 but its iss names tenant1's path: the filled template disagrees.
	tok = sign(t, k, hdr, with(claimsFor(p.srv.URL+"/tenant1/v2.0"), "tid", "tenant2"))
	res, err = v.Verify(context.Background(), tok, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := "issuer " + p.srv.URL + "/tenant1/v2.0 is not the issuer of " + p.srv.URL + "/tenant1/v2.0/.well-known/openid-configuration, which names " + p.srv.URL + "/tenant2/v2.0"
	if got := failed(res)["issuer"]; got != want {
		t.Errorf("issuer detail:\n got %s\nwant %s", got, want)
	}
}

func TestVerifyCachingAndKeyRotation(t *testing.T) {
	ks := keys(t)
	p := newIDP(t)
	p.setKeys(jwkOf("k1", &ks[0].PublicKey))
	iss := p.iss("t")
	clk := &clock{t: t0}
	v := &Verifier{HTTPClient: p.srv.Client(), Now: clk.Now}
	ctx := context.Background()
	verify := func(tok string) *Result {
		t.Helper()
		res, err := v.Verify(ctx, tok, VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	counts := func(d, j int32) {
		t.Helper()
		if p.discovery.Load() != d || p.jwks.Load() != j {
			t.Errorf("fetches: discovery %d jwks %d, want %d %d", p.discovery.Load(), p.jwks.Load(), d, j)
		}
	}
	tok1 := sign(t, ks[0], map[string]any{"alg": "RS256", "kid": "k1"}, claimsFor(iss))
	tok2 := sign(t, ks[1], map[string]any{"alg": "RS256", "kid": "k2"}, claimsFor(iss))

	for range 3 {
		if r := verify(tok1); !r.Valid {
			t.Fatal(failed(r))
		}
	}
	counts(1, 1)

	// k2 is published later: the first token with it re-fetches the keys at most once a minute.
	p.setKeys(jwkOf("k1", &ks[0].PublicKey), jwkOf("k2", &ks[1].PublicKey))
	if r := verify(tok2); r.Valid {
		t.Fatal("k2 known before a minute passed")
	}
	counts(1, 1)
	clk.Add(61 * time.Second)
	if r := verify(tok2); !r.Valid {
		t.Fatal(failed(r))
	}
	counts(1, 2)

	// k2 is rotated out: unknown kids do not cause a fetch per token.
	p.setKeys(jwkOf("k1", &ks[0].PublicKey))
	tok3 := sign(t, ks[1], map[string]any{"alg": "RS256", "kid": "k3"}, claimsFor(iss))
	for range 5 {
		verify(tok3)
	}
	counts(1, 2)
	clk.Add(2 * time.Minute)
	for range 5 {
		verify(tok3)
	}
	counts(1, 3)

	// After the cache TTL everything is read again.
	clk.Add(DefaultCacheTTL)
	tok1 = sign(t, ks[0], map[string]any{"alg": "RS256", "kid": "k1"}, with(claimsFor(iss), "exp", clk.Now().Add(time.Hour).Unix()))
	if r := verify(tok1); !r.Valid {
		t.Fatal(failed(r))
	}
	counts(2, 4)
}

func TestVerifyNetworkErrors(t *testing.T) {
	k := keys(t)[0]
	p := newIDP(t)
	p.setKeys(jwkOf("k1", &k.PublicKey))
	v := &Verifier{HTTPClient: p.srv.Client(), Now: (&clock{t: t0}).Now}

	// 404 from discovery.
	iss := p.srv.URL + "/nope"
	tok := sign(t, k, map[string]any{"alg": "RS256", "kid": "k1"}, with(claimsFor(iss), "exp", t0.Add(-time.Hour).Unix()))
	res, err := v.Verify(context.Background(), tok, VerifyOptions{})
	if err == nil || !strings.Contains(err.Error(), "fetching "+iss+"/.well-known/openid-configuration: HTTP 404") {
		t.Fatalf("err = %v", err)
	}
	mustNotLeak(t, err.Error(), tok)
	if res == nil || res.Valid || !strings.Contains(failed(res)["expiry"], "expired 1h0m ago") {
		t.Errorf("local checks missing: %+v", res)
	}

	// Connection refused.
	p2 := newIDP(t)
	iss2 := p2.iss("t")
	p2.srv.Close()
	tok = sign(t, k, map[string]any{"alg": "RS256", "kid": "k1"}, claimsFor(iss2))
	_, err = v.Verify(context.Background(), tok, VerifyOptions{})
	if err == nil || !strings.Contains(err.Error(), "fetching "+iss2+"/.well-known/openid-configuration") {
		t.Fatalf("err = %v", err)
	}

	// An untrusted certificate is a network error too.
	v2 := &Verifier{HTTPClient: &http.Client{}, Now: (&clock{t: t0}).Now}
	tok = sign(t, k, map[string]any{"alg": "RS256", "kid": "k1"}, claimsFor(p.iss("t")))
	if _, err = v2.Verify(context.Background(), tok, VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v", err)
	}

	// A bad expected issuer is the caller's error.
	if _, err = v.Verify(context.Background(), tok, VerifyOptions{Issuer: "http://example.com/t/v2.0"}); err == nil {
		t.Fatal("http issuer accepted")
	}

	// Not a JWT.
	if _, err = v.Verify(context.Background(), "abc", VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "not a JWT") {
		t.Fatalf("err = %v", err)
	}
}

func TestDiscoveryURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://login.microsoftonline.com/tid/v2.0": "https://login.microsoftonline.com/tid/v2.0/.well-known/openid-configuration",
		"https://sts.windows.net/tid/":               "https://login.microsoftonline.com/tid/v2.0/.well-known/openid-configuration",
		"https://sts.chinacloudapi.cn/tid/":          "https://login.chinacloudapi.cn/tid/v2.0/.well-known/openid-configuration",
		"https://127.0.0.1:8443/tid/v2.0/":           "https://127.0.0.1:8443/tid/v2.0/.well-known/openid-configuration",
		"https://sts.windows.net/tid/extra/":         "https://sts.windows.net/tid/extra/.well-known/openid-configuration",
	} {
		if got := discoveryURL(in); got != want {
			t.Errorf("discoveryURL(%s) = %s, want %s", in, got, want)
		}
	}
	if got := v1Issuer("https://login.microsoftonline.com/tid/v2.0"); got != "https://sts.windows.net/tid/" {
		t.Errorf("v1Issuer = %s", got)
	}
	if got := v1Issuer("https://127.0.0.1/tid/v2.0"); got != "" {
		t.Errorf("v1Issuer = %s", got)
	}
	for _, u := range []string{"http://127.0.0.1:1/x", "http://[::1]:1/x", "http://localhost/x", "https://example.com/x"} {
		if err := safeURL(u); err != nil {
			t.Errorf("safeURL(%s): %v", u, err)
		}
	}
	for _, u := range []string{"http://example.com/x", "ftp://x/y", "/relative", "https://user:pw@example.com/"} {
		if err := safeURL(u); err == nil {
			t.Errorf("safeURL(%s) accepted", u)
		}
	}
}
