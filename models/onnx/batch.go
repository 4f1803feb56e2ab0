//go:build cgo

package onnx

import (
	"context"
	"errors"
	"fmt"
	"sync"

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

// Batcher gathers Detect calls from several goroutines into batched runs of one Detector
// opened with Options.Batch, as a dynamic batcher does: a call that comes while a run is
// going waits for the next run, which takes every call waiting then (up to the batch size);
// a lone call runs at once, with no added delay. Give each caller its own Handle (a
// detector pool worker each): a Handle is a models.FilteredDetector. The Detector is closed
// when the last Handle is.
type Batcher struct {
	d    *Detector
	reqs chan *batchReq
	wg   sync.WaitGroup

	pair bool // NewPairBatcher: pairs of frames in one run (DetectPair)

	mu      sync.Mutex
	handles int
	closed  bool
	stats   BatchStats
}

// BatchStats counts a Batcher's runs.
type BatchStats struct {
	Runs   uint64 // model runs
	Frames uint64 // frames in them
}

type batchReq struct {
	ctx  context.Context
	img  models.Image
	f    models.Filter
	res  []models.Detection
	err  error
	done chan struct{}
}

// NewBatcher starts batching for d (opened with Options.Batch > 1), with handles Handles.
// It owns d.
func NewBatcher(d *Detector, handles int) (*Batcher, []*BatchHandle) {
	return newBatcher(d, handles, false)
}

func newBatcher(d *Detector, handles int, pair bool) (*Batcher, []*BatchHandle) {
	b := &Batcher{d: d, reqs: make(chan *batchReq), handles: handles, pair: pair}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.run()
	}()
	hs := make([]*BatchHandle, handles)
	for i := range hs {
		hs[i] = &BatchHandle{b: b}
	}
	return b, hs
}

// Stats returns the runs so far.
func (b *Batcher) Stats() BatchStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// run is the batcher's goroutine: it takes a call, every call waiting behind it up to the
// batch size, runs them together and answers each.
func (b *Batcher) run() {
	max := b.d.MaxBatch()
	if b.pair {
		max = 2
	}
	for r := range b.reqs {
		batch := []*batchReq{r}
	gather:
		for len(batch) < max {
			select {
			case r, ok := <-b.reqs:
				if !ok {
					break gather
				}
				batch = append(batch, r)
			default:
				break gather
			}
		}
		runs := 1
		if b.pair {
			runs = b.runPair(batch)
		} else {
			imgs := make([]models.Image, len(batch))
			fs := make([]models.Filter, len(batch))
			for i, r := range batch {
				imgs[i], fs[i] = r.img, r.f
			}
			res, errs := b.d.DetectBatch(batch[0].ctx, imgs, fs)
			for i, r := range batch {
				r.res, r.err = res[i], errs[i]
			}
		}
		b.mu.Lock()
		b.stats.Runs += uint64(runs)
		b.stats.Frames += uint64(len(batch))
		b.mu.Unlock()
		for _, r := range batch {
			close(r.done)
		}
	}
}

// BatchHandle is one caller's way into a Batcher.
type BatchHandle struct {
	b      *Batcher
	closed bool
}

var _ models.FilteredDetector = (*BatchHandle)(nil)

// Detect implements models.Detector.
func (h *BatchHandle) Detect(ctx context.Context, img models.Image) ([]models.Detection, error) {
	return h.DetectFiltered(ctx, img, models.Filter{})
}

// DetectFiltered implements models.FilteredDetector: it waits for the run that takes img.
func (h *BatchHandle) DetectFiltered(ctx context.Context, img models.Image, f models.Filter) ([]models.Detection, error) {
	if h.closed {
		return nil, errors.New("onnx: Detect after Close")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &batchReq{ctx: context.WithoutCancel(ctx), img: img, f: f, done: make(chan struct{})}
	h.b.reqs <- r
	<-r.done // a run is not interrupted; img is read until then
	return r.res, r.err
}

// Manifest implements models.Detector.
func (h *BatchHandle) Manifest() models.Manifest { return h.b.d.Manifest() }

// Thresholds returns the detector's thresholds.
func (h *BatchHandle) Thresholds() models.Thresholds { return h.b.d.Thresholds() }

// Close releases the handle; the last one stops the batcher and closes its Detector. Safe to
// call twice.
func (h *BatchHandle) Close() error {
	if h.closed {
		return nil
	}
	h.closed = true
	b := h.b
	b.mu.Lock()
	b.handles--
	last := b.handles == 0 && !b.closed
	if last {
		b.closed = true
	}
	b.mu.Unlock()
	if !last {
		return nil
	}
	close(b.reqs)
	b.wg.Wait()
	return b.d.Close()
}
