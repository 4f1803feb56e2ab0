//go:build !cgo

package onnx

import (
	"context"
	"errors"
	"fmt"

	"github.com/vigil-edge/vigil/models"
)

// The API of the cgo files without ONNX Runtime or OpenCV: Load and Open fail with errNoCgo.

// LibraryEnv is the setting that names the ONNX Runtime shared library to load.
const LibraryEnv = "ONNXRUNTIME_LIB"

// errNoCgo: this build cannot run a model.
var errNoCgo = errors.New("onnx: this binary was built without cgo (CGO_ENABLED=0) and cannot run models; build with cgo, OpenCV and ONNX Runtime")

// Library describes the loaded ONNX Runtime shared library.
type Library struct {
	Path    string // file that was loaded
	Version string // ONNX Runtime's own version string
}

// Load fails: ONNX Runtime is loaded through cgo.
func Load() (Library, error) { return Library{}, errNoCgo }

// Options tune a Detector. The zero value is valid.
type Options struct {
	Threads    int
	Spin       bool
	Score, NMS float32
	Labels     []string
	Batch      int
}

// Detector is never made in this build.
type Detector struct{ m models.Manifest }

var _ models.Detector = (*Detector)(nil)

// Open fails: see Load.
func Open(m models.Manifest, opts Options) (*Detector, error) {
	return nil, fmt.Errorf("model %q: %w", m.Name, errNoCgo)
}

// Detect fails: see Load.
func (d *Detector) Detect(ctx context.Context, img models.Image) ([]models.Detection, error) {
	return nil, errNoCgo
}

// DetectFiltered fails: see Load.
func (d *Detector) DetectFiltered(ctx context.Context, img models.Image, f models.Filter) ([]models.Detection, error) {
	return nil, errNoCgo
}

// Manifest returns the manifest the detector was opened with.
func (d *Detector) Manifest() models.Manifest { return d.m }

// Thresholds is zero.
func (d *Detector) Thresholds() models.Thresholds { return models.Thresholds{} }

// Close does nothing.
func (d *Detector) Close() error { return nil }

// MaxBatch is 1.
func (d *Detector) MaxBatch() int { return 1 }

// DetectBatch fails: see Load.
func (d *Detector) DetectBatch(ctx context.Context, imgs []models.Image, fs []models.Filter) ([][]models.Detection, []error) {
	errs := make([]error, len(imgs))
	for i := range errs {
		errs[i] = errNoCgo
	}
	return make([][]models.Detection, len(imgs)), errs
}

// CanPair is false.
func (d *Detector) CanPair(w, h int) bool { return false }

// DetectPair fails: see Load.
func (d *Detector) DetectPair(ctx context.Context, imgs [2]models.Image, fs [2]models.Filter) ([2][]models.Detection, [2]error) {
	return [2][]models.Detection{}, [2]error{errNoCgo, errNoCgo}
}
