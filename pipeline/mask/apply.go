package mask

import (
	"fmt"
	"image"
	"math"
	"slices"

	"github.com/vigil-edge/vigil/models"
)

// blurCells is how many cells the longer side of a blurred mask's bounding box is averaged
// into; minBlurBlock is the least cell size in pixels.
const (
	blurCells    = 10
	minBlurBlock = 6
)

// Apply redacts every mask's pixels of img (packed BGR) in place. A vertex (x, y) lands on
// pixel (round(x*width), round(y*height)), clamped to the image, and the polygon's edges are
// part of the redacted area (a mask errs on the side of covering more).
//
// ModeBlack sets the pixels to 0. ModeBlur averages the mask's bounding box over cells of a
// tenth of its longer side (at least 6 pixels), smooths the cells back to full size and copies
// the result through the polygon: no detail smaller than a cell survives, which makes faces
// and number plates inside unrecognisable while keeping the scene's colours.
//
// The masks should have passed Validate; Apply itself only needs each to have 3 points or more
// and skips the others. Apply returns an error only for an inconsistent image. It is plain Go:
// a binary built without cgo redacts the same way.
func Apply(img models.Image, masks []Mask) error {
	if len(masks) == 0 {
		return nil
	}
	if !img.Valid() || img.Format != models.BGR24 {
		return fmt.Errorf("apply privacy masks: %w (%s %dx%d, stride %d, %d bytes)", models.ErrBadImage,
			img.Format, img.Width, img.Height, img.Stride, len(img.Pix))
	}
	for _, m := range masks {
		if len(m.Points) < 3 {
			continue
		}
		sel := rasterize(toPixels(m.Points, img.Width, img.Height))
		if m.Mode == ModeBlur {
			blur(img, sel)
		} else {
			sel.each(func(x, y int) {
				o := y*img.Stride + 3*x
				img.Pix[o], img.Pix[o+1], img.Pix[o+2] = 0, 0, 0
			})
		}
	}
	return nil
}

// toPixels maps normalised points onto a w x h image.
func toPixels(p Polygon, w, h int) []image.Point {
	clamp := func(v float64, n int) int {
		if math.IsNaN(v) {
			return 0
		}
		return min(max(int(math.Round(v*float64(n))), 0), n-1)
	}
	out := make([]image.Point, len(p))
	for i, pt := range p {
		out[i] = image.Pt(clamp(pt[0], w), clamp(pt[1], h))
	}
	return out
}

// selection is the set of pixels a polygon covers, over its bounding box r.
type selection struct {
	r   image.Rectangle
	set []bool // r.Dx() * r.Dy(), row by row
}

func (s selection) each(fn func(x, y int)) {
	w := s.r.Dx()
	for i, in := range s.set {
		if in {
			fn(s.r.Min.X+i%w, s.r.Min.Y+i/w)
		}
	}
}

// rasterize selects the pixels whose centres lie inside the polygon (even-odd rule) and every
// pixel its edges pass through.
func rasterize(pts []image.Point) selection {
	r := image.Rectangle{Min: pts[0], Max: pts[0]}
	for _, p := range pts[1:] {
		r.Min.X, r.Min.Y = min(r.Min.X, p.X), min(r.Min.Y, p.Y)
		r.Max.X, r.Max.Y = max(r.Max.X, p.X), max(r.Max.Y, p.Y)
	}
	r.Max = r.Max.Add(image.Pt(1, 1)) // edges are inclusive
	s := selection{r: r, set: make([]bool, r.Dx()*r.Dy())}
	w := r.Dx()
	mark := func(x, y int) { s.set[(y-r.Min.Y)*w+x-r.Min.X] = true }
	var xs []float64
	for y := r.Min.Y; y < r.Max.Y; y++ {
		xs = xs[:0]
		fy := float64(y)
		for i, a := range pts {
			b := pts[(i+1)%len(pts)]
			if a.Y == b.Y {
				continue
			}
			lo, hi := a, b
			if lo.Y > hi.Y {
				lo, hi = hi, lo
			}
			if fy < float64(lo.Y) || fy >= float64(hi.Y) { // half-open: a vertex counts once
				continue
			}
			xs = append(xs, float64(lo.X)+(fy-float64(lo.Y))*float64(hi.X-lo.X)/float64(hi.Y-lo.Y))
		}
		slices.Sort(xs)
		for i := 0; i+1 < len(xs); i += 2 {
			for x := int(math.Ceil(xs[i])); x <= int(math.Floor(xs[i+1])); x++ {
				mark(x, y)
			}
		}
	}
	for i, a := range pts {
		line(a, pts[(i+1)%len(pts)], mark)
	}
	return s
}

// line calls mark for every pixel of the segment a-b (Bresenham).
func line(a, b image.Point, mark func(x, y int)) {
	dx, dy := abs(b.X-a.X), -abs(b.Y-a.Y)
	sx, sy := isign(b.X-a.X), isign(b.Y-a.Y)
	e := dx + dy
	for {
		mark(a.X, a.Y)
		if a == b {
			return
		}
		if 2*e >= dy {
			e += dy
			a.X += sx
		}
		if 2*e <= dx {
			e += dx
			a.Y += sy
		}
	}
}

func abs(v int) int { return max(v, -v) }

func isign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// blur replaces the selected pixels of img by a coarse, smoothed version of the selection's
// bounding box: cell averages, a 3x3 Gaussian over the cells, bilinear back to full size.
func blur(img models.Image, s selection) {
	r := s.r
	w, h := r.Dx(), r.Dy()
	block := max(minBlurBlock, (max(w, h)+blurCells-1)/blurCells)
	sw, sh := max(1, (w+block-1)/block), max(1, (h+block-1)/block)

	// Cell averages (a cell at the right or bottom edge may be narrower).
	small := make([]float64, 3*sw*sh)
	count := make([]float64, sw*sh)
	for y := range h {
		row := img.Pix[(r.Min.Y+y)*img.Stride+3*r.Min.X:]
		for x := range w {
			c := (y/block)*sw + x/block
			small[3*c] += float64(row[3*x])
			small[3*c+1] += float64(row[3*x+1])
			small[3*c+2] += float64(row[3*x+2])
			count[c]++
		}
	}
	for c, n := range count {
		for k := range 3 {
			small[3*c+k] /= n
		}
	}
	if sw >= 3 && sh >= 3 {
		small = gauss3(small, sw, sh)
	}
	// Bilinear back to w x h, written through the selection.
	at := func(v float64, n int) (int, int, float64) {
		v = min(max(v, 0), float64(n-1))
		i := int(v)
		return i, min(i+1, n-1), v - float64(i)
	}
	s.each(func(x, y int) {
		x0, x1, fx := at((float64(x-r.Min.X)+0.5)*float64(sw)/float64(w)-0.5, sw)
		y0, y1, fy := at((float64(y-r.Min.Y)+0.5)*float64(sh)/float64(h)-0.5, sh)
		o := y*img.Stride + 3*x
		for k := range 3 {
			top := small[3*(y0*sw+x0)+k]*(1-fx) + small[3*(y0*sw+x1)+k]*fx
			bot := small[3*(y1*sw+x0)+k]*(1-fx) + small[3*(y1*sw+x1)+k]*fx
			img.Pix[o+k] = uint8(min(max(math.Round(top*(1-fy)+bot*fy), 0), 255))
		}
	})
}

// gauss3 smooths a w x h 3-channel picture with the separable [1 2 1]/4 kernel, borders
// reflected without repeating the edge (OpenCV's BORDER_REFLECT_101).
func gauss3(p []float64, w, h int) []float64 {
	refl := func(i, n int) int {
		if i < 0 {
			return -i
		}
		if i >= n {
			return 2*n - 2 - i
		}
		return i
	}
	tmp := make([]float64, len(p))
	out := make([]float64, len(p))
	for y := range h {
		for x := range w {
			for k := range 3 {
				tmp[3*(y*w+x)+k] = (p[3*(y*w+refl(x-1, w))+k] + 2*p[3*(y*w+x)+k] + p[3*(y*w+refl(x+1, w))+k]) / 4
			}
		}
	}
	for y := range h {
		for x := range w {
			for k := range 3 {
				out[3*(y*w+x)+k] = (tmp[3*(refl(y-1, h)*w+x)+k] + 2*tmp[3*(y*w+x)+k] + tmp[3*(refl(y+1, h)*w+x)+k]) / 4
			}
		}
	}
	return out
}
