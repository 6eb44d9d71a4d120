package sim_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/sim"
)

func issue(t *testing.T, s *sim.Server, upn string, scopes ...string) string {
	t.Helper()
	tok, err := s.IssueAccessToken(upn, scopes...)
	if err != nil {
		t.Fatalf("issuing a token for %s: %v", upn, err)
	}
	return tok
}

func TestGraphProfiles(t *testing.T) {
	s := sim.Start(t)
	c := s.Client()
	for _, u := range s.Users() {
		t.Run(u.UPN, func(t *testing.T) {
			tok := issue(t, s, u.UPN, "User.Read")
			resp, me := call(t, c, "GET", s.GraphURL()+"/me", tok, nil)
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("/me: %s %v", resp.Status, me)
			}
			str := func(v string) any {
				if v == "" {
					return nil
				}
				return v
			}
			phones := []any{}
			for _, p := range u.BusinessPhones {
				phones = append(phones, p)
			}
			want := map[string]any{
				"@odata.context": s.GraphURL() + "/$metadata#users/$entity",
				"id":             u.ObjectID, "userPrincipalName": u.UPN, "displayName": str(u.DisplayName),
				"givenName": str(u.GivenName), "surname": str(u.Surname), "mail": str(u.Mail),
				"jobTitle": str(u.JobTitle), "mobilePhone": str(u.MobilePhone), "officeLocation": str(u.OfficeLocation),
				"preferredLanguage": str(u.PreferredLanguage), "businessPhones": phones,
			}
			if len(me) != len(want) {
				t.Errorf("/me has %d fields, want %d: %v", len(me), len(want), me)
			}
			for k, v := range want {
				if fmt.Sprint(me[k]) != fmt.Sprint(v) {
					t.Errorf("%s = %v, want %v", k, me[k], v)
				}
			}
			resp, sel := call(t, c, "GET", s.GraphURL()+"/me?$select=department,userType,displayName", tok, nil)
			if resp.StatusCode != 200 || sel["userType"] != u.UserType || fmt.Sprint(sel["department"]) != fmt.Sprint(str(u.Department)) || len(sel) != 4 ||
				sel["@odata.context"] != s.GraphURL()+"/$metadata#users(department,userType,displayName)/$entity" {
				t.Errorf("$select: %s %v", resp.Status, sel)
			}
		})
	}
	tok := issue(t, s, sim.UserAdele)
	resp, body := call(t, c, "GET", s.GraphURL()+"/me?$select=displayName,shoeSize", tok, nil)
	if resp.StatusCode != 400 || !strings.Contains(fmt.Sprint(body["error"]), "shoeSize") {
		t.Errorf("unknown $select property: %s %v", resp.Status, body)
	}
	resp, body = call(t, c, "GET", s.GraphURL()+"/me/drive", tok, nil)
	if resp.StatusCode != 400 || body["error"].(map[string]any)["message"] != "Resource not found for the segment 'drive'." {
		t.Errorf("unknown segment: %s %v", resp.Status, body)
	}
	// Another user needs User.ReadBasic.All.
	resp, _ = call(t, c, "GET", s.GraphURL()+"/users/"+url.PathEscape(sim.UserMegan), tok, nil)
	if resp.StatusCode != 403 {
		t.Errorf("/users/{other} with User.Read: %s", resp.Status)
	}
	resp, body = call(t, c, "GET", s.GraphURL()+"/users/"+url.PathEscape(sim.UserMegan), issue(t, s, sim.UserAdele, "User.ReadBasic.All"), nil)
	if resp.StatusCode != 200 || body["displayName"] != "Megan Bowen" {
		t.Errorf("/users/{other} with User.ReadBasic.All: %s %v", resp.Status, body)
	}
}

// pageAll follows @odata.nextLink to the end and returns the items and the page count.
func pageAll(t *testing.T, s *sim.Server, first, tok string) ([]map[string]any, int) {
	t.Helper()
	var items []map[string]any
	pages := 0
	for next := first; next != ""; pages++ {
		resp, body := call(t, s.Client(), "GET", next, tok, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s %v", next, resp.Status, body)
		}
		for _, v := range body["value"].([]any) {
			items = append(items, v.(map[string]any))
		}
		next, _ = body["@odata.nextLink"].(string)
		if next != "" && !strings.HasPrefix(next, s.GraphURL()+"/") {
			t.Fatalf("nextLink %s is not absolute on the sim's Graph", next)
		}
		if pages > 20 {
			t.Fatal("too many pages")
		}
	}
	return items, pages
}

func TestGraphGradyGroupsPaged(t *testing.T) {
	s := sim.Start(t)
	tok := issue(t, s, sim.UserGrady, "GroupMember.Read.All")
	items, pages := pageAll(t, s, s.GraphURL()+"/me/transitiveMemberOf", tok)
	if len(items) != 260 || pages != 3 {
		t.Fatalf("got %d items in %d pages, want 260 in 3", len(items), pages)
	}
	seen := map[string]bool{}
	kinds := map[string]int{}
	for _, it := range items {
		id := it["id"].(string)
		if seen[id] {
			t.Fatalf("duplicate %s", id)
		}
		seen[id] = true
		if it["@odata.type"] != "#microsoft.graph.group" {
			t.Fatalf("type %v", it["@odata.type"])
		}
		types := fmt.Sprint(it["groupTypes"])
		switch {
		case types == "[Unified]":
			kinds["m365"]++
		case it["securityEnabled"] == true:
			kinds["security"]++
		case it["mailEnabled"] == true:
			kinds["distribution"]++
		}
	}
	if kinds["m365"] < 50 || kinds["security"] < 50 || kinds["distribution"] < 50 {
		t.Errorf("group kinds = %v", kinds)
	}
	items, pages = pageAll(t, s, s.GraphURL()+"/me/transitiveMemberOf/microsoft.graph.group?$top=999", tok)
	if len(items) != 260 || pages != 1 {
		t.Errorf("$top=999: %d items in %d pages", len(items), pages)
	}
	resp, _ := call(t, s.Client(), "GET", s.GraphURL()+"/me/transitiveMemberOf?$top=1000", tok, nil)
	if resp.StatusCode != 400 {
		t.Errorf("$top=1000: %s", resp.Status)
	}
	resp, _ = call(t, s.Client(), "GET", s.GraphURL()+"/me/transitiveMemberOf?$skiptoken=garbage", tok, nil)
	if resp.StatusCode != 400 {
		t.Errorf("bad skiptoken: %s", resp.Status)
	}
	// The overage claim in Grady's tokens points at getMemberObjects, which lists the same groups.
	resp, body := call(t, s.Client(), "POST", s.GraphURL()+"/me/getMemberObjects", tok, strings.NewReader(`{"securityEnabledOnly":false}`))
	if v, _ := body["value"].([]any); resp.StatusCode != 200 || len(v) != 260 {
		t.Errorf("getMemberObjects: %s %d", resp.Status, len(v))
	}
}

func TestGraphAdeleGroupsRolesAndScopes(t *testing.T) {
	s := sim.Start(t)
	adele, _ := s.User(sim.UserAdele)
	tok := issue(t, s, sim.UserAdele, "Directory.Read.All")
	items, _ := pageAll(t, s, s.GraphURL()+"/me/transitiveMemberOf?$top=2", tok)
	if len(items) != len(adele.Groups)+1 {
		t.Fatalf("got %d objects", len(items))
	}
	role := items[len(items)-1]
	if role["@odata.type"] != "#microsoft.graph.directoryRole" || role["displayName"] != "Global Reader" || role["roleTemplateId"] != sim.RoleGlobalReader {
		t.Errorf("role = %v", role)
	}
	// Without GroupMember.Read.All: 403 in Graph's shape.
	resp, body := call(t, s.Client(), "GET", s.GraphURL()+"/me/transitiveMemberOf", issue(t, s, sim.UserAdele, "User.Read"), nil)
	e, _ := body["error"].(map[string]any)
	inner, _ := e["innerError"].(map[string]any)
	if resp.StatusCode != 403 || e["code"] != "Authorization_RequestDenied" || e["message"] != "Insufficient privileges to complete the operation." ||
		inner["date"] == nil || inner["request-id"] == nil || inner["client-request-id"] == nil {
		t.Errorf("403: %s %v", resp.Status, body)
	}
}

func TestGraphPhotoAndOrganization(t *testing.T) {
	s := sim.Start(t)
	c := s.Client()
	tok := issue(t, s, sim.UserAdele)
	resp, err := c.Do(bearerReq(t, "GET", s.GraphURL()+"/me/photo/$value", tok))
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(resp.Body)
	resp.Body.Close()
	if err != nil || resp.Header.Get("Content-Type") != "image/jpeg" || img.Bounds().Dx() != 96 {
		t.Fatalf("photo: %v %s", err, resp.Header.Get("Content-Type"))
	}
	resp, meta := call(t, c, "GET", s.GraphURL()+"/me/photo", tok, nil)
	if resp.StatusCode != 200 || meta["@odata.mediaContentType"] != "image/jpeg" || meta["width"] != float64(96) {
		t.Errorf("photo metadata: %v", meta)
	}
	resp, body := call(t, c, "GET", s.GraphURL()+"/me/photo/$value", issue(t, s, sim.UserMegan), nil)
	e, _ := body["error"].(map[string]any)
	if resp.StatusCode != 404 || e["code"] != "ImageNotFound" || e["innerError"] == nil {
		t.Errorf("no photo: %s %v", resp.Status, body)
	}
	resp, org := call(t, c, "GET", s.GraphURL()+"/organization", tok, nil)
	v, _ := org["value"].([]any)
	if resp.StatusCode != 200 || len(v) != 1 {
		t.Fatalf("organization: %s %v", resp.Status, org)
	}
	o := v[0].(map[string]any)
	domains := o["verifiedDomains"].([]any)
	d0 := domains[0].(map[string]any)
	if o["id"] != sim.TenantContosoID || o["displayName"] != "Contoso" || o["tenantType"] != "AAD" || len(domains) != 2 ||
		d0["name"] != sim.TenantContoso || d0["isDefault"] != true || d0["isInitial"] != true || d0["type"] != "Managed" {
		t.Errorf("organization = %v", o)
	}
}

func bearerReq(t *testing.T, method, u, tok string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return req
}

func TestGraphRejectsBadTokens(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := sim.Start(t, sim.Options{Now: clock, AccessTokenLifetime: time.Hour})
	t0 := now
	set := func(at time.Time) { mu.Lock(); now = at; mu.Unlock() }
	expired := issue(t, s, sim.UserMegan) // valid t0 to t0+1h
	set(t0.Add(3 * time.Hour))
	future := issue(t, s, sim.UserMegan) // valid from t0+3h
	set(t0.Add(time.Hour + time.Second))
	fresh := issue(t, s, sim.UserAdele)
	parts := strings.Split(fresh, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(mustDecode(t, parts[1]), sim.TenantContosoID, sim.TenantFabrikamID, 1))) + "." + parts[2]
	cmsTok := issue(t, s, sim.UserAdele, sim.CMSAudience+"/Articles.Read")
	for _, tc := range []struct{ name, tok, msg string }{
		{"missing", "", "Access token is empty."},
		{"garbage", "not-a-jwt", "IDX14100"},
		{"expired", expired, "Lifetime validation failed, the token is expired."},
		{"not yet valid", future, "Lifetime validation failed, the token is not yet valid."},
		{"wrong audience", cmsTok, "Invalid audience."},
		{"tampered", tampered, "Invalid signature."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Rejected(sim.EndpointGraphMe)
			resp, body := call(t, s.Client(), "GET", s.GraphURL()+"/me", tc.tok, nil)
			e, _ := body["error"].(map[string]any)
			if resp.StatusCode != 401 || e["code"] != "InvalidAuthenticationToken" || !strings.Contains(fmt.Sprint(e["message"]), tc.msg) {
				t.Fatalf("%s %v", resp.Status, body)
			}
			if wa := resp.Header.Get("WWW-Authenticate"); wa != `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"` {
				t.Errorf("WWW-Authenticate = %q", wa)
			}
			if s.Rejected(sim.EndpointGraphMe) != before+1 {
				t.Error("not counted as rejected")
			}
		})
	}
	if resp, _ := call(t, s.Client(), "GET", s.GraphURL()+"/me", fresh, nil); resp.StatusCode != 200 {
		t.Fatalf("fresh token: %s", resp.Status)
	}
}

func mustDecode(t *testing.T, p string) string {
	b, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGraphKeyRotation(t *testing.T) {
	s := sim.Start(t)
	c := s.Client()
	old := issue(t, s, sim.UserAdele)
	s.RotateSigningKey()
	cur := issue(t, s, sim.UserAdele)
	if header(t, old)["kid"] == header(t, cur)["kid"] {
		t.Fatal("rotation did not change the kid")
	}
	jwks := func() []any {
		_, body := call(t, c, "GET", s.Authority(sim.TenantContoso)+"discovery/v2.0/keys", "", nil)
		return body["keys"].([]any)
	}
	if k := jwks(); len(k) != 2 || k[0].(map[string]any)["kid"] != header(t, cur)["kid"] {
		t.Fatalf("JWKS after rotation: %v", k)
	}
	for _, tok := range []string{old, cur} {
		if resp, _ := call(t, c, "GET", s.GraphURL()+"/me", tok, nil); resp.StatusCode != 200 {
			t.Fatalf("token with a listed key: %s", resp.Status)
		}
	}
	s.DropOldSigningKeys()
	if k := jwks(); len(k) != 1 {
		t.Fatalf("JWKS after dropping: %d keys", len(k))
	}
	if resp, _ := call(t, c, "GET", s.GraphURL()+"/me", old, nil); resp.StatusCode != 401 {
		t.Fatalf("token signed by a dropped key: %s", resp.Status)
	}
	if resp, _ := call(t, c, "GET", s.GraphURL()+"/me", cur, nil); resp.StatusCode != 200 {
		t.Fatalf("token signed by the current key: %s", resp.Status)
	}
}

func TestGraphBatch(t *testing.T) {
	s := sim.Start(t)
	tok := issue(t, s, sim.UserAdele)
	body := `{"requests":[
		{"id":"1","method":"GET","url":"/me?$select=displayName"},
		{"id":"2","method":"GET","url":"/me/photo/$value"},
		{"id":"3","method":"GET","url":"/organization","dependsOn":["1"]},
		{"id":"4","method":"GET","url":"/me/transitiveMemberOf"}]}`
	before := s.Count(sim.EndpointGraphMe)
	resp, out := call(t, s.Client(), "POST", s.GraphURL()+"/$batch", tok, strings.NewReader(body))
	if resp.StatusCode != 200 {
		t.Fatalf("batch: %s %v", resp.Status, out)
	}
	byID := map[string]map[string]any{}
	for _, r := range out["responses"].([]any) {
		m := r.(map[string]any)
		byID[m["id"].(string)] = m
	}
	if byID["1"]["status"] != float64(200) || byID["1"]["body"].(map[string]any)["displayName"] != "Adele Vance" {
		t.Errorf("step 1: %v", byID["1"])
	}
	img, err := base64.StdEncoding.DecodeString(fmt.Sprint(byID["2"]["body"]))
	if _, jerr := jpeg.Decode(bytes.NewReader(img)); byID["2"]["status"] != float64(200) || err != nil || jerr != nil {
		t.Errorf("step 2 (photo as base64): %v %v", err, jerr)
	}
	if byID["3"]["status"] != float64(200) || byID["4"]["status"] != float64(403) {
		t.Errorf("steps 3, 4: %v %v", byID["3"]["status"], byID["4"]["status"])
	}
	if s.Count(sim.EndpointGraphMe) != before+1 || s.Count(sim.EndpointGraphBatch) != 1 {
		t.Errorf("counts: me %d batch %d", s.Count(sim.EndpointGraphMe)-before, s.Count(sim.EndpointGraphBatch))
	}
	var reqs []string
	for i := range 21 {
		reqs = append(reqs, fmt.Sprintf(`{"id":"%d","method":"GET","url":"/me"}`, i))
	}
	resp, out = call(t, s.Client(), "POST", s.GraphURL()+"/$batch", tok, strings.NewReader(`{"requests":[`+strings.Join(reqs, ",")+`]}`))
	if resp.StatusCode != 400 {
		t.Errorf("21 steps: %s %v", resp.Status, out)
	}
	resp, _ = call(t, s.Client(), "POST", s.GraphURL()+"/$batch", "", strings.NewReader(body))
	if resp.StatusCode != 401 {
		t.Errorf("batch without a token: %s", resp.Status)
	}
}

func TestGraphThrottlingFault(t *testing.T) {
	s := sim.Start(t)
	tok := issue(t, s, sim.UserAdele)
	s.InjectFault(sim.EndpointGraphMe, sim.Fault{Status: 429, RetryAfter: 2500 * time.Millisecond})
	resp, body := call(t, s.Client(), "GET", s.GraphURL()+"/me", tok, nil)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" || body["error"].(map[string]any)["code"] != "TooManyRequests" {
		t.Fatalf("throttled: %s %q %v", resp.Status, resp.Header.Get("Retry-After"), body)
	}
	if resp, _ := call(t, s.Client(), "GET", s.GraphURL()+"/me", tok, nil); resp.StatusCode != 200 {
		t.Fatalf("after the fault: %s", resp.Status)
	}
	if n := s.Count(sim.EndpointGraphMe); n != 2 {
		t.Errorf("count = %d, want 2 (faulted calls count)", n)
	}
}

func TestContinuousAccessEvaluation(t *testing.T) {
	s := sim.Start(t)
	c := s.Client()
	old := issue(t, s, sim.UserAdele)
	oldCMS := issue(t, s, sim.UserAdele, sim.CMSAudience+"/Articles.Read")
	other := issue(t, s, sim.UserMegan)
	s.RevokeAccessTokens(sim.UserAdele)
	resp, body := call(t, c, "GET", s.GraphURL()+"/me", old, nil)
	wa := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != 401 || !strings.Contains(wa, `error="insufficient_claims"`) {
		t.Fatalf("revoked token: %s %q %v", resp.Status, wa, body)
	}
	_, claimsB64, _ := strings.Cut(wa, `claims="`)
	claimsB64, _, _ = strings.Cut(claimsB64, `"`)
	raw, err := base64.StdEncoding.DecodeString(claimsB64)
	var ch struct {
		AccessToken struct {
			Nbf struct {
				Essential bool   `json:"essential"`
				Value     string `json:"value"`
			} `json:"nbf"`
		} `json:"access_token"`
	}
	if err != nil || json.Unmarshal(raw, &ch) != nil || !ch.AccessToken.Nbf.Essential || ch.AccessToken.Nbf.Value == "" {
		t.Fatalf("claims challenge %q: %v", raw, err)
	}
	resp, _ = call(t, c, "GET", s.CMSURL()+"/api/articles", oldCMS, nil)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "insufficient_claims") {
		t.Fatalf("revoked CMS token: %s", resp.Status)
	}
	for _, tok := range []string{issue(t, s, sim.UserAdele), other} {
		if resp, _ := call(t, c, "GET", s.GraphURL()+"/me", tok, nil); resp.StatusCode != 200 {
			t.Fatalf("token issued after the revocation or of another user: %s", resp.Status)
		}
	}
	if n := s.Rejected(sim.EndpointGraphMe); n != 1 {
		t.Errorf("rejected = %d", n)
	}
}

func TestGraphUserInfo(t *testing.T) {
	s := sim.Start(t)
	body := userTokens(t, s, sim.TenantContoso, sim.UserAdele, "User.Read openid profile email offline_access")
	resp, ui := call(t, s.Client(), "GET", "https://"+s.GraphHost()+"/oidc/userinfo", body["access_token"].(string), nil)
	if resp.StatusCode != 200 || ui["name"] != "Adele Vance" || ui["email"] != sim.UserAdele || ui["sub"] == nil {
		t.Fatalf("userinfo: %s %v", resp.Status, ui)
	}
}
