package sim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"time"
)

// oidcScopes are the OpenID Connect scopes, which belong to no resource in a request.
var oidcScopes = map[string]bool{"openid": true, "profile": true, "email": true, "offline_access": true}

// scopeSet is a parsed scope parameter.
type scopeSet struct {
	oidc    []string  // OIDC scopes as requested (lowercase)
	res     *resource // nil: none named (Graph gets the token)
	names   []string  // canonical scope names on res, without .default
	dflt    bool      // <resource>/.default
	spelled []string  // the resource scopes as the caller spelled them
	prefix  string    // the resource prefix as spelled ("" for bare Graph names)
}

func (ss scopeSet) has(oidc string) bool { return slices.Contains(ss.oidc, oidc) }

func (ss scopeSet) resource(d *directory) *resource {
	if ss.res == nil {
		return d.graph()
	}
	return ss.res
}

// parseScopes parses a scope parameter as Entra's v2.0 endpoint does.
func (s *Server) parseScopes(raw string, t *Tenant) (scopeSet, *entraErr) {
	var ss scopeSet
	tenantName := "organizations"
	if t != nil {
		tenantName = t.DisplayName
	}
	for _, tok := range strings.Fields(raw) {
		if lo := strings.ToLower(tok); oidcScopes[lo] {
			if !slices.Contains(ss.oidc, lo) {
				ss.oidc = append(ss.oidc, lo)
			}
			continue
		}
		prefix, name := "", tok
		var res *resource
		if i := strings.LastIndex(tok, "/"); i >= 0 {
			prefix, name = tok[:i], tok[i+1:]
			res = s.dir.resourceFor(prefix)
			if res == nil {
				return ss, &entraErr{code: "invalid_resource", aadsts: 500011, msg: fmt.Sprintf(
					"The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
					prefix, tenantName)}
			}
		} else {
			res = s.dir.graph()
		}
		if ss.res != nil && ss.res != res {
			return ss, &entraErr{code: "invalid_scope", aadsts: 28000, msg: fmt.Sprintf(
				"Provided value for the input parameter scope is not valid because it contains more than one resource. Scope %s is not valid.", raw)}
		}
		ss.res, ss.prefix = res, prefix
		ss.spelled = append(ss.spelled, tok)
		if name == ".default" {
			ss.dflt = true
			continue
		}
		i := slices.IndexFunc(res.Scopes, func(x string) bool { return strings.EqualFold(x, name) })
		if i < 0 {
			return ss, &entraErr{code: "invalid_scope", aadsts: 650053, msg: fmt.Sprintf(
				"The application asked for scope '%s' that doesn't exist on the resource '%s'. Contact the app vendor.", name, res.AppID)}
		}
		if !slices.Contains(ss.names, res.Scopes[i]) {
			ss.names = append(ss.names, res.Scopes[i])
		}
	}
	if ss.dflt && len(ss.names) > 0 {
		return ss, &entraErr{code: "invalid_scope", aadsts: 70011, msg: fmt.Sprintf(
			"The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope %s is not valid. .default scope can't be combined with resource-specific scopes.", raw)}
	}
	return ss, nil
}

func consentKey(homeOID, clientID, resAppID string) string {
	return homeOID + "|" + clientID + "|" + resAppID
}

// consentedLocked returns the delegated scopes the client may get for the user on res:
// admin-granted plus those the user consented to. s.mu must be held.
func (s *Server) consentedLocked(c *clientReg, homeOID string, res *resource) []string {
	var out []string
	user := s.consents[consentKey(homeOID, c.ID, res.AppID)]
	for _, sc := range res.Scopes {
		if slices.Contains(c.delegated[res.AppID], sc) || user[sc] {
			out = append(out, sc)
		}
	}
	return out
}

// checkConsentLocked refuses explicit scopes nobody consented to. s.mu must be held.
func (s *Server) checkConsentLocked(c *clientReg, homeOID string, ss scopeSet) *entraErr {
	have := s.consentedLocked(c, homeOID, ss.resource(s.dir))
	for _, n := range ss.names {
		if !slices.Contains(have, n) {
			return &entraErr{code: "invalid_grant", suberror: "consent_required", aadsts: 65001, msg: fmt.Sprintf(
				"The user or administrator has not consented to use the application with ID '%s' named '%s'. Send an interactive authorization request for this user and resource.", c.ID, c.Name)}
		}
	}
	return nil
}

// recordConsentLocked is the user clicking Accept on the consent prompt. s.mu must be held.
func (s *Server) recordConsentLocked(c *clientReg, homeOID string, ss scopeSet) {
	if len(ss.names) == 0 {
		return
	}
	k := consentKey(homeOID, c.ID, ss.resource(s.dir).AppID)
	if s.consents[k] == nil {
		s.consents[k] = map[string]bool{}
	}
	for _, n := range ss.names {
		s.consents[k][n] = true
	}
}

// grantedLocked computes the access token's scp and the response's scope. s.mu must be held.
func (s *Server) grantedLocked(c *clientReg, homeOID string, ss scopeSet) (scp, scope []string) {
	res := ss.resource(s.dir)
	scope = slices.Clone(ss.spelled)
	if ss.dflt {
		scp = s.consentedLocked(c, homeOID, res)
		for _, n := range scp {
			if ss.prefix == "" {
				scope = append(scope, n)
			} else {
				scope = append(scope, ss.prefix+"/"+n)
			}
		}
	} else {
		scp = slices.Clone(ss.names)
	}
	if res == s.dir.graph() { // the OIDC scopes are Graph permissions
		for _, o := range ss.oidc {
			if o != "offline_access" {
				scp = append(scp, o)
			}
		}
	}
	scope = append(scope, ss.oidc...)
	return scp, scope
}

func (s *Server) issuer(tid string) string { return s.AuthorityHost() + "/" + tid + "/v2.0" }

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b64.EncodeToString(b)
}

func hashSecret(v string) string {
	h := sha256.Sum256([]byte(v))
	return hex.EncodeToString(h[:])
}

// pairwiseSub is the sub claim: stable per user and application, opaque.
func pairwiseSub(oid, clientID string) string {
	h := sha256.Sum256([]byte("sub\x00" + oid + "\x00" + strings.ToLower(clientID)))
	return b64.EncodeToString(h[:])[:43]
}

// servicePrincipalID is the object id of an application's service principal in a tenant.
func servicePrincipalID(tid, appID string) string {
	return guidFromName("servicePrincipal", tid, appID)
}

func (s *Server) accessLifetimeLocked() time.Duration {
	if s.atLifetime > 0 {
		return s.atLifetime
	}
	return time.Duration(3600+mrand.IntN(1800)) * time.Second
}

func (s *Server) signingKey() *signingKey {
	s.keyMu.RLock()
	defer s.keyMu.RUnlock()
	return s.keys[len(s.keys)-1]
}

func (s *Server) keyByID(kid string) *signingKey {
	s.keyMu.RLock()
	defer s.keyMu.RUnlock()
	for _, k := range s.keys {
		if k.kid == kid {
			return k
		}
	}
	return nil
}

// principal is who a token is issued to.
type principal struct {
	client   *clientReg
	azpacr   string
	tenant   *Tenant
	user     *User // nil for app tokens
	sid      string
	authTime time.Time
	xmsCC    []string
}

// mintAccessToken signs an access token for res and records its uti.
func (s *Server) mintAccessToken(p principal, res *resource, scp, roles []string) (string, time.Duration, error) {
	now := s.now()
	s.mu.Lock()
	lifetime := s.accessLifetimeLocked()
	s.seq++
	seq := s.seq
	uti := randomString(16)
	if len(s.issued) > s.issuedCap {
		for k, v := range s.issued {
			if now.After(v.exp) {
				delete(s.issued, k)
			}
		}
		s.issuedCap = max(20000, 2*len(s.issued))
	}
	s.issued[uti] = issuedToken{seq: seq, exp: now.Add(lifetime)}
	s.mu.Unlock()

	c := map[string]any{
		"aud":    res.Audience,
		"iss":    s.issuer(p.tenant.ID),
		"iat":    now.Unix(),
		"nbf":    now.Unix(),
		"exp":    now.Add(lifetime).Unix(),
		"aio":    randomString(48),
		"azp":    p.client.ID,
		"azpacr": p.azpacr,
		"appid":  p.client.ID,
		"rh":     "0." + randomString(36),
		"tid":    p.tenant.ID,
		"uti":    uti,
		"ver":    "2.0",
	}
	if p.user == nil {
		sp := servicePrincipalID(p.tenant.ID, p.client.ID)
		c["idtyp"] = "app"
		c["oid"] = sp
		c["sub"] = sp
		if len(roles) > 0 {
			c["roles"] = roles
		}
	} else {
		u := p.user
		home := s.dir.home(u)
		c["idtyp"] = "user"
		c["oid"] = u.ObjectID
		c["sub"] = pairwiseSub(u.ObjectID, p.client.ID)
		c["name"] = u.DisplayName
		c["preferred_username"] = home.UPN
		c["scp"] = strings.Join(scp, " ")
		c["sid"] = p.sid
		if u.UserType == "Guest" {
			c["idp"] = s.issuer(u.HomeTenantID)
			c["home_oid"] = u.HomeObjectID
		}
		if u.GivenName != "" {
			c["given_name"] = u.GivenName
		}
		if u.Surname != "" {
			c["family_name"] = u.Surname
		}
		if res.AppID != GraphAppID {
			if rc := s.dir.client(res.AppID); rc != nil && rc.groupClaims {
				s.groupClaims(c, u)
			}
		}
	}
	if len(p.xmsCC) > 0 {
		c["xms_cc"] = p.xmsCC
	}
	tok, err := signRS256(s.signingKey(), c)
	return tok, lifetime, err
}

// groupClaims adds groups and wids, or the overage claims at 200 groups and more.
func (s *Server) groupClaims(c map[string]any, u *User) {
	if len(u.Groups) >= 200 {
		c["_claim_names"] = map[string]any{"groups": "src1"}
		c["_claim_sources"] = map[string]any{"src1": map[string]any{
			"endpoint": s.GraphURL() + "/users/" + u.ObjectID + "/getMemberObjects",
		}}
	} else if len(u.Groups) > 0 {
		c["groups"] = slices.Clone(u.Groups)
	}
	if len(u.Roles) > 0 {
		c["wids"] = slices.Clone(u.Roles)
	}
}

func (s *Server) mintIDToken(p principal, ss scopeSet, nonce string) (string, error) {
	now := s.now()
	u := p.user
	home := s.dir.home(u)
	c := map[string]any{
		"aud":       p.client.ID,
		"iss":       s.issuer(p.tenant.ID),
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(time.Hour).Unix(),
		"aio":       randomString(48),
		"rh":        "0." + randomString(36),
		"sub":       pairwiseSub(u.ObjectID, p.client.ID),
		"tid":       p.tenant.ID,
		"uti":       randomString(16),
		"ver":       "2.0",
		"sid":       p.sid,
		"auth_time": p.authTime.Unix(),
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	if ss.has("profile") {
		c["oid"] = u.ObjectID
		c["name"] = u.DisplayName
		c["preferred_username"] = home.UPN
		c["login_hint"] = b64.EncodeToString([]byte(home.UPN))
	}
	if ss.has("email") && u.Mail != "" {
		c["email"] = u.Mail
	}
	if u.UserType == "Guest" {
		c["idp"] = s.issuer(u.HomeTenantID)
		c["home_oid"] = u.HomeObjectID
	}
	if p.client.groupClaims {
		s.groupClaims(c, u)
	}
	return signRS256(s.signingKey(), c)
}

// clientInfo is the client_info value: the home account's oid and tenant.
func clientInfo(u *User) string {
	b, _ := json.Marshal(map[string]string{"uid": u.HomeObjectID, "utid": u.HomeTenantID})
	return b64.EncodeToString(b)
}

// refreshGrant is what a refresh token stands for; it is stored under the token's hash.
type refreshGrant struct {
	homeOID, homeTID string
	clientID         string
	tenantID         string // tenant it was issued in (used at organizations/common)
	scopeRaw         string
	sessionSeq       uint64
	sid              string
	authTime         time.Time
	issuedAt         time.Time
	expires          time.Time
	rotated          bool
	// With Options.RefreshTokenReuseInterval: when the token was first redeemed, the hash of
	// the token issued in its place, and whether its one extra redemption was used.
	rotatedAt time.Time
	next      string
	reused    bool
	prev      *refreshGrant // while issuing: the grant redeemed for this one
}

// reusableLocked reports whether g, already redeemed, may be redeemed once more: within
// Options.RefreshTokenReuseInterval of its first redemption, not reused before, and still the
// immediately previous token of its grant (the token issued in its place not yet redeemed).
// s.mu must be held.
func (s *Server) reusableLocked(g *refreshGrant, now time.Time) bool {
	d := s.opts.RefreshTokenReuseInterval
	if d <= 0 || g.reused || now.After(g.rotatedAt.Add(d)) || g.next == "" {
		return false
	}
	n := s.refresh[g.next]
	return n != nil && !n.rotated
}

// newRefreshTokenLocked stores a grant and returns its token. s.mu must be held.
func (s *Server) newRefreshTokenLocked(g refreshGrant) string {
	now := s.now()
	if len(s.refresh) > s.refreshCap {
		for k, v := range s.refresh {
			if now.After(v.expires) {
				delete(s.refresh, k)
			}
		}
		s.refreshCap = max(10000, 2*len(s.refresh))
	}
	tok := "1.A" + randomString(180)
	g.issuedAt = now
	g.expires = now.Add(s.opts.RefreshTokenLifetime)
	h := hashSecret(tok)
	s.refresh[h] = &g
	if g.prev != nil && g.prev.next == "" {
		g.prev.next = h // the first token issued for a redemption is its successor
	}
	g.prev = nil
	return tok
}

// newSessionLocked starts a sign-in session. s.mu must be held.
func (s *Server) newSessionLocked() (seq uint64, sid string, at time.Time) {
	s.seq++
	return s.seq, newGUID(), s.now()
}

// parseClaimsParam reads the claims request parameter: the client capabilities (xms_cc).
func parseClaimsParam(raw string) ([]string, *entraErr) {
	if raw == "" {
		return nil, nil
	}
	var v struct {
		AccessToken struct {
			XMSCC struct {
				Values []string `json:"values"`
			} `json:"xms_cc"`
		} `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return nil, &entraErr{code: "invalid_request", aadsts: 90019, msg: "The claims parameter is not valid JSON."}
	}
	return v.AccessToken.XMSCC.Values, nil
}

// admin API

// RevokeRefreshTokens revokes every refresh token of the user's home account issued so far
// (like revokeSignInSessions): redeeming one answers invalid_grant AADSTS50173. Later
// sign-ins get working tokens. Unknown users are ignored.
func (s *Server) RevokeRefreshTokens(upn string) {
	u := s.dir.userByUPN(upn)
	if u == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rtRevoked[u.HomeObjectID] = revocation{seq: s.seq, at: s.now()}
}

// RestoreRefreshTokens undoes RevokeRefreshTokens for the user.
func (s *Server) RestoreRefreshTokens(upn string) {
	u := s.dir.userByUPN(upn)
	if u == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rtRevoked, u.HomeObjectID)
}

// RequireMFA makes every refresh of the user's home account answer 400 interaction_required
// (AADSTS50076, suberror basic_action) until the user signs in interactively again (login
// page or device code).
func (s *Server) RequireMFA(upn string) {
	u := s.dir.userByUPN(upn)
	if u == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mfa[u.HomeObjectID] = true
}

// RevokeAccessTokens is a continuous access evaluation event: Graph and the CMS refuse the
// user's access tokens issued before now with 401 and a WWW-Authenticate claims challenge
// (error="insufficient_claims"); tokens issued afterwards are accepted.
func (s *Server) RevokeAccessTokens(upn string) {
	u := s.dir.userByUPN(upn)
	if u == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cae[u.HomeObjectID] = revocation{seq: s.seq, at: s.now()}
}

// RotateSigningKey adds a new signing key that signs from now on; JWKS lists old and new.
func (s *Server) RotateSigningKey() {
	k, err := newSigningKey()
	if err != nil {
		panic(fmt.Errorf("sim: rotating the signing key: %w", err))
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	s.keys = append(s.keys, k)
}

// DropOldSigningKeys leaves only the current key in JWKS; tokens signed with the others no
// longer validate.
func (s *Server) DropOldSigningKeys() {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	s.keys = s.keys[len(s.keys)-1:]
}

// SetAccessTokenLifetime changes the lifetime of access tokens issued from now on; 0 goes
// back to Entra's random 60 to 90 minutes.
func (s *Server) SetAccessTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.atLifetime = d
}

// IssueAccessToken mints an access token for the user as if the sim's public client had
// asked for it, without a sign-in. Scopes name one resource: "https://graph.microsoft.com/User.Read",
// "api://entra-companion-cms/Articles.Read", ".default" forms, or short Graph names such as
// "User.Read"; none means "User.Read". The token's scp holds exactly the named scopes (the
// consented ones for .default). It returns the raw JWT.
func (s *Server) IssueAccessToken(upn string, scopes ...string) (string, error) {
	u := s.dir.userByUPN(upn)
	if u == nil {
		return "", fmt.Errorf("issuing an access token: unknown user %q", upn)
	}
	if len(scopes) == 0 {
		scopes = []string{"User.Read"}
	}
	t := s.dir.tenantByID(u.TenantID)
	c := s.dir.client(PublicClientID)
	ss, e := s.parseScopes(strings.Join(scopes, " "), t)
	if e != nil {
		return "", fmt.Errorf("issuing an access token for %s: %w", upn, e)
	}
	if ss.res == nil {
		return "", fmt.Errorf("issuing an access token for %s: no resource scope in %q", upn, scopes)
	}
	s.mu.Lock()
	scp := slices.Clone(ss.names)
	if ss.dflt {
		scp = s.consentedLocked(c, u.HomeObjectID, ss.res)
	}
	_, sid, at := s.newSessionLocked()
	s.mu.Unlock()
	tok, _, err := s.mintAccessToken(principal{client: c, azpacr: "0", tenant: t, user: u, sid: sid, authTime: at}, ss.res, scp, nil)
	if err != nil {
		return "", fmt.Errorf("issuing an access token for %s: %w", upn, err)
	}
	return tok, nil
}

// IssueAppToken mints an app-only access token for a client in a tenant (id or domain) and a
// resource ("https://graph.microsoft.com" or CMSAudience, with or without "/.default"), with
// the app roles granted to that client, as client_credentials would.
func (s *Server) IssueAppToken(tenant, clientID, resourceURI string) (string, error) {
	t := s.dir.tenant(tenant)
	if t == nil {
		return "", fmt.Errorf("issuing an app token: unknown tenant %q", tenant)
	}
	c := s.dir.client(clientID)
	if c == nil {
		return "", fmt.Errorf("issuing an app token: unknown client %q", clientID)
	}
	res := s.dir.resourceFor(strings.TrimSuffix(resourceURI, "/.default"))
	if res == nil {
		return "", fmt.Errorf("issuing an app token: unknown resource %q", resourceURI)
	}
	tok, _, err := s.mintAccessToken(principal{client: c, azpacr: "1", tenant: t}, res, nil, c.appRoles[res.AppID])
	if err != nil {
		return "", fmt.Errorf("issuing an app token for %s: %w", clientID, err)
	}
	return tok, nil
}

// appCertificate is the certificate credential registered on the confidential client.
type appCertificate struct {
	certPEM, keyPEM []byte
	der             []byte
	pub             *rsa.PublicKey
}

func (s *Server) appCertificate() (*appCertificate, error) {
	s.appCertOnce.Do(func() {
		key, der, err := selfSignedRSA("entra-companion-daemon")
		if err != nil {
			s.appCertErr = fmt.Errorf("making the app certificate: %w", err)
			return
		}
		pk, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			s.appCertErr = fmt.Errorf("encoding the app key: %w", err)
			return
		}
		s.appCert = &appCertificate{
			certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}),
			der:     der,
			pub:     &key.PublicKey,
		}
		s.appCertReady.Store(true)
	})
	return s.appCert, s.appCertErr
}

// registeredAppCert returns the certificate if AppCertificate was ever called (nobody can
// sign with it otherwise).
func (s *Server) registeredAppCert() *appCertificate {
	if !s.appCertReady.Load() {
		return nil
	}
	return s.appCert
}

// AppCertificate returns the RSA certificate and PKCS#8 key (PEM) registered on the
// confidential client, made on first use.
func (s *Server) AppCertificate() (certPEM, keyPEM []byte) {
	c, err := s.appCertificate()
	if err != nil {
		panic(fmt.Errorf("sim: %w", err))
	}
	return slices.Clone(c.certPEM), slices.Clone(c.keyPEM)
}

// base64Std is used for the claims challenge, as Graph sends it.
var base64Std = base64.StdEncoding
