package mavlink

import (
	"math"
	"sort"
	"time"
)

// maxSamples bounds each history whatever the timestamps say (10 s at 100 Hz, twice over).
const maxSamples = 2048

// timed is a sample with a host-clock time.
type timed interface{ at() time.Time }

// history is a time-ordered, time-bounded list of samples. Not safe for concurrent use.
type history[T timed] struct {
	s []T
}

// add appends v; it reports false (and drops v) when v is not newer than the newest sample.
func (h *history[T]) add(v T, keep time.Duration) bool {
	if n := len(h.s); n > 0 && !v.at().After(h.s[n-1].at()) {
		return false
	}
	h.s = append(h.s, v)
	cut := v.at().Add(-keep)
	i := 0
	for i < len(h.s)-1 && (h.s[i].at().Before(cut) || len(h.s)-i > maxSamples) {
		i++
	}
	if i > 0 {
		// copy down so the backing array does not grow without bound
		n := copy(h.s, h.s[i:])
		clear(h.s[n:])
		h.s = h.s[:n]
	}
	return true
}

func (h *history[T]) len() int { return len(h.s) }

func (h *history[T]) newest() T { return h.s[len(h.s)-1] }

func (h *history[T]) oldest() T { return h.s[0] }

// around returns the samples a and b with a.at() <= t < b.at() and the fraction of the way from a
// to b; when t is at or after the newest sample, a = b = newest and frac = 0; before the oldest,
// ok is false.
func (h *history[T]) around(t time.Time) (a, b T, frac float64, ok bool) {
	n := len(h.s)
	if n == 0 || t.Before(h.s[0].at()) {
		return a, b, 0, false
	}
	// first sample after t
	i := sort.Search(n, func(i int) bool { return h.s[i].at().After(t) })
	if i == n {
		return h.s[n-1], h.s[n-1], 0, true
	}
	a, b = h.s[i-1], h.s[i]
	span := b.at().Sub(a.at())
	return a, b, float64(t.Sub(a.at())) / float64(span), true
}

// atOrBefore returns the newest sample not after t, or the oldest when all are after t.
func (h *history[T]) atOrBefore(t time.Time) (T, bool) {
	n := len(h.s)
	if n == 0 {
		var z T
		return z, false
	}
	i := sort.Search(n, func(i int) bool { return h.s[i].at().After(t) })
	if i == 0 {
		return h.s[0], true
	}
	return h.s[i-1], true
}

func lerp(a, b, f float64) float64 { return a + (b-a)*f }

// wrap180 maps an angle in degrees to [-180, 180).
func wrap180(d float64) float64 {
	d = math.Mod(d+180, 360)
	if d < 0 {
		d += 360
	}
	return d - 180
}

// lerpAngle interpolates degrees along the shortest arc; the result is in [-180, 180).
func lerpAngle(a, b, f float64) float64 {
	return wrap180(a + wrap180(b-a)*f)
}

// bootClock maps a component's time_boot_ms onto the host clock (see the package doc).
type bootClock struct {
	epoch    time.Time // host time of the component's boot
	lastBoot uint32
	lastRecv time.Time
	set      bool
}

// driftAllowance is how fast (s/s) the epoch estimate may move later to follow clock drift.
const driftAllowance = 1e-4

func (c *bootClock) local(bootMs uint32, recv time.Time) time.Time {
	boot := time.Duration(bootMs) * time.Millisecond
	cand := recv.Add(-boot)
	switch {
	case !c.set, bootMs+1000 < c.lastBoot: // first sample or reboot
		c.epoch = cand
		c.set = true
	default:
		relaxed := c.epoch.Add(time.Duration(float64(recv.Sub(c.lastRecv)) * driftAllowance))
		if cand.Before(relaxed) {
			c.epoch = cand
		} else {
			c.epoch = relaxed
		}
	}
	c.lastBoot, c.lastRecv = bootMs, recv
	return c.epoch.Add(boot)
}
