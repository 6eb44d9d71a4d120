package jwt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Defaults of a Verifier.
const (
	// DefaultLeeway is the clock skew allowed on exp and nbf, as in Microsoft's own libraries.
	DefaultLeeway = 5 * time.Minute
	// DefaultCacheTTL is how long discovery documents and key sets are reused.
	DefaultCacheTTL = 24 * time.Hour
	// DefaultRefetchInterval is the least time between two key-set fetches of one issuer caused
	// by an unknown kid.
	DefaultRefetchInterval = time.Minute
	// maxDocSize bounds a discovery document or key set.
	maxDocSize = 1 << 20
	// maxIssuers bounds the cache: issuers come from tokens, which anyone can write.
	maxIssuers = 64
)

// Names of the checks in a Result.
const (
	// CheckSignature: the signature matches the signed part under the issuer's key.
	CheckSignature = "signature"
	// CheckKey: the token's key (kid) is among the issuer's published keys.
	CheckKey = "key"
	// CheckIssuer: iss is the issuer named by the discovery document (or the expected one).
	CheckIssuer = "issuer"
	// CheckAudience: aud is the expected audience (only reported when none is expected).
	CheckAudience = "audience"
	// CheckExpiry: exp has not passed (beyond the leeway).
	CheckExpiry = "expiry"
	// CheckNotBefore: nbf has come (within the leeway).
	CheckNotBefore = "not_before"
)

// Verifier checks tokens against their issuers' published keys. The zero value is ready to use;
// a Verifier is safe for concurrent use and caches discovery documents and key sets per issuer.
type Verifier struct {
	// HTTPClient fetches discovery documents and key sets; nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Leeway is the clock skew allowed on exp and nbf: 0 means DefaultLeeway, a negative value
	// none.
	Leeway time.Duration
	// CacheTTL is how long a fetched discovery document and key set are reused; 0 means
	// DefaultCacheTTL.
	CacheTTL time.Duration
	// RefetchInterval is the least time between key-set fetches of one issuer caused by an
	// unknown kid; 0 means DefaultRefetchInterval.
	RefetchInterval time.Duration

	mu      sync.Mutex
	issuers map[string]*issuerEntry // by discovery URL
}

// VerifyOptions says what a token must be.
type VerifyOptions struct {
	// Audience is the expected aud; "" means the audience is reported but not checked.
	Audience string
	// Issuer is the expected issuer, e.g. https://login.microsoftonline.com/<tenant>/v2.0.
	// "" means the token's own iss: its discovery document's issuer must then match it (with
	// Entra's {tenantid} template filled in from the token's tid).
	Issuer string
}

// Check is the outcome of one check.
type Check struct {
	// Name is one of signature, key, issuer, audience, expiry, not_before.
	Name string `json:"name"`
	// OK is true when the check passed (or was only reported).
	OK bool `json:"ok"`
	// Detail says in words what was found.
	Detail string `json:"detail"`
}

// Result is what Verify found.
type Result struct {
	// Token is the decoded token.
	Token *Token `json:"-"`
	// Checks lists every check, passed or not.
	Checks []Check `json:"checks"`
	// Valid is true when every check passed.
	Valid bool `json:"valid"`
	// Issuer is the issuer the token was checked against (from the discovery document).
	Issuer string `json:"issuer,omitempty"`
	// JWKSURI is where the issuer's keys were read.
	JWKSURI string `json:"jwks_uri,omitempty"`
}

// Check returns the check of that name, if present.
func (r *Result) Check(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// Failed returns the checks that failed.
func (r *Result) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// issuerEntry caches one issuer's discovery document and keys.
type issuerEntry struct {
	mu          sync.Mutex
	issuer      string // discovery "issuer", maybe with {tenantid}
	jwksURI     string
	metaFetched time.Time
	keys        []key
	keysFetched time.Time
	used        time.Time // for eviction, guarded by Verifier.mu
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Verifier) leeway() time.Duration {
	switch {
	case v.Leeway < 0:
		return 0
	case v.Leeway == 0:
		return DefaultLeeway
	}
	return v.Leeway
}

func (v *Verifier) ttl() time.Duration {
	if v.CacheTTL > 0 {
		return v.CacheTTL
	}
	return DefaultCacheTTL
}

func (v *Verifier) refetchInterval() time.Duration {
	if v.RefetchInterval > 0 {
		return v.RefetchInterval
	}
	return DefaultRefetchInterval
}

var defaultClient = &http.Client{Timeout: 30 * time.Second}

func (v *Verifier) client() *http.Client {
	if v.HTTPClient != nil {
		return v.HTTPClient
	}
	return defaultClient
}

// Verify decodes token and checks it: signature against the issuer's keys, issuer, audience,
// expiry and not-before. A token that fails checks is not an error: the Result says which checks
// failed and why. An error means the token could not be decoded or the issuer's documents could
// not be fetched (the error names the URL); in the latter case the Result is still returned with
// the checks that need no network (audience, expiry, not_before) so callers can show them.
// Only discovery documents and key sets are fetched; the token is never sent anywhere.
func (v *Verifier) Verify(ctx context.Context, token string, opts VerifyOptions) (*Result, error) {
	t, err := Decode(token)
	if err != nil {
		return nil, err
	}
	res := &Result{Token: t}
	local := v.localChecks(t, opts)
	finish := func() *Result {
		res.Checks = append(res.Checks, local...)
		res.Valid = true
		for _, c := range res.Checks {
			res.Valid = res.Valid && c.OK
		}
		return res
	}

	iss := t.Claims.Issuer()
	source := opts.Issuer
	if source == "" {
		source = iss
	}
	if source == "" {
		res.Checks = append(res.Checks,
			Check{CheckSignature, false, "not checked: the token has no iss claim, so there is no issuer whose keys could check it"},
			Check{CheckIssuer, false, "the token has no iss claim"})
		return finish(), nil
	}
	if err := safeURL(source); err != nil {
		if opts.Issuer != "" {
			return nil, fmt.Errorf("expected issuer: %w", err)
		}
		res.Checks = append(res.Checks,
			Check{CheckSignature, false, "not checked: the issuer's keys were not fetched"},
			Check{CheckIssuer, false, fmt.Sprintf("issuer %s is refused: %v", iss, err)})
		return finish(), nil
	}
	discovery := discoveryURL(source)

	e, err := v.entry(ctx, discovery)
	if err != nil {
		return finish(), err
	}
	e.mu.Lock()
	discIssuer, jwksURI := e.issuer, e.jwksURI
	e.mu.Unlock()
	expected := strings.ReplaceAll(discIssuer, "{tenantid}", t.Claims.TenantID())
	res.Issuer, res.JWKSURI = expected, jwksURI

	// Issuer.
	switch {
	case iss == "":
		res.Checks = append(res.Checks, Check{CheckIssuer, false, fmt.Sprintf("the token has no iss claim, expected %s", expected)})
	case iss == expected:
		res.Checks = append(res.Checks, Check{CheckIssuer, true, fmt.Sprintf("issuer is %s, as published at %s", iss, discovery)})
	case iss == v1Issuer(expected):
		res.Checks = append(res.Checks, Check{CheckIssuer, true, fmt.Sprintf("issuer is %s, the v1.0 form of %s published at %s", iss, expected, discovery)})
	case strings.Contains(discIssuer, "{tenantid}") && t.Claims.TenantID() == "":
		res.Checks = append(res.Checks, Check{CheckIssuer, false, fmt.Sprintf("issuer %s cannot be matched to %s: the token has no tid claim", iss, discIssuer)})
	case opts.Issuer != "":
		res.Checks = append(res.Checks, Check{CheckIssuer, false, fmt.Sprintf("issuer is %s, expected %s", iss, expected)})
	default:
		res.Checks = append(res.Checks, Check{CheckIssuer, false, fmt.Sprintf("issuer %s is not the issuer of %s, which names %s", iss, discovery, expected)})
	}

	// Key and signature.
	res.Checks = append(res.Checks, v.signatureChecks(ctx, e, t)...)
	return finish(), nil
}

// signatureChecks finds the token's key in the issuer's key set (re-fetching it once, rate
// limited, when the kid is unknown) and checks the signature with it.
func (v *Verifier) signatureChecks(ctx context.Context, e *issuerEntry, t *Token) []Check {
	alg := t.Header.Alg
	if _, _, ok := algHash(alg); !ok {
		detail := fmt.Sprintf("algorithm %q is not accepted: Entra signs tokens with RS256", alg)
		switch {
		case alg == "" || strings.EqualFold(alg, "none"):
			detail = "the token is not signed (alg none): anyone could have written it"
		case strings.HasPrefix(alg, "HS"):
			detail = fmt.Sprintf("algorithm %s uses a shared secret, which an issuer's public keys cannot check: Entra signs with RS256", alg)
		}
		return []Check{{CheckSignature, false, detail}}
	}
	if len(t.Signature) == 0 {
		return []Check{{CheckSignature, false, "the token has no signature"}}
	}
	id := "kid=" + t.Header.Kid
	if t.Header.Kid == "" {
		id = "x5t=" + t.Header.X5t
	}
	if t.Header.Kid == "" && t.Header.X5t == "" {
		id = "no kid"
	}

	keys, jwksURI, fetchErr := v.keysFor(ctx, e, t.Header)
	var cands []key
	for _, k := range keys {
		if matchKey(k, t.Header) {
			cands = append(cands, k)
		}
	}
	if len(cands) == 0 {
		detail := fmt.Sprintf("signed by key %s which the issuer's keys at %s don't list (rotated out?)", id, jwksURI)
		if id == "no kid" {
			detail = fmt.Sprintf("the token names no key (no kid or x5t header) and the issuer's keys at %s list none", jwksURI)
		}
		if fetchErr != nil {
			detail += fmt.Sprintf("; fetching the keys again failed: %v", fetchErr)
		}
		return []Check{{CheckKey, false, detail}, {CheckSignature, false, "not checked: no key to check it with"}}
	}
	var lastErr error
	for _, k := range cands {
		if k.err != nil {
			lastErr = k.err
			continue
		}
		if k.alg != "" && k.alg != alg {
			lastErr = fmt.Errorf("the key is for %s, the token says %s", k.alg, alg)
			continue
		}
		keyCheck := Check{CheckKey, true, fmt.Sprintf("key %s is listed at %s", id, jwksURI)}
		if err := verifySignature(alg, k.pub, t.Signed, t.Signature); err != nil {
			detail := "signature does not match: the token was altered or signed by someone else"
			if t.Header.Nonce != "" {
				detail += " (this looks like a Microsoft Graph token: its header carries a nonce, and only Graph itself can check such a signature)"
			}
			return []Check{keyCheck, {CheckSignature, false, detail}}
		}
		return []Check{keyCheck, {CheckSignature, true, fmt.Sprintf("%s signature is valid", alg)}}
	}
	return []Check{{CheckKey, false, fmt.Sprintf("key %s listed at %s cannot be used: %v", id, jwksURI, lastErr)},
		{CheckSignature, false, "not checked: no usable key"}}
}

func matchKey(k key, h Header) bool {
	switch {
	case h.Kid != "":
		return k.kid == h.Kid
	case h.X5t != "":
		return k.x5t == h.X5t
	}
	return true // no kid: try every key
}

// keysFor returns the issuer's keys, re-fetching them once if the token's key is not among them
// and the last fetch is older than the refetch interval (or the cache has expired).
func (v *Verifier) keysFor(ctx context.Context, e *issuerEntry, h Header) ([]key, string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := v.now()
	found := false
	for _, k := range e.keys {
		if matchKey(k, h) {
			found = true
			break
		}
	}
	stale := now.Sub(e.keysFetched) >= v.ttl()
	if stale || (!found && now.Sub(e.keysFetched) >= v.refetchInterval()) {
		keys, err := v.fetchKeys(ctx, e.jwksURI)
		if err != nil {
			return e.keys, e.jwksURI, err
		}
		e.keys, e.keysFetched = keys, v.now()
	}
	return e.keys, e.jwksURI, nil
}

// entry returns the cached issuer entry for a discovery URL, fetching the discovery document and
// keys when absent or expired.
func (v *Verifier) entry(ctx context.Context, discovery string) (*issuerEntry, error) {
	v.mu.Lock()
	if v.issuers == nil {
		v.issuers = make(map[string]*issuerEntry)
	}
	e, ok := v.issuers[discovery]
	if !ok {
		if len(v.issuers) >= maxIssuers {
			var oldest string
			var ot time.Time
			for u, x := range v.issuers {
				if oldest == "" || x.used.Before(ot) {
					oldest, ot = u, x.used
				}
			}
			delete(v.issuers, oldest)
		}
		e = &issuerEntry{}
		v.issuers[discovery] = e
	}
	e.used = v.now()
	v.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	now := v.now()
	if e.issuer != "" && now.Sub(e.metaFetched) < v.ttl() {
		return e, nil
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := v.getJSON(ctx, discovery, &doc); err != nil {
		return nil, err
	}
	if doc.Issuer == "" || doc.JWKSURI == "" {
		return nil, fmt.Errorf("discovery document %s lacks issuer or jwks_uri", discovery)
	}
	if err := safeURL(doc.JWKSURI); err != nil {
		return nil, fmt.Errorf("discovery document %s: jwks_uri: %w", discovery, err)
	}
	keys, err := v.fetchKeys(ctx, doc.JWKSURI)
	if err != nil {
		return nil, err
	}
	e.issuer, e.jwksURI, e.metaFetched = doc.Issuer, doc.JWKSURI, v.now()
	e.keys, e.keysFetched = keys, v.now()
	return e, nil
}

func (v *Verifier) fetchKeys(ctx context.Context, uri string) ([]key, error) {
	var set jwks
	if err := v.getJSON(ctx, uri, &set); err != nil {
		return nil, err
	}
	keys := make([]key, 0, len(set.Keys))
	for _, k := range set.Keys {
		keys = append(keys, parseJWK(k))
	}
	return keys, nil
}

// getJSON fetches a small JSON document; errors name the URL.
func (v *Verifier) getJSON(ctx context.Context, uri string, dst any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", uri, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client().Do(req)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", uri, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching %s: HTTP %s", uri, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocSize+1))
	if err != nil {
		return fmt.Errorf("fetching %s: %w", uri, err)
	}
	if len(body) > maxDocSize {
		return fmt.Errorf("fetching %s: document larger than %d KiB", uri, maxDocSize>>10)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("fetching %s: not the expected JSON: %w", uri, err)
	}
	return nil
}

// localChecks are the checks that need no network: audience, expiry, not-before.
func (v *Verifier) localChecks(t *Token, opts VerifyOptions) []Check {
	var out []Check
	now := v.now()
	leeway := v.leeway()
	aud := t.Claims.Audience()
	audText := strings.Join(aud, ", ")
	switch {
	case opts.Audience == "":
		if len(aud) == 0 {
			out = append(out, Check{CheckAudience, true, "the token has no aud claim (not checked: no expected audience given)"})
		} else {
			out = append(out, Check{CheckAudience, true, fmt.Sprintf("audience is %s (not checked: no expected audience given)", audText)})
		}
	case len(aud) == 0:
		out = append(out, Check{CheckAudience, false, fmt.Sprintf("the token has no aud claim, expected %s", opts.Audience)})
	default:
		ok, how := false, ""
		for _, a := range aud {
			if a == opts.Audience {
				ok = true
				break
			}
			if a == strings.TrimPrefix(opts.Audience, "api://") || "api://"+a == opts.Audience ||
				opts.Audience == strings.TrimPrefix(a, "api://") {
				ok, how = true, fmt.Sprintf(" (accepted as %s: the application id and its api:// URI name the same app)", opts.Audience)
			}
		}
		if ok {
			out = append(out, Check{CheckAudience, true, fmt.Sprintf("audience is %s%s", audText, how)})
		} else {
			out = append(out, Check{CheckAudience, false, fmt.Sprintf("audience is %s, expected %s", audText, opts.Audience)})
		}
	}

	if exp, ok := t.Claims.ExpiresAt(); !ok {
		out = append(out, Check{CheckExpiry, false, "the token has no valid exp claim"})
	} else if now.After(exp.Add(leeway)) {
		out = append(out, Check{CheckExpiry, false, fmt.Sprintf("expired %s ago at %s%s", roundDur(now.Sub(exp)), exp.UTC().Format(time.RFC3339), leewayText(leeway))})
	} else if now.After(exp) {
		out = append(out, Check{CheckExpiry, true, fmt.Sprintf("expired %s ago at %s, within the allowed clock skew of %s", roundDur(now.Sub(exp)), exp.UTC().Format(time.RFC3339), leeway)})
	} else {
		out = append(out, Check{CheckExpiry, true, fmt.Sprintf("expires in %s at %s", roundDur(exp.Sub(now)), exp.UTC().Format(time.RFC3339))})
	}

	if nbf, ok := t.Claims.NotBefore(); !ok {
		if _, present := t.Claims["nbf"]; present {
			out = append(out, Check{CheckNotBefore, false, "the nbf claim is not a valid time"})
		} else {
			out = append(out, Check{CheckNotBefore, true, "the token has no nbf claim"})
		}
	} else if now.Add(leeway).Before(nbf) {
		out = append(out, Check{CheckNotBefore, false, fmt.Sprintf("not valid until %s, %s from now%s", nbf.UTC().Format(time.RFC3339), roundDur(nbf.Sub(now)), leewayText(leeway))})
	} else {
		out = append(out, Check{CheckNotBefore, true, fmt.Sprintf("valid since %s", nbf.UTC().Format(time.RFC3339))})
	}
	return out
}

func leewayText(l time.Duration) string {
	if l == 0 {
		return ""
	}
	return fmt.Sprintf(" (beyond the allowed clock skew of %s)", l)
}

// roundDur rounds to seconds, or minutes above an hour: "3h12m0s" reads better as "3h12m".
func roundDur(d time.Duration) string {
	if d >= time.Hour {
		d = d.Round(time.Minute)
		s := d.String()
		return strings.TrimSuffix(s, "0s")
	}
	return d.Round(time.Second).String()
}

// safeURL refuses an issuer or key URL that is not https, unless it is on a loopback host.
func safeURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	if u.User != nil {
		return errors.New("URLs with user info are refused")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
	}
	return fmt.Errorf("%s is not an https URL; keys are only fetched over https (or from loopback)", s)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// v1Hosts maps Entra v1.0 issuer hosts to the authority host that serves their tenant's v2.0
// discovery document.
var v1Hosts = map[string]string{
	"sts.windows.net":      "login.microsoftonline.com",
	"sts.chinacloudapi.cn": "login.chinacloudapi.cn",
}

// discoveryURL returns where an issuer's OpenID configuration is. A v1.0 issuer
// (https://sts.windows.net/<tid>/) uses the v2.0 document of its tenant on the authority host.
func discoveryURL(issuer string) string {
	if u, err := url.Parse(issuer); err == nil && u.Scheme == "https" {
		if host, ok := v1Hosts[strings.ToLower(u.Host)]; ok {
			if tid := strings.Trim(u.Path, "/"); tid != "" && !strings.Contains(tid, "/") {
				return "https://" + host + "/" + tid + "/v2.0/.well-known/openid-configuration"
			}
		}
	}
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
}

// v1Issuer returns the v1.0 issuer of the tenant of a v2.0 issuer
// (https://login.microsoftonline.com/<tid>/v2.0 → https://sts.windows.net/<tid>/), or "".
func v1Issuer(v2 string) string {
	u, err := url.Parse(v2)
	if err != nil || u.Scheme != "https" {
		return ""
	}
	tid, ok := strings.CutSuffix(strings.Trim(u.Path, "/"), "/v2.0")
	if !ok || tid == "" || strings.Contains(tid, "/") {
		return ""
	}
	for v1, authority := range v1Hosts {
		if strings.EqualFold(u.Host, authority) {
			return "https://" + v1 + "/" + tid + "/"
		}
	}
	return ""
}
