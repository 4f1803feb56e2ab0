package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	p := Policy{Min: 100 * time.Millisecond, Max: 2 * time.Second, Jitter: -1}
	for n, want := range []time.Duration{100, 200, 400, 800, 1600, 2000, 2000} {
		if got := p.Delay(n); got != want*time.Millisecond {
			t.Errorf("Delay(%d) = %v, want %v", n, got, want*time.Millisecond)
		}
	}
	if got := p.Delay(-3); got != 100*time.Millisecond {
		t.Errorf("Delay(-3) = %v, want the first wait", got)
	}
	if got := (Policy{Min: time.Second, Factor: 3, Jitter: -1}).Delay(2); got != 9*time.Second {
		t.Errorf("factor 3: Delay(2) = %v, want 9s", got)
	}
	if got := (Policy{Min: time.Minute, Max: time.Second, Jitter: -1}).Delay(0); got != time.Minute {
		t.Errorf("Max below Min: Delay(0) = %v, want Min", got)
	}
}

func TestZeroPolicyAndJitter(t *testing.T) {
	var p Policy
	if p.Cap() != 30*time.Second {
		t.Fatalf("zero Policy caps at %v, want 30s", p.Cap())
	}
	lo, hi := time.Hour, time.Duration(0)
	for range 2000 {
		d := p.Delay(1000) // capped: 30 s less up to 20 %
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 24*time.Second || hi > 30*time.Second {
		t.Fatalf("capped delays in [%v, %v], want within [24s, 30s]", lo, hi)
	}
	if hi-lo < time.Second {
		t.Fatalf("capped delays in [%v, %v]: no jitter", lo, hi)
	}
	for range 200 {
		if d := p.Delay(0); d < 800*time.Millisecond || d > time.Second {
			t.Fatalf("first delay %v, want within [0.8s, 1s]", d)
		}
	}
}

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep with a live context did not report a full wait")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep with a cancelled context reported a full wait")
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("Sleep did not return when its context ended")
	}
}
