package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits that keep a settings file, and what is built from it, small.
const (
	maxString   = 4 << 10 // bytes in any string
	maxList     = 100     // routes, origins, scopes
	maxKeychain = 64      // characters in keychain_service
)

// Validate checks c as Parse and Default return it (every default filled in)
// and returns every problem found, each an [*Error] naming the key, joined with
// errors.Join. It returns nil if c is good to use and to save.
func (c *Config) Validate() error {
	if c == nil {
		return &Error{Msg: "no settings: the config is nil"}
	}
	return joinErrors(validate(c, "", nil))
}

// checker collects the problems of one Config.
type checker struct {
	file string
	pos  positions // where keys are in the file; nil for a Config on its own
	errs []*Error
}

// validate returns c's problems; pos, if not nil, gives their lines in file.
func validate(c *Config, file string, pos positions) []*Error {
	ck := &checker{file: file, pos: pos}
	ck.clientID(c.ClientID)
	ck.authority(c.Authority)
	ck.cloud(c.Cloud)
	ck.graphURL(c.GraphURL)
	ck.scopes("scopes", c.Scopes)
	ck.keychainService(c.KeychainService)
	ck.listen(c.Proxy.Listen)
	ck.origins(c.Proxy.AllowedOrigins)
	ck.routes(c)
	return ck.errs
}

// add records a problem at key.
func (ck *checker) add(key, format string, args ...any) {
	e := &Error{File: ck.file, Key: key, Msg: fmt.Sprintf(format, args...)}
	if ck.pos != nil {
		p := ck.pos.of(key)
		e.Line, e.Column = p.line, p.col
	}
	ck.errs = append(ck.errs, e)
}

// lineNote returns " (line N)" for key when its line is known.
func (ck *checker) lineNote(key string) string {
	if ck.pos == nil {
		return ""
	}
	if p := ck.pos.of(key); p.line > 0 {
		return fmt.Sprintf(" (line %d)", p.line)
	}
	return ""
}

// empty reports key as empty, or as missing when the file does not set it.
func (ck *checker) empty(key, todo string) {
	state := "is empty"
	if ck.pos != nil {
		if _, ok := ck.pos[key]; !ok {
			state = "is missing"
		}
	}
	ck.add(key, "%s %s: %s", key, state, todo)
}

// text checks what every string must be: not too long, UTF-8, without
// control characters. It reports false if s failed.
func (ck *checker) text(key, s string) bool {
	switch {
	case len(s) > maxString:
		ck.add(key, "%s is %d bytes long, more than the limit of %d: shorten it", key, len(s), maxString)
	case !utf8.ValidString(s):
		ck.add(key, "%s is not valid UTF-8: save the file as UTF-8", key)
	default:
		for _, r := range s {
			if unicode.IsControl(r) {
				ck.add(key, "%s %s contains the control character %U: remove it", key, quote(s), r)
				return false
			}
		}
		return true
	}
	return false
}

// list checks the length of a list; it reports false if l is too long.
func (ck *checker) list(key string, n int, what string) bool {
	if n > maxList {
		ck.add(key, "%s has %d %s, more than the limit of %d: remove some", key, n, what, maxList)
		return false
	}
	return true
}

func (ck *checker) clientID(s string) {
	const key = "client_id"
	switch {
	case !ck.text(key, s):
	case s == "":
		ck.empty(key, "set it to the application (client) id of your app registration, or remove the line to use the default")
	case !isGUID(s):
		ck.add(key, "%s %s is not a GUID: use the application (client) id of your app registration, like %q", key, quote(s), DefaultClientID)
	}
}

// isGUID reports whether s is written like 14d82eec-204b-4c2f-b7e8-296a70dab67e.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func (ck *checker) authority(s string) {
	const key = "authority"
	example := DefaultAuthority
	if !ck.text(key, s) {
		return
	}
	if s == "" {
		ck.empty(key, fmt.Sprintf("set it to an authority like %q, or remove the line to use the default", example))
		return
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		ck.add(key, "%s %s is not an absolute URL: use one like %q", key, quote(s), example)
	case u.Scheme != "https":
		ck.add(key, "%s %s must use https: use one like %q", key, quote(s), example)
	case u.User != nil:
		ck.add(key, "%s %s must not contain a user name or password: remove the part before \"@\"", key, quote(s))
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		ck.add(key, "%s %s must not have a query or fragment: remove everything from \"?\" or \"#\" on", key, quote(s))
	case strings.Trim(u.Path, "/") == "":
		ck.add(key, "%s %s has no tenant: add one after the host, like %q, or a tenant id or domain", key, quote(s), example)
	}
}

func (ck *checker) cloud(s string) {
	const key = "cloud"
	if !ck.text(key, s) {
		return
	}
	if _, ok := clouds[s]; !ok {
		if s == "" {
			ck.empty(key, `use "global", "usgov" or "china", or remove the line to use "global"`)
			return
		}
		ck.add(key, `%s %s is not a cloud: use "global", "usgov" or "china"`, key, quote(s))
	}
}

func (ck *checker) graphURL(s string) {
	const key = "graph_url"
	if !ck.text(key, s) {
		return
	}
	example := defaultGraphURL(CloudGlobal)
	if s == "" {
		ck.empty(key, fmt.Sprintf("set it to a Graph URL like %q, or remove the line to use the cloud's", example))
		return
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		ck.add(key, "%s %s is not an absolute URL: use one like %q", key, quote(s), example)
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		ck.add(key, "%s %s must use https (http is only allowed for 127.0.0.1, [::1] and localhost): use one like %q", key, quote(s), example)
	case u.Scheme != "https" && u.Scheme != "http":
		ck.add(key, "%s %s must use https: use one like %q", key, quote(s), example)
	case u.User != nil:
		ck.add(key, "%s %s must not contain a user name or password: remove the part before \"@\"", key, quote(s))
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		ck.add(key, "%s %s must not have a query or fragment: remove everything from \"?\" or \"#\" on", key, quote(s))
	}
}

// isLoopbackHost reports whether host (without brackets) is a loopback name
// the proxy may listen on.
func isLoopbackHost(host string) bool {
	return host == "127.0.0.1" || host == "::1" || host == "localhost"
}

// scopes checks a list of OAuth scopes.
func (ck *checker) scopes(key string, list []string) {
	if !ck.list(key, len(list), "scopes") {
		return
	}
	for i, s := range list {
		k := fmt.Sprintf("%s[%d]", key, i)
		switch {
		case !ck.text(k, s):
		case s == "":
			ck.add(k, "%s is empty: remove it", k)
		case !isScope(s):
			ck.add(k, `%s %s is not a scope: scopes have no spaces, quotes or backslashes; write each as its own string, like ["Mail.Read", "Files.Read"]`, k, quote(s))
		}
	}
}

// isScope reports whether s is an OAuth scope token (RFC 6749, section 3.3).
func isScope(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return s != ""
}

func (ck *checker) keychainService(s string) {
	const key = "keychain_service"
	switch {
	case !ck.text(key, s):
	case s == "":
		ck.empty(key, fmt.Sprintf("set it, or remove the line to use %q", DefaultKeychainService))
	case utf8.RuneCountInString(s) > maxKeychain:
		ck.add(key, "%s is %d characters long, more than the limit of %d: shorten it", key, utf8.RuneCountInString(s), maxKeychain)
	default:
		for _, r := range s {
			if !unicode.IsPrint(r) {
				ck.add(key, "%s %s contains the unprintable character %U: remove it", key, quote(s), r)
				return
			}
		}
	}
}

func (ck *checker) listen(s string) {
	const key = "proxy.listen"
	if !ck.text(key, s) {
		return
	}
	if s == "" {
		ck.empty(key, fmt.Sprintf("set it to a loopback address like %q, or remove the line to use it", DefaultListen))
		return
	}
	host, port, err := net.SplitHostPort(s)
	switch {
	case err != nil:
		ck.add(key, "%s %s is not host:port: use one like %q or \"[::1]:8631\"", key, quote(s), DefaultListen)
	case !isLoopbackHost(host):
		ck.add(key, "%s %s is not a loopback address: use 127.0.0.1 or [::1]", key, quote(s))
	case !isPort(port, true):
		ck.add(key, "%s %s has no valid port: use a number from 1 to 65535, or 0 to pick a free port", key, quote(s))
	}
}

// isPort reports whether s is a decimal port number, 0 allowed if zero is set.
func isPort(s string, zero bool) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	n, _ := strconv.Atoi(s)
	return n <= 65535 && (zero || n > 0)
}

func (ck *checker) origins(list []string) {
	const key = "proxy.allowed_origins"
	if !ck.list(key, len(list), "origins") {
		return
	}
	for i, s := range list {
		k := fmt.Sprintf("%s[%d]", key, i)
		if !ck.text(k, s) {
			continue
		}
		if msg := checkOrigin(s); msg != "" {
			ck.add(k, "%s %s %s", k, quote(s), msg)
		}
	}
}

// checkOrigin returns what is wrong with an allowed origin, or "".
func checkOrigin(s string) string {
	const like = `like "http://localhost:3000" or "http://localhost:*"`
	switch s {
	case "":
		return "is empty: remove it, or write an origin " + like
	case "*":
		return "would let every web site you visit call the proxy with your tokens: list the origins of your own apps instead, " + like
	case "null":
		return `is the origin of sandboxed pages and local files, which any site can create: list the origins of your own apps instead, ` + like
	}
	if s != strings.ToLower(s) {
		return "has capital letters: write it in lowercase, as browsers send it"
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !isScheme(scheme) {
		return "is not an origin: write scheme://host[:port], " + like
	}
	if strings.ContainsAny(rest, "/?#@ \\") {
		return "is not an origin: write only scheme://host[:port], without a path (not even a trailing \"/\"), " + like
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "has an unclosed \"[\": write IPv6 hosts like \"http://[::1]:*\""
		}
		host, port = rest[1:end], rest[end+1:]
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return "has no valid IPv6 address in brackets: write it like \"http://[::1]:*\""
		}
		if port != "" && !strings.HasPrefix(port, ":") {
			return "is not an origin: write scheme://host[:port], " + like
		}
		port = strings.TrimPrefix(port, ":")
		if port == "" && strings.HasSuffix(rest, ":") {
			return "has an empty port: write a port from 1 to 65535, or \"*\" for any"
		}
	} else {
		if i := strings.LastIndexByte(rest, ':'); i >= 0 {
			host, port = rest[:i], rest[i+1:]
			if port == "" {
				return "has an empty port: write a port from 1 to 65535, or \"*\" for any"
			}
		}
		if !isHostname(host) {
			return "has no valid host: write scheme://host[:port], " + like
		}
	}
	if port != "" && port != "*" && !isPort(port, false) {
		return "has no valid port: write a port from 1 to 65535, or \"*\" for any"
	}
	return ""
}

// isScheme reports whether s is a lowercase URL scheme.
func isScheme(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// isHostname reports whether s is a lowercase DNS name or IPv4 address.
func isHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// routeKey is the key of the i-th route.
func routeKey(i int) string { return fmt.Sprintf("proxy.routes[%d]", i) }

// reserved is the path the proxy keeps for its own pages.
const reserved = "/_companion/"

func (ck *checker) routes(c *Config) {
	rs := c.Proxy.Routes
	if !ck.list("proxy.routes", len(rs), "routes") {
		return
	}
	names := map[string]int{}
	for i := range rs {
		r := &rs[i]
		key := routeKey(i)

		if ck.text(key+".name", r.Name) {
			ck.routeName(key+".name", r.Name)
			if j, dup := names[r.Name]; dup && r.Name != "" {
				ck.add(key+".name", "%s.name %s is already the name of %s%s: give each route its own name", key, quote(r.Name), routeKey(j), ck.lineNote(routeKey(j)))
			} else {
				names[r.Name] = i
			}
		}

		if ck.text(key+".prefix", r.Prefix) {
			if msg := checkPrefix(r.Prefix); msg != "" {
				if r.Prefix == "" {
					ck.empty(key+".prefix", `set it to the path the route serves, like "/cms/"`)
				} else {
					ck.add(key+".prefix", "%s.prefix %s %s", key, quote(r.Prefix), msg)
				}
			} else {
				ck.overlap(rs, i)
			}
		}

		if ck.text(key+".upstream", r.Upstream) {
			ck.upstream(key+".upstream", r.Upstream)
		}

		authOK := ck.text(key+".auth", r.Auth)
		switch {
		case !authOK:
		case r.Auth == "":
			ck.empty(key+".auth", `use "bearer", "strapi" or "none"`)
		case r.Auth != AuthBearer && r.Auth != AuthStrapi && r.Auth != AuthNone:
			ck.add(key+".auth", `%s.auth %s is not an auth mode: use "bearer", "strapi" or "none"`, key, quote(r.Auth))
			authOK = false
		}

		ck.scopes(key+".scopes", r.Scopes)
		if authOK {
			switch {
			case r.Auth == AuthBearer && len(r.Scopes) == 0:
				ck.add(key+".scopes", `%s.scopes is empty: auth "bearer" needs the scopes of the token to send, like ["api://<app-id>/.default"] (only a route to Graph gets %q by default)`, key, c.GraphScope())
			case r.Auth == AuthStrapi && len(r.Scopes) > 0:
				ck.add(key+".scopes", `%s.scopes is set, but auth "strapi" takes no scopes (it exchanges a Graph token for a Strapi JWT): remove scopes`, key)
			case r.Auth == AuthNone && len(r.Scopes) > 0:
				ck.add(key+".scopes", `%s.scopes is set, but auth "none" sends no token: remove scopes, or use auth "bearer"`, key)
			}
		}

		if r.Account != "" && ck.text(key+".account", r.Account) {
			if strings.IndexFunc(r.Account, unicode.IsSpace) >= 0 || strings.IndexFunc(r.Account, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
				ck.add(key+".account", `%s.account %s is not an account: use its user name (like "ada@contoso.com") or its id, or remove the line to use the active account`, key, quote(r.Account))
			}
		}
	}
}

func (ck *checker) routeName(key, s string) {
	if s == "" {
		ck.empty(key, `name the route with lowercase letters, digits and dashes, like "cms"`)
		return
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			ck.add(key, `%s %s may only have lowercase letters, digits and dashes: use a name like "cms"`, key, quote(s))
			return
		}
	}
}

// checkPrefix returns what is wrong with a route prefix, or "".
func checkPrefix(p string) string {
	switch {
	case p == "":
		return "is empty"
	case !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/"):
		return `must start and end with "/", like "/cms/"`
	case strings.Contains(p, "//"):
		return `must not contain "//": write one "/" between path segments`
	case strings.Contains(p, ".."), strings.Contains(p, "/./"):
		return `must not contain "." or ".." segments: write the path as it is after cleaning`
	case strings.HasPrefix(p, reserved):
		return `is inside /_companion/, the proxy's own status pages: use another prefix`
	case strings.HasPrefix(reserved, p):
		return `would also cover /_companion/, the proxy's own status pages: use a longer prefix, like "/api/"`
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("/-._~!$&'()*+,;=:@", c) >= 0) {
			return fmt.Sprintf("contains %s: a prefix may have letters, digits, \"/\" and -._~!$&'()*+,;=:@ (no spaces, \"%%\", \"?\" or \"#\")", quote(string(rune(c))))
		}
	}
	return ""
}

// overlap reports route i if its prefix equals, contains or is contained in
// the prefix of a route before it.
func (ck *checker) overlap(rs []Route, i int) {
	p := rs[i].Prefix
	key := routeKey(i) + ".prefix"
	for j := range i {
		q := rs[j].Prefix
		if checkPrefix(q) != "" {
			continue
		}
		other := fmt.Sprintf("route %s%s", quote(rs[j].Name), ck.lineNote(routeKey(j)))
		switch {
		case p == q:
			ck.add(key, "%s %s is already the prefix of %s: give each route its own prefix", key, quote(p), other)
			return
		case strings.HasPrefix(p, q), strings.HasPrefix(q, p):
			ck.add(key, "%s %s overlaps the prefix %s of %s: a request could match both; use prefixes that do not nest", key, quote(p), quote(q), other)
			return
		}
	}
}

func (ck *checker) upstream(key, s string) {
	const example = `"http://localhost:1337/"`
	if s == "" {
		ck.empty(key, "set it to the URL requests are forwarded to, like "+example)
		return
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		ck.add(key, "%s %s is not an absolute URL: use one like %s", key, quote(s), example)
	case u.Scheme != "http" && u.Scheme != "https":
		ck.add(key, "%s %s must use http or https: use one like %s", key, quote(s), example)
	case u.User != nil:
		ck.add(key, "%s %s must not contain a user name or password: remove the part before \"@\" (the proxy attaches the credentials)", key, quote(s))
	case u.RawQuery != "" || u.ForceQuery:
		ck.add(key, "%s %s must not have a query: remove everything from \"?\" on", key, quote(s))
	case u.Fragment != "" || strings.Contains(s, "#"):
		ck.add(key, "%s %s must not have a fragment: remove everything from \"#\" on", key, quote(s))
	}
}
