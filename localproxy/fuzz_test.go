package localproxy

import (
	"encoding/base64"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/entra-companion/entra-companion/config"
)

// FuzzRouteMatch: whatever the request target, a path the proxy routes stays inside the
// route's prefix once cleaned, and the path sent upstream has no dot segments.
func FuzzRouteMatch(f *testing.F) {
	for _, s := range []string{
		"/cms/api/articles", "/cms/../graph/me", "/cms/%2e%2e/graph", "/cms%2f..%2fgraph", "/cms",
		"/graph/v1.0/me", "/cms/..;/x", "/cms/a%2Fb", "/cms//x", "/cmsx/", "/cms/%252e%252e/",
		"/cms/.%2e/x", "/c%6ds/x", "/cms/\\..\\x",
	} {
		f.Add(s)
	}
	s, err := New(Options{Listen: "127.0.0.1:0", Tokens: newFakeTokens(), Routes: []config.Route{
		bearerRoute("cms", "/cms/", "http://localhost:1337/"),
		bearerRoute("graph", "/graph/", "https://graph.microsoft.com/v1.0"),
		bearerRoute("beta", "/graph/beta/", "https://graph.microsoft.com/beta"),
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || u.Host != "" || u.Scheme != "" {
			return
		}
		if !pathOK(u.Path, u.RawPath) {
			return
		}
		rt := s.match(u.Path)
		if rt == nil || !rt.rawInPrefix(u.RawPath) {
			return
		}
		clean := path.Clean(u.Path)
		if clean != rt.prefixNoSlash && !strings.HasPrefix(clean+"/", rt.prefix) {
			t.Fatalf("%q routes to %s but cleans to %q", target, rt.prefix, clean)
		}
		stripped, rawStripped := rt.strip(u.Path, u.RawPath)
		if !strings.HasPrefix(stripped, "/") {
			t.Fatalf("%q: stripped path %q", target, stripped)
		}
		for _, seg := range strings.Split(stripped, "/") {
			if seg == ".." || seg == "." {
				t.Fatalf("%q: stripped path %q has a dot segment", target, stripped)
			}
		}
		if rawStripped != "" {
			dec, err := url.PathUnescape(rawStripped)
			if err != nil || dec != stripped {
				t.Fatalf("%q: raw %q decodes to %q, path %q", target, rawStripped, dec, stripped)
			}
		}
	})
}

func FuzzJWTExpiry(f *testing.F) {
	f.Add(makeJWT(map[string]any{"exp": 1900000000}))
	f.Add("a.e30.c")
	f.Add("..")
	f.Add("a.eyJleHAiOjFlMzAwfQ.c")
	f.Fuzz(func(t *testing.T, tok string) {
		if exp, ok := jwtExpiry(tok); ok && exp.Unix() <= 0 {
			t.Fatalf("%q: expiry %v accepted", tok, exp)
		}
	})
}

func FuzzClaimsChallenge(f *testing.F) {
	f.Add(`{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`, `realm=""`)
	f.Add(`{"a":"\"quoted\""}`, `error_description="x, y"`)
	f.Fuzz(func(t *testing.T, claims, extra string) {
		if !strings.HasPrefix(claims, "{") {
			return
		}
		enc := base64.StdEncoding.EncodeToString([]byte(claims))
		h := `Bearer ` + extra + `, error="insufficient_claims", claims="` + enc + `"`
		got := claimsChallenge([]string{h})
		if got != claims && !strings.Contains(extra, `"`) && !strings.ContainsAny(extra, "=,") {
			t.Fatalf("claims %q from %q, want %q", got, h, claims)
		}
		claimsChallenge([]string{extra})
		bearerParams(extra)
	})
}

func FuzzGuards(f *testing.F) {
	f.Add("127.0.0.1:8631", "http://localhost:3000")
	f.Add("[::1]:8631", "null")
	f.Add("localhost", "http://[::1]:*")
	allowed, _ := compileOrigins(nil)
	f.Fuzz(func(t *testing.T, host, origin string) {
		if validHost(host, 8631) {
			h := strings.ToLower(host)
			if h != "127.0.0.1:8631" && h != "localhost:8631" && h != "[::1]:8631" {
				t.Fatalf("validHost accepted %q", host)
			}
		}
		if validOrigin(origin, allowed) {
			u, err := url.Parse(origin)
			if err != nil || u.Path != "" || u.User != nil || !loopbackHost(u.Hostname()) {
				t.Fatalf("validOrigin accepted %q", origin)
			}
		}
		parseOriginPattern(origin)
	})
}
