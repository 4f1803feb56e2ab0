//go:build cgo

package mask

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"gocv.io/x/gocv"

	"github.com/vigil-edge/vigil/models"
)

// blurCells is how many cells the longer side of a blurred mask's bounding box is averaged
// into; minBlurBlock is the least cell size in pixels.
const (
	blurCells    = 10
	minBlurBlock = 6
)

// Apply redacts every mask's pixels of img in place. A vertex (x, y) lands on pixel
// (round(x*width), round(y*height)), clamped to the image, and the polygon's edges are part of
// the redacted area (a mask errs on the side of covering more).
//
// ModeBlack sets the pixels to 0. ModeBlur averages the mask's bounding box over cells of a
// tenth of its longer side (at least 6 pixels), smooths the cells back to full size and copies
// the result through the polygon: no detail smaller than a cell survives, which makes faces
// and number plates inside unrecognisable while keeping the scene's colours.
//
// The masks should have passed Validate; Apply itself only needs each to have 3 points or more
// and skips the others. Apply returns an error only for an inconsistent image.
func Apply(img models.Image, masks []Mask) error {
	if len(masks) == 0 {
		return nil
	}
	if !img.Valid() {
		return fmt.Errorf("apply privacy masks: %w (%dx%d, stride %d, %d bytes)", models.ErrBadImage,
			img.Width, img.Height, img.Stride, len(img.Pix))
	}
	rowBytes := 3 * img.Width
	packed := img.Stride == rowBytes
	var buf []byte
	if packed {
		buf = img.Pix[:img.Height*rowBytes]
	} else {
		buf = make([]byte, img.Height*rowBytes)
		for y := range img.Height {
			copy(buf[y*rowBytes:(y+1)*rowBytes], img.Pix[y*img.Stride:])
		}
	}
	mat, err := gocv.NewMatFromBytes(img.Height, img.Width, gocv.MatTypeCV8UC3, buf)
	if err != nil {
		return fmt.Errorf("apply privacy masks: %w", err)
	}
	defer mat.Close()
	for _, m := range masks {
		if len(m.Points) < 3 {
			continue
		}
		pts := toPixels(m.Points, img.Width, img.Height)
		if m.Mode == ModeBlur {
			blur(&mat, pts)
		} else {
			fill(&mat, pts, color.RGBA{})
		}
	}
	if !packed {
		for y := range img.Height {
			copy(img.Pix[y*img.Stride:y*img.Stride+rowBytes], buf[y*rowBytes:])
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

// fill paints the polygon pts on m with c.
func fill(m *gocv.Mat, pts []image.Point, c color.RGBA) {
	pv := gocv.NewPointsVectorFromPoints([][]image.Point{pts})
	defer pv.Close()
	gocv.FillPoly(m, pv, c)
}

// blur replaces the polygon pts of m by a coarse, smoothed version of itself.
func blur(m *gocv.Mat, pts []image.Point) {
	r := image.Rectangle{Min: pts[0], Max: pts[0]}
	for _, p := range pts[1:] {
		r.Min.X, r.Min.Y = min(r.Min.X, p.X), min(r.Min.Y, p.Y)
		r.Max.X, r.Max.Y = max(r.Max.X, p.X), max(r.Max.Y, p.Y)
	}
	r.Max = r.Max.Add(image.Pt(1, 1)) // edges are inclusive
	w, h := r.Dx(), r.Dy()
	block := max(minBlurBlock, (max(w, h)+blurCells-1)/blurCells)
	sw, sh := max(1, (w+block-1)/block), max(1, (h+block-1)/block)

	region := m.Region(r)
	defer region.Close()
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(region, &small, image.Pt(sw, sh), 0, 0, gocv.InterpolationArea)
	if sw >= 3 && sh >= 3 {
		gocv.GaussianBlur(small, &small, image.Pt(3, 3), 0, 0, gocv.BorderReflect101)
	}
	blurred := gocv.NewMat()
	defer blurred.Close()
	gocv.Resize(small, &blurred, image.Pt(w, h), 0, 0, gocv.InterpolationLinear)

	sel := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(0, 0, 0, 0), h, w, gocv.MatTypeCV8UC1)
	defer sel.Close()
	local := make([]image.Point, len(pts))
	for i, p := range pts {
		local[i] = p.Sub(r.Min)
	}
	fill(&sel, local, color.RGBA{R: 255, G: 255, B: 255, A: 255})
	blurred.CopyToWithMask(&region, sel)
}
