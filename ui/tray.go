package ui

import "errors"

// Reasons checkTray gives for running without a tray icon.
var (
	// errNoDBus: no session bus (Linux/BSD): the tray (StatusNotifierItem) cannot work, and
	// fyne.io/systray panics on quit without one, so the tray must not be touched at all.
	errNoDBus = errors.New("no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)")
	// errNoTrayHost: the session bus has no StatusNotifierWatcher (no tray host running yet).
	errNoTrayHost = errors.New("no StatusNotifierWatcher on the session bus")
)
