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

func TestBackoffFirstRetry(t *testing.T) {
	// The zero Backoff the agent passes waits FirstRetry first (backoff's own default is 1 s).
	src := &scripted{sessions: []func(ctx context.Context, sink func(frame.Packet)) error{
		func(context.Context, func(frame.Packet)) error { return errors.New("refused") },
		func(context.Context, func(frame.Packet)) error { return io.EOF },
	}}
	var w Watchdog
	var wait time.Duration
	err := Supervise(context.Background(), src, func(frame.Packet) {}, &w, time.Second, Backoff{}, Hooks{
		SessionEnded: func(_ error, d time.Duration) { wait = d },
	})
	if !errors.Is(err, io.EOF) {
		t.Fatalf("Supervise = %v, want io.EOF", err)
	}
	if wait > FirstRetry || wait < FirstRetry*8/10 {
		t.Fatalf("first wait %v, want within 20 %% below %v", wait, FirstRetry)
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
