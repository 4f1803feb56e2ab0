package detect

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
)

func newFrame(seq uint64, released *atomic.Int64) *frame.Frame {
	return frame.NewFrame("c", seq, time.Duration(seq)*time.Millisecond, time.Now(), models.Image{}, func() { released.Add(1) })
}

func TestBufferDropsOldest(t *testing.T) {
	var released atomic.Int64
	var dropped []uint64
	b := NewBuffer(2, func(f *frame.Frame) { dropped = append(dropped, f.Seq) })
	for i := uint64(1); i <= 5; i++ {
		b.Push(newFrame(i, &released))
	}
	if len(dropped) != 3 || dropped[0] != 1 || dropped[2] != 3 {
		t.Fatalf("dropped %v, want [1 2 3]", dropped)
	}
	if released.Load() != 3 {
		t.Fatalf("released %d dropped frames, want 3", released.Load())
	}
	ctx := context.Background()
	if f := b.Pop(ctx); f.Seq != 4 {
		t.Fatalf("popped %d, want 4", f.Seq)
	}
	if f := b.Pop(ctx); f.Seq != 5 {
		t.Fatalf("popped %d, want 5", f.Seq)
	}
	b.Close()
	if f := b.Pop(ctx); f != nil {
		t.Fatalf("closed empty buffer returned %v", f)
	}
	b.Push(newFrame(9, &released)) // after Close: released, not kept
	if released.Load() != 4 || b.Len() != 0 {
		t.Fatalf("push after close: released %d len %d", released.Load(), b.Len())
	}
}

func TestBufferPopWaitsAndCancels(t *testing.T) {
	var released atomic.Int64
	b := NewBuffer(1, nil)
	got := make(chan *frame.Frame)
	go func() { got <- b.Pop(context.Background()) }()
	b.Push(newFrame(7, &released))
	if f := <-got; f == nil || f.Seq != 7 {
		t.Fatalf("Pop = %v", f)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { got <- b.Pop(ctx) }()
	cancel()
	if f := <-got; f != nil {
		t.Fatalf("cancelled Pop returned %v", f)
	}
}

func TestLosslessBufferBlocksInsteadOfDropping(t *testing.T) {
	var released atomic.Int64
	b := NewLosslessBuffer(2)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := uint64(1); i <= 50; i++ {
			b.Push(newFrame(i, &released))
		}
		b.Close()
	}()
	var seqs []uint64
	for f := b.Pop(context.Background()); f != nil; f = b.Pop(context.Background()) {
		seqs = append(seqs, f.Seq)
		f.Release()
	}
	wg.Wait()
	if len(seqs) != 50 {
		t.Fatalf("got %d frames, want all 50", len(seqs))
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("out of order at %d: %v", i, seqs)
		}
	}
}

func TestRateLimiter(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fps      float64
		streamHz float64
		frames   int
		want     int
	}{
		{"off", 0, 25, 100, 100},
		{"5 of 25", 5, 25, 100, 20},
		{"10 of 29.97", 10, 29.97, 300, 101},
		{"faster than stream", 50, 10, 40, 40},
		{"1 of 10", 1, 10, 100, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := RateLimiter{FPS: tc.fps}
			n := 0
			for i := 0; i < tc.frames; i++ {
				if r.Allow(time.Duration(float64(i) / tc.streamHz * float64(time.Second))) {
					n++
				}
			}
			if n < tc.want-1 || n > tc.want+1 {
				t.Errorf("passed %d frames, want %d±1", n, tc.want)
			}
		})
	}
	// A new session (PTS back to 0) restarts the limiter instead of stalling it.
	r := RateLimiter{FPS: 5}
	for i := 0; i < 50; i++ {
		r.Allow(time.Duration(i) * 40 * time.Millisecond)
	}
	if !r.Allow(0) {
		t.Fatal("limiter did not restart after PTS went back")
	}
}
