// Package assets holds Entra Companion's icons, embedded in the binary: the application icon
// and the system-tray icons (for light and dark panels, and one that asks for attention when an
// account must sign in again).
//
// The PNG files are drawn by gen/main.go; after changing it run `go generate ./assets/` and
// commit the regenerated files.
package assets

//go:generate go run gen/main.go

import (
	_ "embed"

	"fyne.io/fyne/v2"
)

var (
	//go:embed icon.png
	iconPNG []byte
	//go:embed tray.png
	trayPNG []byte
	//go:embed tray-dark.png
	trayDarkPNG []byte
	//go:embed tray-attention.png
	trayAttentionPNG []byte
)

// AppIcon is the application icon (512×512 PNG): a white key in a rounded square in Entra blue.
var AppIcon fyne.Resource = fyne.NewStaticResource("icon.png", iconPNG)

// TrayIcon is the system-tray icon for light panels (64×64 PNG).
var TrayIcon fyne.Resource = fyne.NewStaticResource("tray.png", trayPNG)

// TrayIconDark is the system-tray icon for dark panels (64×64 PNG): a lighter blue with a rim.
var TrayIconDark fyne.Resource = fyne.NewStaticResource("tray-dark.png", trayDarkPNG)

// TrayIconAttention is the system-tray icon shown while an account must sign in again (64×64
// PNG): the key with an amber dot.
var TrayIconAttention fyne.Resource = fyne.NewStaticResource("tray-attention.png", trayAttentionPNG)
