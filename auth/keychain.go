package auth

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/zalando/go-keyring"
)

// SecretStore is the OS keychain as the broker uses it: one service, items by key.
// Implementations must be safe for concurrent use. Get returns ErrSecretNotFound for a
// missing item; Set may return ErrValueTooLarge when the platform refuses the value's size.
type SecretStore interface {
	Get(key string) (string, error)
	Set(key, value string) error
	Delete(key string) error
}

// Keychain errors besides ErrNoKeychain and ErrKeychainTimeout.
var (
	// ErrSecretNotFound: the keychain holds no item under that key.
	ErrSecretNotFound = errors.New("secret not found in keychain")
	// ErrValueTooLarge: the keychain refused a value for its size (Windows ~2.5 KB, macOS ~3 KB).
	ErrValueTooLarge = errors.New("value too large for the keychain")
	// ErrKeychainLocked: the keychain is locked and could not be unlocked.
	ErrKeychainLocked = errors.New("keychain is locked: unlock it (log in to the desktop session) and try again")
)

// DefaultKeychainTimeout bounds every keychain call: keychains hang when locked, on WSL, or
// when a prompt is waiting for a user who is not there.
const DefaultKeychainTimeout = 5 * time.Second

// Keyring is the OS keychain (Secret Service on Linux, Keychain on macOS, Credential Manager
// on Windows) through go-keyring, with a timeout on every call.
type Keyring struct {
	// Service names the items (e.g. "entra-companion").
	Service string
	// Timeout bounds each call; zero means DefaultKeychainTimeout.
	Timeout time.Duration
}

var _ SecretStore = (*Keyring)(nil)

// Get reads the item key.
func (k *Keyring) Get(key string) (string, error) {
	var v string
	err := k.call("reading", key, func() (err error) { v, err = keyring.Get(k.Service, key); return err })
	return v, err
}

// Set writes the item key.
func (k *Keyring) Set(key, value string) error {
	return k.call("writing", key, func() error { return keyring.Set(k.Service, key, value) })
}

// Delete removes the item key; a missing item is not an error.
func (k *Keyring) Delete(key string) error {
	err := k.call("deleting", key, func() error { return keyring.Delete(k.Service, key) })
	if errors.Is(err, ErrSecretNotFound) {
		return nil
	}
	return err
}

func (k *Keyring) call(op, key string, f func() error) error {
	if err := sessionBusMissing(); err != nil {
		return fmt.Errorf("%s keychain item %s/%s: %w", op, k.Service, key, err)
	}
	d := k.Timeout
	if d <= 0 {
		d = DefaultKeychainTimeout
	}
	done := make(chan error, 1)
	go func() { done <- f() }() // a hung keychain call is abandoned, as gh does; it cannot be interrupted
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		if err == nil {
			return nil
		}
		return fmt.Errorf("%s keychain item %s/%s: %w", op, k.Service, key, classifyKeyringError(err))
	case <-t.C:
		return fmt.Errorf("%s keychain item %s/%s: %w after %s", op, k.Service, key, ErrKeychainTimeout, d)
	}
}

// classifyKeyringError maps go-keyring's and D-Bus's errors to the package's sentinels.
func classifyKeyringError(err error) error {
	switch {
	case errors.Is(err, keyring.ErrNotFound):
		return ErrSecretNotFound
	case errors.Is(err, keyring.ErrSetDataTooBig):
		return ErrValueTooLarge
	case errors.Is(err, keyring.ErrUnsupportedPlatform):
		return fmt.Errorf("%w: %s is not supported by go-keyring", ErrNoKeychain, runtime.GOOS)
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "failed to unlock"), strings.Contains(msg, "is locked"):
		return fmt.Errorf("%w (%v)", ErrKeychainLocked, err)
	case strings.Contains(msg, "org.freedesktop.secrets"),
		strings.Contains(msg, "dbus-launch"),
		strings.Contains(msg, "DBUS_SESSION_BUS_ADDRESS"),
		strings.Contains(msg, "org.freedesktop.DBus"),
		strings.Contains(msg, "connection refused"),
		strings.Contains(msg, "dbus:"):
		return fmt.Errorf("%w: no Secret Service on the D-Bus session (%v); install and start gnome-keyring or KeePassXC's Secret Service, or run inside a desktop session", ErrNoKeychain, err)
	}
	return err
}

// MemoryStore keeps secrets in process memory only. The broker uses it when no keychain is
// available, so the session works without ever writing a token to a file. MaxValue, when
// positive, makes Set refuse larger values like Windows' Credential Manager does.
type MemoryStore struct {
	// MaxValue is the largest value Set accepts; zero means no limit.
	MaxValue int

	mu    sync.Mutex
	items map[string]string
}

var _ SecretStore = (*MemoryStore)(nil)

// NewMemoryStore returns an empty in-memory store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{} }

// Get reads the item key.
func (m *MemoryStore) Get(key string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.items[key]
	if !ok {
		return "", fmt.Errorf("reading %s: %w", key, ErrSecretNotFound)
	}
	return v, nil
}

// Set writes the item key.
func (m *MemoryStore) Set(key, value string) error {
	if m.MaxValue > 0 && len(value) > m.MaxValue {
		return fmt.Errorf("writing %s (%d bytes, limit %d): %w", key, len(value), m.MaxValue, ErrValueTooLarge)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.items == nil {
		m.items = map[string]string{}
	}
	m.items[key] = value
	return nil
}

// Delete removes the item key.
func (m *MemoryStore) Delete(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.items, key)
	return nil
}

// Keys lists the keys held, for diagnostics and tests of what a sign-out leaves behind.
func (m *MemoryStore) Keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.items))
	for k := range m.items {
		keys = append(keys, k)
	}
	return keys
}

// ProbeKeychain tells whether the store answers at all: nil when it works (a missing probe
// item is fine), ErrNoKeychain/ErrKeychainLocked/ErrKeychainTimeout wrapped otherwise.
func ProbeKeychain(ctx context.Context, s SecretStore) error {
	done := make(chan error, 1)
	go func() {
		_, err := s.Get(keyIndex)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, ErrSecretNotFound) {
			return nil
		}
		return err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("probing the keychain: %w", ErrKeychainTimeout)
		}
		return fmt.Errorf("probing the keychain: %w", ctx.Err())
	}
}
