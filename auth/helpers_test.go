package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/auth/clock/clocktest"
	"github.com/entra-companion/entra-companion/sim"
)

// fakeClock is a Clock tests move by hand.
type fakeClock = clocktest.Fake

func newFakeClock() *fakeClock { return clocktest.New() }

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testKeychain returns the real OS keychain (the Secret Service under scripts/test) under a
// service name of its own, removing every item the test left when it ends. Outside
// scripts/test, without a Secret Service, the test is skipped; inside it, it fails.
func testKeychain(t testing.TB) *Keyring {
	t.Helper()
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	k := &Keyring{Service: "entra-companion-test-" + hex.EncodeToString(rb[:])}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ProbeKeychain(ctx, k); err != nil {
		if os.Getenv("ENTRA_E2E") != "" {
			t.Fatalf("the test session has no working Secret Service: %v", err)
		}
		t.Skipf("no Secret Service (%v): run the tests with scripts/test", err)
	}
	t.Cleanup(func() {
		for _, item := range keychainItems(t, k.Service) {
			_ = k.Delete(item)
		}
	})
	return k
}

// keychainItems lists the items of a service with secret-tool, as a user would see them.
func keychainItems(t testing.TB, service string) []string {
	t.Helper()
	out, err := exec.Command("secret-tool", "search", "--all", "service", service).CombinedOutput()
	if err != nil && len(out) > 0 && !strings.Contains(string(out), "No matching") {
		// secret-tool exits 1 when nothing matches.
		if !bytes.Contains(out, []byte("attribute.")) {
			return nil
		}
	}
	var items []string
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "attribute.username = "); ok {
			items = append(items, strings.TrimSpace(v))
		}
	}
	slices.Sort(items)
	return items
}

type brokerEnv struct {
	t     *testing.T
	sim   *sim.Server
	clock *fakeClock
	store SecretStore
	dir   string
	logs  *syncBuffer
}

// newEnv starts a simulated cloud and prepares a store and state dir shared by the brokers
// the test opens (as separate processes would share them).
func newEnv(t *testing.T, store SecretStore, simOpts ...sim.Options) *brokerEnv {
	t.Helper()
	clock := newFakeClock()
	o := sim.Options{DeviceCodeInterval: time.Second}
	if len(simOpts) > 0 {
		o = simOpts[0]
		if o.DeviceCodeInterval == 0 {
			o.DeviceCodeInterval = time.Second
		}
	}
	if o.Now == nil {
		o.Now = clock.Now
	}
	s := sim.Start(t, o)
	return &brokerEnv{t: t, sim: s, clock: clock, store: store, dir: t.TempDir(), logs: &syncBuffer{}}
}

func (e *brokerEnv) options() Options {
	return Options{
		ClientID:      sim.PublicClientID,
		Authority:     e.sim.Authority("organizations"),
		DefaultScopes: []string{"https://graph.microsoft.com/.default"},
		Store:         e.store,
		StateDir:      e.dir,
		HTTPClient:    e.sim.Client(),
		Clock:         e.clock,
		Logger:        slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RetryDelay:    10 * time.Millisecond,
	}
}

func (e *brokerEnv) broker(mod ...func(*Options)) *Broker {
	e.t.Helper()
	o := e.options()
	for _, m := range mod {
		m(&o)
	}
	b, err := New(context.Background(), o)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.t.Cleanup(func() { _ = b.Close() })
	return b
}

func (e *brokerEnv) signIn(b *Broker, upn, tenant string) Account {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := b.SignIn(ctx, SignInOptions{Authority: e.sim.Authority(tenant), LoginHint: upn, OpenURL: e.sim.Browser(upn)})
	if err != nil {
		e.t.Fatalf("signing in %s at %s: %v", upn, tenant, err)
	}
	return a
}

// assertNoTokenMaterial fails if any file under dir, or the text given, contains a JWT or one
// of the secrets.
func assertNoTokenMaterial(t *testing.T, what string, text string, secrets ...string) {
	t.Helper()
	if strings.Contains(text, "eyJ") {
		i := strings.Index(text, "eyJ")
		t.Errorf("%s contains something JWT-shaped at offset %d", what, i)
	}
	for _, s := range secrets {
		if len(s) >= 16 && strings.Contains(text, s) {
			t.Errorf("%s contains token material (%d-byte secret)", what, len(s))
		}
	}
}

func assertNoTokenFiles(t *testing.T, dir string, secrets ...string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		assertNoTokenMaterial(t, "file "+p, string(b), secrets...)
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or 10 s pass (for background work started by the
// broker; the scenario itself never sleeps).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
