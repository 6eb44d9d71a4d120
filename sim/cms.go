package sim

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cmsState is the CMS's data; it survives StopCMS/StartCMS.
type cmsState struct {
	mu          sync.Mutex
	secret      []byte // HS256 key of the CMS's own JWTs
	users       []*cmsUser
	articles    []*article
	nextUser    int
	nextArticle int
}

type cmsUser struct {
	ID                   int
	DocumentID           string
	Username, Email      string
	OID                  string
	CreatedAt, UpdatedAt time.Time
}

type article struct {
	ID                              int
	DocumentID, Title, Slug, Body   string
	CreatedAt, UpdatedAt, Published time.Time
}

func documentID(parts ...string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	h := hashSecret(strings.Join(parts, "\x00"))
	b := make([]byte, 24)
	for i := range b {
		b[i] = alphabet[int(h[i])%len(alphabet)]
	}
	return string(b)
}

func newCMSState() (*cmsState, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("making the cms secret: %w", err)
	}
	st := &cmsState{secret: secret, nextUser: 1}
	base := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	for i, t := range []struct{ title, body string }{
		{"Welcome to the Entra Companion CMS", "This CMS is part of the simulated cloud."},
		{"Refresh tokens belong in the keychain", "Never in localStorage, never in a file."},
		{"Calling Graph through the loopback proxy", "The proxy attaches a fresh token of the right account."},
	} {
		at := base.Add(time.Duration(i) * 24 * time.Hour)
		st.articles = append(st.articles, &article{
			ID: i + 1, DocumentID: documentID("article", strconv.Itoa(i+1)), Title: t.title,
			Slug: slugify(t.title), Body: t.body, CreatedAt: at, UpdatedAt: at, Published: at,
		})
	}
	st.nextArticle = len(st.articles) + 1
	return st, nil
}

func slugify(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

const strapiTime = "2006-01-02T15:04:05.000Z"

func (u *cmsUser) json() ordered {
	return ordered{
		{"id", u.ID}, {"documentId", u.DocumentID}, {"username", u.Username}, {"email", u.Email},
		{"provider", "microsoft"}, {"confirmed", true}, {"blocked", false},
		{"createdAt", u.CreatedAt.UTC().Format(strapiTime)}, {"updatedAt", u.UpdatedAt.UTC().Format(strapiTime)},
		{"publishedAt", u.CreatedAt.UTC().Format(strapiTime)},
	}
}

func (a *article) json() ordered {
	return ordered{
		{"id", a.ID}, {"documentId", a.DocumentID}, {"title", a.Title}, {"slug", a.Slug}, {"body", a.Body},
		{"createdAt", a.CreatedAt.UTC().Format(strapiTime)}, {"updatedAt", a.UpdatedAt.UTC().Format(strapiTime)},
		{"publishedAt", a.Published.UTC().Format(strapiTime)},
	}
}

// cmsPrincipal is who called the CMS.
type cmsPrincipal struct {
	kind  string // "cms" (the CMS's own JWT) or "entra" (an access token for the CMS API)
	user  *cmsUser
	entra *tokenInfo
}

func (p *cmsPrincipal) can(write bool) bool {
	if p.kind == "cms" {
		return true
	}
	if write {
		return p.entra.hasScope("Articles.Write") || p.entra.hasRole("Articles.Write.All")
	}
	return p.entra.hasScope("Articles.Read", "Articles.Write") || p.entra.hasRole("Articles.Read.All", "Articles.Write.All")
}

// cmsAuthFailure is a refused CMS credential.
type cmsAuthFailure struct {
	entra bool // an Entra token was presented
	f     *authFailure
}

func (s *Server) cmsAuthenticate(r *http.Request) (*cmsPrincipal, *cmsAuthFailure) {
	raw := bearerToken(r)
	if raw == "" {
		return nil, &cmsAuthFailure{f: &authFailure{msg: "Missing or invalid credentials"}}
	}
	j, err := parseJWS(raw)
	if err != nil {
		return nil, &cmsAuthFailure{f: &authFailure{msg: "Missing or invalid credentials"}}
	}
	if j.hdr("alg") == "HS256" {
		if !j.verifyHS256(s.cmsState.secret) {
			return nil, &cmsAuthFailure{f: &authFailure{msg: "Missing or invalid credentials"}}
		}
		exp, ok := j.num("exp")
		if !ok || s.now().Unix() >= exp {
			return nil, &cmsAuthFailure{f: &authFailure{msg: "Missing or invalid credentials"}}
		}
		id, _ := j.num("id")
		st := s.cmsState
		st.mu.Lock()
		defer st.mu.Unlock()
		for _, u := range st.users {
			if int64(u.ID) == id {
				return &cmsPrincipal{kind: "cms", user: u}, nil
			}
		}
		return nil, &cmsAuthFailure{f: &authFailure{msg: "Missing or invalid credentials"}}
	}
	ti, f := s.validateAccessToken(raw, CMSClientID, CMSAudience)
	if f != nil {
		return nil, &cmsAuthFailure{entra: true, f: f}
	}
	return &cmsPrincipal{kind: "entra", entra: ti}, nil
}

// cmsUnauthorized answers Strapi's 401 (with a Bearer challenge for Entra tokens).
func (s *Server) cmsUnauthorized(w http.ResponseWriter, e Endpoint, f *cmsAuthFailure) {
	s.reject(e)
	switch {
	case f.f.cae:
		w.Header().Set("WWW-Authenticate", `Bearer realm="", error="insufficient_claims", claims="`+f.f.claimsChallenge()+`"`)
	case f.entra:
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+strings.ReplaceAll(f.f.msg, `"`, `'`)+`"`)
	}
	writeStrapiError(w, http.StatusUnauthorized, "UnauthorizedError", "Missing or invalid credentials")
}

func (s *Server) serveCMS(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimSuffix(r.URL.Path, "/")
	var e Endpoint
	var h http.HandlerFunc
	switch {
	case p == "/_health":
		w.WriteHeader(http.StatusNoContent)
		return
	case p == "/api/auth/microsoft/callback":
		e, h = EndpointCMSCallback, s.handleCMSCallback
	case p == "/api/articles" || strings.HasPrefix(p, "/api/articles/"):
		e, h = EndpointCMSArticles, s.handleArticles
	case p == "/api/users/me":
		e, h = EndpointCMSUsersMe, s.handleCMSUsersMe
	case p == "/api/stream":
		e, h = EndpointCMSStream, s.handleStream
	case p == "/api/download":
		e, h = EndpointCMSDownload, s.handleDownload
	case p == "/api/echo":
		e, h = EndpointCMSEcho, s.handleEcho
	default:
		writeStrapiError(w, http.StatusNotFound, "NotFoundError", "Not Found")
		return
	}
	s.endpoint(e, w, r, "", h)
}

// handleCMSCallback is Strapi's users-permissions provider callback: it asks Graph's /me who
// the access token belongs to and answers the CMS's own JWT and user.
func (s *Server) handleCMSCallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeStrapiError(w, http.StatusMethodNotAllowed, "MethodNotAllowedError", "Method Not Allowed")
		return
	}
	tok := r.URL.Query().Get("access_token")
	if tok == "" {
		writeStrapiError(w, http.StatusBadRequest, "ApplicationError", "No access_token.")
		return
	}
	me, err := s.graphMe(r.Context(), tok)
	if err != nil {
		writeStrapiError(w, http.StatusBadRequest, "ApplicationError", err.Error())
		return
	}
	now := s.now()
	st := s.cmsState
	email := strings.ToLower(me.UserPrincipalName)
	st.mu.Lock()
	var u *cmsUser
	for _, x := range st.users {
		if x.Email == email {
			u = x
		}
	}
	if u == nil {
		u = &cmsUser{ID: st.nextUser, DocumentID: documentID("user", email), Username: me.UserPrincipalName,
			Email: email, OID: me.ID, CreatedAt: now, UpdatedAt: now}
		st.nextUser++
		st.users = append(st.users, u)
	}
	st.mu.Unlock()
	jwt, err := signHS256(st.secret, map[string]any{"id": u.ID, "iat": now.Unix(), "exp": now.Add(s.opts.CMSJWTLifetime).Unix()})
	if err != nil {
		writeStrapiError(w, http.StatusInternalServerError, "InternalServerError", "Internal Server Error")
		return
	}
	writeJSON(w, http.StatusOK, ordered{{"jwt", jwt}, {"user", u.json()}})
}

type graphMeResult struct {
	ID                string `json:"id"`
	UserPrincipalName string `json:"userPrincipalName"`
	Mail              string `json:"mail"`
}

// graphMe calls the sim's own Graph over HTTPS, as Strapi's provider calls graph.microsoft.com.
func (s *Server) graphMe(ctx context.Context, tok string) (*graphMeResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.GraphURL()+"/me", nil)
	if err != nil {
		return nil, fmt.Errorf("building the graph request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := s.internal.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling graph /me: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading graph /me: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var ge struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(body, &ge)
		return nil, fmt.Errorf("graph /me answered %d %s: %s", resp.StatusCode, ge.Error.Code, ge.Error.Message)
	}
	var me graphMeResult
	if err := json.Unmarshal(body, &me); err != nil || me.UserPrincipalName == "" {
		return nil, fmt.Errorf("graph /me answered an unreadable profile")
	}
	return &me, nil
}

func (s *Server) handleCMSUsersMe(w http.ResponseWriter, r *http.Request) {
	p, f := s.cmsAuthenticate(r)
	if f != nil {
		s.cmsUnauthorized(w, EndpointCMSUsersMe, f)
		return
	}
	if p.kind != "cms" {
		s.cmsUnauthorized(w, EndpointCMSUsersMe, &cmsAuthFailure{f: &authFailure{msg: "Missing or invalid credentials"}})
		return
	}
	s.cmsState.mu.Lock()
	out := p.user.json()
	s.cmsState.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleArticles(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSuffix(r.URL.Path, "/"), "/api/articles"), "/")
	write := r.Method == http.MethodPost
	switch {
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
	case write && id == "":
	default:
		writeStrapiError(w, http.StatusMethodNotAllowed, "MethodNotAllowedError", "Method Not Allowed")
		return
	}
	p, f := s.cmsAuthenticate(r)
	if f != nil {
		s.cmsUnauthorized(w, EndpointCMSArticles, f)
		return
	}
	if !p.can(write) {
		writeStrapiError(w, http.StatusForbidden, "ForbiddenError", "Forbidden")
		return
	}
	st := s.cmsState
	if write {
		var body struct {
			Data *struct {
				Title string `json:"title"`
				Slug  string `json:"slug"`
				Body  string `json:"body"`
			} `json:"data"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil || body.Data == nil {
			writeStrapiError(w, http.StatusBadRequest, "ValidationError", `Missing "data" payload in the request body`)
			return
		}
		if strings.TrimSpace(body.Data.Title) == "" {
			writeStrapiError(w, http.StatusBadRequest, "ValidationError", "title must be defined.")
			return
		}
		now := s.now()
		st.mu.Lock()
		a := &article{ID: st.nextArticle, DocumentID: documentID("article", strconv.Itoa(st.nextArticle), now.String()),
			Title: body.Data.Title, Slug: body.Data.Slug, Body: body.Data.Body, CreatedAt: now, UpdatedAt: now, Published: now}
		if a.Slug == "" {
			a.Slug = slugify(a.Title)
		}
		st.nextArticle++
		st.articles = append(st.articles, a)
		out := a.json()
		st.mu.Unlock()
		writeJSON(w, http.StatusCreated, ordered{{"data", out}, {"meta", map[string]any{}}})
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if id != "" {
		i := slices.IndexFunc(st.articles, func(a *article) bool { return a.DocumentID == id || strconv.Itoa(a.ID) == id })
		if i < 0 {
			writeStrapiError(w, http.StatusNotFound, "NotFoundError", "Not Found")
			return
		}
		writeJSON(w, http.StatusOK, ordered{{"data", st.articles[i].json()}, {"meta", map[string]any{}}})
		return
	}
	q := r.URL.Query()
	page, size := 1, 25
	if v, err := strconv.Atoi(q.Get("pagination[page]")); err == nil && v > 0 {
		page = v
	}
	if v, err := strconv.Atoi(q.Get("pagination[pageSize]")); err == nil && v > 0 {
		size = min(v, 100)
	}
	total := len(st.articles)
	from := min((page-1)*size, total)
	to := min(from+size, total)
	data := make([]any, 0, to-from)
	for _, a := range st.articles[from:to] {
		data = append(data, a.json())
	}
	writeJSON(w, http.StatusOK, ordered{
		{"data", data},
		{"meta", map[string]any{"pagination": ordered{
			{"page", page}, {"pageSize", size}, {"pageCount", (total + size - 1) / size}, {"total", total},
		}}},
	})
}

// handleStream sends n server-sent events, one per interval, flushing each.
func (s *Server) handleStream(w http.ResponseWriter, r *http.Request) {
	p, f := s.cmsAuthenticate(r)
	if f != nil {
		s.cmsUnauthorized(w, EndpointCMSStream, f)
		return
	}
	if !p.can(false) {
		writeStrapiError(w, http.StatusForbidden, "ForbiddenError", "Forbidden")
		return
	}
	q := r.URL.Query()
	n, interval := 5, 100*time.Millisecond
	if v := q.Get("n"); v != "" {
		x, err := strconv.Atoi(v)
		if err != nil || x < 1 || x > 100000 {
			writeStrapiError(w, http.StatusBadRequest, "ValidationError", "n must be between 1 and 100000")
			return
		}
		n = x
	}
	if v := q.Get("interval_ms"); v != "" {
		x, err := strconv.Atoi(v)
		if err != nil || x < 0 || x > 60000 {
			writeStrapiError(w, http.StatusBadRequest, "ValidationError", "interval_ms must be between 0 and 60000")
			return
		}
		interval = time.Duration(x) * time.Millisecond
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	stop := stopOf(r)
	for i := 1; i <= n; i++ {
		if i > 1 && interval > 0 {
			t := time.NewTimer(interval)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			case <-stop:
				t.Stop()
				return
			}
		}
		if _, err := fmt.Fprintf(w, "id: %d\nevent: tick\ndata: {\"n\":%d,\"of\":%d}\n\n", i, i, n); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// DownloadBytes fills p with the bytes /api/download serves from offset on.
func DownloadBytes(offset int64, p []byte) {
	for i := range p {
		o := offset + int64(i)
		p[i] = byte(o*131 + o/997)
	}
}

// handleDownload streams size deterministic bytes (see DownloadBytes) without buffering.
func (s *Server) handleDownload(w http.ResponseWriter, r *http.Request) {
	p, f := s.cmsAuthenticate(r)
	if f != nil {
		s.cmsUnauthorized(w, EndpointCMSDownload, f)
		return
	}
	if !p.can(false) {
		writeStrapiError(w, http.StatusForbidden, "ForbiddenError", "Forbidden")
		return
	}
	size, err := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
	if err != nil || size < 0 || size > 1<<36 {
		writeStrapiError(w, http.StatusBadRequest, "ValidationError", "size must be a number of bytes between 0 and 68719476736")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	stop := stopOf(r)
	buf := make([]byte, 32<<10)
	for off := int64(0); off < size; {
		select {
		case <-r.Context().Done():
			return
		case <-stop:
			return
		default:
		}
		chunk := buf[:min(int64(len(buf)), size-off)]
		DownloadBytes(off, chunk)
		if _, err := w.Write(chunk); err != nil {
			return
		}
		off += int64(len(chunk))
	}
}

// handleEcho describes the request it received (header names only, never values) and which
// account's token arrived, if any.
func (s *Server) handleEcho(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		names = append(names, k)
	}
	slices.Sort(names)
	out := ordered{
		{"method", r.Method}, {"path", r.URL.Path}, {"raw_query", r.URL.RawQuery}, {"query", r.URL.Query()},
		{"host", r.Host}, {"proto", r.Proto}, {"headers", names}, {"body_bytes", n},
	}
	authorized, kind := false, ""
	var oid, tid, upn, azp, scp any
	if bearerToken(r) != "" {
		p, f := s.cmsAuthenticate(r)
		if f == nil {
			authorized, kind = true, p.kind
			if p.kind == "entra" {
				oid, tid, azp = p.entra.oid, p.entra.tid, p.entra.azp
				upn, scp = p.entra.j.claim("preferred_username"), strings.Join(p.entra.scp, " ")
			} else {
				s.cmsState.mu.Lock()
				oid, upn = p.user.OID, p.user.Username
				s.cmsState.mu.Unlock()
			}
		} else {
			out = append(out, kv{"auth_error", f.f.msg})
		}
	}
	out = append(out, kv{"authorized", authorized}, kv{"auth", kind}, kv{"oid", oid}, kv{"tid", tid},
		kv{"preferred_username", upn}, kv{"azp", azp}, kv{"scp", scp})
	writeJSON(w, http.StatusOK, out)
}
