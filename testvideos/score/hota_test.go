package score

import (
	"math"
	"testing"

	"github.com/vigil-edge/vigil/models"
)

func TestHOTAHandComputed(t *testing.T) {
	box := models.Box{X1: 0, Y1: 0, X2: 2, Y2: 1}
	half := models.Box{X1: 0, Y1: 0, X2: 1, Y2: 1} // IoU with box: 1/2
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	for _, c := range []struct {
		name    string
		gt, hyp map[int][]Object
		want    HOTAResult
	}{{
		// Perfect boxes, but the one object gets a new id on frame 2: every box is a TP at
		// every alpha (DetA 1); gt id 1 is 2 boxes, each hyp id 1, each pair matched once:
		// A = 1/(2+1-1) = 1/2 for both TPs, AssA = 1/2, HOTA = sqrt(1/2).
		name: "id switch",
		gt:   map[int][]Object{1: {{ID: 1, Box: box}}, 2: {{ID: 1, Box: box}}},
		hyp:  map[int][]Object{1: {{ID: 7, Box: box}}, 2: {{ID: 8, Box: box}}},
		want: HOTAResult{HOTA: math.Sqrt(0.5), DetA: 1, AssA: 0.5, LocA: 1},
	}, {
		// One frame, IoU exactly 1/2: a TP for the 10 alphas 0.05..0.50 (DetA = AssA = 1,
		// LocA 1/2), an FN and an FP for the 9 alphas above (all 0). Averages: 10/19; LocA
		// over the alphas with a TP: 1/2.
		name: "half overlap",
		gt:   map[int][]Object{1: {{ID: 1, Box: box}}},
		hyp:  map[int][]Object{1: {{ID: 5, Box: half}}},
		want: HOTAResult{HOTA: 10.0 / 19, DetA: 10.0 / 19, AssA: 10.0 / 19, LocA: 0.5},
	}, {
		// One perfect box and one extra track box that overlaps nothing: TP 1, FP 1 at every
		// alpha: DetA 1/2, AssA 1, HOTA sqrt(1/2).
		name: "false positive",
		gt:   map[int][]Object{1: {{ID: 1, Box: box}}},
		hyp:  map[int][]Object{1: {{ID: 5, Box: box}, {ID: 6, Box: models.Box{X1: 10, Y1: 10, X2: 11, Y2: 11}}}},
		want: HOTAResult{HOTA: math.Sqrt(0.5), DetA: 0.5, AssA: 1, LocA: 1},
	}} {
		got := HOTA(c.gt, c.hyp, nil)
		if !near(got.HOTA, c.want.HOTA) || !near(got.DetA, c.want.DetA) || !near(got.AssA, c.want.AssA) || !near(got.LocA, c.want.LocA) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}
