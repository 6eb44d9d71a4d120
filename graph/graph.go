package graph

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	abs "github.com/microsoft/kiota-abstractions-go"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	azauth "github.com/microsoftgraph/msgraph-sdk-go-core/authentication"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"golang.org/x/sync/singleflight"

	"github.com/entra-companion/entra-companion/auth/jwt"
	"github.com/entra-companion/entra-companion/graph/profile"
)

// Credentials is what graph needs from auth; auth.Broker satisfies it. It is declared here so
// that tests can pass a trivial implementation.
type Credentials interface {
	// Credential returns the token credential of an account ("" = the active one). Its
	// GetToken is called for every request, so it must answer from memory when it can.
	Credential(account string) azcore.TokenCredential
	// IDTokenClaims returns the claims of the account's id token (for the groups-claim
	// fallback and the home tenant).
	IDTokenClaims(account string) (jwt.Claims, error)
}

// Cloud is a Microsoft cloud with its own Graph endpoint.
type Cloud string

// Clouds.
const (
	// CloudGlobal is the worldwide cloud (graph.microsoft.com).
	CloudGlobal Cloud = "global"
	// CloudUSGov is Azure US Government (graph.microsoft.us).
	CloudUSGov Cloud = "usgov"
	// CloudChina is Azure operated by 21Vianet (microsoftgraph.chinacloudapi.cn).
	CloudChina Cloud = "china"
)

// GraphURL returns the cloud's Graph v1.0 base URL ("" for an unknown cloud; "" is global).
func (c Cloud) GraphURL() string {
	switch c {
	case CloudGlobal, "":
		return "https://graph.microsoft.com/v1.0"
	case CloudUSGov:
		return "https://graph.microsoft.us/v1.0"
	case CloudChina:
		return "https://microsoftgraph.chinacloudapi.cn/v1.0"
	}
	return ""
}

// graphHosts are Graph's own hosts in every cloud: the SDK attaches tokens only to listed hosts.
var graphHosts = []string{
	"graph.microsoft.com", "graph.microsoft.us", "dod-graph.microsoft.us",
	"microsoftgraph.chinacloudapi.cn", "canary.graph.microsoft.com",
}

// Options configures a Client.
type Options struct {
	// BaseURL is Graph's v1.0 base URL; "" means the Cloud's. Tests use the simulated
	// cloud's, e.g. https://127.0.0.1:PORT/v1.0. Must be https (http only on loopback).
	BaseURL string
	// Cloud selects the Graph endpoint and the token audience; "" means CloudGlobal.
	Cloud Cloud
	// Credentials gives each account's token credential and id token claims. Required.
	Credentials Credentials
	// HTTPClient supplies the base transport (e.g. one that trusts a test CA); nil means
	// the SDK's default transport. Its other settings are not used.
	HTTPClient *http.Client
	// MaxRetries is how many times a 429 or 503 answer is retried after its Retry-After
	// (each wait capped at MaxRetryWait); 0 means DefaultMaxRetries, negative none.
	MaxRetries int
	// Now returns the current time (for Snapshot.ReadAt); nil means time.Now.
	Now func() time.Time
}

// Client reads account information from Graph. It is safe for concurrent use.
type Client struct {
	base   string
	scopes []string
	hosts  []string
	creds  Credentials
	http   *http.Client
	now    func() time.Time
	retry  *retrier
	// pageSize is the $top of transitiveMemberOf (tests lower it to page more).
	pageSize int

	mu       sync.Mutex
	accounts map[string]*accountState
	group    singleflight.Group
}

// accountState is one account's SDK client and cached snapshot.
type accountState struct {
	key  string
	sdk  *msgraphsdk.GraphServiceClient
	mu   sync.Mutex
	snap *profile.Snapshot
}

var registerOnce sync.Once

// sdkMu guards msgraph-sdk-go's package-level state: NewGraphServiceClient writes a variable
// (store.BackingStoreFactoryInstance) that every model constructor reads while parsing an
// answer. Reads hold it shared; creating an SDK client holds it alone.
var sdkMu sync.RWMutex

// New returns a Client. It makes no request.
func New(opts Options) (*Client, error) {
	if opts.Credentials == nil {
		return nil, errors.New("graph: no credentials given")
	}
	cloudURL := opts.Cloud.GraphURL()
	if cloudURL == "" {
		return nil, fmt.Errorf("graph: unknown cloud %q (want global, usgov or china)", opts.Cloud)
	}
	base := strings.TrimRight(opts.BaseURL, "/")
	if base == "" {
		base = cloudURL
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("graph: base URL %q is not an absolute URL", opts.BaseURL)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		return nil, fmt.Errorf("graph: base URL %s must be https (http is allowed on loopback only)", base)
	}
	origin, _ := url.Parse(cloudURL)
	hosts := append([]string{strings.ToLower(u.Hostname())}, graphHosts...)
	maxRetries := opts.MaxRetries
	switch {
	case maxRetries == 0:
		maxRetries = DefaultMaxRetries
	case maxRetries < 0:
		maxRetries = 0
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	r := &retrier{max: maxRetries, now: now, sleep: sleepCtx}
	registerOnce.Do(func() {
		// Later pages of a page iterator are sent with the error mappings registered under
		// this key: register Graph's error type so their errors carry code and message.
		_ = msgraphcore.RegisterError(msgraphcore.PageIteratorErrorRegistryKey, abs.ErrorMappings{
			"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue,
		})
	})
	return &Client{
		base:     base,
		scopes:   []string{origin.Scheme + "://" + origin.Host + "/.default"},
		hosts:    hosts,
		creds:    opts.Credentials,
		http:     newHTTPClient(opts.HTTPClient, r),
		now:      now,
		retry:    r,
		pageSize: groupsPageSize,
		accounts: map[string]*accountState{},
	}, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// accountKey names an account's cache entry. "" (the active account) is resolved to the
// identity of its id token, so that switching the active account never serves the previous
// account's snapshot.
func (c *Client) accountKey(account string) string {
	if account != "" {
		return "account:" + account
	}
	if claims, err := c.creds.IDTokenClaims(""); err == nil {
		if oid, tid := claims.ObjectID(), claims.TenantID(); oid != "" && tid != "" {
			return "active:" + oid + "." + tid
		}
	}
	return "active"
}

// state returns the account's state, building its SDK client the first time.
func (c *Client) state(account string) (*accountState, error) {
	key := c.accountKey(account)
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.accounts[key]; ok && st.sdk != nil {
		return st, nil
	}
	cred := c.creds.Credential(account)
	if cred == nil {
		return nil, fmt.Errorf("graph: no credential for account %q", account)
	}
	auth, err := azauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(markingCredential{cred}, c.scopes, c.hosts)
	if err != nil {
		return nil, fmt.Errorf("graph: setting up authentication: %w", err)
	}
	adapter, err := msgraphsdk.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, nil, nil, c.http)
	if err != nil {
		return nil, fmt.Errorf("graph: setting up the request adapter: %w", err)
	}
	adapter.SetBaseUrl(c.base)
	sdkMu.Lock()
	sdk := msgraphsdk.NewGraphServiceClient(adapter)
	sdkMu.Unlock()
	st := c.accounts[key]
	if st == nil {
		st = &accountState{key: key}
		c.accounts[key] = st
	}
	st.sdk = sdk
	return st, nil
}

// markingCredential marks the credential's errors so they are not taken for Graph's.
type markingCredential struct{ azcore.TokenCredential }

func (m markingCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := m.TokenCredential.GetToken(ctx, opts)
	if err != nil {
		return tok, &credError{err}
	}
	return tok, nil
}

// Cached returns the account's last snapshot without reading Graph (for "" it only asks the
// Credentials for the active account's id token claims). The snapshot is shared and must not
// be modified.
func (c *Client) Cached(account string) (*profile.Snapshot, bool) {
	key := c.accountKey(account)
	c.mu.Lock()
	st := c.accounts[key]
	c.mu.Unlock()
	if st == nil {
		return nil, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.snap, st.snap != nil
}

// Snapshot returns the account's cached snapshot, reading it from Graph if there is none.
// The snapshot is shared and must not be modified.
func (c *Client) Snapshot(ctx context.Context, account string) (*profile.Snapshot, error) {
	if s, ok := c.Cached(account); ok {
		return s, nil
	}
	return c.Refresh(ctx, account)
}

// Refresh reads everything about the account from Graph again and caches it. Concurrent calls
// for one account share one read; a caller whose ctx ends stops waiting, while the read goes on
// for the others (and the cache). The snapshot is shared and must not be modified.
func (c *Client) Refresh(ctx context.Context, account string) (*profile.Snapshot, error) {
	st, err := c.state(account)
	if err != nil {
		return nil, err
	}
	ch := c.group.DoChan(st.key, func() (any, error) {
		// Detached from the first caller, bounded on its own.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.http.Timeout*2)
		defer cancel()
		sdkMu.RLock()
		snap, err := c.readSnapshot(rctx, st, account)
		sdkMu.RUnlock()
		if err != nil {
			return nil, err
		}
		st.mu.Lock()
		st.snap = snap
		st.mu.Unlock()
		return snap, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*profile.Snapshot), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("reading the account from Graph: %w", ctx.Err())
	}
}

// Profile reads the account's /me.
func (c *Client) Profile(ctx context.Context, account string) (*profile.Profile, error) {
	st, err := c.state(account)
	if err != nil {
		return nil, err
	}
	sdkMu.RLock()
	defer sdkMu.RUnlock()
	return c.readProfile(ctx, st)
}

// Photo reads the account's profile photo; a user without one gets nil and no error.
func (c *Client) Photo(ctx context.Context, account string) (*profile.Photo, error) {
	st, err := c.state(account)
	if err != nil {
		return nil, err
	}
	sdkMu.RLock()
	defer sdkMu.RUnlock()
	return c.readPhoto(ctx, st)
}

// Organization reads the tenant the account's tokens are issued in.
func (c *Client) Organization(ctx context.Context, account string) (*profile.Organization, error) {
	st, err := c.state(account)
	if err != nil {
		return nil, err
	}
	sdkMu.RLock()
	defer sdkMu.RUnlock()
	return c.readOrganization(ctx, st)
}

// Groups reads every group and directory role the account is a transitive member of. When
// Graph refuses for want of GroupMember.Read.All, it returns a *profile.ConsentError together
// with the groups of the id token's groups claim (ids only, KindUnknown); on other errors,
// with the groups read before the failure.
func (c *Client) Groups(ctx context.Context, account string) ([]profile.Group, error) {
	st, err := c.state(account)
	if err != nil {
		return nil, err
	}
	sdkMu.RLock()
	groups, err := c.readGroups(ctx, st, nil)
	sdkMu.RUnlock()
	if errors.Is(err, profile.ErrConsent) {
		return c.claimGroups(account), err
	}
	return groups, err
}
