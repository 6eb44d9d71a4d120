package auth

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/sim"
)

// The hot path does not allocate.
func TestTokenHotPathAllocatesNothing(t *testing.T) {
	b, req := hotBroker(t)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := b.Token(ctx, req); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Token's hot path allocates %.1f times per call, want 0", allocs)
	}
}

// hotBroker is a broker with one account and a cached token, without any network.
func hotBroker(tb testing.TB) (*Broker, TokenRequest) {
	tb.Helper()
	b, err := New(context.Background(), Options{ClientID: "00000000-0000-0000-0000-000000000001", Store: NewMemoryStore(), Authority: "https://login.example/organizations"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	rec := accountRecord{ID: "oid.tid", Kind: KindUser, HomeAccountID: "oid.tid", Username: "a@example.com", Authority: "https://login.example/tid/", ClientID: "x"}
	if err := b.vault.updateIndex(context.Background(), func(idx *indexDoc) error { upsert(idx, rec); return nil }); err != nil {
		tb.Fatal(err)
	}
	b.vault.parts["oid.tid"] = []byte(`{}`)
	b.rebuild(false)
	scopes := NewScopes("https://graph.microsoft.com/.default")
	b.storeToken(rec.ID, scopes, "header.payload.signature", time.Now().Add(time.Hour))
	return b, TokenRequest{Scopes: scopes}
}

func BenchmarkTokenHotPath(b *testing.B) {
	br, req := hotBroker(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := br.Token(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkTokenHotPathByName(b *testing.B) {
	br, req := hotBroker(b)
	req.Account = "a@example.com"
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Token(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// A used token is renewed in the background before it expires, so callers never wait; an
// unused one is left alone.
func TestBackgroundRefreshRenewsUsedTokens(t *testing.T) {
	env := newEnv(t, NewMemoryStore(), sim.Options{AccessTokenLifetime: time.Hour})
	b := env.broker()
	a := env.signIn(b, sim.UserAdele, "organizations")
	ctx := context.Background()
	used, err := b.TokenFor(ctx, a.ID, graphDefault)
	if err != nil {
		t.Fatal(err)
	}
	unused, err := b.TokenFor(ctx, a.ID, cmsDefault)
	if err != nil {
		t.Fatal(err)
	}
	base := env.sim.GrantCount("refresh_token")
	env.clock.Advance(40 * time.Minute)
	if _, err := b.TokenFor(ctx, a.ID, graphDefault); err != nil { // use it again
		t.Fatal(err)
	}
	env.clock.Advance(16 * time.Minute) // the unused one has not been touched for 56 minutes
	// 56 minutes into a 60-minute token: the background renewal is due (5 min before, less jitter).
	waitFor(t, "the background refresh", func() bool { return env.sim.GrantCount("refresh_token") > base })
	waitFor(t, "the new token", func() bool {
		e := b.entry(a.ID, NewScopes(graphDefault))
		return e.tok.Load().Value != used.Value
	})
	got := b.entry(a.ID, NewScopes(graphDefault)).tok.Load()
	if !got.ExpiresOn.After(used.ExpiresOn) {
		t.Error("the renewed token does not expire later")
	}
	if b.entry(a.ID, NewScopes(cmsDefault)).tok.Load().Value != unused.Value {
		t.Error("a token nobody used recently was renewed")
	}
	if n := env.sim.GrantCount("refresh_token") - base; n != 1 {
		t.Errorf("%d background refreshes, want 1", n)
	}
}

// The tray app and a CLI process refresh the same account at the same time with rotating
// refresh tokens: neither ever redeems a stale one, so neither sees invalid_grant.
func TestTwoProcessesShareRotatingRefreshTokens(t *testing.T) {
	kc := testKeychain(t)
	s := sim.Start(t, sim.Options{DeviceCodeInterval: time.Second})
	dir := t.TempDir()
	o := Options{
		ClientID: sim.PublicClientID, Authority: s.Authority("organizations"), Store: kc, StateDir: dir,
		HTTPClient: s.Client(), RetryDelay: 10 * time.Millisecond,
	}
	b, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := b.SignIn(context.Background(), SignInOptions{LoginHint: sim.UserAdele, OpenURL: s.Browser(sim.UserAdele)})
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, s.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	const perProcess = 8
	base := s.GrantCount("refresh_token")
	var wg sync.WaitGroup
	outs := make([]string, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(),
				"ENTRA_HELPER_REFRESH=1", "SSL_CERT_FILE="+ca, "ENTRA_HELPER_SERVICE="+kc.Service,
				"ENTRA_HELPER_DIR="+dir, "ENTRA_HELPER_AUTHORITY="+s.Authority("organizations"),
				"ENTRA_HELPER_ACCOUNT="+a.ID, "ENTRA_HELPER_N="+strconv.Itoa(perProcess))
			out, err := cmd.CombinedOutput()
			outs[i], errs[i] = string(out), err
		}()
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("process %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	if got := s.GrantCount("refresh_token") - base; got != 2*perProcess {
		t.Errorf("%d refreshes, want %d", got, 2*perProcess)
	}
	// This process was idle meanwhile: its refresh token is stale, yet it refreshes fine.
	if _, err := b.Token(context.Background(), TokenRequest{Account: a.ID, Rejected: "x"}); err != nil {
		t.Fatalf("the idle process could not refresh after the others rotated the token: %v", err)
	}
	if acc, _ := b.Account(a.ID); acc.State != StateReady {
		t.Fatalf("account state %s", acc.State)
	}
}

// TestMain runs the child processes of TestTwoProcessesShareRotatingRefreshTokens.
func TestMain(m *testing.M) {
	if os.Getenv("ENTRA_HELPER_REFRESH") == "1" {
		if err := refreshLoop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// refreshLoop forces n refreshes of one account, as a second entra-companion process would.
func refreshLoop() error {
	n, _ := strconv.Atoi(os.Getenv("ENTRA_HELPER_N"))
	b, err := New(context.Background(), Options{
		ClientID: sim.PublicClientID, Authority: os.Getenv("ENTRA_HELPER_AUTHORITY"),
		Store: &Keyring{Service: os.Getenv("ENTRA_HELPER_SERVICE")}, StateDir: os.Getenv("ENTRA_HELPER_DIR"),
		Retries: -1,
	})
	if err != nil {
		return err
	}
	defer b.Close()
	account := os.Getenv("ENTRA_HELPER_ACCOUNT")
	last := "none"
	for i := range n {
		tok, err := b.Token(context.Background(), TokenRequest{Account: account, Rejected: last})
		if err != nil {
			return fmt.Errorf("refresh %d: %w", i, err)
		}
		if tok.Value == last {
			return fmt.Errorf("refresh %d returned the rejected token", i)
		}
		last = tok.Value
	}
	fmt.Println("ok", strings.Repeat(".", n))
	return nil
}

// However a token is formatted, its value never shows.
func TestAccessTokenNeverPrintsItself(t *testing.T) {
	tok := &AccessToken{Value: "eyJsecret.eyJpayload.sig", Header: "Bearer eyJsecret.eyJpayload.sig", AccountID: "a", Scopes: []string{"s"}, ExpiresOn: time.Now()}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{tok, *tok, []*AccessToken{tok}, struct{ T *AccessToken }{tok}} {
			if out := fmt.Sprintf(f, v); strings.Contains(out, "eyJ") {
				t.Errorf("%s of %T prints the token: %s", f, v, out)
			}
		}
	}
}
