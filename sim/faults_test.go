package sim_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"

	"github.com/entra-companion/entra-companion/sim"
)

func TestFaultCountAndGrantFilter(t *testing.T) {
	s := sim.Start(t)
	tokens := userTokens(t, s, sim.TenantContoso, sim.UserAdele, "User.Read openid profile offline_access")
	s.InjectFault(sim.EndpointToken, sim.Fault{Count: 2, Status: 503, Error: "temporarily_unavailable", RetryAfter: time.Second, Grant: "refresh_token"})
	cc := url.Values{"client_id": {sim.ConfidentialClientID}, "client_secret": {confidentialSecret(t, s)},
		"grant_type": {"client_credentials"}, "scope": {sim.GraphAudience + "/.default"}}
	if st, body := tokenPost(t, s, sim.TenantContoso, cc); st != 200 {
		t.Fatalf("another grant was faulted: %d %v", st, body)
	}
	rt := tokens["refresh_token"].(string)
	for range 2 {
		st, body := refresh(t, s, sim.TenantContoso, rt, "User.Read openid profile offline_access")
		wantEntraError(t, st, body, 503, "temporarily_unavailable", 90033)
	}
	st, body := refresh(t, s, sim.TenantContoso, rt, "User.Read openid profile offline_access")
	if st != 200 {
		t.Fatalf("after the faults: %d %v", st, body)
	}
	if s.Count(sim.EndpointToken) != 5 || s.GrantCount("refresh_token") != 1 || s.GrantCount("client_credentials") != 1 {
		t.Errorf("token calls %d, refresh grants %d", s.Count(sim.EndpointToken), s.GrantCount("refresh_token"))
	}
	s.InjectFault(sim.EndpointDiscovery, sim.Fault{Count: 5, Status: 500})
	s.ClearFaults()
	if resp, _ := call(t, s.Client(), "GET", s.Authority(sim.TenantContoso)+"v2.0/.well-known/openid-configuration", "", nil); resp.StatusCode != 200 {
		t.Errorf("ClearFaults left a fault: %s", resp.Status)
	}
	s.ResetCounts()
	if s.Count(sim.EndpointToken) != 0 || s.GrantCount("refresh_token") != 0 || s.Count(sim.EndpointDiscovery) != 0 {
		t.Error("ResetCounts left counts")
	}
}

func TestFaultHangReleasedByClientTimeout(t *testing.T) {
	s := sim.Start(t)
	s.InjectFault(sim.EndpointGraphMe, sim.Fault{Hang: true})
	c := s.Client()
	c.Timeout = 200 * time.Millisecond
	start := time.Now()
	_, err := c.Do(bearerReq(t, "GET", s.GraphURL()+"/me", issue(t, s, sim.UserAdele)))
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("hang: err=%v after %v", err, time.Since(start))
	}
	// The hang is used up: the next call answers.
	if resp, _ := call(t, s.Client(), "GET", s.GraphURL()+"/me", issue(t, s, sim.UserAdele), nil); resp.StatusCode != 200 {
		t.Fatalf("after the hang: %s", resp.Status)
	}
}

func TestFaultHangReleasedByClose(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := sim.New(sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.InjectFault(sim.EndpointToken, sim.Fault{Hang: true, Count: 3})
	c := s.Client()
	done := make(chan error, 3)
	for range 3 {
		go func() {
			resp, err := c.PostForm(s.Authority(sim.TenantContoso)+"oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}})
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Count(sim.EndpointToken) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v with hanging requests", d)
	}
	for range 3 {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("a hanging request was not released by Close")
		}
	}
	c.CloseIdleConnections()
	deadline = time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		t.Errorf("goroutines: %d before, %d after Close", before, n)
	}
}

func TestFaultMalformedAndDelay(t *testing.T) {
	s := sim.Start(t)
	s.InjectFault(sim.EndpointDiscovery, sim.Fault{Malformed: true})
	resp, err := s.Client().Get(s.Authority(sim.TenantContoso) + "v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var v any
	if resp.StatusCode != 200 || json.Unmarshal(b, &v) == nil {
		t.Fatalf("malformed: %s %q parses", resp.Status, b)
	}
	// MSAL meets the broken discovery document and fails.
	s.InjectFault(sim.EndpointDiscovery, sim.Fault{Malformed: true})
	pca := newPublic(t, s, sim.TenantContoso, nil)
	if _, err := pca.AcquireTokenInteractive(ctxT(t), []string{"User.Read"}, public.WithOpenURL(s.Browser(sim.UserAdele))); err == nil {
		t.Fatal("MSAL accepted a malformed discovery document")
	}

	s.InjectFault(sim.EndpointJWKS, sim.Fault{Delay: 300 * time.Millisecond})
	start := time.Now()
	resp, keys := call(t, s.Client(), "GET", s.Authority(sim.TenantContoso)+"discovery/v2.0/keys", "", nil)
	if d := time.Since(start); resp.StatusCode != 200 || keys["keys"] == nil || d < 300*time.Millisecond {
		t.Fatalf("delay: %s after %v", resp.Status, d)
	}
}

func TestRevokeAndRestoreRefreshTokens(t *testing.T) {
	s := sim.Start(t)
	scope := "User.Read openid profile offline_access"
	rt := userTokens(t, s, sim.TenantContoso, sim.UserAdele, scope)["refresh_token"].(string)
	meganRT := userTokens(t, s, sim.TenantContoso, sim.UserMegan, scope)["refresh_token"].(string)
	s.RevokeRefreshTokens(sim.UserAdele)
	st, body := refresh(t, s, sim.TenantContoso, rt, scope)
	wantEntraError(t, st, body, 400, "invalid_grant", 50173)
	if !strings.Contains(body["error_description"].(string), "The provided grant has expired due to it being revoked") {
		t.Errorf("description: %v", body["error_description"])
	}
	// Revoking Adele's home account also covers her guest sign-ins in Fabrikam.
	st, body = refresh(t, s, sim.TenantFabrikam, rt, scope)
	wantEntraError(t, st, body, 400, "invalid_grant", 50173)
	if st, _ := refresh(t, s, sim.TenantContoso, meganRT, scope); st != 200 {
		t.Fatal("another user's refresh token was revoked")
	}
	// A new sign-in works while the revocation stands.
	fresh := userTokens(t, s, sim.TenantContoso, sim.UserAdele, scope)["refresh_token"].(string)
	if st, body := refresh(t, s, sim.TenantContoso, fresh, scope); st != 200 {
		t.Fatalf("refresh token issued after the revocation: %d %v", st, body)
	}
	s.RestoreRefreshTokens(sim.UserAdele)
	if st, body := refresh(t, s, sim.TenantContoso, rt, scope); st != 200 {
		t.Fatalf("after restore: %d %v", st, body)
	}
}

func TestRequireMFA(t *testing.T) {
	s := sim.Start(t)
	ctx := ctxT(t)
	acc := &memCache{}
	pca := newPublic(t, s, sim.TenantContoso, acc)
	res, err := pca.AcquireTokenInteractive(ctx, []string{"User.Read"}, public.WithOpenURL(s.Browser(sim.UserAdele)))
	if err != nil {
		t.Fatal(err)
	}
	s.RequireMFA(sim.UserAdele)
	st, body := refresh(t, s, sim.TenantContoso, acc.refreshToken(t), "User.Read openid profile offline_access")
	wantEntraError(t, st, body, 400, "interaction_required", 50076)
	if body["suberror"] != "basic_action" {
		t.Errorf("suberror = %v", body["suberror"])
	}
	if _, err := pca.AcquireTokenSilent(ctx, []string{"GroupMember.Read.All"}, public.WithSilentAccount(res.Account)); err == nil ||
		!strings.Contains(err.Error(), "interaction_required") {
		t.Fatalf("silent with MFA required: %v", err)
	}
	// prompt=none cannot satisfy MFA.
	_, ch := pkcePair("mfa")
	loc := authorizeRedirect(t, s, sim.TenantContoso, url.Values{"client_id": {sim.PublicClientID}, "response_type": {"code"},
		"redirect_uri": {testRedirect}, "scope": {"User.Read"}, "code_challenge": {ch}, "code_challenge_method": {"S256"},
		"prompt": {"none"}, "login_hint": {sim.UserAdele}})
	if loc.Query().Get("error") != "interaction_required" {
		t.Errorf("prompt=none with MFA required: %s", loc)
	}
	res, err = pca.AcquireTokenInteractive(ctx, []string{"User.Read"}, public.WithOpenURL(s.Browser(sim.UserAdele)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pca.AcquireTokenSilent(ctx, []string{"GroupMember.Read.All"}, public.WithSilentAccount(res.Account)); err != nil {
		t.Fatalf("silent after signing in again: %v", err)
	}
}

func TestConcurrentHammer(t *testing.T) {
	s := sim.Start(t)
	tokens := []string{
		issue(t, s, sim.UserAdele, "User.Read", "GroupMember.Read.All"),
		issue(t, s, sim.UserGrady, "User.Read"),
		issue(t, s, sim.UserAdele, sim.CMSAudience+"/Articles.Read"),
	}
	urls := []string{s.GraphURL() + "/me", s.GraphURL() + "/organization", s.CMSURL() + "/api/articles"}
	c := s.Client()
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			k := i % 3
			if k == 1 {
				k = i % 2 // Grady reads Graph only
			}
			req, _ := http.NewRequest("GET", urls[k], nil)
			req.Header.Set("Authorization", "Bearer "+tokens[k])
			resp, err := c.Do(req)
			if err != nil {
				errs <- err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- errors.New(req.URL.Path + ": " + resp.Status)
			}
		})
	}
	// Token endpoint and admin calls at the same time.
	wg.Go(func() {
		for i := range 10 {
			if err := deviceSignIn(s, sim.UserMegan); err != nil {
				errs <- err
				return
			}
			if i < 2 {
				s.RotateSigningKey()
			}
			s.ResetCounts()
		}
	})
	start := time.Now()
	wg.Wait()
	t.Logf("%d concurrent requests in %v", n, time.Since(start))
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// deviceSignIn runs a device code sign-in with raw requests (usable off the test goroutine).
func deviceSignIn(s *sim.Server, upn string) error {
	c := s.Client()
	defer c.CloseIdleConnections()
	resp, err := c.PostForm(s.Authority(sim.TenantContoso)+"oauth2/v2.0/devicecode", url.Values{
		"client_id": {sim.PublicClientID}, "scope": {"User.Read offline_access"}})
	if err != nil {
		return err
	}
	var dc struct {
		UserCode   string `json:"user_code"`
		DeviceCode string `json:"device_code"`
	}
	err = json.NewDecoder(resp.Body).Decode(&dc)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if err := s.ApproveDeviceCode(dc.UserCode, upn); err != nil {
		return err
	}
	resp, err = c.PostForm(s.Authority(sim.TenantContoso)+"oauth2/v2.0/token", url.Values{"client_id": {sim.PublicClientID},
		"grant_type": {"device_code"}, "device_code": {dc.DeviceCode}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return errors.New("device code redemption: " + resp.Status)
	}
	return nil
}

func TestCloseIsPrompt(t *testing.T) {
	s, err := sim.New(sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok := issue(t, s, sim.UserAdele, sim.CMSAudience+"/Articles.Read")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.CMSURL()+"/api/stream?n=1000&interval_ms=1000", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v with a stream open", d)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
