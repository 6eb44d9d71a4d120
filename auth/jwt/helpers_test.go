package jwt

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	keyOnce  sync.Once
	testKeys [2]*rsa.PrivateKey
)

// keys returns two RSA keys generated once per test binary.
func keys(t testing.TB) [2]*rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() {
		for i := range testKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			testKeys[i] = k
		}
	})
	return testKeys
}

func enc(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// sign makes a compact JWS with the given header and claims.
func sign(t testing.TB, k *rsa.PrivateKey, header map[string]any, claims map[string]any) string {
	t.Helper()
	signed := enc(header) + "." + enc(claims)
	alg, _ := header["alg"].(string)
	h, pss, ok := algHash(alg)
	if !ok {
		return signed + "." + base64.RawURLEncoding.EncodeToString([]byte("not-a-signature"))
	}
	hh := h.New()
	hh.Write([]byte(signed))
	var sig []byte
	var err error
	if pss {
		sig, err = rsa.SignPSS(rand.Reader, k, h, hh.Sum(nil), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	} else {
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, h, hh.Sum(nil))
	}
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func jwkOf(kid string, pub *rsa.PublicKey) map[string]any {
	return map[string]any{
		"kty": "RSA", "use": "sig", "kid": kid,
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// x5cOf returns a JWK that carries only a self-signed certificate of k.
func x5cOf(t testing.TB, kid string, k *rsa.PrivateKey) map[string]any {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"kty": "RSA", "use": "sig", "kid": kid, "x5c": []string{base64.StdEncoding.EncodeToString(der)}}
}

// idp is a TLS test issuer serving discovery and keys.
type idp struct {
	srv       *httptest.Server
	mu        sync.Mutex
	keys      []map[string]any
	issuer    string // as published; may contain {tenantid}
	discovery atomic.Int32
	jwks      atomic.Int32
}

// newIDP serves /<tenant>/v2.0/.well-known/openid-configuration and /keys.
func newIDP(t testing.TB) *idp {
	p := &idp{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.discovery.Add(1)
		p.mu.Lock()
		iss := p.issuer
		p.mu.Unlock()
		if iss == "" {
			iss = p.srv.URL + "/" + r.PathValue("tenant") + "/v2.0"
		}
		json.NewEncoder(w).Encode(map[string]any{"issuer": iss, "jwks_uri": p.srv.URL + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		p.jwks.Add(1)
		p.mu.Lock()
		defer p.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"keys": p.keys})
	})
	p.srv = httptest.NewTLSServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) setKeys(k ...map[string]any) {
	p.mu.Lock()
	p.keys = k
	p.mu.Unlock()
}

func (p *idp) iss(tenant string) string { return p.srv.URL + "/" + tenant + "/v2.0" }

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// mustNotLeak fails if s contains any part of tok longer than a few characters.
func mustNotLeak(t testing.TB, s, tok string) {
	t.Helper()
	for _, p := range strings.Split(tok, ".") {
		if len(p) >= 8 && strings.Contains(s, p) {
			t.Errorf("message %q contains a part of the token", s)
		}
	}
}
