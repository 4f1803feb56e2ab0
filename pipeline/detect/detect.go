// Package detect is the stage between decode and tracking: it thins each camera's frames to
// its detection rate (RateLimiter) and runs them on a Pool of detectors shared by every camera
// of one model, through each camera's small drop-oldest Slot, so that a slow detector never
// blocks ingest and a busy camera never starves the others.
//
// Frames may be dropped here (counted in vigil_frames_dropped_total{stage="detect_queue"});
// nothing is dropped after the detector: every result reaches the camera's sink, which may
// block.
package detect

import (
	"time"

	"github.com/vigil-edge/vigil/pipeline/frame"
)

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

// Due reports whether Allow(pts) would say yes, without counting it: a caller may use it
// before decoding to leave out a disposable picture that would not be detected anyway. It
// errs towards yes (a reset, a first frame).
func (r *RateLimiter) Due(pts time.Duration) bool {
	if r.FPS <= 0 || !r.init || pts < r.last {
		return true
	}
	return pts >= r.next // a jump far ahead resets Allow's schedule, and is due too
}

// Info names the model in each result.
type Info = frame.ModelInfo
