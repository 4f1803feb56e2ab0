//go:build cgo

package onnx

/*
#cgo pkg-config: libswscale libavutil
#include "lb.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/vigil-edge/vigil/models"
)

// geometry is where a frame lands in the model input: resized to rw x rh at offset (ox, oy),
// scaled by sx, sy.
type geometry struct {
	srcW, srcH int
	rw, rh     int
	ox, oy     int
	sx, sy     float32
}

// letterbox computes the geometry of a srcW x srcH frame in a dstW x dstH input for a
// manifest letterbox mode ("stretch", "center" or "top-left").
func letterbox(mode string, srcW, srcH, dstW, dstH int) geometry {
	g := geometry{srcW: srcW, srcH: srcH, rw: dstW, rh: dstH}
	if mode != "stretch" {
		r := min(float64(dstW)/float64(srcW), float64(dstH)/float64(srcH))
		// Truncate like YOLOX's own preprocessing (int(w*r)); never below one pixel.
		g.rw = min(max(int(float64(srcW)*r), 1), dstW)
		g.rh = min(max(int(float64(srcH)*r), 1), dstH)
		if mode == "center" {
			g.ox, g.oy = (dstW-g.rw)/2, (dstH-g.rh)/2
		}
	}
	g.sx, g.sy = float32(g.rw)/float32(srcW), float32(g.rh)/float32(srcH)
	return g
}

// toSource maps a box in model-input pixels back to the frame, clipped to it.
func (g geometry) toSource(b models.Box) models.Box {
	clip := func(v float32, hi int) float32 { return min(max(v, 0), float32(hi)) }
	return models.Box{
		X1: clip((b.X1-float32(g.ox))/g.sx, g.srcW),
		Y1: clip((b.Y1-float32(g.oy))/g.sy, g.srcH),
		X2: clip((b.X2-float32(g.ox))/g.sx, g.srcW),
		Y2: clip((b.Y2-float32(g.oy))/g.sy, g.srcH),
	}
}

// scaler scales YUV frames straight into the letterbox picture with libswscale: the only
// colour conversion a frame that goes to the detector gets.
type scaler struct {
	c   *C.lb
	out []byte // rw x rh packed BGR24
}

// scale converts img (I420 or NV12, any crop of a frame) to a w x h packed BGR picture, which
// stays valid until the next call.
func (s *scaler) scale(img models.Image, w, h int) ([]byte, error) {
	if s.c == nil {
		if s.c = C.lb_new(); s.c == nil {
			return nil, fmt.Errorf("letterbox: out of memory")
		}
	}
	if n := 3 * w * h; cap(s.out) < n {
		s.out = make([]byte, n)
	}
	s.out = s.out[:3*w*h]
	format := C.int(1)
	u, v := (*C.uint8_t)(unsafe.Pointer(&img.U[0])), (*C.uint8_t)(nil)
	if img.Format == models.NV12 {
		format = 2
	} else {
		v = (*C.uint8_t)(unsafe.Pointer(&img.V[0]))
	}
	full := C.int(0)
	if img.FullRange {
		full = 1
	}
	ret := C.lb_scale(s.c, format, C.int(img.Width), C.int(img.Height),
		(*C.uint8_t)(unsafe.Pointer(&img.Pix[0])), C.int(img.Stride),
		u, C.int(img.UStride), v, C.int(img.VStride),
		full, C.int(img.Matrix), C.int(w), C.int(h), (*C.uint8_t)(unsafe.Pointer(&s.out[0])), C.int(3*w))
	if ret < 0 {
		return nil, fmt.Errorf("letterbox: scale %s %dx%d to %dx%d failed (%d)", img.Format, img.Width, img.Height, w, h, int(ret))
	}
	return s.out, nil
}

func (s *scaler) close() {
	if s.c != nil {
		C.lb_free(s.c)
		s.c = nil
	}
}

// prepare letterboxes img into the input tensor. The padding is written only when the frame's
// geometry changes, since the picture always lands on the same rectangle.
func (d *Detector) prepare(img models.Image) (geometry, error) {
	return d.prepareInto(d.in.GetData(), &d.geom, img)
}

// prepareInto letterboxes img into t, one frame's input (3 planes); last is the geometry the
// padding in t was written for, updated.
func (d *Detector) prepareInto(t []float32, last *geometry, img models.Image) (geometry, error) {
	g := letterbox(d.m.Input.Letterbox, img.Width, img.Height, d.m.Input.Width, d.m.Input.Height)
	if g != *last {
		d.fillPad(t)
		*last = g
	}
	return g, d.draw(t, img, g)
}

// fillPad writes the padding value over all of t, one frame's input.
func (d *Detector) fillPad(t []float32) {
	plane := d.m.Input.Width * d.m.Input.Height
	pad := d.m.Input.PadValue
	fill(t[:plane], d.lut[0][pad])
	fill(t[plane:2*plane], d.lut[1][pad])
	fill(t[2*plane:3*plane], d.lut[2][pad])
}

// draw scales img to g's rw x rh and writes it into t at (g.ox, g.oy), through the input's
// colour order and normalisation.
func (d *Detector) draw(t []float32, img models.Image, g geometry) error {
	W, H := d.m.Input.Width, d.m.Input.Height
	plane := W * H
	p0, p1, p2 := t[:plane:plane], t[plane:2*plane:2*plane], t[2*plane:3*plane:3*plane]
	src, err := d.resize(img, g)
	if err != nil {
		return err
	}
	l0, l1, l2 := &d.lut[0], &d.lut[1], &d.lut[2]
	b0, b1, b2 := d.srcByte[0], d.srcByte[1], d.srcByte[2]
	for y := range g.rh {
		row := src[y*3*g.rw : (y+1)*3*g.rw : (y+1)*3*g.rw]
		o := (g.oy+y)*W + g.ox
		q0, q1, q2 := p0[o:o+g.rw:o+g.rw], p1[o:o+g.rw:o+g.rw], p2[o:o+g.rw:o+g.rw]
		for x := range q0 {
			px := row[3*x : 3*x+3 : 3*x+3]
			q0[x] = l0[px[b0]]
			q1[x] = l1[px[b1]]
			q2[x] = l2[px[b2]]
		}
	}
	return nil
}

// resize returns img scaled to the letterbox's g.rw x g.rh as packed BGR rows: a YUV frame
// through libswscale in one pass (its only colour conversion), a BGR picture (a file given to
// `detect`) by bilinear interpolation in Go, as OpenCV's INTER_LINEAR does, so that its
// colours come through exactly (libswscale would round them through YUV).
func (d *Detector) resize(img models.Image, g geometry) ([]byte, error) {
	if img.Format != models.BGR24 {
		return d.sc.scale(img, g.rw, g.rh)
	}
	if g.rw == img.Width && g.rh == img.Height && img.Stride == 3*img.Width {
		return img.Pix[:img.Height*img.Stride], nil
	}
	n := 3 * g.rw * g.rh
	if cap(d.sc.out) < n {
		d.sc.out = make([]byte, n)
	}
	out := d.sc.out[:n]
	type tap struct {
		i0, i1 int
		f      float32
	}
	taps := func(dst, src int) []tap {
		t := make([]tap, dst)
		scale := float32(src) / float32(dst)
		for i := range t {
			v := min(max((float32(i)+0.5)*scale-0.5, 0), float32(src-1))
			i0 := int(v)
			t[i] = tap{i0, min(i0+1, src-1), v - float32(i0)}
		}
		return t
	}
	xs, ys := taps(g.rw, img.Width), taps(g.rh, img.Height)
	for y, ty := range ys {
		r0, r1 := img.Pix[ty.i0*img.Stride:], img.Pix[ty.i1*img.Stride:]
		row := out[3*y*g.rw : 3*(y+1)*g.rw]
		for x, tx := range xs {
			for k := range 3 {
				a := float32(r0[3*tx.i0+k])*(1-tx.f) + float32(r0[3*tx.i1+k])*tx.f
				b := float32(r1[3*tx.i0+k])*(1-tx.f) + float32(r1[3*tx.i1+k])*tx.f
				row[3*x+k] = uint8(a*(1-ty.f) + b*ty.f + 0.5)
			}
		}
	}
	return out, nil
}

// fill sets every element of s to v.
func fill(s []float32, v float32) {
	for i := range s {
		s[i] = v
	}
}
