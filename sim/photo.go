package sim

import (
	"bytes"
	"crypto/sha256"
	"image"
	"image/color"
	"image/jpeg"
	"sync"
)

// photoSize is the edge of the square user photos, in pixels.
const photoSize = 96

var photos sync.Map // oid → []byte

// userPhoto returns a small JPEG for a user: a disc in a colour derived from the object id on
// a lighter background, the same bytes every time.
func userPhoto(oid string) []byte {
	if b, ok := photos.Load(oid); ok {
		return b.([]byte)
	}
	h := sha256.Sum256([]byte(oid))
	fg := color.RGBA{R: 40 + h[0]%170, G: 40 + h[1]%170, B: 40 + h[2]%170, A: 255}
	bg := color.RGBA{R: 255 - (255-fg.R)/4, G: 255 - (255-fg.G)/4, B: 255 - (255-fg.B)/4, A: 255}
	img := image.NewRGBA(image.Rect(0, 0, photoSize, photoSize))
	c, r := photoSize/2, photoSize*2/5
	for y := 0; y < photoSize; y++ {
		for x := 0; x < photoSize; x++ {
			dx, dy := x-c, y-c
			if dx*dx+dy*dy <= r*r {
				img.SetRGBA(x, y, fg)
			} else {
				img.SetRGBA(x, y, bg)
			}
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		return nil
	}
	b, _ := photos.LoadOrStore(oid, buf.Bytes())
	return b.([]byte)
}
