package localproxy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/entra-companion/entra-companion/auth"
)

// strapiCallback is the users-permissions Microsoft provider's callback, relative to the
// upstream base URL.
const strapiCallback = "/api/auth/microsoft/callback"

const (
	// strapiEarly: a JWT is exchanged again this long before its exp.
	strapiEarly = time.Minute
	// strapiNoExp is how long a JWT without exp is kept.
	strapiNoExp = time.Hour
	// exchangeTimeout bounds one exchange (it runs for every waiting request).
	exchangeTimeout = 30 * time.Second
)

// strapiJWT is an exchanged Strapi JWT.
type strapiJWT struct {
	hdr       []string // "Bearer <jwt>", built once
	expires   time.Time
	refreshAt time.Time
}

// strapiCredential returns the Strapi JWT header for the exchange's account: from the cache,
// or exchanged for a Graph token (one exchange per route and account at a time).
func (s *Server) strapiCredential(ctx context.Context, ex *exchange, retry bool) ([]string, error) {
	rt := ex.route
	c := rt.strapi
	gtok := ex.graph
	if gtok == nil {
		var err error
		gtok, err = s.tokens.Token(ctx, auth.TokenRequest{Account: ex.account, Scopes: s.graphScopes})
		if err == nil && gtok == nil {
			err = errors.New("the token source returned no token")
		}
		if err != nil {
			return nil, s.tokenFailure(ex, err)
		}
		ex.graph = gtok
		ex.accountID = gtok.AccountID
	}
	id := gtok.AccountID
	if retry && ex.jwt != nil {
		c.drop(id, ex.jwt)
	}
	c.mu.RLock()
	j := c.m[id]
	c.mu.RUnlock()
	if j != nil && s.now().Before(j.refreshAt) {
		ex.jwt = j
		return j.hdr, nil
	}
	v, err, _ := c.sf.Do(id, func() (any, error) {
		c.mu.RLock()
		cur := c.m[id]
		c.mu.RUnlock()
		if cur != nil && cur != j && s.now().Before(cur.refreshAt) {
			return cur, nil // exchanged while this caller waited for the lock
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), exchangeTimeout)
		defer cancel()
		nj, err := s.exchangeStrapi(ctx, rt, gtok)
		if exchangeRefused(err) && c.mayRetry(id, gtok.Value) {
			// Strapi's provider refuses a Graph token Graph itself no longer accepts (revoked
			// by continuous access evaluation, or signed with a key the authority retired):
			// exchange once more with a fresh one. One refused even when fresh is remembered,
			// so a Strapi that refuses every token does not cost a refresh per request.
			fresh, terr := s.tokens.Token(ctx, auth.TokenRequest{Account: ex.account, Scopes: s.graphScopes, Rejected: gtok.Value})
			if terr == nil && fresh != nil && fresh.Value != gtok.Value {
				gtok = fresh
				nj, err = s.exchangeStrapi(ctx, rt, gtok)
			}
			if exchangeRefused(err) {
				c.mu.Lock()
				c.refused[id] = gtok.Value
				c.mu.Unlock()
			}
		}
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.m[id] = nj
		c.mu.Unlock()
		s.noteToken(id, rt.name, nj.expires)
		return nj, nil
	})
	if err != nil {
		var pe *proxyError
		if errors.As(err, &pe) {
			return nil, pe
		}
		return nil, &proxyError{http.StatusBadGateway, codeUpstream, upstreamMessage(rt, err), err}
	}
	ex.jwt = v.(*strapiJWT)
	return ex.jwt.hdr, nil
}

// exchangeRefused reports whether Strapi answered an exchange with a refusal (as opposed to
// not being reachable).
func exchangeRefused(err error) bool {
	var pe *proxyError
	return errors.As(err, &pe) && pe.code == codeExchange
}

// mayRetry reports whether an exchange refused with Graph token tok may be tried again with
// a fresh one: not if tok is itself the fresh token of an earlier retry.
func (c *strapiCache) mayRetry(id, tok string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.refused[id] != tok
}

// drop forgets j if it is still the cached JWT of account id.
func (c *strapiCache) drop(id string, j *strapiJWT) {
	c.mu.Lock()
	if c.m[id] == j {
		delete(c.m, id)
	}
	c.mu.Unlock()
}

// exchangeStrapi trades a Graph token for a Strapi JWT at the upstream's Microsoft callback.
// Errors never carry the URL (its query holds the Graph token).
func (s *Server) exchangeStrapi(ctx context.Context, rt *route, gtok *auth.AccessToken) (*strapiJWT, error) {
	u := *rt.upstream
	u.Path = strings.TrimSuffix(u.Path, "/") + strapiCallback
	u.RawPath = ""
	u.RawQuery = "access_token=" + url.QueryEscape(gtok.Value)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, errors.New("building the strapi exchange request failed: check the route's upstream URL")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.base.RoundTrip(req)
	if err != nil {
		s.stats.upstreamErrors.Add(1)
		return nil, &proxyError{http.StatusBadGateway, codeUpstream,
			"could not reach " + rt.upstream.Host + " to exchange the Microsoft token for a Strapi JWT (route " + rt.name + "): " +
				scrub(safeDetail(err), gtok.Value) + "; check that Strapi is running", nil}
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		s.stats.tokenErrors.Add(1)
		return nil, &proxyError{http.StatusBadGateway, codeExchange,
			"Strapi refused the Microsoft token at " + strapiCallback + " (HTTP " + strconv.Itoa(resp.StatusCode) +
				", route " + rt.name + "): check that the Microsoft provider is enabled in Users & Permissions and that the account can sign in to the CMS", nil}
	}
	var body struct {
		JWT string `json:"jwt"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil || body.JWT == "" {
		s.stats.tokenErrors.Add(1)
		return nil, &proxyError{http.StatusBadGateway, codeExchange,
			"Strapi's answer at " + strapiCallback + " has no jwt (route " + rt.name + "): is the upstream a Strapi with the users-permissions plugin?", nil}
	}
	now := s.now()
	j := &strapiJWT{hdr: []string{"Bearer " + body.JWT}}
	if exp, ok := jwtExpiry(body.JWT); ok {
		j.expires = exp
		j.refreshAt = exp.Add(-strapiEarly)
	} else {
		j.expires = now.Add(strapiNoExp)
		j.refreshAt = j.expires
	}
	return j, nil
}

func scrub(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "<token>")
}

// jwtExpiry reads the exp claim of a JWT without verifying it (the proxy only needs to know
// when to exchange again).
func jwtExpiry(tok string) (time.Time, bool) {
	first := strings.IndexByte(tok, '.')
	if first < 0 {
		return time.Time{}, false
	}
	rest := tok[first+1:]
	second := strings.IndexByte(rest, '.')
	if second < 0 {
		return time.Time{}, false
	}
	payload := strings.TrimRight(rest[:second], "=")
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if err := json.Unmarshal(b, &claims); err != nil || claims.Exp == "" {
		return time.Time{}, false
	}
	f, err := claims.Exp.Float64()
	if err != nil || f <= 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), true
}
