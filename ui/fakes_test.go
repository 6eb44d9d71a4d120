package ui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
	"github.com/entra-companion/entra-companion/graph/profile"
	"github.com/entra-companion/entra-companion/localproxy"
)

func TestMain(m *testing.M) {
	time.Local = time.UTC // rendered times do not depend on the machine's zone
	os.Exit(m.Run())
}

// testNow is the fixed time of every test.
var testNow = time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC)

var (
	adele = auth.Account{ID: "11111111-aaaa-4bbb-8ccc-000000000001.72f988bf-86f1-41af-91ab-2d7cd011db47", Username: "adele@contoso.com",
		Name: "Adele Vance", TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47", HomeTenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47",
		Authority: "https://login.microsoftonline.com/organizations/", ClientID: config.DefaultClientID, Kind: auth.KindUser,
		State: auth.StateReady, Active: true}
	alex = auth.Account{ID: "22222222-aaaa-4bbb-8ccc-000000000002.72f988bf-86f1-41af-91ab-2d7cd011db47", Username: "alex@contoso.com",
		Name: "Alex Wilber", TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47", HomeTenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47",
		Authority: "https://login.microsoftonline.com/organizations/", ClientID: config.DefaultClientID, Kind: auth.KindUser,
		State: auth.StateReady}
	adeleGuest = auth.Account{ID: "33333333-aaaa-4bbb-8ccc-000000000003.72f988bf-86f1-41af-91ab-2d7cd011db47@b5c6e8f1-0000-4000-8000-fabrikam0001",
		Username: "adele@contoso.com", Name: "Adele Vance", TenantID: "b5c6e8f1-0000-4000-8000-fabrikam0001",
		HomeTenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47", Authority: "https://login.microsoftonline.com/fabrikam.com/",
		ClientID: config.DefaultClientID, Kind: auth.KindUser, State: auth.StateNeedsSignIn,
		Detail: "The refresh token was revoked."}
)

// fakeAccounts is an in-memory broker.
type fakeAccounts struct {
	mu       sync.Mutex
	accounts []auth.Account
	subs     map[int]func(auth.Event)
	next     int
	calls    []string

	signIn     func(ctx context.Context, opts auth.SignInOptions) (auth.Account, error)
	signInCode func(ctx context.Context, opts auth.SignInOptions, show func(auth.DeviceCode)) (auth.Account, error)
	token      func(ctx context.Context, req auth.TokenRequest) (*auth.AccessToken, error)
}

var _ Accounts = (*fakeAccounts)(nil)

func newFakeAccounts(accs ...auth.Account) *fakeAccounts {
	return &fakeAccounts{accounts: accs, subs: map[int]func(auth.Event){}}
}

func (f *fakeAccounts) record(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *fakeAccounts) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeAccounts) Accounts() []auth.Account {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]auth.Account(nil), f.accounts...)
}

func (f *fakeAccounts) SetActive(_ context.Context, account string) error {
	f.record("SetActive " + account)
	f.mu.Lock()
	found := false
	for i := range f.accounts {
		f.accounts[i].Active = f.accounts[i].ID == account
		found = found || f.accounts[i].Active
	}
	f.mu.Unlock()
	if !found {
		return auth.ErrUnknownAccount
	}
	return nil
}

func (f *fakeAccounts) SignIn(ctx context.Context, opts auth.SignInOptions) (auth.Account, error) {
	f.record("SignIn hint=" + opts.LoginHint + " authority=" + opts.Authority)
	if f.signIn != nil {
		return f.signIn(ctx, opts)
	}
	<-ctx.Done()
	return auth.Account{}, ctx.Err()
}

func (f *fakeAccounts) SignInDeviceCode(ctx context.Context, opts auth.SignInOptions, show func(auth.DeviceCode)) (auth.Account, error) {
	f.record("SignInDeviceCode")
	return f.signInCode(ctx, opts, show)
}

func (f *fakeAccounts) SignOut(_ context.Context, account string) error {
	f.record("SignOut " + account)
	f.mu.Lock()
	var removed auth.Account
	for i, a := range f.accounts {
		if a.ID == account {
			removed = a
			f.accounts = append(f.accounts[:i], f.accounts[i+1:]...)
			break
		}
	}
	f.mu.Unlock()
	f.emit(auth.Event{Kind: auth.EventRemoved, Account: removed})
	return nil
}

func (f *fakeAccounts) Token(ctx context.Context, req auth.TokenRequest) (*auth.AccessToken, error) {
	f.record("Token account=" + req.Account + " scopes=" + req.Scopes.String())
	if f.token != nil {
		return f.token(ctx, req)
	}
	return nil, errors.New("no token in this test")
}

func (f *fakeAccounts) Subscribe(fn func(auth.Event)) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.next
	f.next++
	f.subs[id] = fn
	return func() {
		f.mu.Lock()
		delete(f.subs, id)
		f.mu.Unlock()
	}
}

// setState changes an account's state and tells the subscribers, like the broker.
func (f *fakeAccounts) setState(id string, st auth.State) {
	f.mu.Lock()
	var acc auth.Account
	for i := range f.accounts {
		if f.accounts[i].ID == id {
			f.accounts[i].State = st
			acc = f.accounts[i]
		}
	}
	f.mu.Unlock()
	f.emit(auth.Event{Kind: auth.EventState, Account: acc})
}

func (f *fakeAccounts) emit(ev auth.Event) {
	f.mu.Lock()
	subs := make([]func(auth.Event), 0, len(f.subs))
	for _, s := range f.subs {
		subs = append(subs, s)
	}
	f.mu.Unlock()
	for _, s := range subs {
		s(ev)
	}
}

// fakeDirectory serves snapshots from a map.
type fakeDirectory struct {
	mu      sync.Mutex
	cached  map[string]*profile.Snapshot
	fresh   map[string]*profile.Snapshot
	refresh int
}

var _ Directory = (*fakeDirectory)(nil)

func (d *fakeDirectory) Cached(account string) (*profile.Snapshot, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.cached[account]
	return s, ok
}

func (d *fakeDirectory) Refresh(_ context.Context, account string) (*profile.Snapshot, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refresh++
	s, ok := d.fresh[account]
	if !ok {
		return nil, errors.New("graph is down in this test")
	}
	if d.cached == nil {
		d.cached = map[string]*profile.Snapshot{}
	}
	d.cached[account] = s
	return s, nil
}

// fakeProxy is a proxy that only records.
type fakeProxy struct {
	mu       sync.Mutex
	running  bool
	url      string
	routes   []localproxy.RouteInfo
	starts   int
	stops    int
	startErr error
	subs     []func(localproxy.LogEntry)
}

var _ Proxy = (*fakeProxy)(nil)

func (p *fakeProxy) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

func (p *fakeProxy) BaseURL() string { return p.url }

func (p *fakeProxy) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.starts++
	if p.startErr != nil {
		return p.startErr
	}
	p.running = true
	return nil
}

func (p *fakeProxy) Stop(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		return errors.New("Stop needs a deadline")
	}
	p.stops++
	p.running = false
	return nil
}

func (p *fakeProxy) Routes() []localproxy.RouteInfo { return p.routes }

func (p *fakeProxy) Subscribe(fn func(localproxy.LogEntry)) func() {
	p.mu.Lock()
	p.subs = append(p.subs, fn)
	p.mu.Unlock()
	return func() {}
}

func (p *fakeProxy) emit(e localproxy.LogEntry) {
	p.mu.Lock()
	subs := slices.Clone(p.subs)
	p.mu.Unlock()
	for _, s := range subs {
		s(e)
	}
}

func (p *fakeProxy) counts() (starts, stops int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts, p.stops
}

// fakeSettings keeps the config in memory.
type fakeSettings struct {
	mu    sync.Mutex
	cfg   *config.Config
	saves int
}

var _ Settings = (*fakeSettings)(nil)

func (s *fakeSettings) Load() (*config.Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Clone(), nil
}

func (s *fakeSettings) Save(c *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saves++
	s.cfg = c.Clone()
	return nil
}

// fakeDesk is the test app with a tray.
type fakeDesk struct {
	fyne.App
	mu    sync.Mutex
	menus []*fyne.Menu
	icons []fyne.Resource
	quits int
	dark  bool
}

func (d *fakeDesk) SetSystemTrayMenu(m *fyne.Menu) {
	d.mu.Lock()
	d.menus = append(d.menus, m)
	d.mu.Unlock()
}

func (d *fakeDesk) SetSystemTrayIcon(r fyne.Resource) {
	d.mu.Lock()
	d.icons = append(d.icons, r)
	d.mu.Unlock()
}

func (d *fakeDesk) SetSystemTrayWindow(fyne.Window) {}

func (d *fakeDesk) Quit() {
	d.mu.Lock()
	d.quits++
	d.mu.Unlock()
}

func (d *fakeDesk) Settings() fyne.Settings {
	if d.dark {
		return darkSettings{d.App.Settings()}
	}
	return d.App.Settings()
}

type darkSettings struct{ fyne.Settings }

func (darkSettings) ThemeVariant() fyne.ThemeVariant { return theme.VariantDark }

func (d *fakeDesk) lastMenu() *fyne.Menu {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.menus) == 0 {
		return nil
	}
	return d.menus[len(d.menus)-1]
}

func (d *fakeDesk) lastIcon() fyne.Resource {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.icons) == 0 {
		return nil
	}
	return d.icons[len(d.icons)-1]
}

// notes records notifications.
type notes struct {
	mu   sync.Mutex
	list [][2]string
}

func (n *notes) notify(title, body string) {
	n.mu.Lock()
	n.list = append(n.list, [2]string{title, body})
	n.mu.Unlock()
}

func (n *notes) all() [][2]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([][2]string(nil), n.list...)
}

// syncBuffer is a log sink safe for concurrent writers.
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

// harness is a UI over fakes.
type harness struct {
	t     *testing.T
	app   fyne.App
	u     *UI
	acc   *fakeAccounts
	dir   *fakeDirectory
	proxy *fakeProxy
	set   *fakeSettings
	notes *notes
	logs  *syncBuffer
	clip  fyne.Clipboard
	main  chan func()             // what the UI runs on Fyne's goroutine, in order
	wrap  func(Accounts) Accounts // if set, what the UI gets instead of acc
}

func newHarness(t *testing.T, accs ...auth.Account) *harness {
	t.Helper()
	h := &harness{
		t:     t,
		app:   test.NewTempApp(t),
		acc:   newFakeAccounts(accs...),
		dir:   &fakeDirectory{},
		proxy: &fakeProxy{url: "http://127.0.0.1:8631", routes: config2routes(config.Default())},
		set:   &fakeSettings{cfg: config.Default()},
		notes: &notes{},
		logs:  &syncBuffer{},
		main:  make(chan func(), 100000),
	}
	h.clip = h.app.Clipboard()
	h.u = h.build(h.app)
	return h
}

func (h *harness) build(a fyne.App) *UI {
	var accounts Accounts = h.acc
	if h.wrap != nil {
		accounts = h.wrap(h.acc)
	}
	u := New(a, Deps{
		Accounts:  accounts,
		Directory: h.dir,
		Proxy:     h.proxy,
		Settings:  h.set,
		Notify:    h.notes.notify,
		OpenURL:   func(string) error { return nil },
		Logger:    slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	// Fyne's test driver runs fyne.Do at once on the calling goroutine, so work finishing in
	// a goroutine would touch widgets while the test does. Like the real driver, queue it for
	// the test's goroutine ("main"), which runs it in wait, pump and flush.
	u.do = func(f func()) { h.main <- f }
	u.now = func() time.Time { return testNow }
	u.exe = func() (string, error) { return "/opt/Entra Companion/entra-companion", nil }
	u.trayCheck = func() error { return nil }
	h.t.Cleanup(func() {
		u.cancel()
		u.wg.Wait()
	})
	return u
}

// state applies the broker's current state, as the loop would.
func (h *harness) state() { h.u.apply(h.u.collect()) }

// wait runs what the UI queued for Fyne's goroutine until its goroutines (sign-in, tokens,
// saves) are done and nothing is queued.
func (h *harness) wait() {
	h.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		h.pump()
		if h.u.busy.Load() == 0 && len(h.main) == 0 {
			return
		}
		select {
		case f := <-h.main:
			f()
		case <-time.After(time.Millisecond):
		case <-deadline:
			h.t.Fatal("the UI's work did not finish in 10s")
		}
	}
}

// pump runs what is queued for Fyne's goroutine now.
func (h *harness) pump() {
	for {
		select {
		case f := <-h.main:
			f()
		default:
			return
		}
	}
}

// flush has the UI's loop read the state and apply it (the loop must run: Start).
func (h *harness) flush() {
	h.t.Helper()
	done := make(chan struct{})
	go func() { h.u.flush(); close(done) }()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case f := <-h.main:
			f()
		case <-done:
			h.pump()
			return
		case <-deadline:
			h.t.Fatal("the UI's loop did not answer in 10s")
		}
	}
}

func config2routes(c *config.Config) []localproxy.RouteInfo {
	var out []localproxy.RouteInfo
	for _, r := range c.Proxy.Routes {
		out = append(out, localproxy.RouteInfo{Name: r.Name, Prefix: r.Prefix, Upstream: r.Upstream, Auth: r.Auth, Scopes: r.Scopes, Account: r.Account})
	}
	return out
}

// iconName names a tray icon in test messages.
func iconName(r fyne.Resource) string {
	if r == nil {
		return "<none>"
	}
	return r.Name()
}

// windowTitles lists the titles of the app's windows, leaving out the test driver's own
// untitled window.
func windowTitles(a fyne.App) []string {
	var out []string
	for _, w := range a.Driver().AllWindows() {
		if w.Title() != "" {
			out = append(out, fmt.Sprintf("%q", w.Title()))
		}
	}
	return out
}
