package localproxy

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
)

// TestNoTokenInLogsOrStatus runs a whole proxy session (bearer, claims challenge, revoked token,
// Strapi exchange and re-exchange, token and upstream errors, guard refusals) and checks that
// no token that was issued shows up in the access log, the live log, the status page or an
// error answer, and that nothing JWT-shaped ("eyJ") does either.
func TestNoTokenInLogsOrStatus(t *testing.T) {
	var logs logBuffer
	tokens := newFakeTokens()
	strapi := newFakeStrapi(t)

	claims := base64.StdEncoding.EncodeToString([]byte(`{"access_token":{"nbf":{"essential":true,"value":"1"}}}`))
	var mu sync.Mutex
	calls := 0
	api := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		switch {
		case r.URL.Path == "/challenge" && n%2 == 1:
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_claims", claims="`+claims+`"`)
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/revoked" && n%2 == 1:
			w.WriteHeader(http.StatusUnauthorized)
		default:
			io.WriteString(w, `{"ok":true}`)
		}
	})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()

	s := startProxy(t, Options{
		Logger:   logs.logger(),
		Tokens:   tokens,
		Accounts: staticAccounts{{ID: "id-adele", Username: "adele@contoso.test", State: auth.StateReady, Active: true}},
		Routes: []config.Route{
			bearerRoute("api", "/api/", api.URL, "api://x/.default"),
			{Name: "cms", Prefix: "/cms/", Upstream: strapi.URL, Auth: config.AuthStrapi},
			bearerRoute("dead", "/dead/", dead),
		},
	})
	var entries []LogEntry
	var emu sync.Mutex
	cancel := s.Subscribe(func(e LogEntry) {
		emu.Lock()
		entries = append(entries, e)
		emu.Unlock()
	})
	base := s.BaseURL()
	var answers []string
	keep := func(r result) { answers = append(answers, r.Body) }

	keep(get(t, base+"/api/ok"))
	issued := tokens.issuedTokens()
	// A token in a query string (some clients do that) must not reach the log either.
	keep(get(t, base+"/api/ok?access_token="+issued[0]))
	keep(get(t, base+"/api/challenge"))
	keep(get(t, base+"/api/revoked"))
	keep(get(t, base+"/cms/api/articles"))
	strapi.revokeAll()
	keep(get(t, base+"/cms/api/articles"))
	keep(get(t, base+"/dead/x"))
	tokens.set(func(f *fakeTokens) {
		f.err = &auth.AccountError{Account: "adele@contoso.test", Op: "refreshing token", Code: "invalid_grant", Err: auth.ErrNeedsSignIn}
	})
	keep(get(t, base+"/api/ok"))
	keep(get(t, base+"/cms/api/articles", HeaderAccount, "alex@fabrikam.test"))
	tokens.set(func(f *fakeTokens) { f.err = auth.ErrUnavailable })
	keep(get(t, base+"/api/ok"))
	tokens.set(func(f *fakeTokens) { f.err = nil })
	strapi.mu.Lock()
	strapi.status = http.StatusBadRequest
	strapi.mu.Unlock()
	keep(get(t, base+"/cms/api/articles", HeaderAccount, "megan@contoso.test"))
	keep(get(t, base+"/api/ok", "Origin", "https://evil.example"))
	keep(raw(t, hostOf(s), "GET /api/ok HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer "+issued[0]+"\r\n\r\n"))
	status := get(t, base+"/_companion/status")
	keep(status)
	cancel()

	secrets := append(tokens.issuedTokens(), strapi.issued...)
	if len(secrets) < 6 {
		t.Fatalf("the session issued only %d tokens", len(secrets))
	}
	emu.Lock()
	live, _ := json.Marshal(entries)
	emu.Unlock()
	places := map[string]string{
		"access log":  logs.String(),
		"live log":    string(live),
		"status page": status.Body,
		"answers":     strings.Join(answers, "\n"),
	}
	for where, text := range places {
		for _, tok := range secrets {
			if strings.Contains(text, tok) {
				t.Errorf("%s contains an issued token", where)
			}
		}
		if where != "answers" && strings.Contains(text, "eyJ") {
			t.Errorf("%s contains something JWT-shaped", where)
		}
	}
	// Answers from upstreams may hold anything; the proxy's own error answers hold no JWT.
	for _, a := range answers {
		if strings.Contains(a, `"error":"`) && strings.Contains(a, "eyJ") {
			t.Errorf("error answer with a JWT-shaped string: %s", a)
		}
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var accessLines int
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if rec["msg"] == "proxy request" {
			accessLines++
			for _, k := range []string{"method", "path", "route", "account", "status", "duration", "bytes"} {
				if _, ok := rec[k]; !ok {
					t.Errorf("access log line without %s: %s", k, l)
				}
			}
			if strings.Contains(l, "?") {
				t.Errorf("access log line with a query string: %s", l)
			}
		}
	}
	if accessLines != len(answers) {
		t.Errorf("%d access log lines for %d requests", accessLines, len(answers))
	}
	t.Logf("%d tokens issued, %d log lines checked", len(secrets), len(lines))
}
