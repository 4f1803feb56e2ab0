//go:build cgo

package onnx

import (
	"context"
	"fmt"

	"github.com/vigil-edge/vigil/models"
)

// PairMaxLoss is how much of its linear scale a frame may lose, against a run of its own,
// for DetectPair to take it: a square input letterboxes a 16:9 frame into 56 % of its rows,
// so two such frames stacked fit one run at 89 % of the scale (an 11 % loss: paired); two
// 4:3 frames would lose 33 % (not paired).
const PairMaxLoss = 0.15

// pairGeometry is where a w x h frame lands in half k (0: top, 1: bottom) of the input when
// it shares a run, and whether it may (PairMaxLoss; never with the "stretch" letterbox,
// which would change the frame's aspect further).
func (d *Detector) pairGeometry(w, h, k int) (geometry, bool) {
	W, H := d.m.Input.Width, d.m.Input.Height
	half := H / 2
	g := letterbox(d.m.Input.Letterbox, w, h, W, half)
	g.oy += k * half
	whole := letterbox(d.m.Input.Letterbox, w, h, W, H)
	ok := d.m.Input.Letterbox != "stretch" && d.batch == nil && w > 0 && h > 0 && g.sx >= (1-PairMaxLoss)*whole.sx
	return g, ok
}

// CanPair reports whether a w x h frame is wide enough to share a run with another
// (PairMaxLoss).
func (d *Detector) CanPair(w, h int) bool {
	_, ok := d.pairGeometry(w, h, 0)
	return ok
}

// DetectPair detects two frames in one run of the model, stacked one above the other in its
// input, each letterboxed into its half (the idea of DeepStream's and some NVRs' mosaic
// inference): for wide frames (CanPair) it halves the runs at a small loss of scale. A
// detection belongs to the frame its centre is in, is clipped to that frame, and NMS runs
// per frame. A frame that cannot be paired, or a pair with a bad image, runs one frame a
// run instead. It returns one result and one error per frame.
func (d *Detector) DetectPair(ctx context.Context, imgs [2]models.Image, fs [2]models.Filter) ([2][]models.Detection, [2]error) {
	var res [2][]models.Detection
	var errs [2]error
	var gs [2]geometry
	pairable := d.session != nil
	for k, img := range imgs {
		var ok bool
		gs[k], ok = d.pairGeometry(img.Width, img.Height, k)
		pairable = pairable && ok && img.Valid()
	}
	if !pairable {
		for k, img := range imgs {
			res[k], errs[k] = d.DetectFiltered(ctx, img, fs[k])
		}
		return res, errs
	}
	fail := func(err error) ([2][]models.Detection, [2]error) { return res, [2]error{err, err} }
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	t := d.in.GetData()
	d.fillPad(t)
	d.geom = geometry{} // the next one-frame run rewrites its padding
	for k, img := range imgs {
		if err := d.draw(t, img, gs[k]); err != nil {
			return fail(err)
		}
	}
	if err := d.session.Run(); err != nil {
		return fail(fmt.Errorf("model %q: run of a pair: %w", d.m.Name, err))
	}
	low := min(max(d.score, fs[0].Score), max(d.score, fs[1].Score))
	cands, err := d.dec.Decode(d.cands[:0], d.out.GetData(), d.outDims, low, len(d.m.Labels))
	if err != nil {
		return fail(fmt.Errorf("model %q: %w", d.m.Name, err))
	}
	d.cands = cands
	half := float32(d.m.Input.Height / 2)
	for k := range imgs {
		top, bottom := float32(k)*half, float32(k+1)*half
		var mine []models.Detection
		for _, c := range cands {
			if cy := (c.Box.Y1 + c.Box.Y2) / 2; cy < top || cy >= bottom {
				continue
			}
			c.Box.Y1, c.Box.Y2 = max(c.Box.Y1, top), min(c.Box.Y2, bottom)
			mine = append(mine, c)
		}
		res[k] = d.toDetections(mine, gs[k], fs[k])
	}
	return res, errs
}
