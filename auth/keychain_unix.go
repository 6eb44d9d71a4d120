//go:build linux || freebsd || openbsd || netbsd || dragonfly

package auth

import (
	"fmt"
	"os"
	"path/filepath"
)

// sessionBusMissing reports the Secret Service as unavailable when there is no D-Bus session
// to reach it on. Without this, the D-Bus library would start a session bus of its own through
// dbus-launch — a daemon that outlives the process — and the keychain call would hang on it.
func sessionBusMissing() error {
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		return nil
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "bus")); err == nil {
			return nil // the user's bus at its standard place, which the library finds too
		}
	}
	return fmt.Errorf("%w: there is no D-Bus session (DBUS_SESSION_BUS_ADDRESS is not set), so no Secret Service; run inside a desktop session", ErrNoKeychain)
}
