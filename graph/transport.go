package graph

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	khttp "github.com/microsoft/kiota-http-go"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
)

// Retry limits.
const (
	// DefaultMaxRetries is how many times a throttled (429) or unavailable (503, 504) answer is
	// retried by default.
	DefaultMaxRetries = 3
	// MaxRetryWait caps each wait, whatever Retry-After says.
	MaxRetryWait = 30 * time.Second
)

// newHTTPClient builds the SDK's HTTP client over base: Graph's default middleware (telemetry,
// /me URL replacement, redirects, compression, parameter names, user agent, header
// inspection) with kiota's retry handler replaced by ours, which runs outermost so each retry
// passes through the rest of the chain afresh.
func newHTTPClient(base *http.Client, r *retrier) *http.Client {
	opts := msgraphsdk.GetDefaultClientOptions()
	var chain []khttp.Middleware
	for _, m := range msgraphcore.GetDefaultMiddlewaresWithOptions(&opts) {
		switch m.(type) {
		case *khttp.RetryHandler, khttp.RetryHandler:
			continue // ours replaces it: one retry layer, bounded and tested
		}
		chain = append(chain, m)
	}
	chain = append([]khttp.Middleware{r}, chain...)
	var rt http.RoundTripper
	if base != nil && base.Transport != nil {
		rt = base.Transport
	} else {
		rt = khttp.GetDefaultTransport()
	}
	return &http.Client{
		Transport: khttp.NewCustomTransportWithParentTransport(rt, chain...),
		// The redirect middleware follows redirects (and drops Authorization when the host
		// changes); the client itself must not.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		// Every wait plus a minute for the requests themselves; callers' contexts end it sooner.
		Timeout: time.Duration(r.max)*MaxRetryWait + time.Minute,
	}
}

// retrier retries 429, 503 and 504 answers after their Retry-After (seconds or an HTTP date),
// at most max times per request and at most MaxRetryWait per wait.
type retrier struct {
	max   int
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

var _ khttp.Middleware = (*retrier)(nil)

type budgetKey struct{}

// withRetryBudget lowers the number of retries of the requests made with ctx (used when a wait
// was already spent on a $batch step).
func withRetryBudget(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, budgetKey{}, max(n, 0))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func retriable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// Intercept implements khttp.Middleware.
func (r *retrier) Intercept(p khttp.Pipeline, idx int, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	budget := r.max
	if b, ok := ctx.Value(budgetKey{}).(int); ok {
		budget = b
	}
	rec, _ := ctx.Value(recorderKey{}).(*recorder)
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
	}
	for attempt := 0; ; attempt++ {
		// Middlewares further down change the request in place (compression swaps the body
		// and sets Content-Encoding): give each attempt its own copy.
		try := req.Clone(ctx)
		if body != nil {
			try.Body = io.NopCloser(bytes.NewReader(body))
			try.ContentLength = int64(len(body))
		}
		if attempt > 0 {
			try.Header.Set("Retry-Attempt", strconv.Itoa(attempt))
		}
		resp, err := p.Next(try, idx)
		if err != nil {
			return resp, err
		}
		rec.observe(resp)
		if !retriable(resp.StatusCode) || attempt >= budget {
			return resp, nil
		}
		wait := retryAfter(resp.Header.Get("Retry-After"), r.now(), attempt)
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if err := r.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// retryAfter reads Retry-After (delay-seconds or an HTTP date); without one it backs off
// exponentially from one second with jitter. The result is capped at MaxRetryWait.
func retryAfter(v string, now time.Time, attempt int) time.Duration {
	var d time.Duration
	v = strings.TrimSpace(v)
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
		if secs > MaxRetryWait.Seconds() {
			return MaxRetryWait
		}
		d = time.Duration(secs * float64(time.Second))
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
		if d < 0 {
			d = 0
		}
	} else {
		d = time.Second<<min(attempt, 5) + rand.N(250*time.Millisecond)
	}
	return min(d, MaxRetryWait)
}

// recorder keeps what the transport saw of the last response of one call, for errors the SDK
// reports without a status.
type recorder struct {
	mu sync.Mutex
	st responseInfo
}

type responseInfo struct {
	status                int
	requestID, retryAfter string
	contentType           string
}

type recorderKey struct{}

func withRecorder(ctx context.Context) (context.Context, *recorder) {
	rec := &recorder{}
	return context.WithValue(ctx, recorderKey{}, rec), rec
}

func (r *recorder) observe(resp *http.Response) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.st = responseInfo{
		status:      resp.StatusCode,
		requestID:   resp.Header.Get("request-id"),
		retryAfter:  resp.Header.Get("Retry-After"),
		contentType: resp.Header.Get("Content-Type"),
	}
	r.mu.Unlock()
}

func (r *recorder) last() responseInfo {
	if r == nil {
		return responseInfo{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}
