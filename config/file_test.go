package config

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// fullConfig sets every key to something other than its default.
func fullConfig() *Config {
	return &Config{
		ClientID:        "6e2c3a4f-1b0d-4a6e-9f3e-2d1c0b9a8f7e",
		Authority:       "https://login.microsoftonline.us/contoso.onmicrosoft.us",
		Cloud:           "usgov",
		GraphURL:        "https://graph.microsoft.us/beta",
		Scopes:          []string{"GroupMember.Read.All", "Mail.Read"},
		KeychainService: "entra-companion-test",
		StartAtLogin:    true,
		Proxy: Proxy{
			Listen:         "[::1]:0",
			AllowedOrigins: []string{"http://localhost:5173", "https://app.contoso.com"},
			RequireKey:     true,
			Routes: []Route{
				{Name: "graph", Prefix: "/graph/", Upstream: "https://graph.microsoft.us/", Scopes: []string{"https://graph.microsoft.us/.default"}, Auth: "bearer"},
				{Name: "orders", Prefix: "/orders/", Upstream: "https://orders.contoso.com/api", Scopes: []string{"api://orders/.default"}, Auth: "bearer", Account: "ada@contoso.com"},
				{Name: "cms", Prefix: "/cms/", Upstream: "http://localhost:1337/", Auth: "strapi", Account: "bob@fabrikam.com"},
				{Name: "static", Prefix: "/static/", Upstream: "http://127.0.0.1:8000", Auth: "none"},
			},
		},
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		config func() *Config
	}{
		{"default", Default},
		{"full", fullConfig},
		{"china defaults", func() *Config {
			c, err := Parse([]byte(`cloud = "china"`), "x")
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{"global cloud with a us authority", func() *Config {
			c := Default()
			c.Authority = "https://login.microsoftonline.us/organizations"
			return c
		}},
		{"no origins, no routes", func() *Config {
			c := Default()
			c.Proxy.AllowedOrigins = nil
			c.Proxy.Routes = nil
			return c
		}},
		{"graph route with other scopes", func() *Config {
			c := Default()
			c.Proxy.Routes[0].Scopes = []string{"https://graph.microsoft.com/User.Read"}
			return c
		}},
		{"default routes reordered", func() *Config {
			c := Default()
			c.Proxy.Routes[0], c.Proxy.Routes[1] = c.Proxy.Routes[1], c.Proxy.Routes[0]
			return c
		}},
		{"quotes and unicode", func() *Config {
			c := Default()
			c.KeychainService = `entra "companion" 'ü' \ test`
			c.Proxy.Routes[1].Account = "zoë@contoso.com"
			return c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "sub", "config.toml")
			want := tt.config()
			if err := Save(path, want); err != nil {
				t.Fatal(err)
			}
			got, err := Load(path)
			if err != nil {
				data, _ := os.ReadFile(path)
				t.Fatalf("Load() = %v; file:\n%s", err, data)
			}
			if !reflect.DeepEqual(got, want) {
				data, _ := os.ReadFile(path)
				t.Errorf("Load(Save(c)) =\n%+v\nwant\n%+v\nfile:\n%s", got, want, data)
			}
			checkFileMode(t, path, 0o600)
			checkFileMode(t, filepath.Dir(path), 0o700|os.ModeDir)
			checkNoTempFiles(t, filepath.Dir(path))

			// Saving again over the file gives the same file.
			first, _ := os.ReadFile(path)
			if err := Save(path, got); err != nil {
				t.Fatal(err)
			}
			if second, _ := os.ReadFile(path); string(second) != string(first) {
				t.Errorf("second Save wrote\n%s\nfirst wrote\n%s", second, first)
			}
		})
	}
}

// TestSaveWritesOnlyChanges checks the file Save writes for a few configs.
func TestSaveWritesOnlyChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := Save(path, Default()); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if string(data) != fileHeader {
		t.Errorf("Save(Default()) wrote\n%s\nwant only the header", data)
	}

	c := Default()
	c.Cloud = "usgov"
	c.Authority = defaultAuthority("usgov")
	c.GraphURL = defaultGraphURL("usgov")
	c.Proxy.Routes = c.defaultRoutes()
	c.Proxy.RequireKey = true
	if err := Save(path, c); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	want := fileHeader + "\ncloud = 'usgov'\n\n[proxy]\nrequire_key = true\n"
	if string(data) != want {
		t.Errorf("Save() wrote\n%s\nwant\n%s", data, want)
	}
}

func TestSaveRefusesInvalid(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	if err := Save(path, fullConfig()); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)

	bad := fullConfig()
	bad.Proxy.Listen = "0.0.0.0:8631"
	bad.Proxy.Routes[1].Prefix = "/graph/"
	err := Save(path, bad)
	if err == nil {
		t.Fatal("Save() of an invalid config succeeded")
	}
	want := "not saving the settings to " + path + ", fix these first:\n" +
		`proxy.listen "0.0.0.0:8631" is not a loopback address: use 127.0.0.1 or [::1]` + "\n" +
		`proxy.routes[1].prefix "/graph/" is already the prefix of route "graph": give each route its own prefix`
	if err.Error() != want {
		t.Errorf("Save() error =\n%v\nwant\n%s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Key != "proxy.listen" {
		t.Errorf("errors.As(*Error) = %+v", e)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Errorf("the file changed after a refused Save:\n%s", after)
	}
	checkNoTempFiles(t, dir)

	if err := Save(path, nil); err == nil {
		t.Error("Save(nil) succeeded")
	}
	if err := Save(filepath.Join(dir, "new.toml"), &Config{}); err == nil {
		t.Error("Save() of a zero Config succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "new.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused Save created the file: %v", err)
	}
}

func TestSaveReplacesFileMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte("start_at_login = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Save(path, Default()); err != nil {
		t.Fatal(err)
	}
	checkFileMode(t, path, 0o600)
	// An existing folder keeps its mode: it may be shared, like /tmp.
	checkFileMode(t, dir, mustStat(t, dir).Mode())
}

func TestSaveThroughSymlink(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows")
	}
	dir := t.TempDir()
	real := filepath.Join(dir, "dotfiles", "entra.toml")
	if err := os.MkdirAll(filepath.Dir(real), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(real, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "config.toml")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := Save(link, fullConfig()); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symbolic link was replaced: %v, %v", fi, err)
	}
	if c, err := Load(real); err != nil || !reflect.DeepEqual(c, fullConfig()) {
		t.Errorf("Load(target) = %+v, %v", c, err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()

	t.Run("missing file means defaults", func(t *testing.T) {
		for _, p := range []string{filepath.Join(dir, "none.toml"), filepath.Join(dir, "no", "such", "dir", "config.toml")} {
			c, err := Load(p)
			if err != nil || !reflect.DeepEqual(c, Default()) {
				t.Errorf("Load(%s) = %+v, %v; want Default()", p, c, err)
			}
		}
	})
	t.Run("folder", func(t *testing.T) {
		c, err := Load(dir)
		if c != nil || err == nil || err.Error() != dir+": is a folder, not a settings file: point --config or ENTRA_COMPANION_CONFIG at a .toml file" {
			t.Errorf("Load(folder) = %v, %v", c, err)
		}
	})
	t.Run("bad file names the path", func(t *testing.T) {
		path := filepath.Join(dir, "bad.toml")
		if err := os.WriteFile(path, []byte("[proxy]\nlisten = \"0.0.0.0:1\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if c != nil || err == nil || err.Error() != path+`:2: proxy.listen "0.0.0.0:1" is not a loopback address: use 127.0.0.1 or [::1]` {
			t.Errorf("Load(bad) = %v, %v", c, err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		path := filepath.Join(dir, "big.toml")
		if err := os.WriteFile(path, make([]byte, 2<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		if c, err := Load(path); c != nil || err == nil || !strings.Contains(err.Error(), "larger than 1 MiB") {
			t.Errorf("Load(big) = %v, %v", c, err)
		}
	})
}

// TestExample checks that example.toml, which the README points to, parses to
// the defaults as it claims, and that its commented-out keys are valid too.
func TestExample(t *testing.T) {
	data, err := os.ReadFile("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data, "example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("example.toml =\n%+v\nwant Default()\n%+v", c, Default())
	}

	// Lines like "#key = value" and "#[[table]]" are settings to uncomment.
	setting := regexp.MustCompile(`^#(\[|[a-z_]+ = )`)
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if setting.MatchString(line) {
			line = line[1:]
			n++
		}
		b.WriteString(line + "\n")
	}
	if n < 10 {
		t.Fatalf("found only %d commented-out settings", n)
	}
	c, err = Parse([]byte(b.String()), "example.toml (uncommented)")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Proxy.Routes) != 3 || len(c.Scopes) != 1 {
		t.Errorf("uncommented example.toml = %+v", c)
	}
	want := Default().Proxy.Routes
	if !reflect.DeepEqual(c.Proxy.Routes[:2], want) {
		t.Errorf("the example's routes are\n%+v\nnot the defaults\n%+v", c.Proxy.Routes[:2], want)
	}
}

// BenchmarkLoad loads a typical settings file: a few keys and three routes.
func BenchmarkLoad(b *testing.B) {
	path := filepath.Join(b.TempDir(), "config.toml")
	doc := `client_id = "6e2c3a4f-1b0d-4a6e-9f3e-2d1c0b9a8f7e"
authority = "https://login.microsoftonline.com/contoso.onmicrosoft.com"
scopes = ["GroupMember.Read.All"]
start_at_login = true

[proxy]
listen = "127.0.0.1:8631"
allowed_origins = ["http://localhost:5173", "http://localhost:3000"]

[[proxy.routes]]
name = "graph"
prefix = "/graph/"
upstream = "https://graph.microsoft.com/"

[[proxy.routes]]
name = "cms"
prefix = "/cms/"
upstream = "http://localhost:1337/"
auth = "strapi"

[[proxy.routes]]
name = "orders"
prefix = "/orders/"
upstream = "https://orders.contoso.com/"
scopes = ["api://6e2c3a4f-1b0d-4a6e-9f3e-2d1c0b9a8f7e/.default"]
account = "ada@contoso.com"
`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(path); err != nil {
			b.Fatal(err)
		}
	}
}

func mustStat(t *testing.T, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func checkFileMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	if runtime.GOOS == "windows" {
		return
	}
	if got := mustStat(t, path).Mode(); got != want {
		t.Errorf("mode of %s = %v, want %v", path, got, want)
	}
}

func checkNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

// Saving over a hand-written file with comments keeps that file as .bak first.
func TestSaveKeepsCommentedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	hand := "# my tenant, see the wiki\nauthority = \"https://login.microsoftonline.com/contoso.com\"\n"
	if err := os.WriteFile(path, []byte(hand), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	c.StartAtLogin = true
	if err := Save(path, c); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path + ".bak"); err != nil || string(b) != hand {
		t.Fatalf("the commented file was not kept: %q, %v", b, err)
	}
	back, err := Load(path)
	if err != nil || !back.StartAtLogin || back.Authority != c.Authority {
		t.Fatalf("saved settings: %+v, %v", back, err)
	}
	// Saving again over our own (comment-free) file makes no backup of it.
	if err := os.Remove(path + ".bak"); err != nil {
		t.Fatal(err)
	}
	c.StartAtLogin = false
	if err := Save(path, c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".bak"); !os.IsNotExist(err) {
		t.Errorf("a backup of a file without comments was made: %v", err)
	}
}
