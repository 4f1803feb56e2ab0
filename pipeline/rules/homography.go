package rules

import (
	"errors"
	"fmt"
	"math"
)

// Homography is a plane-to-plane projective map, row-major 3x3 with H[8] = 1:
// (x, y) ↦ ((H0 x + H1 y + H2) / w, (H3 x + H4 y + H5) / w), w = H6 x + H7 y + 1.
// Speed rules use one to map normalised image positions to metres on the ground.
type Homography [9]float64

// Sentinel errors of NewHomography.
var (
	// ErrDegenerate: three of the four points are collinear (or two coincide), in the source
	// or in the destination, so no unique homography exists.
	ErrDegenerate = errors.New("degenerate points")
)

// NewHomography returns the homography that maps src[i] to dst[i] for the four pairs
// (direct linear transform with h33 = 1: an 8x8 linear system). It returns an error wrapping
// ErrDegenerate when three points of either set are collinear, or when a coordinate is not
// finite.
func NewHomography(src, dst [4]Point) (Homography, error) {
	for i := range 4 {
		if !src[i].finite() || !dst[i].finite() {
			return Homography{}, fmt.Errorf("point %d is not finite: %w", i, ErrDegenerate)
		}
	}
	if i, j, k, bad := collinear(src); bad {
		return Homography{}, fmt.Errorf("source points %d, %d and %d are collinear: %w", i, j, k, ErrDegenerate)
	}
	if i, j, k, bad := collinear(dst); bad {
		return Homography{}, fmt.Errorf("destination points %d, %d and %d are collinear: %w", i, j, k, ErrDegenerate)
	}
	// For each pair: x' (h6 x + h7 y + 1) = h0 x + h1 y + h2, and likewise for y'.
	var m [8][9]float64
	for i := range 4 {
		x, y, u, v := src[i].X, src[i].Y, dst[i].X, dst[i].Y
		m[2*i] = [9]float64{x, y, 1, 0, 0, 0, -u * x, -u * y, u}
		m[2*i+1] = [9]float64{0, 0, 0, x, y, 1, -v * x, -v * y, v}
	}
	h, ok := solve8(&m)
	if !ok {
		return Homography{}, fmt.Errorf("singular system: %w", ErrDegenerate)
	}
	var H Homography
	copy(H[:8], h[:])
	H[8] = 1
	return H, nil
}

// Map applies h to p; ok is false when p maps to (or near) infinity or the result is not finite.
func (h Homography) Map(p Point) (q Point, ok bool) {
	w := h[6]*p.X + h[7]*p.Y + h[8]
	if math.Abs(w) < 1e-12 {
		return Point{}, false
	}
	q = Point{(h[0]*p.X + h[1]*p.Y + h[2]) / w, (h[3]*p.X + h[4]*p.Y + h[5]) / w}
	return q, q.finite()
}

// collinear finds three points of four that lie on one line (relative to the spread of the
// points), returning their indexes.
func collinear(p [4]Point) (i, j, k int, bad bool) {
	scale := 0.0
	for a := range 4 {
		for b := a + 1; b < 4; b++ {
			scale = max(scale, dist(p[a], p[b]))
		}
	}
	eps := 1e-9 * scale * scale
	for _, t := range [4][3]int{{0, 1, 2}, {0, 1, 3}, {0, 2, 3}, {1, 2, 3}} {
		if scale == 0 || math.Abs(cross(p[t[0]], p[t[1]], p[t[2]])) <= eps {
			return t[0], t[1], t[2], true
		}
	}
	return 0, 0, 0, false
}

// solve8 solves the 8x8 system in m (augmented with its right-hand side in column 8) by
// Gaussian elimination with partial pivoting. ok is false when the system is singular.
func solve8(m *[8][9]float64) (x [8]float64, ok bool) {
	norm := 0.0
	for r := range 8 {
		for c := range 8 {
			norm = max(norm, math.Abs(m[r][c]))
		}
	}
	for c := range 8 {
		p := c
		for r := c + 1; r < 8; r++ {
			if math.Abs(m[r][c]) > math.Abs(m[p][c]) {
				p = r
			}
		}
		if math.Abs(m[p][c]) <= 1e-12*norm {
			return x, false
		}
		m[c], m[p] = m[p], m[c]
		for r := c + 1; r < 8; r++ {
			f := m[r][c] / m[c][c]
			for k := c; k < 9; k++ {
				m[r][k] -= f * m[c][k]
			}
		}
	}
	for r := 7; r >= 0; r-- {
		s := m[r][8]
		for k := r + 1; k < 8; k++ {
			s -= m[r][k] * x[k]
		}
		x[r] = s / m[r][r]
	}
	for _, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return x, false
		}
	}
	return x, true
}
