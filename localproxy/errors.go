package localproxy

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/entra-companion/entra-companion/auth"
)

// Error codes the proxy answers with (besides the guard refusals).
const (
	codeNeedsSignIn    = "needs_sign_in"
	codeUnknownAccount = "unknown_account"
	codeTokenUnavail   = "token_unavailable"
	codeUpstream       = "upstream_unreachable"
	codeExchange       = "exchange_failed"
	codeBadBody        = "bad_request_body"
	codeCancelled      = "cancelled"
)

// statusClientClosed is logged when the client went away before the answer (nginx's 499).
const statusClientClosed = 499

// proxyError is an error the transport returns for the ErrorHandler to answer.
type proxyError struct {
	status  int
	code    string
	message string
	err     error
}

func (e *proxyError) Error() string {
	if e.err != nil {
		return e.code + ": " + e.err.Error()
	}
	return e.code + ": " + e.message
}

func (e *proxyError) Unwrap() error { return e.err }

// errorBody is the JSON of every error the proxy answers itself.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Route   string `json:"route,omitempty"`
	Account string `json:"account,omitempty"`
}

// tokenFailure turns a TokenSource error into the answer for the client.
func (s *Server) tokenFailure(ex *exchange, err error) *proxyError {
	s.stats.tokenErrors.Add(1)
	who := ex.accountLabel()
	rt := ex.route.name
	switch {
	case errors.Is(err, auth.ErrNoAccount):
		return &proxyError{http.StatusUnauthorized, codeNeedsSignIn,
			"no account is signed in: run `entra-companion login` (or use Add account… in the tray), then retry", err}
	case errors.Is(err, auth.ErrNeedsSignIn):
		return &proxyError{http.StatusUnauthorized, codeNeedsSignIn,
			"account " + who + " must sign in again: run `entra-companion login` (or Sign in again in the tray), then retry", err}
	case errors.Is(err, auth.ErrUnknownAccount):
		return &proxyError{http.StatusBadRequest, codeUnknownAccount,
			"no signed-in account matches " + quote(who) + " (from the X-Entra-Account header or route " + rt +
				"'s account): `entra-companion accounts` lists the accounts", err}
	case errors.Is(err, context.Canceled) || errors.Is(err, auth.ErrCancelled):
		return &proxyError{statusClientClosed, codeCancelled, "the request was cancelled", err}
	}
	msg := "could not get a token for account " + who + " on route " + rt
	if d := safeDetail(err); d != "" {
		msg += " (" + d + ")"
	}
	msg += ": check the network connection and that the keychain is unlocked; `entra-companion accounts` shows each account's state"
	return &proxyError{http.StatusServiceUnavailable, codeTokenUnavail, msg, err}
}

// safeDetail is an error's text for an answer, or nothing if it might carry a token.
func safeDetail(err error) string {
	if err == nil {
		return ""
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its URL may carry a query string
	}
	d := err.Error()
	if strings.Contains(d, "eyJ") || len(d) > 300 {
		return ""
	}
	return d
}

func quote(s string) string { return `"` + s + `"` }

// proxyError is the ReverseProxy's ErrorHandler.
func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	ex, ok := w.(*exchange)
	if !ok {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	var pe *proxyError
	if errors.As(err, &pe) {
		if pe.status == statusClientClosed {
			ex.code = pe.code
			ex.WriteHeader(statusClientClosed)
			return
		}
		s.writeError(ex, pe.status, pe.code, pe.message)
		return
	}
	if r.Context().Err() != nil {
		ex.code = codeCancelled
		ex.WriteHeader(statusClientClosed)
		return
	}
	s.stats.upstreamErrors.Add(1)
	s.writeError(ex, http.StatusBadGateway, codeUpstream, upstreamMessage(ex.route, err))
}

func upstreamMessage(rt *route, err error) string {
	msg := "could not reach " + rt.upstream.Host + " (route " + rt.name + ")"
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		msg += ": it did not answer in time"
	} else if d := safeDetail(err); d != "" {
		msg += ": " + d
	}
	return msg + "; check that the service is running and the route's upstream URL is right"
}

// writeError answers an error as JSON.
func (s *Server) writeError(ex *exchange, status int, code, message string) {
	ex.code = code
	b := errorBody{Error: code, Message: message}
	if ex.route != nil {
		b.Route = ex.route.name
		if ex.route.auth != authNone {
			b.Account = ex.accountLabel()
		}
	}
	s.writeJSON(ex, status, b)
}

func (s *Server) writeJSON(ex *exchange, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"internal","message":"could not encode the answer"}`)
	}
	h := ex.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	ex.WriteHeader(status)
	ex.Write(append(body, '\n'))
}
