package ingest

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/vigil-edge/vigil/internal/backoff"
	"github.com/vigil-edge/vigil/pipeline/frame"
)

// Backoff is the supervisor's retry policy (the module's one back-off, internal/backoff). A
// zero Min waits FirstRetry; the other zero fields take backoff's defaults (30 s cap, doubling,
// 20 % jitter).
type Backoff = backoff.Policy

// FirstRetry is the first wait after a camera's session fails when Backoff.Min is zero:
// shorter than backoff's default, as a camera that drops once usually comes straight back.
const FirstRetry = 500 * time.Millisecond

// Watchdog restarts a session whose pictures stop. The session's owner calls Alive after each
// decoded frame; when none came for Timeout, the session's context is cancelled.
type Watchdog struct {
	mu   sync.Mutex
	last time.Time
}

// Alive records that a picture came out of the session now. Safe for concurrent use.
func (w *Watchdog) Alive() {
	w.mu.Lock()
	w.last = time.Now()
	w.mu.Unlock()
}

func (w *Watchdog) since() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.Since(w.last)
}

// ErrStalled is the error of a session that the watchdog ended.
var ErrStalled = errors.New("no decoded frame within the watchdog timeout")

// Hooks tell the supervisor's owner what happens; every field may be nil. They are called from
// the supervising goroutine.
type Hooks struct {
	// SessionEnded is called when a session ends with err (never nil) and the source will be
	// tried again after wait.
	SessionEnded func(err error, wait time.Duration)
	// Reconnecting is called just before a session other than the first starts.
	Reconnecting func(attempt int)
	// Probe, if set, is a cheap check that the source is reachable (a TCP connect, no
	// session). While a source that delivered packets within FlapWindow waits out its
	// back-off, Probe runs every ProbeInterval; when it succeeds after having failed (the
	// camera is back), the wait ends at once. It must return within about a second.
	Probe func(ctx context.Context) error
}

// A camera that was streaming a moment ago is probed every ProbeInterval while it is away, for
// up to FlapWindow after its last packet, so that it is noticed soon after it returns.
const (
	ProbeInterval = 250 * time.Millisecond
	FlapWindow    = 2 * time.Minute
)

// Supervise runs src until ctx is done, restarting it after every failed or stalled session
// with back-off (reset once a session has delivered pictures for a while). A session that
// produces no Alive on w for watchdog is cancelled and counted as failed with ErrStalled.
// It returns nil when ctx is done, or io.EOF when a finite source ends.
func Supervise(ctx context.Context, src Source, sink func(frame.Packet), w *Watchdog, watchdog time.Duration, b Backoff, h Hooks) error {
	if b.Min <= 0 {
		b.Min = FirstRetry
	}
	failures := 0
	var lastPacket time.Time // of the last session that delivered packets
	for attempt := 0; ; attempt++ {
		if attempt > 0 && h.Reconnecting != nil {
			h.Reconnecting(attempt)
		}
		start := time.Now()
		w.Alive() // the session gets a full timeout to produce its first picture
		got := false
		err := runWatched(ctx, src, func(p frame.Packet) { got = true; sink(p) }, w, watchdog)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		if err == nil {
			err = errors.New("session ended")
		}
		if got {
			lastPacket = time.Now()
		}
		if time.Since(start) > b.Cap() {
			failures = 0 // it ran for a while: start the back-off afresh
		}
		wait := b.Delay(failures)
		failures++
		if h.SessionEnded != nil {
			h.SessionEnded(err, wait)
		}
		probe := h.Probe
		if lastPacket.IsZero() || time.Since(lastPacket) > FlapWindow {
			probe = nil // not streaming lately: the back-off alone
		}
		if !waitOrProbe(ctx, wait, probe) {
			return nil
		}
	}
}

// waitOrProbe waits for wait, or, with probe, until probe succeeds after having failed (the
// source came back) if that is sooner. It returns false when ctx ends.
func waitOrProbe(ctx context.Context, wait time.Duration, probe func(context.Context) error) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	var tick <-chan time.Time
	if probe != nil {
		tk := time.NewTicker(ProbeInterval)
		defer tk.Stop()
		tick = tk.C
	}
	down := false
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-tick:
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			err := probe(pctx)
			cancel()
			if err != nil {
				down = true
			} else if down {
				return true // it is back
			}
		}
	}
}

func runWatched(ctx context.Context, src Source, sink func(frame.Packet), w *Watchdog, timeout time.Duration) error {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan error, 1)
	go func() { done <- src.Run(sctx, sink) }()
	if timeout <= 0 {
		return <-done
	}
	tick := time.NewTicker(min(timeout/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if cause := context.Cause(sctx); errors.Is(cause, ErrStalled) && ctx.Err() == nil {
				return ErrStalled
			}
			return err
		case <-tick.C:
			if w.since() > timeout {
				cancel(ErrStalled)
			}
		}
	}
}
