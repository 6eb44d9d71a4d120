package localproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/auth/clock/clocktest"
	"github.com/entra-companion/entra-companion/config"
	"github.com/entra-companion/entra-companion/sim"
)

// These tests put the real auth.Broker behind the proxy, against the simulated cloud over TLS,
// with one injected clock shared by the broker and the sim (sim.Options.Now): expiry is
// reached by moving the clock, never by sleeping.

const cmsDefaultScope = "api://entra-companion-cms/.default"

// brokerProxy is a signed-in broker (Adele, in memory) behind a started proxy whose /cms/
// route is a bearer route to the sim's CMS.
type brokerProxy struct {
	sim    *sim.Server
	clock  *clocktest.Fake
	broker *auth.Broker
	proxy  *Server
	probe  *refreshProbe
}

func newBrokerProxy(t *testing.T, firstLifetime time.Duration) *brokerProxy {
	t.Helper()
	clock := clocktest.New()
	s := sim.Start(t, sim.Options{Now: clock.Now, AccessTokenLifetime: firstLifetime, DeviceCodeInterval: time.Second})
	b, err := auth.New(context.Background(), auth.Options{
		ClientID:   sim.PublicClientID,
		Authority:  s.Authority("organizations"),
		Store:      auth.NewMemoryStore(),
		StateDir:   t.TempDir(),
		HTTPClient: s.Client(),
		Clock:      clock,
		Logger:     slog.New(slog.DiscardHandler),
		RetryDelay: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.SignIn(ctx, auth.SignInOptions{LoginHint: sim.UserAdele, OpenURL: s.Browser(sim.UserAdele)}); err != nil {
		t.Fatalf("signing in: %v", err)
	}
	probe := &refreshProbe{TokenSource: b}
	// The sim's client transport trusts its CA and allows 16 connections per host. New clones
	// and tunes it (idle pool, HTTP/2) but keeps that limit; over HTTP/2 it only bounds dials
	// in progress, so 1,000 requests go over a few dozen multiplexed connections (logged below).
	tr := s.Client().Transport.(*http.Transport)
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		probe.dials.Add(1)
		return dial(ctx, network, addr)
	}
	p := startProxy(t, Options{
		Tokens:    probe,
		Accounts:  b,
		Transport: tr,
		Routes:    []config.Route{bearerRoute("cms", "/cms/", s.CMSURL(), cmsDefaultScope)},
	})
	return &brokerProxy{sim: s, clock: clock, broker: b, proxy: p, probe: probe}
}

// refreshProbe passes Token calls to the broker and counts, for the test's log, the calls
// that took over a millisecond (they waited for the refresh rather than hitting the hot path)
// and the connections dialled to the upstream.
type refreshProbe struct {
	TokenSource
	slow  atomic.Int64
	dials atomic.Int64
}

// Token calls the broker and times the call.
func (p *refreshProbe) Token(ctx context.Context, req auth.TokenRequest) (*auth.AccessToken, error) {
	start := time.Now()
	tok, err := p.TokenSource.Token(ctx, req)
	if time.Since(start) > time.Millisecond {
		p.slow.Add(1)
	}
	return tok, err
}

// loadClient opens one keep-alive connection per concurrent request (no per-host limit).
func loadClient(t *testing.T, n int) *http.Client {
	tr := &http.Transport{MaxIdleConns: n, MaxIdleConnsPerHost: n, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// getArticles asks for the CMS's articles through the proxy; it returns an error unless the
// answer is a 200 with Strapi's {"data": [...]} body.
func getArticles(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string }
		}
		_ = json.Unmarshal(body, &e) // the proxy's own errors never carry a token
		return fmt.Errorf("status %d %s: %s", resp.StatusCode, e.Error.Code, e.Error.Message)
	}
	var v struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Data == nil {
		return fmt.Errorf("status 200 but not a list of articles (%d bytes)", len(body))
	}
	return nil
}

// TestBrokerOneRefreshAtExpiry sends 1,000 concurrent requests through the proxy at the moment
// the CMS token expires: the real broker makes exactly one refresh at the authority, every
// request succeeds, and none reaches the CMS with the expired token.
func TestBrokerOneRefreshAtExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 concurrent requests: not in -short")
	}
	const n = 1000
	cases := []struct {
		name     string
		lifetime time.Duration // of the token that expires
		why      string
	}{
		// Unused for 40 minutes, the token is not renewed in the background (only tokens used
		// in the last 30 minutes are): all requests find it expired and wait for one refresh.
		{"idle", 40 * time.Minute, "the background refresher skips a token unused for 30 minutes"},
		// Used 10 minutes ago, the token's background renewal falls due at the same instant
		// (the machine slept through it): the refresher and the requests share one refresh.
		{"renewal due", 10 * time.Minute, "the background renewal and the requests race"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newBrokerProxy(t, tc.lifetime)
			url := env.proxy.BaseURL() + "/cms/api/articles"
			c := loadClient(t, n)
			// The first request gets the CMS token (a refresh_token grant: sign-in asked for Graph).
			if err := getArticles(c, url); err != nil {
				t.Fatalf("first request: %v", err)
			}
			first, err := env.broker.TokenFor(context.Background(), "", cmsDefaultScope)
			if err != nil {
				t.Fatal(err)
			}
			// Tokens issued from now on live 2 hours. MSAL dates them from the real clock, so a
			// lifetime well beyond the jump below keeps them valid on the moved clock too.
			env.sim.SetAccessTokenLifetime(2 * time.Hour)
			env.probe.slow.Store(0)
			env.probe.dials.Store(0)
			base := env.sim.GrantCount("refresh_token")
			rejectedBase := env.sim.Rejected(sim.EndpointCMSArticles)

			start := make(chan struct{})
			errs := make(chan error, n)
			var ready, done sync.WaitGroup
			for range n {
				ready.Add(1)
				done.Add(1)
				go func() {
					defer done.Done()
					ready.Done()
					<-start
					errs <- getArticles(c, url)
				}()
			}
			ready.Wait()
			// The moment of expiry: one second past it, on the broker's and the sim's clock.
			env.clock.Advance(first.ExpiresOn.Sub(env.clock.Now()) + time.Second)
			close(start)
			done.Wait()
			close(errs)
			t.Logf("%d of %d token lookups waited over 1 ms (for the refresh); %d connections dialled to the CMS",
				env.probe.slow.Load(), n, env.probe.dials.Load())

			failed := 0
			for err := range errs {
				if err != nil {
					if failed < 5 {
						t.Errorf("request failed: %v", err)
					}
					failed++
				}
			}
			if failed > 0 {
				t.Errorf("%d of %d requests failed", failed, n)
			}
			if got := env.sim.GrantCount("refresh_token") - base; got != 1 {
				t.Errorf("%d refreshes at the authority for %d concurrent requests at expiry, want 1 (%s)", got, n, tc.why)
			}
			if got := env.sim.Rejected(sim.EndpointCMSArticles) - rejectedBase; got != 0 {
				t.Errorf("the CMS refused %d requests: the expired token was sent", got)
			}
			if got := env.sim.Count(sim.EndpointCMSArticles); got != n+1 {
				t.Errorf("the CMS saw %d requests, want %d", got, n+1)
			}
			now, err := env.broker.TokenFor(context.Background(), "", cmsDefaultScope)
			if err != nil {
				t.Fatal(err)
			}
			if now.Value == first.Value || !now.ExpiresOn.After(env.clock.Now().Add(time.Hour)) {
				t.Errorf("after the refresh the broker holds %v", now)
			}
			if a, err := env.broker.Account(""); err != nil || a.State != auth.StateReady {
				t.Errorf("account after the refresh: %+v, %v", a, err)
			}
		})
	}
}
