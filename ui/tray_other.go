//go:build !(linux || freebsd || openbsd || netbsd)

package ui

// checkTray reports no problem: Windows and macOS always have a notification area / menu bar.
func checkTray() error { return nil }
