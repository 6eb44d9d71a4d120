package jwt

import (
	"encoding/json"
	"math"
	"strings"
	"time"
)

// Claims is a token's payload. Numbers are json.Number. The typed helpers return zero values
// for a claim that is absent or of another type.
type Claims map[string]any

// String returns a string claim ("" if absent or not a string; a number is returned as written).
func (c Claims) String(name string) string {
	switch v := c[name].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}

// Strings returns a claim that is an array of strings, or a space-separated string (like scp).
func (c Claims) Strings(name string) []string {
	switch v := c[name].(type) {
	case string:
		return strings.Fields(v)
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return v
	}
	return nil
}

// Audience returns aud: one string or an array of strings.
func (c Claims) Audience() []string {
	if s, ok := c["aud"].(string); ok {
		if s == "" {
			return nil
		}
		return []string{s}
	}
	return c.Strings("aud")
}

// Issuer returns iss.
func (c Claims) Issuer() string { return c.String("iss") }

// Subject returns sub.
func (c Claims) Subject() string { return c.String("sub") }

// TenantID returns tid, the tenant the token was issued in.
func (c Claims) TenantID() string { return c.String("tid") }

// ObjectID returns oid, the user's or service principal's object id in the tenant.
func (c Claims) ObjectID() string { return c.String("oid") }

// Scopes returns the delegated permissions (scp, space-separated).
func (c Claims) Scopes() []string { return c.Strings("scp") }

// Roles returns the app roles (roles).
func (c Claims) Roles() []string { return c.Strings("roles") }

// Groups returns the group object ids of the groups claim.
func (c Claims) Groups() []string { return c.Strings("groups") }

// PreferredUsername returns preferred_username (v2 tokens), else upn or unique_name (v1 tokens).
func (c Claims) PreferredUsername() string {
	for _, n := range []string{"preferred_username", "upn", "unique_name"} {
		if s := c.String(n); s != "" {
			return s
		}
	}
	return ""
}

// Name returns name, the display name.
func (c Claims) Name() string { return c.String("name") }

// Version returns ver ("1.0" or "2.0" for Entra tokens).
func (c Claims) Version() string { return c.String("ver") }

// maxUnix is the end of year 9999: later "times" are nonsense and would overflow.
const maxUnix = 253402300799

// Time returns a NumericDate claim (seconds since the epoch, fractions allowed). ok is false
// when the claim is absent, not a number or out of range.
func (c Claims) Time(name string) (time.Time, bool) {
	var f float64
	switch v := c[name].(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			if i < -maxUnix || i > maxUnix {
				return time.Time{}, false
			}
			return time.Unix(i, 0), true
		}
		x, err := v.Float64()
		if err != nil {
			return time.Time{}, false
		}
		f = x
	case float64:
		f = v
	case int64:
		f = float64(v)
	case int:
		f = float64(v)
	default:
		return time.Time{}, false
	}
	if math.IsNaN(f) || f < -maxUnix || f > maxUnix {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// ExpiresAt returns exp.
func (c Claims) ExpiresAt() (time.Time, bool) { return c.Time("exp") }

// NotBefore returns nbf.
func (c Claims) NotBefore() (time.Time, bool) { return c.Time("nbf") }

// IssuedAt returns iat.
func (c Claims) IssuedAt() (time.Time, bool) { return c.Time("iat") }
