package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
)

// Keychain item keys (within the configured service).
const (
	keyIndex       = "index"     // the list of accounts and the active one
	keyCachePrefix = "cache:"    // + home account id: that account's MSAL cache part
	keyAppPrefix   = "app:"      // + account id: an app identity's secret or certificate
	keyProxy       = "proxy-key" // the proxy's client key (owned by the caller, listed here so names don't clash)
)

// MSAL's cache sections. Access tokens are never persisted: they are re-made from the refresh
// token after a restart, and the broker keeps its own in memory.
const (
	secAccessToken  = "AccessToken"
	secRefreshToken = "RefreshToken"
	secIDToken      = "IdToken"
	secAccount      = "Account"
	secAppMetadata  = "AppMetadata"
)

// accountRecord is what the index remembers of an account (nothing secret).
type accountRecord struct {
	ID            string    `json:"id"`
	Kind          Kind      `json:"kind"`
	HomeAccountID string    `json:"home_account_id,omitempty"`
	Environment   string    `json:"environment,omitempty"`
	Realm         string    `json:"realm,omitempty"`
	Username      string    `json:"username"`
	Name          string    `json:"name,omitempty"`
	TenantID      string    `json:"tenant_id,omitempty"`
	HomeTenantID  string    `json:"home_tenant_id,omitempty"`
	Authority     string    `json:"authority"`
	ClientID      string    `json:"client_id"`
	AddedAt       time.Time `json:"added_at"`
	// NeedsSignIn, when set, says why the refresh token stopped working.
	NeedsSignIn string `json:"needs_sign_in,omitempty"`
	// Credential is "secret" or "certificate" for app identities.
	Credential string `json:"credential,omitempty"`
}

type indexDoc struct {
	Version  int             `json:"version"`
	Active   string          `json:"active,omitempty"`
	Accounts []accountRecord `json:"accounts"`
}

// appSecret is what the keychain holds for an app-only identity.
type appSecret struct {
	Secret         string `json:"secret,omitempty"`
	CertificatePEM string `json:"certificate_pem,omitempty"`
}

// vault is the broker's persistent state: the index, one MSAL cache part per home account and
// the app secrets, all in the keychain, mirrored in memory. MSAL sees it through clientCache.
type vault struct {
	blobs *blobStore
	lock  *storeLock

	mu     sync.Mutex
	index  indexDoc
	parts  map[string][]byte // home account id → canonical JSON of its cache part
	merged []byte            // all parts as one MSAL cache document (no access tokens)
	gen    uint64            // generation last loaded or written
}

func newVault(store SecretStore, maxValue int, lock *storeLock) *vault {
	return &vault{blobs: newBlobStore(store, maxValue), lock: lock, parts: map[string][]byte{}, merged: []byte("{}")}
}

type lockHeldKey struct{}

// withLockHeld marks ctx as running under the store lock, so Export does not take it again.
func withLockHeld(ctx context.Context) context.Context {
	return context.WithValue(ctx, lockHeldKey{}, true)
}

func lockHeld(ctx context.Context) bool { v, _ := ctx.Value(lockHeldKey{}).(bool); return v }

// load reads the index and every account's cache part from the keychain.
func (v *vault) load() error {
	gen := v.lock.generation()
	var idx indexDoc
	raw, err := v.blobs.get(keyIndex)
	switch {
	case errors.Is(err, ErrSecretNotFound):
		idx = indexDoc{Version: 1}
	case err != nil:
		return fmt.Errorf("loading the account list: %w", err)
	default:
		if err := json.Unmarshal(raw, &idx); err != nil {
			return fmt.Errorf("loading the account list: %w: %v", ErrCorruptItem, err)
		}
	}
	parts := map[string][]byte{}
	var firstErr error
	for _, home := range homeIDs(idx) {
		p, err := v.blobs.get(keyCachePrefix + home)
		if errors.Is(err, ErrSecretNotFound) {
			continue // signed in once, refresh token gone: the account will need sign-in
		}
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("loading the tokens of %s: %w", home, err)
			}
			continue
		}
		parts[home] = p
	}
	v.mu.Lock()
	v.index, v.parts, v.gen = idx, parts, gen
	v.merged = mergeParts(parts)
	v.mu.Unlock()
	return firstErr
}

// reloadIfChanged reloads when another process wrote since the last load or write.
func (v *vault) reloadIfChanged() error {
	g := v.lock.generation()
	v.mu.Lock()
	same := g == v.gen
	v.mu.Unlock()
	if same {
		return nil
	}
	return v.load()
}

func homeIDs(idx indexDoc) []string {
	var ids []string
	for _, a := range idx.Accounts {
		if h := homeKey(a.HomeAccountID); a.Kind == KindUser && h != "" && !slices.Contains(ids, h) {
			ids = append(ids, h)
		}
	}
	return ids
}

func (v *vault) snapshotIndex() indexDoc {
	v.mu.Lock()
	defer v.mu.Unlock()
	idx := v.index
	idx.Accounts = slices.Clone(v.index.Accounts)
	return idx
}

// updateIndex changes the index under the store lock, on top of the newest keychain state.
func (v *vault) updateIndex(ctx context.Context, change func(*indexDoc) error) error {
	unlock, err := v.lock.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := v.reloadIfChanged(); err != nil {
		return err
	}
	return v.updateIndexLocked(change)
}

// updateIndexLocked is updateIndex for callers that hold the lock and have reloaded.
func (v *vault) updateIndexLocked(change func(*indexDoc) error) error {
	idx := v.snapshotIndex()
	if err := change(&idx); err != nil {
		return err
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		return fmt.Errorf("encoding the account list: %w", err)
	}
	if err := v.blobs.put(keyIndex, raw); err != nil {
		return fmt.Errorf("saving the account list: %w", err)
	}
	v.mu.Lock()
	v.index = idx
	v.gen = v.lock.bump()
	v.mu.Unlock()
	return nil
}

// putPart replaces a home account's cache part. Call with the lock held.
func (v *vault) putPart(home string, p []byte) error {
	home = homeKey(home)
	if err := v.blobs.put(keyCachePrefix+home, p); err != nil {
		return fmt.Errorf("saving the tokens of %s: %w", home, err)
	}
	v.mu.Lock()
	v.parts[home] = p
	v.merged = mergeParts(v.parts)
	v.gen = v.lock.bump()
	v.mu.Unlock()
	return nil
}

// homeKey is the keychain spelling of a home account id (MSAL compares them lower-cased).
func homeKey(home string) string { return strings.ToLower(home) }

// dropPart deletes a home account's cache part from memory and keychain. Call with the lock held.
func (v *vault) dropPart(home string) error {
	home = homeKey(home)
	if err := v.blobs.del(keyCachePrefix + home); err != nil {
		return fmt.Errorf("deleting the tokens of %s: %w", home, err)
	}
	v.mu.Lock()
	delete(v.parts, home)
	v.merged = mergeParts(v.parts)
	v.gen = v.lock.bump()
	v.mu.Unlock()
	return nil
}

// part returns a copy of a home account's persisted cache part.
func (v *vault) part(home string) []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.parts[homeKey(home)])
}

// clientCache is the cache.ExportReplace one MSAL client uses. It remembers what it last gave
// its client (base), so an Export writes only what that client changed — a client whose view
// is older cannot overwrite a refresh token another client (or process) rotated meanwhile.
type clientCache struct {
	v *vault

	mu   sync.Mutex
	base map[string][]byte
}

var _ cache.ExportReplace = (*clientCache)(nil)

// Replace gives MSAL every account's refresh token, id tokens and account entries — never
// access tokens, so MSAL redeems the refresh token whenever the broker asks it to.
func (c *clientCache) Replace(ctx context.Context, u cache.Unmarshaler, _ cache.ReplaceHints) error {
	c.v.mu.Lock()
	merged, parts := c.v.merged, maps.Clone(c.v.parts)
	c.v.mu.Unlock()
	c.mu.Lock()
	c.base = parts
	c.mu.Unlock()
	if err := u.Unmarshal(merged); err != nil {
		return fmt.Errorf("loading the token cache: %w", err)
	}
	return nil
}

// Export persists the accounts whose part this client changed since its last Replace.
func (c *clientCache) Export(ctx context.Context, m cache.Marshaler, _ cache.ExportHints) error {
	data, err := m.Marshal()
	if err != nil {
		return fmt.Errorf("encoding the token cache: %w", err)
	}
	exported, err := splitParts(data)
	if err != nil {
		return fmt.Errorf("splitting the token cache by account: %w", err)
	}
	c.mu.Lock()
	base := c.base
	c.mu.Unlock()
	changed := map[string][]byte{}
	var removed []string
	for home, p := range exported {
		if !bytes.Equal(p, base[home]) {
			changed[home] = p
		}
	}
	for home := range base {
		if _, ok := exported[home]; !ok {
			removed = append(removed, home)
		}
	}
	if len(changed) == 0 && len(removed) == 0 {
		return nil
	}
	if !lockHeld(ctx) {
		unlock, err := c.v.lock.lock(ctx)
		if err != nil {
			return err
		}
		defer unlock()
	}
	v := c.v
	// Another process may have written since this one last loaded: load its state first, so
	// the generation recorded below is not claimed for writes this process never saw.
	if err := v.reloadIfChanged(); err != nil {
		return err
	}
	var failed error
	wrote := false
	for home, p := range changed {
		v.mu.Lock()
		same := bytes.Equal(v.parts[home], p)
		v.mu.Unlock()
		if same {
			continue
		}
		// The new refresh token is written whole before anything of the old one is removed.
		err := v.blobs.put(keyCachePrefix+home, p)
		// Kept in memory even when the keychain refused it: the authority may already have
		// invalidated the refresh token the keychain still holds (rotation), so this process
		// goes on with the newest one, and its next refresh writes the keychain again.
		v.mu.Lock()
		v.parts[home] = p
		v.mu.Unlock()
		if err != nil {
			if failed == nil {
				failed = fmt.Errorf("saving the tokens of %s to the keychain: %w", home, err)
			}
			continue
		}
		wrote = true
	}
	for _, home := range removed {
		if failed != nil {
			break
		}
		if err := v.blobs.del(keyCachePrefix + home); err != nil {
			failed = fmt.Errorf("deleting the tokens of %s from the keychain: %w", home, err)
			break
		}
		wrote = true
		v.mu.Lock()
		delete(v.parts, home)
		v.mu.Unlock()
	}
	v.mu.Lock()
	v.merged = mergeParts(v.parts)
	if wrote {
		v.gen = v.lock.bump()
	}
	c.mu.Lock()
	c.base = maps.Clone(v.parts)
	c.mu.Unlock()
	v.mu.Unlock()
	return failed
}

// splitParts cuts MSAL's cache document into one part per home account (refresh token, id
// tokens, account entries, plus the app metadata each part needs), dropping access tokens.
func splitParts(data []byte) (map[string][]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	parts := map[string]map[string]map[string]json.RawMessage{}
	var appMeta map[string]json.RawMessage
	if raw, ok := doc[secAppMetadata]; ok {
		if err := json.Unmarshal(raw, &appMeta); err != nil {
			return nil, fmt.Errorf("%s: %w", secAppMetadata, err)
		}
	}
	for _, sec := range []string{secRefreshToken, secIDToken, secAccount} {
		raw, ok := doc[sec]
		if !ok {
			continue
		}
		var entries map[string]json.RawMessage
		if err := json.Unmarshal(raw, &entries); err != nil {
			return nil, fmt.Errorf("%s: %w", sec, err)
		}
		for key, e := range entries {
			var h struct {
				Home string `json:"home_account_id"`
			}
			if err := json.Unmarshal(e, &h); err != nil {
				return nil, fmt.Errorf("%s %s: %w", sec, key, err)
			}
			if h.Home == "" {
				continue
			}
			home := homeKey(h.Home)
			if parts[home] == nil {
				parts[home] = map[string]map[string]json.RawMessage{}
			}
			if parts[home][sec] == nil {
				parts[home][sec] = map[string]json.RawMessage{}
			}
			parts[home][sec][key] = e
		}
	}
	out := make(map[string][]byte, len(parts))
	for home, p := range parts {
		if len(appMeta) > 0 {
			p[secAppMetadata] = appMeta
		}
		b, err := json.Marshal(p) // map keys are sorted: the encoding is canonical
		if err != nil {
			return nil, err
		}
		out[home] = b
	}
	return out, nil
}

// mergeParts is the inverse of splitParts: one MSAL cache document holding every part.
func mergeParts(parts map[string][]byte) []byte {
	doc := map[string]map[string]json.RawMessage{}
	for _, p := range parts {
		var secs map[string]map[string]json.RawMessage
		if err := json.Unmarshal(p, &secs); err != nil {
			continue // a part that does not decode was refused when it was loaded
		}
		for sec, entries := range secs {
			if sec == secAccessToken {
				continue
			}
			if doc[sec] == nil {
				doc[sec] = map[string]json.RawMessage{}
			}
			maps.Copy(doc[sec], entries)
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return []byte("{}")
	}
	return b
}
