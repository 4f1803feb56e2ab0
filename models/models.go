// Package models holds what every model family shares: the Detector interface, the plain
// Detection and Image types, the Manifest that describes a model file, the Decoder registry
// and class-aware NMS. It is a leaf: it imports nothing of Vigil's.
//
// A new model family is a new Decoder (see yolox/ and yolov8/), registered by name; the
// runtime in onnx/ and the pipeline do not change.
package models

import (
	"context"
	"errors"
	"image"
)

// PixelFormat is an Image's pixel layout.
type PixelFormat uint8

// Pixel formats. BGR24 is the zero value, so an Image built with only Width, Height, Stride
// and Pix is packed BGR.
const (
	// BGR24: packed 8-bit B, G, R; row y starts at Pix[y*Stride].
	BGR24 PixelFormat = iota
	// I420: planar 8-bit YUV 4:2:0: Y in Pix (Stride), U in U (UStride) and V in V (VStride)
	// at half the width and height, rounded up.
	I420
	// NV12: Y in Pix (Stride), then U and V interleaved in U (UStride) at half the width and
	// height, rounded up; V is unused.
	NV12
)

func (f PixelFormat) String() string {
	switch f {
	case BGR24:
		return "bgr24"
	case I420:
		return "yuv420p"
	case NV12:
		return "nv12"
	}
	return "unknown"
}

// Image is an 8-bit picture: packed BGR (the zero Format) or planar YUV 4:2:0 straight from
// a video decoder. Row y of the first plane (BGR pixels, or Y) starts at Pix[y*Stride].
type Image struct {
	Width, Height int
	Stride        int
	Pix           []byte

	Format PixelFormat
	// U and V are the chroma planes of a YUV image (NV12: U holds U and V interleaved).
	U, V             []byte
	UStride, VStride int
	// FullRange: YUV samples span 0-255 (JPEG range) rather than 16-235.
	FullRange bool
	// Matrix is a YUV image's colour matrix as ITU-T H.273 matrix_coefficients (1 BT.709,
	// 5 and 6 BT.601, 9 BT.2020); 0 or 2 (unspecified) mean BT.601.
	Matrix int
}

// chromaSize is the size of a 4:2:0 chroma plane of a w x h picture.
func chromaSize(w, h int) (int, int) { return (w + 1) / 2, (h + 1) / 2 }

// Valid reports whether the image's sizes and buffers agree.
func (im Image) Valid() bool {
	if im.Width <= 0 || im.Height <= 0 {
		return false
	}
	switch im.Format {
	case BGR24:
		return im.Stride >= 3*im.Width && len(im.Pix) >= (im.Height-1)*im.Stride+3*im.Width
	case I420, NV12:
		cw, ch := chromaSize(im.Width, im.Height)
		if im.Stride < im.Width || len(im.Pix) < (im.Height-1)*im.Stride+im.Width {
			return false
		}
		if im.Format == NV12 {
			return im.UStride >= 2*cw && len(im.U) >= (ch-1)*im.UStride+2*cw
		}
		return im.UStride >= cw && len(im.U) >= (ch-1)*im.UStride+cw &&
			im.VStride >= cw && len(im.V) >= (ch-1)*im.VStride+cw
	}
	return false
}

// Crop returns the part r of the image as a view sharing its pixels and strides, and the
// rectangle the view really covers: for YUV 4:2:0 images r's top-left corner is first moved
// up and left to even coordinates, so that the chroma planes line up. r is clipped to the
// image; an empty result has Width or Height 0.
func (im Image) Crop(r image.Rectangle) (Image, image.Rectangle) {
	r = r.Intersect(image.Rect(0, 0, im.Width, im.Height))
	if im.Format != BGR24 {
		r.Min.X &^= 1
		r.Min.Y &^= 1
	}
	if r.Empty() {
		return Image{Format: im.Format}, r
	}
	out := im
	out.Width, out.Height = r.Dx(), r.Dy()
	switch im.Format {
	case BGR24:
		out.Pix = im.Pix[r.Min.Y*im.Stride+3*r.Min.X:]
	default:
		out.Pix = im.Pix[r.Min.Y*im.Stride+r.Min.X:]
		cx, cy := r.Min.X/2, r.Min.Y/2
		if im.Format == NV12 {
			out.U = im.U[cy*im.UStride+2*cx:]
		} else {
			out.U = im.U[cy*im.UStride+cx:]
			out.V = im.V[cy*im.VStride+cx:]
		}
	}
	return out, r
}

// Box is an axis-aligned box, corners in pixels (X1,Y1 top-left; X2,Y2 bottom-right).
type Box struct {
	X1, Y1, X2, Y2 float32
}

// Area is the box's area, 0 for an empty or inverted box.
func (b Box) Area() float32 {
	w, h := b.X2-b.X1, b.Y2-b.Y1
	if w <= 0 || h <= 0 {
		return 0
	}
	return w * h
}

// IoU is the intersection over union of two boxes.
func (b Box) IoU(o Box) float32 {
	ix := min(b.X2, o.X2) - max(b.X1, o.X1)
	iy := min(b.Y2, o.Y2) - max(b.Y1, o.Y1)
	if ix <= 0 || iy <= 0 {
		return 0
	}
	inter := ix * iy
	return inter / (b.Area() + o.Area() - inter)
}

// Detection is one object found in one image.
type Detection struct {
	ClassID int
	Label   string
	Score   float32
	Box     Box // in the pixels of the image given to Detect
}

// Detector finds objects in images.
//
// Call contract: Detect is called from one goroutine at a time (implementations need not be
// safe for concurrent use); img is only read, and not retained after Detect returns. The
// returned boxes are in img's pixels, clipped to it, after NMS and the score threshold.
// Close releases native resources; no call may follow it.
type Detector interface {
	Detect(ctx context.Context, img Image) ([]Detection, error)
	Manifest() Manifest
	Close() error
}

// Filter narrows one call's results: a stricter score, another NMS IoU, fewer labels.
type Filter struct {
	Score float32 // results below it are dropped; 0 (or below the detector's own) keeps the detector's
	NMS   float32 // class-aware NMS IoU threshold; 0 keeps the detector's
	Keep  []bool  // by class id: the labels kept; nil keeps all
}

// FilteredDetector is a Detector whose thresholds and labels are chosen per call, so that one
// detector (one model session) serves cameras with different settings. Same call contract as
// Detect.
type FilteredDetector interface {
	DetectFiltered(ctx context.Context, img Image, f Filter) ([]Detection, error)
}

// Sentinel errors.
var (
	// ErrBadModel: the model file or its manifest is unusable (corrupt, wrong shape, unknown family).
	ErrBadModel = errors.New("bad model")
	// ErrBadImage: the image given to Detect is empty or inconsistent.
	ErrBadImage = errors.New("bad image")
)
