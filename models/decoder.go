package models

import (
	"fmt"
	"slices"
	"sync"
)

// Decoder turns one raw output tensor of a model family into candidate detections.
//
// Call contract: Decode is called from one goroutine at a time (a Decoder may keep scratch
// buffers; NewDecoder returns a fresh one for each caller). out is the tensor's data in
// row-major order and shape its dimensions; neither is retained. Decode appends to dst, and
// returns it, the candidates whose score is >= score, boxes in model-input pixels, before NMS,
// with ClassID set and Label left empty. A shape that does not fit the family's layout, or
// whose class count is not numLabels, is an error wrapping ErrBadModel that names both.
type Decoder interface {
	Decode(dst []Detection, out []float32, shape []int64, score float32, numLabels int) ([]Detection, error)
}

// DecoderFactory makes a Decoder for a model described by a manifest. It does no I/O.
type DecoderFactory func(Manifest) (Decoder, error)

// registry holds the decoder factories by family. It is the one piece of package state,
// filled by the family packages' init functions (import them for their effect).
var registry = struct {
	sync.RWMutex
	m map[string]DecoderFactory
}{m: map[string]DecoderFactory{}}

// RegisterDecoder makes a family's decoder available to NewDecoder. It is meant for init
// functions and panics when family is empty, factory is nil or the family is taken.
func RegisterDecoder(family string, factory DecoderFactory) {
	if family == "" || factory == nil {
		panic("models: RegisterDecoder with empty family or nil factory")
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[family]; dup {
		panic("models: RegisterDecoder called twice for family " + family)
	}
	registry.m[family] = factory
}

// Families lists the registered decoder families, sorted.
func Families() []string {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]string, 0, len(registry.m))
	for f := range registry.m {
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

// NewDecoder returns a decoder for m.Family. An unknown family is an error wrapping
// ErrBadModel that names the family and the known ones.
func NewDecoder(m Manifest) (Decoder, error) {
	registry.RLock()
	f, ok := registry.m[m.Family]
	registry.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: model %q: unknown decoder family %q (known: %v)", ErrBadModel, m.Name, m.Family, Families())
	}
	d, err := f(m)
	if err != nil {
		return nil, fmt.Errorf("decoder %q for model %q: %w", m.Family, m.Name, err)
	}
	return d, nil
}

// ShapeError builds the error decoders return for an output shape that does not fit their
// layout: it wraps ErrBadModel and names the family, the shape and the expected layout.
func ShapeError(family string, shape []int64, want string) error {
	return fmt.Errorf("%w: %s output shape %v does not match %s", ErrBadModel, family, shape, want)
}

// BestClass returns the index and score of the highest class score in scores (a row's class
// columns). scores must not be empty.
func BestClass(scores []float32) (int, float32) {
	best, bestScore := 0, scores[0]
	for k, v := range scores[1:] {
		if v > bestScore {
			best, bestScore = k+1, v
		}
	}
	return best, bestScore
}
