package localproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
)

// TokenSource is what the proxy needs from auth: fresh access tokens. It is declared here, with
// one method, so that a trivial fake can test the proxy. Implementations must be safe for
// concurrent use and should answer from memory on the hot path.
type TokenSource interface {
	// Token returns a fresh access token for req.Account (empty: the active account) and
	// req.Scopes. Errors wrap auth.ErrNeedsSignIn, auth.ErrNoAccount,
	// auth.ErrUnknownAccount, auth.ErrUnavailable and the like.
	Token(ctx context.Context, req auth.TokenRequest) (*auth.AccessToken, error)
}

// AccountLister optionally gives the status page the signed-in accounts (their state, never
// their tokens).
type AccountLister interface {
	// Accounts returns a snapshot of the accounts.
	Accounts() []auth.Account
}

// DefaultListen is the address the proxy listens on when Options.Listen is empty.
const DefaultListen = "127.0.0.1:8631"

// defaultReadHeaderTimeout is how long a client may take to send a request's headers: a
// slow client (slowloris) is cut off after it.
const defaultReadHeaderTimeout = 10 * time.Second

// Header names the proxy reads from client requests. Neither reaches an upstream.
const (
	// HeaderAccount picks the account for one request: a UPN or an account ID.
	HeaderAccount = "X-Entra-Account"
	// HeaderKey carries the client key when Options.Key is set.
	HeaderKey = "X-Entra-Proxy-Key"
)

// Options configures a Server.
type Options struct {
	// Listen is the loopback host:port to listen on ("127.0.0.1:8631", "[::1]:0",
	// "localhost:8631"); port 0 picks a free port. Empty means DefaultListen. A non-loopback
	// host is an error.
	Listen string
	// AllowedOrigins are the browser origins that may call the proxy, as "scheme://host:port"
	// or "scheme://host:*" (any port). Empty means the loopback origins of any port
	// (http and https on localhost, 127.0.0.1 and [::1]).
	AllowedOrigins []string
	// Key, if non-empty, must be sent by every request (but CORS preflights) in the
	// X-Entra-Proxy-Key header; it is compared in constant time. The caller keeps it in the
	// keychain.
	Key string
	// Routes map path prefixes to upstreams. They are validated again here.
	Routes []config.Route
	// GraphScopes are the scopes of the Microsoft Graph token exchanged for a Strapi JWT on
	// routes with auth "strapi". Empty means the sign-in scopes.
	GraphScopes auth.Scopes
	// Tokens gives fresh access tokens. Required when a route has auth "bearer" or "strapi".
	Tokens TokenSource
	// Accounts, if not nil, lists the accounts on the status page.
	Accounts AccountLister
	// Logger receives one Info line per request (the access log) and the server's warnings.
	// Nil means slog.Default().
	Logger *slog.Logger
	// Transport is the base transport to upstreams. Nil means a tuned *http.Transport
	// (keep-alive, 256 idle connections per host, HTTP/2, timeouts). A *http.Transport given
	// here is cloned and given the same pool size and HTTP/2 setting (its TLS configuration,
	// e.g. a test CA, is kept); any other RoundTripper is used as is.
	Transport http.RoundTripper
}

// Server is the loopback reverse proxy. Create it with New, then Start it, or mount Handler in
// a server of your own.
type Server struct {
	logger   *slog.Logger
	tokens   TokenSource
	accounts AccountLister
	key      []byte

	origins       []originPattern
	routes        []*route // sorted by prefix length, longest first
	routeInfo     []RouteInfo
	graphScopes   auth.Scopes
	noRouteMsg    string
	listenHost    string // host to listen on: an IP literal
	listenPort    int    // configured port (0: any)
	base          http.RoundTripper
	ownsTransport bool
	proxy         *httputil.ReverseProxy
	handler       http.Handler

	now func() time.Time // injectable for tests

	// readHeaderTimeout is the http.Server's ReadHeaderTimeout (defaultReadHeaderTimeout);
	// tests of slow clients lower it before Start.
	readHeaderTimeout time.Duration

	mu      sync.Mutex // guards srv, ln, baseURL and done during Start/Shutdown
	srv     *http.Server
	ln      net.Listener
	baseURL string
	done    chan struct{}
	port    atomic.Int32 // listening port once started

	stats counters

	tokMu   sync.Mutex
	tokSeen map[tokenKey]time.Time // expiry of the last token used per (account, route)

	subMu sync.Mutex
	subs  atomic.Pointer[[]*subscription]
}

// New validates opts and builds a Server. It does not listen: call Start.
func New(opts Options) (*Server, error) {
	listen := opts.Listen
	if listen == "" {
		listen = DefaultListen
	}
	host, port, err := loopbackListen(listen)
	if err != nil {
		return nil, err
	}
	routes, err := compileRoutes(opts.Routes)
	if err != nil {
		return nil, err
	}
	origins, err := compileOrigins(opts.AllowedOrigins)
	if err != nil {
		return nil, err
	}
	for _, rt := range routes {
		if rt.auth != authNone && opts.Tokens == nil {
			return nil, fmt.Errorf("route %s needs tokens (auth %s) but no token source was given", rt.name, rt.auth)
		}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{
		logger:      logger,
		tokens:      opts.Tokens,
		accounts:    opts.Accounts,
		origins:     origins,
		routes:      routes,
		graphScopes: opts.GraphScopes,
		listenHost:  host,
		listenPort:  port,
		now:         time.Now,
		tokSeen:     make(map[tokenKey]time.Time),

		readHeaderTimeout: defaultReadHeaderTimeout,
	}
	if opts.Key != "" {
		s.key = []byte(opts.Key)
	}
	s.baseURL = "http://" + net.JoinHostPort(host, strconv.Itoa(port))
	s.routeInfo = make([]RouteInfo, len(routes))
	prefixes := make([]string, len(routes))
	for i, rt := range routes {
		s.routeInfo[i] = rt.info
		prefixes[i] = rt.prefix
	}
	if len(prefixes) == 0 {
		s.noRouteMsg = "no route is configured: add routes to the proxy settings (config.toml)"
	} else {
		s.noRouteMsg = "no route matches this path; configured prefixes: " + strings.Join(prefixes, ", ")
	}
	s.base, s.ownsTransport = baseTransport(opts.Transport)
	errLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	s.proxy = &httputil.ReverseProxy{
		Rewrite:        s.rewrite,
		Transport:      &tokenTransport{s: s, base: s.base},
		ErrorHandler:   s.proxyError,
		ModifyResponse: s.modifyResponse,
		BufferPool:     bufferPool{},
		ErrorLog:       errLog,
	}
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s, nil
}

// loopbackListen checks that addr is a loopback host:port and returns the IP to listen on.
func loopbackListen(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("proxy listen address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("proxy listen address %q: bad port", addr)
	}
	if strings.EqualFold(host, "localhost") {
		return "127.0.0.1", port, nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", 0, fmt.Errorf("proxy listen address %q is not a loopback address: use 127.0.0.1, [::1] or localhost", addr)
	}
	return ip.String(), port, nil
}

// baseTransport returns the transport to upstreams and whether the server created it.
func baseTransport(rt http.RoundTripper) (http.RoundTripper, bool) {
	if rt == nil {
		return newTransport(), true
	}
	if t, ok := rt.(*http.Transport); ok {
		c := t.Clone()
		tune(c)
		return c, true
	}
	return rt, false
}

func newTransport() *http.Transport {
	t := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
	}
	tune(t)
	return t
}

func tune(t *http.Transport) {
	t.ForceAttemptHTTP2 = true
	if t.MaxIdleConnsPerHost < 256 {
		t.MaxIdleConnsPerHost = 256
	}
	if t.MaxIdleConns != 0 && t.MaxIdleConns < 1024 {
		t.MaxIdleConns = 1024
	}
	if t.IdleConnTimeout == 0 {
		t.IdleConnTimeout = 90 * time.Second
	}
}

// Start listens on the configured loopback address and serves in a goroutine.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("proxy is already running")
	}
	addr := net.JoinHostPort(s.listenHost, strconv.Itoa(s.listenPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("starting proxy on %s: %w", addr, err)
	}
	tcp, ok := ln.Addr().(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() {
		ln.Close()
		return fmt.Errorf("starting proxy: %s is not a loopback address", ln.Addr())
	}
	srv := &http.Server{
		Handler:                      s.handler,
		ReadHeaderTimeout:            s.readHeaderTimeout,
		IdleTimeout:                  2 * time.Minute,
		MaxHeaderBytes:               64 << 10,
		DisableGeneralOptionsHandler: true, // "OPTIONS *" reaches the guards
		ErrorLog:                     slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	s.srv, s.ln = srv, ln
	s.port.Store(int32(tcp.Port))
	s.baseURL = "http://" + net.JoinHostPort(tcp.IP.String(), strconv.Itoa(tcp.Port))
	done := make(chan struct{})
	s.done = done
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("proxy stopped", "addr", tcp.String(), "err", err)
		}
	}()
	return nil
}

// Addr is the address the proxy listens on, or nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// BaseURL is the proxy's base URL, e.g. "http://127.0.0.1:8631" (with the real port once
// started).
func (s *Server) BaseURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.baseURL
}

// Handler is the whole handler (guards, routes and /_companion), for in-process tests and
// benchmarks. The Host check uses the port the request arrived on (or, without a server, the
// listening or configured port).
func (s *Server) Handler() http.Handler { return s.handler }

// Shutdown stops accepting connections and waits for requests in flight (streams included)
// until ctx ends, then closes idle upstream connections.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv, s.ln, s.done = nil, nil, nil
	s.mu.Unlock()
	var err error
	if srv != nil {
		err = srv.Shutdown(ctx)
		if err != nil {
			srv.Close()
		}
		<-done
	}
	if s.ownsTransport {
		if t, ok := s.base.(interface{ CloseIdleConnections() }); ok {
			t.CloseIdleConnections()
		}
	}
	if err != nil {
		return fmt.Errorf("stopping proxy: %w", err)
	}
	return nil
}

// Routes describes the configured routes, longest prefix first, for the UI.
func (s *Server) Routes() []RouteInfo {
	out := make([]RouteInfo, len(s.routeInfo))
	for i, ri := range s.routeInfo {
		ri.Scopes = append([]string(nil), ri.Scopes...)
		out[i] = ri
	}
	return out
}

// expectedPort is the port a valid Host header must name: the one the request arrived on, else
// the listening port, else the configured one.
func (s *Server) expectedPort(r *http.Request) int {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
		return a.Port
	}
	if p := s.port.Load(); p != 0 {
		return int(p)
	}
	return s.listenPort
}
