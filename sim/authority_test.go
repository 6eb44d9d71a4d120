package sim_test

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/entra-companion/entra-companion/sim"
)

func TestDiscovery(t *testing.T) {
	s := sim.Start(t, sim.Options{PagesOnHTTP: true})
	c := s.Client()
	host := s.AuthorityHost()
	for _, tc := range []struct{ tenant, issuer, token string }{
		{sim.TenantContoso, host + "/" + sim.TenantContosoID + "/v2.0", host + "/" + sim.TenantContosoID + "/oauth2/v2.0/token"},
		{"CONTOSO.onmicrosoft.com", host + "/" + sim.TenantContosoID + "/v2.0", host + "/" + sim.TenantContosoID + "/oauth2/v2.0/token"},
		{"contoso.com", host + "/" + sim.TenantContosoID + "/v2.0", host + "/" + sim.TenantContosoID + "/oauth2/v2.0/token"},
		{sim.TenantFabrikamID, host + "/" + sim.TenantFabrikamID + "/v2.0", host + "/" + sim.TenantFabrikamID + "/oauth2/v2.0/token"},
		{"organizations", host + "/{tenantid}/v2.0", host + "/organizations/oauth2/v2.0/token"},
		{"common", host + "/{tenantid}/v2.0", host + "/common/oauth2/v2.0/token"},
	} {
		resp, doc := call(t, c, "GET", s.Authority(tc.tenant)+"v2.0/.well-known/openid-configuration", "", nil)
		if resp.StatusCode != 200 || doc["issuer"] != tc.issuer || doc["token_endpoint"] != tc.token {
			t.Errorf("%s: %s issuer=%v token=%v", tc.tenant, resp.Status, doc["issuer"], doc["token_endpoint"])
			continue
		}
		authz, _ := doc["authorization_endpoint"].(string)
		if !strings.HasPrefix(authz, s.PagesURL()+"/") || !strings.HasSuffix(authz, "/oauth2/v2.0/authorize") {
			t.Errorf("%s: authorization_endpoint %s is not on the pages listener", tc.tenant, authz)
		}
		for _, k := range []string{"jwks_uri", "device_authorization_endpoint", "end_session_endpoint", "scopes_supported"} {
			if doc[k] == nil {
				t.Errorf("%s: no %s", tc.tenant, k)
			}
		}
		if !strings.Contains(strings.Join(strings.Fields(strings.Trim(jsonString(doc["response_modes_supported"]), "[]")), " "), "form_post") {
			t.Errorf("%s: response_modes_supported = %v", tc.tenant, doc["response_modes_supported"])
		}
	}
	resp, body := call(t, c, "GET", s.Authority("nope.onmicrosoft.com")+"v2.0/.well-known/openid-configuration", "", nil)
	wantEntraError(t, resp.StatusCode, body, 400, "invalid_tenant", 90002)

	resp, jwks := call(t, c, "GET", s.Authority("common")+"discovery/v2.0/keys", "", nil)
	keys, _ := jwks["keys"].([]any)
	if resp.StatusCode != 200 || len(keys) != 1 {
		t.Fatalf("jwks: %s %v", resp.Status, jwks)
	}
	k := keys[0].(map[string]any)
	for _, f := range []string{"kty", "use", "kid", "x5t", "n", "e", "x5c"} {
		if k[f] == nil {
			t.Errorf("jwk has no %s", f)
		}
	}
	if k["kty"] != "RSA" || k["use"] != "sig" || k["e"] != "AQAB" {
		t.Errorf("jwk = %v", k)
	}
}

func jsonString(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestTLSAndListeners(t *testing.T) {
	s := sim.Start(t)
	for _, u := range []string{s.AuthorityHost(), s.GraphURL(), s.CMSURL()} {
		pu, _ := url.Parse(u)
		if ip := net.ParseIP(pu.Hostname()); ip == nil || !ip.IsLoopback() || pu.Scheme != "https" {
			t.Errorf("%s is not https on loopback", u)
		}
	}
	if s.PagesURL() != "" {
		t.Error("PagesURL without PagesOnHTTP")
	}
	if s.GraphHost() == strings.TrimPrefix(s.AuthorityHost(), "https://") {
		t.Error("Graph shares the authority's listener")
	}
	// HTTP/2 with the sim's CA; a client without it refuses the certificate.
	resp, err := s.Client().Get(s.Authority(sim.TenantContoso) + "discovery/v2.0/keys")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", resp.Proto)
	}
	if _, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{}}}).Get(s.GraphURL() + "/me"); err == nil {
		t.Error("a client without the sim's CA trusted it")
	}
	pool := s.CertPool()
	if !pool.AppendCertsFromPEM(s.CAPEM()) {
		t.Error("CAPEM is not a PEM certificate")
	}
	for _, name := range []string{"127.0.0.1", "localhost", "::1"} {
		addr := net.JoinHostPort(name, strings.Split(s.GraphHost(), ":")[1])
		conn, err := tls.Dial("tcp", s.GraphHost(), &tls.Config{RootCAs: pool, ServerName: name})
		if err != nil {
			t.Errorf("certificate for %s (%s): %v", name, addr, err)
			continue
		}
		conn.Close()
	}
	if _, err := sim.New(sim.Options{Addr: "0.0.0.0:0"}); err == nil {
		t.Error("a non-loopback listen address was accepted")
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	s := sim.Start(t)
	resp, body := call(t, s.Client(), "GET", s.Authority(sim.TenantContoso)+"oauth2/v2.0/token", "", nil)
	wantEntraError(t, resp.StatusCode, body, 400, "invalid_request", 900561)
	for _, tc := range []struct {
		name   string
		tenant string
		form   url.Values
		err    string
		code   int
	}{
		{"no grant_type", sim.TenantContoso, url.Values{"client_id": {sim.PublicClientID}}, "invalid_request", 900144},
		{"unsupported grant", sim.TenantContoso, url.Values{"client_id": {sim.PublicClientID}, "grant_type": {"password"}}, "unsupported_grant_type", 70003},
		{"unknown tenant", "nope.example", url.Values{"client_id": {sim.PublicClientID}, "grant_type": {"refresh_token"}}, "invalid_request", 90002},
		{"garbage refresh token", sim.TenantContoso, url.Values{"client_id": {sim.PublicClientID}, "grant_type": {"refresh_token"}, "refresh_token": {"nope"}}, "invalid_grant", 9002313},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, body := tokenPost(t, s, tc.tenant, tc.form)
			wantEntraError(t, st, body, 400, tc.err, tc.code)
		})
	}
	// Scope errors come from a valid refresh token.
	rt := userTokens(t, s, sim.TenantContoso, sim.UserAdele, "User.Read openid offline_access")["refresh_token"].(string)
	st, body := refresh(t, s, sim.TenantContoso, rt, "User.Read "+sim.CMSAudience+"/Articles.Read offline_access")
	wantEntraError(t, st, body, 400, "invalid_scope", 28000)
	st, body = refresh(t, s, sim.TenantContoso, rt, "api://unknown-api/read")
	wantEntraError(t, st, body, 400, "invalid_resource", 500011)
	st, body = refresh(t, s, sim.TenantContoso, rt, "User.Fly")
	wantEntraError(t, st, body, 400, "invalid_scope", 650053)
	// The refresh token was not consumed by the failures.
	st, body = refresh(t, s, sim.TenantContoso, rt, sim.CMSAudience+"/Articles.Read offline_access openid")
	if st != 200 {
		t.Fatalf("refresh after scope errors: %d %v", st, body)
	}
	if sc := scopeList(body["scope"]); !contains(sc, sim.CMSAudience+"/Articles.Read") || body["id_token"] == nil {
		t.Errorf("scope = %v", body["scope"])
	}
	// Adele's refresh token works at Fabrikam, where she is a guest; Megan's does not.
	st, body = refresh(t, s, sim.TenantFabrikam, body["refresh_token"].(string), "User.Read")
	if st != 200 || claims(t, body["access_token"].(string))["tid"] != sim.TenantFabrikamID {
		t.Fatalf("guest refresh: %d %v", st, body)
	}
	meganRT := userTokens(t, s, sim.TenantContoso, sim.UserMegan, "User.Read offline_access")["refresh_token"].(string)
	st, body = refresh(t, s, sim.TenantFabrikam, meganRT, "User.Read")
	wantEntraError(t, st, body, 400, "invalid_grant", 50020)
}

func TestAuthorizeValidation(t *testing.T) {
	s := sim.Start(t)
	_, ch := pkcePair("authz")
	base := func() url.Values {
		return url.Values{"client_id": {sim.PublicClientID}, "response_type": {"code"}, "redirect_uri": {testRedirect},
			"scope": {"openid User.Read"}, "state": {"s1"}, "code_challenge": {ch}, "code_challenge_method": {"S256"}}
	}
	page := func(tenant string, q url.Values) (int, string) {
		resp, err := s.Client().Get(s.Authority(tenant) + "oauth2/v2.0/authorize?" + q.Encode())
		return resp.StatusCode, readBody(t, resp, err)
	}
	// Errors that cannot go back to the redirect URI: an error page.
	q := base()
	q.Set("redirect_uri", "https://evil.example/cb")
	if st, b := page(sim.TenantContoso, q); st != 400 || !strings.Contains(b, "AADSTS50011") {
		t.Errorf("bad redirect_uri: %d", st)
	}
	q = base()
	q.Set("client_id", "00000000-1111-4222-8333-444444444444")
	if st, b := page(sim.TenantContoso, q); st != 400 || !strings.Contains(b, "AADSTS700016") {
		t.Errorf("unknown client: %d", st)
	}
	if st, b := page("nope.example", base()); st != 400 || !strings.Contains(b, "AADSTS90002") {
		t.Errorf("unknown tenant: %d", st)
	}
	// Errors that go back to the redirect URI, with the state.
	for _, tc := range []struct {
		name   string
		change func(url.Values)
		err    string
		aadsts string
	}{
		{"no PKCE", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, "invalid_request", "AADSTS9002325"},
		{"plain PKCE", func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request", "AADSTS9002325"},
		{"token response type", func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type", "AADSTS700054"},
		{"prompt=none without a user", func(q url.Values) { q.Set("prompt", "none") }, "login_required", "AADSTS50058"},
		{"two resources", func(q url.Values) { q.Set("scope", "User.Read "+sim.CMSAudience+"/Articles.Read") }, "invalid_scope", "AADSTS28000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := base()
			tc.change(q)
			loc := authorizeRedirect(t, s, sim.TenantContoso, q)
			got := loc.Query()
			if got.Get("error") != tc.err || !strings.HasPrefix(got.Get("error_description"), tc.aadsts+": ") || got.Get("state") != "s1" {
				t.Errorf("redirect %s", loc)
			}
		})
	}
	// The login page lists the tenant's accounts and refuses a wrong password.
	st, b := page(sim.TenantFabrikam, base())
	if st != 200 || !strings.Contains(b, sim.UserAlex) || !strings.Contains(b, sim.UserAdele) || strings.Contains(b, sim.UserMegan) {
		t.Fatalf("fabrikam login page: %d", st)
	}
	// form_post with auto-approval: Entra's hidden form.
	q = base()
	q.Set("response_mode", "form_post")
	q.Set("prompt", "none")
	q.Set("login_hint", sim.UserMegan)
	st, b = page(sim.TenantContoso, q)
	if st != 200 || !strings.Contains(b, `name="hiddenform"`) || !strings.Contains(b, `action="`+testRedirect+`"`) ||
		!strings.Contains(b, `name="code"`) || !strings.Contains(b, `name="state" value="s1"`) || !strings.Contains(b, "document.forms[0].submit()") {
		t.Fatalf("form_post page: %d %s", st, b)
	}
}

func TestInfo(t *testing.T) {
	s := sim.Start(t)
	b, err := json.Marshal(s.Info())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"authority_host", "tenants", "users", "clients", "graph_url", "cms_url", "pages_url", "ca_file"} {
		if _, ok := m[k]; !ok {
			t.Errorf("Info JSON has no %q: %s", k, b)
		}
	}
	users := m["users"].([]any)
	if len(users) != len(s.Users()) || users[0].(map[string]any)["upn"] == nil || users[0].(map[string]any)["tenant"] == nil {
		t.Errorf("users = %v", users)
	}
	if tn := m["tenants"].([]any)[0].(map[string]any); tn["id"] != sim.TenantContosoID || tn["domain"] != sim.TenantContoso {
		t.Errorf("tenants = %v", m["tenants"])
	}
	if cl := m["clients"].([]any)[0].(map[string]any); cl["id"] == nil || cl["kind"] == nil {
		t.Errorf("clients = %v", m["clients"])
	}
	if u, ok := s.User(strings.ToUpper(sim.UserAdeleGuest)); !ok || u.UserType != "Guest" || u.HomeTenantID != sim.TenantContosoID || u.TenantID != sim.TenantFabrikamID {
		t.Errorf("guest = %+v", u)
	}
	if g, _ := s.User(sim.UserGrady); len(g.Groups) != 260 {
		t.Errorf("Grady has %d groups", len(g.Groups))
	}
}
