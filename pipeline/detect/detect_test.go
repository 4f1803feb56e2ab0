package detect

import (
	"testing"
	"time"
)

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

// TestRateLimiterDue: Due foretells Allow without changing what Allow says, through resets,
// gaps and frames slower than FPS.
func TestRateLimiterDue(t *testing.T) {
	ms := time.Millisecond
	var pts []time.Duration
	for i := range 90 { // 30 fps
		pts = append(pts, time.Duration(i)*33*ms)
	}
	pts = append(pts, 2900*ms, 3500*ms, 9*time.Second, 100*ms, 133*ms) // gap, jump, restart
	for i := range 20 {                                                // 2 fps, slower than FPS
		pts = append(pts, 200*ms+time.Duration(i)*500*ms)
	}
	for _, fps := range []float64{0, 1, 5, 29.97} {
		r := RateLimiter{FPS: fps}
		allowed := 0
		for _, p := range pts {
			due := r.Due(p)
			got := r.Allow(p)
			if due != got {
				t.Fatalf("fps %v, pts %v: Due %v but Allow %v", fps, p, due, got)
			}
			if got {
				allowed++
			}
		}
		if allowed == 0 {
			t.Fatalf("fps %v: nothing allowed", fps)
		}
	}
}
