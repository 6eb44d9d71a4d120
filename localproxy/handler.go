package localproxy

import (
	"context"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/entra-companion/entra-companion/auth"
)

const companionPrefix = "/_companion/"

// exchange is the state of one request. It is the request's context (so the transport, the
// rewrite and the error handler find it without a context.WithValue) and the response writer
// (so the access log learns the status and the byte count). One allocation per request.
type exchange struct {
	context.Context
	w http.ResponseWriter

	start     time.Time
	route     *route
	account   string // as requested: X-Entra-Account, else the route's account, else "" (active)
	accountID string // the account the token belonged to, once known
	origin    string // the allowed Origin, echoed in CORS headers
	inHost    string // the Host the client used (validated), for rewritten redirects

	tok   *auth.AccessToken // bearer token of the latest attempt
	graph *auth.AccessToken // Graph token of the latest strapi exchange lookup
	jwt   *strapiJWT        // Strapi JWT of the latest attempt

	status int
	bytes  int64
	wrote  bool
	done   bool   // the handler returned normally (not aborted by a panic)
	code   string // error code of an answer the proxy made itself
}

type exchangeKey struct{}

// Value makes the exchange findable from derived contexts.
func (e *exchange) Value(key any) any {
	if _, ok := key.(exchangeKey); ok {
		return e
	}
	return e.Context.Value(key)
}

func exchangeFrom(ctx context.Context) *exchange {
	if e, ok := ctx.(*exchange); ok {
		return e
	}
	e, _ := ctx.Value(exchangeKey{}).(*exchange)
	return e
}

// Header returns the response header map.
func (e *exchange) Header() http.Header { return e.w.Header() }

// WriteHeader records the final status.
func (e *exchange) WriteHeader(code int) {
	if !e.wrote && (code >= 200 || code == http.StatusSwitchingProtocols) {
		e.wrote = true
		e.status = code
	}
	e.w.WriteHeader(code)
}

// Write counts the body bytes.
func (e *exchange) Write(b []byte) (int, error) {
	if !e.wrote {
		e.wrote = true
		e.status = http.StatusOK
	}
	n, err := e.w.Write(b)
	e.bytes += int64(n)
	return n, err
}

// Flush sends buffered data to the client (streams, SSE).
func (e *exchange) Flush() {
	if f, ok := e.w.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the server's writer (hijack for upgrades).
func (e *exchange) Unwrap() http.ResponseWriter { return e.w }

// accountLabel names the account in error answers and logs.
func (e *exchange) accountLabel() string {
	switch {
	case e.account != "":
		return e.account
	case e.accountID != "":
		return e.accountID
	}
	return "active"
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	ex := &exchange{Context: r.Context(), w: w, start: s.now(), inHost: r.Host}
	defer s.finish(ex, r) // also when the ReverseProxy aborts a stream (panic http.ErrAbortHandler)
	s.serve(ex, r)
	ex.done = true
}

func (s *Server) serve(ex *exchange, r *http.Request) {
	// Request target: origin-form only.
	if r.Method == http.MethodConnect || r.RequestURI == "" || r.RequestURI[0] != '/' {
		s.refuse(ex, codeBadTarget)
		return
	}
	if !validHost(r.Host, s.expectedPort(r)) {
		s.refuse(ex, codeForbiddenHost)
		return
	}
	if o, ok := r.Header["Origin"]; ok {
		if len(o) != 1 || !validOrigin(o[0], s.origins) {
			s.refuse(ex, codeForbiddenOrigin)
			return
		}
		ex.origin = o[0]
		h := ex.Header()
		h["Access-Control-Allow-Origin"] = o
		h["Vary"] = varyOrigin
	}
	if ex.origin == "" {
		if v := r.Header["Sec-Fetch-Site"]; len(v) > 0 && v[0] == "cross-site" {
			s.refuse(ex, codeCrossSite)
			return
		}
	}
	if ex.origin != "" && r.Method == http.MethodOptions && r.Header["Access-Control-Request-Method"] != nil {
		s.preflight(ex, r)
		return
	}
	if s.key != nil && !s.keyOK(r) {
		s.refuse(ex, codeMissingKey)
		return
	}
	p := r.URL.Path
	if strings.HasPrefix(p, companionPrefix) {
		s.companion(ex, r)
		return
	}
	if !pathOK(p, r.URL.RawPath) {
		s.refuse(ex, codeBadPath)
		return
	}
	rt := s.match(p)
	if rt == nil {
		s.writeError(ex, http.StatusNotFound, "no_route", s.noRouteMsg)
		return
	}
	if !rt.rawInPrefix(r.URL.RawPath) {
		s.refuse(ex, codeBadPath)
		return
	}
	ex.route = rt
	if v := r.Header[HeaderAccount]; len(v) > 0 && v[0] != "" {
		ex.account = v[0]
	} else {
		ex.account = rt.account
	}
	s.proxy.ServeHTTP(ex, r.WithContext(ex))
}

// refuse answers a guard refusal.
func (s *Server) refuse(ex *exchange, code string) {
	s.stats.refused.Add(1)
	s.writeError(ex, http.StatusForbidden, code, guardMessages[code])
}

// rewrite is the ReverseProxy's Rewrite: strip the prefix, point at the upstream, drop the
// client's credentials and the proxy's own headers.
func (s *Server) rewrite(pr *httputil.ProxyRequest) {
	ex := exchangeFrom(pr.In.Context())
	rt := ex.route
	out := pr.Out
	out.URL.Path, out.URL.RawPath = rt.strip(pr.In.URL.Path, pr.In.URL.RawPath)
	pr.SetURL(rt.upstream)
	out.Host = rt.upstream.Host
	h := out.Header
	delete(h, "Authorization")
	delete(h, "Cookie")
	delete(h, "Proxy-Authorization")
	delete(h, HeaderKey)
	delete(h, HeaderAccount)
}

// modifyResponse replaces the upstream's CORS answer by the proxy's and keeps redirects into
// the upstream on the proxy.
func (s *Server) modifyResponse(res *http.Response) error {
	ex := exchangeFrom(res.Request.Context())
	if ex == nil {
		return nil
	}
	if ex.origin != "" {
		delete(res.Header, "Access-Control-Allow-Origin")
		delete(res.Header, "Access-Control-Allow-Credentials")
	}
	if res.StatusCode >= 300 && res.StatusCode < 400 && ex.route != nil {
		if loc := res.Header["Location"]; len(loc) == 1 {
			if nl, ok := rewriteLocation(loc[0], ex.route, ex.inHost); ok {
				res.Header["Location"] = []string{nl}
			}
		}
	}
	return nil
}

// rewriteLocation maps a redirect into the route's upstream to the proxy URL of the same path.
// A redirect elsewhere is left alone (the client follows it without the proxy's token).
func rewriteLocation(loc string, rt *route, proxyHost string) (string, bool) {
	u, err := url.Parse(loc)
	if err != nil {
		return "", false
	}
	up := rt.upstream
	if u.Scheme != "" || u.Host != "" {
		if !strings.EqualFold(u.Scheme, up.Scheme) || !sameHost(u, up) || u.User != nil {
			return "", false
		}
	} else if !strings.HasPrefix(u.Path, "/") {
		return "", false // relative: resolves against the proxy URL already
	}
	p := u.EscapedPath()
	base := strings.TrimSuffix(up.EscapedPath(), "/")
	var rest string
	switch {
	case p == base:
		rest = "/"
	case strings.HasPrefix(p, base+"/"):
		rest = p[len(base):]
	default:
		return "", false
	}
	nl := "http://" + proxyHost + rt.prefixNoSlash + rest
	if u.RawQuery != "" || u.ForceQuery {
		nl += "?" + u.RawQuery
	}
	if u.Fragment != "" {
		nl += "#" + u.EscapedFragment()
	}
	return nl, true
}

func sameHost(a, b *url.URL) bool {
	if !strings.EqualFold(a.Hostname(), b.Hostname()) {
		return false
	}
	return canonicalPort(a.Scheme, a.Port()) == canonicalPort(b.Scheme, b.Port())
}

// companion serves /_companion/health and /_companion/status.
func (s *Server) companion(ex *exchange, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		ex.Header().Set("Allow", "GET, HEAD")
		s.writeError(ex, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		return
	}
	switch r.URL.Path {
	case companionPrefix + "health":
		s.writeJSON(ex, http.StatusOK, healthOK)
	case companionPrefix + "status":
		s.writeJSON(ex, http.StatusOK, s.Status())
	default:
		s.writeError(ex, http.StatusNotFound, "no_route", "the proxy's own pages are /_companion/health and /_companion/status")
	}
}

var healthOK = struct {
	Status string `json:"status"`
}{"ok"}
