package onnx

import (
	"context"
	"errors"
	"sync"

	"github.com/vigil-edge/vigil/models"
)

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

// NewPairBatcher is NewBatcher for a one-frame model (Options.Batch 0 or 1): two calls that
// wait at the same moment, both with frames CanPair takes, share one run (DetectPair); any
// other call runs alone at once. Give it two handles a session.
func NewPairBatcher(d *Detector, handles int) (*Batcher, []*BatchHandle) {
	return newBatcher(d, handles, true)
}

// runPair answers a gathered pair, or single calls, for a pair batcher.
func (b *Batcher) runPair(batch []*batchReq) (runs int) {
	if len(batch) == 2 && b.d.CanPair(batch[0].img.Width, batch[0].img.Height) && b.d.CanPair(batch[1].img.Width, batch[1].img.Height) {
		res, errs := b.d.DetectPair(batch[0].ctx, [2]models.Image{batch[0].img, batch[1].img}, [2]models.Filter{batch[0].f, batch[1].f})
		for i, r := range batch {
			r.res, r.err = res[i], errs[i]
		}
		return 1
	}
	for _, r := range batch {
		r.res, r.err = b.d.DetectFiltered(r.ctx, r.img, r.f)
	}
	return len(batch)
}
