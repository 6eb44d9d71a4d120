//go:build darwin

package ui

import "os"

// startFile is the LaunchAgent in ~/Library/LaunchAgents.
var startFile = fileAutostart{
	path: func() (string, error) {
		home, _ := os.UserHomeDir()
		return launchAgentPath(home)
	},
	content: launchAgentPlist,
}

func autostartEnable(exe string) error { return startFile.enable(exe) }
func autostartDisable() error          { return startFile.disable() }
func autostartEnabled() (bool, error)  { return startFile.enabled() }
