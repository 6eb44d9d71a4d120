package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
)

// signInScopes are asked for at sign-in: User.Read (to read the profile) plus the configured
// and requested ones. MSAL adds openid, profile and offline_access.
func (b *Broker) signInScopes(extra []string) []string {
	return NewScopes(append(append([]string{"User.Read"}, b.opts.Scopes...), extra...)...).List()
}

// SignIn signs a user in through the browser (authorization code with PKCE, loopback
// redirect) and adds or renews the account. Cancelling ctx ends the wait with ErrCancelled.
func (b *Broker) SignIn(ctx context.Context, o SignInOptions) (Account, error) {
	authority, err := normaliseAuthority(firstNonEmpty(o.Authority, b.opts.Authority))
	if err != nil {
		return Account{}, fmt.Errorf("signing in: %w", err)
	}
	client, err := b.publicClient(authority)
	if err != nil {
		return Account{}, fmt.Errorf("signing in: %w", err)
	}
	scopes := b.signInScopes(o.Scopes)
	var opts []public.AcquireInteractiveOption
	if open := firstOpener(o.OpenURL, b.opts.OpenURL); open != nil {
		opts = append(opts, public.WithOpenURL(open))
	}
	if o.LoginHint != "" {
		opts = append(opts, public.WithLoginHint(o.LoginHint))
	}
	res, err := client.AcquireTokenInteractive(ctx, scopes, opts...)
	if err != nil {
		return Account{}, signInError(ctx, "signing in through the browser", authority, err)
	}
	return b.adopt(ctx, authority, res, scopes)
}

// SignInDeviceCode signs a user in with a device code: show is called once the code is
// known; the call returns when the user finished (or ctx ends, with ErrCancelled).
func (b *Broker) SignInDeviceCode(ctx context.Context, o SignInOptions, show func(DeviceCode)) (Account, error) {
	authority, err := normaliseAuthority(firstNonEmpty(o.Authority, b.opts.Authority))
	if err != nil {
		return Account{}, fmt.Errorf("signing in with a device code: %w", err)
	}
	client, err := b.publicClient(authority)
	if err != nil {
		return Account{}, fmt.Errorf("signing in with a device code: %w", err)
	}
	scopes := b.signInScopes(o.Scopes)
	dc, err := client.AcquireTokenByDeviceCode(ctx, scopes)
	if err != nil {
		return Account{}, signInError(ctx, "asking for a device code", authority, err)
	}
	if show != nil {
		show(DeviceCode{
			VerificationURI: dc.Result.VerificationURL,
			UserCode:        dc.Result.UserCode,
			ExpiresIn:       dc.Result.ExpiresOn.Sub(b.clock.Now()).Round(1e9),
			Message:         dc.Result.Message,
		})
	}
	res, err := dc.AuthenticationResult(ctx)
	if err != nil {
		return Account{}, signInError(ctx, "waiting for the device code sign-in", authority, err)
	}
	return b.adopt(ctx, authority, res, scopes)
}

func signInError(ctx context.Context, op, authority string, err error) error {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", op, ErrCancelled)
	}
	f := classify(err)
	if f.code != "" {
		return fmt.Errorf("%s at %s: %s", op, authority, f.message)
	}
	return fmt.Errorf("%s at %s: %s", op, authority, f.message)
}

// adopt records a signed-in user: the index entry (MSAL already wrote the refresh token to
// the keychain) and the access token just issued.
func (b *Broker) adopt(ctx context.Context, authority string, res public.AuthResult, scopes []string) (Account, error) {
	home := res.Account.HomeAccountID
	if home == "" {
		return Account{}, errors.New("signing in: the authority's answer named no account (no client_info or id token)")
	}
	homeTenant := ""
	if _, t, ok := strings.Cut(home, "."); ok {
		homeTenant = t
	}
	// MSAL's realm is the authority's tenant segment ("organizations", a domain); the account
	// belongs to the tenant that issued the id token.
	realm := firstNonEmpty(res.IDToken.TenantID, res.Account.Realm)
	id := home
	if realm != "" && homeTenant != "" && !strings.EqualFold(realm, homeTenant) {
		id = home + "@" + realm
	}
	rec := accountRecord{
		ID:            strings.ToLower(id),
		Kind:          KindUser,
		HomeAccountID: home,
		Environment:   res.Account.Environment,
		Realm:         res.Account.Realm,
		Username:      firstNonEmpty(res.Account.PreferredUsername, res.IDToken.PreferredUsername, res.IDToken.UPN, res.IDToken.Email, res.IDToken.Subject),
		Name:          firstNonEmpty(res.IDToken.Name, res.Account.Name),
		TenantID:      realm,
		HomeTenantID:  homeTenant,
		Authority:     withTenant(authority, realm),
		ClientID:      b.opts.ClientID,
		AddedAt:       b.clock.Now().UTC(),
	}
	if err := b.vault.updateIndex(ctx, func(idx *indexDoc) error {
		upsert(idx, rec)
		return nil
	}); err != nil {
		return Account{}, fmt.Errorf("saving account %s: %w", rec.Username, err)
	}
	b.rebuild(true)
	set := b.accts.Load()
	a := set.byID[rec.ID]
	if a == nil {
		return Account{}, fmt.Errorf("saving account %s: it was signed out meanwhile", rec.Username)
	}
	b.setState(a, StateReady, "")
	if res.AccessToken != "" {
		b.storeToken(rec.ID, NewScopes(scopes...), res.AccessToken, res.ExpiresOn)
	}
	b.log.Info("signed in", "account", rec.Username, "tenant", rec.TenantID)
	return a.snapshot(set.active == a), nil
}

// upsert replaces the record with the same ID, or adds it; the first account becomes active.
func upsert(idx *indexDoc, rec accountRecord) {
	idx.Version = 1
	if i := slices.IndexFunc(idx.Accounts, func(r accountRecord) bool { return r.ID == rec.ID }); i >= 0 {
		rec.AddedAt = idx.Accounts[i].AddedAt
		idx.Accounts[i] = rec
	} else {
		idx.Accounts = append(idx.Accounts, rec)
	}
	if !slices.ContainsFunc(idx.Accounts, func(r accountRecord) bool { return r.ID == idx.Active }) {
		idx.Active = rec.ID
	}
}

// AddApp adds an app-only identity: it checks the credential by getting a token with it, then
// keeps the secret or certificate in the keychain.
func (b *Broker) AddApp(ctx context.Context, o AppOptions) (Account, error) {
	authority, err := normaliseAuthority(o.Authority)
	if err != nil {
		return Account{}, fmt.Errorf("adding app %s: %w", o.ClientID, err)
	}
	tenant := tenantOf(authority)
	if tenant == "organizations" || tenant == "common" || tenant == "consumers" {
		return Account{}, fmt.Errorf("adding app %s: an app signs in to one tenant: use an authority with the tenant id or domain, not %q", o.ClientID, tenant)
	}
	if o.ClientID == "" {
		return Account{}, errors.New("adding an app: the client id is missing")
	}
	sec := appSecret{Secret: o.Secret, CertificatePEM: string(o.CertificatePEM)}
	if (sec.Secret == "") == (sec.CertificatePEM == "") {
		return Account{}, fmt.Errorf("adding app %s: give either a client secret or a certificate", o.ClientID)
	}
	cc, err := b.newAppClient(authority, o.ClientID, sec)
	if err != nil {
		return Account{}, fmt.Errorf("adding app %s: %w", o.ClientID, err)
	}
	res, err := cc.AcquireTokenByCredential(ctx, appScopes(b.defaultScopes).List())
	if err != nil {
		return Account{}, fmt.Errorf("adding app %s: checking the credential: %s", o.ClientID, classify(err).message)
	}
	tid := firstNonEmpty(claimString(res.AccessToken, "tid"), tenant)
	kind := "secret"
	if sec.CertificatePEM != "" {
		kind = "certificate"
	}
	rec := accountRecord{
		ID:         strings.ToLower("app:" + o.ClientID + "@" + tid),
		Kind:       KindApp,
		Username:   firstNonEmpty(o.Name, o.ClientID),
		Name:       o.Name,
		TenantID:   tid,
		Authority:  withTenant(authority, tid),
		ClientID:   o.ClientID,
		AddedAt:    b.clock.Now().UTC(),
		Credential: kind,
	}
	raw, _ := json.Marshal(sec)
	unlock, err := b.vault.lock.lock(ctx)
	if err != nil {
		return Account{}, fmt.Errorf("adding app %s: %w", o.ClientID, err)
	}
	err = b.vault.reloadIfChanged()
	if err == nil {
		err = b.vault.blobs.put(keyAppPrefix+rec.ID, raw)
	}
	if err == nil {
		err = b.vault.updateIndexLocked(func(idx *indexDoc) error { upsert(idx, rec); return nil })
	}
	unlock()
	if err != nil {
		return Account{}, fmt.Errorf("adding app %s: saving its credential in the keychain: %w", o.ClientID, err)
	}
	b.mu.Lock()
	b.apps[rec.ID] = cc
	b.mu.Unlock()
	b.rebuild(true)
	b.storeToken(rec.ID, appScopes(b.defaultScopes), res.AccessToken, res.ExpiresOn)
	a := b.accts.Load().byID[rec.ID]
	if a == nil {
		return Account{}, fmt.Errorf("adding app %s: it was removed meanwhile", o.ClientID)
	}
	return a.snapshot(b.accts.Load().active == a), nil
}

func (b *Broker) newAppClient(authority, clientID string, sec appSecret) (*confidential.Client, error) {
	var cred confidential.Credential
	var err error
	if sec.Secret != "" {
		cred, err = confidential.NewCredFromSecret(sec.Secret)
	} else {
		certs, key, perr := confidential.CertFromPEM([]byte(sec.CertificatePEM), "")
		if perr != nil {
			return nil, fmt.Errorf("reading the certificate (PEM with the certificate and its unencrypted private key): %w", perr)
		}
		cred, err = confidential.NewCredFromCert(certs, key)
	}
	if err != nil {
		return nil, fmt.Errorf("preparing the credential: %w", err)
	}
	opts := []confidential.Option{
		confidential.WithCache(noCache{}),
		confidential.WithInstanceDiscovery(isMicrosoftHost(authority)),
		confidential.WithClientCapabilities(clientCapabilities),
	}
	if b.opts.HTTPClient != nil {
		opts = append(opts, confidential.WithHTTPClient(b.opts.HTTPClient))
	}
	c, err := confidential.New(authority, clientID, cred, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating the MSAL client: %w", err)
	}
	return &c, nil
}

// appClient returns the confidential client of an app account, reading its credential
// from the keychain the first time.
func (b *Broker) appClient(ctx context.Context, a *acct) (*confidential.Client, error) {
	b.mu.Lock()
	c := b.apps[a.rec.ID]
	b.mu.Unlock()
	if c != nil {
		return c, nil
	}
	raw, err := b.vault.blobs.get(keyAppPrefix + a.rec.ID)
	if err != nil {
		if errors.Is(err, ErrSecretNotFound) {
			return nil, fmt.Errorf("%w: the app's credential is not in the keychain; add the app again", ErrNeedsSignIn)
		}
		return nil, fmt.Errorf("reading the app's credential from the keychain: %w", err)
	}
	var sec appSecret
	if err := json.Unmarshal(raw, &sec); err != nil {
		return nil, fmt.Errorf("reading the app's credential: %w", ErrCorruptItem)
	}
	c, err = b.newAppClient(a.rec.Authority, a.rec.ClientID, sec)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	if prev := b.apps[a.rec.ID]; prev != nil {
		c = prev
	} else {
		b.apps[a.rec.ID] = c
	}
	b.mu.Unlock()
	return c, nil
}

// appScopes turns scopes into what the client-credentials grant accepts: "<resource>/.default".
func appScopes(s Scopes) Scopes {
	var out []string
	for _, sc := range s.List() {
		if strings.HasSuffix(sc, "/.default") {
			out = append(out, sc)
			continue
		}
		if i := strings.LastIndex(sc, "/"); i > len("https://") {
			out = append(out, sc[:i]+"/.default")
			continue
		}
		out = append(out, "https://graph.microsoft.com/.default")
	}
	return NewScopes(out...)
}

// noCache keeps MSAL's confidential client from caching app tokens: the broker does.
type noCache struct{}

func (noCache) Replace(_ context.Context, u cache.Unmarshaler, _ cache.ReplaceHints) error {
	return u.Unmarshal([]byte("{}"))
}

func (noCache) Export(context.Context, cache.Marshaler, cache.ExportHints) error { return nil }

// SignOut removes an account: its refresh token, id tokens and account entries from the
// keychain (the whole item when no other account shares the home account), its app
// credential, and its access tokens from memory.
func (b *Broker) SignOut(ctx context.Context, name string) error {
	a, err := b.accts.Load().resolve(name)
	if err != nil {
		return fmt.Errorf("signing out: %w", err)
	}
	unlock, err := b.vault.lock.lock(ctx)
	if err != nil {
		return fmt.Errorf("signing out %s: %w", a.rec.Username, err)
	}
	err = b.signOutLocked(a.rec)
	unlock()
	if err != nil {
		return fmt.Errorf("signing out %s: %w", a.rec.Username, err)
	}
	b.mu.Lock()
	delete(b.apps, a.rec.ID)
	b.mu.Unlock()
	b.dropTokens(a.rec.ID)
	b.rebuild(true)
	b.log.Info("signed out", "account", a.rec.Username)
	return nil
}

func (b *Broker) signOutLocked(rec accountRecord) error {
	v := b.vault
	if err := v.reloadIfChanged(); err != nil {
		return err
	}
	// The index first: a crash after this leaves an unlisted item at worst, never a listed
	// account without its tokens.
	if err := v.updateIndexLocked(func(idx *indexDoc) error {
		idx.Accounts = slices.DeleteFunc(idx.Accounts, func(r accountRecord) bool { return r.ID == rec.ID })
		if idx.Active == rec.ID {
			idx.Active = ""
			if len(idx.Accounts) > 0 {
				idx.Active = idx.Accounts[0].ID
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if rec.Kind == KindApp {
		return v.blobs.del(keyAppPrefix + rec.ID)
	}
	shared := slices.ContainsFunc(v.snapshotIndex().Accounts, func(r accountRecord) bool {
		return homeKey(r.HomeAccountID) == homeKey(rec.HomeAccountID)
	})
	if !shared {
		return v.dropPart(rec.HomeAccountID)
	}
	// The same person is still signed in to another tenant: keep the refresh token, drop this
	// tenant's id token and account entry.
	p := v.part(rec.HomeAccountID)
	if p == nil {
		return nil
	}
	var secs map[string]map[string]json.RawMessage
	if err := json.Unmarshal(p, &secs); err != nil {
		return v.dropPart(rec.HomeAccountID)
	}
	for _, sec := range []string{secIDToken, secAccount} {
		for k, e := range secs[sec] {
			var r struct {
				Realm string `json:"realm"`
			}
			if json.Unmarshal(e, &r) == nil && (strings.EqualFold(r.Realm, rec.Realm) || strings.EqualFold(r.Realm, rec.TenantID)) {
				delete(secs[sec], k)
			}
		}
	}
	np, err := json.Marshal(secs)
	if err != nil {
		return err
	}
	return v.putPart(rec.HomeAccountID, np)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func firstOpener(f ...func(string) error) func(string) error {
	for _, v := range f {
		if v != nil {
			return v
		}
	}
	return nil
}

// tenantOf returns the first path segment of a normalised authority.
func tenantOf(authority string) string {
	rest := strings.TrimPrefix(authority, "https://")
	_, path, _ := strings.Cut(rest, "/")
	t, _, _ := strings.Cut(path, "/")
	return strings.ToLower(t)
}
