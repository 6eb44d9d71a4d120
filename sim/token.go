package sim

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const jwtBearerType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request, seg string) {
	at, ok := s.postEndpoint(w, r, seg)
	if !ok {
		return
	}
	f := r.PostForm
	grant := f.Get("grant_type")
	if grant == "" {
		s.writeEntraError(w, r, missingParam("grant_type"))
		return
	}
	c, acr, e := s.authenticateClient(r, f, at)
	if e != nil {
		s.writeEntraError(w, r, *e)
		return
	}
	var resp map[string]any
	switch grant {
	case "authorization_code":
		resp, e = s.grantAuthCode(f, at, c, acr)
	case "refresh_token":
		resp, e = s.grantRefresh(f, at, c, acr)
	case "urn:ietf:params:oauth:grant-type:device_code", "device_code":
		grant = "device_code"
		resp, e = s.grantDeviceCode(f, at, c, acr)
	case "client_credentials":
		resp, e = s.grantClientCredentials(f, at, c, acr)
	default:
		e = &entraErr{code: "unsupported_grant_type", aadsts: 70003, msg: fmt.Sprintf("The app requested an unsupported grant type '%s'.", grant)}
	}
	if e != nil {
		s.writeEntraError(w, r, *e)
		return
	}
	s.countGrant(grant)
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("x-ms-request-id", newGUID())
	if id := r.Header.Get("client-request-id"); id != "" {
		w.Header().Set("client-request-id", id)
	}
	writeJSON(w, http.StatusOK, resp)
}

// authenticateClient identifies the client and checks its credential; acr is azpacr.
func (s *Server) authenticateClient(r *http.Request, f url.Values, at authorityTenant) (*clientReg, string, *entraErr) {
	clientID, secret := f.Get("client_id"), f.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		if uu, err := url.QueryUnescape(u); err == nil {
			u = uu
		}
		if pp, err := url.QueryUnescape(p); err == nil {
			p = pp
		}
		if clientID == "" {
			clientID = u
		}
		if secret == "" {
			secret = p
		}
	}
	if clientID == "" {
		e := missingParam("client_id")
		return nil, "", &e
	}
	c := s.dir.client(clientID)
	if c == nil {
		e := s.unknownClient(clientID, at)
		return nil, "", &e
	}
	assertion := f.Get("client_assertion")
	switch {
	case c.Kind == KindPublic:
		if secret != "" || assertion != "" {
			return nil, "", &entraErr{status: http.StatusUnauthorized, code: "invalid_client", aadsts: 700025,
				msg: "Client is public so neither 'client_assertion' nor 'client_secret' should be presented."}
		}
		return c, "0", nil
	case secret != "":
		if c.Secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(c.Secret)) != 1 {
			return nil, "", &entraErr{status: http.StatusUnauthorized, code: "invalid_client", aadsts: 7000215, msg: fmt.Sprintf(
				"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", c.ID)}
		}
		return c, "1", nil
	case assertion != "":
		if e := s.checkClientAssertion(f, c, at); e != nil {
			return nil, "", e
		}
		return c, "2", nil
	}
	return nil, "", &entraErr{status: http.StatusUnauthorized, code: "invalid_client", aadsts: 7000218,
		msg: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."}
}

// checkClientAssertion validates a certificate credential (private_key_jwt). Its times are
// checked against the real clock, which is what the client signed it with.
func (s *Server) checkClientAssertion(f url.Values, c *clientReg, at authorityTenant) *entraErr {
	bad := func(code int, msg string) *entraErr {
		return &entraErr{status: http.StatusUnauthorized, code: "invalid_client", aadsts: code, msg: msg}
	}
	if f.Get("client_assertion_type") != jwtBearerType {
		return &entraErr{code: "invalid_request", aadsts: 90014, msg: "The required field 'client_assertion_type' is missing or is not '" + jwtBearerType + "'."}
	}
	j, err := parseJWS(f.Get("client_assertion"))
	if err != nil {
		return bad(50027, "JWT token is invalid or malformed.")
	}
	alg := j.hdr("alg")
	if alg != "RS256" && alg != "PS256" {
		return bad(5002738, fmt.Sprintf("Invalid JWT token. '%s' is not a supported signature algorithm. Supported signing algorithms are: 'RS256, PS256'.", alg))
	}
	var used string
	cert := s.registeredAppCert()
	match := false
	if t := j.hdr("x5t#S256"); t != "" {
		b, _ := decodeB64Any(t)
		used = strings.ToUpper(hex.EncodeToString(b))
		match = cert != nil && c.ID == ConfidentialClientID && subtle.ConstantTimeCompare(b, thumbprintSHA256(cert.der)) == 1
	} else if t := j.hdr("x5t"); t != "" {
		b, _ := decodeB64Any(t)
		used = strings.ToUpper(hex.EncodeToString(b))
		match = cert != nil && c.ID == ConfidentialClientID && subtle.ConstantTimeCompare(b, thumbprintSHA1(cert.der)) == 1
	}
	if !match {
		return bad(700027, fmt.Sprintf(
			"The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '%s', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '%s'.]", used, c.ID))
	}
	if alg == "RS256" {
		err = j.verifyRS256(cert.pub)
	} else {
		err = j.verifyPS256(cert.pub)
	}
	if err != nil {
		return bad(7000274, "Client assertion failed signature validation.")
	}
	if !strings.EqualFold(j.claim("iss"), c.ID) || !strings.EqualFold(j.claim("sub"), c.ID) {
		return bad(700021, "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")
	}
	if !s.assertionAudienceOK(j.audiences(), at) {
		return bad(700023, "Client assertion audience claim does not match Realm issuer. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")
	}
	now := time.Now()
	exp, ok := j.num("exp")
	nbf, hasNbf := j.num("nbf")
	if !ok || now.After(time.Unix(exp, 0).Add(5*time.Minute)) || hasNbf && now.Add(5*time.Minute).Before(time.Unix(nbf, 0)) {
		return bad(700024, fmt.Sprintf("Client assertion is not within its valid time range. Current time: %s, expiry time of assertion %s.",
			now.UTC().Format("2006-01-02T15:04:05.0000000Z"), time.Unix(exp, 0).UTC().Format("2006-01-02T15:04:05.0000000Z")))
	}
	return nil
}

func (s *Server) assertionAudienceOK(auds []string, at authorityTenant) bool {
	host := s.AuthorityHost()
	var ok []string
	segs := []string{at.seg}
	if at.t != nil {
		segs = append(segs, at.t.ID)
		segs = append(segs, at.t.VerifiedDomains...)
		ok = append(ok, s.issuer(at.t.ID))
	}
	for _, sg := range segs {
		ok = append(ok, host+"/"+sg+"/oauth2/v2.0/token", host+"/"+sg+"/oauth2/token")
	}
	for _, a := range auds {
		for _, o := range ok {
			if strings.EqualFold(strings.TrimSuffix(a, "/"), o) {
				return true
			}
		}
	}
	return false
}

// userGrant is everything a user token response is made from.
type userGrant struct {
	client     *clientReg
	acr        string
	user       *User
	scopes     scopeSet
	scopeRaw   string
	nonce      string
	claims     string
	clientInfo bool
	sessionSeq uint64
	sid        string
	authTime   time.Time
	alwaysRT   bool          // refresh grant: always rotate
	redeemed   *refreshGrant // refresh grant: the grant redeemed, to record its successor
}

// userTokens makes the token response for a user: access token, and id token, refresh token
// and client_info when asked for.
func (s *Server) userTokens(g userGrant) (map[string]any, *entraErr) {
	xmsCC, e := parseClaimsParam(g.claims)
	if e != nil {
		return nil, e
	}
	t := s.dir.tenantByID(g.user.TenantID)
	home := s.dir.home(g.user)
	res := g.scopes.resource(s.dir)
	s.mu.Lock()
	scp, scope := s.grantedLocked(g.client, home.HomeObjectID, g.scopes)
	s.mu.Unlock()
	p := principal{client: g.client, azpacr: g.acr, tenant: t, user: g.user, sid: g.sid, authTime: g.authTime, xmsCC: xmsCC}
	at, lifetime, err := s.mintAccessToken(p, res, scp, nil)
	if err != nil {
		return nil, serverError(err)
	}
	secs := int(lifetime / time.Second)
	resp := map[string]any{
		"token_type":     "Bearer",
		"scope":          strings.Join(scope, " "),
		"expires_in":     secs,
		"ext_expires_in": secs,
		"access_token":   at,
	}
	if lifetime >= 2*time.Hour {
		resp["refresh_in"] = secs / 2
	}
	if g.scopes.has("openid") {
		idt, err := s.mintIDToken(p, g.scopes, g.nonce)
		if err != nil {
			return nil, serverError(err)
		}
		resp["id_token"] = idt
	}
	if g.scopes.has("offline_access") || g.alwaysRT {
		s.mu.Lock()
		resp["refresh_token"] = s.newRefreshTokenLocked(refreshGrant{
			homeOID: home.HomeObjectID, homeTID: home.HomeTenantID, clientID: g.client.ID,
			tenantID: t.ID, scopeRaw: g.scopeRaw, sessionSeq: g.sessionSeq, sid: g.sid, authTime: g.authTime,
			prev: g.redeemed,
		})
		s.mu.Unlock()
	}
	if g.clientInfo {
		resp["client_info"] = clientInfo(g.user)
	}
	return resp, nil
}

func serverError(err error) *entraErr {
	return &entraErr{status: http.StatusInternalServerError, code: "server_error", aadsts: 50000,
		msg: "There was an error issuing a token or an issue with our sign-in service. " + err.Error()}
}

func (s *Server) grantAuthCode(f url.Values, at authorityTenant, c *clientReg, acr string) (map[string]any, *entraErr) {
	code := f.Get("code")
	if code == "" {
		e := missingParam("code")
		return nil, &e
	}
	s.mu.Lock()
	ac := s.codes[hashSecret(code)]
	var e *entraErr
	switch {
	case ac == nil:
		e = &entraErr{code: "invalid_grant", aadsts: 9002313, msg: "Invalid request. Request is malformed or invalid. The provided value for the 'code' parameter is not valid."}
	case ac.used:
		e = &entraErr{code: "invalid_grant", aadsts: 54005, msg: "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token."}
	case s.now().After(ac.expires):
		e = &entraErr{code: "invalid_grant", aadsts: 70008, msg: "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource."}
	case !strings.EqualFold(ac.clientID, c.ID):
		e = &entraErr{code: "invalid_grant", aadsts: 70000, msg: "The provided grant is invalid or malformed. The authorization code was issued to a different client."}
	case at.t != nil && at.t.ID != ac.tenantID:
		e = &entraErr{code: "invalid_grant", aadsts: 700005, msg: "Provided Authorization Code is intended to use against other tenant, thus rejected."}
	case f.Get("redirect_uri") != ac.redirectURI:
		e = &entraErr{code: "invalid_grant", aadsts: 50011, msg: fmt.Sprintf(
			"The redirect URI '%s' specified in the request does not match the redirect URI used to obtain the authorization code.", f.Get("redirect_uri"))}
	case ac.challenge != "" && !pkceOK(f.Get("code_verifier"), ac.challenge):
		e = &entraErr{code: "invalid_grant", aadsts: 501481, msg: "The Code_Verifier does not match the code_challenge supplied in the authorization request."}
	}
	if e != nil {
		s.mu.Unlock()
		return nil, e
	}
	scopeRaw := f.Get("scope")
	if strings.TrimSpace(scopeRaw) == "" {
		scopeRaw = ac.scopeRaw
	}
	u := s.dir.userByOID(ac.tenantID, ac.oid)
	ss, e := s.parseScopes(scopeRaw, s.dir.tenantByID(ac.tenantID))
	if e == nil {
		e = s.checkConsentLocked(c, u.HomeObjectID, ss)
	}
	if e != nil {
		s.mu.Unlock()
		return nil, e
	}
	ac.used = true
	s.mu.Unlock()
	claims := f.Get("claims")
	if claims == "" {
		claims = ac.claims
	}
	return s.userTokens(userGrant{
		client: c, acr: acr, user: u, scopes: ss, scopeRaw: scopeRaw, nonce: ac.nonce, claims: claims,
		clientInfo: f.Get("client_info") == "1" || ac.clientInfo, sessionSeq: ac.sessionSeq, sid: ac.sid, authTime: ac.authTime,
	})
}

func pkceOK(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	h := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(b64.EncodeToString(h[:])), []byte(challenge)) == 1
}

const entraTime = "2006-01-02T15:04:05.0000000Z"

func (s *Server) grantRefresh(f url.Values, at authorityTenant, c *clientReg, acr string) (map[string]any, *entraErr) {
	rt := f.Get("refresh_token")
	if rt == "" {
		e := missingParam("refresh_token")
		return nil, &e
	}
	now := s.now()
	s.mu.Lock()
	g := s.refresh[hashSecret(rt)]
	fail := func(e *entraErr) (map[string]any, *entraErr) {
		s.mu.Unlock()
		return nil, e
	}
	if g == nil {
		return fail(&entraErr{code: "invalid_grant", aadsts: 9002313, msg: "Invalid request. Request is malformed or invalid. The provided refresh token is not valid."})
	}
	if !strings.EqualFold(g.clientID, c.ID) {
		return fail(&entraErr{code: "invalid_grant", aadsts: 70000, msg: "The provided grant is invalid or malformed. The refresh token was issued to a different client."})
	}
	reuse := false
	if g.rotated {
		if !s.reusableLocked(g, now) {
			return fail(&entraErr{code: "invalid_grant", aadsts: 70000, msg: "The provided grant is invalid or malformed. The refresh token was already redeemed; refresh tokens rotate, use the one from the latest token response."})
		}
		reuse = true
	}
	if now.After(g.expires) {
		return fail(&entraErr{code: "invalid_grant", aadsts: 700082, msg: fmt.Sprintf(
			"The refresh token has expired due to inactivity. The token was issued on %s and was inactive for %s.",
			g.issuedAt.UTC().Format(entraTime), inactivity(s.opts.RefreshTokenLifetime))})
	}
	if rev, ok := s.rtRevoked[g.homeOID]; ok && g.sessionSeq <= rev.seq {
		return fail(&entraErr{code: "invalid_grant", aadsts: 50173, msg: fmt.Sprintf(
			"The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '%s' and the TokensValidFrom date (before which tokens are not valid) for this user is '%s'.",
			g.authTime.UTC().Format(entraTime), rev.at.UTC().Format(entraTime))})
	}
	if s.mfa[g.homeOID] {
		return fail(&entraErr{code: "interaction_required", suberror: "basic_action", aadsts: 50076,
			msg: "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access the resource."})
	}
	t := at.t
	if t == nil {
		t = s.dir.tenantByID(g.tenantID)
	}
	home := s.dir.userByOID(g.homeTID, g.homeOID)
	u := s.dir.inTenant(home, t)
	if u == nil {
		return fail(&entraErr{code: "invalid_grant", aadsts: 50020, msg: fmt.Sprintf(
			"User account '%s' from identity provider '%s' does not exist in tenant '%s' and cannot access the application '%s'(%s) in that tenant. The account needs to be added as an external user in the tenant first. Sign out and sign in again with a different Azure Active Directory user account.",
			home.UPN, s.issuer(home.TenantID), t.DisplayName, c.ID, c.Name)})
	}
	scopeRaw := f.Get("scope")
	if strings.TrimSpace(scopeRaw) == "" {
		scopeRaw = g.scopeRaw
	}
	ss, e := s.parseScopes(scopeRaw, t)
	if e == nil {
		e = s.checkConsentLocked(c, g.homeOID, ss)
	}
	if e != nil {
		return fail(e)
	}
	if reuse {
		g.reused = true
	} else {
		g.rotated, g.rotatedAt = true, now
	}
	s.mu.Unlock()
	return s.userTokens(userGrant{
		client: c, acr: acr, user: u, scopes: ss, scopeRaw: scopeRaw, claims: f.Get("claims"),
		clientInfo: f.Get("client_info") == "1", sessionSeq: g.sessionSeq, sid: g.sid, authTime: g.authTime, alwaysRT: true,
		redeemed: g,
	})
}

// inactivity formats a duration as Entra does ("90.00:00:00").
func inactivity(d time.Duration) string {
	days := int(d / (24 * time.Hour))
	d -= time.Duration(days) * 24 * time.Hour
	return fmt.Sprintf("%d.%02d:%02d:%02d", days, int(d/time.Hour), int(d/time.Minute)%60, int(d/time.Second)%60)
}

func (s *Server) grantClientCredentials(f url.Values, at authorityTenant, c *clientReg, acr string) (map[string]any, *entraErr) {
	if at.multi {
		return nil, &entraErr{code: "invalid_request", aadsts: 50059, msg: "No tenant-identifying information found in either the request or implied by any provided credentials."}
	}
	if c.Kind == KindPublic {
		return nil, &entraErr{status: http.StatusUnauthorized, code: "invalid_client", aadsts: 7000218,
			msg: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."}
	}
	all := strings.Fields(f.Get("scope"))
	if len(all) == 0 {
		e := missingParam("scope")
		return nil, &e
	}
	var scope []string // the OIDC scopes MSAL adds are ignored, as Entra ignores them
	for _, sc := range all {
		if !oidcScopes[strings.ToLower(sc)] {
			scope = append(scope, sc)
		}
	}
	if len(scope) != 1 || !strings.HasSuffix(scope[0], "/.default") {
		return nil, &entraErr{code: "invalid_scope", aadsts: 1002012, msg: fmt.Sprintf(
			"The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", strings.Join(all, " "))}
	}
	res := s.dir.resourceFor(strings.TrimSuffix(scope[0], "/.default"))
	if res == nil {
		return nil, &entraErr{code: "invalid_resource", aadsts: 500011, msg: fmt.Sprintf(
			"The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
			strings.TrimSuffix(scope[0], "/.default"), at.t.DisplayName)}
	}
	xmsCC, e := parseClaimsParam(f.Get("claims"))
	if e != nil {
		return nil, e
	}
	tok, lifetime, err := s.mintAccessToken(principal{client: c, azpacr: acr, tenant: at.t, xmsCC: xmsCC}, res, nil, c.appRoles[res.AppID])
	if err != nil {
		return nil, serverError(err)
	}
	secs := int(lifetime / time.Second)
	resp := map[string]any{"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok}
	if lifetime >= 2*time.Hour {
		resp["refresh_in"] = secs / 2
	}
	return resp, nil
}
