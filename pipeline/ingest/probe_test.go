package ingest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/pipeline/frame"
)

// TestProbeEndsTheBackoffWhenTheSourceIsBack: a source that was streaming fails; its back-off
// is long (10 s), but the probe, failing while it is away, succeeds 600 ms later, and the next
// session starts right then. A source that never streamed is not probed.
func TestProbeEndsTheBackoffWhenTheSourceIsBack(t *testing.T) {
	for _, streamed := range []bool{true, false} {
		var w Watchdog
		first := func(ctx context.Context, sink func(frame.Packet)) error {
			if streamed {
				sink(frame.Packet{})
			}
			return errors.New("session ended")
		}
		src := &scripted{sessions: []func(context.Context, func(frame.Packet)) error{first}}
		var probes atomic.Int32
		backAt := time.Now().Add(600 * time.Millisecond)
		probe := func(context.Context) error {
			probes.Add(1)
			if time.Now().Before(backAt) {
				return errors.New("connection refused")
			}
			return nil
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- Supervise(ctx, src, func(frame.Packet) {}, &w, 0, Backoff{Min: 10 * time.Second, Max: 10 * time.Second}, Hooks{Probe: probe})
		}()
		deadline := time.Now().Add(3 * time.Second)
		restarted := time.Time{}
		for time.Now().Before(deadline) {
			src.mu.Lock()
			runs := src.runs
			src.mu.Unlock()
			if runs >= 2 {
				restarted = time.Now()
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		<-done
		switch {
		case streamed && restarted.IsZero():
			t.Fatalf("the source came back 600 ms after it failed; no new session within 3 s (%d probes)", probes.Load())
		case streamed && restarted.Sub(backAt) > 2*ProbeInterval:
			t.Fatalf("new session %s after the source came back, want within %s", restarted.Sub(backAt), 2*ProbeInterval)
		case !streamed && (!restarted.IsZero() || probes.Load() != 0):
			t.Fatalf("a source that never streamed was probed %d times, restarted %v", probes.Load(), !restarted.IsZero())
		}
	}
}
