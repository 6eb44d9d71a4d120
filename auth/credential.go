package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/entra-companion/entra-companion/auth/jwt"
)

// Credential returns an azcore.TokenCredential for one account ("" = whichever is active when
// a token is asked for), for SDKs such as msgraph-sdk-go. GetToken is the broker's Token: cheap
// on the hot path, and claims challenges (CAE) force a refresh with the claims.
func (b *Broker) Credential(account string) azcore.TokenCredential {
	return &credential{b: b, account: account}
}

type credential struct {
	b       *Broker
	account string
}

var _ azcore.TokenCredential = (*credential)(nil)

// GetToken implements azcore.TokenCredential.
func (c *credential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	t, err := c.b.Token(ctx, TokenRequest{Account: c.account, Scopes: NewScopes(o.Scopes...), Claims: o.Claims})
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: t.Value, ExpiresOn: t.ExpiresOn, RefreshOn: t.refreshAt}, nil
}

// IDTokenClaims returns the claims of an account's newest id token, decoded without
// verification (it came straight from the authority over TLS). App identities have none.
func (b *Broker) IDTokenClaims(account string) (jwt.Claims, error) {
	a, err := b.accts.Load().resolve(account)
	if err != nil {
		return nil, err
	}
	if a.rec.Kind == KindApp {
		return nil, fmt.Errorf("reading the id token of %s: app identities have none", a.rec.Username)
	}
	p := b.vault.part(a.rec.HomeAccountID)
	if p == nil {
		return nil, fmt.Errorf("reading the id token of %s: %w", a.rec.Username, ErrNeedsSignIn)
	}
	var secs map[string]map[string]struct {
		Realm  string `json:"realm"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(p, &secs); err != nil {
		return nil, fmt.Errorf("reading the id token of %s: %w", a.rec.Username, ErrCorruptItem)
	}
	// The id token of the account's tenant; after a refresh MSAL files it under the tenant
	// id, before that under the sign-in authority's tenant segment.
	for _, realm := range []string{a.rec.TenantID, a.rec.Realm} {
		for _, e := range secs[secIDToken] {
			if strings.EqualFold(e.Realm, realm) {
				tok, err := jwt.Decode(e.Secret)
				if err != nil {
					return nil, fmt.Errorf("reading the id token of %s: %w", a.rec.Username, err)
				}
				return tok.Claims, nil
			}
		}
	}
	return nil, fmt.Errorf("reading the id token of %s: none in the cache for tenant %s", a.rec.Username, a.rec.Realm)
}

// payload decodes a JWT's claims without verifying the signature.
func payload(token string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT")
	}
	raw, err := decodeSegment(parts[1])
	if err != nil {
		return nil, fmt.Errorf("decoding the JWT payload: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decoding the JWT payload: %w", err)
	}
	return m, nil
}
