//go:build !(linux || freebsd || openbsd || netbsd || dragonfly)

package auth

// sessionBusMissing: the keychains of macOS and Windows need no D-Bus.
func sessionBusMissing() error { return nil }
