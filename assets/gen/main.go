//go:build ignore

// Command gen draws the Entra Companion icons: a white key inside a rounded square in Entra
// blue (#0078D4), plus tray variants for light and dark panels and an attention variant with an
// amber dot. Run it from the assets directory (go generate does): go run gen/main.go
//
// Shapes are signed distance functions sampled per pixel, so edges are anti-aliased without
// any library beyond the standard one.
package main

import (
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
)

// rgba is a straight (not premultiplied) colour with components in 0..1.
type rgba struct{ r, g, b, a float64 }

func hex(v uint32) rgba {
	return rgba{float64(v>>16&0xff) / 255, float64(v>>8&0xff) / 255, float64(v&0xff) / 255, 1}
}

var (
	entraBlue  = hex(0x0078D4)
	blueTop    = hex(0x1A8CE6)
	blueBottom = hex(0x0063B1)
	darkFill   = hex(0x2B94E8)
	darkRim    = hex(0x8CC8F5)
	white      = hex(0xFFFFFF)
	amber      = hex(0xFFB900)
	amberRim   = hex(0x8A5A00)
)

// sdf helpers: negative inside, positive outside, in icon units (0..1).

func circle(px, py, cx, cy, r float64) float64 { return math.Hypot(px-cx, py-cy) - r }

func box(px, py, x0, y0, x1, y1 float64) float64 {
	cx, cy := (x0+x1)/2, (y0+y1)/2
	hx, hy := (x1-x0)/2, (y1-y0)/2
	dx, dy := math.Abs(px-cx)-hx, math.Abs(py-cy)-hy
	out := math.Hypot(math.Max(dx, 0), math.Max(dy, 0))
	in := math.Min(math.Max(dx, dy), 0)
	return out + in
}

func roundBox(px, py, x0, y0, x1, y1, r float64) float64 {
	return box(px, py, x0+r, y0+r, x1-r, y1-r) - r
}

// key is the key's distance field. The key lies along the diagonal: bow at the upper left,
// bit (teeth) at the lower right.
func key(px, py float64) float64 {
	const bx, by = 0.355, 0.355 // bow centre
	// into the key's frame: x along the shaft, y across it
	c, s := math.Cos(math.Pi/4), math.Sin(math.Pi/4)
	dx, dy := px-bx, py-by
	x := dx*c + dy*s
	y := -dx*s + dy*c

	bow := math.Max(circle(x, y, 0, 0, 0.165), -circle(x, y, 0, 0, 0.07))
	shaft := box(x, y, 0.12, -0.042, 0.565, 0.042)
	tooth1 := box(x, y, 0.40, 0.0, 0.465, 0.135)
	tooth2 := box(x, y, 0.50, 0.0, 0.565, 0.11)
	return math.Min(math.Min(bow, shaft), math.Min(tooth1, tooth2))
}

// coverage turns a distance (icon units) into pixel coverage for an image of size px.
func coverage(d float64, size int) float64 {
	v := 0.5 - d*float64(size)
	return math.Max(0, math.Min(1, v))
}

// over composites src over dst (straight alpha).
func over(dst, src rgba, cov float64) rgba {
	sa := src.a * cov
	if sa <= 0 {
		return dst
	}
	oa := sa + dst.a*(1-sa)
	if oa == 0 {
		return rgba{}
	}
	mix := func(s, d float64) float64 { return (s*sa + d*dst.a*(1-sa)) / oa }
	return rgba{mix(src.r, dst.r), mix(src.g, dst.g), mix(src.b, dst.b), oa}
}

func lerp(a, b rgba, t float64) rgba {
	return rgba{a.r + (b.r-a.r)*t, a.g + (b.g-a.g)*t, a.b + (b.b-a.b)*t, a.a + (b.a-a.a)*t}
}

type style struct {
	margin   float64 // space around the rounded square
	radius   float64 // corner radius
	gradient bool    // vertical gradient instead of flat Entra blue
	fill     rgba    // flat fill when not gradient
	rim      *rgba   // optional light rim (dark panels)
	dot      bool    // amber attention dot
}

func draw(size int, st style) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	m := st.margin
	const dotX, dotY, dotR, gap = 0.79, 0.79, 0.175, 0.05
	for yi := 0; yi < size; yi++ {
		for xi := 0; xi < size; xi++ {
			px := (float64(xi) + 0.5) / float64(size)
			py := (float64(yi) + 0.5) / float64(size)
			var c rgba
			sq := roundBox(px, py, m, m, 1-m, 1-m, st.radius)
			if st.dot { // cut a transparent gap around the dot so it reads on any panel
				sq = math.Max(sq, -circle(px, py, dotX, dotY, dotR+gap))
			}
			fill := st.fill
			if st.gradient {
				fill = lerp(blueTop, blueBottom, (py-m)/(1-2*m))
			}
			c = over(c, fill, coverage(sq, size))
			if st.rim != nil {
				rim := math.Max(sq, -(sq + 0.035))
				c = over(c, *st.rim, coverage(rim, size))
			}
			k := math.Max(key(px, py), sq) // the key stays inside the square
			c = over(c, white, coverage(k, size))
			if st.dot {
				c = over(c, amberRim, coverage(circle(px, py, dotX, dotY, dotR), size))
				c = over(c, amber, coverage(circle(px, py, dotX, dotY, dotR-0.03), size))
			}
			img.SetNRGBA(xi, yi, color.NRGBA{
				R: uint8(math.Round(c.r * 255)), G: uint8(math.Round(c.g * 255)),
				B: uint8(math.Round(c.b * 255)), A: uint8(math.Round(c.a * 255)),
			})
		}
	}
	return img
}

func write(name string, img image.Image) {
	f, err := os.Create(name)
	if err != nil {
		log.Fatal(err)
	}
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(f, img); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}

func main() {
	write("icon.png", draw(512, style{margin: 0.06, radius: 0.2, gradient: true}))
	write("tray.png", draw(64, style{margin: 0.03, radius: 0.2, fill: entraBlue}))
	write("tray-dark.png", draw(64, style{margin: 0.03, radius: 0.2, fill: darkFill, rim: &darkRim}))
	write("tray-attention.png", draw(64, style{margin: 0.03, radius: 0.2, fill: entraBlue, dot: true}))
}
