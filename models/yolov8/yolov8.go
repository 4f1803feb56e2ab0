// Package yolov8 decodes the output layouts of Ultralytics models. Importing it registers two
// families:
//
//   - "yolov8" (also YOLOv8/v11 exports): one tensor [1, 4+C, N], transposed, each of the N
//     anchors a column (cx, cy, w, h, C class scores) in input pixels, no objectness;
//     score = best class score.
//   - "yolov5": one tensor [1, N, 5+C], each row (cx, cy, w, h, objectness, C class scores)
//     in input pixels; score = objectness * best class score.
//
// Scores are taken as they are (these exports apply the sigmoid inside the graph).
package yolov8

import (
	"fmt"

	"github.com/vigil-edge/vigil/models"
)

// Family names used in manifests.
const (
	FamilyV8 = "yolov8"
	FamilyV5 = "yolov5"
)

func init() {
	models.RegisterDecoder(FamilyV8, func(models.Manifest) (models.Decoder, error) { return NewV8(), nil })
	models.RegisterDecoder(FamilyV5, func(models.Manifest) (models.Decoder, error) { return NewV5(), nil })
}

// V8 decodes the transposed [1, 4+C, N] layout. It keeps per-anchor scratch buffers, so it
// follows the models.Decoder contract: one goroutine at a time.
type V8 struct {
	best    []float32
	bestIdx []int32
}

// NewV8 returns a decoder for the "yolov8" layout.
func NewV8() *V8 { return &V8{} }

// Decode implements models.Decoder.
func (d *V8) Decode(dst []models.Detection, out []float32, shape []int64, score float32, numLabels int) ([]models.Detection, error) {
	if numLabels < 1 {
		return dst, fmt.Errorf("%w: yolov8 decode needs at least one label, got %d", models.ErrBadModel, numLabels)
	}
	if len(shape) != 3 || shape[0] != 1 || shape[1] != int64(4+numLabels) || shape[2] < 1 {
		return dst, models.ShapeError(FamilyV8, shape, fmt.Sprintf("[1 %d N] (4+%d labels, N anchors)", 4+numLabels, numLabels))
	}
	n := int(shape[2])
	if shape[2] > int64(len(out)) || len(out) != (4+numLabels)*n {
		return dst, fmt.Errorf("%w: yolov8 output has %d values, shape %v needs %d", models.ErrBadModel, len(out), shape, (4+numLabels)*n)
	}
	if cap(d.best) < n {
		d.best, d.bestIdx = make([]float32, n), make([]int32, n)
	}
	best, bestIdx := d.best[:n], d.bestIdx[:n]
	// Class-major sweep: each class plane is contiguous, so this reads memory in order.
	copy(best, out[4*n:5*n])
	clear(bestIdx)
	for k := 1; k < numLabels; k++ {
		plane := out[(4+k)*n : (5+k)*n]
		for j, v := range plane {
			if v > best[j] {
				best[j], bestIdx[j] = v, int32(k)
			}
		}
	}
	for j, sc := range best {
		if !(sc >= score) {
			continue
		}
		cx, cy, w, h := out[j], out[n+j], out[2*n+j], out[3*n+j]
		dst = append(dst, models.Detection{ClassID: int(bestIdx[j]), Score: sc, Box: models.Box{X1: cx - w/2, Y1: cy - h/2, X2: cx + w/2, Y2: cy + h/2}})
	}
	return dst, nil
}

// V5 decodes the [1, N, 5+C] layout. It keeps no state and may serve concurrent callers.
type V5 struct{}

// NewV5 returns a decoder for the "yolov5" layout.
func NewV5() V5 { return V5{} }

// Decode implements models.Decoder.
func (V5) Decode(dst []models.Detection, out []float32, shape []int64, score float32, numLabels int) ([]models.Detection, error) {
	if numLabels < 1 {
		return dst, fmt.Errorf("%w: yolov5 decode needs at least one label, got %d", models.ErrBadModel, numLabels)
	}
	width := 5 + numLabels
	if len(shape) != 3 || shape[0] != 1 || shape[1] < 1 || shape[2] != int64(width) {
		return dst, models.ShapeError(FamilyV5, shape, fmt.Sprintf("[1 N %d] (N rows, 5+%d labels)", width, numLabels))
	}
	n := int(shape[1])
	if shape[1] > int64(len(out)) || len(out) != n*width {
		return dst, fmt.Errorf("%w: yolov5 output has %d values, shape %v needs %d", models.ErrBadModel, len(out), shape, n*width)
	}
	for i := range n {
		row := out[i*width : (i+1)*width : (i+1)*width]
		obj := row[4]
		if !(obj >= score) {
			continue
		}
		best, bestScore := models.BestClass(row[5:])
		sc := obj * bestScore
		if !(sc >= score) {
			continue
		}
		cx, cy, w, h := row[0], row[1], row[2], row[3]
		dst = append(dst, models.Detection{ClassID: best, Score: sc, Box: models.Box{X1: cx - w/2, Y1: cy - h/2, X2: cx + w/2, Y2: cy + h/2}})
	}
	return dst, nil
}
