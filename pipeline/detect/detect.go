// Package detect is the stage between decode and tracking: it thins frames to the camera's
// detection rate, holds them in a small drop-oldest buffer so that a slow detector never
// blocks ingest, and runs a models.Detector on each frame it takes.
//
// Frames may be dropped here (counted in vigil_frames_dropped_total{stage="detect_queue"});
// nothing is dropped after the detector: Run hands every result to its sink, which may block.
package detect

import (
	"context"
	"sync"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
)

// Buffer is a bounded FIFO of frames. A live buffer drops its oldest frame when a new one
// arrives and it is full, so Push never blocks; a lossless buffer (for files replayed as fast
// as the detector goes) makes Push wait for room instead. Safe for one pusher and one popper
// at a time.
type Buffer struct {
	mu       sync.Mutex
	frames   []*frame.Frame // ring
	head, n  int
	closed   bool
	lossless bool
	ready    chan struct{} // has a token while frames may be waiting
	room     chan struct{} // has a token while there may be room
	onDrop   func(*frame.Frame)
}

// NewBuffer returns a drop-oldest buffer of capacity size (at least 1); onDrop, if not nil,
// is called with each frame dropped, before it is released.
func NewBuffer(size int, onDrop func(*frame.Frame)) *Buffer {
	return &Buffer{frames: make([]*frame.Frame, max(size, 1)), ready: make(chan struct{}, 1),
		room: make(chan struct{}, 1), onDrop: onDrop}
}

// NewLosslessBuffer returns a buffer whose Push waits for room instead of dropping.
func NewLosslessBuffer(size int) *Buffer {
	b := NewBuffer(size, nil)
	b.lossless = true
	return b
}

// Push adds f. When full, a live buffer drops (and releases) its oldest frame; a lossless one
// waits for room. After Close, f itself is released and dropped.
func (b *Buffer) Push(f *frame.Frame) {
	b.mu.Lock()
	for b.lossless && !b.closed && b.n == len(b.frames) {
		b.mu.Unlock()
		<-b.room
		b.mu.Lock()
	}
	var dropped *frame.Frame
	if b.closed {
		dropped = f
	} else {
		if b.n == len(b.frames) {
			dropped = b.frames[b.head]
			b.frames[b.head] = nil
			b.head = (b.head + 1) % len(b.frames)
			b.n--
		}
		b.frames[(b.head+b.n)%len(b.frames)] = f
		b.n++
	}
	b.mu.Unlock()
	if dropped != nil {
		if b.onDrop != nil {
			b.onDrop(dropped)
		}
		dropped.Release()
	}
	b.signal(b.ready)
}

func (b *Buffer) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Pop waits for the oldest frame. It returns nil when ctx is done or the buffer is closed
// and empty.
func (b *Buffer) Pop(ctx context.Context) *frame.Frame {
	for {
		b.mu.Lock()
		if b.n > 0 {
			f := b.frames[b.head]
			b.frames[b.head] = nil
			b.head = (b.head + 1) % len(b.frames)
			b.n--
			b.mu.Unlock()
			b.signal(b.room)
			return f
		}
		closed := b.closed
		b.mu.Unlock()
		if closed {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-b.ready:
		}
	}
}

// Len is the number of frames waiting.
func (b *Buffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// Close stops the buffer taking frames; frames still in it can be popped. Safe to call twice.
func (b *Buffer) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.signal(b.ready)
	b.signal(b.room)
}

// Drain releases every frame still waiting and returns how many there were.
func (b *Buffer) Drain() int {
	n := 0
	for {
		b.mu.Lock()
		if b.n == 0 {
			b.mu.Unlock()
			return n
		}
		f := b.frames[b.head]
		b.frames[b.head] = nil
		b.head = (b.head + 1) % len(b.frames)
		b.n--
		b.mu.Unlock()
		f.Release()
		n++
	}
}

// RateLimiter passes at most FPS frames per second of stream time (PTS). FPS <= 0 passes
// every frame. It keeps the long-run rate exact (no drift from frame-rate rounding) and
// restarts when the PTS jumps backwards (a new stream session).
type RateLimiter struct {
	FPS  float64
	next time.Duration
	last time.Duration
	init bool
}

// Allow reports whether the frame at pts should be detected.
func (r *RateLimiter) Allow(pts time.Duration) bool {
	if r.FPS <= 0 {
		return true
	}
	step := time.Duration(float64(time.Second) / r.FPS)
	if !r.init || pts < r.last || pts > r.next+10*step {
		r.init, r.next = true, pts
	}
	r.last = pts
	if pts < r.next {
		return false
	}
	r.next += step
	if r.next <= pts { // frames came slower than FPS: do not bank credit
		r.next = pts + step
	}
	return true
}

// Info names the model in each result.
type Info = frame.ModelInfo

// Hooks report what the stage does; fields may be nil. Called from Run's goroutine.
type Hooks struct {
	Detected func(d frame.Detections) // after each successful detection (for metrics)
	Failed   func(f *frame.Frame, err error)
}

// Run takes frames from buf until ctx is done or buf is closed and empty, runs det on each,
// and calls sink with the result (every frame detected gets a result, even with no objects).
// sink may block; the detector then waits, and frames drop in buf instead. The Detections'
// Image is the frame's pixels, valid only until sink returns; the frame is released then.
func Run(ctx context.Context, buf *Buffer, det models.Detector, sink func(frame.Detections), h Hooks) {
	for {
		f := buf.Pop(ctx)
		if f == nil {
			return
		}
		m := det.Manifest() // per frame: the model may be swapped between frames
		info := Info{Name: m.Name, Version: m.Version, SHA256: m.SHA256}
		start := time.Now()
		objs, err := det.Detect(ctx, f.Image)
		took := time.Since(start)
		if err != nil {
			if h.Failed != nil {
				h.Failed(f, err)
			}
			f.Release()
			continue
		}
		d := frame.Detections{
			Camera: f.Camera, FrameSeq: f.Seq, PTS: f.PTS, CapturedAt: f.CapturedAt,
			Width: f.Image.Width, Height: f.Image.Height, Model: info, Objects: objs, Inference: took,
			Image: f.Image,
		}
		if h.Detected != nil {
			h.Detected(d)
		}
		sink(d)
		f.Release()
	}
}
