package jwt_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/auth/jwt"
	"github.com/entra-companion/entra-companion/sim"
)

// issue mints a CMS access token for a sim user.
func issue(t *testing.T, s *sim.Server, upn string) string {
	t.Helper()
	tok, err := s.IssueAccessToken(upn, sim.CMSAudience+"/Articles.Read")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func failedChecks(r *jwt.Result) map[string]string {
	out := map[string]string{}
	for _, c := range r.Failed() {
		out[c.Name] = c.Detail
	}
	return out
}

func TestVerifySimTokens(t *testing.T) {
	s := sim.Start(t, sim.Options{AccessTokenLifetime: time.Hour})
	ctx := context.Background()
	contosoIssuer := s.Authority(sim.TenantContosoID) + "v2.0"

	t.Run("valid", func(t *testing.T) {
		for _, upn := range []string{sim.UserAdele, sim.UserAlex, sim.UserAdeleGuest} {
			v := &jwt.Verifier{HTTPClient: s.Client()}
			res, err := v.Verify(ctx, issue(t, s, upn), jwt.VerifyOptions{Audience: sim.CMSClientID})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Valid {
				t.Fatalf("%s: %v", upn, failedChecks(res))
			}
			u, _ := s.User(upn)
			if want := s.Authority(u.TenantID) + "v2.0"; res.Issuer != want {
				t.Errorf("%s: issuer %s, want %s", upn, res.Issuer, want)
			}
			if !strings.HasPrefix(res.JWKSURI, s.AuthorityHost()+"/") {
				t.Errorf("jwks_uri %s", res.JWKSURI)
			}
		}
		// A Graph token too (the sim's carry no header nonce, unlike Microsoft's).
		tok, err := s.IssueAccessToken(sim.UserMegan, "https://graph.microsoft.com/User.Read")
		if err != nil {
			t.Fatal(err)
		}
		v := &jwt.Verifier{HTTPClient: s.Client()}
		if res, err := v.Verify(ctx, tok, jwt.VerifyOptions{Audience: sim.GraphAudience, Issuer: contosoIssuer}); err != nil || !res.Valid {
			t.Fatalf("graph token: %v %v", err, res)
		}
	})

	for _, tc := range []struct {
		name  string
		token func(t *testing.T) string
		opts  jwt.VerifyOptions
		now   time.Time
		want  map[string]string
	}{
		{
			name:  "wrong audience",
			token: func(t *testing.T) string { return issue(t, s, sim.UserAdele) },
			opts:  jwt.VerifyOptions{Audience: "api://other"},
			want:  map[string]string{"audience": "audience is " + sim.CMSClientID + ", expected api://other"},
		},
		{
			name:  "foreign issuer",
			token: func(t *testing.T) string { return issue(t, s, sim.UserAdele) },
			opts:  jwt.VerifyOptions{Issuer: s.Authority(sim.TenantFabrikamID) + "v2.0"},
			want:  map[string]string{"issuer": "issuer is " + contosoIssuer + ", expected " + s.Authority(sim.TenantFabrikamID) + "v2.0"},
		},
		{
			name:  "expired",
			token: func(t *testing.T) string { return issue(t, s, sim.UserAdele) },
			now:   time.Now().Add(3 * time.Hour),
			want:  map[string]string{"expiry": "expired 2h0m ago at "},
		},
		{
			name: "tampered signature",
			token: func(t *testing.T) string {
				tok := issue(t, s, sim.UserAdele)
				i := strings.LastIndexByte(tok, '.') + 10
				c := byte('A')
				if tok[i] == 'A' {
					c = 'B'
				}
				return tok[:i] + string(c) + tok[i+1:]
			},
			want: map[string]string{"signature": "signature does not match: the token was altered or signed by someone else"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &jwt.Verifier{HTTPClient: s.Client()}
			if !tc.now.IsZero() {
				v.Now = func() time.Time { return tc.now }
			}
			res, err := v.Verify(ctx, tc.token(t), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := failedChecks(res)
			if res.Valid || len(got) != len(tc.want) {
				t.Fatalf("failed checks %v, want %v", got, tc.want)
			}
			for name, want := range tc.want {
				if !strings.Contains(got[name], want) {
					t.Errorf("%s: %q, want %q", name, got[name], want)
				}
			}
		})
	}
}

func TestVerifySimKeyRotation(t *testing.T) {
	s := sim.Start(t)
	ctx := context.Background()
	now := time.Now()
	v := &jwt.Verifier{HTTPClient: s.Client(), Now: func() time.Time { return now }}

	old := issue(t, s, sim.UserAdele)
	if res, err := v.Verify(ctx, old, jwt.VerifyOptions{}); err != nil || !res.Valid {
		t.Fatalf("before rotation: %v %v", err, res)
	}
	s.RotateSigningKey()
	s.DropOldSigningKeys()
	newTok := issue(t, s, sim.UserAdele)
	jwksBefore := s.Count(sim.EndpointJWKS)

	// A token of the new key: the cached key set lacks it, and the last fetch was just now,
	// so no fetch yet.
	res, err := v.Verify(ctx, newTok, jwt.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid || !strings.Contains(failedChecks(res)["key"], "don't list (rotated out?)") {
		t.Fatalf("new key before refetch interval: %v", failedChecks(res))
	}
	if n := s.Count(sim.EndpointJWKS); n != jwksBefore {
		t.Errorf("jwks fetched %d times within the refetch interval", n-jwksBefore)
	}
	// A minute later the unknown kid causes one fetch and the token verifies.
	now = now.Add(2 * time.Minute)
	if res, err := v.Verify(ctx, newTok, jwt.VerifyOptions{}); err != nil || !res.Valid {
		t.Fatalf("after refetch: %v %v", err, failedChecks(res))
	}
	if n := s.Count(sim.EndpointJWKS); n != jwksBefore+1 {
		t.Errorf("jwks fetched %d times, want 1", n-jwksBefore)
	}

	// The old token's key is gone: the check says so.
	fresh := &jwt.Verifier{HTTPClient: s.Client()}
	res, err = fresh.Verify(ctx, old, jwt.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := jwt.Decode(old)
	want := "signed by key kid=" + tok.Header.Kid + " which the issuer's keys at "
	if got := failedChecks(res)["key"]; !strings.Contains(got, want) || !strings.Contains(got, "(rotated out?)") {
		t.Errorf("key check: %q", got)
	}
}
