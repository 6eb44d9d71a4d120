package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
)

// Exit codes. They are part of the command line's interface: scripts branch on them.
const (
	exitOK             = 0 // success
	exitError          = 1 // anything not listed below
	exitUsage          = 2 // bad command line (unknown flag, missing argument)
	exitNeedsSignIn    = 3 // no account signed in, or the account must sign in again
	exitUnknownAccount = 4 // the account named is not signed in
	exitCancelled      = 5 // the user cancelled (Ctrl-C, declined the sign-in)
	exitUnavailable    = 6 // the identity provider or an API could not be reached
	exitKeychain       = 7 // the OS keychain is unavailable, locked or hung
	exitConfig         = 8 // the settings file is invalid
)

// usageError marks errors in how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// silentError carries an exit code for a failure already reported on stdout/stderr.
type silentError struct{ code int }

func (e silentError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// env is what every command shares: the streams, the global flags and the wiring hooks that
// `demo` and the tests set (an HTTP client trusting the simulated cloud's CA, say).
type env struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer

	configPath string
	verbose    bool
	log        *slog.Logger

	cfg *config.Config

	// Hooks (nil = the real thing).
	httpClient  *http.Client       // for MSAL, Graph and the proxy's upstreams
	openURL     func(string) error // opens the browser for sign-in
	stateDir    string             // the cross-process lock's directory
	memoryOnly  bool               // keep tokens in memory (demo without a keychain)
	store       auth.SecretStore   // overrides the OS keychain; set once the keychain failed
	keychainErr error              // why the OS keychain is not used
}

// Main runs the command line and returns the process's exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	return e.run(args)
}

func (e *env) run(args []string) int {
	root := e.rootCmd()
	root.SetArgs(args)
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	err := root.ExecuteContext(e.ctx)
	if err == nil {
		return exitOK
	}
	var se silentError
	if errors.As(err, &se) {
		return se.code
	}
	code := exitCode(err)
	fmt.Fprintf(e.stderr, "entra-companion: %v\n", err)
	if h := hint(err); h != "" {
		fmt.Fprintln(e.stderr, h)
	}
	return code
}

func (e *env) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "entra-companion",
		Short: "Several Microsoft Entra ID accounts, fresh tokens, and a loopback proxy that attaches them",
		Long: `Entra Companion keeps several Microsoft Entra ID (Azure AD) accounts signed in, their
refresh tokens in the OS keychain, and hands out fresh access tokens: on the command line,
from the system tray, and through a loopback proxy that attaches them to requests your own
tools send to Microsoft Graph or a CMS.

Without a command it starts the tray app.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelWarn
			if e.verbose {
				level = slog.LevelDebug
			}
			e.log = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return e.runTray(cmd.Context(), trayOptions{}) },
	}
	root.PersistentFlags().StringVar(&e.configPath, "config", "", "settings file (default: $"+config.EnvConfig+" or the user config dir's entra-companion/config.toml)")
	root.PersistentFlags().BoolVarP(&e.verbose, "verbose", "v", false, "log what happens to stderr (never tokens)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		e.loginCmd(), e.accountsCmd(), e.useCmd(), e.logoutCmd(), e.tokenCmd(),
		e.meCmd(), e.verifyCmd(), e.proxyCmd(), e.simCmd(), e.demoCmd(),
	)
	root.SetHelpCommand(&cobra.Command{Hidden: true})
	return root
}

// config loads the settings file once.
func (e *env) config() (*config.Config, error) {
	if e.cfg != nil {
		return e.cfg, nil
	}
	path, err := e.settingsPath()
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("loading settings: %w", err)
	}
	e.cfg = cfg
	return cfg, nil
}

func (e *env) settingsPath() (string, error) {
	if e.configPath != "" {
		return e.configPath, nil
	}
	return config.Path()
}

// defaultStateDir holds the lock and write counter shared by every process that uses one
// keychain service.
func defaultStateDir(service string) (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding the config directory: %w", err)
	}
	return filepath.Join(dir, "entra-companion", "state", service), nil
}

// broker opens the token broker the settings describe.
func (e *env) broker(ctx context.Context, watch bool) (*auth.Broker, error) {
	cfg, err := e.config()
	if err != nil {
		return nil, err
	}
	stateDir := e.stateDir
	if stateDir == "" {
		if stateDir, err = defaultStateDir(cfg.KeychainService); err != nil {
			return nil, err
		}
	}
	store, kerr := e.secretStore(ctx, cfg.KeychainService)
	b, err := auth.New(ctx, auth.Options{
		ClientID:      cfg.ClientID,
		Authority:     cfg.Authority,
		Scopes:        cfg.Scopes,
		DefaultScopes: []string{cfg.GraphScope()},
		Store:         store,
		Service:       cfg.KeychainService,
		StateDir:      stateDir,
		HTTPClient:    e.httpClient,
		Logger:        e.log,
		OpenURL:       e.openURL,
		Watch:         watch,
		KeychainError: kerr,
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// secretStore returns the keychain to use: the OS keychain when it answers, else (probed once
// per process, with the reason said once) one in-memory stand-in shared by every broker the
// process opens — so a process that cannot keep tokens still works, and says so.
func (e *env) secretStore(ctx context.Context, service string) (auth.SecretStore, error) {
	if e.store != nil {
		return e.store, e.keychainErr
	}
	if e.memoryOnly {
		e.store = auth.NewMemoryStore()
		return e.store, nil
	}
	k := &auth.Keyring{Service: service}
	pctx, cancel := context.WithTimeout(ctx, auth.DefaultKeychainTimeout+time.Second)
	err := auth.ProbeKeychain(pctx, k)
	cancel()
	if err == nil {
		return k, nil
	}
	e.keychainErr = fmt.Errorf("opening the keychain: %w", err)
	e.store = auth.NewMemoryStore()
	fmt.Fprintf(e.stderr, "warning: %v\nwarning: accounts signed in now live in this process's memory only and are gone when it ends; nothing is written to disk.\n", e.keychainErr)
	return e.store, e.keychainErr
}

// exitCode maps an error to the documented exit codes.
func exitCode(err error) int {
	var ue usageError
	var ce *config.Error
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, auth.ErrCancelled), errors.Is(err, context.Canceled):
		return exitCancelled
	case errors.Is(err, auth.ErrUnknownAccount):
		return exitUnknownAccount
	case errors.Is(err, auth.ErrNeedsSignIn), errors.Is(err, auth.ErrNoAccount):
		return exitNeedsSignIn
	case errors.Is(err, auth.ErrNoKeychain), errors.Is(err, auth.ErrKeychainTimeout), errors.Is(err, auth.ErrKeychainLocked):
		return exitKeychain
	case errors.Is(err, auth.ErrUnavailable), errors.Is(err, errUnavailable):
		return exitUnavailable
	case errors.As(err, &ce):
		return exitConfig
	}
	return exitError
}

// errUnavailable marks failures to reach an API (Graph, an issuer's keys).
var errUnavailable = errors.New("service unavailable")

// hint says what to do next, when the error has an obvious next step.
func hint(err error) string {
	switch {
	case errors.Is(err, auth.ErrNoAccount):
		return "Sign in with: entra-companion login"
	case errors.Is(err, auth.ErrNeedsSignIn):
		return "Sign in again with: entra-companion login"
	case errors.Is(err, auth.ErrUnknownAccount):
		return "See the signed-in accounts with: entra-companion accounts"
	case errors.Is(err, auth.ErrNoKeychain):
		return "Entra Companion keeps refresh tokens only in the OS keychain. On Linux, start a Secret Service (gnome-keyring or KeePassXC) in your session."
	case errors.Is(err, auth.ErrKeychainLocked), errors.Is(err, auth.ErrKeychainTimeout):
		return "Unlock the keychain (log in to your desktop session) and try again."
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		return "Fix the settings file, or see config/example.toml for every setting."
	}
	return ""
}

// writeJSON prints one JSON value on one line.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("expected %s, got %d argument(s)", what, len(args))}
		}
		return nil
	}
}

func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", strings.Join(args, " "))}
	}
	return nil
}
