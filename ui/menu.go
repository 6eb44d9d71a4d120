package ui

import (
	"strings"
	"unicode/utf8"

	"fyne.io/fyne/v2"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
	"github.com/entra-companion/entra-companion/localproxy"
)

// MenuState is everything the tray menu shows. It is a plain value: MenuFor turns it into a
// menu without touching the display, so tests need none.
type MenuState struct {
	// Accounts are the signed-in accounts, in the broker's order.
	Accounts []auth.Account
	// Active is the active account's ID; empty means the account whose Active field is set.
	Active string
	// TenantNames maps tenant ids to display names, when Graph told them; they tell apart
	// the same user in two tenants.
	TenantNames map[string]string
	// ProxyRunning reports whether the proxy listens.
	ProxyRunning bool
	// ProxyURL is the proxy's base URL.
	ProxyURL string
	// Routes are the proxy's routes; those with a token (bearer, strapi) get a
	// "Copy access token" item.
	Routes []localproxy.RouteInfo
	// Attention is true when an account must sign in again (the tray icon changes too).
	Attention bool
	// NoProxy hides the proxy items (no proxy configured).
	NoProxy bool
}

// ActiveAccount returns the active account, or nil when none is signed in or active.
func (s MenuState) ActiveAccount() *auth.Account {
	for i := range s.Accounts {
		a := &s.Accounts[i]
		if (s.Active != "" && a.ID == s.Active) || (s.Active == "" && a.Active) {
			return a
		}
	}
	return nil
}

// TokenTarget is what a "Copy access token" item asks a token for.
type TokenTarget struct {
	// Label names the target in the menu and the notification ("Microsoft Graph", a route).
	Label string
	// Route is the proxy route's name; empty for Microsoft Graph.
	Route string
	// Auth is the route's auth mode (bearer or strapi); empty for Microsoft Graph.
	Auth string
	// Scopes are the scopes to ask for; empty means the sign-in scopes (Graph).
	Scopes []string
	// Account pins the token to an account (the route's); empty means the active account.
	Account string
}

// MenuActions are what the tray menu's items do. A nil action leaves its item without one.
type MenuActions struct {
	// SetActive makes the account with this ID the active one.
	SetActive func(accountID string)
	// SignInAgain starts a sign-in for an account that needs one (with its login hint).
	SignInAgain func(account auth.Account)
	// AddAccount opens the way to sign in another account.
	AddAccount func()
	// ShowAccounts opens the Accounts window.
	ShowAccounts func()
	// ShowProfile opens the Profile window.
	ShowProfile func()
	// CopyToken copies a fresh access token for the target to the clipboard.
	CopyToken func(TokenTarget)
	// ToggleProxy starts the proxy when it is stopped and stops it when it runs.
	ToggleProxy func()
	// ShowProxy opens the Proxy window.
	ShowProxy func()
	// ShowSettings opens the Settings window.
	ShowSettings func()
	// Quit stops the proxy and quits.
	Quit func()
}

// Labels of the fixed tray items.
const (
	labelAccounts     = "Accounts"
	labelManage       = "Manage accounts…"
	labelAddAccount   = "Add account…"
	labelProfile      = "Profile…"
	labelCopyToken    = "Copy access token"
	labelGraph        = "Microsoft Graph"
	labelProxyWindow  = "Proxy…"
	labelSettings     = "Settings…"
	labelQuit         = "Quit"
	labelNoAccount    = "No account — sign in"
	labelNoAccounts   = "No accounts yet"
	markNeedsSignIn   = "⚠ "
	suffixNeedsSignIn = " — sign in again"
	suffixOffline     = " (offline)"
	maxLabel          = 44
)

// MenuFor builds the tray menu from the state. It is pure: no display, no I/O; every item's
// Action calls the matching field of a (through a closure over the item's data).
//
// Order: the active account (a disabled label), one "Sign in again" item per account that
// needs it, the Accounts submenu, Add account…, Profile…, the Copy access token submenu, a
// separator, the proxy toggle and Proxy…, Settings…, a separator and Quit.
func MenuFor(s MenuState, a MenuActions) *fyne.Menu {
	var items []*fyne.MenuItem
	active := s.ActiveAccount()

	top := fyne.NewMenuItem(labelNoAccount, nil)
	if active != nil {
		top.Label = markedLabel(*active, truncate(accountLabel(*active), maxLabel))
	}
	top.Disabled = true
	items = append(items, top)

	for _, acc := range s.Accounts {
		if acc.State == auth.StateNeedsSignIn {
			acc := acc
			items = append(items, fyne.NewMenuItem(markNeedsSignIn+"Sign in again: "+truncate(acc.Username, maxLabel),
				call1(a.SignInAgain, acc)))
		}
	}

	accounts := fyne.NewMenu(labelAccounts)
	for _, acc := range s.Accounts {
		acc := acc
		it := fyne.NewMenuItem(markedLabel(acc, accountLine(acc, s)), nil)
		it.Checked = active != nil && acc.ID == active.ID
		if acc.State == auth.StateNeedsSignIn {
			it.Action = call1(a.SignInAgain, acc)
		} else {
			it.Action = call1(a.SetActive, acc.ID)
		}
		accounts.Items = append(accounts.Items, it)
	}
	if len(s.Accounts) == 0 {
		none := fyne.NewMenuItem(labelNoAccounts, nil)
		none.Disabled = true
		accounts.Items = append(accounts.Items, none)
	}
	accounts.Items = append(accounts.Items, fyne.NewMenuItemSeparator(), fyne.NewMenuItem(labelManage, a.ShowAccounts))
	accountsItem := fyne.NewMenuItem(labelAccounts, nil)
	accountsItem.ChildMenu = accounts
	items = append(items, accountsItem, fyne.NewMenuItem(labelAddAccount, a.AddAccount))

	prof := fyne.NewMenuItem(labelProfile, a.ShowProfile)
	prof.Disabled = active == nil
	items = append(items, prof)

	tokens := fyne.NewMenu(labelCopyToken)
	for _, t := range TokenTargets(s.Routes) {
		tokens.Items = append(tokens.Items, fyne.NewMenuItem(t.Label, call1(a.CopyToken, t)))
	}
	tokenItem := fyne.NewMenuItem(labelCopyToken, nil)
	tokenItem.ChildMenu = tokens
	tokenItem.Disabled = len(s.Accounts) == 0
	items = append(items, tokenItem, fyne.NewMenuItemSeparator())

	if !s.NoProxy {
		toggle := fyne.NewMenuItem(ProxyLabel(s.ProxyRunning, s.ProxyURL), a.ToggleProxy)
		toggle.Checked = s.ProxyRunning
		items = append(items, toggle, fyne.NewMenuItem(labelProxyWindow, a.ShowProxy))
	}
	items = append(items, fyne.NewMenuItem(labelSettings, a.ShowSettings), fyne.NewMenuItemSeparator())

	quit := fyne.NewMenuItem(labelQuit, a.Quit)
	quit.IsQuit = true
	items = append(items, quit)
	return fyne.NewMenu("Entra Companion", items...)
}

// TokenTargets lists what a token can be copied for: Microsoft Graph, then every route that
// attaches a token (auth bearer or strapi). A strapi route's token is the Microsoft token the
// proxy exchanges for a Strapi JWT.
func TokenTargets(routes []localproxy.RouteInfo) []TokenTarget {
	out := []TokenTarget{{Label: labelGraph}}
	for _, r := range routes {
		switch r.Auth {
		case config.AuthBearer, config.AuthStrapi:
		default:
			continue
		}
		label := r.Name + " — " + r.Prefix
		if r.Auth == config.AuthStrapi {
			label += " (Microsoft token for Strapi)"
		}
		out = append(out, TokenTarget{Label: label, Route: r.Name, Auth: r.Auth, Scopes: r.Scopes, Account: r.Account})
	}
	return out
}

// ProxyLabel is the proxy toggle's label: "Proxy: on — http://127.0.0.1:8631" or "Proxy: off".
func ProxyLabel(running bool, url string) string {
	if !running {
		return "Proxy: off"
	}
	if url == "" {
		return "Proxy: on"
	}
	return "Proxy: on — " + url
}

// accountLabel is "Name — username", or the username alone.
func accountLabel(a auth.Account) string {
	switch {
	case a.Name != "" && a.Username != "" && a.Name != a.Username:
		return a.Name + " — " + a.Username
	case a.Username != "":
		return a.Username
	case a.Name != "":
		return a.Name
	}
	return a.ID
}

// accountLine is an Accounts submenu label: the account label, "(app)" for app-only identities,
// and the tenant when another account has the same username (the same person in two tenants).
func accountLine(a auth.Account, s MenuState) string {
	label := truncate(accountLabel(a), maxLabel)
	if a.Kind == auth.KindApp {
		label += " (app)"
	}
	for _, o := range s.Accounts {
		if o.ID != a.ID && strings.EqualFold(o.Username, a.Username) {
			label += " · " + tenantLabel(a, s.TenantNames)
			break
		}
	}
	return label
}

// tenantLabel names an account's tenant: its display name if known, else a short id; "guest in"
// for guests.
func tenantLabel(a auth.Account, names map[string]string) string {
	t := names[a.TenantID]
	if t == "" {
		t = shortID(a.TenantID)
	}
	if a.Guest() {
		return "guest in " + t
	}
	return t
}

// markedLabel adds the state's marks: "⚠ … — sign in again" or "… (offline)".
func markedLabel(a auth.Account, label string) string {
	switch a.State {
	case auth.StateNeedsSignIn:
		return markNeedsSignIn + label + suffixNeedsSignIn
	case auth.StateOffline:
		return label + suffixOffline
	}
	return label
}

// shortID shortens a GUID to its first group and an ellipsis.
func shortID(id string) string {
	if i := strings.IndexByte(id, '-'); i > 0 {
		return id[:i] + "…"
	}
	if id == "" {
		return "unknown tenant"
	}
	return truncate(id, 12)
}

// truncate shortens s to at most n runes, ending with "…" when it cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// call1 binds an argument to an optional action.
func call1[T any](fn func(T), v T) func() {
	if fn == nil {
		return nil
	}
	return func() { fn(v) }
}
