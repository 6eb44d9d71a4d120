// Package ui is Entra Companion's desktop face, built with Fyne: the system-tray menu and the
// Accounts, Profile, Proxy and Settings windows.
//
// It depends on small interfaces declared here (Accounts, Directory, Proxy, Settings), so a
// trivial fake can test every window with fyne.io/fyne/v2/test; cmd adapts the real auth
// broker, Graph reader, proxy server and settings file to them. The package never imports the
// Graph SDK, MSAL or fyne.io/fyne/v2/app: the caller creates the fyne.App and passes it to New,
// which keeps the package building and testing with CGO_ENABLED=0 and without a display.
//
// The tray menu is one pure function of the state, MenuFor, rebuilt on every account or proxy
// change. Work that waits (sign-in, Graph, tokens) runs in goroutines behind a progress
// indicator and, where it can be, a Cancel button; widgets are only touched from those
// goroutines through fyne.Do. Tokens are copied to the clipboard or decoded for display, never
// logged.
package ui
