package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
	"github.com/entra-companion/entra-companion/sim"
)

// demoService is the keychain service of the demo's accounts, apart from real ones.
const demoService = "entra-companion-demo"

func (e *env) demoCmd() *cobra.Command {
	var signIn []string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Try the tray app against a built-in simulated Microsoft cloud",
		Long: `Start the tray app against a simulated Microsoft cloud running in this process: two
tenants (Contoso and Fabrikam), five users (one a guest, one without a photo, one in 260
groups), Microsoft Graph and a Strapi-like CMS — so you can try everything without a tenant.

"Add account…" opens the simulated sign-in page in your browser; pick a user there.
--sign-in signs users in at start (adele, megan, grady, alex, or a full UPN).
The demo uses its own settings, state and keychain service (` + demoService + `); its
accounts are signed out and its files removed when it ends.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.runDemo(cmd.Context(), signIn)
		},
	}
	cmd.Flags().StringArrayVar(&signIn, "sign-in", nil, "sign this simulated user in at start (repeatable): adele, megan, grady, alex, guest, or a UPN")
	return cmd
}

// demoUser maps the short names of --sign-in to simulated users (and the tenant to sign in to).
func demoUser(name string) (upn, tenant string) {
	switch strings.ToLower(name) {
	case "adele":
		return sim.UserAdele, "organizations"
	case "megan":
		return sim.UserMegan, "organizations"
	case "grady":
		return sim.UserGrady, "organizations"
	case "alex":
		return sim.UserAlex, "organizations"
	case "guest", "adele-guest":
		return sim.UserAdele, sim.TenantFabrikam
	}
	return name, "organizations"
}

// demoConfig is the settings of a demo against s.
func demoConfig(s *sim.Server) *config.Config {
	cfg := config.Default()
	cfg.ClientID = sim.PublicClientID
	cfg.Authority = strings.TrimSuffix(s.Authority("organizations"), "/")
	cfg.GraphURL = s.GraphURL()
	cfg.Scopes = []string{"GroupMember.Read.All"}
	cfg.KeychainService = demoService
	cfg.Proxy.Listen = config.DefaultListen
	if ln, err := net.Listen("tcp", config.DefaultListen); err == nil {
		_ = ln.Close()
	} else {
		cfg.Proxy.Listen = "127.0.0.1:0" // the default port is taken (a real entra-companion?)
	}
	graphOrigin := strings.TrimSuffix(s.GraphURL(), "/v1.0")
	cfg.Proxy.Routes = []config.Route{
		{Name: "graph", Prefix: "/graph/", Upstream: graphOrigin + "/", Scopes: []string{cfg.GraphScope()}, Auth: config.AuthBearer},
		{Name: "cms", Prefix: "/cms/", Upstream: s.CMSURL() + "/", Scopes: []string{sim.CMSAudience + "/.default"}, Auth: config.AuthBearer},
		{Name: "strapi", Prefix: "/strapi/", Upstream: s.CMSURL() + "/", Auth: config.AuthStrapi},
	}
	return cfg
}

func (e *env) runDemo(ctx context.Context, signIn []string) error {
	s, err := sim.New(sim.Options{PagesOnHTTP: true, DeviceCodeInterval: 2 * time.Second})
	if err != nil {
		return fmt.Errorf("starting the simulated cloud: %w", err)
	}
	defer s.Close()
	dir, err := os.MkdirTemp("", "entra-companion-demo-")
	if err != nil {
		return fmt.Errorf("creating the demo's folder: %w", err)
	}
	defer os.RemoveAll(dir)
	cfg := demoConfig(s)
	e.configPath = filepath.Join(dir, "config.toml")
	if err := config.Save(e.configPath, cfg); err != nil {
		return fmt.Errorf("writing the demo's settings: %w", err)
	}
	e.cfg = nil
	e.httpClient = s.Client()
	e.stateDir = filepath.Join(dir, "state")

	// Accounts of an earlier demo that ended abruptly point at a simulated cloud that is gone.
	e.signOutAll(ctx)
	defer e.signOutAll(context.WithoutCancel(ctx))

	if len(signIn) > 0 {
		b, err := e.broker(ctx, false)
		if err != nil {
			return err
		}
		for _, name := range signIn {
			upn, tenant := demoUser(name)
			if _, err := b.SignIn(ctx, auth.SignInOptions{Authority: s.Authority(tenant), LoginHint: upn, OpenURL: s.Browser(upn)}); err != nil {
				b.Close()
				return fmt.Errorf("signing in %s: %w", name, err)
			}
		}
		b.Close()
	}
	fmt.Fprintf(e.stderr, "Demo: simulated cloud at %s (Graph %s, CMS %s); settings in %s\n", s.AuthorityHost(), s.GraphURL(), s.CMSURL(), e.configPath)
	return e.runTray(ctx, trayOptions{demo: true})
}

// signOutAll removes every account of the current settings' keychain service (the demo's).
func (e *env) signOutAll(ctx context.Context) {
	b, err := e.broker(ctx, false)
	if err != nil {
		return
	}
	defer b.Close()
	for _, a := range b.Accounts() {
		_ = b.SignOut(ctx, a.ID)
	}
}
