package sim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"
)

// Options configures a Server. The zero value is a working default.
type Options struct {
	// AccessTokenLifetime fixes access-token lifetime; 0 = random in [3600s, 5400s) like Entra.
	AccessTokenLifetime time.Duration
	// RefreshTokenLifetime is the refresh-token inactivity lifetime; 0 = 90 days.
	RefreshTokenLifetime time.Duration
	// RefreshTokenReuseInterval is how long after a refresh token was redeemed it is still
	// accepted once more, as long as the token issued in its place has not been redeemed
	// (Okta's grace period, Auth0's reuse interval): a client killed after the authority
	// rotated the token but before it stored the new one is not signed out. 0 = strict
	// single use: a second redemption is invalid_grant.
	RefreshTokenReuseInterval time.Duration
	// Now is the clock used for issuing and validating tokens; nil = time.Now.
	Now func() time.Time
	// PagesOnHTTP also serves the pages a person's browser opens (authorize/login page,
	// device login page) on a plain http://127.0.0.1 port and puts that authorize URL in the
	// discovery document (MSAL requires https only for endpoints it calls itself).
	PagesOnHTTP bool
	// Addr is the listen address of the authority listener ("" = 127.0.0.1:0). Loopback
	// only; the other listeners use the same IP with a free port.
	Addr string
	// DeviceCodeInterval is the polling interval the device code endpoint announces and
	// enforces with slow_down; 0 = 5s. Tests use 1s.
	DeviceCodeInterval time.Duration
	// DeviceCodeLifetime is how long a device code can be approved; 0 = 15 minutes.
	DeviceCodeLifetime time.Duration
	// CMSJWTLifetime is the lifetime of the CMS's own JWTs; 0 = 30 days.
	CMSJWTLifetime time.Duration
	// Logf receives the HTTP servers' own error messages (TLS handshake failures and the
	// like); nil = discarded. It never receives tokens.
	Logf func(format string, args ...any)
}

// Server is a running simulated cloud. Create it with New or Start.
type Server struct {
	opts Options
	now  func() time.Time
	dir  *directory
	ca   *certAuthority
	cert tls.Certificate

	authority, graph, pages *listener
	cmsMu                   sync.Mutex
	cms                     *listener // nil while stopped
	cmsAddr                 string
	closed                  atomic.Bool
	inflight                atomic.Int64
	internal                *http.Client // the CMS's client for Graph

	tmu        sync.Mutex
	transports []weak.Pointer[http.Transport]

	keyMu sync.RWMutex
	keys  []*signingKey // listed in JWKS; the last one signs

	appCertOnce  sync.Once
	appCert      *appCertificate
	appCertErr   error
	appCertReady atomic.Bool

	cmsState *cmsState

	mu         sync.Mutex // the state below
	seq        uint64     // sign-in sessions and access tokens, in issue order
	atLifetime time.Duration
	pending    map[string]*authRequest  // login page context → request
	codes      map[string]*authCode     // sha256(code) → code
	refresh    map[string]*refreshGrant // sha256(refresh token) → grant
	devices    map[string]*deviceFlow   // sha256(device code) → flow
	userCodes  map[string]*deviceFlow   // user code → flow
	rtRevoked  map[string]revocation    // home oid → revocation of refresh tokens
	mfa        map[string]bool          // home oid → MFA needed at next refresh
	cae        map[string]revocation    // home oid → revocation of access tokens
	issued     map[string]issuedToken   // uti → issue order and expiry
	issuedCap  int                      // prune issued past this size
	refreshCap int                      // prune refresh past this size
	consents   map[string]map[string]bool
	faults     map[Endpoint][]*faultState

	cmu      sync.Mutex // counters
	counts   map[Endpoint]int
	grants   map[string]int
	rejected map[Endpoint]int
}

// revocation records when and up to which issue sequence something was revoked.
type revocation struct {
	seq uint64
	at  time.Time
}

type issuedToken struct {
	seq uint64
	exp time.Time
}

// listener is one HTTP(S) server of the sim.
type listener struct {
	name string
	addr string
	srv  *http.Server
	stop chan struct{} // closed when the listener stops
	done chan struct{} // closed when Serve returned
	once sync.Once
}

type stopKey struct{}

// stopOf returns the channel closed when the listener that received r stops.
func stopOf(r *http.Request) <-chan struct{} {
	if c, ok := r.Context().Value(stopKey{}).(chan struct{}); ok {
		return c
	}
	return nil
}

func (l *listener) close() error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		err = l.srv.Close()
		<-l.done
	})
	return err
}

// New starts the simulated cloud: the authority, Graph and CMS listeners (and the pages
// listener with PagesOnHTTP).
func New(opts Options) (*Server, error) {
	addr, err := loopbackAddr(opts.Addr)
	if err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RefreshTokenLifetime <= 0 {
		opts.RefreshTokenLifetime = 90 * 24 * time.Hour
	}
	if opts.DeviceCodeInterval <= 0 {
		opts.DeviceCodeInterval = 5 * time.Second
	}
	if opts.DeviceCodeLifetime <= 0 {
		opts.DeviceCodeLifetime = 15 * time.Minute
	}
	if opts.CMSJWTLifetime <= 0 {
		opts.CMSJWTLifetime = 30 * 24 * time.Hour
	}
	s := &Server{
		opts:       opts,
		now:        opts.Now,
		dir:        newDirectory(),
		atLifetime: opts.AccessTokenLifetime,
		pending:    map[string]*authRequest{},
		codes:      map[string]*authCode{},
		refresh:    map[string]*refreshGrant{},
		devices:    map[string]*deviceFlow{},
		userCodes:  map[string]*deviceFlow{},
		rtRevoked:  map[string]revocation{},
		mfa:        map[string]bool{},
		cae:        map[string]revocation{},
		issued:     map[string]issuedToken{},
		issuedCap:  20000,
		refreshCap: 10000,
		consents:   map[string]map[string]bool{},
		faults:     map[Endpoint][]*faultState{},
		counts:     map[Endpoint]int{},
		grants:     map[string]int{},
		rejected:   map[Endpoint]int{},
	}
	if s.ca, err = newCA(); err != nil {
		return nil, fmt.Errorf("starting the simulated cloud: %w", err)
	}
	if s.cert, err = s.ca.serverCert(); err != nil {
		return nil, fmt.Errorf("starting the simulated cloud: %w", err)
	}
	key, err := newSigningKey()
	if err != nil {
		return nil, fmt.Errorf("starting the simulated cloud: %w", err)
	}
	s.keys = []*signingKey{key}
	if s.cmsState, err = newCMSState(); err != nil {
		return nil, fmt.Errorf("starting the simulated cloud: %w", err)
	}

	fail := func(err error) (*Server, error) {
		_ = s.Close()
		return nil, fmt.Errorf("starting the simulated cloud: %w", err)
	}
	if s.authority, err = s.listen("authority", addr, true, http.HandlerFunc(s.serveAuthority)); err != nil {
		return fail(err)
	}
	ip, _, _ := net.SplitHostPort(s.authority.addr)
	if s.graph, err = s.listen("graph", net.JoinHostPort(ip, "0"), true, http.HandlerFunc(s.serveGraph)); err != nil {
		return fail(err)
	}
	if s.cms, err = s.listen("cms", net.JoinHostPort(ip, "0"), true, http.HandlerFunc(s.serveCMS)); err != nil {
		return fail(err)
	}
	s.cmsAddr = s.cms.addr
	if opts.PagesOnHTTP {
		if s.pages, err = s.listen("pages", net.JoinHostPort(ip, "0"), false, http.HandlerFunc(s.servePages)); err != nil {
			return fail(err)
		}
	}
	s.internal = s.Client()
	return s, nil
}

// Start is New for tests: it fails the test on error and closes the server in t.Cleanup.
func Start(t testing.TB, opts ...Options) *Server {
	t.Helper()
	var o Options
	switch len(opts) {
	case 0:
	case 1:
		o = opts[0]
	default:
		t.Fatalf("sim.Start: at most one Options, got %d", len(opts))
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("sim.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing the simulated cloud: %v", err)
		}
	})
	return s
}

func loopbackAddr(addr string) (string, error) {
	if addr == "" {
		return "127.0.0.1:0", nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("parsing the listen address %q: %w", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return addr, nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("listen address %q is not a loopback address", addr)
	}
	return addr, nil
}

type logfWriter func(format string, args ...any)

// Write sends one log line to the Logf function.
func (f logfWriter) Write(p []byte) (int, error) {
	f("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (s *Server) errorLog(name string) *log.Logger {
	if s.opts.Logf == nil {
		return log.New(io.Discard, "", 0)
	}
	return log.New(logfWriter(s.opts.Logf), "sim "+name+": ", 0)
}

func (s *Server) listen(name, addr string, useTLS bool, h http.Handler) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for %s on %s: %w", name, addr, err)
	}
	l := &listener{name: name, addr: ln.Addr().String(), stop: make(chan struct{}), done: make(chan struct{})}
	l.srv = &http.Server{
		Handler:           s.track(h),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          s.errorLog(name),
		BaseContext: func(net.Listener) context.Context {
			return context.WithValue(context.Background(), stopKey{}, l.stop)
		},
	}
	if useTLS {
		l.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{s.cert}, MinVersion: tls.VersionTLS12}
	}
	go func() {
		defer close(l.done)
		var err error
		if useTLS {
			err = l.srv.ServeTLS(ln, "", "")
		} else {
			err = l.srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) && s.opts.Logf != nil {
			s.opts.Logf("sim %s: serving: %v", name, err)
		}
	}()
	return l, nil
}

// track counts requests in flight so Close can wait for handlers to return.
func (s *Server) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		h.ServeHTTP(w, r)
	})
}

// Close stops every listener, releases hanging requests and waits (up to 5s) for handlers
// to return.
func (s *Server) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	var errs []error
	s.cmsMu.Lock()
	cms := s.cms
	s.cms = nil
	s.cmsMu.Unlock()
	for _, l := range []*listener{s.authority, s.graph, cms, s.pages} {
		if l != nil {
			if err := l.close(); err != nil {
				errs = append(errs, fmt.Errorf("closing the %s listener: %w", l.name, err))
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if n := s.inflight.Load(); n > 0 {
		errs = append(errs, fmt.Errorf("%d requests still running after close", n))
	}
	s.tmu.Lock()
	for _, wp := range s.transports {
		if tr := wp.Value(); tr != nil {
			tr.CloseIdleConnections()
		}
	}
	s.transports = nil
	s.tmu.Unlock()
	return errors.Join(errs...)
}

// StopCMS takes the CMS down (its port refuses connections) until StartCMS.
func (s *Server) StopCMS() {
	s.cmsMu.Lock()
	l := s.cms
	s.cms = nil
	s.cmsMu.Unlock()
	if l != nil {
		_ = l.close()
	}
}

// StartCMS brings the CMS back on the same port after StopCMS. Its state (users, articles,
// JWT secret) survives.
func (s *Server) StartCMS() error {
	s.cmsMu.Lock()
	defer s.cmsMu.Unlock()
	if s.closed.Load() {
		return errors.New("starting the cms: the simulated cloud is closed")
	}
	if s.cms != nil {
		return nil
	}
	var err error
	for range 100 { // the port may take a moment to be free again
		var l *listener
		if l, err = s.listen("cms", s.cmsAddr, true, http.HandlerFunc(s.serveCMS)); err == nil {
			s.cms = l
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("starting the cms again: %w", err)
}

// AuthorityHost returns the authority's base URL, "https://127.0.0.1:PORT".
func (s *Server) AuthorityHost() string { return "https://" + s.authority.addr }

// Authority returns the authority URL of a tenant ("https://127.0.0.1:PORT/<tenant>/"); tenant
// is a tenant id, a verified domain, "organizations" or "common".
func (s *Server) Authority(tenant string) string { return s.AuthorityHost() + "/" + tenant + "/" }

// GraphURL returns Graph's v1.0 base URL, "https://127.0.0.1:PORT/v1.0".
func (s *Server) GraphURL() string { return "https://" + s.graph.addr + "/v1.0" }

// GraphHost returns Graph's host and port, "127.0.0.1:PORT".
func (s *Server) GraphHost() string { return s.graph.addr }

// CMSURL returns the CMS's base URL, "https://127.0.0.1:PORT".
func (s *Server) CMSURL() string { return "https://" + s.cmsAddr }

// PagesURL returns the plain-HTTP base URL of the browser pages with PagesOnHTTP, else "".
func (s *Server) PagesURL() string {
	if s.pages == nil {
		return ""
	}
	return "http://" + s.pages.addr
}

// pagesBase is where a person's browser is sent: PagesURL when serving pages on HTTP.
func (s *Server) pagesBase() string {
	if s.pages != nil {
		return s.PagesURL()
	}
	return s.AuthorityHost()
}

// Client returns an HTTP client that trusts the sim's CA, on a fresh transport with HTTP/2.
// The transport dials at most 16 connections per host at a time (HTTP/2 multiplexes on them;
// a plain-HTTP host gets at most 16 connections). Close closes its idle connections.
func (s *Server) Client() *http.Client {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: s.ca.pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          200,
		MaxIdleConnsPerHost:   100,
		MaxConnsPerHost:       16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	s.tmu.Lock()
	live := s.transports[:0]
	for _, wp := range s.transports {
		if wp.Value() != nil {
			live = append(live, wp)
		}
	}
	s.transports = append(live, weak.Make(tr))
	s.tmu.Unlock()
	return &http.Client{Transport: tr}
}
