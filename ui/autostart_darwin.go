//go:build darwin

package ui

import (
	"fmt"
	"os"
)

func plistPath() (string, error) {
	home, _ := os.UserHomeDir()
	return launchAgentPath(home)
}

func autostartEnable(exe string) error {
	p, err := plistPath()
	if err != nil {
		return fmt.Errorf("setting start at login: %w", err)
	}
	if err := writeFileAtomic(p, []byte(launchAgentPlist(exe)), 0o644); err != nil {
		return fmt.Errorf("setting start at login: %w", err)
	}
	return nil
}

func autostartDisable() error {
	p, err := plistPath()
	if err != nil {
		return fmt.Errorf("removing start at login: %w", err)
	}
	if err := removeIfExists(p); err != nil {
		return fmt.Errorf("removing start at login: %w", err)
	}
	return nil
}

func autostartEnabled() (bool, error) {
	p, err := plistPath()
	if err != nil {
		return false, err
	}
	return fileExists(p)
}
