package ui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/theme"

	"github.com/entra-companion/entra-companion/assets"
	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/localproxy"
)

// appName is the name in window titles and notifications.
const appName = "Entra Companion"

// proxyStopTimeout bounds how long Quit waits for the proxy's requests in flight.
const proxyStopTimeout = 5 * time.Second

// maxLog is how many proxy requests the Proxy window keeps.
const maxLog = 200

// UI is the running tray app: the tray menu, the windows and the subscriptions that keep them
// current. Create it with New and start it with Run.
type UI struct {
	app fyne.App
	d   Deps
	log *slog.Logger

	// injectable for tests
	do        func(func()) // runs a function on Fyne's goroutine: fyne.Do
	now       func() time.Time
	exe       func() (string, error)
	trayCheck func() error

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // goroutines doing work (sign-in, Graph, tokens)
	busy   atomic.Int64   // how many of them run (tests wait for 0)

	mu     sync.Mutex
	states map[string]auth.State // last known state per account, for notifications
	logs   []localproxy.LogEntry // proxy requests, oldest first, at most maxLog

	logQueued atomic.Bool // a Proxy window refresh is queued
	dirty     chan struct{}
	flushes   chan chan struct{}
	loopDone  chan struct{}
	unsub     []func()
	started   bool
	quitOnce  sync.Once

	// Only touched on Fyne's goroutine.
	desk     desktop.App // nil when there is no tray
	master   bool        // the Accounts window is the main window (no tray)
	state    MenuState
	menu     *fyne.Menu
	icon     fyne.Resource
	accounts *accountsView
	profile  *profileView
	proxy    *proxyView
	settings *settingsView
}

// New prepares the UI for app a. It starts nothing: Run does.
func New(a fyne.App, d Deps) *UI {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &UI{
		app:       a,
		d:         d,
		log:       d.Logger,
		do:        fyne.Do,
		now:       time.Now,
		exe:       os.Executable,
		trayCheck: checkTray,
		ctx:       ctx,
		cancel:    cancel,
		states:    map[string]auth.State{},
		dirty:     make(chan struct{}, 1),
		flushes:   make(chan chan struct{}),
		loopDone:  make(chan struct{}),
	}
}

// Run starts the UI — tray menu and icon (or, without a tray, the Accounts window as the main
// window), subscriptions to account and proxy changes, the proxy itself — then runs the app
// until Quit, and cleans up. Call it on the main goroutine, as fyne.App.Run.
func (u *UI) Run() {
	u.Start()
	u.app.Run()
	u.shutdown()
}

// Start does what Run does before running the app's event loop: it shows nothing but the tray
// (or the Accounts window when there is no tray) and starts the proxy in the background. Run
// calls it; call it yourself only to drive the app's loop another way.
func (u *UI) Start() {
	if u.started {
		return
	}
	u.started = true

	for _, a := range u.d.Accounts.Accounts() {
		u.states[a.ID] = a.State
	}
	u.unsub = append(u.unsub, u.d.Accounts.Subscribe(u.onAccountEvent))
	if u.d.Proxy != nil {
		u.unsub = append(u.unsub, u.d.Proxy.Subscribe(u.onProxyRequest))
	}
	u.app.Settings().AddListener(func(fyne.Settings) { u.kick() }) // light/dark tray icon

	if desk, ok := u.app.(desktop.App); !ok {
		u.log.Warn("this app has no system tray here: the Accounts window is the main window")
		u.master = true
	} else {
		switch err := u.trayCheck(); {
		case errors.Is(err, errNoDBus):
			// fyne.io/systray panics on quit without a session bus (fyne-io/fyne#6403): stay away.
			u.log.Warn("no D-Bus session: running without a tray icon; the Accounts window is the main window")
			u.master = true
		case err != nil:
			u.log.Warn("no system tray host found: the tray icon appears when one starts; until then the Accounts window is the main window", "reason", err.Error())
			u.desk = desk
			u.master = true
		default:
			u.desk = desk
		}
	}

	// Without a keychain nothing survives a restart: say so once, where the user looks.
	if kc, ok := u.d.Accounts.(interface{ KeychainError() error }); ok {
		if err := kc.KeychainError(); err != nil {
			u.log.Warn("no keychain: signed-in accounts are kept in memory only", "reason", err.Error())
			u.notify("No keychain: accounts are not kept", "Entra Companion could not open the system keychain, so accounts you sign in now are forgotten when it quits. Nothing is written to disk. Start a Secret Service (gnome-keyring or KeePassXC) and restart to keep them.")
		}
	}

	u.apply(u.collect())
	go u.loop()
	if u.master {
		u.ShowAccounts()
		w := u.accounts.win
		w.SetMaster()
		w.SetCloseIntercept(u.Quit)
	}
	if u.d.Proxy != nil && !u.d.Proxy.Running() {
		u.goFn(func() {
			if err := u.d.Proxy.Start(); err != nil {
				u.log.Error("the local proxy did not start", "err", err)
				u.notify("The local proxy did not start", proxyProblem(err))
			} else {
				u.log.Info("local proxy started", "url", u.d.Proxy.BaseURL())
			}
			u.kick()
		})
	}
}

// Quit stops the proxy (waiting up to a few seconds for requests in flight), cancels work
// under way and quits the app. It returns at once; the rest happens in a goroutine.
func (u *UI) Quit() {
	u.quitOnce.Do(func() {
		u.goFn(func() {
			u.stopProxy()
			u.cancel()
			u.do(u.app.Quit)
		})
	})
}

// shutdown runs after the app's loop ends: it stops what Quit would have stopped if the app
// ended another way, and waits briefly for goroutines.
func (u *UI) shutdown() {
	for _, f := range u.unsub {
		f()
	}
	u.stopProxy()
	u.cancel()
	done := make(chan struct{})
	go func() { u.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		u.log.Warn("some work did not stop within 3s of quitting")
	}
}

func (u *UI) stopProxy() {
	if u.d.Proxy == nil || !u.d.Proxy.Running() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), proxyStopTimeout)
	defer cancel()
	if err := u.d.Proxy.Stop(ctx); err != nil {
		u.log.Warn("stopping the local proxy", "err", err)
	} else {
		u.log.Info("local proxy stopped")
	}
}

// goFn runs f in a goroutine the UI waits for on shutdown.
func (u *UI) goFn(f func()) {
	u.wg.Add(1)
	u.busy.Add(1)
	go func() {
		defer u.wg.Done()
		defer u.busy.Add(-1)
		f()
	}()
}

// kick asks the loop to rebuild the menu and refresh the windows. Safe from any goroutine.
func (u *UI) kick() {
	select {
	case u.dirty <- struct{}{}:
	default:
	}
}

// flush rebuilds now and returns once the rebuild is applied (tests).
func (u *UI) flush() {
	done := make(chan struct{})
	select {
	case u.flushes <- done:
		<-done
	case <-u.loopDone:
	}
}

// loop is the one place that reads state for the menu: it coalesces kicks, reads the state
// off Fyne's goroutine (the broker and proxy may take locks) and applies it through fyne.Do.
func (u *UI) loop() {
	defer close(u.loopDone)
	for {
		var done chan struct{}
		select {
		case <-u.ctx.Done():
			return
		case <-u.dirty:
		case done = <-u.flushes:
			select { // a kick waiting now is served by this rebuild
			case <-u.dirty:
			default:
			}
		}
		st := u.collect()
		u.do(func() { u.apply(st) })
		if done != nil {
			close(done)
		}
	}
}

// collect reads the current state.
func (u *UI) collect() MenuState {
	st := MenuState{Accounts: u.d.Accounts.Accounts(), NoProxy: u.d.Proxy == nil}
	for _, a := range st.Accounts {
		if a.Active {
			st.Active = a.ID
		}
		if a.State == auth.StateNeedsSignIn {
			st.Attention = true
		}
		if u.d.Directory != nil {
			if snap, ok := u.d.Directory.Cached(a.ID); ok && snap != nil && snap.Organization != nil && snap.Organization.DisplayName != "" {
				if st.TenantNames == nil {
					st.TenantNames = map[string]string{}
				}
				st.TenantNames[snap.Organization.TenantID] = snap.Organization.DisplayName
			}
		}
	}
	if u.d.Proxy != nil {
		st.ProxyRunning = u.d.Proxy.Running()
		st.ProxyURL = u.d.Proxy.BaseURL()
		st.Routes = u.d.Proxy.Routes()
	}
	return st
}

// apply shows st: the tray menu and icon, and the open windows. Fyne's goroutine only.
func (u *UI) apply(st MenuState) {
	u.state = st
	if u.desk != nil {
		u.log.Debug("tray menu rebuilt", "accounts", len(st.Accounts), "attention", st.Attention, "proxy", st.ProxyRunning)
		// One menu object, its items replaced: Fyne refreshes the tray with the menu it was
		// first given once the tray is ready, which would otherwise bring back stale items.
		m := MenuFor(st, u.actions())
		if u.menu == nil {
			u.menu = m
		} else {
			u.menu.Label, u.menu.Items = m.Label, m.Items
		}
		u.desk.SetSystemTrayMenu(u.menu)
		if icon := u.trayIcon(st); icon != u.icon {
			u.icon = icon
			u.desk.SetSystemTrayIcon(icon)
		}
	}
	if u.accounts != nil {
		u.accounts.refresh(st)
	}
	if u.profile != nil {
		u.profile.refresh(st)
	}
	if u.proxy != nil {
		u.proxy.refresh(st)
	}
}

// trayIcon picks the tray icon: attention when an account must sign in, else the one for the
// theme's variant.
func (u *UI) trayIcon(st MenuState) fyne.Resource {
	if st.Attention {
		return assets.TrayIconAttention
	}
	if u.app.Settings().ThemeVariant() == theme.VariantDark {
		return assets.TrayIconDark
	}
	return assets.TrayIcon
}

// actions wires the tray menu to the UI.
func (u *UI) actions() MenuActions {
	return MenuActions{
		SetActive:    u.setActive,
		SignInAgain:  u.signInAgain,
		AddAccount:   u.ShowAccounts,
		ShowAccounts: u.ShowAccounts,
		ShowProfile:  u.ShowProfile,
		CopyToken:    u.copyToken,
		ToggleProxy:  u.toggleProxy,
		ShowProxy:    u.ShowProxy,
		ShowSettings: u.ShowSettings,
		Quit:         u.Quit,
	}
}

// onAccountEvent notes the account's state, notifies when it turns needs_sign_in and asks for
// a rebuild. Called by the broker from any goroutine.
func (u *UI) onAccountEvent(ev auth.Event) {
	u.mu.Lock()
	prev, known := u.states[ev.Account.ID]
	if ev.Kind == auth.EventRemoved {
		delete(u.states, ev.Account.ID)
	} else {
		u.states[ev.Account.ID] = ev.Account.State
	}
	u.mu.Unlock()
	if ev.Kind != auth.EventRemoved && ev.Account.State == auth.StateNeedsSignIn && (!known || prev != auth.StateNeedsSignIn) {
		u.log.Info("account needs sign-in", "account", ev.Account.Username, "detail", ev.Account.Detail)
		u.notify("Sign in again", u.signInHint(ev.Account))
	}
	u.kick()
}

// signInHint says where the sign-in action is: the tray, or the Accounts window without one.
func (u *UI) signInHint(a auth.Account) string {
	where := "choose it in the tray menu"
	if u.master {
		where = "choose Sign in again in the Accounts window"
	}
	return "Sign in again to " + a.Username + " — " + where + "."
}

// onProxyRequest keeps the last maxLog requests and refreshes an open Proxy window, at most
// one refresh queued at a time. Called by the proxy from any goroutine.
func (u *UI) onProxyRequest(e localproxy.LogEntry) {
	if i := strings.IndexByte(e.Path, '?'); i >= 0 { // entries have no query; never show one
		e.Path = e.Path[:i]
	}
	u.mu.Lock()
	if len(u.logs) == maxLog {
		copy(u.logs, u.logs[1:])
		u.logs = u.logs[:maxLog-1]
	}
	u.logs = append(u.logs, e)
	u.mu.Unlock()
	if u.logQueued.CompareAndSwap(false, true) {
		u.do(func() {
			u.logQueued.Store(false)
			if u.proxy != nil {
				u.proxy.refreshLog()
			}
		})
	}
}

// requestLog returns the kept requests, newest first.
func (u *UI) requestLog() []localproxy.LogEntry {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]localproxy.LogEntry, len(u.logs))
	for i, e := range u.logs {
		out[len(u.logs)-1-i] = e
	}
	return out
}

func (u *UI) clearRequestLog() {
	u.mu.Lock()
	u.logs = nil
	u.mu.Unlock()
}

// setActive switches the active account in the background.
func (u *UI) setActive(id string) {
	acc := u.accountByID(id)
	u.goFn(func() {
		ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
		defer cancel()
		if err := u.d.Accounts.SetActive(ctx, id); err != nil {
			u.log.Warn("switching account", "account", id, "err", err)
			u.notify("Could not switch account", explain(err, acc).Text)
		}
		u.kick()
	})
}

// signInAgain opens the Accounts window and signs the account in with its login hint.
func (u *UI) signInAgain(a auth.Account) {
	u.ShowAccounts()
	u.accounts.signIn(&a)
}

// toggleProxy starts or stops the proxy in the background.
func (u *UI) toggleProxy() {
	if u.d.Proxy == nil {
		return
	}
	u.goFn(func() {
		if u.d.Proxy.Running() {
			u.stopProxy()
		} else if err := u.d.Proxy.Start(); err != nil {
			u.log.Error("the local proxy did not start", "err", err)
			u.notify("The local proxy did not start", proxyProblem(err))
		} else {
			u.log.Info("local proxy started", "url", u.d.Proxy.BaseURL())
		}
		u.kick()
	})
}

// proxyProblem words a failure to start the proxy.
func proxyProblem(err error) string {
	if errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use") {
		return "Another program already uses the proxy's port. Choose another port in Settings, then turn the proxy on from the tray menu."
	}
	return sentence(err.Error())
}

// copyToken copies a fresh token for t to the clipboard and says for how long it is valid.
// The token goes to the clipboard only: never to a log or a notification.
func (u *UI) copyToken(t TokenTarget) {
	u.goFn(func() {
		ctx, cancel := context.WithTimeout(u.ctx, time.Minute)
		defer cancel()
		tok, err := u.d.Accounts.Token(ctx, auth.TokenRequest{Account: t.Account, Scopes: auth.NewScopes(t.Scopes...)})
		if err != nil {
			acc := u.accountNamed(t.Account)
			u.log.Warn("copying an access token failed", "target", t.Label, "err", err)
			p := explain(err, acc)
			if p.SignIn != nil {
				u.notify("No token copied", u.signInHint(*p.SignIn))
			} else {
				u.notify("No token copied", p.Text)
			}
			return
		}
		value := tok.Value
		u.do(func() { u.clipboard().SetContent(value) })
		who := tok.AccountID
		if a := u.accountNamed(tok.AccountID); a != nil {
			who = a.Username
		}
		u.log.Info("access token copied to the clipboard", "target", t.Label, "account", who, "expires", tok.ExpiresOn.Format(time.RFC3339))
		u.notify("Access token copied", fmt.Sprintf("%s token for %s, valid for %s (until %s).",
			t.Label, who, humanDuration(tok.ExpiresOn.Sub(u.now())), tok.ExpiresOn.Local().Format("15:04")))
	})
}

// accountByID returns a copy of the account with this ID from the last state, or nil.
func (u *UI) accountByID(id string) *auth.Account { return u.accountNamed(id) }

// accountNamed finds an account by ID or username ("" is the active one), asking the broker.
func (u *UI) accountNamed(name string) *auth.Account {
	for _, a := range u.d.Accounts.Accounts() {
		if (name == "" && a.Active) || (name != "" && (a.ID == name || strings.EqualFold(a.Username, name))) {
			return &a
		}
	}
	return nil
}

func (u *UI) notify(title, body string) {
	if u.d.Notify != nil {
		u.d.Notify(title, body)
		return
	}
	u.app.SendNotification(fyne.NewNotification(title, body))
}

func (u *UI) openURL(s string) error {
	if u.d.OpenURL != nil {
		return u.d.OpenURL(s)
	}
	p, err := url.Parse(s)
	if err != nil {
		return err
	}
	return u.app.OpenURL(p)
}

func (u *UI) clipboard() fyne.Clipboard {
	if u.d.Clipboard != nil {
		return u.d.Clipboard
	}
	return u.app.Clipboard()
}

// title is a window title: "Accounts — Entra Companion", with " (demo)" in demo mode.
func (u *UI) title(name string) string {
	t := name + " — " + appName
	if u.d.Demo {
		t += " (demo)"
	}
	return t
}

// newWindow makes a window that hides when closed, so the app stays in the tray.
func (u *UI) newWindow(name string, size fyne.Size) fyne.Window {
	w := u.app.NewWindow(u.title(name))
	w.SetIcon(assets.AppIcon)
	w.SetCloseIntercept(w.Hide)
	w.Resize(size)
	return w
}

// humanDuration says a duration in words: "59 minutes", "1 hour 5 minutes", "40 seconds".
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d < time.Minute:
		return plural(int(d.Seconds()), "second")
	case d < time.Hour:
		return plural(int(d.Minutes()), "minute")
	case d < 48*time.Hour:
		h := int(d.Hours())
		m := int((d - time.Duration(h)*time.Hour).Minutes())
		if m == 0 {
			return plural(h, "hour")
		}
		return plural(h, "hour") + " " + plural(m, "minute")
	}
	return plural(int(d.Hours()/24), "day")
}
