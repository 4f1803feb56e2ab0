//go:build cgo

package onnx

import (
	"context"
	"errors"
	"fmt"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/vigil-edge/vigil/models"
)

// batchRun is a session over a model with a dynamic batch dimension, with input and output
// tensors for each batch size used so far (up to max).
type batchRun struct {
	session *ort.DynamicAdvancedSession
	max     int
	in, out map[int]*ort.Tensor[float32]
	geom    []geometry // per frame slot of the input: the padding written there
}

func newBatchRun(data []byte, in, out string, max int, so *ort.SessionOptions) (*batchRun, error) {
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(data, []string{in}, []string{out}, so)
	if err != nil {
		return nil, err
	}
	return &batchRun{session: s, max: max, in: map[int]*ort.Tensor[float32]{}, out: map[int]*ort.Tensor[float32]{},
		geom: make([]geometry, max)}, nil
}

func (b *batchRun) close() error {
	var errs []error
	for _, t := range b.in {
		errs = append(errs, t.Destroy())
	}
	for _, t := range b.out {
		errs = append(errs, t.Destroy())
	}
	errs = append(errs, b.session.Destroy())
	return errors.Join(errs...)
}

// MaxBatch is the most frames DetectBatch takes in one run: 1 unless opened with
// Options.Batch.
func (d *Detector) MaxBatch() int {
	if d.batch == nil {
		return 1
	}
	return d.batch.max
}

// DetectBatch detects imgs (at most MaxBatch) in one run of the model, each with its filter
// (fs[i], or none when fs is shorter): the same detections as DetectFiltered on each, at the
// cost of one run. It returns one result and one error per image; a bad image fails alone.
func (d *Detector) DetectBatch(ctx context.Context, imgs []models.Image, fs []models.Filter) ([][]models.Detection, []error) {
	res, errs := make([][]models.Detection, len(imgs)), make([]error, len(imgs))
	fail := func(err error) ([][]models.Detection, []error) {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return res, errs
	}
	switch {
	case d.batch == nil && d.session == nil:
		return fail(errors.New("onnx: Detect after Close"))
	case d.batch == nil:
		for i, img := range imgs {
			var f models.Filter
			if i < len(fs) {
				f = fs[i]
			}
			res[i], errs[i] = d.DetectFiltered(ctx, img, f)
		}
		return res, errs
	case len(imgs) > d.batch.max:
		return fail(fmt.Errorf("onnx: %d frames for a batch of at most %d", len(imgs), d.batch.max))
	case len(imgs) == 0:
		return res, errs
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	// Good images go into the run, each in its slot.
	var run []int
	for i, img := range imgs {
		if !img.Valid() {
			errs[i] = fmt.Errorf("%w: %dx%d stride %d with %d bytes", models.ErrBadImage, img.Width, img.Height, img.Stride, len(img.Pix))
			continue
		}
		run = append(run, i)
	}
	if len(run) == 0 {
		return res, errs
	}
	in, out, err := d.batch.tensors(d, len(run))
	if err != nil {
		return fail(err)
	}
	per := 3 * d.m.Input.Width * d.m.Input.Height
	perOut := len(out.GetData()) / len(run)
	geoms := make([]geometry, len(run))
	for k, i := range run {
		if geoms[k], err = d.prepareInto(in.GetData()[k*per:(k+1)*per], &d.batch.geom[k], imgs[i]); err != nil {
			errs[i] = err
		}
	}
	if err := d.batch.session.Run([]ort.Value{in}, []ort.Value{out}); err != nil {
		return fail(fmt.Errorf("model %q: run of %d frames: %w", d.m.Name, len(run), err))
	}
	for k, i := range run {
		if errs[i] != nil {
			continue
		}
		var f models.Filter
		if i < len(fs) {
			f = fs[i]
		}
		res[i], errs[i] = d.finish(out.GetData()[k*perOut:(k+1)*perOut], geoms[k], f)
	}
	return res, errs
}

// tensors returns the input and output tensors for a run of n frames, made on first use.
func (b *batchRun) tensors(d *Detector, n int) (in, out *ort.Tensor[float32], err error) {
	if t := b.in[n]; t != nil {
		return t, b.out[n], nil
	}
	H, W := int64(d.m.Input.Height), int64(d.m.Input.Width)
	if in, err = ort.NewEmptyTensor[float32](ort.NewShape(int64(n), 3, H, W)); err != nil {
		return nil, nil, fmt.Errorf("model %q: input tensor of %d frames: %w", d.m.Name, n, err)
	}
	dims := append([]int64{int64(n)}, d.outDims[1:]...)
	if out, err = ort.NewEmptyTensor[float32](ort.NewShape(dims...)); err != nil {
		in.Destroy()
		return nil, nil, fmt.Errorf("model %q: output tensor of %d frames: %w", d.m.Name, n, err)
	}
	b.in[n], b.out[n] = in, out
	for i := range b.geom { // a new tensor has no padding written yet
		b.geom[i] = geometry{}
	}
	return in, out, nil
}
