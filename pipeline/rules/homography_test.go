package rules_test

import (
	"errors"
	"math"
	"testing"

	"github.com/vigil-edge/vigil/pipeline/rules"
)

func TestHomography(t *testing.T) {
	unit := [4]rules.Point{{X: 0, Y: 0}, {X: 1, Y: 0}, {X: 1, Y: 1}, {X: 0, Y: 1}}
	cases := []struct {
		name     string
		src, dst [4]rules.Point
		// more pairs the map must honour: the centre of the source, for instance
		extra [][2]rules.Point
	}{
		{"identity", unit, unit, [][2]rules.Point{{{X: 0.3, Y: 0.7}, {X: 0.3, Y: 0.7}}}},
		{"scale to 20 m", unit, [4]rules.Point{{X: 0, Y: 0}, {X: 20, Y: 0}, {X: 20, Y: 20}, {X: 0, Y: 20}},
			[][2]rules.Point{{{X: 0.5, Y: 0.25}, {X: 10, Y: 5}}}},
		{"perspective: a road's trapezoid to a rectangle", // the diagonals' crossing maps to the centre
			[4]rules.Point{{X: 0.4, Y: 0.3}, {X: 0.6, Y: 0.3}, {X: 0.9, Y: 0.9}, {X: 0.1, Y: 0.9}},
			[4]rules.Point{{X: 0, Y: 50}, {X: 10, Y: 50}, {X: 10, Y: 0}, {X: 0, Y: 0}},
			[][2]rules.Point{{{X: 0.5, Y: 0.42}, {X: 5, Y: 25}}}},
		{"rotation and shift", unit, [4]rules.Point{{X: 5, Y: 5}, {X: 5, Y: 6}, {X: 4, Y: 6}, {X: 4, Y: 5}},
			[][2]rules.Point{{{X: 0.5, Y: 0.5}, {X: 4.5, Y: 5.5}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := rules.NewHomography(c.src, c.dst)
			if err != nil {
				t.Fatal(err)
			}
			pairs := c.extra
			for i := range 4 {
				pairs = append(pairs, [2]rules.Point{c.src[i], c.dst[i]})
			}
			for _, p := range pairs {
				got, ok := h.Map(p[0])
				if !ok || math.Abs(got.X-p[1].X) > 1e-9 || math.Abs(got.Y-p[1].Y) > 1e-9 {
					t.Errorf("Map(%v) = %v, %v; want %v", p[0], got, ok, p[1])
				}
			}
		})
	}
}

func TestHomographyDegenerate(t *testing.T) {
	unit := [4]rules.Point{{X: 0, Y: 0}, {X: 1, Y: 0}, {X: 1, Y: 1}, {X: 0, Y: 1}}
	cases := []struct {
		name     string
		src, dst [4]rules.Point
	}{
		{"collinear source", [4]rules.Point{{X: 0, Y: 0}, {X: 0.5, Y: 0.5}, {X: 1, Y: 1}, {X: 0, Y: 1}}, unit},
		{"collinear destination", unit, [4]rules.Point{{X: 0, Y: 0}, {X: 1, Y: 0}, {X: 2, Y: 0}, {X: 0, Y: 1}}},
		{"repeated point", [4]rules.Point{{X: 0, Y: 0}, {X: 0, Y: 0}, {X: 1, Y: 1}, {X: 0, Y: 1}}, unit},
		{"all the same", [4]rules.Point{}, unit},
		{"not finite", [4]rules.Point{{X: math.Inf(1), Y: 0}, {X: 1, Y: 0}, {X: 1, Y: 1}, {X: 0, Y: 1}}, unit},
		{"nearly collinear", [4]rules.Point{{X: 0, Y: 0}, {X: 0.5, Y: 0.5 + 1e-12}, {X: 1, Y: 1}, {X: 0, Y: 1}}, unit},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if h, err := rules.NewHomography(c.src, c.dst); !errors.Is(err, rules.ErrDegenerate) {
				t.Errorf("got %v, %v; want ErrDegenerate", h, err)
			}
		})
	}
}

func TestHomographyMapAtInfinity(t *testing.T) {
	// w = 1 - x: the line x = 1 maps to infinity.
	h := rules.Homography{1, 0, 0, 0, 1, 0, -1, 0, 1}
	if q, ok := h.Map(rules.Point{X: 1, Y: 0.5}); ok {
		t.Errorf("Map on the vanishing line = %v, ok", q)
	}
	if q, ok := h.Map(rules.Point{X: 0.5, Y: 0.5}); !ok || q != (rules.Point{X: 1, Y: 1}) {
		t.Errorf("Map(0.5, 0.5) = %v, %v; want (1, 1)", q, ok)
	}
}
