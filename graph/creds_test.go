package graph

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/entra-companion/entra-companion/auth/jwt"
	"github.com/entra-companion/entra-companion/sim"
)

// simCreds is a Credentials backed by the simulated cloud: access tokens come from
// s.IssueAccessToken with the scopes configured per account, and the "id token" claims are
// those of a CMS token of the user (the sim puts the same identity and groups claims in both).
// Accounts are named by UPN; "" is the active one.
type simCreds struct {
	s      *sim.Server
	scopes map[string][]string // upn → Graph scopes (short names)
	active string

	mu       sync.Mutex
	tokens   map[string]azcore.AccessToken
	claims   map[string]jwt.Claims
	requests []string // scopes asked by the SDK
	issued   atomic.Int32
}

var _ Credentials = (*simCreds)(nil)

func newSimCreds(s *sim.Server, active string) *simCreds {
	return &simCreds{s: s, active: active, scopes: map[string][]string{},
		tokens: map[string]azcore.AccessToken{}, claims: map[string]jwt.Claims{}}
}

func (c *simCreds) upn(account string) string {
	if account == "" {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.active
	}
	return account
}

func (c *simCreds) setActive(upn string) {
	c.mu.Lock()
	c.active = upn
	c.mu.Unlock()
}

func (c *simCreds) Credential(account string) azcore.TokenCredential {
	return credFunc(func(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
		upn := c.upn(account)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.requests = append(c.requests, fmt.Sprint(opts.Scopes))
		if len(opts.Scopes) != 1 || opts.Scopes[0] != "https://graph.microsoft.com/.default" {
			return azcore.AccessToken{}, fmt.Errorf("unexpected scopes %v", opts.Scopes)
		}
		if tok, ok := c.tokens[upn]; ok && time.Until(tok.ExpiresOn) > 5*time.Minute {
			return tok, nil
		}
		scopes := c.scopes[upn]
		if scopes == nil {
			scopes = []string{"User.Read", "GroupMember.Read.All"}
		}
		full := make([]string, len(scopes))
		for i, s := range scopes {
			full[i] = "https://graph.microsoft.com/" + s
		}
		raw, err := c.s.IssueAccessToken(upn, full...)
		if err != nil {
			return azcore.AccessToken{}, err
		}
		t, err := jwt.Decode(raw)
		if err != nil {
			return azcore.AccessToken{}, err
		}
		exp, _ := t.Claims.ExpiresAt()
		tok := azcore.AccessToken{Token: raw, ExpiresOn: exp}
		c.tokens[upn] = tok
		c.issued.Add(1)
		return tok, nil
	})
}

func (c *simCreds) IDTokenClaims(account string) (jwt.Claims, error) {
	upn := c.upn(account)
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.claims[upn]; ok {
		return cl, nil
	}
	raw, err := c.s.IssueAccessToken(upn, sim.CMSAudience+"/Articles.Read")
	if err != nil {
		return nil, err
	}
	t, err := jwt.Decode(raw)
	if err != nil {
		return nil, err
	}
	c.claims[upn] = t.Claims
	return t.Claims, nil
}

// newSimClient starts nothing: it builds a Client against s for creds.
func newSimClient(t *testing.T, s *sim.Server, creds Credentials, opts ...func(*Options)) *Client {
	t.Helper()
	o := Options{BaseURL: s.GraphURL(), Credentials: creds, HTTPClient: s.Client()}
	for _, f := range opts {
		f(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
