// Package mask holds a camera's privacy masks and exclusion zones.
//
// A privacy Mask is a polygon whose pixels are redacted (filled black, or blurred beyond
// recognition) in everything the agent keeps or sends of a picture: Apply redacts an image in
// place, and the snapshot store calls it on its own copy of a frame before encoding. An
// Exclude polygon is an area where detections are ignored (a poster of a person, a parked-car
// lot): FilterDetections drops every detection whose position lies inside one.
//
// Points are normalised image coordinates, 0-1, x to the right and y down, as in the rules, so
// a mask survives a change of resolution. A detection's position is the bottom centre of its
// box (where the object meets the ground), the same point the rules use: a person standing in
// front of an excluded poster is kept as long as their feet are outside it.
//
// Validate checks masks and exclusions without I/O and names the offending one.
package mask

import (
	"errors"
	"fmt"
	"math"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
)

// Mask modes.
const (
	ModeBlack = "black" // fill with black (the default)
	ModeBlur  = "blur"  // blur so strongly that nothing inside can be recognised
)

// MaxPoints is the most points a polygon may have.
const MaxPoints = 100

// Polygon is a simple polygon: at least three normalised (x, y) vertices, 0-1, in order; the
// last joins the first.
type Polygon [][2]float64

// Mask is a privacy mask, as configured per camera (`privacy_masks:`).
type Mask struct {
	ID     string  `yaml:"id" json:"id"`
	Points Polygon `yaml:"points" json:"points"`
	Mode   string  `yaml:"mode" json:"mode"` // ModeBlack or ModeBlur; "" means ModeBlack
}

// Exclude is an area where detections are ignored, as configured per camera (`exclude:`).
type Exclude struct {
	ID     string  `yaml:"id" json:"id"`
	Points Polygon `yaml:"points" json:"points"`
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid mask")

// Validate checks a camera's privacy masks and exclusion zones: ids present and unique within
// each list, modes known, polygons valid. The error names the first bad entry.
func Validate(masks []Mask, excl []Exclude) error {
	seen := map[string]bool{}
	for i, m := range masks {
		if err := m.Validate(); err != nil {
			return fmt.Errorf("privacy_masks[%d]: %w", i, err)
		}
		if seen[m.ID] {
			return fmt.Errorf("%w: privacy_masks[%d]: id %q is used twice", ErrInvalid, i, m.ID)
		}
		seen[m.ID] = true
	}
	clear(seen)
	for i, e := range excl {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("exclude[%d]: %w", i, err)
		}
		if seen[e.ID] {
			return fmt.Errorf("%w: exclude[%d]: id %q is used twice", ErrInvalid, i, e.ID)
		}
		seen[e.ID] = true
	}
	return nil
}

// Validate checks one privacy mask.
func (m Mask) Validate() error {
	if m.ID == "" {
		return fmt.Errorf("%w: privacy mask has no id", ErrInvalid)
	}
	if m.Mode != "" && m.Mode != ModeBlack && m.Mode != ModeBlur {
		return fmt.Errorf("%w: privacy mask %q: mode %q is not %q or %q", ErrInvalid, m.ID, m.Mode, ModeBlack, ModeBlur)
	}
	if err := m.Points.Validate(); err != nil {
		return fmt.Errorf("privacy mask %q: %w", m.ID, err)
	}
	return nil
}

// Validate checks one exclusion zone.
func (e Exclude) Validate() error {
	if e.ID == "" {
		return fmt.Errorf("%w: exclusion zone has no id", ErrInvalid)
	}
	if err := e.Points.Validate(); err != nil {
		return fmt.Errorf("exclusion zone %q: %w", e.ID, err)
	}
	return nil
}

// Polygons returns the exclusion zones' polygons, for FilterDetections.
func Polygons(excl []Exclude) []Polygon {
	out := make([]Polygon, len(excl))
	for i, e := range excl {
		out[i] = e.Points
	}
	return out
}

// Validate checks that p has 3 to MaxPoints points, all within 0-1, that it encloses some
// area, and that no two of its edges cross or touch other than neighbours at their shared
// vertex.
func (p Polygon) Validate() error {
	n := len(p)
	if n < 3 {
		return fmt.Errorf("%w: a polygon needs at least 3 points, got %d", ErrInvalid, n)
	}
	if n > MaxPoints {
		return fmt.Errorf("%w: a polygon may have at most %d points, got %d", ErrInvalid, MaxPoints, n)
	}
	for i, pt := range p {
		if !(pt[0] >= 0 && pt[0] <= 1 && pt[1] >= 0 && pt[1] <= 1) { // false for NaN too
			return fmt.Errorf("%w: point %d (%g, %g) is outside 0-1", ErrInvalid, i, pt[0], pt[1])
		}
	}
	for i := range n {
		a1, a2 := p[i], p[(i+1)%n]
		for j := i + 1; j < n; j++ {
			b1, b2 := p[j], p[(j+1)%n]
			adjacent := j == i+1 || (i == 0 && j == n-1)
			if adjacent {
				// Neighbours share one vertex; they may not fold back over each other.
				if collinearOverlap(a1, a2, b1, b2) {
					return fmt.Errorf("%w: edges %d and %d overlap", ErrInvalid, i, j)
				}
				continue
			}
			if segmentsIntersect(a1, a2, b1, b2) {
				return fmt.Errorf("%w: edges %d and %d cross (the polygon intersects itself)", ErrInvalid, i, j)
			}
		}
	}
	if math.Abs(p.area()) < 1e-9 {
		return fmt.Errorf("%w: the polygon encloses no area", ErrInvalid)
	}
	return nil
}

// area is the polygon's signed area (shoelace formula).
func (p Polygon) area() float64 {
	var s float64
	for i := range p {
		a, b := p[i], p[(i+1)%len(p)]
		s += a[0]*b[1] - b[0]*a[1]
	}
	return s / 2
}

// Contains reports whether (x, y) lies inside p (even-odd rule; points exactly on an edge may
// go either way).
func (p Polygon) Contains(x, y float64) bool {
	in := false
	for i, j := 0, len(p)-1; i < len(p); j, i = i, i+1 {
		xi, yi, xj, yj := p[i][0], p[i][1], p[j][0], p[j][1]
		if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
			in = !in
		}
	}
	return in
}

func cross(o, a, b [2]float64) float64 {
	return (a[0]-o[0])*(b[1]-o[1]) - (a[1]-o[1])*(b[0]-o[0])
}

func sign(v float64) int {
	const eps = 1e-12
	switch {
	case v > eps:
		return 1
	case v < -eps:
		return -1
	}
	return 0
}

// onSegment reports whether q, known to be collinear with a-b, lies within the segment's box.
func onSegment(a, b, q [2]float64) bool {
	return min(a[0], b[0]) <= q[0] && q[0] <= max(a[0], b[0]) && min(a[1], b[1]) <= q[1] && q[1] <= max(a[1], b[1])
}

// segmentsIntersect reports whether segments a1-a2 and b1-b2 share any point.
func segmentsIntersect(a1, a2, b1, b2 [2]float64) bool {
	d1, d2 := sign(cross(b1, b2, a1)), sign(cross(b1, b2, a2))
	d3, d4 := sign(cross(a1, a2, b1)), sign(cross(a1, a2, b2))
	if d1*d2 < 0 && d3*d4 < 0 {
		return true
	}
	return d1 == 0 && onSegment(b1, b2, a1) || d2 == 0 && onSegment(b1, b2, a2) ||
		d3 == 0 && onSegment(a1, a2, b1) || d4 == 0 && onSegment(a1, a2, b2)
}

// collinearOverlap reports whether two segments that share a vertex lie on one line and
// overlap in more than that vertex (an edge doubling back on its neighbour), or either is empty.
func collinearOverlap(a1, a2, b1, b2 [2]float64) bool {
	if a1 == a2 || b1 == b2 {
		return true
	}
	if sign(cross(a1, a2, b1)) != 0 || sign(cross(a1, a2, b2)) != 0 {
		return false
	}
	// Collinear: they overlap unless the directions away from the shared vertex are opposite.
	var shared, pa, pb [2]float64
	switch {
	case a2 == b1:
		shared, pa, pb = a2, a1, b2
	case a1 == b2:
		shared, pa, pb = a1, a2, b1
	case a1 == b1:
		shared, pa, pb = a1, a2, b2
	default:
		shared, pa, pb = a2, a1, b1
	}
	dot := (pa[0]-shared[0])*(pb[0]-shared[0]) + (pa[1]-shared[1])*(pb[1]-shared[1])
	return dot > 0
}

// FilterDetections returns d without the objects whose box's bottom centre, normalised by the
// frame's size, lies inside one of excl. When nothing is dropped (or there is nothing to drop
// against: no polygons, or no frame size) d is returned as is; otherwise Objects is a new
// slice and d's own slice is left untouched.
func FilterDetections(d frame.Detections, excl []Polygon) frame.Detections {
	if len(excl) == 0 || d.Width <= 0 || d.Height <= 0 {
		return d
	}
	var kept []models.Detection
	dropped := false
	for i, o := range d.Objects {
		x := float64(o.Box.X1+o.Box.X2) / 2 / float64(d.Width)
		y := float64(o.Box.Y2) / float64(d.Height)
		inside := false
		for _, p := range excl {
			if p.Contains(x, y) {
				inside = true
				break
			}
		}
		switch {
		case inside && !dropped:
			dropped = true
			kept = make([]models.Detection, i, len(d.Objects)-1)
			copy(kept, d.Objects[:i])
		case !inside && dropped:
			kept = append(kept, o)
		}
	}
	if dropped {
		d.Objects = kept
	}
	return d
}
