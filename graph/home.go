package graph

import (
	"net/url"
	"strings"

	"github.com/entra-companion/entra-companion/auth/jwt"
	"github.com/entra-companion/entra-companion/graph/profile"
)

// homeTenant finds the user's home tenant, which differs from the token's tenant for a guest.
// In order: a home_tenant (or home_tid) claim; the tenant of the idp claim, which Entra sets on
// a guest's tokens to its home tenant's issuer; the tenant part of a home account id
// "<oid>.<home tid>[@<tenant>]"; the tenant of the id token's iss or tid (a member); the
// organization Graph returned.
func homeTenant(account string, claims jwt.Claims, orgTID string) string {
	for _, name := range []string{"home_tenant", "home_tid"} {
		if s := claims.String(name); isGUID(s) {
			return s
		}
	}
	if tid := tenantFromIssuer(claims.String("idp")); tid != "" {
		return tid
	}
	if tid := tenantFromAccountID(account); tid != "" {
		return tid
	}
	if tid := claims.TenantID(); isGUID(tid) {
		return tid
	}
	if tid := tenantFromIssuer(claims.Issuer()); tid != "" {
		return tid
	}
	return orgTID
}

// accountIDFromClaims builds the Entra-style account id "<oid>.<tid>" from id token claims,
// or "<home oid>.<home tid>@<tid>" for a guest whose tokens name its home object.
func accountIDFromClaims(claims jwt.Claims) string {
	oid, tid := claims.ObjectID(), claims.TenantID()
	if oid == "" || tid == "" {
		return ""
	}
	if home := tenantFromIssuer(claims.String("idp")); home != "" && !strings.EqualFold(home, tid) {
		if hoid := claims.String("home_oid"); hoid != "" {
			return hoid + "." + home + "@" + tid
		}
	}
	return oid + "." + tid
}

// tenantFromIssuer returns the tenant id in an issuer URL such as
// https://login.microsoftonline.com/<tid>/v2.0 or https://sts.windows.net/<tid>/.
func tenantFromIssuer(iss string) string {
	if iss == "" {
		return ""
	}
	u, err := url.Parse(iss)
	if err != nil || u.Host == "" {
		return ""
	}
	seg, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if isGUID(seg) {
		return seg
	}
	return ""
}

// tenantFromAccountID returns the home tenant of a home account id "<oid>.<tid>[@<tenant>]".
func tenantFromAccountID(id string) string {
	id, _, _ = strings.Cut(id, "@")
	oid, tid, ok := strings.Cut(id, ".")
	if ok && isGUID(oid) && isGUID(tid) {
		return tid
	}
	return ""
}

// isGUID reports whether s looks like 8-4-4-4-12 hex digits.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// claimGroups returns the ids in the account's id token groups claim (KindUnknown).
func (c *Client) claimGroups(account string) []profile.Group {
	claims, err := c.creds.IDTokenClaims(account)
	if err != nil {
		return []profile.Group{}
	}
	ids := claims.Groups()
	out := make([]profile.Group, 0, len(ids))
	for _, id := range ids {
		out = append(out, profile.Group{ID: id, Kind: profile.KindUnknown})
	}
	return out
}
