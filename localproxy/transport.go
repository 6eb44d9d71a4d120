package localproxy

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/entra-companion/entra-companion/auth"
)

// maxReplayBody is the largest request body kept so that a request can be sent again after an
// upstream 401.
const maxReplayBody = 1 << 20

const headerAuthorization = "Authorization"

// tokenTransport attaches the route's credential in RoundTrip, so that token failures reach
// the ReverseProxy's ErrorHandler, and retries once after an upstream 401.
//
// It sets the Authorization header on the request it is given: the ReverseProxy's outbound
// request is a private clone, and the retry uses a clone of its own.
type tokenTransport struct {
	s    *Server
	base http.RoundTripper
}

var _ http.RoundTripper = (*tokenTransport)(nil)

// RoundTrip sends req with the route's credential.
func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ex := exchangeFrom(req.Context())
	if ex == nil || ex.route == nil || ex.route.auth == authNone {
		return t.base.RoundTrip(req)
	}
	req, replayable, err := keepBody(req)
	if err != nil {
		return nil, err
	}
	hdr, err := t.s.credential(req.Context(), ex, false, "")
	if err != nil {
		closeBody(req)
		return nil, err
	}
	req.Header[headerAuthorization] = hdr
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !replayable {
		return resp, err
	}
	return t.retry(ex, req, resp)
}

// retry sends req again with a fresh credential after the upstream answered 401. If no fresher
// credential can be had, the 401 passes through unchanged.
func (t *tokenTransport) retry(ex *exchange, req *http.Request, resp *http.Response) (*http.Response, error) {
	rt := ex.route
	used := req.Header[headerAuthorization][0]
	if d := rt.dead.Load(); d != nil && *d == used {
		return resp, nil // refused even after a refresh: don't force another one
	}
	var claims string
	if rt.auth == authBearer {
		claims = claimsChallenge(resp.Header["Www-Authenticate"])
	}
	hdr, err := t.s.credential(req.Context(), ex, true, claims)
	if err != nil {
		drainClose(resp.Body)
		return nil, err
	}
	if hdr[0] == used {
		return resp, nil
	}
	var body io.ReadCloser
	if req.GetBody != nil {
		if body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	drainClose(resp.Body)
	r2 := req.Clone(req.Context())
	r2.Body = body
	r2.Header[headerAuthorization] = hdr
	t.s.stats.retries.Add(1)
	resp2, err := t.base.RoundTrip(r2)
	if err != nil {
		return nil, err
	}
	if resp2.StatusCode == http.StatusUnauthorized {
		rt.dead.Store(&hdr[0])
	}
	return resp2, nil
}

// keepBody makes req replayable when its body is small: the body is read (at most 1 MiB, as
// announced by Content-Length) and GetBody set. Larger or chunked bodies stream and are not
// replayable.
func keepBody(req *http.Request) (*http.Request, bool, error) {
	if req.Body == nil || req.Body == http.NoBody || req.GetBody != nil {
		return req, true, nil
	}
	if req.ContentLength <= 0 || req.ContentLength > maxReplayBody {
		return req, false, nil
	}
	buf := make([]byte, req.ContentLength)
	_, err := io.ReadFull(req.Body, buf)
	req.Body.Close()
	if err != nil {
		return nil, false, &proxyError{http.StatusBadRequest, codeBadBody,
			"could not read the request body: the client sent less than its Content-Length", err}
	}
	r2 := new(http.Request)
	*r2 = *req
	r2.Body = io.NopCloser(bytes.NewReader(buf))
	r2.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return r2, true, nil
}

// credential returns the Authorization header value (a shared, read-only slice) for the
// exchange's route and account. retry asks for a fresher one than the last: the rejected
// bearer token is named (or the claims of a challenge passed), or the Strapi JWT re-exchanged.
func (s *Server) credential(ctx context.Context, ex *exchange, retry bool, claims string) ([]string, error) {
	rt := ex.route
	if rt.auth == authStrapi {
		return s.strapiCredential(ctx, ex, retry)
	}
	treq := auth.TokenRequest{Account: ex.account, Scopes: rt.scopes}
	if retry {
		if claims != "" {
			treq.Claims = claims
		} else if ex.tok != nil {
			treq.Rejected = ex.tok.Value
		}
	}
	tok, err := s.tokens.Token(ctx, treq)
	if err == nil && tok == nil {
		err = errors.New("the token source returned no token")
	}
	if err != nil {
		return nil, s.tokenFailure(ex, err)
	}
	ex.tok = tok
	ex.accountID = tok.AccountID
	return s.bearerHeader(rt, tok), nil
}

// bearerHeader returns the Authorization value of tok, built once per token.
func (s *Server) bearerHeader(rt *route, tok *auth.AccessToken) []string {
	if c := rt.hdr.Load(); c != nil && c.tok == tok {
		return c.hdr
	}
	h := tok.Header
	if h == "" {
		h = "Bearer " + tok.Value
	}
	c := &bearerHeader{tok: tok, hdr: []string{h}}
	rt.hdr.Store(c)
	s.noteToken(tok.AccountID, rt.name, tok.ExpiresOn)
	return c.hdr
}

// claimsChallenge returns the decoded claims of a `Bearer error="insufficient_claims",
// claims="<base64>"` challenge, or "".
func claimsChallenge(values []string) string {
	for _, v := range values {
		params, ok := bearerParams(v)
		if !ok || params["error"] != "insufficient_claims" || params["claims"] == "" {
			continue
		}
		raw := params["claims"]
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(raw); err == nil && len(b) > 0 && b[0] == '{' {
				return string(b)
			}
		}
		if strings.HasPrefix(raw, "{") {
			return raw // some resources send the JSON itself
		}
	}
	return ""
}

// bearerParams parses the auth-params of a Bearer challenge (RFC 9110 section 11.6.1).
// Malformed parts are skipped up to the next comma.
func bearerParams(v string) (map[string]string, bool) {
	v = strings.TrimSpace(v)
	if len(v) < 6 || !strings.EqualFold(v[:6], "bearer") || (len(v) > 6 && v[6] != ' ' && v[6] != '\t') {
		return nil, false
	}
	v = v[6:]
	params := map[string]string{}
	for {
		v = strings.TrimLeft(v, " \t,")
		if v == "" {
			return params, true
		}
		k := 0
		for k < len(v) && tokenChars(v[k:k+1]) {
			k++
		}
		key := strings.ToLower(v[:k])
		rest := strings.TrimLeft(v[k:], " \t")
		if key == "" || !strings.HasPrefix(rest, "=") {
			// not a param (a token68 or garbage): skip it
			if c := strings.IndexByte(v[max(k, 1):], ','); c >= 0 {
				v = v[max(k, 1)+c+1:]
				continue
			}
			return params, true
		}
		v = strings.TrimLeft(rest[1:], " \t")
		var val string
		if strings.HasPrefix(v, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(v) && v[i] != '"'; i++ {
				if v[i] == '\\' && i+1 < len(v) {
					i++
				}
				b.WriteByte(v[i])
			}
			if i >= len(v) {
				return params, false // unterminated quoted string
			}
			val, v = b.String(), v[i+1:]
		} else {
			end := strings.IndexAny(v, ", \t")
			if end < 0 {
				end = len(v)
			}
			val, v = v[:end], v[end:]
		}
		if _, dup := params[key]; !dup {
			params[key] = val
		}
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// drainClose reads a little of a response body so the connection can be reused, then closes it.
func drainClose(b io.ReadCloser) {
	io.CopyN(io.Discard, b, 64<<10)
	b.Close()
}

// bufferPool lends the ReverseProxy 32 KiB copy buffers.
type bufferPool struct{}

const bufSize = 32 << 10

var buffers = sync.Pool{New: func() any { return new([bufSize]byte) }}

// Get returns a 32 KiB buffer.
func (bufferPool) Get() []byte { return buffers.Get().(*[bufSize]byte)[:] }

// Put returns a buffer from Get.
func (bufferPool) Put(b []byte) {
	if cap(b) >= bufSize {
		buffers.Put((*[bufSize]byte)(b[:bufSize]))
	}
}
