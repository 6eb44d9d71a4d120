package ui

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/assets"
	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/localproxy"
)

// newDeskHarness is a harness whose app has a tray.
func newDeskHarness(t *testing.T, accs ...auth.Account) (*harness, *fakeDesk) {
	h := newHarness(t, accs...)
	desk := &fakeDesk{App: h.app}
	h.u = h.build(desk)
	return h, desk
}

func TestStartSetsTrayStartsProxyShowsNothing(t *testing.T) {
	h, desk := newDeskHarness(t, adele, alex)
	h.u.Start()
	h.wait()
	h.flush()

	if starts, _ := h.proxy.counts(); starts != 1 {
		t.Errorf("proxy started %d times, want 1", starts)
	}
	m := desk.lastMenu()
	if m == nil {
		t.Fatal("no tray menu set")
	}
	if got := labels(m); got[0] != "Adele Vance — adele@contoso.com (off)" || !strings.HasPrefix(got[6], "[x] Proxy: on — http://127.0.0.1:8631") {
		t.Errorf("tray menu after start = %q", got)
	}
	if desk.lastIcon() != assets.TrayIcon {
		t.Errorf("tray icon = %v, want the light tray icon", iconName(desk.lastIcon()))
	}
	if got := windowTitles(h.app); len(got) != 0 {
		t.Errorf("windows made at start: %s, want none (tray only)", got)
	}
}

func TestTrayRebuildsOnEventsAndSwapsIcon(t *testing.T) {
	h, desk := newDeskHarness(t, adele, alex)
	h.u.Start()
	h.wait()

	h.acc.setState(adele.ID, auth.StateNeedsSignIn)
	h.flush()
	if desk.lastIcon() != assets.TrayIconAttention {
		t.Errorf("tray icon after needs_sign_in = %v, want the attention icon", iconName(desk.lastIcon()))
	}
	if got := labels(desk.lastMenu()); got[0] != "⚠ Adele Vance — adele@contoso.com — sign in again (off)" {
		t.Errorf("top item after needs_sign_in = %q", got[0])
	}

	h.acc.setState(adele.ID, auth.StateReady)
	h.flush()
	if desk.lastIcon() != assets.TrayIcon {
		t.Errorf("tray icon after sign-in = %v, want the normal icon", iconName(desk.lastIcon()))
	}

	// choosing Alex in the menu makes him active, and the rebuilt menu checks him
	item(t, desk.lastMenu(), "Accounts").ChildMenu.Items[1].Action()
	h.wait()
	h.flush()
	if got := labels(item(t, desk.lastMenu(), "Accounts").ChildMenu); got[1] != "[x] Alex Wilber — alex@contoso.com" {
		t.Errorf("Accounts submenu after switching = %q", got)
	}
}

func TestTrayIconFollowsDarkVariant(t *testing.T) {
	h, desk := newDeskHarness(t, adele)
	desk.dark = true
	h.u.Start()
	h.wait()
	if desk.lastIcon() != assets.TrayIconDark {
		t.Errorf("tray icon in a dark theme = %v, want TrayIconDark", iconName(desk.lastIcon()))
	}
}

func TestNotifiesWhenAccountNeedsSignIn(t *testing.T) {
	h, _ := newDeskHarness(t, adele, alex)
	h.u.Start()
	h.wait()

	h.acc.setState(alex.ID, auth.StateRefreshing)
	h.acc.setState(alex.ID, auth.StateNeedsSignIn)
	h.acc.setState(alex.ID, auth.StateNeedsSignIn) // the same state again: no second notification
	got := h.notes.all()
	if len(got) != 1 {
		t.Fatalf("notifications = %q, want exactly one", got)
	}
	if got[0][1] != "Sign in again to alex@contoso.com — choose it in the tray menu." {
		t.Errorf("notification body = %q", got[0][1])
	}
}

func TestNoDBusRunsWithoutTray(t *testing.T) {
	h, desk := newDeskHarness(t, adele)
	h.u.trayCheck = func() error { return errNoDBus }
	h.u.Start()
	h.wait()
	if desk.lastMenu() != nil || desk.lastIcon() != nil {
		t.Error("the tray was touched without a D-Bus session (fyne.io/systray panics on quit then)")
	}
	if !strings.Contains(h.logs.String(), "no D-Bus session: running without a tray icon; the Accounts window is the main window") {
		t.Errorf("missing the no-D-Bus log line; log:\n%s", h.logs)
	}
	if h.u.accounts == nil || !slices.Equal(windowTitles(h.app), []string{`"Accounts — Entra Companion"`}) {
		t.Fatalf("windows %s: the Accounts window is not shown as the main window", windowTitles(h.app))
	}
	// quitting (closing the main window does it) stops the proxy first
	h.u.Quit()
	h.wait()
	if _, stops := h.proxy.counts(); stops != 1 {
		t.Errorf("proxy stopped %d times on quit, want 1", stops)
	}
	if desk.quits != 1 {
		t.Errorf("app quit %d times, want 1", desk.quits)
	}
	// the needs-sign-in notification points to the window, not a tray
	if hint := h.u.signInHint(adele); !strings.Contains(hint, "Accounts window") {
		t.Errorf("sign-in hint without a tray = %q", hint)
	}
}

func TestNoTrayHostKeepsTrayAndShowsWindow(t *testing.T) {
	h, desk := newDeskHarness(t, adele)
	h.u.trayCheck = func() error { return errNoTrayHost }
	h.u.Start()
	h.wait()
	if desk.lastMenu() == nil {
		t.Error("no tray menu: it must be set so the icon appears when a tray host starts")
	}
	if !strings.Contains(h.logs.String(), "no system tray host found") {
		t.Errorf("missing the no-tray-host log line; log:\n%s", h.logs)
	}
	if h.u.accounts == nil {
		t.Error("the Accounts window must be shown when no tray host can show the menu")
	}
}

func TestQuitStopsProxyThenQuits(t *testing.T) {
	h, desk := newDeskHarness(t, adele)
	h.u.Start()
	h.wait()
	item(t, desk.lastMenu(), "Quit").Action()
	item(t, desk.lastMenu(), "Quit").Action() // twice: still one stop and one quit
	h.wait()
	if _, stops := h.proxy.counts(); stops != 1 {
		t.Errorf("proxy stopped %d times, want 1", stops)
	}
	if desk.quits != 1 {
		t.Errorf("app quit %d times, want 1", desk.quits)
	}
	if h.u.ctx.Err() == nil {
		t.Error("work in flight was not cancelled on quit")
	}
}

func TestProxyToggleAndStartFailure(t *testing.T) {
	h, desk := newDeskHarness(t, adele)
	h.proxy.startErr = errors.New("starting proxy on 127.0.0.1:8631: listen tcp 127.0.0.1:8631: bind: address already in use")
	h.u.Start()
	h.wait()
	got := h.notes.all()
	if len(got) != 1 || !strings.Contains(got[0][1], "Choose another port in Settings") {
		t.Errorf("notifications after a port clash = %q", got)
	}
	h.flush()
	if l := labels(desk.lastMenu()); l[6] != "Proxy: off" {
		t.Errorf("proxy item after a failed start = %q", l[6])
	}
	h.proxy.startErr = nil
	item(t, desk.lastMenu(), "Proxy: off").Action()
	h.wait()
	h.flush()
	if l := labels(desk.lastMenu()); l[6] != "[x] Proxy: on — http://127.0.0.1:8631" {
		t.Errorf("proxy item after turning it on = %q", l[6])
	}
}

func TestCopyTokenNeverLogsIt(t *testing.T) {
	h, desk := newDeskHarness(t, adele)
	const secret = "eyJhbGciOiJSUzI1NiJ9.eyJzZWNyZXQiOiJ5ZXMifQ.c2lnbmF0dXJlLXNlY3JldA"
	var asked auth.TokenRequest
	h.acc.token = func(_ context.Context, req auth.TokenRequest) (*auth.AccessToken, error) {
		asked = req
		return &auth.AccessToken{Value: secret, Header: "Bearer " + secret, ExpiresOn: testNow.Add(59*time.Minute + 30*time.Second),
			AccountID: adele.ID, Scopes: req.Scopes.List()}, nil
	}
	h.u.Start()
	h.wait()
	item(t, desk.lastMenu(), "Copy access token").ChildMenu.Items[1].Action() // the graph route
	h.wait()

	if got := h.clip.Content(); got != secret {
		t.Errorf("clipboard = %q, want the token", got)
	}
	if asked.Scopes.String() != "https://graph.microsoft.com/.default" {
		t.Errorf("token asked for scopes %q", asked.Scopes)
	}
	notes := h.notes.all()
	if len(notes) != 1 || notes[0][0] != "Access token copied" ||
		notes[0][1] != "graph — /graph/ token for adele@contoso.com, valid for 59 minutes (until 14:59)." {
		t.Errorf("notifications = %q", notes)
	}
	if !strings.Contains(h.logs.String(), "access token copied") {
		t.Errorf("the copy was not logged at all; log:\n%s", h.logs)
	}
	for _, part := range strings.Split(secret, ".") {
		if strings.Contains(h.logs.String(), part) {
			t.Errorf("the log holds part of the token: %q\n%s", part, h.logs)
		}
		for _, n := range notes {
			if strings.Contains(n[1], part) {
				t.Errorf("a notification holds part of the token: %q", n)
			}
		}
	}
}

func TestCopyTokenNeedsSignIn(t *testing.T) {
	h, desk := newDeskHarness(t, adele)
	h.acc.token = func(context.Context, auth.TokenRequest) (*auth.AccessToken, error) {
		return nil, &auth.AccountError{Account: adele.Username, Op: "refreshing token", Code: "invalid_grant", Err: auth.ErrNeedsSignIn}
	}
	h.u.Start()
	h.wait()
	item(t, desk.lastMenu(), "Copy access token").ChildMenu.Items[0].Action()
	h.wait()
	notes := h.notes.all()
	if len(notes) != 1 || notes[0][1] != "Sign in again to adele@contoso.com — choose it in the tray menu." {
		t.Errorf("notifications = %q", notes)
	}
	if h.clip.Content() != "" {
		t.Errorf("clipboard = %q after a failure", h.clip.Content())
	}
}

func TestRequestLogKeepsLast200NewestFirst(t *testing.T) {
	h := newHarness(t, adele)
	h.u.Start()
	h.wait()
	for i := range 250 {
		h.proxy.emit(localproxy.LogEntry{Time: testNow.Add(time.Duration(i) * time.Second), Method: "GET", Path: "/graph/v1.0/me?i=1", Status: 200})
	}
	got := h.u.requestLog()
	if len(got) != maxLog {
		t.Fatalf("kept %d entries, want %d", len(got), maxLog)
	}
	if !got[0].Time.Equal(testNow.Add(249*time.Second)) || !got[maxLog-1].Time.Equal(testNow.Add(50*time.Second)) {
		t.Errorf("first %v last %v: want newest first, oldest kept = #50", got[0].Time, got[maxLog-1].Time)
	}
	if got[0].Path != "/graph/v1.0/me" {
		t.Errorf("path %q keeps its query", got[0].Path)
	}
}

func TestExplain(t *testing.T) {
	needs := &auth.AccountError{Account: "adele@contoso.com", Op: "refreshing token", Err: auth.ErrNeedsSignIn}
	for _, tc := range []struct {
		err    error
		want   string
		signIn bool
	}{
		{needs, "Adele's sign-in has expired. Sign in again.", true},
		{context.Canceled, "Cancelled.", false},
		{auth.ErrKeychainTimeout, "The keychain did not answer. Unlock it (look for a password prompt) and try again.", false},
		{errors.New("boom: it broke"), "Something went wrong: Boom: it broke.", false},
	} {
		p := explain(tc.err, &adele)
		if p.Text != tc.want || (p.SignIn != nil) != tc.signIn {
			t.Errorf("explain(%v) = %q (sign in %v), want %q (%v)", tc.err, p.Text, p.SignIn != nil, tc.want, tc.signIn)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		40 * time.Second:                "40 seconds",
		time.Minute:                     "1 minute",
		59*time.Minute + 59*time.Second: "59 minutes",
		65 * time.Minute:                "1 hour 5 minutes",
		2 * time.Hour:                   "2 hours",
		-3 * time.Minute:                "3 minutes",
		72 * time.Hour:                  "3 days",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestWindowTitlesAndDemo(t *testing.T) {
	h := newHarness(t, adele)
	h.u.d.Demo = true
	h.state()
	h.u.ShowAccounts()
	h.u.ShowSettings()
	got := windowTitles(h.app)
	want := []string{`"Accounts — Entra Companion (demo)"`, `"Settings — Entra Companion (demo)"`}
	if !slices.Equal(got, want) {
		t.Errorf("titles %s, want %s", got, want)
	}
	h.u.ShowAccounts() // showing again reuses the window
	if n := len(windowTitles(h.app)); n != 2 {
		t.Errorf("%d windows after showing Accounts twice, want 2", n)
	}
}
