package sim_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/sim"
)

func wantStrapiError(t *testing.T, resp *http.Response, body map[string]any, status int, name string) {
	t.Helper()
	e, _ := body["error"].(map[string]any)
	if resp.StatusCode != status || e["status"] != float64(status) || e["name"] != name || e["message"] == nil ||
		e["details"] == nil || body["data"] != nil || len(body) != 2 {
		t.Fatalf("got %s %v, want %d %s", resp.Status, body, status, name)
	}
}

func TestCMSCallbackAndArticles(t *testing.T) {
	s := sim.Start(t)
	c := s.Client()
	graphTok := issue(t, s, sim.UserAdele)
	adele, _ := s.User(sim.UserAdele)

	resp, body := call(t, c, "GET", s.CMSURL()+"/api/auth/microsoft/callback?access_token="+graphTok, "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("callback: %s %v", resp.Status, body)
	}
	if n := s.Count(sim.EndpointGraphMe); n != 1 {
		t.Errorf("the CMS called Graph /me %d times, want 1", n)
	}
	jwt, _ := body["jwt"].(string)
	user, _ := body["user"].(map[string]any)
	if h := header(t, jwt); h["alg"] != "HS256" {
		t.Errorf("cms jwt header %v", h)
	}
	jc := claims(t, jwt)
	if jc["id"] != float64(1) || jc["iat"] == nil || jc["exp"].(float64)-jc["iat"].(float64) != 30*24*3600 {
		t.Errorf("cms jwt claims %v", jc)
	}
	if user["id"] != float64(1) || user["email"] != adele.UPN || user["username"] != adele.UPN || user["provider"] != "microsoft" ||
		user["confirmed"] != true || user["blocked"] != false || user["createdAt"] == nil || user["updatedAt"] == nil {
		t.Errorf("user = %v", user)
	}
	// Same user again: same id.
	_, again := call(t, c, "GET", s.CMSURL()+"/api/auth/microsoft/callback?access_token="+issue(t, s, sim.UserAdele), "", nil)
	if again["user"].(map[string]any)["id"] != float64(1) {
		t.Errorf("second callback made a new user: %v", again["user"])
	}

	resp, list := call(t, c, "GET", s.CMSURL()+"/api/articles", jwt, nil)
	data, _ := list["data"].([]any)
	pag, _ := list["meta"].(map[string]any)["pagination"].(map[string]any)
	if resp.StatusCode != 200 || len(data) != 3 || pag["page"] != float64(1) || pag["pageSize"] != float64(25) || pag["pageCount"] != float64(1) || pag["total"] != float64(3) {
		t.Fatalf("articles: %s %v", resp.Status, list)
	}
	first := data[0].(map[string]any)
	for _, k := range []string{"id", "documentId", "title", "slug", "publishedAt"} {
		if first[k] == nil {
			t.Errorf("article has no %s: %v", k, first)
		}
	}
	resp, one := call(t, c, "GET", s.CMSURL()+"/api/articles/"+first["documentId"].(string), jwt, nil)
	if resp.StatusCode != 200 || one["data"].(map[string]any)["title"] != first["title"] {
		t.Errorf("one article: %s %v", resp.Status, one)
	}
	resp, created := call(t, c, "POST", s.CMSURL()+"/api/articles", jwt, strings.NewReader(`{"data":{"title":"Hello from a test"}}`))
	d, _ := created["data"].(map[string]any)
	if resp.StatusCode != 201 || d["id"] != float64(4) || d["title"] != "Hello from a test" || d["slug"] != "hello-from-a-test" {
		t.Errorf("create: %s %v", resp.Status, created)
	}
	resp, bad := call(t, c, "POST", s.CMSURL()+"/api/articles", jwt, strings.NewReader(`{"title":"no data"}`))
	wantStrapiError(t, resp, bad, 400, "ValidationError")
	resp, me := call(t, c, "GET", s.CMSURL()+"/api/users/me", jwt, nil)
	if resp.StatusCode != 200 || me["email"] != adele.UPN {
		t.Errorf("users/me: %s %v", resp.Status, me)
	}

	// Invalid Graph token at the callback.
	resp, body = call(t, c, "GET", s.CMSURL()+"/api/auth/microsoft/callback?access_token=eyJnot.a.token", "", nil)
	wantStrapiError(t, resp, body, 400, "ApplicationError")
	// A CMS token (wrong audience for Graph) is refused by Graph, so by the callback too.
	resp, body = call(t, c, "GET", s.CMSURL()+"/api/auth/microsoft/callback?access_token="+issue(t, s, sim.UserAdele, sim.CMSAudience+"/Articles.Read"), "", nil)
	wantStrapiError(t, resp, body, 400, "ApplicationError")
}

func TestCMSEntraTokensAndScopes(t *testing.T) {
	s := sim.Start(t)
	c := s.Client()
	read := issue(t, s, sim.UserMegan, sim.CMSAudience+"/Articles.Read")
	write := issue(t, s, sim.UserMegan, sim.CMSAudience+"/Articles.Write")
	if a := claims(t, read)["aud"]; a != sim.CMSClientID {
		t.Fatalf("cms token aud = %v", a)
	}
	if resp, _ := call(t, c, "GET", s.CMSURL()+"/api/articles", read, nil); resp.StatusCode != 200 {
		t.Errorf("read with Articles.Read: %s", resp.Status)
	}
	resp, body := call(t, c, "POST", s.CMSURL()+"/api/articles", read, strings.NewReader(`{"data":{"title":"x"}}`))
	wantStrapiError(t, resp, body, 403, "ForbiddenError")
	if resp, _ := call(t, c, "POST", s.CMSURL()+"/api/articles", write, strings.NewReader(`{"data":{"title":"x"}}`)); resp.StatusCode != 201 {
		t.Errorf("write with Articles.Write: %s", resp.Status)
	}
	app, err := s.IssueAppToken(sim.TenantContoso, sim.ConfidentialClientID, sim.CMSAudience)
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := call(t, c, "GET", s.CMSURL()+"/api/articles", app, nil); resp.StatusCode != 200 {
		t.Errorf("read with the app role: %s", resp.Status)
	}
	for name, tok := range map[string]string{"missing": "", "graph token": issue(t, s, sim.UserMegan), "garbage": "abc.def.ghi"} {
		before := s.Rejected(sim.EndpointCMSArticles)
		resp, body := call(t, c, "GET", s.CMSURL()+"/api/articles", tok, nil)
		wantStrapiError(t, resp, body, 401, "UnauthorizedError")
		if body["error"].(map[string]any)["message"] != "Missing or invalid credentials" || s.Rejected(sim.EndpointCMSArticles) != before+1 {
			t.Errorf("%s: %v", name, body)
		}
	}
	resp, body = call(t, c, "GET", s.CMSURL()+"/api/nope", read, nil)
	wantStrapiError(t, resp, body, 404, "NotFoundError")
}

func TestCMSStreamDownloadEcho(t *testing.T) {
	s := sim.Start(t)
	c := s.Client()
	tok := issue(t, s, sim.UserAdele, sim.CMSAudience+"/Articles.Read")

	// Stream: each event arrives on its own, before the next is sent.
	req := bearerReq(t, "GET", s.CMSURL()+"/api/stream?n=4&interval_ms=150", tok)
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream content type %q", resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	var arrivals []time.Duration
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			arrivals = append(arrivals, time.Since(start))
		}
	}
	resp.Body.Close()
	if len(arrivals) != 4 || arrivals[3]-arrivals[0] < 400*time.Millisecond || arrivals[1]-arrivals[0] < 100*time.Millisecond {
		t.Fatalf("events arrived at %v", arrivals)
	}

	// Download: deterministic bytes.
	const size = 1<<20 + 3
	resp, err = c.Do(bearerReq(t, "GET", s.CMSURL()+"/api/download?size=1048579", tok))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := make([]byte, size)
	sim.DownloadBytes(0, want)
	if err != nil || !bytes.Equal(got, want) || resp.ContentLength != size {
		t.Fatalf("download: %v, %d bytes, equal %v", err, len(got), bytes.Equal(got, want))
	}
	if resp, _ := call(t, c, "GET", s.CMSURL()+"/api/download?size=10", "", nil); resp.StatusCode != 401 {
		t.Errorf("download without a token: %s", resp.Status)
	}

	// Echo: names, never values; who the token belongs to.
	megan, _ := s.User(sim.UserMegan)
	meganTok := issue(t, s, sim.UserMegan, sim.CMSAudience+"/Articles.Read")
	req = bearerReq(t, "POST", s.CMSURL()+"/api/echo?a=1", meganTok)
	req.Header.Set("X-Secret-Header", "s3cr3t-value")
	req.Body = io.NopCloser(strings.NewReader("hello"))
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var echo map[string]any
	if err := json.Unmarshal(raw, &echo); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "s3cr3t-value") || strings.Contains(string(raw), meganTok[:40]) {
		t.Fatalf("echo leaked a header value or the token: %s", raw)
	}
	names, _ := json.Marshal(echo["headers"])
	if echo["authorized"] != true || echo["auth"] != "entra" || echo["oid"] != megan.ObjectID || echo["preferred_username"] != sim.UserMegan ||
		echo["method"] != "POST" || echo["raw_query"] != "a=1" || !strings.Contains(string(names), "X-Secret-Header") || echo["body_bytes"] != float64(5) {
		t.Fatalf("echo = %s", raw)
	}
	_, anon := call(t, c, "GET", s.CMSURL()+"/api/echo", "", nil)
	if anon["authorized"] != false {
		t.Errorf("anonymous echo = %v", anon)
	}
}

func TestCMSStopStart(t *testing.T) {
	s := sim.Start(t)
	graphTok := issue(t, s, sim.UserGrady)
	_, body := call(t, s.Client(), "GET", s.CMSURL()+"/api/auth/microsoft/callback?access_token="+graphTok, "", nil)
	jwt := body["jwt"].(string)
	url := s.CMSURL()
	s.StopCMS()
	c := s.Client()
	if resp, err := c.Get(url + "/api/articles"); err == nil {
		resp.Body.Close()
		t.Fatal("the CMS answered while stopped")
	}
	if err := s.StartCMS(); err != nil {
		t.Fatalf("StartCMS: %v", err)
	}
	if s.CMSURL() != url {
		t.Fatalf("CMS moved from %s to %s", url, s.CMSURL())
	}
	if resp, _ := call(t, c, "GET", url+"/api/articles", jwt, nil); resp.StatusCode != 200 {
		t.Fatalf("after restart, the old jwt: %s", resp.Status)
	}
}
