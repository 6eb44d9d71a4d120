// Command minimal is the baseline of scripts/bench-tray: the smallest Fyne app with a tray
// menu — an app icon, SetSystemTrayMenu with a few items, no window shown — run the same way
// as Entra Companion so that their idle cost can be compared side by side. It is built by the
// script with `go build` into a temporary directory; nothing imports it.
package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"log"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"
	"fyne.io/fyne/v2/driver/desktop"
)

func main() {
	a := app.NewWithID("io.github.entracompanion.BenchMinimal")
	a.SetIcon(fyne.NewStaticResource("icon.png", icon()))
	desk, ok := a.(desktop.App)
	if !ok {
		log.Fatal("minimal: this Fyne driver has no system tray")
	}
	desk.SetSystemTrayMenu(fyne.NewMenu("Minimal",
		fyne.NewMenuItem("First item", func() {}),
		fyne.NewMenuItem("Second item", func() {}),
		fyne.NewMenuItemSeparator(),
		fyne.NewMenuItem("Third item", func() {}),
	)) // Fyne adds Quit
	a.Run()
}

// icon is a 64×64 PNG disc, like the app's own tray icon (a PNG: SVG fails on Linux trays).
func icon() []byte {
	const n = 64
	img := image.NewNRGBA(image.Rect(0, 0, n, n))
	for y := range n {
		for x := range n {
			dx, dy := x-n/2, y-n/2
			if dx*dx+dy*dy <= (n/2-2)*(n/2-2) {
				img.Set(x, y, color.NRGBA{0x00, 0x78, 0xd4, 0xff})
			}
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		log.Fatal(err)
	}
	return b.Bytes()
}
