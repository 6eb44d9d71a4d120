package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
	"golang.org/x/sync/singleflight"
)

// Defaults for Options.
const (
	// DefaultRefreshBefore is how long before expiry a used token is renewed in the background.
	DefaultRefreshBefore = 5 * time.Minute
	// DefaultRecentUse is how recently a token must have been used for the background
	// refresher to keep it fresh.
	DefaultRecentUse = 30 * time.Minute
	// minValidity: a token with less time left than this is not handed out; the caller waits
	// for a refresh instead (it could expire in flight).
	minValidity = 30 * time.Second
	// servable: when refreshing fails for a transient reason, the old token is still handed out
	// while it has at least this much time left.
	servable = 5 * time.Second
	// defaultCallTimeout bounds one call to the authority (MSAL's HTTP requests of one
	// refresh), whatever the HTTP client: a hung connection fails the attempt and is retried
	// instead of holding every caller of the token for the whole refresh.
	defaultCallTimeout = 30 * time.Second
)

// Options configure a Broker.
type Options struct {
	// ClientID is the public client (application) id users sign in to.
	ClientID string
	// Authority is the default sign-in authority, e.g. https://login.microsoftonline.com/organizations.
	Authority string
	// Scopes are requested at sign-in besides openid, profile, offline_access and User.Read.
	Scopes []string
	// DefaultScopes are used when a TokenRequest names none, e.g. https://graph.microsoft.com/.default.
	DefaultScopes []string
	// Store is the keychain; nil means the OS keychain (Keyring) with Service.
	Store SecretStore
	// Service names the keychain items when Store is nil; default "entra-companion".
	Service string
	// MaxValue is the largest keychain value written at once; 0 = the OS's limit.
	MaxValue int
	// StateDir holds the cross-process lock and write counter (no secrets); "" disables both.
	StateDir string
	// HTTPClient makes MSAL's calls; nil = http.DefaultClient (trusts SSL_CERT_FILE's CA).
	HTTPClient *http.Client
	// Clock is the time source; nil = SystemClock.
	Clock Clock
	// Logger receives diagnostics (never token material); nil = slog.Default().
	Logger *slog.Logger
	// RefreshBefore: renew used tokens this long before they expire; 0 = DefaultRefreshBefore.
	RefreshBefore time.Duration
	// RetryDelay is the first wait between retries of a transient failure (doubling, capped
	// at a minute); 0 = 500ms.
	RetryDelay time.Duration
	// Retries is how many times a refresh a caller waits for is retried; 0 = 3, negative = none.
	Retries int
	// OpenURL opens the sign-in page when SignInOptions has none; nil = the system browser.
	OpenURL func(string) error
	// NoKeychainFallback makes New fail with ErrNoKeychain instead of continuing in memory.
	NoKeychainFallback bool
	// KeychainError, with Store a stand-in (a MemoryStore) for a keychain the caller already
	// found unavailable, says why; KeychainError() reports it. Processes that open several
	// brokers probe the keychain once and share one stand-in this way.
	KeychainError error
	// Watch makes the broker notice other processes' changes (sign-ins, sign-outs, the active
	// account) as they happen, through a file watch on StateDir.
	Watch bool
}

// Broker signs accounts in and out, keeps their refresh tokens in the keychain, and hands
// out fresh access tokens. It is safe for concurrent use.
type Broker struct {
	opts          Options
	log           *slog.Logger
	clock         Clock
	vault         *vault
	keychainErr   error
	defaultScopes Scopes
	refreshBefore time.Duration
	retryDelay    time.Duration
	retries       int
	callTimeout   time.Duration // bounds one call to the authority

	mu      sync.Mutex
	clients map[string]*public.Client
	apps    map[string]*confidential.Client

	accts  atomic.Pointer[acctSet]
	tokens atomic.Pointer[map[tokenKey]*tokenEntry]
	tokMu  sync.Mutex
	sf     singleflight.Group

	subsMu  sync.Mutex
	subs    map[int]func(Event)
	nextSub int
	events  chan Event

	sched schedState

	closeOnce sync.Once
	closed    chan struct{}
	bg        sync.WaitGroup
}

// acct is an account with its runtime state.
type acct struct {
	rec accountRecord

	mu     sync.Mutex
	state  State
	detail string
}

func (a *acct) snapshot(active bool) Account {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Account{
		ID: a.rec.ID, Username: a.rec.Username, Name: a.rec.Name, TenantID: a.rec.TenantID,
		HomeTenantID: a.rec.HomeTenantID, Authority: a.rec.Authority, ClientID: a.rec.ClientID,
		Kind: a.rec.Kind, State: a.state, Detail: a.detail, Active: active,
	}
}

func (a *acct) getState() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// acctSet is an immutable view of the accounts, swapped whole on change.
type acctSet struct {
	list   []*acct
	byID   map[string]*acct
	byName map[string][]*acct
	active *acct
}

// New opens the keychain, loads the accounts and starts the background refresher.
// Without a keychain it logs why and keeps tokens in memory only (see KeychainError), unless
// Options.NoKeychainFallback is set.
func New(ctx context.Context, opts Options) (*Broker, error) {
	if opts.ClientID == "" {
		return nil, errors.New("creating the token broker: no client id configured")
	}
	if opts.Authority == "" {
		opts.Authority = "https://login.microsoftonline.com/organizations"
	}
	if opts.Service == "" {
		opts.Service = "entra-companion"
	}
	b := &Broker{
		opts:          opts,
		log:           opts.Logger,
		clock:         opts.Clock,
		defaultScopes: NewScopes(opts.DefaultScopes...),
		refreshBefore: opts.RefreshBefore,
		retryDelay:    opts.RetryDelay,
		retries:       opts.Retries,
		callTimeout:   defaultCallTimeout,
		clients:       map[string]*public.Client{},
		apps:          map[string]*confidential.Client{},
		subs:          map[int]func(Event){},
		events:        make(chan Event, 256),
		closed:        make(chan struct{}),
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.clock == nil {
		b.clock = SystemClock{}
	}
	if b.defaultScopes.Empty() {
		b.defaultScopes = NewScopes("https://graph.microsoft.com/.default")
	}
	if b.refreshBefore <= 0 {
		b.refreshBefore = DefaultRefreshBefore
	}
	if b.retryDelay <= 0 {
		b.retryDelay = 500 * time.Millisecond
	}
	if b.retries == 0 {
		b.retries = 3
	} else if b.retries < 0 {
		b.retries = 0
	}
	store := opts.Store
	if store == nil {
		store = &Keyring{Service: opts.Service}
	}
	pctx, cancel := context.WithTimeout(ctx, DefaultKeychainTimeout+time.Second)
	err := ProbeKeychain(pctx, store)
	cancel()
	if err != nil {
		if opts.NoKeychainFallback {
			return nil, fmt.Errorf("opening the keychain: %w", err)
		}
		b.keychainErr = fmt.Errorf("opening the keychain: %w", err)
		b.log.Warn("no usable keychain: accounts signed in now are kept in memory only and are gone when this process ends; nothing is written to disk", "error", err)
		store = NewMemoryStore()
		opts.StateDir = ""
		b.opts.StateDir = ""
	}
	lock, err := newStoreLock(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("creating the token broker: %w", err)
	}
	b.vault = newVault(store, opts.MaxValue, lock)
	if err := b.vault.load(); err != nil {
		if b.vault.snapshotIndex().Version == 0 {
			return nil, fmt.Errorf("creating the token broker: %w", err)
		}
		b.log.Warn("some accounts' tokens could not be read from the keychain; they need sign-in", "error", err)
	}
	b.rebuild(false)
	b.bg.Add(1)
	go b.dispatch()
	b.startScheduler()
	if opts.Watch && opts.StateDir != "" {
		if err := b.watch(); err != nil {
			b.log.Warn("not watching for other processes' changes", "error", err)
		}
	}
	return b, nil
}

// KeychainError is non-nil when the broker runs without a keychain (tokens in memory only);
// it says why, in words to show the user.
func (b *Broker) KeychainError() error {
	if b.keychainErr != nil {
		return b.keychainErr
	}
	return b.opts.KeychainError
}

// Close stops background work. Tokens already handed out stay valid.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		close(b.closed)
		b.stopScheduler()
		b.bg.Wait()
	})
	return nil
}

// Accounts lists the signed-in accounts (users and apps), the active one marked, after
// reloading if another process changed them.
func (b *Broker) Accounts() []Account {
	if err := b.vault.reloadIfChanged(); err == nil {
		b.rebuildIfIndexChanged()
	}
	set := b.accts.Load()
	out := make([]Account, 0, len(set.list))
	for _, a := range set.list {
		out = append(out, a.snapshot(a == set.active))
	}
	return out
}

// Account finds one account by ID or username ("" = the active account).
func (b *Broker) Account(name string) (Account, error) {
	if err := b.vault.reloadIfChanged(); err == nil {
		b.rebuildIfIndexChanged()
	}
	set := b.accts.Load()
	a, err := set.resolve(name)
	if err != nil {
		return Account{}, err
	}
	return a.snapshot(a == set.active), nil
}

// resolve finds an account by ID (case-insensitive), by username (the home-tenant account
// when the same user is also a guest elsewhere), or by "username/tenant id".
func (s *acctSet) resolve(name string) (*acct, error) {
	if name == "" {
		if s.active != nil {
			return s.active, nil
		}
		if len(s.list) == 0 {
			return nil, fmt.Errorf("%w: run `entra-companion login` to sign in", ErrNoAccount)
		}
		return nil, fmt.Errorf("%w: no account is active; choose one with `entra-companion use ACCOUNT`", ErrNoAccount)
	}
	if a := s.byID[name]; a != nil {
		return a, nil
	}
	key := strings.ToLower(name)
	if a := s.byID[key]; a != nil {
		return a, nil
	}
	if c := s.byName[key]; len(c) > 0 {
		for _, a := range c {
			if a.rec.HomeTenantID == "" || strings.EqualFold(a.rec.TenantID, a.rec.HomeTenantID) {
				return a, nil
			}
		}
		return c[0], nil
	}
	if user, tenant, ok := strings.Cut(key, "/"); ok {
		for _, a := range s.byName[user] {
			if strings.EqualFold(a.rec.TenantID, tenant) {
				return a, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: %q is not signed in (see `entra-companion accounts`)", ErrUnknownAccount, name)
}

// rebuildIfIndexChanged rebuilds the account set when the vault's index differs from it.
func (b *Broker) rebuildIfIndexChanged() {
	idx := b.vault.snapshotIndex()
	set := b.accts.Load()
	if set != nil && len(set.list) == len(idx.Accounts) && activeID(set) == idx.Active {
		same := true
		for i, r := range idx.Accounts {
			if set.list[i].rec != r {
				same = false
				break
			}
		}
		if same {
			return
		}
	}
	b.rebuild(true)
}

func activeID(s *acctSet) string {
	if s.active == nil {
		return ""
	}
	return s.active.rec.ID
}

// rebuild makes a new account set from the vault's index, keeping runtime state of accounts
// that stay, and emits events for what changed.
func (b *Broker) rebuild(emit bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	idx := b.vault.snapshotIndex()
	old := b.accts.Load()
	set := &acctSet{byID: map[string]*acct{}, byName: map[string][]*acct{}}
	for _, r := range idx.Accounts {
		var a *acct
		if old != nil {
			if prev := old.byID[strings.ToLower(r.ID)]; prev != nil && prev.rec == r {
				a = prev
			}
		}
		if a == nil {
			a = &acct{rec: r, state: StateReady}
			if old != nil {
				if prev := old.byID[strings.ToLower(r.ID)]; prev != nil {
					a.state, a.detail = prev.getState(), prev.detail
				}
			}
			if r.NeedsSignIn != "" {
				a.state, a.detail = StateNeedsSignIn, r.NeedsSignIn
			} else if a.state == StateNeedsSignIn {
				a.state, a.detail = StateReady, ""
			}
			if r.Kind == KindUser && b.vault.part(r.HomeAccountID) == nil {
				a.state, a.detail = StateNeedsSignIn, "no refresh token in the keychain: sign in again"
			}
		}
		set.list = append(set.list, a)
		set.byID[strings.ToLower(r.ID)] = a
		u := strings.ToLower(r.Username)
		set.byName[u] = append(set.byName[u], a)
		if strings.EqualFold(r.ID, idx.Active) {
			set.active = a
		}
	}
	b.accts.Store(set)
	if !emit || old == nil {
		return
	}
	for _, a := range set.list {
		prev := old.byID[strings.ToLower(a.rec.ID)]
		switch {
		case prev == nil:
			b.emit(Event{Kind: EventAdded, Account: a.snapshot(a == set.active)})
		case prev != a && prev.getState() != a.getState():
			b.emit(Event{Kind: EventState, Account: a.snapshot(a == set.active)})
		}
	}
	for _, a := range old.list {
		if set.byID[strings.ToLower(a.rec.ID)] == nil {
			b.emit(Event{Kind: EventRemoved, Account: a.snapshot(false)})
			b.dropTokens(a.rec.ID)
		}
	}
	if activeID(old) != activeID(set) && set.active != nil {
		b.emit(Event{Kind: EventActive, Account: set.active.snapshot(true)})
	}
}

// SetActive makes an account the one used when a request names none, for this and every
// other process.
func (b *Broker) SetActive(ctx context.Context, name string) error {
	a, err := b.accts.Load().resolve(name)
	if err != nil {
		return fmt.Errorf("switching account: %w", err)
	}
	if err := b.vault.updateIndex(ctx, func(idx *indexDoc) error {
		for _, r := range idx.Accounts {
			if r.ID == a.rec.ID {
				idx.Active = r.ID
				return nil
			}
		}
		return fmt.Errorf("%w: %s was signed out meanwhile", ErrUnknownAccount, a.rec.Username)
	}); err != nil {
		return fmt.Errorf("switching to account %s: %w", a.rec.Username, err)
	}
	b.rebuild(true)
	return nil
}

// Subscribe calls fn, in order and from one goroutine, for every change to the accounts.
// It returns a function that ends the subscription.
func (b *Broker) Subscribe(fn func(Event)) (cancel func()) {
	b.subsMu.Lock()
	id := b.nextSub
	b.nextSub++
	b.subs[id] = fn
	b.subsMu.Unlock()
	return func() {
		b.subsMu.Lock()
		delete(b.subs, id)
		b.subsMu.Unlock()
	}
}

func (b *Broker) emit(e Event) {
	select {
	case b.events <- e:
	case <-b.closed:
	default:
		b.log.Warn("account event dropped: subscribers are too slow", "kind", e.Kind, "account", e.Account.Username)
	}
}

func (b *Broker) dispatch() {
	defer b.bg.Done()
	for {
		select {
		case e := <-b.events:
			b.subsMu.Lock()
			fns := make([]func(Event), 0, len(b.subs))
			for _, id := range sortedKeys(b.subs) {
				fns = append(fns, b.subs[id])
			}
			b.subsMu.Unlock()
			for _, fn := range fns {
				fn(e)
			}
		case <-b.closed:
			return
		}
	}
}

func sortedKeys(m map[int]func(Event)) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// setState changes an account's state and tells subscribers.
func (b *Broker) setState(a *acct, s State, detail string) {
	a.mu.Lock()
	changed := a.state != s || a.detail != detail
	a.state, a.detail = s, detail
	a.mu.Unlock()
	if changed {
		set := b.accts.Load()
		b.emit(Event{Kind: EventState, Account: a.snapshot(set.active == a)})
	}
}

// markNeedsSignIn records that an account's refresh token no longer works, in memory and in
// the index (so other processes know too). The refresh token itself is kept: a later
// sign-in replaces it, and nothing is lost if the authority erred.
func (b *Broker) markNeedsSignIn(ctx context.Context, a *acct, detail string) {
	b.setState(a, StateNeedsSignIn, detail)
	err := b.vault.updateIndex(ctx, func(idx *indexDoc) error {
		for i := range idx.Accounts {
			if idx.Accounts[i].ID == a.rec.ID {
				idx.Accounts[i].NeedsSignIn = detail
			}
		}
		return nil
	})
	if err != nil {
		b.log.Warn("could not record that the account needs sign-in", "account", a.rec.Username, "error", err)
		return
	}
	// The record changed: swap in a set whose acct carries the new record but the same state.
	b.rebuild(false)
}

// authorityFor returns the sign-in authority normalised to "https://host/tenant/".
func normaliseAuthority(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("authority %q is not a URL: %w", raw, err)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("authority %q must be an https URL such as https://login.microsoftonline.com/organizations", raw)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if u.Host == "" || len(parts) == 0 || parts[0] == "" {
		return "", fmt.Errorf("authority %q needs a tenant, e.g. https://%s/organizations", raw, u.Host)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("authority %q must not have a query or fragment", raw)
	}
	return "https://" + u.Host + "/" + strings.Join(parts, "/") + "/", nil
}

// withTenant replaces the tenant (first path segment) of an authority.
func withTenant(authority, tenant string) string {
	u, err := url.Parse(authority)
	if err != nil || tenant == "" {
		return authority
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 1 {
		return authority // adfs, b2c and others keep their authority
	}
	return "https://" + u.Host + "/" + tenant + "/"
}

// clientCapabilities tell Entra what the client can do: "cp1" is Continuous Access Evaluation
// (it handles claims challenges).
var clientCapabilities = []string{"cp1"}

// microsoftHosts are the Entra authorities MSAL knows; others skip instance discovery.
var microsoftHosts = []string{
	"login.microsoftonline.com", "login.microsoft.com", "login.windows.net", "sts.windows.net",
	"login.microsoftonline.us", "login.chinacloudapi.cn", "login.partner.microsoftonline.cn",
}

func isMicrosoftHost(authority string) bool {
	u, err := url.Parse(authority)
	return err == nil && slices.Contains(microsoftHosts, strings.ToLower(u.Hostname()))
}

// publicClient returns the MSAL public client for an authority, creating it once.
func (b *Broker) publicClient(authority string) (*public.Client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.clients[authority]; c != nil {
		return c, nil
	}
	opts := []public.Option{
		public.WithAuthority(authority),
		public.WithCache(&clientCache{v: b.vault}),
		public.WithInstanceDiscovery(isMicrosoftHost(authority)),
		// CAE: the broker answers claims challenges (Token's Claims), so resources may send
		// them instead of failing on a revoked session, and Entra may issue longer-lived tokens.
		public.WithClientCapabilities(clientCapabilities),
	}
	if b.opts.HTTPClient != nil {
		opts = append(opts, public.WithHTTPClient(b.opts.HTTPClient))
	}
	c, err := public.New(b.opts.ClientID, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating the MSAL client for %s: %w", authority, err)
	}
	b.clients[authority] = &c
	return &c, nil
}
