package graph

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/graph/profile"
	"github.com/entra-companion/entra-companion/sim"
)

// Graph's faults with the real token broker as the credential: each test checks what the
// caller gets and that the account is untouched (listed, ready, a token without a sign-in).
//
// Not parallel: msgraph-sdk-go's NewGraphServiceClient writes a package-level variable
// (store.BackingStoreFactoryInstance, in EnableBackingStore) that every model constructor
// reads, so creating a client while another one parses an answer is a data race.

// faultBrokerClient signs Adele in with a real broker and returns a Graph client on it.
func faultBrokerClient(t *testing.T, s *sim.Server) (*Client, *auth.Broker) {
	t.Helper()
	b, err := auth.New(context.Background(), auth.Options{
		ClientID: sim.PublicClientID, Authority: s.Authority("organizations"),
		Scopes:        []string{"GroupMember.Read.All"},
		DefaultScopes: []string{"https://graph.microsoft.com/.default"}, Store: auth.NewMemoryStore(),
		StateDir: t.TempDir(), HTTPClient: s.Client(), Logger: slog.New(slog.DiscardHandler),
		RetryDelay: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if _, err := b.SignIn(context.Background(), auth.SignInOptions{LoginHint: sim.UserAdele, OpenURL: s.Browser(sim.UserAdele)}); err != nil {
		t.Fatal(err)
	}
	c := newSimClient(t, s, b, func(o *Options) { o.MaxRetries = 1 })
	c.retry.sleep = func(context.Context, time.Duration) error { return nil } // Retry-After is tested in TestRetryAfter
	return c, b
}

// faultAccountIntact checks that the account is listed, ready, and gets a token and its
// profile with no interactive sign-in since signIns.
func faultAccountIntact(t *testing.T, s *sim.Server, c *Client, b *auth.Broker, signIns int) {
	t.Helper()
	s.ClearFaults()
	a, err := b.Account(sim.UserAdele)
	if err != nil || a.State != auth.StateReady {
		t.Errorf("account after the fault: %+v, %v", a, err)
	}
	if _, err := c.Profile(context.Background(), sim.UserAdele); err != nil {
		t.Errorf("profile after the fault: %v", err)
	}
	if n := s.GrantCount("authorization_code") - signIns; n != 0 {
		t.Errorf("%d sign-ins", n)
	}
}

// Graph 401, 403, 429 and 5xx: typed errors that say what Graph answered, nothing that looks
// like a token, and the account untouched.
func TestFaultGraphErrors(t *testing.T) {
	s := sim.Start(t)
	c, b := faultBrokerClient(t, s)
	signIns := s.GrantCount("authorization_code")
	ctx := context.Background()
	for _, tc := range []struct {
		status int
		kind   error
		words  string
	}{
		{http.StatusUnauthorized, ErrUnauthorized, "401"},
		{http.StatusForbidden, profile.ErrConsent, "User.Read"},
		{http.StatusTooManyRequests, ErrThrottled, "429"},
		{http.StatusInternalServerError, ErrUnavailable, "500"},
		{http.StatusServiceUnavailable, ErrUnavailable, "503"},
		{http.StatusGatewayTimeout, ErrUnavailable, "504"},
	} {
		s.InjectFault(sim.EndpointGraphMe, sim.Fault{Status: tc.status, RetryAfter: time.Second, Count: 5})
		_, err := c.Profile(ctx, sim.UserAdele)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.words) {
			t.Errorf("Graph %d: %v, want %v saying %q", tc.status, err, tc.kind, tc.words)
		} else {
			t.Logf("Graph %d: the caller sees: %v", tc.status, err)
		}
		if err != nil && strings.Contains(err.Error(), "eyJ") {
			t.Errorf("Graph %d: JWT-shaped text in the error", tc.status)
		}
		faultAccountIntact(t, s, c, b, signIns)
	}
}

// CAE through the SDK with the real broker: Graph's claims challenge after a revocation makes
// the SDK ask the broker for a token with those claims, and the read succeeds.
func TestFaultGraphClaimsChallenge(t *testing.T) {
	s := sim.Start(t)
	c, b := faultBrokerClient(t, s)
	signIns := s.GrantCount("authorization_code")
	ctx := context.Background()
	if _, err := c.Profile(ctx, sim.UserAdele); err != nil {
		t.Fatal(err)
	}
	refreshes := s.GrantCount("refresh_token")
	s.RevokeAccessTokens(sim.UserAdele)
	if _, err := c.Profile(ctx, sim.UserAdele); err != nil {
		t.Fatalf("after a CAE revocation: %v", err)
	}
	if n := s.GrantCount("refresh_token") - refreshes; n != 1 {
		t.Errorf("%d refreshes, want one with the claims", n)
	}
	if n := s.Rejected(sim.EndpointGraphMe); n != 1 {
		t.Errorf("Graph refused %d requests, want the one the revocation made stale", n)
	}
	// Key rotation that keeps the old key: no refresh, no refusal.
	s.RotateSigningKey()
	snap, err := c.Refresh(ctx, sim.UserAdele)
	if err != nil || snap.Profile == nil || snap.GroupsErr != nil {
		t.Fatalf("after a key rotation: %v (groups: %v)", err, snap.GroupsErr)
	}
	if n := s.GrantCount("refresh_token") - refreshes; n != 1 {
		t.Errorf("%d refreshes after the key rotation, want none more", n-1)
	}
	faultAccountIntact(t, s, c, b, signIns)
}
