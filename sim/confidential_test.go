package sim_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"

	"github.com/entra-companion/entra-companion/sim"
)

func confidentialSecret(t *testing.T, s *sim.Server) string {
	for _, c := range s.Clients() {
		if c.ID == sim.ConfidentialClientID {
			return c.Secret
		}
	}
	t.Fatal("no confidential client")
	return ""
}

func TestConfidentialSecret(t *testing.T) {
	s := sim.Start(t)
	ctx := ctxT(t)
	cred, err := confidential.NewCredFromSecret(confidentialSecret(t, s))
	if err != nil {
		t.Fatal(err)
	}
	cca, err := confidential.New(s.Authority(sim.TenantContoso), sim.ConfidentialClientID, cred,
		confidential.WithHTTPClient(s.Client()), confidential.WithInstanceDiscovery(false))
	if err != nil {
		t.Fatal(err)
	}
	res, err := cca.AcquireTokenByCredential(ctx, []string{sim.GraphAudience + "/.default"})
	if err != nil {
		t.Fatalf("client credentials with a secret: %v", err)
	}
	c := claims(t, res.AccessToken)
	roles, _ := c["roles"].([]any)
	if c["idtyp"] != "app" || c["scp"] != nil || c["azpacr"] != "1" || len(roles) != 3 || c["tid"] != sim.TenantContosoID {
		t.Fatalf("app token claims: %v", c)
	}
	if n := s.GrantCount("client_credentials"); n != 1 {
		t.Errorf("client_credentials grants = %d", n)
	}
	// App tokens on Graph: /me is for delegated tokens only, /users/{upn} works with User.Read.All.
	resp, body := call(t, s.Client(), "GET", s.GraphURL()+"/me", res.AccessToken, nil)
	if resp.StatusCode != 400 || body["error"].(map[string]any)["message"] != "/me request is only valid with delegated authentication flow." {
		t.Errorf("/me with an app token: %d %v", resp.StatusCode, body)
	}
	resp, body = call(t, s.Client(), "GET", s.GraphURL()+"/users/"+url.PathEscape(sim.UserMegan), res.AccessToken, nil)
	if resp.StatusCode != 200 || body["userPrincipalName"] != sim.UserMegan {
		t.Errorf("/users/{upn} with an app token: %d %v", resp.StatusCode, body)
	}
	resp, _ = call(t, s.Client(), "GET", s.GraphURL()+"/organization", res.AccessToken, nil)
	if resp.StatusCode != 200 {
		t.Errorf("/organization with an app token: %d", resp.StatusCode)
	}
}

func TestConfidentialCertificate(t *testing.T) {
	s := sim.Start(t)
	ctx := ctxT(t)
	certPEM, keyPEM := s.AppCertificate()
	certs, key, err := confidential.CertFromPEM(append(certPEM, keyPEM...), "")
	if err != nil {
		t.Fatalf("reading the app certificate: %v", err)
	}
	cred, err := confidential.NewCredFromCert(certs, key)
	if err != nil {
		t.Fatal(err)
	}
	cca, err := confidential.New(s.Authority(sim.TenantFabrikam), sim.ConfidentialClientID, cred,
		confidential.WithHTTPClient(s.Client()), confidential.WithInstanceDiscovery(false))
	if err != nil {
		t.Fatal(err)
	}
	res, err := cca.AcquireTokenByCredential(ctx, []string{sim.CMSAudience + "/.default"})
	if err != nil {
		t.Fatalf("client credentials with a certificate: %v", err)
	}
	c := claims(t, res.AccessToken)
	if roles, _ := c["roles"].([]any); c["aud"] != sim.CMSClientID || c["azpacr"] != "2" || len(roles) != 1 || roles[0] != "Articles.Read.All" {
		t.Fatalf("app token: %v", c)
	}
	resp, body := call(t, s.Client(), "GET", s.CMSURL()+"/api/articles", res.AccessToken, nil)
	if resp.StatusCode != 200 || len(body["data"].([]any)) != 3 {
		t.Fatalf("articles with the app token: %d %v", resp.StatusCode, body)
	}
	resp, _ = call(t, s.Client(), "POST", s.CMSURL()+"/api/articles", res.AccessToken, strings.NewReader(`{"data":{"title":"x"}}`))
	if resp.StatusCode != 403 {
		t.Fatalf("write with a read role: %d", resp.StatusCode)
	}
}

// assertion signs a client assertion with key for cert (PS256, x5t#S256), like MSAL.
func assertion(t *testing.T, key *rsa.PrivateKey, certDER []byte, aud string, exp time.Time) string {
	t.Helper()
	th := sha256.Sum256(certDER)
	head, _ := json.Marshal(map[string]any{"alg": "PS256", "typ": "JWT", "x5t#S256": base64.StdEncoding.EncodeToString(th[:])})
	body, _ := json.Marshal(map[string]any{"aud": aud, "iss": sim.ConfidentialClientID, "sub": sim.ConfidentialClientID,
		"jti": "j1", "nbf": time.Now().Unix(), "exp": exp.Unix()})
	in := base64.RawURLEncoding.EncodeToString(head) + "." + base64.RawURLEncoding.EncodeToString(body)
	h := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPSS(rand.Reader, key, crypto.SHA256, h[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestClientAuthenticationFailures(t *testing.T) {
	s := sim.Start(t)
	certPEM, keyPEM := s.AppCertificate()
	certs, key, err := confidential.CertFromPEM(append(certPEM, keyPEM...), "")
	if err != nil {
		t.Fatal(err)
	}
	rsaKey := key.(*rsa.PrivateKey)
	tokenURL := s.Authority(sim.TenantContoso) + "oauth2/v2.0/token"
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherDER := selfSigned(t, otherKey)
	cc := func(extra url.Values) url.Values {
		v := url.Values{"client_id": {sim.ConfidentialClientID}, "grant_type": {"client_credentials"}, "scope": {sim.GraphAudience + "/.default"}}
		for k, x := range extra {
			v[k] = x
		}
		return v
	}
	jwtType := "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	for _, tc := range []struct {
		name   string
		tenant string
		form   url.Values
		status int
		err    string
		code   int
	}{
		{"wrong secret", sim.TenantContoso, cc(url.Values{"client_secret": {"nope"}}), 401, "invalid_client", 7000215},
		{"no credential", sim.TenantContoso, cc(nil), 401, "invalid_client", 7000218},
		{"unknown client", sim.TenantContoso, url.Values{"client_id": {"11111111-2222-4333-8444-555555555555"}, "grant_type": {"client_credentials"}, "scope": {sim.GraphAudience + "/.default"}}, 400, "unauthorized_client", 700016},
		{"public client with a secret", sim.TenantContoso, url.Values{"client_id": {sim.PublicClientID}, "client_secret": {"x"}, "grant_type": {"client_credentials"}, "scope": {sim.GraphAudience + "/.default"}}, 401, "invalid_client", 700025},
		{"not .default", sim.TenantContoso, cc(url.Values{"client_secret": {confidentialSecret(t, s)}, "scope": {"User.Read"}}), 400, "invalid_scope", 1002012},
		{"unknown resource", sim.TenantContoso, cc(url.Values{"client_secret": {confidentialSecret(t, s)}, "scope": {"api://nope/.default"}}), 400, "invalid_resource", 500011},
		{"organizations", "organizations", cc(url.Values{"client_secret": {confidentialSecret(t, s)}}), 400, "invalid_request", 50059},
		{"unregistered certificate", sim.TenantContoso, cc(url.Values{"client_assertion_type": {jwtType}, "client_assertion": {assertion(t, otherKey, otherDER, tokenURL, time.Now().Add(time.Minute))}}), 401, "invalid_client", 700027},
		{"forged signature", sim.TenantContoso, cc(url.Values{"client_assertion_type": {jwtType}, "client_assertion": {assertion(t, otherKey, certs[0].Raw, tokenURL, time.Now().Add(time.Minute))}}), 401, "invalid_client", 7000274},
		{"wrong audience", sim.TenantContoso, cc(url.Values{"client_assertion_type": {jwtType}, "client_assertion": {assertion(t, rsaKey, certs[0].Raw, "https://example.com/token", time.Now().Add(time.Minute))}}), 401, "invalid_client", 700023},
		{"expired assertion", sim.TenantContoso, cc(url.Values{"client_assertion_type": {jwtType}, "client_assertion": {assertion(t, rsaKey, certs[0].Raw, tokenURL, time.Now().Add(-time.Hour))}}), 401, "invalid_client", 700024},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, body := tokenPost(t, s, tc.tenant, tc.form)
			wantEntraError(t, st, body, tc.status, tc.err, tc.code)
		})
	}
	// And the good assertion passes.
	st, body := tokenPost(t, s, sim.TenantContoso, cc(url.Values{"client_assertion_type": {jwtType},
		"client_assertion": {assertion(t, rsaKey, certs[0].Raw, tokenURL, time.Now().Add(time.Minute))}}))
	if st != http.StatusOK || body["access_token"] == nil || body["scope"] != nil {
		t.Fatalf("valid assertion: %d %v", st, body)
	}
}

func selfSigned(t *testing.T, key *rsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "intruder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
