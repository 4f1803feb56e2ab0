//go:build cgo

package snapshot

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"slices"

	"gocv.io/x/gocv"

	"github.com/vigil-edge/vigil/models"
)

// Encode makes a JPEG of img (BGR, only read): downscaled to enc.MaxWidth, redacted by redact
// (when not nil) on its own copy, then boxes drawn with their captions, at enc.Quality.
func Encode(img models.Image, boxes []Box, redact Redact, enc Encoding) ([]byte, error) {
	enc = enc.orDefaults()
	if !img.Valid() {
		return nil, fmt.Errorf("%w: %dx%d, stride %d, %d bytes", models.ErrBadImage, img.Width, img.Height, img.Stride, len(img.Pix))
	}
	// A Mat over the caller's pixels, only ever read.
	rowBytes := 3 * img.Width
	pix := img.Pix[:(img.Height-1)*img.Stride+rowBytes]
	if img.Stride != rowBytes {
		packed := make([]byte, img.Height*rowBytes)
		for y := range img.Height {
			copy(packed[y*rowBytes:(y+1)*rowBytes], img.Pix[y*img.Stride:])
		}
		pix = packed
	}
	src, err := gocv.NewMatFromBytes(img.Height, img.Width, gocv.MatTypeCV8UC3, pix)
	if err != nil {
		return nil, err
	}
	defer src.Close()

	// Our own copy, downscaled where needed.
	w, h := img.Width, img.Height
	var own gocv.Mat
	if w > enc.MaxWidth {
		h = max(1, (h*enc.MaxWidth+w/2)/w)
		w = enc.MaxWidth
		own = gocv.NewMat()
		gocv.Resize(src, &own, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	} else {
		own = src.Clone()
	}
	defer own.Close()
	if own.Cols() != w || own.Rows() != h || !own.IsContinuous() {
		return nil, fmt.Errorf("resize to %dx%d failed", w, h)
	}
	if redact != nil {
		data, err := own.DataPtrUint8()
		if err != nil {
			return nil, err
		}
		if err := redact(models.Image{Width: w, Height: h, Stride: 3 * w, Pix: data}); err != nil {
			return nil, fmt.Errorf("redact: %w", err)
		}
	}
	sx, sy := float32(w)/float32(img.Width), float32(h)/float32(img.Height)
	green := color.RGBA{G: 255, A: 255}
	for _, b := range boxes {
		if b.Area() <= 0 {
			continue
		}
		r := image.Rect(int(b.X1*sx), int(b.Y1*sy), int(b.X2*sx), int(b.Y2*sy)).Intersect(image.Rect(0, 0, w, h))
		gocv.Rectangle(&own, r, green, max(2, w/640))
		if b.Text != "" {
			scale := max(0.4, float64(w)/1600)
			gocv.PutText(&own, b.Text, image.Pt(r.Min.X, max(r.Min.Y-4, 12)), gocv.FontHersheySimplex, scale, green, max(1, w/800))
		}
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, own, []int{gocv.IMWriteJpegQuality, enc.Quality})
	if err != nil {
		return nil, fmt.Errorf("encode JPEG: %w", err)
	}
	defer buf.Close()
	out := slices.Clone(buf.GetBytes())
	if len(out) == 0 {
		return nil, errors.New("encode JPEG: no output")
	}
	return out, nil
}
