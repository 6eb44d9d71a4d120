package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
)

type tokenKey struct{ account, scopes string }

// tokenEntry is the newest access token of one (account, scopes).
type tokenEntry struct {
	key        tokenKey
	scopes     Scopes
	tok        atomic.Pointer[AccessToken]
	lastUsed   atomic.Int64 // unix seconds
	refreshing atomic.Bool  // a background refresh is under way
	failures   atomic.Int32 // consecutive transient failures
	retryAt    atomic.Int64 // unix nanos: no background retry before
}

func (e *tokenEntry) touch(now time.Time) {
	s := now.Unix()
	if e.lastUsed.Load() != s { // one write per second at most: no cache-line ping-pong
		e.lastUsed.Store(s)
	}
}

// Token returns a fresh access token for an account and scopes. The hot path — a cached token
// with time left — answers from memory without locks, I/O or allocation. A token close to
// expiry is still returned while a background refresh renews it; an expired (or rejected, or
// claims-challenged) one is refreshed once however many callers wait for it.
func (b *Broker) Token(ctx context.Context, req TokenRequest) (*AccessToken, error) {
	a, err := b.accts.Load().resolve(req.Account)
	if err != nil {
		return nil, err
	}
	scopes := req.Scopes
	if scopes.key == "" {
		scopes = b.defaultScopes
	}
	if req.Claims == "" {
		if m := b.tokens.Load(); m != nil {
			if e := (*m)[tokenKey{a.rec.ID, scopes.key}]; e != nil {
				if t := e.tok.Load(); t != nil && t.Value != req.Rejected {
					now := b.clock.Now()
					if left := t.ExpiresOn.Sub(now); left > minValidity {
						e.touch(now)
						if now.After(t.refreshAt) {
							b.refreshSoon(e)
						}
						return t, nil
					}
				}
			}
		}
	}
	return b.slowToken(ctx, a, scopes, req)
}

// TokenFor is Token for callers with plain values (the CLI, tests).
func (b *Broker) TokenFor(ctx context.Context, account string, scopes ...string) (*AccessToken, error) {
	return b.Token(ctx, TokenRequest{Account: account, Scopes: NewScopes(scopes...)})
}

// entry returns the token entry of (account, scopes), creating it.
func (b *Broker) entry(account string, scopes Scopes) *tokenEntry {
	k := tokenKey{account, scopes.key}
	if m := b.tokens.Load(); m != nil {
		if e := (*m)[k]; e != nil {
			return e
		}
	}
	b.tokMu.Lock()
	defer b.tokMu.Unlock()
	old := b.tokens.Load()
	if old != nil {
		if e := (*old)[k]; e != nil {
			return e
		}
	}
	m := make(map[tokenKey]*tokenEntry, 1+lenMap(old))
	if old != nil {
		for k2, v := range *old {
			m[k2] = v
		}
	}
	e := &tokenEntry{key: k, scopes: scopes}
	m[k] = e
	b.tokens.Store(&m)
	return e
}

func lenMap(m *map[tokenKey]*tokenEntry) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// dropTokens forgets every access token of an account.
func (b *Broker) dropTokens(account string) {
	b.tokMu.Lock()
	defer b.tokMu.Unlock()
	old := b.tokens.Load()
	if old == nil {
		return
	}
	m := make(map[tokenKey]*tokenEntry, len(*old))
	for k, v := range *old {
		if k.account != account {
			m[k] = v
		}
	}
	b.tokens.Store(&m)
}

// storeToken records a new access token and schedules its renewal. expires is MSAL's: the
// wall clock at the answer plus expires_in; it is carried over to the broker's clock.
func (b *Broker) storeToken(account string, scopes Scopes, value string, expires time.Time) *AccessToken {
	now := b.clock.Now()
	if _, real := b.clock.(SystemClock); !real {
		expires = now.Add(time.Until(expires))
	}
	life := expires.Sub(now)
	before := b.refreshBefore
	if before > life/2 {
		before = life / 2 // short-lived tokens: renew at half-life, not continuously
	}
	jitter := time.Duration(0)
	if before > 10*time.Second {
		jitter = time.Duration(rand.Int64N(int64(before / 5))) // spread renewals: up to a fifth earlier
	}
	t := &AccessToken{
		Value:     value,
		Header:    "Bearer " + value,
		ExpiresOn: expires,
		AccountID: account,
		Scopes:    scopes.List(),
		refreshAt: expires.Add(-before - jitter),
	}
	e := b.entry(account, scopes)
	e.tok.Store(t)
	e.failures.Store(0)
	e.retryAt.Store(0)
	b.kick()
	return t
}

// slowToken waits for a refresh shared by every caller of the same (account, scopes, claims).
func (b *Broker) slowToken(ctx context.Context, a *acct, scopes Scopes, req TokenRequest) (*AccessToken, error) {
	e := b.entry(a.rec.ID, scopes)
	e.touch(b.clock.Now())
	if a.getState() == StateNeedsSignIn && req.Claims == "" {
		return nil, &AccountError{Account: a.rec.Username, Op: "getting a token", Err: fmt.Errorf("%w: %s", ErrNeedsSignIn, signInHint(a))}
	}
	key := a.rec.ID + "\x00" + scopes.key + "\x00" + req.Claims
	ch := b.sf.DoChan(key, func() (any, error) {
		// Someone may have refreshed while this caller queued.
		if t := e.tok.Load(); t != nil && req.Claims == "" && t.Value != req.Rejected && t.ExpiresOn.Sub(b.clock.Now()) > minValidity {
			return t, nil
		}
		// The refresh outlives a caller that gives up: others may be waiting for it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		return b.refresh(rctx, a, e, req.Claims, b.retries)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			// A transient failure: the old token is still good for a while.
			if t := e.tok.Load(); t != nil && errors.Is(r.Err, ErrUnavailable) && req.Claims == "" && t.Value != req.Rejected && t.ExpiresOn.Sub(b.clock.Now()) > servable {
				return t, nil
			}
			// A resource refused the cached token (a 401, a claims challenge) and the account
			// needs sign-in, so no new one can be had: stop handing out the refused one, which
			// would only be sent, and refused, again with every request.
			if errors.Is(r.Err, ErrNeedsSignIn) && (req.Claims != "" || req.Rejected != "") {
				if t := e.tok.Load(); t != nil && (req.Rejected == "" || t.Value == req.Rejected) {
					e.tok.CompareAndSwap(t, nil)
				}
			}
			return nil, r.Err
		}
		return r.Val.(*AccessToken), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a token for %s: %w", a.rec.Username, ctxErr(ctx))
	}
}

func ctxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return ErrCancelled
	}
	return ctx.Err()
}

func signInHint(a *acct) string {
	a.mu.Lock()
	d := a.detail
	a.mu.Unlock()
	if d == "" {
		d = "the refresh token no longer works"
	}
	if a.rec.Kind == KindApp {
		return d + "; add the app again with `entra-companion login --app`"
	}
	return d + "; sign in again with `entra-companion login` (or Add account… in the tray)"
}

// refresh gets a new token from the authority, retrying transient failures up to retries
// times, and records the outcome in the account's state.
func (b *Broker) refresh(ctx context.Context, a *acct, e *tokenEntry, claims string, retries int) (*AccessToken, error) {
	delay := b.retryDelay
	var last failure
	for attempt := 0; ; attempt++ {
		t, f := b.acquire(ctx, a, e.scopes, claims)
		if f == nil {
			if s := a.getState(); s != StateReady {
				b.setState(a, StateReady, "")
			}
			return t, nil
		}
		last = *f
		switch f.kind {
		case failSignIn:
			b.markNeedsSignIn(ctx, a, f.message)
			return nil, &AccountError{Account: a.rec.Username, Op: "refreshing the token", Code: f.code, Err: fmt.Errorf("%w: %s", ErrNeedsSignIn, signInHint(a))}
		case failPermanent:
			return nil, &AccountError{Account: a.rec.Username, Op: "getting a token", Code: f.code, Err: errors.New(f.message)}
		}
		if attempt >= retries || ctx.Err() != nil {
			break
		}
		wait := delay
		if f.retryAfter > wait {
			wait = f.retryAfter
		}
		if wait > time.Minute {
			break
		}
		b.log.Debug("token refresh failed; retrying", "account", a.rec.Username, "attempt", attempt+1, "in", wait, "reason", f.message)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
		delay *= 2
	}
	n := e.failures.Add(1)
	b.setState(a, StateOffline, last.message)
	backoff := min(b.retryDelay<<min(n, 7), time.Minute)
	// The authority asked for a pause (throttling): the background refresher keeps it.
	backoff = max(backoff, min(last.retryAfter, maxRetryAfter))
	e.retryAt.Store(b.clock.Now().Add(backoff).UnixNano())
	b.kick()
	return nil, &AccountError{Account: a.rec.Username, Op: "refreshing the token", Code: last.code, Err: fmt.Errorf("%w: %s", ErrUnavailable, last.message)}
}

// acquire makes one MSAL call for a new access token.
func (b *Broker) acquire(ctx context.Context, a *acct, scopes Scopes, claims string) (*AccessToken, *failure) {
	if a.rec.Kind == KindApp {
		c, err := b.appClient(ctx, a)
		if err != nil {
			if errors.Is(err, ErrNeedsSignIn) {
				return nil, &failure{kind: failSignIn, message: err.Error()}
			}
			return nil, &failure{kind: failTransient, message: err.Error()}
		}
		cctx, cancel := context.WithTimeout(ctx, b.callTimeout)
		defer cancel()
		res, err := c.AcquireTokenByCredential(cctx, appScopes(scopes).List())
		if err != nil {
			return nil, classify(err)
		}
		return b.storeToken(a.rec.ID, scopes, res.AccessToken, res.ExpiresOn), nil
	}
	client, err := b.publicClient(a.rec.Authority)
	if err != nil {
		return nil, &failure{kind: failPermanent, message: err.Error()}
	}
	// One refresh at a time across goroutines and processes, each on the newest refresh token:
	// with rotating refresh tokens, redeeming a stale one would sign the account out.
	unlock, err := b.vault.lock.lock(ctx)
	if err != nil {
		return nil, &failure{kind: failTransient, message: err.Error()}
	}
	defer unlock()
	if err := b.vault.reloadIfChanged(); err != nil {
		return nil, &failure{kind: failTransient, message: err.Error()}
	}
	if b.vault.part(a.rec.HomeAccountID) == nil {
		return nil, &failure{kind: failSignIn, message: "no refresh token in the keychain"}
	}
	opts := []public.AcquireSilentOption{public.WithSilentAccount(public.Account{
		HomeAccountID:     a.rec.HomeAccountID,
		Environment:       a.rec.Environment,
		Realm:             a.rec.Realm,
		PreferredUsername: a.rec.Username,
	})}
	if claims != "" {
		opts = append(opts, public.WithClaims(claims))
	}
	cctx, cancel := context.WithTimeout(ctx, b.callTimeout)
	defer cancel()
	res, err := client.AcquireTokenSilent(withLockHeld(cctx), scopes.List(), opts...)
	if err != nil {
		return nil, classify(err)
	}
	return b.storeToken(a.rec.ID, scopes, res.AccessToken, res.ExpiresOn), nil
}

// maxRetryAfter caps how long a Retry-After from the authority holds background refreshes.
const maxRetryAfter = 30 * time.Minute

type failKind int

const (
	failTransient failKind = iota // network, 5xx, 429, timeouts: retry, keep serving
	failSignIn                    // the refresh token is dead: the user must sign in
	failPermanent                 // configuration or request errors: retrying won't help
)

type failure struct {
	kind       failKind
	code       string
	message    string
	retryAfter time.Duration
}

// entraError is the body of an authority's error answer.
type entraError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	SubError    string `json:"suberror"`
	Codes       []int  `json:"error_codes"`
}

// classify turns an MSAL error into what the broker does about it, with a message free of
// token material.
func classify(err error) *failure {
	var ce msalerrors.CallErr
	if errors.As(err, &ce) && ce.Resp != nil {
		status := ce.Resp.StatusCode
		var body entraError
		if ce.Resp.Body != nil {
			raw, _ := io.ReadAll(io.LimitReader(ce.Resp.Body, 64<<10))
			_ = json.Unmarshal(raw, &body)
		}
		desc := firstLine(body.Description)
		f := &failure{code: body.Error, message: fmt.Sprintf("the authority answered %d %s", status, firstNonEmpty(body.Error, httpStatusText(status)))}
		if desc != "" {
			f.message += ": " + desc
		}
		if body.Error == "" && (status == http.StatusNotFound || status == http.StatusMethodNotAllowed) && ce.Req != nil {
			// Not an OAuth answer at all: most likely not an Entra ID (v2.0) authority.
			u := *ce.Req.URL
			u.RawQuery, u.Fragment, u.ForceQuery = "", "", false // never a query string in a message
			f.message += fmt.Sprintf(" for %s %s: is this an Entra ID authority? It must serve <authority>/v2.0/.well-known/openid-configuration and the endpoints that document names", ce.Req.Method, u.Redacted())
		}
		if ra := ce.Resp.Header.Get("Retry-After"); ra != "" {
			if s, err := time.ParseDuration(strings.TrimSpace(ra) + "s"); err == nil {
				f.retryAfter = s
			}
		}
		switch {
		case body.Error == "invalid_grant", body.Error == "interaction_required", body.Error == "consent_required", body.Error == "login_required":
			f.kind = failSignIn
		case body.Error == "invalid_client", body.Error == "unauthorized_client":
			f.kind = failSignIn // a secret expired or the app was removed: the identity must be added again
		case status == 429 || status >= 500 || body.Error == "temporarily_unavailable":
			f.kind = failTransient
		default:
			f.kind = failPermanent
		}
		f.message = redact(f.message)
		return f
	}
	msg := redact(err.Error())
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &failure{kind: failTransient, message: "the authority did not answer in time"}
	case errors.Is(err, context.Canceled):
		return &failure{kind: failTransient, message: "cancelled"}
	case strings.Contains(msg, "no token found"), strings.Contains(msg, "no refresh token"):
		return &failure{kind: failSignIn, message: "no refresh token for this account"}
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) || strings.Contains(msg, "server response error") {
		detail := msg
		if ue != nil || errors.As(err, &ue) {
			// MSAL's own wrapping puts the cause on a later line: say the cause itself.
			detail = redact(ue.Err.Error())
		}
		return &failure{kind: failTransient, message: "the authority could not be reached: " + firstLine(detail)}
	}
	var je msalerrors.InvalidJsonErr
	if errors.As(err, &je) || strings.Contains(msg, "json") || strings.Contains(msg, "JSON") {
		return &failure{kind: failTransient, message: "the authority's answer could not be read (malformed JSON)"}
	}
	return &failure{kind: failTransient, message: firstLine(msg)}
}

func httpStatusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "error"
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

var (
	jwtLike     = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*`)
	secretField = regexp.MustCompile(`(?i)("?(access_token|refresh_token|id_token|code|client_secret|assertion|client_assertion|device_code)"?\s*[:=]\s*"?)[^"&\s,]+`)
)

// redact removes anything shaped like a token or secret from a message.
func redact(s string) string {
	s = jwtLike.ReplaceAllString(s, "[redacted]")
	return secretField.ReplaceAllString(s, "${1}[redacted]")
}

// claimString reads one string claim of a JWT without verifying it ("" if absent).
func claimString(token, name string) string {
	m, err := payload(token)
	if err != nil {
		return ""
	}
	s, _ := m[name].(string)
	return s
}

func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
