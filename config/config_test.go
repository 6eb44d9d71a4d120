package config

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	want := &Config{
		ClientID:        DefaultClientID,
		Authority:       DefaultAuthority,
		Cloud:           "global",
		GraphURL:        "https://graph.microsoft.com/v1.0",
		KeychainService: DefaultKeychainService,
		Proxy: Proxy{
			Listen:         DefaultListen,
			AllowedOrigins: []string{"http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"},
			Routes: []Route{
				{Name: "graph", Prefix: "/graph/", Upstream: "https://graph.microsoft.com/", Scopes: []string{"https://graph.microsoft.com/.default"}, Auth: "bearer"},
				{Name: "cms", Prefix: "/cms/", Upstream: "http://localhost:1337/", Auth: "strapi"},
			},
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", c, want)
	}
	if got := c.GraphScope(); got != "https://graph.microsoft.com/.default" {
		t.Errorf("GraphScope() = %q", got)
	}
	// Each call returns a fresh config.
	c.Proxy.AllowedOrigins[0] = "changed"
	c.Proxy.Routes[0].Scopes[0] = "changed"
	if d := Default(); d.Proxy.AllowedOrigins[0] == "changed" || d.Proxy.Routes[0].Scopes[0] == "changed" {
		t.Error("Default() shares slices between calls")
	}
}

func TestDefaultsPerCloud(t *testing.T) {
	tests := []struct {
		cloud, authority, graphURL, upstream, scope string
	}{
		{"global", "https://login.microsoftonline.com/organizations", "https://graph.microsoft.com/v1.0", "https://graph.microsoft.com/", "https://graph.microsoft.com/.default"},
		{"usgov", "https://login.microsoftonline.us/organizations", "https://graph.microsoft.us/v1.0", "https://graph.microsoft.us/", "https://graph.microsoft.us/.default"},
		{"china", "https://login.chinacloudapi.cn/organizations", "https://microsoftgraph.chinacloudapi.cn/v1.0", "https://microsoftgraph.chinacloudapi.cn/", "https://microsoftgraph.chinacloudapi.cn/.default"},
	}
	for _, tt := range tests {
		t.Run(tt.cloud, func(t *testing.T) {
			c, err := Parse([]byte("cloud = \""+tt.cloud+"\"\n"), "config.toml")
			if err != nil {
				t.Fatal(err)
			}
			if c.Authority != tt.authority || c.GraphURL != tt.graphURL {
				t.Errorf("authority, graph_url = %q, %q; want %q, %q", c.Authority, c.GraphURL, tt.authority, tt.graphURL)
			}
			g := c.Proxy.Routes[0]
			if g.Upstream != tt.upstream || !slices.Equal(g.Scopes, []string{tt.scope}) || c.GraphScope() != tt.scope {
				t.Errorf("graph route = %+v, GraphScope() = %q; want upstream %q, scope %q", g, c.GraphScope(), tt.upstream, tt.scope)
			}
		})
	}
}

// A graph_url elsewhere (the simulated cloud, a gateway) still gets tokens for Graph itself.
func TestGraphScopeFollowsCloudNotURL(t *testing.T) {
	c, err := Parse([]byte("graph_url = \"https://127.0.0.1:9443/v1.0\"\n"), "config.toml")
	if err != nil {
		t.Fatal(err)
	}
	g := c.Proxy.Routes[0]
	if g.Upstream != "https://127.0.0.1:9443/" || !slices.Equal(g.Scopes, []string{"https://graph.microsoft.com/.default"}) {
		t.Errorf("graph route = %+v", g)
	}
	if c.GraphScope() != "https://graph.microsoft.com/.default" {
		t.Errorf("GraphScope() = %q", c.GraphScope())
	}
}

func TestParseAppliesDefaults(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want func(c *Config)
	}{
		{"empty file", "", func(c *Config) {}},
		{"comments only", "# nothing\n\n", func(c *Config) {}},
		{"byte order mark", "\uFEFFstart_at_login = true\n", func(c *Config) { c.StartAtLogin = true }},
		{"some keys", "client_id = \"00000000-0000-0000-0000-000000000001\"\n[proxy]\nrequire_key = true\n", func(c *Config) {
			c.ClientID = "00000000-0000-0000-0000-000000000001"
			c.Proxy.RequireKey = true
		}},
		{"graph url moves the graph route", "graph_url = \"https://127.0.0.1:9443/v1.0\"\n", func(c *Config) {
			c.GraphURL = "https://127.0.0.1:9443/v1.0"
			c.Proxy.Routes[0].Upstream = "https://127.0.0.1:9443/"
			c.Proxy.Routes[0].Scopes = []string{"https://graph.microsoft.com/.default"}
		}},
		{"empty origins allow none", "[proxy]\nallowed_origins = []\n", func(c *Config) { c.Proxy.AllowedOrigins = nil }},
		{"empty routes mean none", "[proxy]\nroutes = []\n", func(c *Config) { c.Proxy.Routes = nil }},
		{"routes given are exactly those", `
[[proxy.routes]]
name = "g"
prefix = "/g/"
upstream = "https://graph.microsoft.com/beta/"

[[proxy.routes]]
name = "api"
prefix = "/api/"
upstream = "https://api.contoso.com"
scopes = ["api://contoso/.default"]
account = "ada@contoso.com"
`, func(c *Config) {
			c.Proxy.Routes = []Route{
				{Name: "g", Prefix: "/g/", Upstream: "https://graph.microsoft.com/beta/", Scopes: []string{"https://graph.microsoft.com/.default"}, Auth: "bearer"},
				{Name: "api", Prefix: "/api/", Upstream: "https://api.contoso.com", Scopes: []string{"api://contoso/.default"}, Auth: "bearer", Account: "ada@contoso.com"},
			}
		}},
		{"inline tables", `proxy = { listen = "[::1]:0", routes = [ { name = "x", prefix = "/x/", upstream = "http://localhost:8080", auth = "none" } ] }`, func(c *Config) {
			c.Proxy.Listen = "[::1]:0"
			c.Proxy.Routes = []Route{{Name: "x", Prefix: "/x/", Upstream: "http://localhost:8080", Auth: "none"}}
		}},
		{"dotted keys", "proxy.listen = \"localhost:9000\"\nproxy.require_key = true\n", func(c *Config) {
			c.Proxy.Listen = "localhost:9000"
			c.Proxy.RequireKey = true
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.doc), "config.toml")
			if err != nil {
				t.Fatal(err)
			}
			want := Default()
			tt.want(want)
			want.normalize()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Parse() =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestClone(t *testing.T) {
	c := Default()
	c.Scopes = []string{"Mail.Read"}
	d := c.Clone()
	if !reflect.DeepEqual(c, d) {
		t.Fatalf("Clone() = %+v, want %+v", d, c)
	}
	d.Scopes[0] = "x"
	d.Proxy.AllowedOrigins[0] = "x"
	d.Proxy.Routes[0].Scopes[0] = "x"
	d.Proxy.Routes[1].Name = "x"
	if c.Scopes[0] == "x" || c.Proxy.AllowedOrigins[0] == "x" || c.Proxy.Routes[0].Scopes[0] == "x" || c.Proxy.Routes[1].Name == "x" {
		t.Errorf("Clone() shares storage with the original: %+v", c)
	}
	if (*Config)(nil).Clone() != nil {
		t.Error("nil.Clone() != nil")
	}
}

func TestPath(t *testing.T) {
	t.Run("env", func(t *testing.T) {
		want := filepath.Join(t.TempDir(), "elsewhere.toml")
		t.Setenv(EnvConfig, want)
		got, err := Path()
		if err != nil || got != want {
			t.Errorf("Path() = %q, %v; want %q", got, err, want)
		}
	})
	t.Run("default", func(t *testing.T) {
		t.Setenv(EnvConfig, "")
		home := t.TempDir()
		t.Setenv("HOME", home)
		t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "xdg"))
		t.Setenv("AppData", filepath.Join(home, "appdata"))
		got, err := Path()
		if err != nil {
			t.Fatal(err)
		}
		dir, _ := os.UserConfigDir()
		if want := filepath.Join(dir, "entra-companion", "config.toml"); got != want {
			t.Errorf("Path() = %q, want %q", got, want)
		}
		if runtime.GOOS == "linux" && got != filepath.Join(home, "xdg", "entra-companion", "config.toml") {
			t.Errorf("Path() = %q does not follow XDG_CONFIG_HOME", got)
		}
	})
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "config.toml", Line: 7, Column: 10, Key: "proxy.listen", Msg: "proxy.listen: expected a string, got integer"}, "config.toml:7: proxy.listen: expected a string, got integer"},
		{Error{File: "config.toml", Msg: "the file is too large"}, "config.toml: the file is too large"},
		{Error{Line: 3, Msg: "m"}, "line 3: m"},
		{Error{Key: "cloud", Msg: `cloud "x" is not a cloud`}, `cloud "x" is not a cloud`},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestQuote(t *testing.T) {
	if got := quote("a\"b"); got != `"a\"b"` {
		t.Errorf("quote = %s", got)
	}
	long := strings.Repeat("é", 100)
	got := quote(long)
	if len(got) > 70 || !strings.HasSuffix(got, `…"`) || !strings.HasPrefix(got, `"éé`) {
		t.Errorf("quote(long) = %s", got)
	}
}
