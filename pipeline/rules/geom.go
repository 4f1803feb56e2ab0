package rules

import "math"

// cross is the z component of (b-a) × (p-a): > 0 when p is right of the directed line a→b
// as seen on screen (y down), < 0 when left.
func cross(a, b, p Point) float64 {
	return (b.X-a.X)*(p.Y-a.Y) - (b.Y-a.Y)*(p.X-a.X)
}

func dist(a, b Point) float64 { return math.Hypot(b.X-a.X, b.Y-a.Y) }

// contains reports whether p is inside poly (even-odd rule; points on an edge may go either way).
func contains(poly []Point, p Point) bool {
	in := false
	for i, j := 0, len(poly)-1; i < len(poly); j, i = i, i+1 {
		a, b := poly[i], poly[j]
		if (a.Y > p.Y) != (b.Y > p.Y) && p.X < (b.X-a.X)*(p.Y-a.Y)/(b.Y-a.Y)+a.X {
			in = !in
		}
	}
	return in
}

// properlyIntersect reports whether segments p1-p2 and q1-q2 cross at a single point interior
// to both (touching at an end, or overlapping collinearly, is not a proper intersection).
func properlyIntersect(p1, p2, q1, q2 Point) bool {
	d1, d2 := cross(q1, q2, p1), cross(q1, q2, p2)
	d3, d4 := cross(p1, p2, q1), cross(p1, p2, q2)
	return (d1 > 0 && d2 < 0 || d1 < 0 && d2 > 0) && (d3 > 0 && d4 < 0 || d3 < 0 && d4 > 0)
}

// selfIntersects reports whether two non-adjacent edges of poly properly intersect.
func selfIntersects(poly []Point) bool {
	n := len(poly)
	for i := 0; i < n; i++ {
		for j := i + 2; j < n; j++ {
			if i == 0 && j == n-1 {
				continue // adjacent through the closing edge
			}
			if properlyIntersect(poly[i], poly[(i+1)%n], poly[j], poly[(j+1)%n]) {
				return true
			}
		}
	}
	return false
}

// area is the polygon's unsigned area (shoelace).
func area(poly []Point) float64 {
	s := 0.0
	for i, j := 0, len(poly)-1; i < len(poly); j, i = i, i+1 {
		s += poly[j].X*poly[i].Y - poly[i].X*poly[j].Y
	}
	return math.Abs(s) / 2
}

// angleDeg is the angle between vectors (ax, ay) and (bx, by), 0-180 degrees.
func angleDeg(ax, ay, bx, by float64) float64 {
	d := math.Atan2(ax*by-ay*bx, ax*bx+ay*by) * 180 / math.Pi
	return math.Abs(d)
}
