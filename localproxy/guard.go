package localproxy

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
)

// Error codes of the refusals made by the guards (HTTP 403).
const (
	codeForbiddenHost   = "forbidden_host"
	codeForbiddenOrigin = "forbidden_origin"
	codeCrossSite       = "cross_site"
	codeBadTarget       = "bad_request_target"
	codeBadPath         = "bad_path"
	codeMissingKey      = "missing_key"
)

var guardMessages = map[string]string{
	codeForbiddenHost:   "the Host header must be localhost, 127.0.0.1 or [::1] with the proxy's port; other names are refused (DNS rebinding protection)",
	codeForbiddenOrigin: "this web page's origin is not allowed to call the proxy: add it to the proxy's allowed origins in the settings",
	codeCrossSite:       "cross-site requests from web pages are refused: call the proxy from an allowed origin",
	codeBadTarget:       "the proxy only serves its own routes: absolute-form request targets, CONNECT and OPTIONS * are refused (it is not an open proxy)",
	codeBadPath:         "the path must stay inside a route prefix: '.' and '..' segments, backslashes and encoded '/', '\\' or '.' are refused",
	codeMissingKey:      "this proxy requires a client key: send it in the X-Entra-Proxy-Key header (shown in the app's Proxy window)",
}

// validHost reports whether host (a Host header) names a loopback host with the given port:
// localhost, 127.0.0.1 or [::1]. Without a port it is valid only when port is 80.
func validHost(host string, port int) bool {
	name, p := host, ""
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return false
		}
		name, p = host[:end+1], host[end+1:]
		if p != "" {
			if p[0] != ':' {
				return false
			}
			p = p[1:]
		}
	} else if i := strings.IndexByte(host, ':'); i >= 0 {
		name, p = host[:i], host[i+1:]
	}
	if !(name == "127.0.0.1" || name == "[::1]" || strings.EqualFold(name, "localhost")) {
		return false
	}
	if p == "" {
		return port == 80 && !strings.HasSuffix(host, ":")
	}
	return portIs(p, port)
}

// portIs reports whether p is the decimal form of port (no sign, no leading zeros).
func portIs(p string, port int) bool {
	if len(p) == 0 || len(p) > 5 || (p[0] == '0' && len(p) > 1) {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n == port
}

// originPattern is a compiled allowed origin: "scheme://host:port" or "scheme://host:*".
type originPattern struct {
	scheme, host string
	port         string // "" means the scheme's default port, "*" any port
}

// defaultOrigins are the loopback origins of any port.
var defaultOrigins = []string{
	"http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*",
	"https://localhost:*", "https://127.0.0.1:*", "https://[::1]:*",
}

func compileOrigins(in []string) ([]originPattern, error) {
	if len(in) == 0 {
		in = defaultOrigins
	}
	out := make([]originPattern, 0, len(in))
	for _, o := range in {
		p, err := parseOriginPattern(strings.TrimSpace(o))
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parseOriginPattern(o string) (originPattern, error) {
	scheme, host, port, ok := splitOrigin(o)
	if !ok || host == "*" || strings.Contains(host, "*") {
		return originPattern{}, fmt.Errorf("allowed origin %q: use scheme://host:port or scheme://host:* (no wildcard hosts, no path)", o)
	}
	if scheme != "http" && scheme != "https" {
		return originPattern{}, fmt.Errorf("allowed origin %q: the scheme must be http or https", o)
	}
	if port != "*" && port != "" && !validPort(port) {
		return originPattern{}, fmt.Errorf("allowed origin %q: bad port", o)
	}
	return originPattern{scheme: strings.ToLower(scheme), host: strings.ToLower(host), port: canonicalPort(scheme, port)}, nil
}

func validPort(p string) bool {
	if len(p) == 0 || len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// canonicalPort drops the scheme's default port so "http://h:80" equals "http://h".
func canonicalPort(scheme, port string) string {
	if (port == "80" && strings.EqualFold(scheme, "http")) || (port == "443" && strings.EqualFold(scheme, "https")) {
		return ""
	}
	return port
}

// splitOrigin splits "scheme://host[:port]" without allocating. A path, query, user info or an
// empty host makes it fail.
func splitOrigin(o string) (scheme, host, port string, ok bool) {
	i := strings.Index(o, "://")
	if i <= 0 {
		return "", "", "", false
	}
	scheme, hp := o[:i], o[i+3:]
	if hp == "" || strings.ContainsAny(hp, "/?#@\\ ") {
		return "", "", "", false
	}
	if hp[0] == '[' {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", "", "", false
		}
		host, port = hp[:end+1], hp[end+1:]
		if port != "" {
			if port[0] != ':' {
				return "", "", "", false
			}
			port = port[1:]
			if port == "" {
				return "", "", "", false
			}
		}
		return scheme, host, port, true
	}
	if j := strings.IndexByte(hp, ':'); j >= 0 {
		host, port = hp[:j], hp[j+1:]
		if port == "" || host == "" {
			return "", "", "", false
		}
		return scheme, host, port, true
	}
	return scheme, hp, "", true
}

// validOrigin reports whether origin (an Origin header) matches one of the allowed patterns.
// "null" and anything malformed never match.
func validOrigin(origin string, allowed []originPattern) bool {
	scheme, host, port, ok := splitOrigin(origin)
	if !ok {
		return false
	}
	if port != "" && !validPort(port) {
		return false
	}
	port = canonicalPort(scheme, port)
	for _, p := range allowed {
		if !strings.EqualFold(scheme, p.scheme) || !strings.EqualFold(host, p.host) {
			continue
		}
		if p.port == "*" || p.port == port {
			return true
		}
	}
	return false
}

// keyOK compares the client key in constant time.
func (s *Server) keyOK(r *http.Request) bool {
	v := r.Header[HeaderKey]
	if len(v) != 1 {
		return false
	}
	var buf [128]byte
	got := v[0]
	if len(got) > len(buf) {
		return false
	}
	b := append(buf[:0], got...)
	return subtle.ConstantTimeCompare(b, s.key) == 1
}

// CORS answers.
var (
	varyOrigin    = []string{"Origin"}
	varyPreflight = []string{"Origin, Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network"}
	allowMethods  = []string{"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"}
	maxAge        = []string{"600"}
	trueValue     = []string{"true"}
	baseAllowed   = "Content-Type, X-Entra-Account, X-Entra-Proxy-Key"
)

// allowHeaders is the Access-Control-Allow-Headers answer to a preflight that asked for
// requested: the proxy's own headers plus any requested one that the proxy does not drop or
// that is not a credential.
func allowHeaders(requested string) string {
	out := baseAllowed
	for h := range strings.SplitSeq(requested, ",") {
		h = strings.TrimSpace(h)
		if h == "" || !tokenChars(h) {
			continue
		}
		switch strings.ToLower(h) {
		case "content-type", "x-entra-account", "x-entra-proxy-key",
			"authorization", "cookie", "proxy-authorization", "host":
			continue
		}
		lh := strings.ToLower(h)
		if strings.HasPrefix(lh, "proxy-") || strings.HasPrefix(lh, "sec-") {
			continue
		}
		out += ", " + h
	}
	return out
}

func tokenChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// preflight answers a CORS preflight from an allowed origin.
func (s *Server) preflight(ex *exchange, r *http.Request) {
	h := ex.Header()
	h["Vary"] = varyPreflight
	h["Access-Control-Allow-Methods"] = allowMethods
	h["Access-Control-Allow-Headers"] = []string{allowHeaders(strings.Join(r.Header["Access-Control-Request-Headers"], ","))}
	h["Access-Control-Max-Age"] = maxAge
	if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
		h["Access-Control-Allow-Private-Network"] = trueValue
	}
	ex.WriteHeader(http.StatusNoContent)
}
