package localproxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
)

// Run: go test -run '^$' -bench . -benchmem ./localproxy/
//
// BenchmarkProxyBearer and BenchmarkStockReverseProxy drive the same 1 KiB upstream with the
// same client (16 concurrent requests on 2 cores, keep-alive) so their req/s compare directly.

// staticTokens returns one 2 KB token: the broker's hot path (a map hit) without the broker.
type staticTokens struct{ tok *auth.AccessToken }

func (s staticTokens) Token(context.Context, auth.TokenRequest) (*auth.AccessToken, error) {
	return s.tok, nil
}

func newStaticTokens() staticTokens {
	v := "eyJ" + strings.Repeat("x", 2045)
	return staticTokens{&auth.AccessToken{Value: v, Header: "Bearer " + v, ExpiresOn: time.Now().Add(time.Hour), AccountID: "id-adele"}}
}

func benchUpstream(b *testing.B) *httptest.Server {
	body := []byte(strings.Repeat("a", 1024))
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	b.Cleanup(up.Close)
	return up
}

// benchClient is the load client of both benchmarks.
func benchClient(b *testing.B) *http.Client {
	tr := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func load(b *testing.B, c *http.Client, target string) {
	b.ReportAllocs()
	b.SetParallelism(8)
	// Warm the connection pools.
	for range 32 {
		resp, err := c.Get(target)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(target)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || n != 1024 {
				b.Errorf("status %d, %d bytes", resp.StatusCode, n)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkProxyBearer measures the proxy (guards, route match, token from the TokenSource,
// Authorization attached, access log at a level that discards) over loopback.
func BenchmarkProxyBearer(b *testing.B) {
	up := benchUpstream(b)
	s, err := New(Options{
		Listen: "127.0.0.1:0",
		Tokens: newStaticTokens(),
		Logger: discardLogger,
		Routes: []config.Route{
			bearerRoute("graph", "/graph/", "https://graph.microsoft.com/v1.0", "User.Read"),
			bearerRoute("cms", "/cms/", up.URL, "api://cms/.default"),
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Shutdown(context.Background()) })
	load(b, benchClient(b), s.BaseURL()+"/cms/api/articles")
}

// BenchmarkStockReverseProxy is the baseline: a bare httputil.ReverseProxy that sets a fixed
// 2 KB Authorization header, with its default transport and buffers.
func BenchmarkStockReverseProxy(b *testing.B) {
	up := benchUpstream(b)
	target, _ := url.Parse(up.URL)
	authz := newStaticTokens().tok.Header
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Header.Set("Authorization", authz)
	}}
	srv := httptest.NewServer(rp)
	b.Cleanup(srv.Close)
	load(b, benchClient(b), srv.URL+"/cms/api/articles")
}

// BenchmarkHotPath is the proxy's own per-request work: guards, route match, token lookup and
// header attach. It must not allocate.
func BenchmarkHotPath(b *testing.B) {
	s, err := New(Options{
		Listen: "127.0.0.1:8631",
		Tokens: newStaticTokens(),
		Logger: discardLogger,
		Routes: []config.Route{
			bearerRoute("graph", "/graph/", "https://graph.microsoft.com/v1.0", "User.Read"),
			bearerRoute("graph-beta", "/graph/beta/", "https://graph.microsoft.com/beta", "User.Read"),
			bearerRoute("cms", "/cms/", "http://localhost:1337", "api://cms/.default"),
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8631/cms/api/articles?x=1", nil)
	req.Header.Set("Origin", "http://localhost:3000")
	out := http.Header{"Accept": {"*/*"}}
	ex := &exchange{Context: context.Background()}
	b.ReportAllocs()
	for b.Loop() {
		if !validHost(req.Host, s.expectedPort(req)) || !validOrigin(req.Header["Origin"][0], s.origins) || !pathOK(req.URL.Path, req.URL.RawPath) {
			b.Fatal("refused")
		}
		rt := s.match(req.URL.Path)
		ex.route, ex.account = rt, rt.account
		hdr, err := s.credential(ex, ex, false, "")
		if err != nil {
			b.Fatal(err)
		}
		out[headerAuthorization] = hdr
	}
}
