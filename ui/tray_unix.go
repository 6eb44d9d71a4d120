//go:build linux || freebsd || openbsd || netbsd

package ui

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/godbus/dbus/v5"
)

// checkTray tells whether a tray icon can be shown: the Linux and BSD tray is a
// StatusNotifierItem on the D-Bus session bus, registered with a StatusNotifierWatcher (the
// tray host: a panel, a desktop shell extension).
func checkTray() error {
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		return errNoDBus
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := dbus.ConnectSessionBus(dbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("%w: connecting to the session bus: %v", errNoTrayHost, err)
	}
	defer conn.Close()
	var has bool
	err = conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, "org.kde.StatusNotifierWatcher").Store(&has)
	if err != nil {
		return fmt.Errorf("%w: asking the session bus: %v", errNoTrayHost, err)
	}
	if !has {
		return errNoTrayHost
	}
	return nil
}
