package detect

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
)

// DefaultPriorityBoost is how much longer than it has really waited a camera with active
// tracks or events counts as waiting when the pool picks the next frame.
const DefaultPriorityBoost = 250 * time.Millisecond

// maxUnsunk is how many results of a camera may wait for its sink before its next frame is
// held back: one, so that the next frame is detected while the sink handles the previous one.
const maxUnsunk = 2

// ErrPoolSize: a pool was asked for no detector.
var ErrPoolSize = errors.New("detector pool size must be at least 1")

// Pool runs one model's detectors (a few ONNX Runtime sessions, one per core by default) for
// every camera on the box, as DeepStream's batched inference and Frigate's detector process
// do: one session per camera would cost its memory and its threads per camera, for no more
// inferences per second than the cores give.
//
//	camera slot (latest frames win) ─┐
//	camera slot ─────────────────────┼──▶ fair pick ──▶ worker i: Detect on detector i ──▶ the slot's Sink
//	camera slot ─────────────────────┘    (longest waiting first, cameras with tracks ahead)
//
// Each camera joins with a Slot: a small drop-oldest queue (latest frame wins) and a sink
// goroutine that receives the camera's results in frame order. A camera has at most one frame
// being detected at a time, and no frame is taken from its slot while two of its results
// wait for its sink; so a camera whose sink is slow (an outbox waiting on the disk) drops its
// own frames and never holds a detector. A worker picks, among the cameras that can go, the
// one waiting longest, counting a camera marked busy (SetPriority: it has active tracks or
// events) DefaultPriorityBoost ahead: busy cameras go first, and no camera waits for ever.
//
// Call contract: NewPool, then Join per camera (at any time), Swap between frames (at any
// time), Close once every slot is closed. Slot methods are safe for concurrent use.
type Pool struct {
	boost time.Duration
	taken func(time.Duration)

	mu      sync.Mutex
	work    *sync.Cond // workers wait here for a frame
	slots   map[*Slot]struct{}
	depth   int // frames waiting in all slots
	closed  bool
	workers []*worker
	wg      sync.WaitGroup
	stats   PoolStats
}

type worker struct {
	mu  sync.Mutex // held while the worker detects; Swap takes every worker's between frames
	det models.Detector
}

// PoolStats are a pool's counts so far.
type PoolStats struct {
	Detected uint64        // frames detected
	Waited   time.Duration // their total time in a slot
}

// PoolConfig tunes a pool; the zero value is valid.
type PoolConfig struct {
	// PriorityBoost is the head start of cameras marked with SetPriority; 0 means
	// DefaultPriorityBoost, a negative value none.
	PriorityBoost time.Duration
	// Taken, if not nil, is called on a worker each time it takes a frame, with the frame's
	// wait in its slot (for metrics); it must not block.
	Taken func(wait time.Duration)
}

// NewPool starts one worker per detector; it takes ownership of dets (Close closes them). All
// must run the same model.
func NewPool(cfg PoolConfig, dets []models.Detector) (*Pool, error) {
	if len(dets) == 0 {
		return nil, ErrPoolSize
	}
	p := &Pool{boost: cfg.PriorityBoost, taken: cfg.Taken, slots: map[*Slot]struct{}{}}
	switch {
	case p.boost == 0:
		p.boost = DefaultPriorityBoost
	case p.boost < 0:
		p.boost = 0
	}
	p.work = sync.NewCond(&p.mu)
	for _, d := range dets {
		if d == nil {
			return nil, errors.New("detector pool: nil detector")
		}
		p.workers = append(p.workers, &worker{det: d})
	}
	for _, w := range p.workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.run(w)
		}()
	}
	return p, nil
}

// Size is the number of detectors.
func (p *Pool) Size() int { return len(p.workers) }

// Manifest is the model the pool runs now.
func (p *Pool) Manifest() models.Manifest {
	w := p.workers[0]
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.det.Manifest()
}

// Depth is the number of frames waiting in all slots.
func (p *Pool) Depth() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.depth
}

// Stats returns the pool's counts so far.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Swap replaces every detector of the pool at once, between frames: it waits for the frames
// being detected, puts dets in (as many as Size, all of one model) and closes the old ones.
// No frame after Swap runs the old model. It takes ownership of dets, also on error.
func (p *Pool) Swap(dets []models.Detector) error {
	if len(dets) != len(p.workers) {
		for _, d := range dets {
			if d != nil {
				_ = d.Close()
			}
		}
		return fmt.Errorf("detector pool swap: %d detectors for a pool of %d", len(dets), len(p.workers))
	}
	for _, w := range p.workers { // in order: only Swap holds more than one
		w.mu.Lock()
	}
	old := make([]models.Detector, len(p.workers))
	for i, w := range p.workers {
		old[i], w.det = w.det, dets[i]
	}
	for _, w := range p.workers {
		w.mu.Unlock()
	}
	var errs []error
	for _, d := range old {
		errs = append(errs, d.Close())
	}
	return errors.Join(errs...)
}

// Close stops the workers, once the frames being detected are done, and closes the
// detectors. Frames still waiting in slots that were not closed are released unseen.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.work.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
	p.mu.Lock()
	for s := range p.slots {
		s.abandon()
	}
	p.mu.Unlock()
	var errs []error
	for _, w := range p.workers {
		errs = append(errs, w.det.Close())
	}
	return errors.Join(errs...)
}

// run is one worker: it takes the next frame, detects it, hands the result to its slot.
func (p *Pool) run(w *worker) {
	ctx := context.Background() // a detection in progress is finished; Close waits for it
	for {
		p.mu.Lock()
		var s *Slot
		for {
			if s = p.pick(time.Now()); s != nil || p.closed {
				break
			}
			p.work.Wait()
		}
		if s == nil {
			p.mu.Unlock()
			return
		}
		q := s.pop()
		s.detecting = true
		p.depth--
		p.mu.Unlock()
		s.room.Broadcast()

		taken := time.Now()
		if p.taken != nil {
			p.taken(taken.Sub(q.at))
		}
		w.mu.Lock()
		m := w.det.Manifest()
		objs, err := s.cfg.Detect(ctx, w.det, q.f)
		w.mu.Unlock()
		r := Result{Frame: q.f, Objects: objs, Err: err, Wait: taken.Sub(q.at), Inference: time.Since(taken),
			Model: Info{Name: m.Name, Version: m.Version, SHA256: m.SHA256}}

		p.mu.Lock()
		s.detecting = false
		s.results = append(s.results, r)
		p.stats.Detected++
		p.stats.Waited += r.Wait
		p.mu.Unlock()
		s.ready.Signal()
	}
}

// pick returns the slot whose frame goes next, or nil. Called with p.mu held.
func (p *Pool) pick(now time.Time) *Slot {
	var best *Slot
	var bestScore time.Duration
	for s := range p.slots {
		if len(s.queue) == 0 || s.detecting || len(s.results) >= maxUnsunk {
			continue
		}
		score := now.Sub(s.since)
		if s.priority {
			score += p.boost
		}
		if best == nil || score > bestScore {
			best, bestScore = s, score
		}
	}
	return best
}

// Result is one frame's detection, handed to its camera's Sink.
type Result struct {
	// Frame is the frame detected; valid until Sink returns, then released.
	Frame     *frame.Frame
	Objects   []models.Detection // in the frame's pixels
	Model     Info               // the model that ran
	Err       error              // the detection failed; Objects is nil
	Wait      time.Duration      // from Submit to a worker taking the frame
	Inference time.Duration      // the camera's Detect on the worker
}

// DetectFunc runs a camera's detection of f on one of the pool's detectors, on the pool's
// worker goroutine: never two at once for one camera. It reads f (any crop of it) and must not
// keep det or f.
type DetectFunc func(ctx context.Context, det models.Detector, f *frame.Frame) ([]models.Detection, error)

// SlotConfig is a camera's place in a pool.
type SlotConfig struct {
	Camera string
	// Depth is how many frames may wait (at least 1): when a frame comes to a full slot the
	// oldest waiting one is dropped, so the latest frames win.
	Depth int
	// Lossless makes Submit wait for room instead of dropping (files replayed as fast as the
	// detector goes).
	Lossless bool
	// Detect runs on a worker for each frame; nil runs the pool's detector on the whole frame.
	Detect DetectFunc
	// Sink receives each result, in frame order, on the slot's own goroutine; it may block (the
	// camera's next frames then wait in its slot, and drop). Required.
	Sink func(Result)
	// OnDrop, if not nil, is called with each frame dropped from the full slot, before it is
	// released.
	OnDrop func(*frame.Frame)
}

// Slot is one camera's queue in a pool.
type Slot struct {
	p   *Pool
	cfg SlotConfig

	// guarded by p.mu
	queue     []queued
	since     time.Time // the oldest wait not yet served: when the queue last became non-empty or was served
	detecting bool
	results   []Result
	priority  bool
	closing   bool
	gone      bool       // abandoned by a closed pool
	ready     *sync.Cond // the sink waits for results
	room      *sync.Cond // a lossless Submit waits for room

	done chan struct{} // closed when the sink goroutine ends
}

type queued struct {
	f  *frame.Frame
	at time.Time
}

// Join adds a camera to the pool and starts its sink goroutine; Close the slot when the
// camera stops.
func (p *Pool) Join(cfg SlotConfig) (*Slot, error) {
	if cfg.Sink == nil {
		return nil, errors.New("detector pool: a slot needs a sink")
	}
	if cfg.Depth < 1 {
		return nil, fmt.Errorf("detector pool: camera %s: queue depth %d must be at least 1", cfg.Camera, cfg.Depth)
	}
	if cfg.Detect == nil {
		cfg.Detect = func(ctx context.Context, det models.Detector, f *frame.Frame) ([]models.Detection, error) {
			return det.Detect(ctx, f.Image)
		}
	}
	s := &Slot{p: p, cfg: cfg, done: make(chan struct{})}
	s.ready = sync.NewCond(&p.mu)
	s.room = sync.NewCond(&p.mu)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("detector pool: closed")
	}
	p.slots[s] = struct{}{}
	p.mu.Unlock()
	go s.sink()
	return s, nil
}

// Submit offers f for detection; the slot owns it from here. When the slot is full the
// oldest waiting frame is dropped (or, Lossless, Submit waits for room). After Close, f is
// released unseen.
func (s *Slot) Submit(f *frame.Frame) {
	p := s.p
	p.mu.Lock()
	for s.cfg.Lossless && !s.closing && !s.gone && len(s.queue) >= s.cfg.Depth {
		s.room.Wait()
	}
	if s.closing || s.gone {
		p.mu.Unlock()
		f.Release()
		return
	}
	var dropped *frame.Frame
	if len(s.queue) >= s.cfg.Depth {
		dropped = s.queue[0].f
		s.queue = append(s.queue[:0], s.queue[1:]...)
		p.depth--
	}
	if len(s.queue) == 0 && dropped == nil {
		s.since = time.Now()
	}
	s.queue = append(s.queue, queued{f: f, at: time.Now()})
	p.depth++
	p.mu.Unlock()
	p.work.Signal()
	if dropped != nil {
		if s.cfg.OnDrop != nil {
			s.cfg.OnDrop(dropped)
		}
		dropped.Release()
	}
}

// SetPriority marks the camera as busy (active tracks or events): its frames go ahead of
// idle cameras' (by the pool's priority boost).
func (s *Slot) SetPriority(on bool) {
	s.p.mu.Lock()
	s.priority = on
	s.p.mu.Unlock()
}

// Len is the number of frames waiting in the slot.
func (s *Slot) Len() int {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return len(s.queue)
}

// Close takes no more frames; the frames waiting are still detected and every result reaches
// the sink. It returns when the sink has returned for the last one, and the camera has left
// the pool. Safe to call more than once.
func (s *Slot) Close() {
	p := s.p
	p.mu.Lock()
	s.closing = true
	p.mu.Unlock()
	s.ready.Broadcast()
	s.room.Broadcast()
	<-s.done
	p.mu.Lock()
	delete(p.slots, s)
	p.mu.Unlock()
}

// pop takes the oldest waiting frame. Called with p.mu held, on a non-empty queue.
func (s *Slot) pop() queued {
	q := s.queue[0]
	s.queue[0] = queued{}
	s.queue = s.queue[1:]
	if len(s.queue) > 0 {
		s.since = time.Now()
	}
	return q
}

// abandon releases the frames still waiting when the pool closes. Called with p.mu held.
func (s *Slot) abandon() {
	for _, q := range s.queue {
		q.f.Release()
		s.p.depth--
	}
	s.queue = nil
	s.gone = true
	s.ready.Broadcast()
	s.room.Broadcast()
}

// sink hands results to the camera's Sink in order, until the slot is closed and drained.
func (s *Slot) sink() {
	defer close(s.done)
	p := s.p
	for {
		p.mu.Lock()
		for len(s.results) == 0 && !(s.closing && !s.detecting && (len(s.queue) == 0 || s.gone || p.closed)) {
			s.ready.Wait()
		}
		if len(s.results) == 0 {
			for _, q := range s.queue { // the pool closed under the slot
				q.f.Release()
				p.depth--
			}
			s.queue = nil
			p.mu.Unlock()
			return
		}
		r := s.results[0]
		s.results = s.results[1:]
		p.mu.Unlock()
		p.work.Signal() // the slot may go again
		s.cfg.Sink(r)
		r.Frame.Release()
	}
}
