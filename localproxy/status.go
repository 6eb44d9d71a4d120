package localproxy

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/entra-companion/entra-companion/auth"
)

// counters are the proxy's request counters.
type counters struct {
	total          atomic.Int64
	class          [6]atomic.Int64 // by status / 100; 0 counts anything out of range
	tokenErrors    atomic.Int64
	upstreamErrors atomic.Int64
	retries        atomic.Int64
	refused        atomic.Int64
}

// Status is what /_companion/status serves. It never holds a token.
type Status struct {
	// BaseURL is the proxy's base URL.
	BaseURL string `json:"base_url"`
	// Routes are the configured routes.
	Routes []RouteInfo `json:"routes"`
	// Accounts are the accounts (from the AccountLister, plus any the proxy got tokens for).
	Accounts []AccountStatus `json:"accounts"`
	// Counters count the requests served.
	Counters Counters `json:"counters"`
}

// AccountStatus is one account on the status page.
type AccountStatus struct {
	// ID is the account's ID.
	ID string `json:"id"`
	// Username is the UPN or, for apps, the client id.
	Username string `json:"username,omitempty"`
	// State is what the account can do right now.
	State auth.State `json:"state,omitempty"`
	// Detail says why the account is not ready.
	Detail string `json:"detail,omitempty"`
	// Active is true for the account used when a request names none.
	Active bool `json:"active"`
	// Tokens are the expiry times of the last token the proxy used per route.
	Tokens []TokenExpiry `json:"tokens,omitempty"`
}

// TokenExpiry is when the last token the proxy used for an (account, route) expires.
type TokenExpiry struct {
	// Route is the route's name.
	Route string `json:"route"`
	// ExpiresOn is the token's expiry time.
	ExpiresOn time.Time `json:"expires_on"`
}

// Counters count the requests served since the proxy was created.
type Counters struct {
	// Total counts every request, refused ones included.
	Total int64 `json:"total"`
	// ByStatus counts requests by status class ("2xx", "4xx", …).
	ByStatus map[string]int64 `json:"by_status"`
	// ByRoute counts requests by route name.
	ByRoute map[string]int64 `json:"by_route"`
	// TokenErrors counts requests that failed for want of a token.
	TokenErrors int64 `json:"token_errors"`
	// UpstreamErrors counts requests whose upstream could not be reached.
	UpstreamErrors int64 `json:"upstream_errors"`
	// Retries counts requests sent again with a fresh token after an upstream 401.
	Retries int64 `json:"retries"`
	// Refused counts requests refused by a guard.
	Refused int64 `json:"refused"`
}

type tokenKey struct{ account, route string }

// noteToken records the expiry of the token just used for (account, route).
func (s *Server) noteToken(account, route string, exp time.Time) {
	s.tokMu.Lock()
	s.tokSeen[tokenKey{account, route}] = exp
	s.tokMu.Unlock()
}

var classNames = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

// Status returns the proxy's state: routes, accounts with token expiry times, counters.
func (s *Server) Status() Status {
	st := Status{
		BaseURL: s.BaseURL(),
		Routes:  s.Routes(),
		Counters: Counters{
			Total:          s.stats.total.Load(),
			ByStatus:       map[string]int64{},
			ByRoute:        map[string]int64{},
			TokenErrors:    s.stats.tokenErrors.Load(),
			UpstreamErrors: s.stats.upstreamErrors.Load(),
			Retries:        s.stats.retries.Load(),
			Refused:        s.stats.refused.Load(),
		},
	}
	for i := range s.stats.class {
		if n := s.stats.class[i].Load(); n > 0 {
			st.Counters.ByStatus[classNames[i]] = n
		}
	}
	for _, rt := range s.routes {
		st.Counters.ByRoute[rt.name] = rt.requests.Load()
	}

	s.tokMu.Lock()
	seen := make(map[string][]TokenExpiry)
	for k, exp := range s.tokSeen {
		seen[k.account] = append(seen[k.account], TokenExpiry{Route: k.route, ExpiresOn: exp})
	}
	s.tokMu.Unlock()
	for _, list := range seen {
		slices.SortFunc(list, func(a, b TokenExpiry) int { return strings.Compare(a.Route, b.Route) })
	}
	if s.accounts != nil {
		for _, a := range s.accounts.Accounts() {
			st.Accounts = append(st.Accounts, AccountStatus{
				ID: a.ID, Username: a.Username, State: a.State, Detail: a.Detail, Active: a.Active,
				Tokens: seen[a.ID],
			})
			delete(seen, a.ID)
		}
	}
	var rest []string
	for id := range seen {
		rest = append(rest, id)
	}
	slices.Sort(rest)
	for _, id := range rest {
		st.Accounts = append(st.Accounts, AccountStatus{ID: id, Tokens: seen[id]})
	}
	if st.Accounts == nil {
		st.Accounts = []AccountStatus{}
	}
	return st
}

// LogEntry is one request of the live request log. It never holds a token, a header or a
// query string.
type LogEntry struct {
	// Time is when the request arrived.
	Time time.Time `json:"time"`
	// Method is the HTTP method.
	Method string `json:"method"`
	// Path is the request path without the query string.
	Path string `json:"path"`
	// Route is the matched route's name, if any.
	Route string `json:"route,omitempty"`
	// Account is the account the token belonged to (or was asked for); empty for routes
	// without auth and refused requests.
	Account string `json:"account,omitempty"`
	// Status is the HTTP status sent to the client (499: the client went away).
	Status int `json:"status"`
	// Duration is how long the request took, up to the end of the response body.
	Duration time.Duration `json:"duration"`
	// Bytes is the size of the response body sent.
	Bytes int64 `json:"bytes"`
	// Error is the proxy's error code when it answered itself (needs_sign_in, forbidden_host…).
	Error string `json:"error,omitempty"`
}

type subscription struct {
	ch   chan LogEntry
	done chan struct{}
}

// Subscribe calls fn with every request the proxy serves from now on, in order, on a goroutine
// of its own. If fn falls behind by more than 256 entries, entries are dropped rather than
// slowing requests. cancel stops the calls.
func (s *Server) Subscribe(fn func(LogEntry)) (cancel func()) {
	sub := &subscription{ch: make(chan LogEntry, 256), done: make(chan struct{})}
	s.subMu.Lock()
	var list []*subscription
	if p := s.subs.Load(); p != nil {
		list = append(list, *p...)
	}
	list = append(list, sub)
	s.subs.Store(&list)
	s.subMu.Unlock()
	go func() {
		for {
			select {
			case e := <-sub.ch:
				fn(e)
			case <-sub.done:
				return
			}
		}
	}()
	return sync.OnceFunc(func() {
		s.subMu.Lock()
		if p := s.subs.Load(); p != nil {
			list := slices.DeleteFunc(slices.Clone(*p), func(x *subscription) bool { return x == sub })
			s.subs.Store(&list)
		}
		s.subMu.Unlock()
		close(sub.done)
	})
}

// finish counts the request and writes the access log line. It runs deferred, also when the
// ReverseProxy aborts a stream with http.ErrAbortHandler (the panic goes on to the server).
func (s *Server) finish(ex *exchange, r *http.Request) {
	status := ex.status
	if !ex.wrote {
		status = http.StatusOK
	}
	if !ex.done {
		if !ex.wrote {
			status = statusClientClosed
		}
		if ex.code == "" {
			ex.code = "aborted"
		}
	}
	s.stats.total.Add(1)
	c := status / 100
	if c < 1 || c > 5 {
		c = 0
	}
	s.stats.class[c].Add(1)
	var routeName, account string
	if rt := ex.route; rt != nil {
		rt.requests.Add(1)
		routeName = rt.name
		if rt.auth != authNone {
			account = ex.accountID
			if account == "" {
				account = ex.accountLabel()
			}
		}
	}
	dur := s.now().Sub(ex.start)
	if s.logger.Enabled(ex.Context, slog.LevelInfo) {
		s.logger.LogAttrs(ex.Context, slog.LevelInfo, "proxy request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("route", routeName),
			slog.String("account", account),
			slog.Int("status", status),
			slog.Duration("duration", dur),
			slog.Int64("bytes", ex.bytes),
			slog.String("error", ex.code),
		)
	}
	if subs := s.subs.Load(); subs != nil && len(*subs) > 0 {
		e := LogEntry{
			Time: ex.start, Method: r.Method, Path: r.URL.Path, Route: routeName, Account: account,
			Status: status, Duration: dur, Bytes: ex.bytes, Error: ex.code,
		}
		for _, sub := range *subs {
			select {
			case sub.ch <- e:
			default:
			}
		}
	}
}
