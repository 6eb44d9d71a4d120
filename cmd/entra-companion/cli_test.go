package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
	"github.com/entra-companion/entra-companion/sim"
)

// TestMain lets the test binary stand in for the entra-companion binary: with
// ENTRA_RUN_AS_CLI=1 it runs the command line with its arguments, so the tests run real
// processes (their own keychain connection, SSL_CERT_FILE, exit codes) without another build.
func TestMain(m *testing.M) {
	if os.Getenv("ENTRA_RUN_AS_CLI") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// cliEnv is a user's machine for the command line: a settings file pointing at a simulated
// cloud, a keychain service of its own, a config directory, and a browser that hands the
// sign-in page to the test.
type cliEnv struct {
	t       *testing.T
	sim     *sim.Server
	home    string // XDG_CONFIG_HOME
	cfgPath string
	caFile  string
	service string
	urls    string // where the fake browser writes the URLs it is asked to open
	browser string
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	requireKeychain(t)
	s := sim.Start(t, sim.Options{DeviceCodeInterval: time.Second})
	dir := t.TempDir()
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	e := &cliEnv{
		t: t, sim: s, home: filepath.Join(dir, "config"), caFile: filepath.Join(dir, "ca.pem"),
		service: "entra-companion-clitest-" + hex.EncodeToString(rb[:]), urls: filepath.Join(dir, "urls.txt"),
		browser: filepath.Join(dir, "browser.sh"),
	}
	e.cfgPath = filepath.Join(e.home, "entra-companion", "config.toml")
	if err := os.WriteFile(e.caFile, s.CAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.browser, []byte("#!/bin/sh\necho \"$1\" >> "+e.urls+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.ClientID = sim.PublicClientID
	cfg.Authority = strings.TrimSuffix(s.Authority("organizations"), "/")
	cfg.GraphURL = s.GraphURL()
	cfg.Scopes = []string{"GroupMember.Read.All"}
	cfg.KeychainService = e.service
	cfg.Proxy.Routes[0].Upstream = strings.TrimSuffix(s.GraphURL(), "v1.0")
	if err := config.Save(e.cfgPath, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		k := &auth.Keyring{Service: e.service}
		for _, item := range keychainItems(t, e.service) {
			_ = k.Delete(item)
		}
	})
	return e
}

// requireKeychain skips outside scripts/test and fails inside it when no Secret Service works.
func requireKeychain(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := auth.ProbeKeychain(ctx, &auth.Keyring{Service: "entra-companion-probe"}); err != nil {
		if os.Getenv("ENTRA_E2E") != "" {
			t.Fatalf("no working Secret Service in the test session: %v", err)
		}
		t.Skipf("no Secret Service (%v): run the tests with scripts/test", err)
	}
}

func keychainItems(t *testing.T, service string) []string {
	out, _ := exec.Command("secret-tool", "search", "--all", "service", service).CombinedOutput()
	var items []string
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "attribute.username = "); ok {
			items = append(items, strings.TrimSpace(v))
		}
	}
	return items
}

func (e *cliEnv) command(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(),
		"ENTRA_RUN_AS_CLI=1", "XDG_CONFIG_HOME="+e.home, "ENTRA_COMPANION_CONFIG="+e.cfgPath,
		"SSL_CERT_FILE="+e.caFile, "BROWSER="+e.browser)
	return cmd
}

type result struct {
	stdout, stderr string
	code           int
}

func (e *cliEnv) run(stdin string, args ...string) result {
	e.t.Helper()
	cmd := e.command(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errb, strings.NewReader(stdin)
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("running %v: %v", args, err)
	}
	return r
}

func (e *cliEnv) mustRun(stdin string, args ...string) result {
	e.t.Helper()
	r := e.run(stdin, args...)
	if r.code != 0 {
		e.t.Fatalf("entra-companion %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// loginBrowser runs `login` and plays the user in the browser it opens.
func (e *cliEnv) loginBrowser(upn string, args ...string) auth.Account {
	e.t.Helper()
	_ = os.Remove(e.urls)
	cmd := e.command(append([]string{"login", "--json", "--login-hint", upn}, args...)...)
	var out bytes.Buffer
	var errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	var url string
	deadline := time.Now().Add(30 * time.Second)
	for url == "" && time.Now().Before(deadline) {
		b, _ := os.ReadFile(e.urls)
		url = strings.TrimSpace(string(b))
		time.Sleep(20 * time.Millisecond)
	}
	if url == "" {
		_ = cmd.Process.Kill()
		e.t.Fatalf("login never opened a browser; stderr: %s", errb.String())
	}
	if err := e.sim.Browser(upn)(url); err != nil {
		e.t.Fatalf("signing in on the page: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		e.t.Fatalf("login: %v\n%s", err, errb.String())
	}
	var a auth.Account
	if err := json.Unmarshal(out.Bytes(), &a); err != nil {
		e.t.Fatalf("login --json printed %q: %v", out.String(), err)
	}
	return a
}

// The command line, as a new user would use it: users by browser and device code, a guest, an
// app; accounts, token, use, logout, me and verify — each a new process.
func TestCommandLine(t *testing.T) {
	e := newCLIEnv(t)
	s := e.sim

	// Device code, JSON: first the code, then the account.
	cmd := e.command("login", "--device-code", "--json")
	stdout, _ := cmd.StdoutPipe()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatalf("no device code line; stderr: %s", errb.String())
	}
	var dc struct {
		VerificationURI string `json:"verification_uri"`
		UserCode        string `json:"user_code"`
		ExpiresIn       int    `json:"expires_in"`
	}
	if err := json.Unmarshal(sc.Bytes(), &dc); err != nil || dc.UserCode == "" || dc.VerificationURI == "" || dc.ExpiresIn <= 0 {
		t.Fatalf("device code line %q: %v", sc.Text(), err)
	}
	if err := s.ApproveDeviceCode(dc.UserCode, sim.UserAlex); err != nil {
		t.Fatal(err)
	}
	if !sc.Scan() {
		t.Fatalf("no account line; stderr: %s", errb.String())
	}
	var alex auth.Account
	if err := json.Unmarshal(sc.Bytes(), &alex); err != nil || alex.Username != sim.UserAlex {
		t.Fatalf("account line %q: %v", sc.Text(), err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("login --device-code: %v", err)
	}

	adele := e.loginBrowser(sim.UserAdele)
	guest := e.loginBrowser(sim.UserAdele, "--authority", s.Authority(sim.TenantFabrikam))
	if !guest.Guest() || guest.ID == adele.ID {
		t.Fatalf("guest account: %+v", guest)
	}
	var cc sim.Client
	for _, c := range s.Clients() {
		if c.Kind == sim.KindConfidential {
			cc = c
		}
	}
	app := e.mustRun(cc.Secret, "login", "--app", "--client-id", cc.ID, "--authority", s.Authority(sim.TenantContoso), "--secret-stdin", "--name", "ci-bot", "--json")
	if !strings.Contains(app.stdout, `"kind":"app"`) {
		t.Fatalf("app login: %s", app.stdout)
	}

	// Plain device-code output is a sentence with the URL and the code.
	plain := e.command("login", "--device-code")
	pout, _ := plain.StdoutPipe()
	if err := plain.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(pout).ReadString('\n')
	if !strings.HasPrefix(line, "To sign in, open http") || !strings.Contains(line, "enter the code") {
		t.Errorf("plain device code output: %q", line)
	}
	_ = plain.Process.Kill()
	_ = plain.Wait()

	var accts []auth.Account
	if err := json.Unmarshal([]byte(e.mustRun("", "accounts", "--json").stdout), &accts); err != nil || len(accts) != 4 {
		t.Fatalf("accounts --json: %d accounts, %v", len(accts), err)
	}
	if table := e.mustRun("", "accounts").stdout; !strings.Contains(table, "(guest)") || !strings.Contains(table, "*") {
		t.Errorf("accounts table lacks the guest or the active mark:\n%s", table)
	}

	var issued []string
	var tok struct {
		AccessToken string   `json:"access_token"`
		ExpiresOn   int64    `json:"expires_on"`
		Account     string   `json:"account"`
		Scopes      []string `json:"scopes"`
		TokenType   string   `json:"token_type"`
	}
	if err := json.Unmarshal([]byte(e.mustRun("", "token", "--json", "--account", sim.UserAlex).stdout), &tok); err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.Account != sim.UserAlex || tok.TokenType != "Bearer" || tok.ExpiresOn < time.Now().Unix() || len(tok.Scopes) == 0 {
		t.Errorf("token --json: %+v", tok)
	}
	issued = append(issued, tok.AccessToken)
	cmsTok := strings.TrimSpace(e.mustRun("", "token", "--account", guest.ID, "--scope", sim.CMSAudience+"/.default").stdout)
	issued = append(issued, cmsTok)
	appTok := strings.TrimSpace(e.mustRun("", "token", "--account", "ci-bot", "--scope", sim.CMSAudience+"/.default").stdout)
	issued = append(issued, appTok)

	// verify: a good token, then the wrong audience.
	ok := e.run("", "verify", cmsTok, "--audience", sim.CMSClientID)
	if ok.code != 0 || !strings.Contains(ok.stdout, "Token is valid") {
		t.Errorf("verify good token: exit %d\n%s%s", ok.code, ok.stdout, ok.stderr)
	}
	bad := e.run("", "verify", cmsTok, "--audience", "api://someone-else", "--json")
	if bad.code != exitInvalid || !strings.Contains(bad.stdout, `"valid":false`) {
		t.Errorf("verify wrong audience: exit %d\n%s", bad.code, bad.stdout)
	}

	// me for the guest: the resource tenant and the home tenant.
	var me meJSON
	if err := json.Unmarshal([]byte(e.mustRun("", "me", "--json", "--account", guest.ID).stdout), &me); err != nil {
		t.Fatal(err)
	}
	if me.Organization == nil || me.Organization.TenantID != sim.TenantFabrikamID || me.HomeTenantID != sim.TenantContosoID || !me.Guest || me.Profile.UserType != "Guest" {
		t.Errorf("me --json for the guest: tenant %+v home %s guest %v", me.Organization, me.HomeTenantID, me.Guest)
	}
	photo := filepath.Join(t.TempDir(), "adele.jpg")
	e.mustRun("", "me", "--account", adele.ID, "--photo", photo)
	if b, err := os.ReadFile(photo); err != nil || len(b) < 100 || b[0] != 0xFF || b[1] != 0xD8 {
		t.Errorf("--photo did not write a JPEG: %v", err)
	}

	// use: unknown account is exit 4; a known one becomes active everywhere.
	if r := e.run("", "use", "nobody@nowhere.example"); r.code != exitUnknownAccount || !strings.Contains(r.stderr, "entra-companion accounts") {
		t.Errorf("use unknown: exit %d, %s", r.code, r.stderr)
	}
	e.mustRun("", "use", sim.UserAlex)
	if r := e.mustRun("", "token", "--json"); !strings.Contains(r.stdout, `"account":"`+sim.UserAlex+`"`) {
		t.Errorf("after use, token is for another account: %s", r.stdout)
	}

	// Revoked: exit 3 and a message that says to sign in again.
	s.RevokeRefreshTokens(sim.UserAlex)
	r := e.run("", "token", "--account", sim.UserAlex)
	if r.code != exitNeedsSignIn || !strings.Contains(r.stderr, "sign in again") || !strings.Contains(r.stderr, "entra-companion login") {
		t.Errorf("revoked: exit %d, stderr %s", r.code, r.stderr)
	}
	if r := e.mustRun("", "accounts", "--json"); !strings.Contains(r.stdout, `"state":"needs_sign_in"`) {
		t.Errorf("accounts does not show the revoked account: %s", r.stdout)
	}

	// logout leaves no item of that account.
	e.mustRun("", "logout", sim.UserAlex)
	home := strings.ToLower(alex.ID)
	for _, it := range keychainItems(t, e.service) {
		if strings.Contains(it, home) {
			t.Errorf("after logout the keychain still holds %s", it)
		}
	}

	// Nothing under the config directory holds token material.
	_ = filepath.WalkDir(e.home, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		for _, tkn := range issued {
			if bytes.Contains(b, []byte(tkn)) || bytes.Contains(b, []byte("eyJ")) {
				t.Errorf("%s contains token material", p)
			}
		}
		return nil
	})
}

// Usage errors and their exit code; --help on every command.
func TestUsageAndHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"token", "--bogus"}, strings.NewReader(""), &out, &errb); code != exitUsage {
		t.Errorf("unknown flag: exit %d, want %d (%s)", code, exitUsage, errb.String())
	}
	errb.Reset()
	if code := Main(context.Background(), []string{"use"}, strings.NewReader(""), &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "ACCOUNT") {
		t.Errorf("use without ACCOUNT: exit %d, %s", code, errb.String())
	}
	for _, c := range []string{"login", "accounts", "use", "logout", "token", "me", "verify", "proxy", "sim", "demo"} {
		out.Reset()
		if code := Main(context.Background(), []string{c, "--help"}, strings.NewReader(""), &out, &errb); code != 0 || !strings.Contains(out.String(), "Usage:") {
			t.Errorf("%s --help: exit %d\n%s", c, code, out.String())
		}
	}
	out.Reset()
	errb.Reset()
	cfg := filepath.Join(t.TempDir(), "bad.toml")
	_ = os.WriteFile(cfg, []byte("[proxy]\nlisten = \"0.0.0.0:8631\"\n"), 0o600)
	if code := Main(context.Background(), []string{"--config", cfg, "accounts"}, strings.NewReader(""), &out, &errb); code != exitConfig || !strings.Contains(errb.String(), "bad.toml:2") {
		t.Errorf("bad config: exit %d, %s", code, errb.String())
	}
}

// `sim --json` prints its URLs once ready; its CA file lets a client read the discovery document.
func TestSimCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"sim", "--json"}, strings.NewReader(""), pw, &errb)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading sim --json: %v (%s)", err, errb.String())
	}
	var info sim.Info
	if err := json.Unmarshal([]byte(line), &info); err != nil {
		t.Fatalf("sim --json printed %q: %v", line, err)
	}
	if len(info.Tenants) < 2 || len(info.Users) < 5 || info.GraphURL == "" || info.CMSURL == "" || info.CAFile == "" {
		t.Fatalf("incomplete: %+v", info)
	}
	pem, err := os.ReadFile(info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	client := clientTrusting(t, pem)
	url := fmt.Sprintf("%s/%s/v2.0/.well-known/openid-configuration", info.AuthorityHost, info.Tenants[0].Domain)
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	var doc struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if resp.StatusCode != 200 || doc.TokenEndpoint == "" || !strings.HasPrefix(doc.Issuer, info.AuthorityHost) {
		t.Errorf("discovery: %d %+v", resp.StatusCode, doc)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("sim exited %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sim did not stop on cancel")
	}
	if _, err := os.Stat(info.CAFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the temporary CA file was left behind: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func clientTrusting(t *testing.T, pem []byte) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("the CA file holds no certificate")
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
}

// The headless proxy with real accounts: a browser-like client (a loopback origin) reads the
// CMS and Graph through it as the active account and, with X-Entra-Account, as another; a
// revoked access token is refreshed and retried; a revoked refresh token is a 401
// needs_sign_in. Nothing secret reaches the client or the proxy's output.
func TestProxyCommand(t *testing.T) {
	e := newCLIEnv(t)
	s := e.sim
	cfg, err := config.Load(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Proxy.Routes = append(cfg.Proxy.Routes[:1], // graph (default, to the sim's Graph)
		config.Route{Name: "cms", Prefix: "/cms/", Upstream: s.CMSURL() + "/", Scopes: []string{sim.CMSAudience + "/.default"}, Auth: config.AuthBearer},
		config.Route{Name: "strapi", Prefix: "/strapi/", Upstream: s.CMSURL() + "/", Auth: config.AuthStrapi})
	if err := config.Save(e.cfgPath, cfg); err != nil {
		t.Fatal(err)
	}
	adele := e.loginBrowser(sim.UserAdele)
	guest := e.loginBrowser(sim.UserAdele, "--authority", s.Authority(sim.TenantFabrikam))
	alex := e.loginBrowser(sim.UserAlex)

	cmd := e.command("proxy", "--listen", "127.0.0.1:0")
	stdout, _ := cmd.StdoutPipe()
	var errb syncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	first, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("proxy printed nothing: %v; stderr %s", err, errb.String())
	}
	var base string
	if f := strings.Fields(first); len(f) > 3 {
		base = f[3]
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("first line %q does not give the base URL", first)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	get := func(path, account string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Origin", "http://localhost:5173")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Cookie", "session=should-not-travel")
		if account != "" {
			req.Header.Set("X-Entra-Account", account)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		if resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" {
			t.Errorf("GET %s: no CORS allowance for a loopback origin", path)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}

	// The active account (adele, signed in first) and another by header.
	if code, me := get("/graph/v1.0/me", ""); code != 200 || me["userPrincipalName"] != sim.UserAdele {
		t.Fatalf("/graph/v1.0/me as the active account: %d %v", code, me)
	}
	if code, me := get("/graph/v1.0/me", sim.UserAlex); code != 200 || me["userPrincipalName"] != sim.UserAlex {
		t.Fatalf("/graph/v1.0/me as alex: %d %v", code, me)
	}
	if code, me := get("/graph/v1.0/me", guest.ID); code != 200 || !strings.Contains(fmt.Sprint(me["userPrincipalName"]), "#EXT#") {
		t.Fatalf("/graph/v1.0/me as the guest: %d %v", code, me)
	}
	code, arts := get("/cms/api/articles", alex.ID)
	if code != 200 || arts["data"] == nil {
		t.Fatalf("/cms/api/articles as alex: %d %v", code, arts)
	}
	if code, echo := get("/cms/api/echo", ""); code != 200 || echo["authorized"] != true || echo["preferred_username"] != sim.UserAdele {
		t.Fatalf("/cms/api/echo: %d %v", code, echo)
	}
	if code, arts := get("/strapi/api/articles", ""); code != 200 || arts["data"] == nil {
		t.Fatalf("/strapi/api/articles (strapi exchange): %d %v", code, arts)
	}
	rejected := s.Rejected(sim.EndpointCMSArticles)

	// CAE: the CMS revokes adele's access tokens mid-session; the next request still succeeds.
	s.RevokeAccessTokens(sim.UserAdele)
	if code, _ := get("/cms/api/articles", ""); code != 200 {
		t.Fatalf("after access-token revocation: %d, want 200 after refresh and retry", code)
	}
	if s.Rejected(sim.EndpointCMSArticles) != rejected+1 {
		t.Errorf("the revoked token should have been refused once, then retried: %d refusals", s.Rejected(sim.EndpointCMSArticles)-rejected)
	}

	// Refresh tokens revoked too: the user must sign in again, and the answer says so.
	s.RevokeRefreshTokens(sim.UserAlex)
	s.RevokeAccessTokens(sim.UserAlex)
	code, body := get("/cms/api/articles", sim.UserAlex)
	if code != 401 || body["error"] != "needs_sign_in" || body["account"] == nil || body["route"] != "cms" {
		t.Fatalf("refresh token revoked: %d %v, want 401 needs_sign_in naming route and account", code, body)
	}
	if msg, _ := body["message"].(string); !strings.Contains(msg, "login") {
		t.Errorf("the message does not say how to sign in again: %q", msg)
	}
	_ = adele

	// The status page and the proxy's output hold no token material.
	resp, err := http.Get(base + "/_companion/status")
	if err != nil {
		t.Fatal(err)
	}
	status, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(status, []byte(sim.UserAlex)) {
		t.Errorf("status page: %d %s", resp.StatusCode, status)
	}
	for what, text := range map[string]string{"status page": string(status), "proxy stderr": errb.String()} {
		if strings.Contains(text, "eyJ") {
			t.Errorf("%s contains a JWT", what)
		}
	}
}

// In the C locale (servers, containers, CI) the command line prints no Fyne locale errors.
func TestNoLocaleNoiseInCLocale(t *testing.T) {
	for _, lang := range []string{"C", "C.UTF-8", "POSIX"} {
		cmd := exec.Command(os.Args[0], "--help")
		cmd.Env = append(os.Environ(), "ENTRA_RUN_AS_CLI=1", "LANG="+lang, "LC_ALL=", "LC_MESSAGES=", "LANGUAGE=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("LANG=%s: %v\n%s", lang, err, out)
		}
		if bytes.Contains(out, []byte("Fyne error")) || !bytes.Contains(out, []byte("Usage:")) {
			t.Errorf("LANG=%s: output:\n%s", lang, out)
		}
	}
}
