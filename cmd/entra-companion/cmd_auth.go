package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/entra-companion/entra-companion/auth"
)

type loginOptions struct {
	deviceCode bool
	authority  string
	loginHint  string
	scopes     []string
	json       bool
	app        bool
	clientID   string
	secretIn   bool
	certFile   string
	name       string
}

func (e *env) loginCmd() *cobra.Command {
	var o loginOptions
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Sign in an account (browser, device code, or an app-only identity)",
		Long: `Sign in a Microsoft Entra ID account and keep its refresh token in the OS keychain.

By default the system browser opens the sign-in page (authorization code with PKCE and a
loopback redirect). --device-code prints a code to enter on another device instead.
--app adds an app-only identity (client-credentials grant) from a client secret read
from stdin or a certificate file; the secret or key is kept in the keychain.

Signing in the same user to another tenant (--authority https://login.microsoftonline.com/<tenant>)
adds a separate account; the first account signed in becomes the active one.`,
		Example: `  entra-companion login
  entra-companion login --device-code --json
  entra-companion login --authority https://login.microsoftonline.com/contoso.onmicrosoft.com
  printf %s "$SECRET" | entra-companion login --app --client-id 00000000-… --authority https://login.microsoftonline.com/<tenant> --secret-stdin`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return e.login(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.BoolVar(&o.deviceCode, "device-code", false, "sign in with a code entered on another device")
	f.StringVar(&o.authority, "authority", "", "authority URL, e.g. https://login.microsoftonline.com/<tenant> (default: the settings' authority)")
	f.StringVar(&o.loginHint, "login-hint", "", "username to pre-fill on the sign-in page")
	f.StringArrayVar(&o.scopes, "scope", nil, "extra scope to consent to at sign-in (repeatable)")
	f.BoolVar(&o.json, "json", false, "print JSON lines (device code, then the account)")
	f.BoolVar(&o.app, "app", false, "add an app-only identity instead of a user")
	f.StringVar(&o.clientID, "client-id", "", "with --app: the app's application (client) id")
	f.BoolVar(&o.secretIn, "secret-stdin", false, "with --app: read the client secret from stdin")
	f.StringVar(&o.certFile, "certificate", "", "with --app: PEM file with the certificate and its private key")
	f.StringVar(&o.name, "name", "", "with --app: a name to show for it")
	return cmd
}

func (e *env) login(ctx context.Context, o loginOptions) error {
	if o.app {
		return e.loginApp(ctx, o)
	}
	if o.clientID != "" || o.secretIn || o.certFile != "" {
		return usageError{errors.New("--client-id, --secret-stdin and --certificate go with --app")}
	}
	b, err := e.broker(ctx, false)
	if err != nil {
		return err
	}
	defer b.Close()
	so := auth.SignInOptions{Authority: o.authority, LoginHint: o.loginHint, Scopes: o.scopes, OpenURL: e.openURL}
	var acct auth.Account
	if o.deviceCode {
		acct, err = b.SignInDeviceCode(ctx, so, func(dc auth.DeviceCode) {
			if o.json {
				_ = writeJSON(e.stdout, struct {
					VerificationURI string `json:"verification_uri"`
					UserCode        string `json:"user_code"`
					ExpiresIn       int    `json:"expires_in"`
					Message         string `json:"message,omitempty"`
				}{dc.VerificationURI, dc.UserCode, int(dc.ExpiresIn / time.Second), dc.Message})
				return
			}
			fmt.Fprintf(e.stdout, "To sign in, open %s and enter the code %s (valid for %s).\n", dc.VerificationURI, dc.UserCode, dc.ExpiresIn.Round(time.Minute))
		})
	} else {
		if so.OpenURL == nil {
			so.OpenURL = func(u string) error {
				fmt.Fprintf(e.stderr, "Opening the sign-in page in your browser. If it does not open, visit:\n  %s\n", u)
				if err := openBrowser(u); err != nil {
					fmt.Fprintf(e.stderr, "(could not start a browser: %v)\n", err)
				}
				return nil
			}
		}
		acct, err = b.SignIn(ctx, so)
	}
	if err != nil {
		return err
	}
	return e.printAccount(acct, o.json, "Signed in")
}

func (e *env) loginApp(ctx context.Context, o loginOptions) error {
	if o.deviceCode {
		return usageError{errors.New("--device-code does not apply to --app")}
	}
	if o.clientID == "" {
		return usageError{errors.New("--app needs --client-id")}
	}
	if o.secretIn == (o.certFile != "") {
		return usageError{errors.New("--app needs exactly one of --secret-stdin and --certificate FILE")}
	}
	ao := auth.AppOptions{ClientID: o.clientID, Name: o.name}
	if o.secretIn {
		raw, err := io.ReadAll(io.LimitReader(e.stdin, 16<<10))
		if err != nil {
			return fmt.Errorf("reading the client secret from stdin: %w", err)
		}
		ao.Secret = strings.TrimSpace(string(raw))
		if ao.Secret == "" {
			return usageError{errors.New("--secret-stdin: stdin was empty")}
		}
	} else {
		raw, err := os.ReadFile(o.certFile)
		if err != nil {
			return fmt.Errorf("reading the certificate: %w", err)
		}
		ao.CertificatePEM = raw
	}
	cfg, err := e.config()
	if err != nil {
		return err
	}
	ao.Authority = o.authority
	if ao.Authority == "" {
		ao.Authority = cfg.Authority
	}
	b, err := e.broker(ctx, false)
	if err != nil {
		return err
	}
	defer b.Close()
	acct, err := b.AddApp(ctx, ao)
	if err != nil {
		return err
	}
	return e.printAccount(acct, o.json, "Added app")
}

func (e *env) printAccount(a auth.Account, asJSON bool, verb string) error {
	if asJSON {
		return writeJSON(e.stdout, a)
	}
	tenant := a.TenantID
	if a.Guest() {
		tenant += " (guest; home tenant " + a.HomeTenantID + ")"
	}
	active := ""
	if a.Active {
		active = ", active"
	}
	fmt.Fprintf(e.stdout, "%s %s in tenant %s%s.\n", verb, a.Username, tenant, active)
	return nil
}

func (e *env) accountsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "accounts",
		Short: "List the signed-in accounts",
		Long:  "List the signed-in accounts: the active one marked with *, each with its tenant, kind and state.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := e.broker(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer b.Close()
			accts := b.Accounts()
			if asJSON {
				if accts == nil {
					accts = []auth.Account{}
				}
				return writeJSON(e.stdout, accts)
			}
			if len(accts) == 0 {
				fmt.Fprintln(e.stdout, "No accounts. Sign in with: entra-companion login")
				return nil
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "\tACCOUNT\tTENANT\tKIND\tSTATE\tID")
			for _, a := range accts {
				mark := ""
				if a.Active {
					mark = "*"
				}
				tenant := a.TenantID
				if a.Guest() {
					tenant += " (guest)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", mark, a.Username, tenant, a.Kind, a.State, a.ID)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func (e *env) useCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "use ACCOUNT",
		Short: "Make an account the active one",
		Long:  "Make ACCOUNT (its username or id, as `accounts` shows) the account used when a request names none — here, in the tray app and in the proxy.",
		Args:  exactArgs(1, "ACCOUNT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := e.broker(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer b.Close()
			if err := b.SetActive(cmd.Context(), args[0]); err != nil {
				return err
			}
			a, err := b.Account("")
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Active account: %s (%s).\n", a.Username, a.TenantID)
			return nil
		},
	}
}

func (e *env) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout ACCOUNT",
		Short: "Sign an account out and delete its tokens from the keychain",
		Args:  exactArgs(1, "ACCOUNT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := e.broker(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer b.Close()
			a, err := b.Account(args[0])
			if err != nil {
				return err
			}
			if err := b.SignOut(cmd.Context(), a.ID); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Signed out %s; its tokens are deleted.\n", a.Username)
			return nil
		},
	}
}

func (e *env) tokenCmd() *cobra.Command {
	var (
		account string
		scopes  []string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print a fresh access token",
		Long: `Print a fresh access token for an account (default: the active one) and scopes
(default: Microsoft Graph's .default), like az account get-access-token.

With --json it prints {"access_token","expires_on" (Unix seconds),"account","scopes","token_type"}.`,
		Example: `  curl -H "Authorization: Bearer $(entra-companion token)" https://graph.microsoft.com/v1.0/me
  entra-companion token --account adele@contoso.com --scope api://my-api/.default --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := e.broker(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer b.Close()
			t, err := b.TokenFor(cmd.Context(), account, scopes...)
			if err != nil {
				return err
			}
			if !asJSON {
				_, err := fmt.Fprintln(e.stdout, t.Value)
				return err
			}
			a, _ := b.Account(t.AccountID)
			return writeJSON(e.stdout, struct {
				AccessToken string   `json:"access_token"`
				ExpiresOn   int64    `json:"expires_on"`
				Account     string   `json:"account"`
				Scopes      []string `json:"scopes"`
				TokenType   string   `json:"token_type"`
			}{t.Value, t.ExpiresOn.Unix(), a.Username, t.Scopes, "Bearer"})
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "account username or id (default: the active one)")
	cmd.Flags().StringArrayVar(&scopes, "scope", nil, "scope (repeatable; default: Graph's .default)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
