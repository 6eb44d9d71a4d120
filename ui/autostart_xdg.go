//go:build linux || freebsd || openbsd || netbsd || dragonfly

package ui

import "os"

// startFile is the XDG autostart entry in the user's config directory.
var startFile = fileAutostart{
	path: func() (string, error) {
		home, _ := os.UserHomeDir()
		return xdgAutostartPath(os.Getenv, home)
	},
	content: desktopEntry,
}

func autostartEnable(exe string) error { return startFile.enable(exe) }
func autostartDisable() error          { return startFile.disable() }
func autostartEnabled() (bool, error)  { return startFile.enabled() }
