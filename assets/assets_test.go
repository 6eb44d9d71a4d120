package assets

import (
	"bytes"
	"image"
	"image/png"
	"testing"

	"fyne.io/fyne/v2"
)

func TestIconsArePNGsOfTheRightSize(t *testing.T) {
	for _, tc := range []struct {
		res  fyne.Resource
		size int
	}{
		{AppIcon, 512},
		{TrayIcon, 64},
		{TrayIconDark, 64},
		{TrayIconAttention, 64},
	} {
		t.Run(tc.res.Name(), func(t *testing.T) {
			img, format, err := image.Decode(bytes.NewReader(tc.res.Content()))
			if err != nil {
				t.Fatalf("decoding %s: %v", tc.res.Name(), err)
			}
			if format != "png" {
				t.Errorf("%s is %s, want png (Linux trays cannot show SVG)", tc.res.Name(), format)
			}
			if b := img.Bounds(); b.Dx() != tc.size || b.Dy() != tc.size {
				t.Errorf("%s is %dx%d, want %dx%d", tc.res.Name(), b.Dx(), b.Dy(), tc.size, tc.size)
			}
			// the corners are transparent (rounded square) and the centre is opaque
			if _, _, _, a := img.At(0, 0).RGBA(); a != 0 {
				t.Errorf("%s: corner alpha %d, want transparent", tc.res.Name(), a)
			}
			c := tc.size / 2
			if _, _, _, a := img.At(c, c).RGBA(); a != 0xffff {
				t.Errorf("%s: centre alpha %d, want opaque", tc.res.Name(), a)
			}
		})
	}
}

func TestTrayIconsDiffer(t *testing.T) {
	if bytes.Equal(TrayIcon.Content(), TrayIconDark.Content()) ||
		bytes.Equal(TrayIcon.Content(), TrayIconAttention.Content()) {
		t.Fatal("tray icon variants must differ")
	}
	// the attention icon has amber pixels (#FFB900) near its lower right corner
	img, err := png.Decode(bytes.NewReader(TrayIconAttention.Content()))
	if err != nil {
		t.Fatal(err)
	}
	r, g, b, _ := img.At(51, 51).RGBA()
	if r>>8 < 0xe0 || g>>8 < 0xa0 || b>>8 > 0x40 {
		t.Errorf("attention dot pixel = %02x%02x%02x, want amber", r>>8, g>>8, b>>8)
	}
}
