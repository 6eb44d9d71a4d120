package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
)

// maxFile is the largest settings file read or written. A real one is a few
// kilobytes.
const maxFile = 1 << 20

// errTooLarge marks a settings file or Config over maxFile.
var errTooLarge = errors.New("larger than 1 MiB")

// Path returns the settings file to use: the value of ENTRA_COMPANION_CONFIG
// if set, else config.toml in the "entra-companion" folder of
// [os.UserConfigDir]. A --config flag, when given, wins over both; that is the
// caller's to handle.
func Path() (string, error) {
	if p := os.Getenv(EnvConfig); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding the settings folder: %w (set %s to the settings file's path)", err, EnvConfig)
	}
	return filepath.Join(dir, "entra-companion", "config.toml"), nil
}

// Load reads and checks the settings file at path. A missing file is normal:
// Load returns Default() and no error. On any problem Load returns nil and an
// error; for problems in the file's content the error joins [*Error] values
// naming path, their line and key.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Default(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the settings file: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, &Error{File: path, Msg: "is a folder, not a settings file: point --config or " + EnvConfig + " at a .toml file"}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading the settings file: %w", err)
	}
	return Parse(data, path)
}

// Parse reads settings from data, the content of a file called name (used in
// error messages). It fills in the default of every key the file does not set
// and checks the result with Validate. On any problem it returns nil and every
// problem found, as [*Error] values joined with errors.Join, sorted by line.
func Parse(data []byte, name string) (c *Config, err error) {
	defer func() {
		// A panic in the TOML library must not take the app down with it over a
		// settings file; say so instead.
		if v := recover(); v != nil {
			c, err = nil, &Error{File: name, Msg: fmt.Sprintf("%s: this file could not be read (please report it): %v", internalError, v)}
		}
	}()
	if len(data) > maxFile {
		return nil, &Error{File: name, Msg: "the file is " + errTooLarge.Error() + ", far more than any settings file needs: check that this is the right file"}
	}
	// Editors on Windows may start UTF-8 files with a byte order mark.
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	// go-toml finds positions from how slices of data share its backing
	// array: give it a slice whose capacity is its length.
	data = slices.Clip(data)

	pos, errs := scanDocument(data, name)
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	c = &Config{}
	if err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(c); err != nil {
		return nil, joinErrors(decodeErrors(err, name))
	}
	c.applyDefaults(func(key string) bool { _, ok := pos[key]; return ok })
	c.normalize()
	if errs := validate(c, name, pos); len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	return c, nil
}

// internalError starts the message of errors that are bugs, not the user's doing.
const internalError = "internal error"

// decodeErrors turns go-toml's errors into Errors. The scan before decoding
// finds almost every problem; what is left are TOML rules such as a table
// defined twice.
func decodeErrors(err error, file string) []*Error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var errs []*Error
		for i := range strict.Errors {
			de := &strict.Errors[i]
			line, col := de.Position()
			key := keyString(de.Key())
			errs = append(errs, &Error{File: file, Line: line, Column: col, Key: key, Msg: fmt.Sprintf("unknown key %q: remove it", key)})
		}
		return errs
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		return []*Error{{File: file, Line: line, Column: col, Key: keyString(de.Key()), Msg: "invalid TOML: " + msg}}
	}
	return []*Error{{File: file, Msg: "invalid TOML: " + strings.TrimPrefix(err.Error(), "toml: ")}}
}

// Save checks c with Validate and writes it to path, replacing the file
// atomically: a temporary file in the same folder is written, synced and
// renamed over path, then the folder is synced. The file gets mode 0600; a
// missing folder is created with mode 0700. If path is a symbolic link, the
// file it points to is replaced. Only what differs from the defaults is
// written, so the file stays short and keys left out follow the defaults
// (those of the cloud for the authority and Graph URL). If c is not valid,
// nothing is written and the file keeps its old content.
func Save(path string, c *Config) error {
	if c == nil {
		return errors.New("saving the settings: the config is nil")
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("not saving the settings to %s, fix these first:\n%w", path, err)
	}
	data, err := encode(c)
	if err != nil {
		return fmt.Errorf("saving the settings to %s: %s: %w", path, internalError, err)
	}
	if len(data) > maxFile {
		return fmt.Errorf("not saving the settings to %s: they would be %w: shorten the lists", path, errTooLarge)
	}
	// Never write a file that would not load back as c.
	back, err := Parse(data, path)
	if err != nil {
		return fmt.Errorf("saving the settings to %s: %s, the written file would not load: %w", path, internalError, err)
	}
	want := c.Clone()
	want.normalize()
	if !reflect.DeepEqual(back, want) {
		return fmt.Errorf("saving the settings to %s: %s, the written file would load differently", path, internalError)
	}
	// Saving writes the settings, not the file's comments: a hand-written file with comments
	// is kept next to it first, so nothing the user wrote is lost.
	if old, err := os.ReadFile(path); err == nil && !bytes.Equal(old, data) && hasComments(old) {
		if err := writeAtomic(path+".bak", old); err != nil {
			return fmt.Errorf("keeping the commented settings file as %s.bak before saving: %w", path, err)
		}
	}
	return writeAtomic(path, data)
}

// hasComments reports whether a TOML document has a comment line besides the header Save writes.
func hasComments(doc []byte) bool {
	doc = bytes.TrimPrefix(doc, []byte(fileHeader))
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] == '#' {
			return true
		}
	}
	return false
}

// writeAtomic replaces the file at path with data, mode 0600.
func writeAtomic(path string, data []byte) (err error) {
	target := path
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		target = resolved
	}
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("saving the settings: creating the folder: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return fmt.Errorf("saving the settings: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("saving the settings: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("saving the settings: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("saving the settings: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("saving the settings: %w", err)
	}
	if err := os.Rename(tmp, target); err != nil {
		return fmt.Errorf("saving the settings: %w", err)
	}
	if runtime.GOOS != "windows" { // Windows cannot open a folder to sync it.
		if d, err := os.Open(dir); err == nil {
			err = d.Sync()
			d.Close()
			if err != nil {
				return fmt.Errorf("saving the settings: syncing the folder %s: %w", dir, err)
			}
		}
	}
	return nil
}

// The file* types are what Save writes: a nil field is left out of the file
// and takes its default when read.
type fileConfig struct {
	ClientID        *string    `toml:"client_id,omitempty"`
	Authority       *string    `toml:"authority,omitempty"`
	Cloud           *string    `toml:"cloud,omitempty"`
	GraphURL        *string    `toml:"graph_url,omitempty"`
	Scopes          *[]string  `toml:"scopes,omitempty"`
	KeychainService *string    `toml:"keychain_service,omitempty"`
	StartAtLogin    *bool      `toml:"start_at_login,omitempty"`
	Proxy           *fileProxy `toml:"proxy,omitempty"`
}

type fileProxy struct {
	Listen         *string      `toml:"listen,omitempty"`
	AllowedOrigins *[]string    `toml:"allowed_origins,omitempty"`
	RequireKey     *bool        `toml:"require_key,omitempty"`
	Routes         *[]fileRoute `toml:"routes,omitempty"`
}

type fileRoute struct {
	Name     string    `toml:"name"`
	Prefix   string    `toml:"prefix"`
	Upstream string    `toml:"upstream"`
	Scopes   *[]string `toml:"scopes,omitempty"`
	Auth     *string   `toml:"auth,omitempty"`
	Account  *string   `toml:"account,omitempty"`
}

// fileHeader starts every file Save writes.
const fileHeader = `# Entra Companion settings, written by the app. Keys left out take their
# defaults; example.toml in the source describes every key. No secrets are
# kept here: tokens and keys live in the OS keychain.
`

// encode renders c as Save writes it: only what differs from the defaults.
func encode(c *Config) ([]byte, error) {
	// Each returns a pointer to v when v is not the default d, else nil.
	str := func(v, d string) *string {
		if v == d {
			return nil
		}
		return &v
	}
	list := func(v, d []string) *[]string {
		if slices.Equal(v, d) {
			return nil
		}
		v = slices.Clone(v)
		if v == nil {
			v = []string{}
		}
		return &v
	}
	flag := func(v bool) *bool {
		if !v {
			return nil
		}
		return &v
	}

	f := fileConfig{
		ClientID:        str(c.ClientID, DefaultClientID),
		Authority:       str(c.Authority, defaultAuthority(c.Cloud)),
		Cloud:           str(c.Cloud, CloudGlobal),
		GraphURL:        str(c.GraphURL, defaultGraphURL(c.Cloud)),
		Scopes:          list(c.Scopes, nil),
		KeychainService: str(c.KeychainService, DefaultKeychainService),
		StartAtLogin:    flag(c.StartAtLogin),
	}
	p := fileProxy{
		Listen:         str(c.Proxy.Listen, DefaultListen),
		AllowedOrigins: list(c.Proxy.AllowedOrigins, defaultAllowedOrigins),
		RequireKey:     flag(c.Proxy.RequireKey),
	}
	if !routesEqual(c.Proxy.Routes, c.defaultRoutes()) {
		routes := make([]fileRoute, 0, len(c.Proxy.Routes))
		for i := range c.Proxy.Routes {
			r := &c.Proxy.Routes[i]
			var defScopes []string
			if r.Auth == AuthBearer && c.isGraphRoute(r) {
				defScopes = []string{c.GraphScope()}
			}
			routes = append(routes, fileRoute{
				Name:     r.Name,
				Prefix:   r.Prefix,
				Upstream: r.Upstream,
				Scopes:   list(r.Scopes, defScopes),
				Auth:     str(r.Auth, AuthBearer),
				Account:  str(r.Account, ""),
			})
		}
		p.Routes = &routes
	}
	if p != (fileProxy{}) {
		f.Proxy = &p
	}

	var buf bytes.Buffer
	buf.WriteString(fileHeader)
	var body bytes.Buffer
	if err := toml.NewEncoder(&body).SetArraysMultiline(true).Encode(f); err != nil {
		return nil, err
	}
	if body.Len() > 0 {
		buf.WriteByte('\n')
		buf.Write(body.Bytes())
	}
	return buf.Bytes(), nil
}

// routesEqual reports whether two route lists mean the same, nil and empty
// lists of scopes alike.
func routesEqual(a, b []Route) bool {
	return slices.EqualFunc(a, b, func(x, y Route) bool {
		return x.Name == y.Name && x.Prefix == y.Prefix && x.Upstream == y.Upstream &&
			x.Auth == y.Auth && x.Account == y.Account && slices.Equal(x.Scopes, y.Scopes)
	})
}
