package snapshot

import (
	"image"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// canvas is a packed BGR24 picture to draw on.
type canvas struct {
	pix  []byte
	w, h int
}

// set paints pixel (x, y) when it is inside the picture.
func (c canvas) set(x, y int, bgr [3]byte) {
	if x < 0 || y < 0 || x >= c.w || y >= c.h {
		return
	}
	o := 3 * (y*c.w + x)
	c.pix[o], c.pix[o+1], c.pix[o+2] = bgr[0], bgr[1], bgr[2]
}

// fillRect paints r, clipped to the picture.
func (c canvas) fillRect(r image.Rectangle, bgr [3]byte) {
	r = r.Intersect(image.Rect(0, 0, c.w, c.h))
	for y := r.Min.Y; y < r.Max.Y; y++ {
		row := c.pix[3*(y*c.w+r.Min.X) : 3*(y*c.w+r.Max.X)]
		for i := 0; i < len(row); i += 3 {
			row[i], row[i+1], row[i+2] = bgr[0], bgr[1], bgr[2]
		}
	}
}

// rect outlines r with lines t pixels thick, drawn inside r.
func (c canvas) rect(r image.Rectangle, t int, bgr [3]byte) {
	if r.Empty() {
		return
	}
	t = max(1, min(t, r.Dx(), r.Dy()))
	c.fillRect(image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+t), bgr)
	c.fillRect(image.Rect(r.Min.X, r.Max.Y-t, r.Max.X, r.Max.Y), bgr)
	c.fillRect(image.Rect(r.Min.X, r.Min.Y, r.Min.X+t, r.Max.Y), bgr)
	c.fillRect(image.Rect(r.Max.X-t, r.Min.Y, r.Max.X, r.Max.Y), bgr)
}

// face is the caption font: a fixed 7x13 bitmap, scaled by whole pixels.
var face = basicfont.Face7x13

// text writes s with its baseline's left end at p, each font pixel drawn as a scale x scale
// square, on a dark backing so that it reads on any scene.
func (c canvas) text(s string, p image.Point, scale int, bgr [3]byte) {
	if s == "" {
		return
	}
	scale = max(1, scale)
	m := face.Metrics()
	width := font.MeasureString(face, s).Ceil()
	asc, desc := m.Ascent.Ceil(), m.Descent.Ceil()
	mask := image.NewAlpha(image.Rect(0, 0, width, asc+desc))
	d := font.Drawer{Dst: mask, Src: image.Opaque, Face: face, Dot: fixed.P(0, asc)}
	d.DrawString(s)
	top := p.Y - asc*scale
	c.fillRect(image.Rect(p.X-scale, top-scale, p.X+(width+1)*scale, p.Y+desc*scale), [3]byte{})
	for y := range mask.Rect.Dy() {
		for x := range mask.Rect.Dx() {
			if mask.AlphaAt(x, y).A < 128 {
				continue
			}
			c.fillRect(image.Rect(p.X+x*scale, top+y*scale, p.X+(x+1)*scale, top+(y+1)*scale), bgr)
		}
	}
}
