package sim

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// authorityTenant is the tenant segment of an authority URL, resolved.
type authorityTenant struct {
	seg   string  // as in the URL
	t     *Tenant // nil for organizations/common
	multi bool
}

func (at authorityTenant) name() string {
	if at.t != nil {
		return at.t.ID
	}
	return strings.ToLower(at.seg)
}

func (s *Server) resolveTenant(seg string) (authorityTenant, bool) {
	switch strings.ToLower(seg) {
	case "organizations", "common":
		return authorityTenant{seg: seg, multi: true}, true
	}
	if t := s.dir.tenant(seg); t != nil {
		return authorityTenant{seg: seg, t: t}, true
	}
	return authorityTenant{seg: seg}, false
}

// postEndpoint checks what the token and devicecode endpoints check first, as Entra does: the
// method (POST) and the tenant. On failure it has answered and reports false.
func (s *Server) postEndpoint(w http.ResponseWriter, r *http.Request, seg string) (authorityTenant, bool) {
	if r.Method != http.MethodPost {
		s.writeEntraError(w, r, entraErr{code: "invalid_request", aadsts: 900561, msg: fmt.Sprintf(
			"The endpoint only accepts POST, OPTIONS requests. Received a %s request.", r.Method)})
		return authorityTenant{}, false
	}
	at, ok := s.resolveTenant(seg)
	if !ok {
		e := tenantNotFound(seg)
		e.code = "invalid_request"
		s.writeEntraError(w, r, e)
		return authorityTenant{}, false
	}
	return at, true
}

func tenantNotFound(seg string) entraErr {
	return entraErr{code: "invalid_tenant", aadsts: 90002, msg: fmt.Sprintf(
		"Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", seg)}
}

func (s *Server) serveAuthority(w http.ResponseWriter, r *http.Request) {
	s.routeAuthority(w, r, false)
}

func (s *Server) servePages(w http.ResponseWriter, r *http.Request) { s.routeAuthority(w, r, true) }

// routeAuthority serves the authority; pagesOnly serves only what a browser opens.
func (s *Server) routeAuthority(w http.ResponseWriter, r *http.Request, pagesOnly bool) {
	path := r.URL.Path
	if path == "/" {
		s.handleIndex(w, r)
		return
	}
	if strings.EqualFold(path, "/devicelogin") {
		s.endpoint(EndpointDeviceLogin, w, r, "", s.handleDeviceLogin)
		return
	}
	seg, rest, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	rest = strings.ToLower(strings.TrimSuffix(rest, "/"))
	serve := func(e Endpoint, h func(http.ResponseWriter, *http.Request, string)) {
		grant := ""
		if e == EndpointToken || e == EndpointDeviceCode || e == EndpointLogin {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if err := r.ParseForm(); err != nil {
				s.count(e)
				s.writeEntraError(w, r, entraErr{code: "invalid_request", aadsts: 9002313, msg: "Invalid request. Request is malformed or invalid."})
				return
			}
			grant = r.PostForm.Get("grant_type")
			if grant == "urn:ietf:params:oauth:grant-type:device_code" {
				grant = "device_code"
			}
		}
		s.endpoint(e, w, r, grant, func(w http.ResponseWriter, r *http.Request) { h(w, r, seg) })
	}
	switch rest {
	case "oauth2/v2.0/authorize":
		serve(EndpointAuthorize, s.handleAuthorize)
		return
	case "login":
		serve(EndpointLogin, s.handleLogin)
		return
	case "oauth2/v2.0/logout":
		serve(EndpointLogout, s.handleLogout)
		return
	}
	if !pagesOnly {
		switch rest {
		case "v2.0/.well-known/openid-configuration":
			serve(EndpointDiscovery, s.handleDiscovery)
			return
		case "discovery/v2.0/keys":
			serve(EndpointJWKS, s.handleJWKS)
			return
		case "oauth2/v2.0/token":
			serve(EndpointToken, s.handleToken)
			return
		case "oauth2/v2.0/devicecode":
			serve(EndpointDeviceCode, s.handleDeviceCode)
			return
		}
	}
	http.NotFound(w, r)
}

// endpoint counts the call, plays a pending fault, then runs h.
func (s *Server) endpoint(e Endpoint, w http.ResponseWriter, r *http.Request, grant string, h http.HandlerFunc) {
	s.count(e)
	if s.applyFault(e, w, r, grant) {
		return
	}
	h(w, r)
}

func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request, seg string) {
	at, ok := s.resolveTenant(seg)
	if !ok {
		s.writeEntraError(w, r, tenantNotFound(seg))
		return
	}
	host := s.AuthorityHost()
	tid := "{tenantid}"
	if at.t != nil {
		tid = at.t.ID
	}
	name := at.name()
	base := host + "/" + name
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                host + "/" + tid + "/v2.0",
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     "https://" + s.graph.addr + "/oidc/userinfo",
		"authorization_endpoint":                s.pagesBase() + "/" + name + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  s.pagesBase() + "/" + name + "/oauth2/v2.0/logout",
		"claims_supported": []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
			"msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver",
			"at_hash", "c_hash", "email"},
		"code_challenge_methods_supported": []string{"S256"},
		"tenant_region_scope":              "NA",
		"cloud_instance_name":              "microsoftonline.com",
		"cloud_graph_host_name":            "graph.windows.net",
		"msgraph_host":                     s.graph.addr,
		"rbac_url":                         "https://pas.windows.net",
	})
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request, seg string) {
	at, ok := s.resolveTenant(seg)
	if !ok {
		s.writeEntraError(w, r, tenantNotFound(seg))
		return
	}
	iss := s.AuthorityHost() + "/{tenantid}/v2.0"
	if at.t != nil {
		iss = s.issuer(at.t.ID)
	}
	s.keyMu.RLock()
	keys := make([]map[string]any, 0, len(s.keys))
	for i := len(s.keys) - 1; i >= 0; i-- { // current key first
		keys = append(keys, s.keys[i].jwk(iss))
	}
	s.keyMu.RUnlock()
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

// authRequest is an authorization request waiting on the login page.
type authRequest struct {
	at           authorityTenant
	client       *clientReg
	redirectURI  string
	responseMode string
	state        string
	scopeRaw     string
	scopes       scopeSet
	challenge    string
	nonce        string
	claims       string
	loginHint    string
	clientInfo   bool
	expires      time.Time // real time
}

// authCode is an issued authorization code, stored under its hash.
type authCode struct {
	clientID    string
	redirectURI string
	challenge   string
	scopeRaw    string
	tenantID    string
	oid         string
	nonce       string
	claims      string
	clientInfo  bool
	sessionSeq  uint64
	sid         string
	authTime    time.Time
	expires     time.Time
	used        bool
}

// redirectAllowed applies the redirect URI rules: public clients may use any http loopback
// URI (localhost, 127.0.0.1 or [::1], any port and path); the confidential client also
// https://localhost/... web redirects.
func redirectAllowed(c *clientReg, raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Fragment != "" || u.User != nil {
		return false
	}
	host := strings.ToLower(u.Hostname())
	loop := host == "localhost" || host == "127.0.0.1" || host == "::1"
	switch c.Kind {
	case KindPublic:
		return u.Scheme == "http" && loop
	case KindConfidential:
		return (u.Scheme == "http" || u.Scheme == "https") && loop
	}
	return false
}

func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request, seg string) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		s.writeErrorPage(w, r, http.StatusBadRequest, entraErr{code: "invalid_request", aadsts: 9002313, msg: "Invalid request. Request is malformed or invalid."})
		return
	}
	q := r.Form
	at, ok := s.resolveTenant(seg)
	if !ok {
		s.writeErrorPage(w, r, http.StatusBadRequest, tenantNotFound(seg))
		return
	}
	clientID := q.Get("client_id")
	if clientID == "" {
		s.writeErrorPage(w, r, http.StatusBadRequest, missingParam("client_id"))
		return
	}
	c := s.dir.client(clientID)
	if c == nil || c.Kind == KindResource {
		s.writeErrorPage(w, r, http.StatusBadRequest, s.unknownClient(clientID, at))
		return
	}
	redirect := q.Get("redirect_uri")
	if redirect == "" || !redirectAllowed(c, redirect) {
		s.writeErrorPage(w, r, http.StatusBadRequest, entraErr{code: "invalid_request", aadsts: 50011, msg: fmt.Sprintf(
			"The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.",
			redirect, c.ID)})
		return
	}
	req := &authRequest{
		at: at, client: c, redirectURI: redirect, state: q.Get("state"),
		scopeRaw: q.Get("scope"), challenge: q.Get("code_challenge"), nonce: q.Get("nonce"),
		claims: q.Get("claims"), loginHint: q.Get("login_hint"), clientInfo: q.Get("client_info") == "1",
		expires: time.Now().Add(time.Hour),
	}
	switch mode := q.Get("response_mode"); mode {
	case "":
		req.responseMode = "query"
	case "query", "form_post", "fragment":
		req.responseMode = mode
	default:
		req.responseMode = "query"
		s.authError(w, r, req, entraErr{code: "invalid_request", aadsts: 900352, msg: fmt.Sprintf("The response_mode '%s' is not supported.", mode)})
		return
	}
	if rt := q.Get("response_type"); rt != "code" {
		if rt == "" {
			s.authError(w, r, req, missingParam("response_type"))
			return
		}
		s.authError(w, r, req, entraErr{code: "unsupported_response_type", aadsts: 700054, msg: fmt.Sprintf("response_type '%s' is not enabled for the application.", rt)})
		return
	}
	if strings.TrimSpace(req.scopeRaw) == "" {
		s.authError(w, r, req, missingParam("scope"))
		return
	}
	ss, e := s.parseScopes(req.scopeRaw, at.t)
	if e != nil {
		s.authError(w, r, req, *e)
		return
	}
	req.scopes = ss
	if _, e := parseClaimsParam(req.claims); e != nil {
		s.authError(w, r, req, *e)
		return
	}
	if req.challenge == "" && c.Kind == KindPublic {
		s.authError(w, r, req, entraErr{code: "invalid_request", aadsts: 9002325, msg: "Proof Key for Code Exchange is required for cross-origin authorization code redemption."})
		return
	}
	if req.challenge != "" {
		if m := q.Get("code_challenge_method"); m != "S256" {
			s.authError(w, r, req, entraErr{code: "invalid_request", aadsts: 9002325, msg: fmt.Sprintf("Proof Key for Code Exchange requires code_challenge_method S256, got '%s'.", m)})
			return
		}
		if len(req.challenge) != 43 {
			s.authError(w, r, req, entraErr{code: "invalid_request", aadsts: 501491, msg: "Invalid size of Code_Challenge parameter."})
			return
		}
	}
	if q.Get("prompt") == "none" {
		u := s.dir.signIn(req.loginHint, at.t)
		if u == nil {
			s.authError(w, r, req, entraErr{code: "login_required", aadsts: 50058, msg: "A silent sign-in request was sent but no user is signed in."})
			return
		}
		s.mu.Lock()
		mfa := s.mfa[u.HomeObjectID]
		ce := s.checkConsentLocked(c, u.HomeObjectID, ss)
		s.mu.Unlock()
		if mfa {
			s.authError(w, r, req, entraErr{code: "interaction_required", aadsts: 50076, msg: "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access the resource."})
			return
		}
		if ce != nil {
			s.authError(w, r, req, entraErr{code: "consent_required", aadsts: 65001, msg: ce.msg})
			return
		}
		s.completeSignIn(w, r, req, u, false)
		return
	}
	id := randomString(24)
	s.mu.Lock()
	now := time.Now()
	for k, p := range s.pending {
		if now.After(p.expires) {
			delete(s.pending, k)
		}
	}
	s.pending[id] = req
	s.mu.Unlock()
	s.renderLogin(w, r, id, req, "", 0)
}

func missingParam(name string) entraErr {
	return entraErr{code: "invalid_request", aadsts: 900144, msg: fmt.Sprintf("The request body must contain the following parameter: '%s'.", name)}
}

func (s *Server) unknownClient(id string, at authorityTenant) entraErr {
	dirName := "organizations"
	if at.t != nil {
		dirName = at.t.DisplayName
	}
	return entraErr{code: "unauthorized_client", aadsts: 700016, msg: fmt.Sprintf(
		"Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
		id, dirName)}
}

// authError sends an error back to the redirect URI, as Entra does once the redirect URI is
// known to be valid.
func (s *Server) authError(w http.ResponseWriter, r *http.Request, req *authRequest, e entraErr) {
	body := s.entraBody(r, e)
	v := url.Values{}
	v.Set("error", e.code)
	v.Set("error_description", body["error_description"].(string))
	v.Set("error_uri", body["error_uri"].(string))
	if req.state != "" {
		v.Set("state", req.state)
	}
	s.deliver(w, req, v)
}

// deliver answers the browser so that it carries v to the redirect URI.
func (s *Server) deliver(w http.ResponseWriter, req *authRequest, v url.Values) {
	w.Header().Set("Cache-Control", "no-store, no-cache")
	switch req.responseMode {
	case "form_post":
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		fields := make([]formField, 0, len(keys))
		for _, k := range keys {
			fields = append(fields, formField{Name: k, Value: v.Get(k)})
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_ = formPostPage.Execute(w, map[string]any{"Action": req.redirectURI, "Fields": fields})
	case "fragment":
		w.Header().Set("Location", req.redirectURI+"#"+v.Encode())
		w.WriteHeader(http.StatusFound)
	default:
		target := req.redirectURI
		if strings.Contains(target, "?") {
			target += "&" + v.Encode()
		} else {
			target += "?" + v.Encode()
		}
		w.Header().Set("Location", target)
		w.WriteHeader(http.StatusFound)
	}
}

// completeSignIn issues the authorization code for u and delivers it. interactive is true
// when the person went through the login page (it satisfies MFA and records consent).
func (s *Server) completeSignIn(w http.ResponseWriter, r *http.Request, req *authRequest, u *User, interactive bool) {
	code := "1.A" + randomString(96)
	now := s.now()
	s.mu.Lock()
	if interactive {
		delete(s.mfa, u.HomeObjectID)
		s.recordConsentLocked(req.client, u.HomeObjectID, req.scopes)
	}
	seq, sid, authTime := s.newSessionLocked()
	for k, c := range s.codes {
		if now.After(c.expires.Add(time.Hour)) {
			delete(s.codes, k)
		}
	}
	s.codes[hashSecret(code)] = &authCode{
		clientID: req.client.ID, redirectURI: req.redirectURI, challenge: req.challenge,
		scopeRaw: req.scopeRaw, tenantID: u.TenantID, oid: u.ObjectID, nonce: req.nonce,
		claims: req.claims, clientInfo: req.clientInfo, sessionSeq: seq, sid: sid,
		authTime: authTime, expires: now.Add(10 * time.Minute),
	}
	s.mu.Unlock()
	v := url.Values{}
	v.Set("code", code)
	if req.state != "" {
		v.Set("state", req.state)
	}
	v.Set("session_state", sid)
	if req.clientInfo {
		v.Set("client_info", clientInfo(u))
	}
	s.deliver(w, req, v)
}

// loginChoice is one account offered on the login page.
type loginChoice struct {
	Login, DisplayName, Password, Note string
}

func (s *Server) loginChoices(t *Tenant) []loginChoice {
	var out []loginChoice
	for _, u := range s.dir.users {
		switch {
		case t == nil && u.UserType == "Guest":
			continue
		case t != nil && u.TenantID != t.ID:
			continue
		}
		h := s.dir.home(u)
		ch := loginChoice{Login: h.UPN, DisplayName: u.DisplayName, Password: h.Password}
		if u.UserType == "Guest" {
			ch.Note = "guest from " + s.dir.tenantByID(u.HomeTenantID).DisplayName
		} else if t == nil {
			ch.Note = s.dir.tenantByID(u.TenantID).DisplayName
		}
		out = append(out, ch)
	}
	return out
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, id string, req *authRequest, errMsg string, aadsts int) {
	tenantName := "Work or school account"
	if req.at.t != nil {
		tenantName = req.at.t.DisplayName
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.WriteHeader(http.StatusOK)
	_ = loginPage.Execute(w, map[string]any{
		"Action":  "/" + req.at.seg + "/login",
		"Ctx":     id,
		"App":     req.client.Name,
		"Tenant":  tenantName,
		"Hint":    req.loginHint,
		"Error":   errMsg,
		"AADSTS":  aadsts,
		"Choices": s.loginChoices(req.at.t),
	})
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request, seg string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f := r.PostForm
	id := f.Get("ctx")
	s.mu.Lock()
	req := s.pending[id]
	if req != nil && time.Now().After(req.expires) {
		delete(s.pending, id)
		req = nil
	}
	s.mu.Unlock()
	if req == nil || !strings.EqualFold(req.at.seg, seg) {
		s.writeErrorPage(w, r, http.StatusBadRequest, entraErr{code: "invalid_request", aadsts: 9002313,
			msg: "Invalid request. The sign-in request has expired or is not valid; start the sign-in again from the application."})
		return
	}
	if f.Get("action") == "cancel" {
		s.dropPending(id)
		s.authError(w, r, req, entraErr{code: "access_denied", aadsts: 65004, msg: "User declined to consent to access the app."})
		return
	}
	login := strings.TrimSpace(f.Get("login"))
	u := s.dir.signIn(login, req.at.t)
	if u == nil {
		if known := s.dir.userByUPN(login); known != nil && req.at.t != nil {
			h := s.dir.home(known)
			s.renderLogin(w, r, id, req, fmt.Sprintf(
				"AADSTS50020: User account '%s' from identity provider '%s' does not exist in tenant '%s' and cannot access the application '%s'(%s) in that tenant. The account needs to be added as an external user in the tenant first. Sign out and sign in again with a different Azure Active Directory user account.",
				h.UPN, s.issuer(h.TenantID), req.at.t.DisplayName, req.client.ID, req.client.Name), 50020)
			return
		}
		where := "the"
		if req.at.t != nil {
			where = "the " + req.at.t.Domain
		}
		s.renderLogin(w, r, id, req, fmt.Sprintf(
			"AADSTS50034: The user account {EmailHidden} does not exist in %s directory. To sign into this application, the account must be added to the directory.", where), 50034)
		return
	}
	home := s.dir.home(u)
	if subtle.ConstantTimeCompare([]byte(f.Get("passwd")), []byte(home.Password)) != 1 {
		s.renderLogin(w, r, id, req, "AADSTS50126: Error validating credentials due to invalid username or password.", 50126)
		return
	}
	s.dropPending(id)
	s.completeSignIn(w, r, req, u, true)
}

func (s *Server) dropPending(id string) {
	s.mu.Lock()
	delete(s.pending, id)
	s.mu.Unlock()
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request, seg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	target := r.URL.Query().Get("post_logout_redirect_uri")
	if u, err := url.Parse(target); target != "" && err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		_ = signedOutPage.Execute(w, map[string]any{"Target": target})
		return
	}
	_ = signedOutPage.Execute(w, map[string]any{})
}

func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = indexPage.Execute(w, map[string]any{
		"Authority": s.AuthorityHost(), "Graph": s.GraphURL(), "CMS": s.CMSURL(), "Pages": s.PagesURL(),
		"Tenants": s.Tenants(), "Choices": s.loginChoices(nil),
	})
}
