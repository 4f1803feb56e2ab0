package ingest

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/pipeline/frame"
)

func TestBackoffGrowsAndCaps(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}
	prev := time.Duration(0)
	for n := 0; n < 12; n++ {
		d := b.Delay(n)
		if d > 2*time.Second || d < 80*time.Millisecond {
			t.Fatalf("Delay(%d) = %v, outside [80ms, 2s]", n, d)
		}
		if n < 4 && d < prev/2 {
			t.Fatalf("Delay(%d) = %v did not grow from %v", n, d, prev)
		}
		prev = d
	}
	if d := b.Delay(30); d < 1600*time.Millisecond {
		t.Fatalf("Delay(30) = %v, want near the 2s cap", d)
	}
	if d := (Backoff{}).Delay(100); d > 30*time.Second || d < 24*time.Second {
		t.Fatalf("default cap: Delay(100) = %v, want 24-30s", d)
	}
}

// scripted is a Source whose sessions follow a script: each entry says how a session behaves.
type scripted struct {
	mu       sync.Mutex
	sessions []func(ctx context.Context, sink func(frame.Packet)) error
	runs     int
}

func (s *scripted) Run(ctx context.Context, sink func(frame.Packet)) error {
	s.mu.Lock()
	i := s.runs
	s.runs++
	s.mu.Unlock()
	if i >= len(s.sessions) {
		<-ctx.Done()
		return nil
	}
	return s.sessions[i](ctx, sink)
}

func TestSuperviseRestartsStalledAndFailedSessions(t *testing.T) {
	var w Watchdog
	stalls := func(ctx context.Context, sink func(frame.Packet)) error {
		// Packets arrive but no picture is ever decoded: only the watchdog ends this session.
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tk.C:
				sink(frame.Packet{})
			}
		}
	}
	refused := func(context.Context, func(frame.Packet)) error { return errors.New("connection refused") }
	src := &scripted{sessions: []func(context.Context, func(frame.Packet)) error{stalls, refused, refused}}
	var mu sync.Mutex
	var ended []error
	reconnects := 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Supervise(ctx, src, func(frame.Packet) {}, &w, 200*time.Millisecond, Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}, Hooks{
			SessionEnded: func(err error, _ time.Duration) { mu.Lock(); ended = append(ended, err); mu.Unlock() },
			Reconnecting: func(int) { mu.Lock(); reconnects++; mu.Unlock() },
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		src.mu.Lock()
		runs := src.runs
		src.mu.Unlock()
		if runs >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d sessions started", runs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Supervise returned %v after cancel, want nil", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ended) != 3 || !errors.Is(ended[0], ErrStalled) || ended[1].Error() != "connection refused" {
		t.Fatalf("sessions ended with %v, want [stalled, refused, refused]", ended)
	}
	if reconnects != 3 {
		t.Fatalf("reconnects = %d, want 3", reconnects)
	}
}

func TestSuperviseEndsWithFiniteSource(t *testing.T) {
	var w Watchdog
	src := &scripted{sessions: []func(context.Context, func(frame.Packet)) error{
		func(context.Context, func(frame.Packet)) error { return io.EOF },
	}}
	if err := Supervise(context.Background(), src, func(frame.Packet) {}, &w, time.Second, Backoff{}, Hooks{}); !errors.Is(err, io.EOF) {
		t.Fatalf("Supervise = %v, want io.EOF", err)
	}
}
