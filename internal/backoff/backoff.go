// Package backoff is the one retry policy of the module: a capped exponential back-off with
// jitter, used by the camera supervisor (pipeline/ingest), the MQTT publisher
// (pipeline/publish) and model downloads (models/modelstore).
//
// It is a leaf under internal/: it imports nothing of ours, so models and hal may use it as
// well as pipeline, agent and fleet, without an import pointing up the house (models must not
// import pipeline), and it stays out of the module's public API.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Defaults of a zero Policy.
const (
	DefaultMin    = time.Second
	DefaultMax    = 30 * time.Second
	DefaultFactor = 2
	DefaultJitter = 0.2
)

// Policy says how long to wait before each retry: Min*Factor^n capped at Max, less a random
// part of up to Jitter of it, so that many clients that failed together do not retry in step.
// The zero value waits 1 s, doubling up to 30 s, less up to 20 %.
type Policy struct {
	Min    time.Duration // first wait; 0 means DefaultMin
	Max    time.Duration // cap; 0 means DefaultMax (and never less than Min)
	Factor float64       // growth per failure; below 1 means DefaultFactor
	Jitter float64       // fraction of each wait taken off at random, up to 1; 0 means DefaultJitter, < 0 none
}

func (p Policy) withDefaults() Policy {
	if p.Min <= 0 {
		p.Min = DefaultMin
	}
	if p.Max <= 0 {
		p.Max = DefaultMax
	}
	p.Max = max(p.Max, p.Min)
	if p.Factor < 1 {
		p.Factor = DefaultFactor
	}
	switch {
	case p.Jitter == 0:
		p.Jitter = DefaultJitter
	case p.Jitter < 0:
		p.Jitter = 0
	case p.Jitter > 1:
		p.Jitter = 1
	}
	return p
}

// Cap is the longest wait Delay returns (Max, after defaults).
func (p Policy) Cap() time.Duration { return p.withDefaults().Max }

// Delay returns the wait before retry n (0 = the first retry, after one failure). A negative
// n counts as 0. It is safe for concurrent use.
func (p Policy) Delay(n int) time.Duration {
	p = p.withDefaults()
	d := float64(p.Min)
	for i := 0; i < n && d < float64(p.Max); i++ {
		d *= p.Factor
	}
	d = min(d, float64(p.Max))
	return time.Duration(d * (1 - p.Jitter*rand.Float64()))
}

// Sleep waits d, or until ctx ends; it reports whether the whole wait passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
