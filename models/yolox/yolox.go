// Package yolox decodes the output of YOLOX models (family "yolox"): one tensor
// [1, N, 5+C] whose N rows are the grid cells of strides 8, 16 and 32 over the input, each
// (x, y, w, h, objectness, C class scores) with objectness and class scores already sigmoid.
//
// A cell at grid (gx, gy) of stride s decodes to cx=(x+gx)*s, cy=(y+gy)*s, w=exp(w)*s,
// h=exp(h)*s, and score=obj*cls of its best class. Importing the package registers the family.
package yolox

import (
	"fmt"
	"math"

	"github.com/vigil-edge/vigil/models"
)

// Family is the decoder name used in manifests.
const Family = "yolox"

// strides are the feature-map strides of the YOLOX head, in output row order.
var strides = [...]int{8, 16, 32}

func init() { models.RegisterDecoder(Family, New) }

// cell is one output row's grid position and stride.
type cell struct{ gx, gy, s float32 }

// Decoder decodes YOLOX output for one input size. It keeps no state between calls beyond
// its precomputed grid, so one Decoder may serve concurrent callers.
type Decoder struct {
	cells []cell
}

// New returns a decoder for m's input size, which must be a multiple of the largest stride.
func New(m models.Manifest) (models.Decoder, error) {
	return NewForSize(m.Input.Width, m.Input.Height)
}

// NewForSize returns a decoder for a width x height input.
func NewForSize(width, height int) (*Decoder, error) {
	maxS := strides[len(strides)-1]
	if width <= 0 || height <= 0 || width%maxS != 0 || height%maxS != 0 {
		return nil, fmt.Errorf("%w: yolox input %dx%d must be positive multiples of %d", models.ErrBadModel, width, height, maxS)
	}
	var cells []cell
	for _, s := range strides {
		gw, gh := width/s, height/s
		for gy := range gh {
			for gx := range gw {
				cells = append(cells, cell{float32(gx), float32(gy), float32(s)})
			}
		}
	}
	return &Decoder{cells: cells}, nil
}

// Rows is the number of output rows the decoder expects (3549 for 416x416).
func (d *Decoder) Rows() int { return len(d.cells) }

// Decode implements models.Decoder.
func (d *Decoder) Decode(dst []models.Detection, out []float32, shape []int64, score float32, numLabels int) ([]models.Detection, error) {
	if numLabels < 1 {
		return dst, fmt.Errorf("%w: yolox decode needs at least one label, got %d", models.ErrBadModel, numLabels)
	}
	n, width := len(d.cells), 5+numLabels
	if len(shape) != 3 || shape[0] != 1 || shape[1] != int64(n) || shape[2] != int64(width) {
		return dst, models.ShapeError(Family, shape, fmt.Sprintf("[1 %d %d] (grid cells of strides %v, 5+%d labels)", n, width, strides, numLabels))
	}
	if len(out) != n*width {
		return dst, fmt.Errorf("%w: yolox output has %d values, shape %v needs %d", models.ErrBadModel, len(out), shape, n*width)
	}
	for i, c := range d.cells {
		row := out[i*width : (i+1)*width : (i+1)*width]
		obj := row[4]
		if obj < score { // class scores are <= 1, so obj bounds the score
			continue
		}
		best, bestScore := models.BestClass(row[5:])
		sc := obj * bestScore
		if sc < score || sc != sc {
			continue
		}
		cx, cy := (row[0]+c.gx)*c.s, (row[1]+c.gy)*c.s
		w := float32(math.Exp(float64(row[2]))) * c.s
		h := float32(math.Exp(float64(row[3]))) * c.s
		dst = append(dst, models.Detection{
			ClassID: best,
			Score:   sc,
			Box:     models.Box{X1: cx - w/2, Y1: cy - h/2, X2: cx + w/2, Y2: cy + h/2},
		})
	}
	return dst, nil
}
