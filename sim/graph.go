package sim

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

const graphJSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

// ordered is a JSON object that keeps its key order, as Graph writes them.
type ordered []kv

type kv struct {
	k string
	v any
}

// MarshalJSON writes the object in order.
func (o ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, p := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(p.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(p.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func writeGraphJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding the response failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", graphJSON)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

type graphKind int

const (
	gProfile graphKind = iota
	gPhoto
	gPhotoValue
	gMemberOf
	gMemberObjects
	gOrganization
	gBatch
)

// graphRoute is a parsed Graph request path.
type graphRoute struct {
	e       Endpoint
	kind    graphKind
	self    bool   // /me
	userRef string // /users/{id|upn}
	cast    string // "group", "directoryRole" or ""
	path    string // the path after /v1.0/, as sent
}

func eq(a, b string) bool { return strings.EqualFold(a, b) }

// parseGraphPath maps a path after /v1.0/ to a route; bad is the first unknown segment.
func parseGraphPath(rest string) (graphRoute, string) {
	rt := graphRoute{path: strings.Trim(rest, "/")}
	segs := strings.Split(rt.path, "/")
	switch {
	case len(segs) == 1 && eq(segs[0], "$batch"):
		rt.e, rt.kind = EndpointGraphBatch, gBatch
		return rt, ""
	case len(segs) == 1 && eq(segs[0], "organization"):
		rt.e, rt.kind = EndpointGraphOrganization, gOrganization
		return rt, ""
	case eq(segs[0], "me"):
		rt.self, segs = true, segs[1:]
		rt.e = EndpointGraphMe
	case eq(segs[0], "users") && len(segs) >= 2 && segs[1] != "":
		rt.userRef, segs = segs[1], segs[2:]
		rt.e = EndpointGraphUsers
	case segs[0] == "":
		return rt, "v1.0"
	default:
		return rt, segs[0]
	}
	switch {
	case len(segs) == 0:
		rt.kind = gProfile
	case eq(segs[0], "photo") && len(segs) == 1:
		rt.e, rt.kind = EndpointGraphPhoto, gPhoto
	case eq(segs[0], "photo") && len(segs) == 2 && segs[1] == "$value":
		rt.e, rt.kind = EndpointGraphPhoto, gPhotoValue
	case (eq(segs[0], "transitiveMemberOf") || eq(segs[0], "memberOf")) && len(segs) <= 2:
		rt.e, rt.kind = EndpointGraphMemberOf, gMemberOf
		if len(segs) == 2 {
			switch {
			case eq(segs[1], "microsoft.graph.group"):
				rt.cast = "group"
			case eq(segs[1], "microsoft.graph.directoryRole"):
				rt.cast = "directoryRole"
			default:
				return rt, segs[1]
			}
		}
	case eq(segs[0], "getMemberObjects") && len(segs) == 1:
		rt.e, rt.kind = EndpointGraphMemberOf, gMemberObjects
	default:
		return rt, segs[0]
	}
	return rt, ""
}

func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request) {
	reqID := newGUID()
	w.Header().Set("request-id", reqID)
	if id := r.Header.Get("client-request-id"); id != "" {
		w.Header().Set("client-request-id", id)
	} else {
		w.Header().Set("client-request-id", reqID)
	}
	if !s.decodeRequestBody(w, r) {
		return
	}
	if eq(r.URL.Path, "/oidc/userinfo") {
		s.endpoint(EndpointGraphUserInfo, w, r, "", s.handleUserInfo)
		return
	}
	rest, ok := cutPrefixFold(r.URL.Path, "/v1.0/")
	if !ok {
		s.writeGraphError(w, r, http.StatusBadRequest, "BadRequest", "Invalid version.")
		return
	}
	s.graphDispatch(w, r, rest)
}

// maxRequestBody bounds a Graph request body, compressed or not (a $batch of 20 steps with
// bodies stays far below it).
const maxRequestBody = 4 << 20

// decodeRequestBody makes a request body sent with Content-Encoding: gzip readable as plain
// JSON, as Graph accepts it (msgraph-sdk-go compresses request bodies by default). Other
// codings are refused with 415; false means the answer is written.
func (s *Server) decodeRequestBody(w http.ResponseWriter, r *http.Request) bool {
	ce := strings.TrimSpace(r.Header.Get("Content-Encoding"))
	switch {
	case ce == "" || strings.EqualFold(ce, "identity"):
		return true
	case !strings.EqualFold(ce, "gzip") && !strings.EqualFold(ce, "x-gzip"):
		s.writeGraphError(w, r, http.StatusUnsupportedMediaType, "BadRequest", fmt.Sprintf("Content-Encoding '%s' is not supported; send the body uncompressed or gzip-compressed.", ce))
		return false
	}
	zr, err := gzip.NewReader(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		s.writeGraphError(w, r, http.StatusBadRequest, "BadRequest", "The request body is not valid gzip data.")
		return false
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.LimitReader(zr, maxRequestBody), r.Body}
	r.Header.Del("Content-Encoding")
	r.Header.Del("Content-Length")
	r.ContentLength = -1
	return true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// graphDispatch serves one Graph request (also each step of a batch).
func (s *Server) graphDispatch(w http.ResponseWriter, r *http.Request, rest string) {
	rt, bad := parseGraphPath(rest)
	if bad != "" {
		s.writeGraphError(w, r, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", bad))
		return
	}
	s.endpoint(rt.e, w, r, "", func(w http.ResponseWriter, r *http.Request) {
		wantMethod := http.MethodGet
		if rt.kind == gBatch || rt.kind == gMemberObjects {
			wantMethod = http.MethodPost
		}
		if r.Method != wantMethod && !(wantMethod == http.MethodGet && r.Method == http.MethodHead) {
			s.writeGraphError(w, r, http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
			return
		}
		ti, fail := s.validateAccessToken(bearerToken(r), GraphAudience, GraphAppID)
		if fail != nil {
			s.graphUnauthorized(w, r, rt.e, fail)
			return
		}
		switch rt.kind {
		case gBatch:
			s.handleBatch(w, r)
		case gOrganization:
			s.handleOrganization(w, r, ti)
		default:
			u, ok := s.graphTarget(w, r, ti, rt)
			if !ok {
				return
			}
			switch rt.kind {
			case gProfile:
				s.handleProfile(w, r, ti, u)
			case gPhoto, gPhotoValue:
				s.handlePhoto(w, r, ti, u, rt.kind == gPhotoValue)
			case gMemberOf:
				s.handleMemberOf(w, r, ti, u, rt)
			case gMemberObjects:
				s.handleMemberObjects(w, r, ti, u)
			}
		}
	})
}

// graphUnauthorized answers 401 with Graph's WWW-Authenticate (and a claims challenge for CAE).
func (s *Server) graphUnauthorized(w http.ResponseWriter, r *http.Request, e Endpoint, f *authFailure) {
	s.reject(e)
	v := `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`
	if f.cae {
		v += `, error="insufficient_claims", claims="` + f.claimsChallenge() + `"`
	}
	w.Header().Set("WWW-Authenticate", v)
	s.writeGraphError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", f.msg)
}

func (s *Server) forbidden(w http.ResponseWriter, r *http.Request) {
	s.writeGraphError(w, r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
}

// graphTarget resolves /me or /users/{id|upn} and checks the permission to read the user.
func (s *Server) graphTarget(w http.ResponseWriter, r *http.Request, ti *tokenInfo, rt graphRoute) (*User, bool) {
	var u *User
	if rt.self {
		if ti.app {
			s.writeGraphError(w, r, http.StatusBadRequest, "BadRequest", "/me request is only valid with delegated authentication flow.")
			return nil, false
		}
		u = ti.user
	} else {
		for _, x := range s.dir.users {
			if x.TenantID == ti.tid && (eq(x.ObjectID, rt.userRef) || eq(x.UPN, rt.userRef)) {
				u = x
				break
			}
		}
		if u == nil {
			s.writeGraphError(w, r, http.StatusNotFound, "Request_ResourceNotFound", fmt.Sprintf(
				"Resource '%s' does not exist or one of its queried reference-property objects are not present.", rt.userRef))
			return nil, false
		}
	}
	var ok bool
	switch {
	case rt.kind == gMemberOf || rt.kind == gMemberObjects:
		ok = ti.hasScope("GroupMember.Read.All", "Group.Read.All", "Directory.Read.All") ||
			ti.hasRole("GroupMember.Read.All", "Group.Read.All", "Directory.Read.All")
	case ti.app:
		ok = ti.hasRole("User.Read.All", "User.ReadWrite.All", "Directory.Read.All")
	case u == ti.user:
		ok = ti.hasScope("User.Read", "User.ReadWrite", "User.ReadBasic.All", "User.Read.All", "Directory.Read.All")
	default:
		ok = ti.hasScope("User.ReadBasic.All", "User.Read.All", "Directory.Read.All")
	}
	if !ok {
		s.forbidden(w, r)
		return nil, false
	}
	return u, true
}

var userDefaultProps = []string{"businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
	"officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"}

var userOtherProps = []string{"userType", "department", "accountEnabled", "mailNickname", "creationType"}

var allUserProps = append(append([]string{}, userDefaultProps...), userOtherProps...)

func orNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func userProp(u *User, name string) any {
	switch name {
	case "businessPhones":
		return append([]string{}, u.BusinessPhones...)
	case "displayName":
		return orNull(u.DisplayName)
	case "givenName":
		return orNull(u.GivenName)
	case "jobTitle":
		return orNull(u.JobTitle)
	case "mail":
		return orNull(u.Mail)
	case "mobilePhone":
		return orNull(u.MobilePhone)
	case "officeLocation":
		return orNull(u.OfficeLocation)
	case "preferredLanguage":
		return orNull(u.PreferredLanguage)
	case "surname":
		return orNull(u.Surname)
	case "userPrincipalName":
		return u.UPN
	case "id":
		return u.ObjectID
	case "userType":
		return u.UserType
	case "department":
		return orNull(u.Department)
	case "accountEnabled":
		return true
	case "mailNickname":
		nick, _, _ := strings.Cut(u.UPN, "@")
		return nick
	case "creationType":
		if u.UserType == "Guest" {
			return "Invitation"
		}
		return nil
	}
	return nil
}

func queryParam(q url.Values, name string) string {
	if v := q.Get("$" + name); v != "" {
		return v
	}
	return q.Get(name)
}

func (s *Server) handleProfile(w http.ResponseWriter, r *http.Request, ti *tokenInfo, u *User) {
	props := userDefaultProps
	ctx := s.GraphURL() + "/$metadata#users/$entity"
	if sel := queryParam(r.URL.Query(), "select"); sel != "" {
		props = nil
		for _, p := range strings.Split(sel, ",") {
			p = strings.TrimSpace(p)
			i := slices.IndexFunc(allUserProps, func(x string) bool { return eq(x, p) })
			if i < 0 {
				s.writeGraphError(w, r, http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Could not find a property named '%s' on type 'microsoft.graph.user'.", p))
				return
			}
			name := allUserProps[i]
			if !slices.Contains(props, name) {
				props = append(props, name)
			}
		}
		ctx = s.GraphURL() + "/$metadata#users(" + strings.Join(props, ",") + ")/$entity"
	}
	out := ordered{{"@odata.context", ctx}}
	for _, p := range props {
		out = append(out, kv{p, userProp(u, p)})
	}
	writeGraphJSON(w, http.StatusOK, out)
}

func (s *Server) handlePhoto(w http.ResponseWriter, r *http.Request, ti *tokenInfo, u *User, value bool) {
	if !u.HasPhoto {
		s.writeGraphError(w, r, http.StatusNotFound, "ImageNotFound", "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown.")
		return
	}
	img := userPhoto(u.ObjectID)
	etag := fmt.Sprintf(`W/"%s"`, hashSecret(u.ObjectID)[:16])
	if !value {
		writeGraphJSON(w, http.StatusOK, ordered{
			{"@odata.context", s.GraphURL() + "/$metadata#users('" + u.ObjectID + "')/photo/$entity"},
			{"@odata.mediaContentType", "image/jpeg"},
			{"@odata.mediaEtag", etag},
			{"id", fmt.Sprintf("%dX%d", photoSize, photoSize)},
			{"height", photoSize},
			{"width", photoSize},
		})
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Length", strconv.Itoa(len(img)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(img)
	}
}

func (s *Server) handleOrganization(w http.ResponseWriter, r *http.Request, ti *tokenInfo) {
	if !(ti.hasScope("User.Read", "User.ReadBasic.All", "Organization.Read.All", "Directory.Read.All") ||
		ti.hasRole("Organization.Read.All", "Directory.Read.All")) {
		s.forbidden(w, r)
		return
	}
	t := s.dir.tenantByID(ti.tid)
	domains := make([]any, 0, len(t.VerifiedDomains))
	for i, d := range t.VerifiedDomains {
		domains = append(domains, ordered{
			{"capabilities", "Email, OfficeCommunicationsOnline"},
			{"isDefault", i == 0},
			{"isInitial", strings.HasSuffix(d, ".onmicrosoft.com")},
			{"name", d},
			{"type", "Managed"},
		})
	}
	writeGraphJSON(w, http.StatusOK, ordered{
		{"@odata.context", s.GraphURL() + "/$metadata#organization"},
		{"value", []any{ordered{
			{"id", t.ID},
			{"deletedDateTime", nil},
			{"businessPhones", []string{}},
			{"city", nil},
			{"country", nil},
			{"countryLetterCode", "US"},
			{"createdDateTime", "2024-01-15T09:00:00Z"},
			{"defaultUsageLocation", nil},
			{"displayName", t.DisplayName},
			{"onPremisesSyncEnabled", nil},
			{"preferredLanguage", "en"},
			{"tenantType", "AAD"},
			{"verifiedDomains", domains},
		}}},
	})
}

func (s *Server) groupObject(g *group) ordered {
	t := s.dir.tenantByID(g.TenantID)
	types := []string{}
	mailEnabled, securityEnabled := false, false
	var mail, visibility any
	switch g.Kind {
	case groupUnified:
		types = []string{"Unified"}
		mailEnabled, visibility = true, "Public"
		mail = g.MailNickname + "@" + t.Domain
	case groupDistribution:
		mailEnabled = true
		mail = g.MailNickname + "@" + t.Domain
	default:
		securityEnabled = true
	}
	return ordered{
		{"@odata.type", "#microsoft.graph.group"},
		{"id", g.ID},
		{"deletedDateTime", nil},
		{"classification", nil},
		{"createdDateTime", "2024-01-15T09:00:00Z"},
		{"creationOptions", []string{}},
		{"description", orNull(g.Description)},
		{"displayName", g.DisplayName},
		{"expirationDateTime", nil},
		{"groupTypes", types},
		{"isAssignableToRole", nil},
		{"mail", mail},
		{"mailEnabled", mailEnabled},
		{"mailNickname", g.MailNickname},
		{"membershipRule", nil},
		{"proxyAddresses", []string{}},
		{"securityEnabled", securityEnabled},
		{"visibility", visibility},
	}
}

func (s *Server) roleObject(tenantID, templateID string) ordered {
	role := s.dir.roles[templateID]
	return ordered{
		{"@odata.type", "#microsoft.graph.directoryRole"},
		{"id", roleObjectID(tenantID, templateID)},
		{"deletedDateTime", nil},
		{"description", role.Description},
		{"displayName", role.DisplayName},
		{"roleTemplateId", templateID},
	}
}

const skipPrefix = "RFNwdAIAAQAAA"

func (s *Server) handleMemberOf(w http.ResponseWriter, r *http.Request, ti *tokenInfo, u *User, rt graphRoute) {
	q := r.URL.Query()
	for _, unsupported := range []string{"filter", "search", "orderby", "expand"} {
		if queryParam(q, unsupported) != "" {
			s.writeGraphError(w, r, http.StatusBadRequest, "Request_UnsupportedQuery", fmt.Sprintf("The simulated Graph does not implement $%s on this resource.", unsupported))
			return
		}
	}
	top := 100
	if v := queryParam(q, "top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 999 {
			s.writeGraphError(w, r, http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Invalid page size specified: '%s'. Must be between 1 and 999 inclusive.", v))
			return
		}
		top = n
	}
	off := 0
	if v := queryParam(q, "skiptoken"); v != "" {
		n, ok := decodeSkipToken(v)
		if !ok {
			s.writeGraphError(w, r, http.StatusBadRequest, "Directory_ExpiredPageToken", "The specified page token value has expired and can no longer be included in your request.")
			return
		}
		off = n
	}
	var items []any
	if rt.cast != "directoryRole" {
		for _, id := range u.Groups {
			items = append(items, s.groupObject(s.dir.groups[id]))
		}
	}
	if rt.cast != "group" {
		for _, id := range u.Roles {
			items = append(items, s.roleObject(u.TenantID, id))
		}
	}
	ctx := s.GraphURL() + "/$metadata#directoryObjects"
	switch rt.cast {
	case "group":
		ctx = s.GraphURL() + "/$metadata#groups"
	case "directoryRole":
		ctx = s.GraphURL() + "/$metadata#directoryRoles"
	}
	off = min(off, len(items))
	end := min(off+top, len(items))
	out := ordered{{"@odata.context", ctx}}
	if end < len(items) {
		next := url.Values{}
		next.Set("$top", strconv.Itoa(top))
		next.Set("$skiptoken", encodeSkipToken(end))
		if sel := queryParam(q, "select"); sel != "" {
			next.Set("$select", sel)
		}
		out = append(out, kv{"@odata.nextLink", s.GraphURL() + "/" + rt.path + "?" + next.Encode()})
	}
	page := items[off:end]
	if page == nil {
		page = []any{}
	}
	out = append(out, kv{"value", page})
	writeGraphJSON(w, http.StatusOK, out)
}

func encodeSkipToken(off int) string {
	return skipPrefix + base64.RawURLEncoding.EncodeToString([]byte("off:"+strconv.Itoa(off)))
}

func decodeSkipToken(v string) (int, bool) {
	rest, ok := strings.CutPrefix(v, skipPrefix)
	if !ok {
		return 0, false
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return 0, false
	}
	n, ok := strings.CutPrefix(string(b), "off:")
	if !ok {
		return 0, false
	}
	off, err := strconv.Atoi(n)
	return off, err == nil && off >= 0
}

func (s *Server) handleMemberObjects(w http.ResponseWriter, r *http.Request, ti *tokenInfo, u *User) {
	var body struct {
		SecurityEnabledOnly bool `json:"securityEnabledOnly"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&body); err != nil && err != io.EOF {
		s.writeGraphError(w, r, http.StatusBadRequest, "Request_BadRequest", "Invalid request body: "+err.Error())
		return
	}
	ids := []string{}
	for _, id := range u.Groups {
		if g := s.dir.groups[id]; !body.SecurityEnabledOnly || g.Kind == groupSecurity {
			ids = append(ids, id)
		}
	}
	for _, id := range u.Roles {
		ids = append(ids, roleObjectID(u.TenantID, id))
	}
	writeGraphJSON(w, http.StatusOK, ordered{
		{"@odata.context", s.GraphURL() + "/$metadata#Collection(Edm.String)"},
		{"value", ids},
	})
}

func (s *Server) handleUserInfo(w http.ResponseWriter, r *http.Request) {
	ti, fail := s.validateAccessToken(bearerToken(r), GraphAudience, GraphAppID)
	if fail != nil {
		s.graphUnauthorized(w, r, EndpointGraphUserInfo, fail)
		return
	}
	if ti.app || !ti.hasScope("openid") {
		s.forbidden(w, r)
		return
	}
	u := ti.user
	out := ordered{{"sub", pairwiseSub(u.ObjectID, ti.azp)}}
	if ti.hasScope("profile") {
		out = append(out, kv{"name", u.DisplayName}, kv{"family_name", u.Surname}, kv{"given_name", u.GivenName},
			kv{"picture", s.GraphURL() + "/me/photo/$value"})
	}
	if ti.hasScope("email") && u.Mail != "" {
		out = append(out, kv{"email", u.Mail})
	}
	writeJSON(w, http.StatusOK, out)
}

// batchStep is one request of a JSON batch.
type batchStep struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	Body      json.RawMessage   `json:"body"`
	DependsOn []string          `json:"dependsOn"`
}

func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Requests []batchStep `json:"requests"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<20)).Decode(&req); err != nil {
		s.writeGraphError(w, r, http.StatusBadRequest, "BadRequest", "Invalid batch payload format.")
		return
	}
	switch n := len(req.Requests); {
	case n == 0:
		s.writeGraphError(w, r, http.StatusBadRequest, "BadRequest", "Invalid batch payload format. The batch must contain at least one request.")
		return
	case n > 20:
		s.writeGraphError(w, r, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Number of requests in the batch (%d) exceeds the limit of 20.", n))
		return
	}
	seen := map[string]bool{}
	for _, st := range req.Requests {
		if st.ID == "" || seen[st.ID] || st.Method == "" || st.URL == "" {
			s.writeGraphError(w, r, http.StatusBadRequest, "BadRequest", "Invalid batch payload format. Each request needs a unique id, a method and a url.")
			return
		}
		seen[st.ID] = true
	}
	status := map[string]int{}
	responses := make([]any, 0, len(req.Requests))
	for _, st := range req.Requests {
		code, headers, body := s.batchStep(r, st, status)
		status[st.ID] = code
		item := ordered{{"id", st.ID}, {"status", code}, {"headers", headers}}
		if body != nil {
			item = append(item, kv{"body", body})
		}
		responses = append(responses, item)
	}
	writeGraphJSON(w, http.StatusOK, ordered{{"responses", responses}})
}

// batchStep runs one step through the same handlers, with the batch's Authorization.
func (s *Server) batchStep(outer *http.Request, st batchStep, done map[string]int) (int, map[string]string, any) {
	for _, dep := range st.DependsOn {
		if code, ok := done[dep]; !ok || code >= 400 {
			return http.StatusFailedDependency, map[string]string{"Content-Type": "application/json"}, ordered{{"error", ordered{
				{"code", "FailedDependency"}, {"message", "Dependent request " + dep + " failed or did not run."}}}}
		}
	}
	rel := st.URL
	if strings.Contains(rel, "://") {
		return http.StatusBadRequest, map[string]string{"Content-Type": "application/json"}, ordered{{"error", ordered{
			{"code", "BadRequest"}, {"message", "The request URL must be relative to the Graph version, for example /me."}}}}
	}
	rel = strings.TrimPrefix(rel, "/")
	if path, _, _ := strings.Cut(rel, "?"); eq(strings.Trim(path, "/"), "$batch") {
		return http.StatusBadRequest, map[string]string{"Content-Type": "application/json"}, ordered{{"error", ordered{
			{"code", "BadRequest"}, {"message", "A batch cannot contain another batch."}}}}
	}
	var body io.Reader
	if len(st.Body) > 0 && string(st.Body) != "null" {
		body = bytes.NewReader(st.Body)
	}
	sub, err := http.NewRequestWithContext(outer.Context(), strings.ToUpper(st.Method), s.GraphURL()+"/"+rel, body)
	if err != nil {
		return http.StatusBadRequest, map[string]string{"Content-Type": "application/json"}, ordered{{"error", ordered{
			{"code", "BadRequest"}, {"message", "Invalid request URL."}}}}
	}
	for k, v := range st.Headers {
		sub.Header.Set(k, v)
	}
	if body != nil && sub.Header.Get("Content-Type") == "" {
		sub.Header.Set("Content-Type", "application/json")
	}
	sub.Header.Set("Authorization", outer.Header.Get("Authorization"))
	rec := httptest.NewRecorder()
	path, _, _ := strings.Cut(rel, "?")
	s.graphDispatch(rec, sub, path)
	res := rec.Result()
	headers := map[string]string{}
	for _, k := range []string{"Content-Type", "Retry-After", "ETag", "WWW-Authenticate", "Location"} {
		if v := res.Header.Get(k); v != "" {
			headers[k] = v
		}
	}
	raw := rec.Body.Bytes()
	switch {
	case len(raw) == 0:
		return res.StatusCode, headers, nil
	case strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") && json.Valid(raw):
		return res.StatusCode, headers, json.RawMessage(raw)
	default:
		return res.StatusCode, headers, base64.StdEncoding.EncodeToString(raw)
	}
}
