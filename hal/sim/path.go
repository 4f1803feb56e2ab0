package sim

import (
	"fmt"
	"math"
)

const gravity = 9.80665

// segment is a straight leg or a circular arc of a flight path, in metres north/east of home.
type segment struct {
	length float64
	arc    bool
	// straight leg: start and heading (radians from north, clockwise)
	n0, e0, hdg float64
	// arc: centre, radius, start angle of the position seen from the centre (radians from north,
	// clockwise) and direction: +1 clockwise (a right turn), -1 counter-clockwise (a left turn)
	cn, ce, r, a0, dir float64
}

// at returns the position, heading and turn radius sign (+1/r right, -1/r left, 0 straight) at
// distance s along the segment.
func (g segment) at(s float64) (n, e, hdg, curvature float64) {
	if !g.arc {
		sh, ch := math.Sincos(g.hdg)
		return g.n0 + s*ch, g.e0 + s*sh, g.hdg, 0
	}
	a := g.a0 + g.dir*s/g.r
	sa, ca := math.Sincos(a)
	return g.cn + g.r*ca, g.ce + g.r*sa, a + g.dir*math.Pi/2, g.dir / g.r
}

// path is a closed loop of segments flown at constant speed.
type path struct {
	segs  []segment
	total float64
}

func (p *path) add(g segment) {
	if g.length > 1e-9 {
		p.segs = append(p.segs, g)
		p.total += g.length
	}
}

// at returns the state at distance d along the loop.
func (p *path) at(d float64) (n, e, hdg, curvature float64) {
	d = math.Mod(d, p.total)
	if d < 0 {
		d += p.total
	}
	for _, g := range p.segs {
		if d <= g.length {
			return g.at(d)
		}
		d -= g.length
	}
	last := p.segs[len(p.segs)-1]
	return last.at(last.length)
}

// orbitPath is a clockwise circle of radius r around home, starting north of it.
func orbitPath(r float64) *path {
	p := &path{}
	p.add(segment{arc: true, length: 2 * math.Pi * r, r: r, a0: 0, dir: 1})
	return p
}

// lawnmowerPath covers a rows×spacing by length rectangle centred on home with north-south
// legs joined by half circles, and closes the loop back to the first leg (rows is even).
func lawnmowerPath(rows int, spacing, length float64) (*path, error) {
	if rows < 2 || rows%2 != 0 {
		return nil, fmt.Errorf("lawnmower rows must be even and >= 2, got %d", rows)
	}
	p := &path{}
	r := spacing / 2
	on, oe := -length/2, -float64(rows-1)*spacing/2 // centre the pattern on home
	for i := range rows {
		e := float64(i)*spacing + oe
		if i%2 == 0 {
			p.add(segment{length: length, n0: on, e0: e, hdg: 0})
			if i < rows-1 {
				p.add(segment{arc: true, length: math.Pi * r, cn: on + length, ce: e + r, r: r, a0: -math.Pi / 2, dir: 1})
			}
		} else {
			p.add(segment{length: length, n0: on + length, e0: e, hdg: math.Pi})
			if i < rows-1 {
				p.add(segment{arc: true, length: math.Pi * r, cn: on, ce: e + r, r: r, a0: -math.Pi / 2, dir: -1})
			}
		}
	}
	// back from the end of the last (southbound) leg to the start of the first
	eLast := float64(rows-1)*spacing + oe
	p.add(segment{arc: true, length: math.Pi / 2 * r, cn: on, ce: eLast - r, r: r, a0: math.Pi / 2, dir: 1})
	p.add(segment{length: float64(rows-2) * spacing, n0: on - r, e0: eLast - r, hdg: 3 * math.Pi / 2})
	p.add(segment{arc: true, length: math.Pi / 2 * r, cn: on, ce: oe + r, r: r, a0: math.Pi, dir: 1})
	return p, nil
}

// curvature is +1/r for a right turn, -1/r for a left turn, 0 for a straight leg.
func (g segment) curvature() float64 {
	if !g.arc {
		return 0
	}
	return g.dir / g.r
}

// avgCurvature is the mean curvature over [d-w, d+w] along the loop: piecewise linear in d, so
// a bank angle derived from it changes smoothly at the joints of the path.
func (p *path) avgCurvature(d, w float64) float64 {
	lo, hi := d-w, d+w
	sum := 0.0
	for base := math.Floor(lo/p.total) * p.total; base < hi; base += p.total {
		pos := base
		for _, g := range p.segs {
			a, b := max(lo, pos), min(hi, pos+g.length)
			if b > a {
				sum += (b - a) * g.curvature()
			}
			pos += g.length
		}
	}
	return sum / (2 * w)
}
