package ui

import (
	"context"
	"log/slog"

	"fyne.io/fyne/v2"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
	"github.com/entra-companion/entra-companion/graph/profile"
	"github.com/entra-companion/entra-companion/localproxy"
)

// Accounts is what the UI needs from the account broker. It is declared here, small, so that
// a trivial fake can test the windows. Implementations must be safe for concurrent use; the UI
// calls every method from a goroutine of its own, never from Fyne's main goroutine, except
// Accounts, which must answer from memory.
type Accounts interface {
	// Accounts lists the signed-in accounts.
	Accounts() []auth.Account
	// SetActive makes an account (ID or username) the one used when a request names none.
	SetActive(ctx context.Context, account string) error
	// SignIn signs a user in with the system browser; cancelling ctx abandons the sign-in.
	SignIn(ctx context.Context, opts auth.SignInOptions) (auth.Account, error)
	// SignInDeviceCode signs a user in with a device code; show is called once the code is
	// known. Cancelling ctx abandons the sign-in.
	SignInDeviceCode(ctx context.Context, opts auth.SignInOptions, show func(auth.DeviceCode)) (auth.Account, error)
	// SignOut removes an account and its tokens.
	SignOut(ctx context.Context, account string) error
	// Token returns a fresh access token.
	Token(ctx context.Context, req auth.TokenRequest) (*auth.AccessToken, error)
	// Subscribe calls fn on every account change until cancel is called. fn may be called
	// from any goroutine.
	Subscribe(fn func(auth.Event)) (cancel func())
}

// Directory is what the UI needs from Graph: who an account is. Declared here so that a fake
// can stand in for Graph.
type Directory interface {
	// Cached returns the last snapshot read for the account, if any, without waiting.
	Cached(account string) (*profile.Snapshot, bool)
	// Refresh reads the account's profile, photo, organization and groups from Graph.
	Refresh(ctx context.Context, account string) (*profile.Snapshot, error)
}

// Proxy is what the UI needs from the loopback proxy. Declared here so that a fake can stand
// in for the server.
type Proxy interface {
	// Running reports whether the proxy is listening.
	Running() bool
	// BaseURL is the proxy's base URL, e.g. http://127.0.0.1:8631.
	BaseURL() string
	// Start starts listening; it returns once the listener is open.
	Start() error
	// Stop stops the proxy, waiting for requests in flight until ctx ends.
	Stop(ctx context.Context) error
	// Routes lists the configured routes.
	Routes() []localproxy.RouteInfo
	// Subscribe calls fn for every request served until cancel is called. fn may be called
	// from any goroutine. Entries carry no tokens.
	Subscribe(fn func(localproxy.LogEntry)) (cancel func())
}

// Settings loads and saves the settings file. Declared here so that a fake can stand in for
// the file.
type Settings interface {
	// Load reads the settings, with every default filled in.
	Load() (*config.Config, error)
	// Save writes the settings atomically; it may refuse an invalid config.
	Save(*config.Config) error
}

// Deps is everything the UI works with. Accounts is required; a nil Directory, Proxy or
// Settings hides what depends on it.
type Deps struct {
	// Accounts is the account broker.
	Accounts Accounts
	// Directory reads profiles from Graph.
	Directory Directory
	// Proxy is the loopback proxy.
	Proxy Proxy
	// Settings is the settings file.
	Settings Settings
	// Notify shows a desktop notification; nil uses the app's SendNotification.
	Notify func(title, body string)
	// OpenURL opens a web page in the system browser; nil uses the app's OpenURL.
	OpenURL func(string) error
	// Clipboard receives copied values; nil uses the app's clipboard.
	Clipboard fyne.Clipboard
	// Logger receives the UI's log lines (never a token); nil uses slog.Default().
	Logger *slog.Logger
	// Demo adds " (demo)" to every window title (the app runs against the simulated cloud).
	Demo bool
}
