package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
	"github.com/entra-companion/entra-companion/localproxy"
)

// proxyKeyItem is the keychain item that holds the proxy's client key.
const proxyKeyItem = "proxy-key"

func (e *env) proxyCmd() *cobra.Command {
	var (
		listen   string
		printKey bool
	)
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the loopback proxy that attaches fresh tokens (headless)",
		Long: `Run the loopback reverse proxy without the tray, until interrupted. Requests to
http://127.0.0.1:8631/<route prefix>/… go to the route's upstream with a fresh token of the
active account (or the one named by the X-Entra-Account header, or pinned on the route).
Routes, allowed origins and the client key requirement come from the settings file.

With require_key = true every request must carry X-Entra-Proxy-Key; --print-key prints that
key (creating it in the keychain if needed) and exits.`,
		Example: `  entra-companion proxy
  curl http://127.0.0.1:8631/graph/v1.0/me
  curl -H 'X-Entra-Account: alex@fabrikam.com' http://127.0.0.1:8631/cms/api/articles`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := e.config()
			if err != nil {
				return err
			}
			if printKey {
				key, err := e.proxyKey(true)
				if err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, key)
				return nil
			}
			b, err := e.broker(ctx, true)
			if err != nil {
				return err
			}
			defer b.Close()
			if listen != "" {
				cfg = cfg.Clone()
				cfg.Proxy.Listen = listen
			}
			pc := e.newProxyControl(cfg, b)
			if err := pc.Start(); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Proxy listening on %s (Ctrl-C stops it)\n", pc.BaseURL())
			for _, r := range pc.Routes() {
				fmt.Fprintf(e.stdout, "  %s%s -> %s (%s)\n", pc.BaseURL(), r.Prefix, r.Upstream, r.Auth)
			}
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return pc.Stop(sctx)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "loopback address to listen on (default: the settings' proxy.listen, 127.0.0.1:8631)")
	cmd.Flags().BoolVar(&printKey, "print-key", false, "print the client key (X-Entra-Proxy-Key) and exit")
	return cmd
}

// proxyKey returns the proxy's client key from the keychain, creating one if asked.
func (e *env) proxyKey(create bool) (string, error) {
	cfg, err := e.config()
	if err != nil {
		return "", err
	}
	store := e.store
	if store == nil {
		store = &auth.Keyring{Service: cfg.KeychainService}
	}
	key, err := store.Get(proxyKeyItem)
	if err == nil && key != "" {
		return key, nil
	}
	if err != nil && !errors.Is(err, auth.ErrSecretNotFound) {
		return "", fmt.Errorf("reading the proxy key: %w", err)
	}
	if !create {
		return "", fmt.Errorf("reading the proxy key: %w", auth.ErrSecretNotFound)
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	key = base64.RawURLEncoding.EncodeToString(raw[:])
	if err := store.Set(proxyKeyItem, key); err != nil {
		return "", fmt.Errorf("saving the proxy key: %w", err)
	}
	return key, nil
}

// proxyControl runs the proxy for the tray and the proxy command: it can be stopped and
// started again (a new localproxy.Server each time), and its request log outlives restarts.
type proxyControl struct {
	e   *env
	cfg *config.Config
	b   *auth.Broker
	log *slog.Logger

	mu      sync.Mutex
	srv     *localproxy.Server
	unsub   func()
	routes  []localproxy.RouteInfo
	baseURL string

	subMu sync.Mutex
	subs  map[int]func(localproxy.LogEntry)
	next  int
}

func (e *env) newProxyControl(cfg *config.Config, b *auth.Broker) *proxyControl {
	return &proxyControl{e: e, cfg: cfg, b: b, log: e.log, subs: map[int]func(localproxy.LogEntry){}}
}

func (p *proxyControl) options() (localproxy.Options, error) {
	o := localproxy.Options{
		Listen:         p.cfg.Proxy.Listen,
		AllowedOrigins: p.cfg.Proxy.AllowedOrigins,
		Routes:         p.cfg.Proxy.Routes,
		GraphScopes:    auth.NewScopes(p.cfg.GraphScope()),
		Tokens:         p.b,
		Accounts:       p.b,
		Logger:         p.log,
	}
	if p.e.httpClient != nil && p.e.httpClient.Transport != nil {
		o.Transport = p.e.httpClient.Transport
	}
	if p.cfg.Proxy.RequireKey {
		key, err := p.e.proxyKey(true)
		if err != nil {
			return o, err
		}
		o.Key = key
	}
	return o, nil
}

// Start starts the proxy (a no-op when it runs).
func (p *proxyControl) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		return nil
	}
	o, err := p.options()
	if err != nil {
		return fmt.Errorf("starting the proxy: %w", err)
	}
	srv, err := localproxy.New(o)
	if err != nil {
		return fmt.Errorf("starting the proxy: %w", err)
	}
	if err := srv.Start(); err != nil {
		if strings.Contains(err.Error(), "address already in use") {
			return fmt.Errorf("starting the proxy: %w (is another entra-companion running? set proxy.listen to another port)", err)
		}
		return fmt.Errorf("starting the proxy: %w", err)
	}
	p.srv, p.routes, p.baseURL = srv, srv.Routes(), srv.BaseURL()
	p.unsub = srv.Subscribe(p.fanOut)
	return nil
}

// Stop stops the proxy, letting requests in flight finish until ctx ends.
func (p *proxyControl) Stop(ctx context.Context) error {
	p.mu.Lock()
	srv, unsub := p.srv, p.unsub
	p.srv, p.unsub = nil, nil
	p.mu.Unlock()
	if srv == nil {
		return nil
	}
	unsub()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stopping the proxy: %w", err)
	}
	return nil
}

// Running reports whether the proxy listens.
func (p *proxyControl) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.srv != nil
}

// BaseURL is the proxy's address, or the configured one while stopped.
func (p *proxyControl) BaseURL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.baseURL != "" {
		return p.baseURL
	}
	return "http://" + p.cfg.Proxy.Listen
}

// Routes lists the routes.
func (p *proxyControl) Routes() []localproxy.RouteInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.routes != nil {
		return p.routes
	}
	var out []localproxy.RouteInfo
	for _, r := range p.cfg.Proxy.Routes {
		out = append(out, localproxy.RouteInfo{Name: r.Name, Prefix: r.Prefix, Upstream: r.Upstream, Auth: r.Auth, Scopes: r.Scopes, Account: r.Account})
	}
	return out
}

// Subscribe receives every request the proxy serves, across restarts.
func (p *proxyControl) Subscribe(fn func(localproxy.LogEntry)) (cancel func()) {
	p.subMu.Lock()
	id := p.next
	p.next++
	p.subs[id] = fn
	p.subMu.Unlock()
	return func() {
		p.subMu.Lock()
		delete(p.subs, id)
		p.subMu.Unlock()
	}
}

func (p *proxyControl) fanOut(le localproxy.LogEntry) {
	p.subMu.Lock()
	fns := make([]func(localproxy.LogEntry), 0, len(p.subs))
	for _, f := range p.subs {
		fns = append(fns, f)
	}
	p.subMu.Unlock()
	for _, f := range fns {
		f(le)
	}
}
