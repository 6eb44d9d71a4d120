//go:build linux || freebsd || openbsd || netbsd || dragonfly

package ui

import (
	"fmt"
	"os"
)

func xdgPath() (string, error) {
	home, _ := os.UserHomeDir()
	return xdgAutostartPath(os.Getenv, home)
}

func autostartEnable(exe string) error {
	p, err := xdgPath()
	if err != nil {
		return fmt.Errorf("setting start at login: %w", err)
	}
	if err := writeFileAtomic(p, []byte(desktopEntry(exe)), 0o644); err != nil {
		return fmt.Errorf("setting start at login: %w", err)
	}
	return nil
}

func autostartDisable() error {
	p, err := xdgPath()
	if err != nil {
		return fmt.Errorf("removing start at login: %w", err)
	}
	if err := removeIfExists(p); err != nil {
		return fmt.Errorf("removing start at login: %w", err)
	}
	return nil
}

func autostartEnabled() (bool, error) {
	p, err := xdgPath()
	if err != nil {
		return false, err
	}
	return fileExists(p)
}
