package sim_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"

	"github.com/entra-companion/entra-companion/sim"
)

func TestMSALInteractiveSilentAndRotation(t *testing.T) {
	s := sim.Start(t)
	ctx := ctxT(t)
	acc := &memCache{}
	pca := newPublic(t, s, sim.TenantContoso, acc)
	adele, _ := s.User(sim.UserAdele)

	res, err := pca.AcquireTokenInteractive(ctx, []string{"User.Read"}, public.WithOpenURL(s.Browser(sim.UserAdele)))
	if err != nil {
		t.Fatalf("interactive sign-in: %v", err)
	}
	if want := adele.ObjectID + "." + sim.TenantContosoID; res.Account.HomeAccountID != want {
		t.Errorf("home account id = %q, want %q", res.Account.HomeAccountID, want)
	}
	if res.Account.PreferredUsername != sim.UserAdele {
		t.Errorf("username = %q", res.Account.PreferredUsername)
	}
	at := claims(t, res.AccessToken)
	for k, want := range map[string]any{
		"aud": sim.GraphAudience, "tid": sim.TenantContosoID, "oid": adele.ObjectID, "ver": "2.0",
		"azp": sim.PublicClientID, "azpacr": "0", "idtyp": "user", "preferred_username": sim.UserAdele,
		"iss": s.AuthorityHost() + "/" + sim.TenantContosoID + "/v2.0", "name": "Adele Vance",
	} {
		if at[k] != want {
			t.Errorf("access token %s = %v, want %v", k, at[k], want)
		}
	}
	if !contains(scopeList(at["scp"]), "User.Read") {
		t.Errorf("scp = %v", at["scp"])
	}
	if h := header(t, res.AccessToken); h["alg"] != "RS256" || h["kid"] == "" || h["typ"] != "JWT" {
		t.Errorf("header = %v", h)
	}
	idt := claims(t, res.IDToken.RawToken)
	if idt["aud"] != sim.PublicClientID || idt["oid"] != adele.ObjectID || idt["tid"] != sim.TenantContosoID {
		t.Errorf("id token aud = %v", idt["aud"])
	}
	if groups, _ := idt["groups"].([]any); len(groups) != 5 {
		t.Errorf("id token groups = %v, want Adele's 5", idt["groups"])
	}
	if wids, _ := idt["wids"].([]any); len(wids) != 1 || wids[0] != sim.RoleGlobalReader {
		t.Errorf("wids = %v", idt["wids"])
	}
	if n := s.GrantCount("authorization_code"); n != 1 {
		t.Errorf("authorization_code grants = %d", n)
	}
	rt1 := acc.refreshToken(t)

	// Cached: no request.
	again, err := pca.AcquireTokenSilent(ctx, []string{"User.Read"}, public.WithSilentAccount(res.Account))
	if err != nil || again.AccessToken != res.AccessToken {
		t.Fatalf("silent from cache: %v (same token %v)", err, again.AccessToken == res.AccessToken)
	}
	if n := s.GrantCount("refresh_token"); n != 0 {
		t.Fatalf("a cached token cost %d refreshes", n)
	}

	// Another resource, silently, from the refresh token.
	cmsRes, err := pca.AcquireTokenSilent(ctx, []string{sim.CMSAudience + "/.default"}, public.WithSilentAccount(res.Account))
	if err != nil {
		t.Fatalf("silent CMS token: %v", err)
	}
	cc := claims(t, cmsRes.AccessToken)
	if cc["aud"] != sim.CMSClientID || cc["scp"] != "Articles.Read Articles.Write" {
		t.Errorf("cms token aud=%v scp=%v", cc["aud"], cc["scp"])
	}
	rt2 := acc.refreshToken(t)
	if rt2 == rt1 || s.GrantCount("refresh_token") != 1 {
		t.Fatalf("refresh token did not rotate (refreshes %d)", s.GrantCount("refresh_token"))
	}

	// The replayed refresh token is dead.
	status, body := refresh(t, s, sim.TenantContoso, rt1, "User.Read openid offline_access profile")
	wantEntraError(t, status, body, http.StatusBadRequest, "invalid_grant", 70000)

	// Short-lived tokens are not cached by MSAL: each silent call refreshes and rotates.
	s.SetAccessTokenLifetime(4 * time.Minute)
	prev := rt2
	for i := range 3 {
		r, err := pca.AcquireTokenSilent(ctx, []string{"GroupMember.Read.All"}, public.WithSilentAccount(res.Account))
		if err != nil {
			t.Fatalf("silent refresh %d: %v", i, err)
		}
		if exp := time.Until(r.ExpiresOn); exp > 5*time.Minute || exp < 3*time.Minute {
			t.Errorf("expires in %v, want ~4m", exp)
		}
		cur := acc.refreshToken(t)
		if cur == prev {
			t.Fatalf("refresh %d did not rotate the refresh token", i)
		}
		prev = cur
	}
	if n := s.GrantCount("refresh_token"); n != 4 {
		t.Errorf("refresh grants = %d, want 4", n)
	}

	// A scope nobody consented to needs an interactive sign-in.
	_, err = pca.AcquireTokenSilent(ctx, []string{"Directory.Read.All"}, public.WithSilentAccount(res.Account))
	if err == nil || !strings.Contains(err.Error(), "AADSTS65001") || !strings.Contains(err.Error(), "consent_required") {
		t.Fatalf("unconsented scope: %v", err)
	}
}

func TestMSALGuestSignIn(t *testing.T) {
	s := sim.Start(t)
	ctx := ctxT(t)
	pca := newPublic(t, s, sim.TenantFabrikam, nil)
	adele, _ := s.User(sim.UserAdele)
	guest, _ := s.User(sim.UserAdeleGuest)

	res, err := pca.AcquireTokenInteractive(ctx, []string{"User.Read"}, public.WithOpenURL(s.Browser(sim.UserAdele)))
	if err != nil {
		t.Fatalf("guest sign-in: %v", err)
	}
	if want := adele.ObjectID + "." + sim.TenantContosoID; res.Account.HomeAccountID != want {
		t.Errorf("home account id = %q, want the home one %q", res.Account.HomeAccountID, want)
	}
	c := claims(t, res.AccessToken)
	if c["tid"] != sim.TenantFabrikamID || c["oid"] != guest.ObjectID || c["home_oid"] != adele.ObjectID ||
		c["idp"] != s.AuthorityHost()+"/"+sim.TenantContosoID+"/v2.0" {
		t.Errorf("guest token claims tid=%v oid=%v home_oid=%v idp=%v", c["tid"], c["oid"], c["home_oid"], c["idp"])
	}
	resp, me := call(t, s.Client(), "GET", s.GraphURL()+"/me?$select=userPrincipalName,userType,id", res.AccessToken, nil)
	if resp.StatusCode != 200 || me["userType"] != "Guest" || me["userPrincipalName"] != sim.UserAdeleGuest || me["id"] != guest.ObjectID {
		t.Fatalf("guest /me: %d %v", resp.StatusCode, me)
	}
	resp, org := call(t, s.Client(), "GET", s.GraphURL()+"/organization", res.AccessToken, nil)
	if v, _ := org["value"].([]any); resp.StatusCode != 200 || len(v) != 1 || v[0].(map[string]any)["id"] != sim.TenantFabrikamID {
		t.Fatalf("guest /organization: %d %v", resp.StatusCode, org)
	}
	// The home account's refresh token also works at the resource tenant for the CMS.
	cmsRes, err := pca.AcquireTokenSilent(ctx, []string{sim.CMSAudience + "/Articles.Read"}, public.WithSilentAccount(res.Account))
	if err != nil {
		t.Fatalf("silent CMS token for the guest: %v", err)
	}
	if c := claims(t, cmsRes.AccessToken); c["tid"] != sim.TenantFabrikamID || c["scp"] != "Articles.Read" {
		t.Errorf("guest cms token tid=%v scp=%v", c["tid"], c["scp"])
	}
}

func TestMSALOrganizations(t *testing.T) {
	s := sim.Start(t, sim.Options{PagesOnHTTP: true})
	ctx := ctxT(t)
	pca := newPublic(t, s, "organizations", nil)
	alex, _ := s.User(sim.UserAlex)
	var opened string
	res, err := pca.AcquireTokenInteractive(ctx, []string{"User.Read"}, public.WithOpenURL(func(u string) error {
		opened = u
		return s.Browser(sim.UserAlex)(u)
	}))
	if err != nil {
		t.Fatalf("sign-in via organizations: %v", err)
	}
	if !strings.HasPrefix(opened, s.PagesURL()+"/organizations/oauth2/v2.0/authorize?") {
		t.Errorf("the browser opened %s, want the plain-http pages listener", opened)
	}
	if c := claims(t, res.AccessToken); c["tid"] != sim.TenantFabrikamID || c["oid"] != alex.ObjectID {
		t.Errorf("tid=%v oid=%v", c["tid"], c["oid"])
	}
	if _, err := pca.AcquireTokenSilent(ctx, []string{sim.CMSAudience + "/.default"}, public.WithSilentAccount(res.Account)); err != nil {
		t.Fatalf("silent via organizations: %v", err)
	}
}

func TestMSALBrowserErrors(t *testing.T) {
	s := sim.Start(t)
	ctx := ctxT(t)
	pca := newPublic(t, s, sim.TenantContoso, nil)
	for _, tc := range []struct{ upn, want string }{
		{"nobody@contoso.onmicrosoft.com", "AADSTS50034"},
		{sim.UserAlex, "AADSTS50020"}, // a Fabrikam member at the Contoso authority
	} {
		_, err := pca.AcquireTokenInteractive(ctx, []string{"User.Read"}, public.WithOpenURL(s.Browser(tc.upn)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("sign-in as %s: %v, want %s", tc.upn, err, tc.want)
		}
	}
}

func TestMSALDeviceCode(t *testing.T) {
	s := sim.Start(t, sim.Options{DeviceCodeInterval: time.Second})
	ctx := ctxT(t)
	pca := newPublic(t, s, sim.TenantContoso, nil)
	megan, _ := s.User(sim.UserMegan)

	dc, err := pca.AcquireTokenByDeviceCode(ctx, []string{"User.Read"})
	if err != nil {
		t.Fatalf("device code: %v", err)
	}
	r := dc.Result
	if len(r.UserCode) != 9 || !strings.HasSuffix(r.VerificationURL, "/devicelogin") || !strings.Contains(r.Message, r.UserCode) || r.Interval != 1 {
		t.Fatalf("device code result: %+v", r)
	}
	errc := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		errc <- s.ApproveDeviceCode(strings.ToLower(r.UserCode), sim.UserMegan)
	}()
	start := time.Now()
	res, err := dc.AuthenticationResult(ctx)
	if err != nil {
		t.Fatalf("device code result: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("approving: %v", err)
	}
	if c := claims(t, res.AccessToken); c["oid"] != megan.ObjectID {
		t.Errorf("oid = %v", c["oid"])
	}
	if n := s.GrantCount("device_code"); n != 1 {
		t.Errorf("device_code grants = %d", n)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("device code took %v", d)
	}
	if err := s.ApproveDeviceCode(r.UserCode, sim.UserMegan); err == nil {
		t.Error("approving a used code succeeded")
	}

	// Declined.
	dc2, err := pca.AcquireTokenByDeviceCode(ctx, []string{"User.Read"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DenyDeviceCode(dc2.Result.UserCode); err != nil {
		t.Fatal(err)
	}
	if _, err := dc2.AuthenticationResult(ctx); err == nil || !strings.Contains(err.Error(), "authorization_declined") {
		t.Fatalf("declined device code: %v", err)
	}
}

func TestDeviceCodeRaw(t *testing.T) {
	s := sim.Start(t, sim.Options{DeviceCodeInterval: time.Second, PagesOnHTTP: true})
	resp, err := s.Client().PostForm(s.Authority(sim.TenantContoso)+"oauth2/v2.0/devicecode", url.Values{
		"client_id": {sim.PublicClientID}, "scope": {"User.Read offline_access openid profile"}})
	if err != nil {
		t.Fatal(err)
	}
	var dc struct {
		UserCode        string `json:"user_code"`
		DeviceCode      string `json:"device_code"`
		VerificationURI string `json:"verification_uri"`
		ExpiresIn       int    `json:"expires_in"`
		Interval        int    `json:"interval"`
	}
	decodeJSON(t, resp, &dc)
	if dc.ExpiresIn != 900 || dc.VerificationURI != s.PagesURL()+"/devicelogin" {
		t.Fatalf("device code response: %+v", dc)
	}
	poll := func() (int, map[string]any) {
		return tokenPost(t, s, sim.TenantContoso, url.Values{"client_id": {sim.PublicClientID},
			"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {dc.DeviceCode}})
	}
	st, body := poll() // right after issue: faster than the interval
	wantEntraError(t, st, body, 400, "slow_down", 70016)
	time.Sleep(1100 * time.Millisecond)
	st, body = poll()
	wantEntraError(t, st, body, 400, "authorization_pending", 70016)

	// A person types the code on the device login page (plain http) and signs in.
	web := &http.Client{}
	page, err := web.PostForm(s.PagesURL()+"/devicelogin", url.Values{"otc": {dc.UserCode}})
	if err != nil || page.StatusCode != 200 {
		t.Fatalf("device login page: %v %v", err, page)
	}
	page.Body.Close()
	page, err = web.PostForm(s.PagesURL()+"/devicelogin", url.Values{"otc": {dc.UserCode}, "login": {sim.UserGrady}, "passwd": {"wrong"}, "action": {"approve"}})
	if b := readBody(t, page, err); !strings.Contains(b, "AADSTS50126") {
		t.Fatalf("wrong password accepted: %s", b)
	}
	grady, _ := s.User(sim.UserGrady)
	page, err = web.PostForm(s.PagesURL()+"/devicelogin", url.Values{"otc": {dc.UserCode}, "login": {sim.UserGrady}, "passwd": {grady.Password}, "action": {"approve"}})
	if b := readBody(t, page, err); !strings.Contains(b, `data-result="approved"`) {
		t.Fatalf("approval page: %s", b)
	}
	time.Sleep(1100 * time.Millisecond)
	st, body = poll()
	if st != 200 || body["refresh_token"] == nil || body["id_token"] == nil {
		t.Fatalf("poll after approval: %d %v", st, body)
	}
	idt := claims(t, body["id_token"].(string))
	if idt["groups"] != nil || idt["_claim_names"] == nil {
		t.Errorf("Grady's 260 groups must be an overage claim: groups=%v _claim_names=%v", idt["groups"] != nil, idt["_claim_names"])
	}
	st, body = poll()
	wantEntraError(t, st, body, 400, "invalid_grant", 70000)
}

func TestAuthCodePKCEAndReuse(t *testing.T) {
	s := sim.Start(t)
	v, ch := pkcePair("pkce")
	code := authCode(t, s, sim.TenantContoso, sim.UserAdele, ch, "User.Read openid offline_access profile")
	redeem := func(verifier, redirect string) (int, map[string]any) {
		return tokenPost(t, s, sim.TenantContoso, url.Values{"client_id": {sim.PublicClientID}, "grant_type": {"authorization_code"},
			"code": {code}, "redirect_uri": {redirect}, "code_verifier": {verifier}, "scope": {"User.Read openid offline_access profile"}})
	}
	wrongV, _ := pkcePair("other")
	st, body := redeem(wrongV, testRedirect)
	wantEntraError(t, st, body, 400, "invalid_grant", 501481)
	st, body = redeem(v, "http://localhost:9999/other")
	wantEntraError(t, st, body, 400, "invalid_grant", 50011)
	st, body = redeem(v, testRedirect)
	if st != 200 || body["token_type"] != "Bearer" || body["access_token"] == nil || body["refresh_token"] == nil || body["id_token"] == nil {
		t.Fatalf("redemption: %d %v", st, body)
	}
	if sc := scopeList(body["scope"]); !contains(sc, "User.Read") || !contains(sc, "openid") || !contains(sc, "offline_access") {
		t.Errorf("scope = %v", body["scope"])
	}
	st, body = redeem(v, testRedirect)
	wantEntraError(t, st, body, 400, "invalid_grant", 54005)
}
