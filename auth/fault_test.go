package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/sim"
)

// The fault matrix of the broker: each test breaks one thing (the token endpoint, TLS, the
// refresh token, the keychain), checks what the user sees, and checks that nothing was lost:
// every account is still listed and, once the fault clears, a new process gets a token from
// the refresh token in the keychain without any sign-in. The proxy's and Graph's faults are in
// localproxy/fault_test.go and graph/fault_test.go; a process killed mid-refresh is in
// faultkill_test.go.

// faultSignIns counts interactive sign-ins the sim completed.
func faultSignIns(s *sim.Server) int {
	return s.GrantCount("authorization_code") + s.GrantCount("device_code")
}

// faultRecovers clears the sim's faults, opens a new broker on the same keychain and state
// directory (a new process) and checks that every account is listed, not marked for sign-in,
// and gets a token without an interactive sign-in.
func faultRecovers(t *testing.T, env *brokerEnv, ids ...string) {
	t.Helper()
	env.sim.ClearFaults()
	before := faultSignIns(env.sim)
	b := env.broker()
	listed := map[string]Account{}
	for _, a := range b.Accounts() {
		listed[a.ID] = a
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, id := range ids {
		a, ok := listed[id]
		if !ok {
			t.Errorf("account %s is no longer listed after the fault", id)
			continue
		}
		if a.State == StateNeedsSignIn {
			t.Errorf("account %s needs sign-in after the fault: %s", a.Username, a.Detail)
		}
		tok, err := b.TokenFor(ctx, id, graphDefault)
		if err != nil {
			t.Errorf("after the fault cleared, no token for %s from its refresh token: %v", a.Username, err)
			continue
		}
		assertNoTokenMaterial(t, "the log", env.logs.String(), tok.Value)
	}
	if n := faultSignIns(env.sim) - before; n != 0 {
		t.Errorf("recovering took %d interactive sign-ins, want none", n)
	}
}

// faultSetup signs Adele and Alex in, closes that broker and returns their IDs: the next
// broker starts without access tokens, as a new process would, so its first Token call
// redeems the refresh token from the keychain.
func faultSetup(t *testing.T, env *brokerEnv) (adele, alex string) {
	t.Helper()
	b := env.broker()
	adele = env.signIn(b, sim.UserAdele, "organizations").ID
	alex = env.signIn(b, sim.UserAlex, "organizations").ID
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return adele, alex
}

func faultNoRetries(o *Options) { o.Retries = -1 }

// faultCheckError checks an error the user sees: the kind, the account, words it must say,
// and no token material.
func faultCheckError(t *testing.T, err, kind error, account string, words ...string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error %v, want %v", err, kind)
	}
	msg := err.Error()
	var ae *AccountError
	if !errors.As(err, &ae) || !strings.Contains(msg, account) {
		t.Errorf("error does not name the account %s: %v", account, err)
	}
	for _, w := range words {
		if !strings.Contains(msg, w) {
			t.Errorf("error does not say %q: %v", w, err)
		}
	}
	assertNoTokenMaterial(t, "the error", msg)
	t.Logf("the user sees: %v", err)
}

func faultState(t *testing.T, b *Broker, id string, want State) {
	t.Helper()
	a, err := b.Account(id)
	if err != nil {
		t.Fatalf("account %s: %v", id, err)
	}
	if a.State != want {
		t.Errorf("%s is %s (%s), want %s", a.Username, a.State, a.Detail, want)
	}
}

// Token endpoint 500, 503 (with and without Retry-After) and malformed JSON: the caller gets
// ErrUnavailable saying what the authority answered; the account is offline, not signed out.
func TestFaultTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault sim.Fault
		words []string
	}{
		{"500", sim.Fault{Status: 500}, []string{"500", "server_error"}},
		{"503", sim.Fault{Status: 503}, []string{"503", "temporarily_unavailable"}},
		{"malformed JSON", sim.Fault{Malformed: true}, []string{"malformed JSON"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t, NewMemoryStore())
			adele, alex := faultSetup(t, env)
			b := env.broker(faultNoRetries)
			tc.fault.Count, tc.fault.Grant = 100, "refresh_token"
			env.sim.InjectFault(sim.EndpointToken, tc.fault)
			_, err := b.TokenFor(context.Background(), adele, graphDefault)
			faultCheckError(t, err, ErrUnavailable, sim.UserAdele, tc.words...)
			faultState(t, b, adele, StateOffline)
			faultRecovers(t, env, adele, alex)
		})
	}
}

// 503 with Retry-After: a caller waiting for a token waits as long as the authority asks
// (when that is short) and then gets its token; a long Retry-After is not slept through, and
// the background refresher does not call again before it has passed.
func TestFaultRetryAfter(t *testing.T) {
	t.Parallel()
	env := newEnv(t, NewMemoryStore())
	adele, alex := faultSetup(t, env)
	b := env.broker(func(o *Options) { o.Retries = 2 })
	ctx := context.Background()

	env.sim.InjectFault(sim.EndpointToken, sim.Fault{Status: 503, RetryAfter: time.Second, Grant: "refresh_token"})
	calls := env.sim.Count(sim.EndpointToken)
	start := time.Now()
	if _, err := b.TokenFor(ctx, adele, graphDefault); err != nil {
		t.Fatalf("after one 503 with Retry-After: 1: %v", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("the retry came after %v, before Retry-After", d)
	}
	if n := env.sim.Count(sim.EndpointToken) - calls; n != 2 {
		t.Errorf("%d token calls, want 2", n)
	}

	// Retry-After: 120 for a token the caller needs: no two-minute wait, an error at once.
	env.sim.InjectFault(sim.EndpointToken, sim.Fault{Status: 503, RetryAfter: 120 * time.Second, Count: 100, Grant: "refresh_token"})
	start = time.Now()
	_, err := b.Token(ctx, TokenRequest{Account: alex, Scopes: NewScopes(graphDefault)})
	faultCheckError(t, err, ErrUnavailable, sim.UserAlex, "503")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the caller waited %v", d)
	}
	// A used token close to expiry: the background refresher must not call again within
	// those 120 s.
	tok, err := b.TokenFor(ctx, adele, graphDefault)
	if err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(tok.ExpiresOn.Sub(env.clock.Now()) - 4*time.Minute) // in the refresh window
	calls = env.sim.Count(sim.EndpointToken)
	if _, err := b.TokenFor(ctx, adele, graphDefault); err != nil {
		t.Fatalf("cached token not served while the authority throttles: %v", err)
	}
	waitFor(t, "the background refresh attempt", func() bool { return env.sim.Count(sim.EndpointToken) > calls })
	waitFor(t, "the account to go offline", func() bool { a, _ := b.Account(adele); return a.State == StateOffline })
	calls = env.sim.Count(sim.EndpointToken)
	for range 10 {
		env.clock.Advance(10 * time.Second) // 100 s in all: still inside Retry-After
		if _, err := b.TokenFor(ctx, adele, graphDefault); err != nil {
			t.Fatalf("cached token not served while the authority throttles: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := env.sim.Count(sim.EndpointToken) - calls; n != 0 {
		t.Errorf("the background refresher called the token endpoint %d times within Retry-After: 120", n)
	}
	faultRecovers(t, env, adele, alex)
}

// A token endpoint that never answers: with an HTTP client timeout, the error says the
// authority did not answer; without one (the CLI's default client), the broker's own
// per-call timeout ends the attempt, and a caller with a deadline stops waiting at once while
// the refresh goes on for the others.
func TestFaultTokenEndpointHangs(t *testing.T) {
	t.Parallel()
	t.Run("client timeout", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t, NewMemoryStore())
		adele, alex := faultSetup(t, env)
		hc := env.sim.Client()
		hc.Timeout = 300 * time.Millisecond
		b := env.broker(faultNoRetries, func(o *Options) { o.HTTPClient = hc })
		env.sim.InjectFault(sim.EndpointToken, sim.Fault{Hang: true, Count: 100, Grant: "refresh_token"})
		start := time.Now()
		_, err := b.TokenFor(context.Background(), adele, graphDefault)
		faultCheckError(t, err, ErrUnavailable, sim.UserAdele, "did not answer in time")
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the error came after %v", d)
		}
		faultState(t, b, adele, StateOffline)
		faultRecovers(t, env, adele, alex)
	})
	t.Run("no client timeout", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t, NewMemoryStore())
		adele, alex := faultSetup(t, env)
		b := env.broker(func(o *Options) { o.Retries = 1 })
		b.callTimeout = 500 * time.Millisecond
		env.sim.InjectFault(sim.EndpointToken, sim.Fault{Hang: true, Grant: "refresh_token"}) // once
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := b.TokenFor(ctx, adele, graphDefault)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), sim.UserAdele) {
			t.Fatalf("a caller with a 100 ms deadline got %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("the caller waited %v past its deadline", d)
		}
		// The hung attempt is abandoned after callTimeout and retried: the next caller gets
		// the token the retry fetched, without waiting minutes.
		start = time.Now()
		if _, err := b.TokenFor(context.Background(), adele, graphDefault); err != nil {
			t.Fatalf("after the hung call was abandoned: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the next caller waited %v", d)
		}
		faultRecovers(t, env, adele, alex)
	})
}

// A slow authority: answers slower than the client's timeout are errors that leave the
// account intact; while a used token is still valid nobody waits for a slow refresh.
func TestFaultTokenEndpointSlow(t *testing.T) {
	t.Parallel()
	env := newEnv(t, NewMemoryStore())
	adele, alex := faultSetup(t, env)
	hc := env.sim.Client()
	hc.Timeout = time.Second
	b := env.broker(faultNoRetries, func(o *Options) { o.HTTPClient = hc })
	ctx := context.Background()

	env.sim.InjectFault(sim.EndpointToken, sim.Fault{Delay: 10 * time.Second, Grant: "refresh_token"})
	start := time.Now()
	_, err := b.TokenFor(ctx, adele, graphDefault)
	faultCheckError(t, err, ErrUnavailable, sim.UserAdele, "did not answer in time")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a 10 s answer held the caller %v with a 1 s client timeout", d)
	}

	tok, err := b.TokenFor(ctx, adele, graphDefault)
	if err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(tok.ExpiresOn.Sub(env.clock.Now()) - 4*time.Minute) // in the refresh window
	env.sim.InjectFault(sim.EndpointToken, sim.Fault{Delay: 700 * time.Millisecond, Grant: "refresh_token"})
	start = time.Now()
	for range 20 {
		got, err := b.TokenFor(ctx, adele, graphDefault)
		if err != nil || got.Value != tok.Value {
			t.Fatalf("during a slow background refresh: %v", err)
		}
	}
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Errorf("callers waited %v for a slow background refresh", d)
	}
	waitFor(t, "the slow background refresh", func() bool {
		got, _ := b.TokenFor(ctx, adele, graphDefault)
		return got != nil && got.Value != tok.Value
	})
	faultRecovers(t, env, adele, alex)
}

// TLS failure: a client that does not trust the authority's certificate gets an error that
// says so; a client that does (the fault cleared) gets tokens from the same keychain.
func TestFaultTLSUntrusted(t *testing.T) {
	t.Parallel()
	env := newEnv(t, NewMemoryStore())
	adele, alex := faultSetup(t, env)
	untrusting := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}},
	}
	b := env.broker(faultNoRetries, func(o *Options) { o.HTTPClient = untrusting })
	calls := env.sim.GrantCount("refresh_token")
	_, err := b.TokenFor(context.Background(), adele, graphDefault)
	faultCheckError(t, err, ErrUnavailable, sim.UserAdele, "certificate")
	faultState(t, b, adele, StateOffline)
	if env.sim.GrantCount("refresh_token") != calls {
		t.Error("a refresh token was redeemed over an untrusted connection")
	}
	faultRecovers(t, env, adele, alex)
}

// invalid_grant and interaction_required: that account needs sign-in (said in the error and
// its state), the others are untouched, its refresh token is kept, and one sign-in heals it.
func TestFaultAuthorityRefusesRefreshToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		code  string
		cause func(s *sim.Server)
	}{
		{"invalid_grant", "invalid_grant", func(s *sim.Server) {
			s.InjectFault(sim.EndpointToken, sim.Fault{Error: "invalid_grant", Grant: "refresh_token"})
		}},
		{"interaction_required", "interaction_required", func(s *sim.Server) { s.RequireMFA(sim.UserAdele) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t, NewMemoryStore())
			adele, alex := faultSetup(t, env)
			b := env.broker()
			tc.cause(env.sim)
			_, err := b.TokenFor(context.Background(), adele, graphDefault)
			faultCheckError(t, err, ErrNeedsSignIn, sim.UserAdele, "sign in again")
			var ae *AccountError
			if errors.As(err, &ae) && ae.Code != tc.code {
				t.Errorf("error code %q, want %q", ae.Code, tc.code)
			}
			faultState(t, b, adele, StateNeedsSignIn)
			if _, err := b.TokenFor(context.Background(), alex, graphDefault); err != nil {
				t.Errorf("another account stopped working: %v", err)
			}
			faultState(t, b, alex, StateReady)
			if len(b.Accounts()) != 2 {
				t.Errorf("accounts listed: %d, want 2", len(b.Accounts()))
			}
			home := strings.Split(adele, "@")[0]
			if b.vault.part(home) == nil {
				t.Error("the refresh token was dropped")
			}
			// A new process knows, without trying.
			faultState(t, env.broker(), adele, StateNeedsSignIn)
			// One sign-in heals it everywhere.
			env.signIn(b, sim.UserAdele, "organizations")
			faultRecovers(t, env, adele, alex)
		})
	}
}

// faultKeychain is a SecretStore over shared items whose behaviour the test switches, the way
// a real keychain fails: locked, missing (no Secret Service), hung, or timing out on writes as
// Keyring reports it.
type faultKeychain struct {
	items *MemoryStore

	mu      sync.Mutex
	mode    string        // "", "locked", "missing", "hung", "slow", "write-timeout"
	delay   time.Duration // slow, write-timeout
	release chan struct{} // hung: calls wait until it is closed
	writes  int           // Set and Delete calls that reached the items
}

func newFaultKeychain() *faultKeychain { return &faultKeychain{items: NewMemoryStore()} }

func (k *faultKeychain) set(mode string, delay time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.mode == "hung" && k.release != nil {
		close(k.release)
	}
	k.mode, k.delay, k.release = mode, delay, nil
	if mode == "hung" {
		k.release = make(chan struct{})
	}
}

func (k *faultKeychain) fault(op, key string, write bool) error {
	k.mu.Lock()
	mode, delay, release := k.mode, k.delay, k.release
	k.mu.Unlock()
	switch mode {
	case "locked":
		return fmt.Errorf("%s keychain item test/%s: %w", op, key, classifyKeyringError(errors.New("failed to unlock correct collection '/org/freedesktop/secrets/aliases/default'")))
	case "missing":
		return fmt.Errorf("%s keychain item test/%s: %w", op, key, classifyKeyringError(errors.New("The name org.freedesktop.secrets was not provided by any .service files")))
	case "hung":
		<-release
	case "slow":
		time.Sleep(delay)
	case "write-timeout":
		if write {
			time.Sleep(delay)
			return fmt.Errorf("%s keychain item test/%s: %w after %s", op, key, ErrKeychainTimeout, delay)
		}
	}
	if write {
		k.mu.Lock()
		k.writes++
		k.mu.Unlock()
	}
	return nil
}

func (k *faultKeychain) Get(key string) (string, error) {
	if err := k.fault("reading", key, false); err != nil {
		return "", err
	}
	return k.items.Get(key)
}

func (k *faultKeychain) Set(key, value string) error {
	if err := k.fault("writing", key, true); err != nil {
		return err
	}
	return k.items.Set(key, value)
}

func (k *faultKeychain) Delete(key string) error {
	if err := k.fault("deleting", key, true); err != nil {
		return err
	}
	return k.items.Delete(key)
}

func (k *faultKeychain) writeCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.writes
}

// A keychain that is locked or missing when the app starts: the session runs from memory and
// says why (with what to do); nothing in the keychain is touched, and once it is back every
// account is there.
func TestFaultKeychainUnavailableAtStart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode string
		want error
		says string
	}{
		{"locked", ErrKeychainLocked, "unlock it"},
		{"missing", ErrNoKeychain, "gnome-keyring"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			kc := newFaultKeychain()
			env := newEnv(t, kc)
			adele, alex := faultSetup(t, env)
			before := kc.writeCount()
			kc.set(tc.mode, 0)
			b := env.broker()
			kerr := b.KeychainError()
			if !errors.Is(kerr, tc.want) || !strings.Contains(kerr.Error(), tc.says) {
				t.Fatalf("KeychainError = %v, want %v saying %q", kerr, tc.want, tc.says)
			}
			if n := len(b.Accounts()); n != 0 {
				t.Errorf("%d accounts listed without a keychain", n)
			}
			if _, err := New(context.Background(), func() Options { o := env.options(); o.NoKeychainFallback = true; return o }()); !errors.Is(err, tc.want) {
				t.Errorf("with NoKeychainFallback: %v", err)
			}
			if kc.writeCount() != before {
				t.Error("the keychain was written while unavailable")
			}
			kc.set("", 0)
			faultRecovers(t, env, adele, alex)
		})
	}
}

// A keychain that hangs: opening the broker gives up when the caller's context ends (the real
// Keyring gives up after its Timeout), says the keychain did not answer, and runs from memory.
func TestFaultKeychainHangs(t *testing.T) {
	t.Parallel()
	kc := newFaultKeychain()
	env := newEnv(t, kc)
	adele, alex := faultSetup(t, env)
	kc.set("hung", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	b, err := New(ctx, env.options())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("opening the broker took %v with a hung keychain", d)
	}
	if !errors.Is(b.KeychainError(), ErrKeychainTimeout) {
		t.Errorf("KeychainError = %v, want ErrKeychainTimeout", b.KeychainError())
	}
	kc.set("", 0)
	faultRecovers(t, env, adele, alex)
}

// Keyring's timeout: a call that does not return in time is reported as ErrKeychainTimeout,
// naming the item, after Timeout.
func TestFaultKeyringTimeout(t *testing.T) {
	t.Parallel()
	k := &Keyring{Service: "entra-companion-test", Timeout: 50 * time.Millisecond}
	release := make(chan struct{})
	defer close(release)
	start := time.Now()
	err := k.call("writing", "cache:x", func() error { <-release; return nil })
	if !errors.Is(err, ErrKeychainTimeout) || !strings.Contains(err.Error(), "entra-companion-test/cache:x") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("gave up after %v", d)
	}
}

// A keychain that turns slow (every call takes 150 ms) or locked during a session: the hot
// path never touches it, a refresh whose write fails says why, the account is kept, and once
// the keychain works again the session and a new process get tokens without a sign-in.
func TestFaultKeychainDuringSession(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"slow", "locked", "write-timeout"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			kc := newFaultKeychain()
			env := newEnv(t, kc)
			adele, alex := faultSetup(t, env)
			b := env.broker(faultNoRetries)
			ctx := context.Background()
			tok, err := b.TokenFor(ctx, adele, graphDefault)
			if err != nil {
				t.Fatal(err)
			}
			kc.set(mode, 150*time.Millisecond)
			start := time.Now()
			for range 100 {
				if got, err := b.TokenFor(ctx, adele, graphDefault); err != nil || got != tok {
					t.Fatalf("hot path with the keychain %s: %v", mode, err)
				}
			}
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Errorf("100 cached tokens took %v with the keychain %s", d, mode)
			}
			// A refresh: the authority rotates the refresh token, then the keychain write runs.
			_, err = b.Token(ctx, TokenRequest{Account: adele, Scopes: NewScopes(graphDefault), Rejected: tok.Value})
			switch mode {
			case "slow":
				if err != nil {
					t.Fatalf("refresh with a slow keychain: %v", err)
				}
			case "locked":
				faultCheckError(t, err, ErrUnavailable, sim.UserAdele, "locked")
			case "write-timeout":
				faultCheckError(t, err, ErrUnavailable, sim.UserAdele, "did not answer in time")
			}
			if len(b.Accounts()) != 2 {
				t.Errorf("%d accounts listed", len(b.Accounts()))
			}
			kc.set("", 0)
			// This session goes on with the refresh token the authority rotated to.
			if _, err := b.Token(ctx, TokenRequest{Account: adele, Scopes: NewScopes(graphDefault), Rejected: tok.Value}); err != nil {
				t.Fatalf("after the keychain recovered, this process: %v", err)
			}
			faultState(t, b, adele, StateReady)
			faultRecovers(t, env, adele, alex)
		})
	}
}

// A write that fails halfway through a chunked item (Windows' 2,560-byte limit splits each
// account's item into several), at every write of a refresh and of a sign-in: the error says
// the keychain write failed, the item is never left damaged, and the account keeps working —
// in this process, and in a new one reading what the keychain holds.
func TestFaultChunkedWriteFails(t *testing.T) {
	t.Parallel()
	// How many Sets one refresh and one sign-in make.
	probe := newFaultStore(2560)
	penv := newEnv(t, probe)
	pb := penv.broker(func(o *Options) { o.MaxValue = 2560 })
	base := faultSets(probe)
	padele := penv.signIn(pb, sim.UserAdele, "organizations")
	signInSets := faultSets(probe) - base
	base = faultSets(probe)
	if _, err := pb.Token(context.Background(), TokenRequest{Account: padele.ID, Rejected: "x"}); err != nil {
		t.Fatal(err)
	}
	refreshSets := faultSets(probe) - base
	if refreshSets < 3 {
		t.Fatalf("a refresh made %d writes: the item is not chunked", refreshSets)
	}

	for k := 1; k <= refreshSets; k++ {
		for _, strict := range []bool{true, false} {
			name := fmt.Sprintf("refresh write %d of %d", k, refreshSets)
			if !strict {
				name += ", new process, reuse interval"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				st := newFaultStore(2560)
				o := sim.Options{}
				if !strict {
					o.RefreshTokenReuseInterval = time.Minute
				}
				env := newEnv(t, st, o)
				mod := func(o *Options) { o.MaxValue = 2560; o.Retries = -1 }
				b := env.broker(mod)
				adele := env.signIn(b, sim.UserAdele, "organizations").ID
				alex := env.signIn(b, sim.UserAlex, "organizations").ID
				st.mu.Lock()
				st.failAt = st.sets + k
				st.mu.Unlock()
				_, err := b.Token(context.Background(), TokenRequest{Account: adele, Rejected: "x"})
				if err != nil {
					faultCheckError(t, err, ErrUnavailable, sim.UserAdele, "keychain", "simulated crash")
				}
				// The item decodes: the old value or the new one, never a mix.
				if _, gerr := b.vault.blobs.get(keyCachePrefix + homeKey(strings.Split(adele, "@")[0])); gerr != nil {
					t.Fatalf("the item is damaged after write %d failed: %v", k, gerr)
				}
				if strict {
					// This process holds the rotated refresh token and writes it next time.
					if _, err := b.Token(context.Background(), TokenRequest{Account: adele, Rejected: "y"}); err != nil {
						t.Fatalf("this process after the failed write: %v", err)
					}
				}
				// A new process reads whichever refresh token the keychain holds: with a
				// reuse interval the previous one still works.
				faultRecovers(t, env, adele, alex)
			})
		}
	}

	for k := 1; k <= signInSets; k++ {
		t.Run(fmt.Sprintf("sign-in write %d of %d", k, signInSets), func(t *testing.T) {
			t.Parallel()
			st := newFaultStore(2560)
			env := newEnv(t, st)
			mod := func(o *Options) { o.MaxValue = 2560 }
			b := env.broker(mod)
			adele := env.signIn(b, sim.UserAdele, "organizations").ID
			alex := env.signIn(b, sim.UserAlex, "organizations").ID
			st.mu.Lock()
			st.failAt = st.sets + k
			st.mu.Unlock()
			// Signing Adele in again (a new session) fails on the keychain write.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := b.SignIn(ctx, SignInOptions{Authority: env.sim.Authority("organizations"), LoginHint: sim.UserAdele, OpenURL: env.sim.Browser(sim.UserAdele)})
			if err == nil {
				t.Fatalf("sign-in succeeded although keychain write %d failed", k)
			}
			if !strings.Contains(err.Error(), "simulated crash") || !strings.Contains(err.Error(), "keychain") && !strings.Contains(err.Error(), "saving") {
				t.Errorf("the sign-in error does not say the keychain write failed: %v", err)
			}
			assertNoTokenMaterial(t, "the error", err.Error())
			// The previous sign-in's refresh token still works, here and in a new process.
			if _, err := b.Token(context.Background(), TokenRequest{Account: adele, Rejected: "x"}); err != nil {
				t.Fatalf("after the failed sign-in: %v", err)
			}
			faultRecovers(t, env, adele, alex)
		})
	}
}

// faultSets is how many Sets the store has seen.
func faultSets(st *faultStore) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.sets
}
