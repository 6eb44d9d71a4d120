// Command soakrun is the Go half of scripts/soak: a long run of mixed proxy traffic from many
// clients across three accounts (Adele, Alex, and Adele as a guest in Fabrikam) through
// localproxy.Server and a real auth.Broker, against an in-process simulated cloud whose
// access tokens live 6 minutes (Strapi JWTs 3), while faults are injected at random and
// refresh tokens are revoked and restored. It reports what the clients saw, every request that reached an
// upstream without a valid token, refreshes, goroutines and RSS at start and end, and then
// scans every file written during the run for token material. It is a program, never imported.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
	"github.com/entra-companion/entra-companion/localproxy"
	"github.com/entra-companion/entra-companion/sim"
)

const (
	graphScope = "https://graph.microsoft.com/.default"
	cmsScope   = sim.CMSAudience + "/.default"
)

type options struct {
	duration   time.Duration
	clients    int
	think      time.Duration
	chaosEvery time.Duration
	out        string
	keychain   string
	scan       string
	seed       uint64
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long the traffic runs")
	flag.IntVar(&o.clients, "clients", 32, "concurrent clients")
	flag.DurationVar(&o.think, "think", 100*time.Millisecond, "mean pause between one client's requests")
	flag.DurationVar(&o.chaosEvery, "chaos-every", 12*time.Second, "mean time between injected faults")
	flag.StringVar(&o.out, "out", "", "directory for the logs and the report (required)")
	flag.StringVar(&o.keychain, "keychain", "auto", "auto (the OS keychain if it answers, else memory), real or memory")
	flag.StringVar(&o.scan, "scan", "", "more directories to scan for token material, comma-separated")
	flag.Uint64Var(&o.seed, "seed", 0, "random seed (0: random)")
	flag.Parse()
	if o.out == "" {
		fmt.Fprintln(os.Stderr, "soakrun: -out is required")
		os.Exit(2)
	}
	if o.seed == 0 {
		o.seed = mrand.Uint64()
	}
	ok, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soakrun:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// account is one of the three identities the clients use.
type account struct {
	name, upn, tenant string
	id                string
}

// soak is the run's state.
type soak struct {
	o      options
	sim    *sim.Server
	broker *auth.Broker
	proxy  *localproxy.Server
	audit  *auditor
	accts  []*account
	chaos  *chaosLog
	res    *results
	rngMu  sync.Mutex
	rng    *mrand.Rand

	signInMu  sync.Mutex
	reSignIns atomic.Int64
}

func (s *soak) intn(n int) int {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.IntN(n)
}

func (s *soak) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.intn(int(hi-lo)+1))
}

func run(o options) (bool, error) {
	if err := os.MkdirAll(o.out, 0o700); err != nil {
		return false, err
	}
	logFile := func(name string) (*os.File, error) {
		return os.OpenFile(filepath.Join(o.out, name), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	}
	simLog, err := logFile("sim.log")
	if err != nil {
		return false, err
	}
	defer simLog.Close()
	brokerLog, err := logFile("broker.log")
	if err != nil {
		return false, err
	}
	defer brokerLog.Close()
	proxyLog, err := logFile("proxy.log")
	if err != nil {
		return false, err
	}
	defer proxyLog.Close()
	chaosFile, err := logFile("chaos.log")
	if err != nil {
		return false, err
	}
	defer chaosFile.Close()

	var simMu sync.Mutex
	s := &soak{o: o, rng: mrand.New(mrand.NewPCG(o.seed, 1)), res: newResults(), chaos: &chaosLog{w: chaosFile, counts: map[string]int{}}}
	s.sim, err = sim.New(sim.Options{
		AccessTokenLifetime: 6 * time.Minute,
		CMSJWTLifetime:      3 * time.Minute, // the proxy exchanges again a minute before: every 2 minutes
		Logf: func(format string, args ...any) {
			simMu.Lock()
			fmt.Fprintf(simLog, time.Now().Format(time.RFC3339Nano)+" "+format+"\n", args...)
			simMu.Unlock()
		},
	})
	if err != nil {
		return false, err
	}
	defer s.sim.Close()

	// The keychain: the OS's, under a service name of its own, as users run it.
	stateDir := filepath.Join(o.out, "state")
	var store auth.SecretStore
	service := ""
	keychain := "memory"
	switch o.keychain {
	case "memory":
		store = auth.NewMemoryStore()
	case "real", "auto":
		var rb [4]byte
		_, _ = rand.Read(rb[:])
		service = "entra-companion-soak-" + hex.EncodeToString(rb[:])
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		perr := auth.ProbeKeychain(ctx, &auth.Keyring{Service: service})
		cancel()
		switch {
		case perr == nil:
			keychain = "os keychain (service " + service + ")"
		case o.keychain == "real":
			return false, fmt.Errorf("the OS keychain does not answer: %w", perr)
		default:
			fmt.Printf("soak: no OS keychain (%v): using memory\n", perr)
			store = auth.NewMemoryStore()
		}
	default:
		return false, fmt.Errorf("-keychain %q: want auto, real or memory", o.keychain)
	}
	hc := s.sim.Client()
	hc.Timeout = 5 * time.Second // a sane client: a hung authority costs 5 s, not minutes
	s.broker, err = auth.New(context.Background(), auth.Options{
		ClientID: sim.PublicClientID, Authority: s.sim.Authority("organizations"),
		DefaultScopes: []string{graphScope}, Store: store, Service: service, StateDir: stateDir,
		HTTPClient: hc, Logger: slog.New(slog.NewJSONHandler(brokerLog, nil)),
		NoKeychainFallback: store == nil,
	})
	if err != nil {
		return false, err
	}
	defer s.broker.Close()

	s.accts = []*account{
		{name: "adele", upn: sim.UserAdele, tenant: "organizations"},
		{name: "alex", upn: sim.UserAlex, tenant: "organizations"},
		{name: "guest", upn: sim.UserAdele, tenant: sim.TenantFabrikam},
	}
	for _, a := range s.accts {
		acc, err := s.signIn(a)
		if err != nil {
			return false, err
		}
		a.id = acc.ID
	}
	defer func() {
		for _, a := range s.accts { // leave nothing in the keychain
			_ = s.broker.SignOut(context.Background(), a.id)
		}
	}()

	base := s.sim.Client().Transport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost, base.MaxConnsPerHost, base.ForceAttemptHTTP2 = 256, 0, true
	s.audit = newAuditor(s, base)
	s.proxy, err = localproxy.New(localproxy.Options{
		Listen: "127.0.0.1:0", Tokens: s.broker, Accounts: s.broker, Transport: s.audit,
		GraphScopes: auth.NewScopes(graphScope), Logger: slog.New(slog.NewJSONHandler(proxyLog, nil)),
		Routes: []config.Route{
			{Name: "graph", Prefix: "/graph/", Upstream: "https://" + s.sim.GraphHost() + "/", Scopes: []string{graphScope}, Auth: config.AuthBearer},
			{Name: "cms", Prefix: "/cms/", Upstream: s.sim.CMSURL() + "/", Scopes: []string{cmsScope}, Auth: config.AuthBearer},
			{Name: "strapi", Prefix: "/strapi/", Upstream: s.sim.CMSURL() + "/", Auth: config.AuthStrapi},
		},
	})
	if err != nil {
		return false, err
	}
	if err := s.proxy.Start(); err != nil {
		return false, err
	}
	defer s.proxy.Shutdown(context.Background())

	clients := make([]*http.Client, o.clients)
	for i := range clients {
		clients[i] = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2, DisableCompression: true}}
	}
	closeIdle := func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
		base.CloseIdleConnections()
		hc.CloseIdleConnections()
		s.audit.jwks.CloseIdleConnections()
		time.Sleep(3 * time.Second) // the servers' per-connection goroutines wind down
	}

	// Warm-up: every account on every route once, then the baseline.
	for _, a := range s.accts {
		for _, r := range routes {
			if st, kind := s.request(clients[0], r, a); st != http.StatusOK {
				return false, fmt.Errorf("warm-up %s %s: %d %s", a.name, r.path, st, kind)
			}
		}
	}
	s.res = newResults()
	closeIdle()
	start := sample()
	dumpGoroutines(filepath.Join(o.out, "goroutines-start.txt"))
	fmt.Printf("soak: %d clients for %v through %s, accounts %s, keychain: %s, seed %d\n", o.clients, o.duration, s.proxy.BaseURL(), names(s.accts), keychain, o.seed)
	fmt.Printf("soak: start: %s\n", start)
	grants0, signIns0 := s.sim.GrantCount("refresh_token"), s.sim.GrantCount("authorization_code")
	tokenCalls0 := s.sim.Count(sim.EndpointToken)
	exchanges0 := s.sim.Count(sim.EndpointCMSCallback)
	rejected0 := rejectedBy(s.sim)

	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	samples := &sampler{}
	var wg sync.WaitGroup
	wg.Go(func() { samples.run(ctx, o.out) })
	chaosDone := make(chan struct{})
	go func() { defer close(chaosDone); s.runChaos(ctx) }()
	for i := range o.clients {
		wg.Go(func() { s.client(ctx, i, clients[i]) })
	}
	wg.Wait()
	<-chaosDone
	s.calm()

	// Quiet again: the same measurement as at the start.
	closeIdle()
	end := sample()
	dumpGoroutines(filepath.Join(o.out, "goroutines-end.txt"))
	fmt.Printf("soak: end:   %s\n", end)

	// The report.
	prox := s.proxy.Status().Counters
	rep := report{
		Seed: o.seed, Duration: o.duration.String(), Clients: o.clients, Keychain: keychain,
		Requests: s.res.total.Load(), ByOutcome: s.res.snapshot(),
		Upstream: s.audit.snapshot(), SimRejected: diff(rejectedBy(s.sim), rejected0),
		ProxyRetries: prox.Retries, ProxyTokenErrors: prox.TokenErrors, ProxyUpstreamErrors: prox.UpstreamErrors,
		Refreshes:     s.sim.GrantCount("refresh_token") - grants0,
		TokenCalls:    s.sim.Count(sim.EndpointToken) - tokenCalls0,
		SignIns:       s.sim.GrantCount("authorization_code") - signIns0,
		ReSignIns:     s.reSignIns.Load(),
		Exchanges:     s.sim.Count(sim.EndpointCMSCallback) - exchanges0,
		Faults:        s.chaos.snapshot(),
		Start:         start,
		End:           end,
		Delta:         end.minus(start),
		InRunMax:      samples.max(),
		AccountStates: map[string]string{},
	}
	for _, a := range s.broker.Accounts() {
		rep.AccountStates[a.Username+" ("+a.TenantID+")"] = string(a.State)
	}
	rep.FailuresExplained, rep.FailuresUnexplained = s.res.failures()
	rep.InvalidNotDeliberate = rep.Upstream.Missing + rep.Upstream.Malformed + rep.Upstream.Expired + rep.Upstream.RefusedUnexplained
	rep.Flat = rep.Delta.Goroutines <= 5 && rep.Delta.RSSKiB <= 20*1024

	// Every file written during the run, and the run's own output, for token material.
	dirs := []string{o.out}
	for _, d := range strings.Split(o.scan, ",") {
		if d = strings.TrimSpace(d); d != "" {
			dirs = append(dirs, d)
		}
	}
	rep.Scan = scanFiles(dirs, s.audit.issued())
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(o.out, "report.json"), append(b, '\n'), 0o600); err != nil {
		return false, err
	}
	rep.print()
	ok := rep.InvalidNotDeliberate == 0 && rep.Scan.Hits == 0 && rep.Flat && len(rep.Scan.Errors) == 0
	for _, st := range rep.AccountStates {
		if st != string(auth.StateReady) && st != string(auth.StateRefreshing) {
			ok = false
		}
	}
	fmt.Printf("soak: %s\n", map[bool]string{true: "PASS", false: "FAIL"}[ok])
	return ok, nil
}

func names(as []*account) string {
	var n []string
	for _, a := range as {
		n = append(n, a.name)
	}
	return strings.Join(n, ", ")
}

// signIn signs an account in (again) through the sim's browser, as its user would.
func (s *soak) signIn(a *account) (auth.Account, error) {
	s.signInMu.Lock()
	defer s.signInMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	acc, err := s.broker.SignIn(ctx, auth.SignInOptions{Authority: s.sim.Authority(a.tenant), LoginHint: a.upn, OpenURL: s.sim.Browser(a.upn)})
	if err != nil {
		return acc, fmt.Errorf("signing in %s: %w", a.name, err)
	}
	return acc, nil
}

// route is one kind of request the clients send.
type route struct {
	name, path string
	weight     int
}

var routes = []route{
	{"graph", "/graph/v1.0/me", 40},
	{"cms", "/cms/api/articles", 35},
	{"strapi", "/strapi/api/articles", 25},
}

func (s *soak) pickRoute() route {
	n := s.intn(100)
	for _, r := range routes {
		if n < r.weight {
			return r
		}
		n -= r.weight
	}
	return routes[0]
}

// client sends requests until ctx ends.
func (s *soak) client(ctx context.Context, i int, c *http.Client) {
	for n := 0; ctx.Err() == nil; n++ {
		a := s.accts[(i+n)%len(s.accts)]
		r := s.pickRoute()
		st, kind := s.request(c, r, a)
		if st == 0 && ctx.Err() != nil {
			return // the run ended mid-request
		}
		s.res.add(r.name, st, kind, kind != "ok" && s.chaos.explains(kind, st, time.Now()))
		select {
		case <-ctx.Done():
		case <-time.After(s.between(s.o.think/2, s.o.think*3/2)):
		}
	}
}

// request sends one request through the proxy and classifies the answer: "ok", the proxy's own
// error code, "upstream" (an upstream's own answer passed through) or "client:<error>".
func (s *soak) request(c *http.Client, r route, a *account) (int, string) {
	req, err := http.NewRequest(http.MethodGet, s.proxy.BaseURL()+r.path, nil)
	if err != nil {
		return 0, "client:" + err.Error()
	}
	req.Header.Set(localproxy.HeaderAccount, a.id)
	resp, err := c.Do(req)
	if err != nil {
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		return 0, "client:" + msg
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode < 300 {
		return resp.StatusCode, "ok"
	}
	var e struct {
		Error any    `json:"error"`
		Route string `json:"route"`
	}
	if json.Unmarshal(body, &e) == nil {
		if code, ok := e.Error.(string); ok && e.Route != "" {
			return resp.StatusCode, code
		}
	}
	return resp.StatusCode, "upstream"
}

// results counts the clients' outcomes.
type results struct {
	total atomic.Int64
	mu    sync.Mutex
	by    map[string]int64 // "route status kind"
	unexp map[string]int64 // failures no injected fault explains
	expl  int64            // failures an injected fault explains
}

func newResults() *results { return &results{by: map[string]int64{}, unexp: map[string]int64{}} }

func (r *results) add(route string, status int, kind string, explained bool) {
	r.total.Add(1)
	key := fmt.Sprintf("%s %d %s", route, status, kind)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.by[key]++
	switch {
	case kind == "ok":
	case explained:
		r.expl++
	default:
		r.unexp[key]++
	}
}

func (r *results) failures() (explained int64, unexplained map[string]int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int64{}
	for k, v := range r.unexp {
		out[k] = v
	}
	return r.expl, out
}

func (r *results) snapshot() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int64, len(r.by))
	for k, v := range r.by {
		out[k] = v
	}
	return out
}

// chaosLog records the faults injected and when each was in effect.
type chaosLog struct {
	mu      sync.Mutex
	w       io.Writer
	counts  map[string]int
	windows []*window
}

// window is when one fault was in effect: to is zero while it lasts.
type window struct {
	kind     string
	from, to time.Time
}

// event records a fault that lasts for d (0: until end is called on the returned window).
func (c *chaosLog) event(kind string, d time.Duration, format string, args ...any) *window {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[kind]++
	now := time.Now()
	w := &window{kind: kind, from: now}
	if d > 0 {
		w.to = now.Add(d)
	}
	c.windows = append(c.windows, w)
	fmt.Fprintf(c.w, "%s %s %s\n", now.Format(time.RFC3339Nano), kind, fmt.Sprintf(format, args...))
	return w
}

func (c *chaosLog) end(w *window) {
	c.mu.Lock()
	w.to = time.Now()
	c.mu.Unlock()
}

// causes are the faults that can explain each failure a client sees.
var causes = map[string][]string{
	"upstream_unreachable": {"cms-down"},
	"exchange_failed":      {"cms-down", "revoke-refresh-tokens", "cae-revocation", "key-drop", "graph-429"},
	"needs_sign_in":        {"revoke-refresh-tokens"},
	"token_unavailable":    {"token-500", "token-503-retry-after", "token-hang"},
	"upstream 429":         {"graph-429"},
	"upstream 401":         {"revoke-refresh-tokens", "cae-revocation", "key-drop"},
}

// explains reports whether a fault in effect at t (give or take 2 s) explains a failure.
func (c *chaosLog) explains(kind string, status int, t time.Time) bool {
	if kind == "upstream" {
		kind = "upstream " + strconv.Itoa(status)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.windows {
		if !slices.Contains(causes[kind], w.kind) || t.Before(w.from.Add(-2*time.Second)) {
			continue
		}
		if w.to.IsZero() || !t.After(w.to.Add(2*time.Second)) {
			return true
		}
	}
	return false
}

func (c *chaosLog) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// faultWindow is how long a fault injected for the next few calls counts as the cause of
// failures (a hang lasts the broker's 5 s client timeout, and retries follow).
const faultWindow = 20 * time.Second

// runChaos injects a random fault every chaosEvery on average until ctx ends.
func (s *soak) runChaos(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.between(s.o.chaosEvery/2, s.o.chaosEvery*3/2)):
		}
		a := s.accts[s.intn(len(s.accts))]
		switch s.intn(8) {
		case 0:
			n := 1 + s.intn(3)
			s.sim.InjectFault(sim.EndpointToken, sim.Fault{Status: 500, Count: n, Grant: "refresh_token"})
			s.chaos.event("token-500", faultWindow, "next %d refreshes", n)
		case 1:
			n, ra := 1+s.intn(3), time.Duration(1+s.intn(3))*time.Second
			s.sim.InjectFault(sim.EndpointToken, sim.Fault{Status: 503, RetryAfter: ra, Count: n, Grant: "refresh_token"})
			s.chaos.event("token-503-retry-after", faultWindow, "next %d refreshes, Retry-After %v", n, ra)
		case 2:
			s.sim.InjectFault(sim.EndpointToken, sim.Fault{Hang: true, Grant: "refresh_token"})
			s.chaos.event("token-hang", faultWindow, "next refresh hangs (until the broker's 5 s client timeout)")
		case 3:
			d := s.between(time.Second, 4*time.Second)
			s.sim.StopCMS()
			w := s.chaos.event("cms-down", 0, "for %v", d)
			wg.Go(func() {
				time.Sleep(d)
				if err := s.sim.StartCMS(); err != nil {
					s.chaos.event("error", time.Nanosecond, "restarting the CMS: %v", err)
				}
				s.chaos.end(w)
			})
		case 4:
			n := 1 + s.intn(10)
			s.sim.InjectFault(sim.EndpointGraphMe, sim.Fault{Status: 429, RetryAfter: time.Second, Count: n})
			s.chaos.event("graph-429", faultWindow, "next %d /me calls", n)
		case 5:
			// A password reset: refresh tokens revoked and access tokens refused (CAE), then the
			// revocation lifted and the user signs in again where the broker asks for it.
			d := s.between(3*time.Second, 15*time.Second)
			s.audit.revoked(a.upn)
			s.sim.RevokeRefreshTokens(a.upn)
			s.sim.RevokeAccessTokens(a.upn)
			w := s.chaos.event("revoke-refresh-tokens", 0, "%s for %v, with CAE", a.upn, d)
			wg.Go(func() {
				time.Sleep(d)
				s.sim.RestoreRefreshTokens(a.upn)
				s.healSignIns()
				s.chaos.end(w)
			})
		case 6:
			s.audit.revoked(a.upn)
			s.sim.RevokeAccessTokens(a.upn)
			s.chaos.event("cae-revocation", faultWindow, "%s", a.upn)
		case 7:
			d := s.between(5*time.Second, 20*time.Second)
			s.sim.RotateSigningKey()
			s.chaos.event("key-rotation", time.Nanosecond, "old key dropped after %v", d)
			wg.Go(func() {
				time.Sleep(d)
				s.audit.dropKeys(func() { s.sim.DropOldSigningKeys() })
				s.chaos.event("key-drop", faultWindow, "old signing keys dropped")
			})
		}
	}
}

// healSignIns signs in again every account the broker says needs it (the user's part).
func (s *soak) healSignIns() {
	for _, acc := range s.broker.Accounts() {
		if acc.State != auth.StateNeedsSignIn {
			continue
		}
		for _, a := range s.accts {
			if a.id == acc.ID {
				if _, err := s.signIn(a); err != nil {
					s.chaos.event("error", time.Nanosecond, "%v", err)
				} else {
					s.reSignIns.Add(1)
				}
			}
		}
	}
}

// calm ends every fault: the run is over.
func (s *soak) calm() {
	s.sim.ClearFaults()
	for _, a := range s.accts {
		s.sim.RestoreRefreshTokens(a.upn)
	}
	_ = s.sim.StartCMS()
	s.healSignIns()
}

// stats are one measurement of the process.
type stats struct {
	Goroutines int    `json:"goroutines"`
	RSSKiB     int64  `json:"rss_kib"`
	HeapKiB    uint64 `json:"heap_inuse_kib"`
}

func (s stats) String() string {
	return fmt.Sprintf("%d goroutines, RSS %.1f MiB, heap in use %.1f MiB", s.Goroutines, float64(s.RSSKiB)/1024, float64(s.HeapKiB)/1024)
}

type statsDelta struct {
	Goroutines int   `json:"goroutines"`
	RSSKiB     int64 `json:"rss_kib"`
	HeapKiB    int64 `json:"heap_inuse_kib"`
}

func (s stats) minus(o stats) statsDelta {
	return statsDelta{s.Goroutines - o.Goroutines, s.RSSKiB - o.RSSKiB, int64(s.HeapKiB) - int64(o.HeapKiB)}
}

// sample measures after a collection, so the heap in use is what is live.
func sample() stats {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return stats{Goroutines: runtime.NumGoroutine(), RSSKiB: rssKiB(), HeapKiB: m.HeapInuse / 1024}
}

// dumpGoroutines writes the stacks of every goroutine (names and lines, no values) and a heap
// profile next to it (sizes and stacks, no contents): `go tool pprof -base` of the start and
// end profiles shows what grew.
func dumpGoroutines(path string) {
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	_ = pprof.Lookup("goroutine").WriteTo(f, 1)
	h, err := os.Create(strings.Replace(path, "goroutines-", "heap-", 1) + ".pprof")
	if err != nil {
		return
	}
	defer h.Close()
	_ = pprof.WriteHeapProfile(h)
}

func rssKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

// sampler records goroutines and RSS every 30 s while the traffic runs (samples.csv).
type sampler struct {
	mu   sync.Mutex
	all  []stats
	peak stats
}

func (p *sampler) run(ctx context.Context, out string) {
	f, err := os.Create(filepath.Join(out, "samples.csv"))
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintln(f, "elapsed_s,goroutines,rss_kib,heap_inuse_kib")
	start := time.Now()
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		st := stats{Goroutines: runtime.NumGoroutine(), RSSKiB: rssKiB(), HeapKiB: m.HeapInuse / 1024}
		fmt.Fprintf(f, "%.0f,%d,%d,%d\n", time.Since(start).Seconds(), st.Goroutines, st.RSSKiB, st.HeapKiB)
		p.mu.Lock()
		p.all = append(p.all, st)
		p.peak.Goroutines = max(p.peak.Goroutines, st.Goroutines)
		p.peak.RSSKiB = max(p.peak.RSSKiB, st.RSSKiB)
		p.peak.HeapKiB = max(p.peak.HeapKiB, st.HeapKiB)
		p.mu.Unlock()
	}
}

func (p *sampler) max() stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

// rejectedBy is the sim's count of requests refused for a missing or invalid token.
func rejectedBy(s *sim.Server) map[string]int {
	out := map[string]int{}
	for _, e := range []sim.Endpoint{sim.EndpointGraphMe, sim.EndpointCMSArticles, sim.EndpointCMSUsersMe, sim.EndpointCMSCallback} {
		out[string(e)] = s.Rejected(e)
	}
	return out
}

func diff(a, b map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range a {
		out[k] = v - b[k]
	}
	return out
}

// auditor sits between the proxy and the upstreams and checks the credential of every request
// that leaves the proxy: a bearer token (Graph, the CMS API), a Strapi JWT, or the Graph token
// of a Strapi exchange. Before the request goes: is there one, is it a JWT, is it unexpired?
// After the answer: if the upstream refused it, was that the run's own doing (a CAE or
// password-reset revocation of that user after the token was issued, or a signing key the run
// dropped), or not? Only the latter, and missing or expired credentials, count against the
// proxy.
type auditor struct {
	s    *soak
	base *http.Transport
	jwks *http.Client // reads the authority's JWKS

	mu          sync.Mutex
	revocations map[string]time.Time // upn → latest deliberate revocation
	droppedKids map[string]bool
	hashes      map[[32]byte]bool // every credential seen (for the scan), never the values
	counts      upstreamCounts
	unexplained []string // what the upstream said of refusals the run did not cause
}

type upstreamCounts struct {
	Requests           int64 `json:"requests"`
	Valid              int64 `json:"valid_and_accepted"`
	Missing            int64 `json:"missing_credential"`
	Malformed          int64 `json:"malformed_credential"`
	Expired            int64 `json:"expired_at_send"`
	RefusedCAE         int64 `json:"refused_deliberate_revocation"`
	RefusedDroppedKey  int64 `json:"refused_deliberate_key_drop"`
	RefusedUnexplained int64 `json:"refused_not_deliberate"`
	ExchangeRefused    int64 `json:"exchanges_refused_deliberate"`
	ExchangeOther      int64 `json:"exchanges_failed_not_for_the_token"`
	TransportErrors    int64 `json:"transport_errors"`
	// Unexplained describes the first refusals the run did not cause (no token material).
	Unexplained []string `json:"refused_not_deliberate_samples,omitempty"`
}

func newAuditor(s *soak, base *http.Transport) *auditor {
	return &auditor{s: s, base: base, jwks: s.sim.Client(), revocations: map[string]time.Time{}, droppedKids: map[string]bool{}, hashes: map[[32]byte]bool{}}
}

func (a *auditor) revoked(upn string) {
	a.mu.Lock()
	a.revocations[strings.ToLower(upn)] = time.Now()
	a.mu.Unlock()
}

// dropKeys records the kids JWKS lists before drop runs and no longer lists after.
func (a *auditor) dropKeys(drop func()) {
	before := a.kids()
	// Every key listed now may be the one dropped: recorded before the drop, so a refusal
	// that arrives before this function returns is already attributed.
	a.mu.Lock()
	for k := range before {
		a.droppedKids[k] = true
	}
	a.mu.Unlock()
	drop()
}

func (a *auditor) kids() map[string]bool {
	out := map[string]bool{}
	resp, err := a.jwks.Get(a.s.sim.AuthorityHost() + "/common/discovery/v2.0/keys")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	var jwks struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&jwks)
	for _, k := range jwks.Keys {
		out[k.Kid] = true
	}
	return out
}

func (a *auditor) issued() map[[32]byte]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hashes
}

func (a *auditor) snapshot() upstreamCounts {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.counts
	c.Unexplained = slices.Clone(a.unexplained)
	return c
}

// CloseIdleConnections closes the base transport's idle connections.
func (a *auditor) CloseIdleConnections() { a.base.CloseIdleConnections() }

type jwtInfo struct {
	kid   string
	upn   string
	iat   time.Time
	exp   time.Time
	entra bool
}

func parseJWT(tok string) (jwtInfo, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return jwtInfo{}, false
	}
	var h struct {
		Kid string `json:"kid"`
	}
	var c struct {
		Iss string  `json:"iss"`
		UPN string  `json:"preferred_username"`
		Iat float64 `json:"iat"`
		Exp float64 `json:"exp"`
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil || json.Unmarshal(hb, &h) != nil || json.Unmarshal(cb, &c) != nil || c.Exp == 0 {
		return jwtInfo{}, false
	}
	return jwtInfo{kid: h.Kid, upn: strings.ToLower(c.UPN), iat: time.Unix(int64(c.Iat), 0), exp: time.Unix(int64(c.Exp), 0), entra: c.Iss != ""}, true
}

// RoundTrip audits and forwards one upstream request.
func (a *auditor) RoundTrip(req *http.Request) (*http.Response, error) {
	exchange := strings.HasSuffix(req.URL.Path, "/api/auth/microsoft/callback")
	var tok string
	if exchange {
		tok = req.URL.Query().Get("access_token")
	} else if v, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok {
		tok = v
	}
	info, parsed := parseJWT(tok)
	a.mu.Lock()
	a.counts.Requests++
	switch {
	case tok == "":
		a.counts.Missing++
	case !parsed:
		a.counts.Malformed++
	case !info.exp.After(time.Now()):
		a.counts.Expired++
	}
	if tok != "" {
		a.hashes[sha256.Sum256([]byte(tok))] = true
	}
	a.mu.Unlock()

	resp, err := a.base.RoundTrip(req)
	if err != nil {
		a.mu.Lock()
		a.counts.TransportErrors++
		a.mu.Unlock()
		return resp, err
	}
	refused := resp.StatusCode == http.StatusUnauthorized
	failed := exchange && resp.StatusCode != http.StatusOK
	var reason string
	if refused || failed {
		// The upstream says why (WWW-Authenticate, the error body); for an exchange the CMS
		// passes on what Graph said of the token. Graph throttling the CMS's own /me call is
		// not a token problem.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		reason = jwtShape.ReplaceAllString(resp.Header.Get("WWW-Authenticate")+" "+string(b), "[token]")
		if exchange {
			refused = strings.Contains(reason, "answered 401")
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	rev := a.revocations[info.upn]
	switch {
	case tok == "" || !parsed || !info.exp.After(time.Now()):
		// counted above
	case failed && !refused:
		a.counts.ExchangeOther++
	case !refused:
		a.counts.Valid++
	case info.entra && strings.Contains(reason, "Signing key not found") && a.droppedKids[info.kid]:
		a.counts.RefusedDroppedKey++
	case info.entra && (strings.Contains(reason, "insufficient_claims") || strings.Contains(reason, "TokenIssuedBeforeRevocationTimestamp")) &&
		!rev.IsZero() && !info.iat.After(rev.Add(time.Second)):
		// Issued before a revocation of that user the run made (iat has whole seconds).
		if exchange {
			a.counts.ExchangeRefused++
		} else {
			a.counts.RefusedCAE++
		}
	default:
		a.counts.RefusedUnexplained++
		if len(a.unexplained) < 20 {
			a.unexplained = append(a.unexplained, fmt.Sprintf("%s %s%s: %d; token kid %s iat %s, user's last revocation %s; %s",
				time.Now().Format(time.RFC3339Nano), req.URL.Host, req.URL.Path, resp.StatusCode, info.kid,
				info.iat.Format(time.RFC3339), rev.Format(time.RFC3339Nano), firstN(reason, 400)))
		}
	}
	return resp, nil
}

func firstN(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// scanResult is what the scan for token material found.
type scanResult struct {
	Files  int      `json:"files"`
	Bytes  int64    `json:"bytes"`
	Hits   int      `json:"hits"`
	Where  []string `json:"where,omitempty"`
	Errors []string `json:"errors,omitempty"`
}

var (
	jwtShape     = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)
	refreshShape = regexp.MustCompile(`1\.A[A-Za-z0-9_-]{100,}`) // the sim's refresh tokens
)

// scanFiles reads every regular file under dirs and counts JWT-shaped strings (each checked
// against the credentials seen, by hash), the sim's refresh-token shape, and any "eyJ".
func scanFiles(dirs []string, seen map[[32]byte]bool) scanResult {
	var r scanResult
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
					r.Errors = append(r.Errors, err.Error())
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				r.Errors = append(r.Errors, err.Error())
				return nil
			}
			r.Files++
			r.Bytes += int64(len(b))
			hits := 0
			for _, m := range jwtShape.FindAll(b, -1) {
				hits++
				kind := "JWT-shaped text"
				if seen[sha256.Sum256(m)] {
					kind = "an issued token"
				}
				r.Where = append(r.Where, p+": "+kind)
			}
			for range refreshShape.FindAll(b, -1) {
				hits++
				r.Where = append(r.Where, p+": a refresh-token-shaped string")
			}
			if hits == 0 && bytes.Contains(b, []byte("eyJ")) {
				hits++
				r.Where = append(r.Where, p+": \"eyJ\"")
			}
			r.Hits += hits
			return nil
		})
		if err != nil {
			r.Errors = append(r.Errors, err.Error())
		}
	}
	if len(r.Where) > 50 {
		r.Where = r.Where[:50]
	}
	return r
}

// report is the run's result, written to report.json and printed.
type report struct {
	Seed                 uint64            `json:"seed"`
	Duration             string            `json:"duration"`
	Clients              int               `json:"clients"`
	Keychain             string            `json:"keychain"`
	Requests             int64             `json:"requests_sent"`
	ByOutcome            map[string]int64  `json:"by_outcome"`
	FailuresExplained    int64             `json:"failures_explained_by_an_injected_fault"`
	FailuresUnexplained  map[string]int64  `json:"failures_unexplained"`
	Upstream             upstreamCounts    `json:"upstream"`
	InvalidNotDeliberate int64             `json:"upstream_without_valid_token_not_deliberate"`
	SimRejected          map[string]int    `json:"sim_rejected"`
	ProxyRetries         int64             `json:"proxy_retries"`
	ProxyTokenErrors     int64             `json:"proxy_token_errors"`
	ProxyUpstreamErrors  int64             `json:"proxy_upstream_errors"`
	Refreshes            int               `json:"refreshes"`
	TokenCalls           int               `json:"token_endpoint_calls"`
	SignIns              int               `json:"sign_ins"`
	ReSignIns            int64             `json:"re_sign_ins_after_revocation"`
	Exchanges            int               `json:"strapi_exchanges"`
	Faults               map[string]int    `json:"faults"`
	Start                stats             `json:"start"`
	End                  stats             `json:"end"`
	Delta                statsDelta        `json:"delta"`
	InRunMax             stats             `json:"in_run_max"`
	Flat                 bool              `json:"flat"`
	AccountStates        map[string]string `json:"account_states"`
	Scan                 scanResult        `json:"scan"`
}

func (r report) print() {
	fmt.Printf("soak: %d requests from %d clients in %s (keychain: %s)\n", r.Requests, r.Clients, r.Duration, r.Keychain)
	keys := make([]string, 0, len(r.ByOutcome))
	for k := range r.ByOutcome {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Println("soak: outcomes (route status kind):")
	for _, k := range keys {
		fmt.Printf("  %-45s %d\n", k, r.ByOutcome[k])
	}
	fmt.Printf("soak: failures the clients saw: %d explained by an injected fault in effect; unexplained: %v\n", r.FailuresExplained, r.FailuresUnexplained)
	u := r.Upstream
	fmt.Printf("soak: upstream requests %d: valid and accepted %d; missing %d, malformed %d, expired %d; refused after a deliberate revocation %d (of which exchanges %d), after a deliberate key drop %d; refused otherwise %d; exchanges failed for another reason %d; transport errors %d\n",
		u.Requests, u.Valid, u.Missing, u.Malformed, u.Expired, u.RefusedCAE+u.ExchangeRefused, u.ExchangeRefused, u.RefusedDroppedKey, u.RefusedUnexplained, u.ExchangeOther, u.TransportErrors)
	fmt.Printf("soak: UPSTREAM REQUESTS WITHOUT A VALID TOKEN, NOT CAUSED BY A DELIBERATE REVOCATION: %d\n", r.InvalidNotDeliberate)
	for _, u := range r.Upstream.Unexplained {
		fmt.Println("  ", u)
	}
	fmt.Printf("soak: sim refusals for missing/invalid tokens: %v; proxy retries after a 401: %d\n", r.SimRejected, r.ProxyRetries)
	fmt.Printf("soak: refreshes %d (token endpoint calls %d, faulted ones included), Strapi exchanges %d, sign-ins %d (re-sign-ins after revocations %d)\n", r.Refreshes, r.TokenCalls, r.Exchanges, r.SignIns, r.ReSignIns)
	fmt.Printf("soak: faults injected: %v\n", r.Faults)
	fmt.Printf("soak: goroutines %d -> %d (delta %+d, max in run %d); RSS %.1f -> %.1f MiB (delta %+.1f MiB, max in run %.1f MiB); heap in use delta %+.1f MiB; flat: %v\n",
		r.Start.Goroutines, r.End.Goroutines, r.Delta.Goroutines, r.InRunMax.Goroutines,
		float64(r.Start.RSSKiB)/1024, float64(r.End.RSSKiB)/1024, float64(r.Delta.RSSKiB)/1024, float64(r.InRunMax.RSSKiB)/1024,
		float64(r.Delta.HeapKiB)/1024, r.Flat)
	fmt.Printf("soak: account states at the end: %v\n", r.AccountStates)
	fmt.Printf("soak: scanned %d files (%.1f MiB) for token material: %d hits\n", r.Scan.Files, float64(r.Scan.Bytes)/(1<<20), r.Scan.Hits)
	for _, w := range r.Scan.Where {
		fmt.Println("  ", w)
	}
	for _, e := range r.Scan.Errors {
		fmt.Println("   scan error:", e)
	}
}
