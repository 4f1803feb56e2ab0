package eventstore

import "sync"

// DefaultDetectionsEvery is how many detections messages per camera make one stored sample.
const DefaultDetectionsEvery = 10

// maxSampled bounds the cameras a Sampler counts; past it the counts start again.
const maxSampled = 100_000

// Sampler keeps 1 in N detections messages per camera: the first, the N+1st, and so on.
// Its methods may be called from many goroutines at once.
type Sampler struct {
	n  uint64
	mu sync.Mutex
	// seen counts messages per device and camera.
	seen map[[2]string]uint64
}

// NewSampler keeps 1 in n; n < 1 takes DefaultDetectionsEvery.
func NewSampler(n int) *Sampler {
	if n < 1 {
		n = DefaultDetectionsEvery
	}
	return &Sampler{n: uint64(n), seen: map[[2]string]uint64{}}
}

// Keep counts one message of device's camera and reports whether it is kept.
func (s *Sampler) Keep(device, camera string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{device, camera}
	c, ok := s.seen[k]
	if !ok && len(s.seen) >= maxSampled {
		clear(s.seen)
	}
	s.seen[k] = c + 1
	return c%s.n == 0
}
