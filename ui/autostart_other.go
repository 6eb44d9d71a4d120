//go:build !(linux || freebsd || openbsd || netbsd || dragonfly || darwin || windows)

package ui

import "errors"

var errNoAutostart = errors.New("start at login is not supported on this system")

func autostartEnable(string) error    { return errNoAutostart }
func autostartDisable() error         { return nil }
func autostartEnabled() (bool, error) { return false, nil }
