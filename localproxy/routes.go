package localproxy

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
	"golang.org/x/sync/singleflight"
)

type authMode uint8

const (
	authBearer authMode = iota
	authStrapi
	authNone
)

func (m authMode) String() string {
	switch m {
	case authStrapi:
		return config.AuthStrapi
	case authNone:
		return config.AuthNone
	}
	return config.AuthBearer
}

// RouteInfo describes a route for the UI and the status page.
type RouteInfo struct {
	// Name is the route's name.
	Name string `json:"name"`
	// Prefix is the path prefix, with a trailing slash ("/cms/").
	Prefix string `json:"prefix"`
	// Upstream is the upstream base URL.
	Upstream string `json:"upstream"`
	// Auth is bearer, strapi or none.
	Auth string `json:"auth"`
	// Scopes are the scopes of the route's tokens (bearer only).
	Scopes []string `json:"scopes,omitempty"`
	// Account is the account pinned to the route; empty means the active one.
	Account string `json:"account,omitempty"`
}

// route is a compiled config.Route.
type route struct {
	name          string
	prefix        string // "/cms/"
	prefixNoSlash string // "/cms" (matches exactly, forwarded as "/")
	upstream      *url.URL
	auth          authMode
	scopes        auth.Scopes
	account       string
	info          RouteInfo

	requests atomic.Int64
	// hdr caches the Authorization header of the last bearer token, so attaching it does
	// not allocate.
	hdr atomic.Pointer[bearerHeader]
	// dead is the Authorization value that was still refused after a retry: a request with
	// it gets the upstream's 401 without another forced refresh.
	dead atomic.Pointer[string]
	// strapi caches exchanged JWTs (auth strapi only).
	strapi *strapiCache
}

type bearerHeader struct {
	tok *auth.AccessToken
	hdr []string
}

// compileRoutes validates routes and sorts them longest prefix first.
func compileRoutes(in []config.Route) ([]*route, error) {
	var out []*route
	names := map[string]bool{}
	prefixes := map[string]string{}
	for i, cr := range in {
		rt, err := compileRoute(cr)
		if err != nil {
			label := cr.Name
			if label == "" {
				label = fmt.Sprintf("#%d", i+1)
			}
			return nil, fmt.Errorf("proxy route %s: %w", label, err)
		}
		if names[rt.name] {
			return nil, fmt.Errorf("proxy route %s: the name is used twice", rt.name)
		}
		if other, ok := prefixes[rt.prefix]; ok {
			return nil, fmt.Errorf("proxy route %s: prefix %s is already used by route %s", rt.name, rt.prefix, other)
		}
		names[rt.name] = true
		prefixes[rt.prefix] = rt.name
		out = append(out, rt)
	}
	slices.SortStableFunc(out, func(a, b *route) int { return len(b.prefix) - len(a.prefix) })
	return out, nil
}

func compileRoute(cr config.Route) (*route, error) {
	name := strings.TrimSpace(cr.Name)
	if name == "" {
		return nil, fmt.Errorf("the route has no name")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return nil, fmt.Errorf("name %q: use letters, digits, '-', '_' or '.'", name)
		}
	}
	prefix, err := normalizePrefix(cr.Prefix)
	if err != nil {
		return nil, err
	}
	var mode authMode
	switch strings.ToLower(strings.TrimSpace(cr.Auth)) {
	case "", config.AuthBearer:
		mode = authBearer
	case config.AuthStrapi:
		mode = authStrapi
	case config.AuthNone:
		mode = authNone
	default:
		return nil, fmt.Errorf("auth %q: use bearer, strapi or none", cr.Auth)
	}
	up, err := parseUpstream(cr.Upstream, mode)
	if err != nil {
		return nil, err
	}
	rt := &route{
		name:          name,
		prefix:        prefix,
		prefixNoSlash: strings.TrimSuffix(prefix, "/"),
		upstream:      up,
		auth:          mode,
		account:       strings.TrimSpace(cr.Account),
	}
	if mode == authBearer {
		rt.scopes = auth.NewScopes(cr.Scopes...)
	}
	if mode == authStrapi {
		rt.strapi = &strapiCache{m: map[string]*strapiJWT{}, refused: map[string]string{}}
	}
	rt.info = RouteInfo{
		Name:     name,
		Prefix:   prefix,
		Upstream: up.String(),
		Auth:     mode.String(),
		Scopes:   rt.scopes.List(),
		Account:  rt.account,
	}
	return rt, nil
}

// normalizePrefix checks a route prefix and gives it a trailing slash.
func normalizePrefix(p string) (string, error) {
	p = strings.TrimSpace(p)
	if p == "" || p[0] != '/' {
		return "", fmt.Errorf("prefix %q must start with '/'", p)
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`%?#\;"<>`, c) >= 0 {
			return "", fmt.Errorf("prefix %q: character %q is not allowed", p, c)
		}
	}
	if strings.Contains(p, "//") || !pathOK(p, "") {
		return "", fmt.Errorf("prefix %q must be a clean path (no '//', '.' or '..' segments)", p)
	}
	if strings.HasPrefix(p, companionPrefix) {
		return "", fmt.Errorf("prefix %q is reserved for the proxy's own pages", p)
	}
	return p, nil
}

func parseUpstream(raw string, mode authMode) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("upstream %q must be an absolute http or https URL", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("upstream %q must have no user info, query or fragment", raw)
	}
	if u.Scheme == "http" && mode != authNone && !loopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("upstream %q would receive tokens over plain http: use https (plain http is allowed for loopback hosts only)", raw)
	}
	return u, nil
}

func loopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// match returns the route whose prefix holds p (longest first), or nil.
func (s *Server) match(p string) *route {
	for _, rt := range s.routes {
		if strings.HasPrefix(p, rt.prefix) || p == rt.prefixNoSlash {
			return rt
		}
	}
	return nil
}

// strip returns the upstream-relative path of p (decoded) and raw (escaped, may be empty).
func (rt *route) strip(p, raw string) (string, string) {
	if len(p) < len(rt.prefix) {
		p = "/"
	} else {
		p = p[len(rt.prefix)-1:]
	}
	if raw != "" {
		if len(raw) < len(rt.prefix) {
			raw = "/"
		} else {
			raw = raw[len(rt.prefix)-1:]
		}
	}
	return p, raw
}

// rawInPrefix reports whether the escaped path (if the client sent one that differs from the
// default encoding) begins with the route prefix as well, so stripping it is safe.
func (rt *route) rawInPrefix(raw string) bool {
	return raw == "" || raw == rt.prefixNoSlash || strings.HasPrefix(raw, rt.prefix)
}

// pathOK reports whether the decoded path p and its escaped form raw (empty when the default
// encoding) are safe to route: absolute, no "." or ".." segments (also "..;"), no backslash or
// NUL, no encoded separators or dots that a second decoding upstream could turn into ones.
func pathOK(p, raw string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case 0, '\\':
			return false
		case '.':
			if p[i-1] != '/' {
				continue
			}
			j := i + 1
			if j < len(p) && p[j] == '.' {
				j++
			}
			if j == len(p) || p[j] == '/' || p[j] == ';' {
				return false
			}
		case '%':
			if encodedSpecial(p[i+1:]) {
				return false
			}
		}
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] == '%' && encodedSpecial(raw[i+1:]) {
			return false
		}
	}
	return true
}

// encodedSpecial reports whether s begins with the hex code of '.', '/', '\' or NUL.
func encodedSpecial(s string) bool {
	if len(s) < 2 {
		return false
	}
	a, b := s[0], s[1]|0x20
	switch a {
	case '2':
		return b == 'e' || b == 'f'
	case '5':
		return b == 'c'
	case '0':
		return b == '0'
	}
	return false
}

// strapiCache holds the Strapi JWTs of one route, per account ID.
type strapiCache struct {
	mu sync.RWMutex
	m  map[string]*strapiJWT
	sf singleflight.Group
	// refused: per account id, a Graph token Strapi refused even though it was fresh, so it
	// is not refreshed again for every request.
	refused map[string]string
}
