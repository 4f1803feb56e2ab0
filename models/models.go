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
)

// Image is a packed 8-bit BGR image: row y starts at Pix[y*Stride], 3 bytes per pixel.
type Image struct {
	Width, Height int
	Stride        int
	Pix           []byte
}

// Valid reports whether the image's sizes and buffer agree.
func (im Image) Valid() bool {
	return im.Width > 0 && im.Height > 0 && im.Stride >= 3*im.Width && len(im.Pix) >= (im.Height-1)*im.Stride+3*im.Width
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

// Sentinel errors.
var (
	// ErrBadModel: the model file or its manifest is unusable (corrupt, wrong shape, unknown family).
	ErrBadModel = errors.New("bad model")
	// ErrBadImage: the image given to Detect is empty or inconsistent.
	ErrBadImage = errors.New("bad image")
)
