// Command benchproxy is the load benchmark behind scripts/bench-proxy: it compares the
// loopback proxy with a bare httputil.ReverseProxy and nginx on one upstream, each contender a
// process of its own so that its CPU time and peak memory can be read from /proc.
//
//	benchproxy upstream                       1 KiB answers; paths ending in /big stream a large body
//	benchproxy stock -upstream URL -header-bytes N
//	                                          a bare httputil.ReverseProxy adding a fixed Authorization header
//	benchproxy ours -upstream URL             localproxy.Server with a real auth.Broker, signed in to an
//	                                          in-process simulated cloud
//	benchproxy run [flags]                    starts all of the above (and nginx), drives them with wrk and
//	                                          curl, and prints the tables
//
// Each server prints one line, "listening URL [header_bytes=N]", then serves until it gets
// SIGINT or SIGTERM (or, with -watch-stdin, until its standard input closes). It lives under
// scripts/ and is never imported.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
	"github.com/entra-companion/entra-companion/localproxy"
	"github.com/entra-companion/entra-companion/sim"
)

// benchPrefix is the proxy route's prefix; every contender is loaded on paths under it.
const benchPrefix = "/up/"

// cmsScope is the scope of the token our proxy attaches (the sim's CMS API).
const cmsScope = sim.CMSAudience + "/.default"

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "upstream":
		err = runUpstream(os.Args[2:])
	case "stock":
		err = runStock(os.Args[2:])
	case "ours":
		err = runOurs(os.Args[2:])
	case "run":
		err = runBench(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchproxy:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchproxy upstream|stock|ours|run [flags] (see scripts/bench-proxy)")
	os.Exit(2)
}

// serverFlags are the flags every server subcommand has.
type serverFlags struct {
	listen     string
	watchStdin bool
}

func (f *serverFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.listen, "listen", "127.0.0.1:0", "loopback address to listen on")
	fs.BoolVar(&f.watchStdin, "watch-stdin", false, "exit when standard input closes (the driver went away)")
}

// listenLoopback listens on a loopback address only.
func listenLoopback(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("listen address %q is not a loopback IP", addr)
	}
	return net.Listen("tcp", addr)
}

// serveUntilDone serves srv on ln until SIGINT/SIGTERM (or stdin EOF with watch), then shuts
// it down.
func serveUntilDone(srv *http.Server, ln net.Listener, watch bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if watch {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	return nil
}

// runUpstream serves 1 KiB bodies, and a -big-bytes body on paths ending in /big, streamed
// from one buffer.
func runUpstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	var sf serverFlags
	sf.register(fs)
	big := fs.Int64("big-bytes", 1<<30, "size of the body served on paths ending in /big")
	fs.Parse(args)
	small := []byte(strings.Repeat("a", 1024))
	chunk := make([]byte, 256<<10)
	for i := range chunk {
		chunk[i] = byte('a' + i%26)
	}
	smallLen := strconv.Itoa(len(small))
	bigLen := strconv.FormatInt(*big, 10)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr["Content-Type"] = []string{"application/octet-stream"}
		if !strings.HasSuffix(r.URL.Path, "/big") {
			hdr["Content-Length"] = []string{smallLen}
			w.Write(small)
			return
		}
		hdr["Content-Length"] = []string{bigLen}
		for left := *big; left > 0; {
			n := min(left, int64(len(chunk)))
			if _, err := w.Write(chunk[:n]); err != nil {
				return
			}
			left -= n
		}
	})
	ln, err := listenLoopback(sf.listen)
	if err != nil {
		return err
	}
	fmt.Printf("listening http://%s\n", ln.Addr())
	return serveUntilDone(&http.Server{Handler: h}, ln, sf.watchStdin)
}

// fixedHeader is an Authorization value of n bytes shaped like a bearer JWT (no real token).
func fixedHeader(n int) string {
	const head = "Bearer eyJ"
	if n < len(head)+1 {
		n = len(head) + 1
	}
	return head + strings.Repeat("x", n-len(head))
}

// runStock is the baseline: a bare httputil.ReverseProxy with its default transport and
// buffers, setting a fixed Authorization header, on a default http.Server.
func runStock(args []string) error {
	fs := flag.NewFlagSet("stock", flag.ExitOnError)
	var sf serverFlags
	sf.register(fs)
	up := fs.String("upstream", "", "upstream base URL")
	n := fs.Int("header-bytes", 2048, "length of the Authorization header value")
	fs.Parse(args)
	target, err := url.Parse(*up)
	if err != nil || target.Host == "" {
		return fmt.Errorf("stock: -upstream %q is not a URL", *up)
	}
	authz := fixedHeader(*n)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Header.Set("Authorization", authz)
	}}
	ln, err := listenLoopback(sf.listen)
	if err != nil {
		return err
	}
	fmt.Printf("listening http://%s header_bytes=%d\n", ln.Addr(), len(authz))
	return serveUntilDone(&http.Server{Handler: rp}, ln, sf.watchStdin)
}

// runOurs runs the proxy as `entra-companion proxy` does (localproxy.Server, the broker as
// token source, a request-log subscriber, warnings-only logging), with one difference: the
// account is signed in to a simulated cloud started in this process and kept in memory
// (auth.MemoryStore) instead of the OS keychain. The sim is closed once the token is cached:
// the proxy's request path never calls the authority while the token is fresh, and the
// sim's own memory and goroutines then do not count against the proxy's.
func runOurs(args []string) error {
	fs := flag.NewFlagSet("ours", flag.ExitOnError)
	var sf serverFlags
	sf.register(fs)
	up := fs.String("upstream", "", "upstream base URL")
	keepSim := fs.Bool("keep-sim", false, "keep the simulated cloud running in this process")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the serving time to this file")
	noLogFeed := fs.Bool("no-log-feed", false, "do not subscribe to the request log (the proxy command always does)")
	fs.Parse(args)
	if *up == "" {
		return errors.New("ours: -upstream is required")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Tokens live 3 hours: no refresh falls due during a run, so closing the sim is safe.
	s, err := sim.New(sim.Options{AccessTokenLifetime: 3 * time.Hour})
	if err != nil {
		return err
	}
	simOpen := true
	defer func() {
		if simOpen {
			s.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := auth.New(ctx, auth.Options{
		ClientID:   sim.PublicClientID,
		Authority:  s.Authority("organizations"),
		Store:      auth.NewMemoryStore(),
		HTTPClient: s.Client(),
		Logger:     logger,
	})
	if err != nil {
		return err
	}
	defer b.Close()
	if _, err := b.SignIn(ctx, auth.SignInOptions{LoginHint: sim.UserAdele, OpenURL: s.Browser(sim.UserAdele)}); err != nil {
		return fmt.Errorf("ours: signing in to the sim: %w", err)
	}
	tok, err := b.TokenFor(ctx, "", cmsScope)
	if err != nil {
		return fmt.Errorf("ours: getting the CMS token: %w", err)
	}
	srv, err := localproxy.New(localproxy.Options{
		Listen:   sf.listen,
		Tokens:   b,
		Accounts: b,
		Logger:   logger,
		Routes: []config.Route{{
			Name: "bench", Prefix: benchPrefix, Upstream: *up, Scopes: []string{cmsScope}, Auth: config.AuthBearer,
		}},
	})
	if err != nil {
		return err
	}
	if !*noLogFeed {
		cancelSub := srv.Subscribe(func(localproxy.LogEntry) {}) // the proxy command feeds its request log
		defer cancelSub()
	}
	if err := srv.Start(); err != nil {
		return err
	}
	if !*keepSim {
		s.Close()
		simOpen = false
		runtime.GC()
		debug.FreeOSMemory()
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("listening %s header_bytes=%d\n", srv.BaseURL(), len(tok.Header))

	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if sf.watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}
	<-sig.Done()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	return srv.Shutdown(sctx)
}
