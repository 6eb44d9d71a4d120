package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Kind tells a person's account from an app-only identity.
type Kind string

const (
	// KindUser is a person signed in by browser or device code (public client).
	KindUser Kind = "user"
	// KindApp is an app-only identity (confidential client, client-credentials grant).
	KindApp Kind = "app"
)

// State is what an account can do right now.
type State string

const (
	// StateReady means tokens can be had without the user.
	StateReady State = "ready"
	// StateRefreshing means a token refresh is under way; the last token is still served.
	StateRefreshing State = "refreshing"
	// StateNeedsSignIn means the refresh token no longer works (revoked, expired, password
	// changed, MFA or conditional access required): the user must sign in again.
	StateNeedsSignIn State = "needs_sign_in"
	// StateOffline means the token service could not be reached; still-valid tokens are served
	// and refreshes are retried with backoff.
	StateOffline State = "offline"
)

// Account is one signed-in identity: a user in one tenant, or an app-only identity.
// The same person in two tenants (or as a guest) is two accounts.
type Account struct {
	// ID is the account's stable id: MSAL's home account id "<oid>.<home tid>" plus the tenant
	// for guests ("<oid>.<home tid>@<tenant>"), or "app:<client id>@<tenant>" for app-only.
	ID string `json:"id"`
	// Username is the UPN (preferred_username) or, for apps, the client id.
	Username string `json:"username"`
	// Name is the display name from the id token.
	Name string `json:"name,omitempty"`
	// TenantID is the tenant the account's tokens are issued in.
	TenantID string `json:"tenant_id,omitempty"`
	// HomeTenantID is the tenant the user belongs to (differs from TenantID for guests).
	HomeTenantID string `json:"home_tenant_id,omitempty"`
	// Authority is the authority URL the account signs in with, e.g.
	// https://login.microsoftonline.com/organizations/.
	Authority string `json:"authority"`
	// ClientID is the application (client) id the account's tokens are issued to.
	ClientID string `json:"client_id"`
	// Kind is user or app.
	Kind Kind `json:"kind"`
	// State is what the account can do right now.
	State State `json:"state"`
	// Detail says why the account is not ready, in words a user can act on.
	Detail string `json:"detail,omitempty"`
	// Active is true for the account used when a request names none.
	Active bool `json:"active"`
}

// Guest reports whether the account is a guest in a tenant other than its home tenant.
func (a Account) Guest() bool {
	return a.HomeTenantID != "" && a.TenantID != "" && !strings.EqualFold(a.HomeTenantID, a.TenantID)
}

// AccessToken is a fresh access token. Values returned by the broker are shared and must not
// be modified.
type AccessToken struct {
	// Value is the raw token.
	Value string
	// Header is "Bearer " + Value, built once per token so callers need not allocate.
	Header string
	// ExpiresOn is when the token stops being accepted.
	ExpiresOn time.Time
	// AccountID is the ID of the account the token belongs to.
	AccountID string
	// Scopes are the scopes the token was requested for.
	Scopes []string

	refreshAt time.Time // when the background refresher renews it
}

// String never prints the token (also when the struct itself is formatted, with %v or %+v).
func (t AccessToken) String() string {
	return fmt.Sprintf("access token for %s (%s), expires %s", t.AccountID, strings.Join(t.Scopes, " "), t.ExpiresOn.Format(time.RFC3339))
}

// GoString never prints the token (%#v).
func (t AccessToken) GoString() string { return t.String() }

// Scopes is a normalised, immutable set of scopes. Build it once (NewScopes) and reuse it:
// its Key makes token lookups free of allocation.
type Scopes struct {
	list []string
	key  string
}

// NewScopes normalises scopes: trims, drops empties and duplicates (case-insensitively), sorts.
func NewScopes(scopes ...string) Scopes {
	var list []string
	for _, s := range scopes {
		for _, f := range strings.Fields(s) {
			if !slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, f) }) {
				list = append(list, f)
			}
		}
	}
	slices.SortFunc(list, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	return Scopes{list: list, key: strings.ToLower(strings.Join(list, " "))}
}

// List returns the scopes; the slice must not be modified.
func (s Scopes) List() []string { return s.list }

// Key is the canonical, lower-case, space-separated form.
func (s Scopes) Key() string { return s.key }

// Empty reports whether no scope is set.
func (s Scopes) Empty() bool { return len(s.list) == 0 }

// String is the space-separated list.
func (s Scopes) String() string { return strings.Join(s.list, " ") }

// TokenRequest asks for an access token.
type TokenRequest struct {
	// Account is a UPN or account ID; empty means the active account.
	Account string
	// Scopes are the scopes wanted; empty means the sign-in scopes (Graph).
	Scopes Scopes
	// Claims is a claims challenge from a resource (CAE, insufficient_claims); non-empty forces
	// a refresh with those claims.
	Claims string
	// Rejected, when set, is a token value the resource refused (an upstream 401): if the
	// cached token is still that one, it is refreshed; if someone already refreshed it, the
	// newer token is returned without another refresh.
	Rejected string
}

// DeviceCode is what a person needs to finish a device-code sign-in on another device.
type DeviceCode struct {
	// VerificationURI is the page to open.
	VerificationURI string `json:"verification_uri"`
	// UserCode is the code to type there.
	UserCode string `json:"user_code"`
	// ExpiresIn is how long the code stays valid.
	ExpiresIn time.Duration `json:"-"`
	// Message is the authority's own sentence for the user.
	Message string `json:"message,omitempty"`
}

// EventKind says what changed.
type EventKind string

const (
	// EventAdded: an account was signed in.
	EventAdded EventKind = "added"
	// EventRemoved: an account was signed out.
	EventRemoved EventKind = "removed"
	// EventState: an account's State changed.
	EventState EventKind = "state"
	// EventActive: the active account changed.
	EventActive EventKind = "active"
)

// Event reports a change to the accounts. Subscribers receive a copy of the account after the change.
type Event struct {
	Kind    EventKind
	Account Account
}

// Errors a caller can branch on with errors.Is.
var (
	// ErrNeedsSignIn: the account must sign in again (revoked or expired refresh token,
	// interaction_required, password change, conditional access).
	ErrNeedsSignIn = errors.New("sign-in required")
	// ErrNoKeychain: no OS keychain is available; tokens live in memory only for this session.
	ErrNoKeychain = errors.New("no OS keychain available")
	// ErrKeychainTimeout: the keychain did not answer in time (locked or hung).
	ErrKeychainTimeout = errors.New("keychain did not answer in time")
	// ErrCancelled: the user or the caller cancelled the operation.
	ErrCancelled = errors.New("cancelled")
	// ErrUnknownAccount: no signed-in account matches the name given.
	ErrUnknownAccount = errors.New("no such account")
	// ErrNoAccount: no account is signed in (or none is active).
	ErrNoAccount = errors.New("no account signed in")
	// ErrUnavailable: the token service could not be reached and no valid token is cached.
	ErrUnavailable = errors.New("token service unavailable")
)

// AccountError says which account an operation failed for, and why.
type AccountError struct {
	// Account is the account's username or ID.
	Account string
	// Op is what was being done, e.g. "refreshing token".
	Op string
	// Code is the authority's error code (invalid_grant, interaction_required), if any.
	Code string
	// Err is the cause; errors.Is(err, ErrNeedsSignIn) etc. work through it.
	Err error
}

// Error says what failed, for which account, and why.
func (e *AccountError) Error() string {
	msg := e.Op + " for " + e.Account
	if e.Code != "" {
		msg += " (" + e.Code + ")"
	}
	return msg + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *AccountError) Unwrap() error { return e.Err }

// SignInOptions shape a user sign-in.
type SignInOptions struct {
	// Authority overrides the configured authority, e.g. https://login.microsoftonline.com/contoso.com/.
	Authority string
	// LoginHint pre-fills the username on the sign-in page.
	LoginHint string
	// Scopes are requested in addition to the configured sign-in scopes.
	Scopes []string
	// OpenURL opens the sign-in page; nil opens the system browser.
	OpenURL func(url string) error
}

// AppOptions describe an app-only identity (client-credentials grant). Exactly one of Secret
// and CertificatePEM is set; it is kept in the keychain.
type AppOptions struct {
	// Authority is the tenant's authority, e.g. https://login.microsoftonline.com/<tenant>/.
	Authority string
	// ClientID is the app registration's application (client) id.
	ClientID string
	// Secret is a client secret.
	Secret string
	// CertificatePEM holds the certificate and its RSA private key, PEM-encoded.
	CertificatePEM []byte
	// Name is a label shown in lists; defaults to the client id.
	Name string
}
