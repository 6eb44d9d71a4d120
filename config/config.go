package config

import (
	"net/url"
	"slices"
	"strings"
)

// DefaultClientID is the application (client) id used when the settings name
// none: Microsoft's public "Microsoft Graph Command Line Tools" app.
const DefaultClientID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"

// DefaultAuthority is the authority of the global cloud used when the settings
// name none: any work or school account of any tenant.
const DefaultAuthority = "https://login.microsoftonline.com/organizations"

// DefaultKeychainService is the OS keychain service under which tokens and keys
// are kept when the settings name none.
const DefaultKeychainService = "entra-companion"

// DefaultListen is the loopback address the proxy listens on when the settings
// name none.
const DefaultListen = "127.0.0.1:8631"

// EnvConfig is the environment variable that, when set, names the settings file
// instead of the default path.
const EnvConfig = "ENTRA_COMPANION_CONFIG"

// Cloud names accepted in Config.Cloud.
const (
	// CloudGlobal is Microsoft's global cloud (the default).
	CloudGlobal = "global"
	// CloudUSGov is Microsoft Cloud for US Government (GCC High, DoD).
	CloudUSGov = "usgov"
	// CloudChina is Microsoft Azure operated by 21Vianet.
	CloudChina = "china"
)

// Auth modes accepted in Route.Auth.
const (
	// AuthBearer attaches an Entra access token for the route's scopes (the default).
	AuthBearer = "bearer"
	// AuthStrapi exchanges a Graph token for a Strapi users-permissions JWT and attaches that.
	AuthStrapi = "strapi"
	// AuthNone attaches nothing.
	AuthNone = "none"
)

// Config is the content of the settings file. Default and Parse return it with
// every default filled in; the zero value is not a valid Config.
type Config struct {
	// ClientID is the application (client) id of the app registration used to sign in.
	ClientID string `toml:"client_id"`
	// Authority is the Entra authority: an https URL whose path is the tenant
	// ("organizations", "common", a tenant id or a domain).
	Authority string `toml:"authority"`
	// Cloud is "global" (the default), "usgov" or "china"; it picks the default
	// authority host and Graph URL.
	Cloud string `toml:"cloud"`
	// GraphURL is the Microsoft Graph base URL, by default the cloud's
	// (https://graph.microsoft.com/v1.0 for the global cloud).
	GraphURL string `toml:"graph_url"`
	// Scopes are extra scopes asked for at sign-in (auth always adds User.Read).
	Scopes []string `toml:"scopes"`
	// KeychainService is the OS keychain service tokens and keys are kept under.
	KeychainService string `toml:"keychain_service"`
	// StartAtLogin starts the tray app when the user logs in.
	StartAtLogin bool `toml:"start_at_login"`
	// Proxy configures the loopback reverse proxy.
	Proxy Proxy `toml:"proxy"`
}

// Proxy configures the loopback reverse proxy.
type Proxy struct {
	// Listen is the loopback host:port to listen on; port 0 picks a free port.
	Listen string `toml:"listen"`
	// AllowedOrigins are the browser origins ("scheme://host[:port]", port "*"
	// for any) allowed to call the proxy. An empty list allows none.
	AllowedOrigins []string `toml:"allowed_origins"`
	// RequireKey makes the proxy refuse requests without the client key.
	RequireKey bool `toml:"require_key"`
	// Routes map path prefixes to upstreams ([[proxy.routes]] in the file).
	Routes []Route `toml:"routes"`
}

// Route sends the requests under a path prefix to an upstream, with a token.
type Route struct {
	// Name identifies the route in the UI, logs and errors: lowercase letters,
	// digits and dashes, unique.
	Name string `toml:"name"`
	// Prefix is the path the route serves, like "/cms/": it starts and ends
	// with "/" and does not nest with another route's prefix.
	Prefix string `toml:"prefix"`
	// Upstream is the absolute http or https URL requests are forwarded to;
	// the path after Prefix is appended to it.
	Upstream string `toml:"upstream"`
	// Scopes are the scopes of the token attached when Auth is "bearer". A
	// route whose upstream is Graph defaults to the Graph ".default" scope.
	Scopes []string `toml:"scopes"`
	// Auth is "bearer" (the default), "strapi" or "none".
	Auth string `toml:"auth"`
	// Account pins the route to one account (UPN or id); "" uses the active account.
	Account string `toml:"account"`
}

// cloudInfo is what a cloud name stands for.
type cloudInfo struct {
	authorityHost string
	graphURL      string
}

var clouds = map[string]cloudInfo{
	CloudGlobal: {"https://login.microsoftonline.com", "https://graph.microsoft.com/v1.0"},
	CloudUSGov:  {"https://login.microsoftonline.us", "https://graph.microsoft.us/v1.0"},
	CloudChina:  {"https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn/v1.0"},
}

// cloudOf returns the cloud's endpoints, those of the global cloud for an unknown name.
func cloudOf(name string) cloudInfo {
	if ci, ok := clouds[name]; ok {
		return ci
	}
	return clouds[CloudGlobal]
}

func defaultAuthority(cloud string) string { return cloudOf(cloud).authorityHost + "/organizations" }

func defaultGraphURL(cloud string) string { return cloudOf(cloud).graphURL }

// defaultAllowedOrigins are the loopback origins of any port.
var defaultAllowedOrigins = []string{"http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"}

// Default returns a new Config with every default filled in: the global cloud,
// the public client id, the proxy on 127.0.0.1:8631 allowing loopback origins,
// and two routes: "graph" (/graph/ to Microsoft Graph, so /graph/v1.0/me works)
// and "cms" (/cms/ to a Strapi on http://localhost:1337/).
func Default() *Config {
	c := &Config{
		ClientID:        DefaultClientID,
		Authority:       DefaultAuthority,
		Cloud:           CloudGlobal,
		GraphURL:        defaultGraphURL(CloudGlobal),
		KeychainService: DefaultKeychainService,
		Proxy: Proxy{
			Listen:         DefaultListen,
			AllowedOrigins: slices.Clone(defaultAllowedOrigins),
		},
	}
	c.Proxy.Routes = c.defaultRoutes()
	return c
}

// defaultRoutes returns the routes used when the file has none, for c's Graph URL.
func (c *Config) defaultRoutes() []Route {
	return []Route{
		{Name: "graph", Prefix: "/graph/", Upstream: c.graphOrigin() + "/", Scopes: []string{c.GraphScope()}, Auth: AuthBearer},
		{Name: "cms", Prefix: "/cms/", Upstream: "http://localhost:1337/", Auth: AuthStrapi},
	}
}

// GraphScope returns the ".default" scope of the cloud's Microsoft Graph, like
// "https://graph.microsoft.com/.default". It names the resource tokens are for, so it follows
// the cloud, not graph_url: a graph_url that points elsewhere (a mock, a gateway, the simulated
// cloud) still takes Graph tokens.
func (c *Config) GraphScope() string {
	return origin(defaultGraphURL(c.Cloud)) + "/.default"
}

// graphOrigin returns scheme://host of GraphURL, or of the cloud's Graph when
// GraphURL is not an absolute http or https URL.
func (c *Config) graphOrigin() string {
	if o := origin(c.GraphURL); strings.HasPrefix(o, "https://") || strings.HasPrefix(o, "http://") {
		return o
	}
	return origin(defaultGraphURL(c.Cloud))
}

// isGraphRoute reports whether r's upstream is the configured Graph, so that its
// bearer token defaults to the Graph ".default" scope.
func (c *Config) isGraphRoute(r *Route) bool {
	o := origin(r.Upstream)
	return o != "" && o == c.graphOrigin()
}

// origin returns the lowercase scheme://host[:port] of an absolute URL, or "".
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// Clone returns a deep copy of c.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	n := *c
	n.Scopes = slices.Clone(c.Scopes)
	n.Proxy.AllowedOrigins = slices.Clone(c.Proxy.AllowedOrigins)
	n.Proxy.Routes = slices.Clone(c.Proxy.Routes)
	for i := range n.Proxy.Routes {
		n.Proxy.Routes[i].Scopes = slices.Clone(c.Proxy.Routes[i].Scopes)
	}
	return &n
}

// normalize turns empty lists into nil ones, so that configs that mean the same
// compare equal.
func (c *Config) normalize() {
	if len(c.Scopes) == 0 {
		c.Scopes = nil
	}
	if len(c.Proxy.AllowedOrigins) == 0 {
		c.Proxy.AllowedOrigins = nil
	}
	if len(c.Proxy.Routes) == 0 {
		c.Proxy.Routes = nil
	}
	for i := range c.Proxy.Routes {
		if len(c.Proxy.Routes[i].Scopes) == 0 {
			c.Proxy.Routes[i].Scopes = nil
		}
	}
}

// applyDefaults fills in every key that is not present in the file; present
// reports whether a dotted key (like "proxy.routes[0].auth") is in the file.
func (c *Config) applyDefaults(present func(key string) bool) {
	if !present("cloud") {
		c.Cloud = CloudGlobal
	}
	if !present("client_id") {
		c.ClientID = DefaultClientID
	}
	if !present("authority") {
		c.Authority = defaultAuthority(c.Cloud)
	}
	if !present("graph_url") {
		c.GraphURL = defaultGraphURL(c.Cloud)
	}
	if !present("keychain_service") {
		c.KeychainService = DefaultKeychainService
	}
	if !present("proxy.listen") {
		c.Proxy.Listen = DefaultListen
	}
	if !present("proxy.allowed_origins") {
		c.Proxy.AllowedOrigins = slices.Clone(defaultAllowedOrigins)
	}
	if !present("proxy.routes") {
		c.Proxy.Routes = c.defaultRoutes()
		return
	}
	for i := range c.Proxy.Routes {
		r := &c.Proxy.Routes[i]
		key := routeKey(i)
		if !present(key + ".auth") {
			r.Auth = AuthBearer
		}
		if !present(key+".scopes") && r.Auth == AuthBearer && c.isGraphRoute(r) {
			r.Scopes = []string{c.GraphScope()}
		}
	}
}
