package sim

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// tokenInfo is a validated Entra access token, as a resource server sees it.
type tokenInfo struct {
	j     *jws
	tid   string
	oid   string
	azp   string
	scp   []string
	roles []string
	app   bool
	user  *User // nil for app tokens
}

func (ti *tokenInfo) hasScope(names ...string) bool {
	for _, n := range names {
		if slices.ContainsFunc(ti.scp, func(s string) bool { return strings.EqualFold(s, n) }) {
			return true
		}
	}
	return false
}

func (ti *tokenInfo) hasRole(names ...string) bool {
	for _, n := range names {
		if slices.ContainsFunc(ti.roles, func(s string) bool { return strings.EqualFold(s, n) }) {
			return true
		}
	}
	return false
}

// authFailure says why a bearer token was refused.
type authFailure struct {
	msg string
	cae bool  // continuous access evaluation: the user's tokens were revoked
	nbf int64 // the claims challenge's nbf value with cae
}

// claimsChallenge is the base64 claims value of a CAE challenge.
func (f *authFailure) claimsChallenge() string {
	return base64Std.EncodeToString([]byte(fmt.Sprintf(`{"access_token":{"nbf":{"essential":true,"value":"%d"}}}`, f.nbf)))
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// validateAccessToken checks an access token as Graph and Microsoft.Identity.Web do:
// signature against the keys listed in JWKS, issuer of a known tenant, audience, ver, exp
// and nbf on the sim clock (no skew), then continuous access evaluation.
func (s *Server) validateAccessToken(raw string, audiences ...string) (*tokenInfo, *authFailure) {
	if raw == "" {
		return nil, &authFailure{msg: "Access token is empty."}
	}
	j, err := parseJWS(raw)
	if err != nil {
		return nil, &authFailure{msg: "IDX14100: JWT is not well formed. The token needs to be in JWS or JWE Compact Serialization Format."}
	}
	if j.hdr("alg") != "RS256" {
		return nil, &authFailure{msg: fmt.Sprintf("Access token validation failure. The signature algorithm '%s' is not accepted.", j.hdr("alg"))}
	}
	k := s.keyByID(j.hdr("kid"))
	if k == nil {
		return nil, &authFailure{msg: "Access token validation failure. Signing key not found: the kid is not in the authority's keys."}
	}
	if err := j.verifyRS256(&k.priv.PublicKey); err != nil {
		return nil, &authFailure{msg: "Access token validation failure. Invalid signature."}
	}
	tid := j.claim("tid")
	if s.dir.tenantByID(tid) == nil || j.claim("iss") != s.issuer(tid) {
		return nil, &authFailure{msg: "Access token validation failure. Invalid issuer."}
	}
	if !slices.ContainsFunc(j.audiences(), func(a string) bool {
		return slices.ContainsFunc(audiences, func(b string) bool { return strings.EqualFold(strings.TrimSuffix(a, "/"), b) })
	}) {
		return nil, &authFailure{msg: "Access token validation failure. Invalid audience."}
	}
	if j.claim("ver") != "2.0" {
		return nil, &authFailure{msg: "Access token validation failure. Unsupported token version."}
	}
	now := s.now().Unix()
	exp, ok := j.num("exp")
	if !ok || now >= exp {
		return nil, &authFailure{msg: "Lifetime validation failed, the token is expired."}
	}
	if nbf, ok := j.num("nbf"); ok && now < nbf {
		return nil, &authFailure{msg: "Lifetime validation failed, the token is not yet valid."}
	}
	ti := &tokenInfo{j: j, tid: tid, oid: j.claim("oid"), azp: j.claim("azp"), app: j.claim("idtyp") == "app"}
	ti.scp = strings.Fields(j.claim("scp"))
	if roles, ok := j.claims["roles"].([]any); ok {
		for _, r := range roles {
			if s, ok := r.(string); ok {
				ti.roles = append(ti.roles, s)
			}
		}
	}
	if !ti.app {
		ti.user = s.dir.userByOID(tid, ti.oid)
		if ti.user == nil {
			return nil, &authFailure{msg: "Access token validation failure. The user in the token does not exist."}
		}
		s.mu.Lock()
		rev, revoked := s.cae[ti.user.HomeObjectID]
		issued := s.issued[j.claim("uti")]
		s.mu.Unlock()
		if revoked && issued.seq <= rev.seq {
			return nil, &authFailure{cae: true, nbf: rev.at.Unix(),
				msg: "Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp"}
		}
	}
	return ti, nil
}
