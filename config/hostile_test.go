package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestHostileFileKeepsOldConfig plays the app reloading its settings file after someone (or
// something) wrote garbage or an attack into it: Load refuses with an error naming the line
// (and the key, where the problem has one), returns no config, so the caller keeps the one it
// has, and leaves the file as it was. Big documents are refused quickly.
func TestHostileFileKeepsOldConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	if err := Save(path, fullConfig()); err != nil {
		t.Fatal(err)
	}
	current, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}

	route := "[[proxy.routes]]\nname = \"cms\"\nprefix = \"/cms/\"\nupstream = \"http://localhost:1337/\"\nauth = \"none\"\n"
	tests := []struct {
		name, doc string
		line      int
		key       string // "" for problems without a key (syntax)
	}{
		{"wrong type", "[proxy]\nlisten = 8631\n", 2, "proxy.listen"},
		{"wrong type in a route", route + "scopes = \"x\"\n", 6, "proxy.routes[0].scopes"},
		{"huge integer", "[proxy]\nrequire_key = 99999999999999999999999\n", 2, "proxy.require_key"},
		{"unknown key", "client_id = \"abc\"\ntheme = \"dark\"\n", 2, "theme"},
		{"unknown key in a route", route + "headers = [\"X-Admin: 1\"]\n", 6, "proxy.routes[0].headers"},
		{"non-loopback listen", "[proxy]\nlisten = \"0.0.0.0:8631\"\n", 2, "proxy.listen"},
		{"listen on all IPv6", "[proxy]\nlisten = \"[::]:8631\"\n", 2, "proxy.listen"},
		{"listen by name", "[proxy]\nlisten = \"evil.example:8631\"\n", 2, "proxy.listen"},
		{"duplicate prefixes", route + "\n" + strings.ReplaceAll(route, "name = \"cms\"", "name = \"cms2\""), 9, "proxy.routes[1].prefix"},
		{"duplicate key", "client_id = \"a\"\nclient_id = \"b\"\n", 2, "client_id"},
		{"huge string", "\n\nauthority = \"https://login.microsoftonline.com/" + strings.Repeat("t", 10000) + "\"\n", 3, "authority"},
		{"huge scope list", "scopes = [" + strings.Repeat(`"Mail.Read",`, 50000) + "]\n", 1, "scopes"},
		{"huge route list", strings.Repeat(route, 2000), 1, "proxy.routes"},
		{"deep nesting", "scopes = " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n", 1, ""},
		{"NUL in a value", "client_id = \"a\x00b\"\n", 1, ""},
		{"invalid UTF-8", "\nclient_id = \"a\xff\xfe\"\n", 2, ""},
		{"binary garbage", "\x7fELF\x02\x01\x01\x00\x00\x00", 1, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			c, err := Load(path)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Load took %v", d)
			}
			if err == nil || c != nil {
				t.Fatalf("Load() = %v, %v; want nil and an error", c, err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an *Error", err)
			}
			if e.File != path || e.Line != tc.line || e.Key != tc.key {
				t.Errorf("first problem at %s:%d key %q, want line %d key %q: %v", e.File, e.Line, e.Key, tc.line, tc.key, err)
			}
			if tc.key != "" && !strings.Contains(e.Msg, tc.key[strings.LastIndex(tc.key, ".")+1:]) {
				t.Errorf("the message does not name the key: %s", e.Msg)
			}
			if len(err.Error()) > 4000 {
				t.Errorf("the error is %d bytes long", len(err.Error()))
			}
			// The caller goes on with what it had: reloading does not touch it.
			if !reflect.DeepEqual(current, fullConfig()) {
				t.Error("the config in use changed")
			}
			if b, _ := os.ReadFile(path); string(b) != tc.doc {
				t.Error("Load changed the file")
			}
		})
	}
}

// TestHostileConfigNotSaved: a Config made hostile in memory (by a settings window, say) is
// refused by Save with the key at fault, and the file on disk keeps its content.
func TestHostileConfigNotSaved(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	if err := Save(path, fullConfig()); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(c *Config)
		key  string
	}{
		{"non-loopback listen", func(c *Config) { c.Proxy.Listen = "192.168.1.2:8631" }, "proxy.listen"},
		{"duplicate prefix", func(c *Config) { c.Proxy.Routes[2].Prefix = c.Proxy.Routes[0].Prefix }, "proxy.routes[2].prefix"},
		{"prefix over the status pages", func(c *Config) { c.Proxy.Routes[0].Prefix = "/" }, "proxy.routes[0].prefix"},
		{"huge value", func(c *Config) { c.ClientID = strings.Repeat("a", 1<<20) }, "client_id"},
		{"too many routes", func(c *Config) {
			for range 200 {
				c.Proxy.Routes = append(c.Proxy.Routes, c.Proxy.Routes[3])
			}
		}, "proxy.routes"},
		{"unknown auth", func(c *Config) { c.Proxy.Routes[1].Auth = "basic" }, "proxy.routes[1].auth"},
		{"control characters", func(c *Config) { c.Proxy.Routes[1].Name = "a\r\nb" }, "proxy.routes[1].name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := fullConfig()
			tc.edit(c)
			err := Save(path, c)
			var e *Error
			if !errors.As(err, &e) || e.Key != tc.key {
				t.Fatalf("Save() = %v, want an *Error for %s", err, tc.key)
			}
			if after, _ := os.ReadFile(path); string(after) != string(before) {
				t.Error("a refused Save changed the file")
			}
			checkNoTempFiles(t, dir)
		})
	}
	if c, err := Load(path); err != nil || !reflect.DeepEqual(c, fullConfig()) {
		t.Errorf("after the refused saves, Load() = %v", err)
	}
}
