package ui

import (
	"slices"
	"strings"
	"testing"

	"fyne.io/fyne/v2"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
	"github.com/entra-companion/entra-companion/localproxy"
)

// labels lists a menu's item labels, "---" for separators, with "[x]" for checked and "(off)"
// for disabled items.
func labels(m *fyne.Menu) []string {
	var out []string
	for _, it := range m.Items {
		if it.IsSeparator {
			out = append(out, "---")
			continue
		}
		s := it.Label
		if it.Checked {
			s = "[x] " + s
		}
		if it.Disabled {
			s += " (off)"
		}
		out = append(out, s)
	}
	return out
}

func item(t *testing.T, m *fyne.Menu, label string) *fyne.MenuItem {
	t.Helper()
	for _, it := range m.Items {
		if it.Label == label {
			return it
		}
	}
	t.Fatalf("no item %q in %q", label, labels(m))
	return nil
}

func routes() []localproxy.RouteInfo { return config2routes(config.Default()) }

func TestMenuForOrderAndChecks(t *testing.T) {
	guest := adeleGuest
	st := MenuState{
		Accounts:     []auth.Account{adele, alex, guest},
		ProxyRunning: true,
		ProxyURL:     "http://127.0.0.1:8631",
		Routes:       append(routes(), localproxy.RouteInfo{Name: "static", Prefix: "/static/", Upstream: "http://localhost:3000/", Auth: config.AuthNone}),
		Attention:    true,
		TenantNames:  map[string]string{guest.TenantID: "Fabrikam"},
	}
	m := MenuFor(st, MenuActions{})
	want := []string{
		"Adele Vance — adele@contoso.com (off)",
		"⚠ Sign in again: adele@contoso.com",
		"Accounts",
		"Add account…",
		"Profile…",
		"Copy access token",
		"---",
		"[x] Proxy: on — http://127.0.0.1:8631",
		"Proxy…",
		"Settings…",
		"---",
		"Quit",
	}
	if got := labels(m); !slices.Equal(got, want) {
		t.Errorf("menu:\n got %q\nwant %q", got, want)
	}
	if !m.Items[len(m.Items)-1].IsQuit {
		t.Error("the last item must be the Quit item (IsQuit), or Fyne adds a second one")
	}

	accounts := item(t, m, "Accounts").ChildMenu
	wantAccounts := []string{
		"[x] Adele Vance — adele@contoso.com · 72f988bf…",
		"Alex Wilber — alex@contoso.com",
		"⚠ Adele Vance — adele@contoso.com · guest in Fabrikam — sign in again",
		"---",
		"Manage accounts…",
	}
	if got := labels(accounts); !slices.Equal(got, wantAccounts) {
		t.Errorf("Accounts submenu:\n got %q\nwant %q", got, wantAccounts)
	}

	tokens := item(t, m, "Copy access token").ChildMenu
	wantTokens := []string{"Microsoft Graph", "graph — /graph/", "cms — /cms/ (Microsoft token for Strapi)"}
	if got := labels(tokens); !slices.Equal(got, wantTokens) {
		t.Errorf("Copy access token submenu (no item for auth none):\n got %q\nwant %q", got, wantTokens)
	}
}

func TestMenuForMarksOfflineAndNoAccount(t *testing.T) {
	off := adele
	off.State = auth.StateOffline
	m := MenuFor(MenuState{Accounts: []auth.Account{off}}, MenuActions{})
	if got := m.Items[0].Label; got != "Adele Vance — adele@contoso.com (offline)" {
		t.Errorf("top label = %q", got)
	}
	if got := labels(m); !slices.Contains(got, "Proxy: off") {
		t.Errorf("proxy toggle when stopped missing: %q", got)
	}

	m = MenuFor(MenuState{}, MenuActions{})
	got := labels(m)
	if got[0] != "No account — sign in (off)" {
		t.Errorf("top label without accounts = %q", got[0])
	}
	if !slices.Contains(got, "Profile… (off)") || !slices.Contains(got, "Copy access token (off)") {
		t.Errorf("Profile and Copy access token must be disabled without accounts: %q", got)
	}
	if sub := labels(item(t, m, "Accounts").ChildMenu); sub[0] != "No accounts yet (off)" {
		t.Errorf("Accounts submenu without accounts = %q", sub)
	}

	m = MenuFor(MenuState{NoProxy: true}, MenuActions{})
	for _, l := range labels(m) {
		if strings.HasPrefix(l, "Proxy") {
			t.Errorf("proxy item %q shown without a proxy", l)
		}
	}
}

func TestMenuForTruncatesLongLabels(t *testing.T) {
	long := adele
	long.Username = "adele.vance-with-a-very-long-name@contoso.onmicrosoft.com"
	m := MenuFor(MenuState{Accounts: []auth.Account{long}}, MenuActions{})
	l := m.Items[0].Label
	if !strings.HasSuffix(l, "…") || len([]rune(l)) != maxLabel {
		t.Errorf("top label %q (%d runes) is not cut to %d with an ellipsis", l, len([]rune(l)), maxLabel)
	}
}

func TestMenuForActions(t *testing.T) {
	var got []string
	a := MenuActions{
		SetActive:    func(id string) { got = append(got, "active "+id) },
		SignInAgain:  func(acc auth.Account) { got = append(got, "again "+acc.Username+" "+acc.Authority) },
		AddAccount:   func() { got = append(got, "add") },
		ShowAccounts: func() { got = append(got, "accounts") },
		ShowProfile:  func() { got = append(got, "profile") },
		CopyToken: func(tt TokenTarget) {
			got = append(got, "token "+tt.Label+" "+strings.Join(tt.Scopes, ",")+" "+tt.Auth)
		},
		ToggleProxy:  func() { got = append(got, "toggle") },
		ShowProxy:    func() { got = append(got, "proxy") },
		ShowSettings: func() { got = append(got, "settings") },
		Quit:         func() { got = append(got, "quit") },
	}
	st := MenuState{Accounts: []auth.Account{adele, alex, adeleGuest}, Routes: routes(), Attention: true}
	m := MenuFor(st, a)

	accounts := item(t, m, "Accounts").ChildMenu
	accounts.Items[1].Action() // Alex: set active
	accounts.Items[2].Action() // the guest needs sign-in: sign in with hint
	item(t, accounts, "Manage accounts…").Action()
	m.Items[1].Action() // the top "Sign in again" item
	item(t, m, "Add account…").Action()
	item(t, m, "Profile…").Action()
	tokens := item(t, m, "Copy access token").ChildMenu
	tokens.Items[0].Action()
	tokens.Items[1].Action()
	tokens.Items[2].Action()
	item(t, m, "Proxy: off").Action()
	item(t, m, "Proxy…").Action()
	item(t, m, "Settings…").Action()
	item(t, m, "Quit").Action()

	want := []string{
		"active " + alex.ID,
		"again adele@contoso.com https://login.microsoftonline.com/fabrikam.com/",
		"accounts",
		"again adele@contoso.com https://login.microsoftonline.com/fabrikam.com/",
		"add",
		"profile",
		"token Microsoft Graph  ",
		"token graph — /graph/ https://graph.microsoft.com/.default bearer",
		"token cms — /cms/ (Microsoft token for Strapi)  strapi",
		"toggle",
		"proxy",
		"settings",
		"quit",
	}
	if !slices.Equal(got, want) {
		t.Errorf("actions:\n got %q\nwant %q", got, want)
	}
}

func TestMenuForNilActionsLeaveItemsInert(t *testing.T) {
	m := MenuFor(MenuState{Accounts: []auth.Account{adele}, Routes: routes()}, MenuActions{})
	var walk func(*fyne.Menu)
	walk = func(m *fyne.Menu) {
		for _, it := range m.Items {
			if !it.IsSeparator && it.Action != nil {
				t.Errorf("item %q has an action though none was given", it.Label)
			}
			if it.ChildMenu != nil {
				walk(it.ChildMenu)
			}
		}
	}
	walk(m)
}

func TestCurlExample(t *testing.T) {
	for _, tc := range []struct {
		base   string
		routes []localproxy.RouteInfo
		want   string
	}{
		{"http://127.0.0.1:8631", routes(), "curl http://127.0.0.1:8631/graph/v1.0/me"},
		{"http://127.0.0.1:40000/", []localproxy.RouteInfo{{Name: "ms", Prefix: "/ms/", Upstream: "https://graph.microsoft.com/"}}, "curl http://127.0.0.1:40000/ms/v1.0/me"},
		{"http://127.0.0.1:8631", []localproxy.RouteInfo{{Name: "cms", Prefix: "/cms/", Upstream: "http://localhost:1337/"}}, "curl http://127.0.0.1:8631/cms/"},
		{"", nil, "curl http://127.0.0.1:8631/graph/v1.0/me"},
	} {
		if got := CurlExample(tc.base, tc.routes); got != tc.want {
			t.Errorf("CurlExample(%q) = %q, want %q", tc.base, got, tc.want)
		}
	}
}
