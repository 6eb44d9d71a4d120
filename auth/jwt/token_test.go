package jwt

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDecode(t *testing.T) {
	k := keys(t)[0]
	good := sign(t, k, map[string]any{"alg": "RS256", "kid": "k1", "typ": "JWT", "x5t": "k1"},
		map[string]any{"aud": "api://x", "iss": "https://issuer/t/v2.0", "exp": 2000000000, "scp": "a b"})
	tok, err := Decode(good)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Header != (Header{Alg: "RS256", Kid: "k1", Typ: "JWT", X5t: "k1"}) {
		t.Errorf("header = %+v", tok.Header)
	}
	if tok.Raw != good || string(tok.Signed) != good[:strings.LastIndex(good, ".")] {
		t.Error("Raw or Signed differ from the input")
	}
	if got := tok.Claims.Scopes(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("scopes = %v", got)
	}
	if tok2, err := Decode("  Bearer " + good + "\n"); err != nil || tok2.Raw != good {
		t.Errorf("Bearer prefix: %v", err)
	}

	h := enc(map[string]any{"alg": "RS256"})
	p := enc(map[string]any{"sub": "x"})
	s := base64.RawURLEncoding.EncodeToString([]byte("signature"))
	b := base64.RawURLEncoding.EncodeToString
	for _, tc := range []struct {
		name, token, want string
	}{
		{"empty", "  ", "the token is empty"},
		{"two parts", h + "." + p, "expected 3 dot-separated parts, found 2"},
		{"four parts", h + "." + p + "." + s + "." + s, "expected 3 dot-separated parts, found 4"},
		{"jwe", h + "." + p + "." + s + "." + s + "." + s, "encrypted token (JWE)"},
		{"header not base64", "%%%%." + p + "." + s, "header is not base64url JSON: bad base64url at byte 0"},
		{"header padded", b([]byte(`{"alg":"RS256"}`)) + "=." + p + "." + s, "padding"},
		{"header not JSON", b([]byte("hello world")) + "." + p + "." + s, "header is not base64url JSON: not a JSON object"},
		{"header broken JSON", b([]byte(`{"alg":`)) + "." + p + "." + s, "header is not base64url JSON: broken JSON"},
		{"header trailing", b([]byte(`{"alg":"RS256"}{}`)) + "." + p + "." + s, "data after the JSON object"},
		{"alg not string", b([]byte(`{"alg":5}`)) + "." + p + "." + s, `header field "alg" is not a string`},
		{"payload array", h + "." + b([]byte(`[1,2]`)) + "." + s, "payload is not base64url JSON: not a JSON object"},
		{"payload null", h + "." + b([]byte(`null`)) + "." + s, "payload is not base64url JSON"},
		{"payload not base64", h + ".ab!c." + s, "payload is not base64url JSON"},
		{"signature not base64", h + "." + p + ".***", "signature is not base64url"},
		{"too large", h + "." + strings.Repeat("A", MaxTokenSize) + "." + s, "more than the 64 KiB limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.token)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			mustNotLeak(t, err.Error(), tc.token)
		})
	}

	// An unsigned token decodes (verification refuses it).
	if tok, err := Decode(h + "." + p + "."); err != nil || len(tok.Signature) != 0 {
		t.Errorf("unsigned token: %v", err)
	}
}

func TestClaims(t *testing.T) {
	var c Claims
	dec := json.NewDecoder(strings.NewReader(`{
		"aud": "api://x", "iss": "https://login.microsoftonline.com/t/v2.0", "sub": "s", "tid": "t", "oid": "o",
		"scp": "User.Read  Mail.Read", "roles": ["A", "B", 3], "groups": ["g1", "g2"], "upn": "u@x", "name": "N",
		"ver": "2.0", "exp": 1700000000, "nbf": 1699990000.5, "iat": "soon", "big": 1e300, "n": 12}`))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	eq := func(name string, got, want any) {
		t.Helper()
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		if string(gj) != string(wj) {
			t.Errorf("%s = %s, want %s", name, gj, wj)
		}
	}
	eq("Audience", c.Audience(), []string{"api://x"})
	eq("Issuer", c.Issuer(), "https://login.microsoftonline.com/t/v2.0")
	eq("Subject", c.Subject(), "s")
	eq("TenantID", c.TenantID(), "t")
	eq("ObjectID", c.ObjectID(), "o")
	eq("Scopes", c.Scopes(), []string{"User.Read", "Mail.Read"})
	eq("Roles", c.Roles(), []string{"A", "B"})
	eq("Groups", c.Groups(), []string{"g1", "g2"})
	eq("PreferredUsername", c.PreferredUsername(), "u@x")
	eq("Name", c.Name(), "N")
	eq("Version", c.Version(), "2.0")
	eq("String(n)", c.String("n"), "12")
	eq("String(missing)", c.String("missing"), "")
	if exp, ok := c.ExpiresAt(); !ok || !exp.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("ExpiresAt = %v %v", exp, ok)
	}
	if nbf, ok := c.NotBefore(); !ok || !nbf.Equal(time.Unix(1699990000, 5e8)) {
		t.Errorf("NotBefore = %v %v", nbf, ok)
	}
	if _, ok := c.IssuedAt(); ok {
		t.Error("a string iat is not a time")
	}
	if _, ok := c.Time("big"); ok {
		t.Error("1e300 is not a time")
	}
	c2 := Claims{"aud": []any{"a", "b"}, "preferred_username": "p@x", "upn": "u@x"}
	eq("Audience array", c2.Audience(), []string{"a", "b"})
	eq("PreferredUsername v2", c2.PreferredUsername(), "p@x")
	if Claims(nil).Audience() != nil || Claims(nil).Scopes() != nil {
		t.Error("nil claims")
	}
}
