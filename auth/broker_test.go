package auth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/sim"
)

const (
	graphDefault = "https://graph.microsoft.com/.default"
	cmsDefault   = sim.CMSAudience + "/.default"
)

func confidentialClient(t *testing.T, s *sim.Server) sim.Client {
	t.Helper()
	for _, c := range s.Clients() {
		if c.Kind == "confidential" {
			return c
		}
	}
	t.Fatal("the simulated cloud has no confidential client")
	return sim.Client{}
}

// Three users in two tenants (one a guest) by browser and device code, plus an app-only
// identity; a second broker (a new process) lists them all and gets tokens for Graph and the
// CMS API without any sign-in. The keychain holds the items; no file holds token material.
func TestAccountsSurviveANewProcess(t *testing.T) {
	kc := testKeychain(t)
	env := newEnv(t, kc)
	s := env.sim
	b := env.broker()
	ctx := context.Background()

	adele := env.signIn(b, sim.UserAdele, "organizations")
	guest := env.signIn(b, sim.UserAdele, sim.TenantFabrikam)

	// Alex by device code: approve the code as a person would, once it is shown.
	var shown DeviceCode
	var approveErr error
	var wg sync.WaitGroup
	alex, err := b.SignInDeviceCode(ctx, SignInOptions{Authority: s.Authority("organizations")}, func(dc DeviceCode) {
		shown = dc
		wg.Add(1)
		go func() {
			defer wg.Done()
			approveErr = s.ApproveDeviceCode(dc.UserCode, sim.UserAlex)
		}()
	})
	wg.Wait()
	if err != nil || approveErr != nil {
		t.Fatalf("device code sign-in: %v (approve: %v)", err, approveErr)
	}
	if shown.UserCode == "" || !strings.HasPrefix(shown.VerificationURI, "http") || shown.ExpiresIn <= 0 {
		t.Fatalf("device code shown to the user is incomplete: %+v", shown)
	}

	cc := confidentialClient(t, s)
	app, err := b.AddApp(ctx, AppOptions{Authority: s.Authority(sim.TenantContoso), ClientID: cc.ID, Secret: cc.Secret, Name: "CI app"})
	if err != nil {
		t.Fatalf("AddApp: %v", err)
	}

	ids := []string{adele.ID, guest.ID, alex.ID, app.ID}
	if len(slices.Compact(slices.Sorted(slices.Values(ids)))) != 4 {
		t.Fatalf("accounts are not distinct: %v", ids)
	}
	if adele.Guest() || !guest.Guest() {
		t.Errorf("guest flags: adele %v, guest %v", adele.Guest(), guest.Guest())
	}
	if guest.HomeTenantID != adele.TenantID || guest.TenantID == adele.TenantID {
		t.Errorf("guest tenants: home %s tenant %s; member tenant %s", guest.HomeTenantID, guest.TenantID, adele.TenantID)
	}
	if !adele.Active {
		t.Errorf("the first account signed in is not active")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// A new process: everything comes from the keychain.
	before := s.GrantCount("authorization_code") + s.GrantCount("device_code")
	b2 := env.broker()
	got := b2.Accounts()
	if len(got) != 4 {
		t.Fatalf("new process lists %d accounts, want 4: %+v", len(got), got)
	}
	var issued []string
	for _, a := range got {
		if a.State != StateReady {
			t.Errorf("%s is %s after restart", a.Username, a.State)
		}
		scopes := [][]string{{graphDefault}, {cmsDefault}}
		for _, sc := range scopes {
			tok, err := b2.TokenFor(ctx, a.ID, sc...)
			if err != nil {
				t.Fatalf("token for %s %v: %v", a.Username, sc, err)
			}
			if tok.AccountID != a.ID || tok.Header != "Bearer "+tok.Value || !tok.ExpiresOn.After(env.clock.Now()) {
				t.Errorf("token for %s: account %s, header ok %v, expires %v", a.Username, tok.AccountID, tok.Header == "Bearer "+tok.Value, tok.ExpiresOn)
			}
			issued = append(issued, tok.Value)
		}
	}
	if after := s.GrantCount("authorization_code") + s.GrantCount("device_code"); after != before {
		t.Errorf("the new process signed in interactively %d times", after-before)
	}
	// Guest tokens are issued by the resource tenant for the guest object.
	gt, _ := b2.TokenFor(ctx, guest.ID, graphDefault)
	if tid := claimString(gt.Value, "tid"); tid != guest.TenantID {
		t.Errorf("guest token tid %s, want %s", tid, guest.TenantID)
	}

	items := keychainItems(t, kc.Service)
	want := []string{keyIndex, keyAppPrefix + app.ID}
	for _, a := range got {
		if a.Kind == KindUser {
			want = append(want, keyCachePrefix+homeKey(strings.Split(a.ID, "@")[0]))
		}
	}
	slices.Sort(want)
	want = slices.Compact(want)
	if !slices.Equal(items, want) {
		t.Errorf("keychain items %v, want %v", items, want)
	}
	assertNoTokenFiles(t, env.dir, issued...)
	assertNoTokenMaterial(t, "the log", env.logs.String(), issued...)
}

// Many callers of an expired token cause exactly one refresh at the authority.
func TestConcurrentCallersShareOneRefresh(t *testing.T) {
	env := newEnv(t, NewMemoryStore(), sim.Options{AccessTokenLifetime: time.Hour})
	b := env.broker()
	a := env.signIn(b, sim.UserAdele, "organizations")
	ctx := context.Background()
	first, err := b.TokenFor(ctx, a.ID, graphDefault)
	if err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(2 * time.Hour) // expired
	base := env.sim.GrantCount("refresh_token")

	const n = 200
	var wg sync.WaitGroup
	var failed atomic.Int32
	toks := make([]*AccessToken, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t, err := b.TokenFor(ctx, a.ID, graphDefault)
			if err != nil {
				failed.Add(1)
				return
			}
			toks[i] = t
		}()
	}
	close(start)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d callers failed", failed.Load(), n)
	}
	if got := env.sim.GrantCount("refresh_token") - base; got != 1 {
		t.Fatalf("%d concurrent callers caused %d refreshes, want 1", n, got)
	}
	for _, tk := range toks {
		if tk.Value == first.Value || tk != toks[0] {
			t.Fatal("callers did not all get the one new token")
		}
	}
}

// A rejected token (an upstream 401) is refreshed once, and callers that still hold the old
// one get the new one without another refresh.
func TestRejectedTokenRefreshedOnce(t *testing.T) {
	env := newEnv(t, NewMemoryStore())
	b := env.broker()
	a := env.signIn(b, sim.UserAdele, "organizations")
	ctx := context.Background()
	old, err := b.TokenFor(ctx, a.ID, graphDefault)
	if err != nil {
		t.Fatal(err)
	}
	base := env.sim.GrantCount("refresh_token")
	for range 3 {
		nt, err := b.Token(ctx, TokenRequest{Account: a.ID, Scopes: NewScopes(graphDefault), Rejected: old.Value})
		if err != nil {
			t.Fatal(err)
		}
		if nt.Value == old.Value {
			t.Fatal("a rejected token was handed out again")
		}
	}
	if got := env.sim.GrantCount("refresh_token") - base; got != 1 {
		t.Fatalf("3 callers with the same rejected token caused %d refreshes, want 1", got)
	}
}

// 500 three times, then OK: the caller gets a token.
func TestTransientFailuresRetried(t *testing.T) {
	env := newEnv(t, NewMemoryStore())
	b := env.broker()
	a := env.signIn(b, sim.UserAdele, "organizations")
	b.Close()
	b2 := env.broker() // no access token in memory: the first Token must refresh
	env.sim.InjectFault(sim.EndpointToken, sim.Fault{Status: 500, Count: 3})
	calls := env.sim.Count(sim.EndpointToken)
	tok, err := b2.TokenFor(context.Background(), a.ID, graphDefault)
	if err != nil {
		t.Fatalf("after 3 failures the 4th attempt should succeed: %v", err)
	}
	if tok.Value == "" {
		t.Fatal("empty token")
	}
	if got := env.sim.Count(sim.EndpointToken) - calls; got != 4 {
		t.Errorf("token endpoint called %d times, want 4", got)
	}
	if acc, _ := b2.Account(a.ID); acc.State != StateReady {
		t.Errorf("state after recovery: %s", acc.State)
	}
}

// With the token endpoint down, the cached token is served until it expires; then the error
// says the token service is unavailable. The account is offline, not signed out.
func TestEndpointDownServesCachedTokenUntilExpiry(t *testing.T) {
	env := newEnv(t, NewMemoryStore(), sim.Options{AccessTokenLifetime: time.Hour})
	b := env.broker()
	a := env.signIn(b, sim.UserAdele, "organizations")
	ctx := context.Background()
	tok, err := b.TokenFor(ctx, a.ID, graphDefault)
	if err != nil {
		t.Fatal(err)
	}
	env.sim.InjectFault(sim.EndpointToken, sim.Fault{Status: 503, Count: 1 << 20})

	env.clock.Advance(57 * time.Minute) // inside the refresh window
	for range 5 {
		got, err := b.TokenFor(ctx, a.ID, graphDefault)
		if err != nil || got.Value != tok.Value {
			t.Fatalf("in the refresh window with the authority down: %v (same token %v)", err, got != nil && got.Value == tok.Value)
		}
	}
	env.clock.Advance(2*time.Minute + 45*time.Second) // 15 s left: below minValidity, still servable
	got, err := b.TokenFor(ctx, a.ID, graphDefault)
	if err != nil || got.Value != tok.Value {
		t.Fatalf("15 s before expiry with the authority down, the cached token should be served: %v", err)
	}
	env.clock.Advance(20 * time.Second) // expired
	_, err = b.TokenFor(ctx, a.ID, graphDefault)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("after expiry: %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "503") {
		t.Errorf("error does not say what the authority answered: %v", err)
	}
	if acc, _ := b.Account(a.ID); acc.State != StateOffline {
		t.Errorf("state %s, want offline", acc.State)
	}
	// Back up: the next call recovers.
	env.sim.ClearFaults()
	if _, err := b.TokenFor(ctx, a.ID, graphDefault); err != nil {
		t.Fatalf("after the authority came back: %v", err)
	}
	if acc, _ := b.Account(a.ID); acc.State != StateReady {
		t.Errorf("state %s after recovery, want ready", acc.State)
	}
}

// Revoked refresh tokens: a needs-sign-in event, an error that says to sign in again, the
// state persisted for other processes — and the refresh token kept (nothing dropped).
func TestRevokedRefreshTokenNeedsSignIn(t *testing.T) {
	env := newEnv(t, NewMemoryStore())
	b := env.broker()
	a := env.signIn(b, sim.UserAdele, "organizations")
	events := make(chan Event, 16)
	b.Subscribe(func(e Event) { events <- e })

	env.sim.RevokeRefreshTokens(sim.UserAdele)
	env.clock.Advance(3 * time.Hour)
	_, err := b.TokenFor(context.Background(), a.ID, graphDefault)
	if !errors.Is(err, ErrNeedsSignIn) {
		t.Fatalf("got %v, want ErrNeedsSignIn", err)
	}
	var ae *AccountError
	if !errors.As(err, &ae) || ae.Code != "invalid_grant" || !strings.Contains(err.Error(), "sign in again") {
		t.Errorf("error should name the account, the code and the remedy: %v", err)
	}
	select {
	case e := <-events:
		for e.Kind != EventState || e.Account.State != StateNeedsSignIn {
			e = <-events
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no needs-sign-in event")
	}
	// Another process sees it without trying.
	b2 := env.broker()
	acc, _ := b2.Account(a.ID)
	if acc.State != StateNeedsSignIn || acc.Detail == "" {
		t.Errorf("new process sees state %s (%q)", acc.State, acc.Detail)
	}
	if b.vault.part(strings.Split(a.ID, "@")[0]) == nil {
		t.Error("the refresh token was dropped: it must be kept until a new sign-in replaces it")
	}
	// Signing in again heals it, everywhere.
	env.sim.RestoreRefreshTokens(sim.UserAdele)
	env.signIn(b2, sim.UserAdele, "organizations")
	if acc, _ := b.Account(a.ID); acc.State != StateReady {
		t.Errorf("after a new sign-in the first process sees %s", acc.State)
	}
	if _, err := b.TokenFor(context.Background(), a.ID, graphDefault); err != nil {
		t.Fatalf("token after signing in again: %v", err)
	}
}

// interaction_required (MFA needed again) also means sign-in; a claims challenge is answered
// with one refresh carrying the claims.
func TestInteractionRequiredAndClaims(t *testing.T) {
	env := newEnv(t, NewMemoryStore())
	b := env.broker()
	a := env.signIn(b, sim.UserAdele, "organizations")
	ctx := context.Background()
	claims := `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`
	base := env.sim.GrantCount("refresh_token")
	if _, err := b.Token(ctx, TokenRequest{Account: a.ID, Scopes: NewScopes(graphDefault), Claims: claims}); err != nil {
		t.Fatalf("claims challenge: %v", err)
	}
	if got := env.sim.GrantCount("refresh_token") - base; got != 1 {
		t.Errorf("claims challenge caused %d refreshes, want 1", got)
	}
	env.sim.RequireMFA(sim.UserAdele)
	_, err := b.Token(ctx, TokenRequest{Account: a.ID, Scopes: NewScopes(graphDefault), Claims: claims})
	var ae *AccountError
	if !errors.Is(err, ErrNeedsSignIn) || !errors.As(err, &ae) || ae.Code != "interaction_required" {
		t.Fatalf("after MFA is required: %v", err)
	}
}

// Sign-out removes every keychain item of the account and nothing of the others.
func TestSignOutLeavesNoItem(t *testing.T) {
	kc := testKeychain(t)
	env := newEnv(t, kc)
	b := env.broker()
	adele := env.signIn(b, sim.UserAdele, "organizations")
	guest := env.signIn(b, sim.UserAdele, sim.TenantFabrikam)
	megan := env.signIn(b, sim.UserMegan, "organizations")
	ctx := context.Background()

	// Adele's home account is shared with her guest account: signing out the guest keeps it.
	if err := b.SignOut(ctx, guest.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.TokenFor(ctx, adele.ID, cmsDefault); err != nil {
		t.Fatalf("signing out the guest broke the member account: %v", err)
	}
	if err := b.SignOut(ctx, adele.Username); err != nil {
		t.Fatal(err)
	}
	items := keychainItems(t, kc.Service)
	for _, it := range items {
		if strings.Contains(it, homeKey(strings.Split(adele.ID, "@")[0])) {
			t.Errorf("after signing out adele, item %s remains", it)
		}
	}
	if !slices.Contains(items, keyCachePrefix+homeKey(megan.ID)) {
		t.Errorf("megan's item is gone: %v", items)
	}
	if _, err := b.Account(adele.ID); !errors.Is(err, ErrUnknownAccount) {
		t.Errorf("adele still resolves: %v", err)
	}
	if err := b.SignOut(ctx, megan.ID); err != nil {
		t.Fatal(err)
	}
	if items := keychainItems(t, kc.Service); !slices.Equal(items, []string{keyIndex}) {
		t.Errorf("after signing everyone out the keychain holds %v, want only the index", items)
	}
	if len(b.Accounts()) != 0 {
		t.Error("accounts remain")
	}
}

// With Windows' 2,560-byte limit the items are chunked, and a new process reads them back.
func TestChunkedItemsUnderWindowsLimit(t *testing.T) {
	store := newFaultStore(2560)
	env := newEnv(t, store)
	b := env.broker(func(o *Options) { o.MaxValue = 2560 })
	for _, u := range []string{sim.UserAdele, sim.UserGrady, sim.UserAlex} {
		env.signIn(b, u, "organizations")
	}
	env.signIn(b, sim.UserAdele, sim.TenantFabrikam)
	chunks := 0
	for _, k := range store.Keys() {
		if strings.Contains(k, "#") {
			chunks++
		}
		if v, _ := store.Get(k); len(v) > 2560 {
			t.Errorf("%s is %d bytes", k, len(v))
		}
	}
	if chunks == 0 {
		t.Fatal("no item was chunked: the test does not exercise the limit")
	}
	b2 := env.broker(func(o *Options) { o.MaxValue = 2560 })
	for _, a := range b2.Accounts() {
		if _, err := b2.TokenFor(context.Background(), a.ID, graphDefault); err != nil {
			t.Fatalf("%s after restart: %v", a.Username, err)
		}
	}
}

// failingStore answers every call with an error, like a missing or locked keychain.
type failingStore struct{ err error }

func (f failingStore) Get(string) (string, error) { return "", f.err }
func (f failingStore) Set(string, string) error   { return f.err }
func (f failingStore) Delete(string) error        { return f.err }

// Without a keychain: a clear error, a working session from memory, no file written.
func TestNoKeychainWorksFromMemory(t *testing.T) {
	env := newEnv(t, failingStore{err: classifyKeyringError(errors.New("The name org.freedesktop.secrets was not provided by any .service files"))})
	b := env.broker()
	if !errors.Is(b.KeychainError(), ErrNoKeychain) || !strings.Contains(b.KeychainError().Error(), "gnome-keyring") {
		t.Fatalf("KeychainError = %v, want ErrNoKeychain with advice", b.KeychainError())
	}
	a := env.signIn(b, sim.UserAdele, "organizations")
	tok, err := b.TokenFor(context.Background(), a.ID, graphDefault)
	if err != nil {
		t.Fatal(err)
	}
	assertNoTokenFiles(t, env.dir, tok.Value)
	if _, err := New(context.Background(), func() Options { o := env.options(); o.NoKeychainFallback = true; return o }()); !errors.Is(err, ErrNoKeychain) {
		t.Errorf("with NoKeychainFallback New = %v, want ErrNoKeychain", err)
	}
}

// Another process's sign-in and switch reach a watching broker as events.
func TestOtherProcessChangesArriveAsEvents(t *testing.T) {
	env := newEnv(t, NewMemoryStore())
	tray := env.broker(func(o *Options) { o.Watch = true })
	events := make(chan Event, 16)
	tray.Subscribe(func(e Event) { events <- e })
	cli := env.broker()
	adele := env.signIn(cli, sim.UserAdele, "organizations")
	megan := env.signIn(cli, sim.UserMegan, "organizations")
	if err := cli.SetActive(context.Background(), megan.Username); err != nil {
		t.Fatal(err)
	}
	seen := map[EventKind][]string{}
	deadline := time.After(10 * time.Second)
	for len(seen[EventAdded]) < 2 || len(seen[EventActive]) == 0 || seen[EventActive][len(seen[EventActive])-1] != megan.ID {
		select {
		case e := <-events:
			seen[e.Kind] = append(seen[e.Kind], e.Account.ID)
		case <-deadline:
			t.Fatalf("events seen: %v", seen)
		}
	}
	if !slices.Contains(seen[EventAdded], adele.ID) {
		t.Errorf("no added event for adele: %v", seen)
	}
	if a, _ := tray.Account(""); a.ID != megan.ID {
		t.Errorf("active account in the tray: %s", a.Username)
	}
}

// The same username in two tenants: the name alone finds the home account; the id or
// username/tenant finds the guest.
func TestResolveAccountNames(t *testing.T) {
	env := newEnv(t, NewMemoryStore())
	b := env.broker()
	adele := env.signIn(b, sim.UserAdele, "organizations")
	guest := env.signIn(b, sim.UserAdele, sim.TenantFabrikam)
	for name, want := range map[string]string{
		adele.Username:                        adele.ID,
		strings.ToUpper(adele.Username):       adele.ID,
		guest.ID:                              guest.ID,
		adele.Username + "/" + guest.TenantID: guest.ID,
		"":                                    adele.ID,
	} {
		a, err := b.Account(name)
		if err != nil || a.ID != want {
			t.Errorf("Account(%q) = %s, %v; want %s", name, a.ID, err, want)
		}
	}
	if _, err := b.Account("nobody@nowhere"); !errors.Is(err, ErrUnknownAccount) {
		t.Errorf("unknown account: %v", err)
	}
}

// An authority that is not Entra-shaped gets an error that says so, naming the URL tried.
func TestNotAnEntraAuthority(t *testing.T) {
	env := newEnv(t, NewMemoryStore())
	b := env.broker()
	_, err := b.SignInDeviceCode(context.Background(), SignInOptions{Authority: env.sim.CMSURL() + "/some-tenant"}, nil)
	if err == nil || !strings.Contains(err.Error(), "is this an Entra ID authority") || !strings.Contains(err.Error(), "/some-tenant/v2.0/.well-known/openid-configuration") {
		t.Fatalf("got %v", err)
	}
}

// The broker tells Entra it handles claims challenges (CAE, capability cp1), in every token.
func TestTokensDeclareCAE(t *testing.T) {
	env := newEnv(t, NewMemoryStore())
	b := env.broker()
	a := env.signIn(b, sim.UserAdele, "organizations")
	tok, err := b.TokenFor(context.Background(), a.ID, graphDefault)
	if err != nil {
		t.Fatal(err)
	}
	p, err := payload(tok.Value)
	if err != nil {
		t.Fatal(err)
	}
	if cc, _ := p["xms_cc"].([]any); len(cc) != 1 || cc[0] != "cp1" {
		t.Errorf("xms_cc = %v, want [cp1]", p["xms_cc"])
	}
}
