//go:build cgo

package snapshot

/*
#cgo pkg-config: libswscale libavutil libjpeg
#include <stdlib.h>
#include "jpeg.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"image"
	"sync"
	"unsafe"

	"github.com/vigil-edge/vigil/models"
)

// Encode makes a JPEG of img (BGR, only read): downscaled to enc.MaxWidth (area averaging,
// libswscale), redacted by redact (when not nil) on its own copy, then boxes drawn with their
// captions, compressed by libjpeg-turbo at enc.Quality.
func Encode(img models.Image, boxes []Box, redact Redact, enc Encoding) ([]byte, error) {
	enc = enc.orDefaults()
	if !img.Valid() || img.Format != models.BGR24 {
		return nil, fmt.Errorf("%w: %s %dx%d, stride %d, %d bytes", models.ErrBadImage, img.Format, img.Width, img.Height, img.Stride, len(img.Pix))
	}
	// Our own packed copy, downscaled where needed.
	w, h := img.Width, img.Height
	if w > enc.MaxWidth {
		h = max(1, (h*enc.MaxWidth+w/2)/w)
		w = enc.MaxWidth
	}
	buf := pictures.Get().(*[]byte)
	defer pictures.Put(buf)
	if cap(*buf) < 3*w*h {
		*buf = make([]byte, 3*w*h)
	}
	own := (*buf)[:3*w*h]
	if w != img.Width || h != img.Height {
		if C.snap_scale(C.int(img.Width), C.int(img.Height), (*C.uint8_t)(unsafe.Pointer(&img.Pix[0])), C.int(img.Stride),
			C.int(w), C.int(h), (*C.uint8_t)(unsafe.Pointer(&own[0]))) != 0 {
			return nil, fmt.Errorf("resize %dx%d to %dx%d failed", img.Width, img.Height, w, h)
		}
	} else {
		for y := range h {
			copy(own[y*3*w:(y+1)*3*w], img.Pix[y*img.Stride:])
		}
	}
	if redact != nil {
		if err := redact(models.Image{Width: w, Height: h, Stride: 3 * w, Pix: own}); err != nil {
			return nil, fmt.Errorf("redact: %w", err)
		}
	}
	cv := canvas{pix: own, w: w, h: h}
	sx, sy := float32(w)/float32(img.Width), float32(h)/float32(img.Height)
	green := [3]byte{0, 255, 0}
	for _, b := range boxes {
		if b.Area() <= 0 {
			continue
		}
		r := image.Rect(int(b.X1*sx), int(b.Y1*sy), int(b.X2*sx), int(b.Y2*sy)).Intersect(image.Rect(0, 0, w, h))
		cv.rect(r, max(2, w/640), green)
		if b.Text != "" {
			scale := max(1, w/800)
			cv.text(b.Text, image.Pt(r.Min.X, max(r.Min.Y-4*scale, 13*scale)), scale, green)
		}
	}
	return compress(own, w, h, enc.Quality)
}

// pictures holds Encode's working copies (2.6 MiB at 720p) between calls.
var pictures = sync.Pool{New: func() any { return new([]byte) }}

// compress makes a JPEG of a packed w x h BGR picture.
func compress(pix []byte, w, h, quality int) ([]byte, error) {
	var out *C.uint8_t
	var size C.ulong
	var msg [200]C.char
	if C.snap_jpeg(C.int(w), C.int(h), (*C.uint8_t)(unsafe.Pointer(&pix[0])), C.int(3*w), C.int(quality),
		&out, &size, &msg[0], C.int(len(msg))) != 0 {
		return nil, fmt.Errorf("encode JPEG: %s", C.GoString(&msg[0]))
	}
	defer C.snap_free(out)
	if size == 0 {
		return nil, errors.New("encode JPEG: no output")
	}
	return C.GoBytes(unsafe.Pointer(out), C.int(size)), nil
}
