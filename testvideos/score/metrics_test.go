package score

import (
	"math"
	"testing"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
)

// box is a 10×10 box at x (y = 0); shifting by 2.5 px gives IoU 0.6.
func box(x float32) models.Box { return models.Box{X1: x, Y1: 0, X2: x + 10, Y2: 10} }

func o(id uint64, x float32) Object { return Object{ID: id, Box: box(x)} }

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestEvaluate(t *testing.T) {
	cases := []struct {
		name     string
		gt, hyp  map[int][]Object
		want     Metrics // compared: TP FP FN IDSwitches Frag MOTA IDTP IDF1
		wantMOTP float64
	}{
		{
			name: "perfect",
			gt:   map[int][]Object{1: {o(1, 0), o(2, 50)}, 2: {o(1, 1), o(2, 51)}},
			hyp:  map[int][]Object{1: {o(7, 0), o(8, 50)}, 2: {o(7, 1), o(8, 51)}},
			want: Metrics{TP: 4, MOTA: 1, IDTP: 4, IDF1: 1}, wantMOTP: 1,
		},
		{
			name: "one switch halfway",
			gt:   map[int][]Object{1: {o(1, 0)}, 2: {o(1, 0)}, 3: {o(1, 0)}, 4: {o(1, 0)}},
			hyp:  map[int][]Object{1: {o(5, 0)}, 2: {o(5, 0)}, 3: {o(6, 0)}, 4: {o(6, 0)}},
			// MOTA = 1 - 1/4; IDTP = 2 (gt 1 ↔ hyp 5), IDF1 = 2·2/(4+4).
			want: Metrics{TP: 4, IDSwitches: 1, MOTA: 0.75, IDTP: 2, IDF1: 0.5}, wantMOTP: 1,
		},
		{
			name: "misses and false positives",
			gt:   map[int][]Object{1: {o(1, 0), o(2, 50)}, 2: {o(1, 0), o(2, 50)}},
			hyp:  map[int][]Object{1: {o(3, 0), o(4, 200)}, 2: {o(3, 0), o(4, 200)}},
			// TP 2, FN 2, FP 2: MOTA = 1 - 4/4 = 0; IDTP 2, IDF1 = 4/8.
			want: Metrics{TP: 2, FP: 2, FN: 2, MOTA: 0, IDTP: 2, IDF1: 0.5}, wantMOTP: 1,
		},
		{
			name: "an earlier match is kept while valid, even against a better box",
			gt:   map[int][]Object{1: {o(1, 0)}, 2: {o(1, 0)}},
			hyp:  map[int][]Object{1: {o(3, 2.5)}, 2: {o(3, 2.5), o(4, 0)}},
			// Frame 2: hyp 4 fits better (IoU 1) but hyp 3 (IoU 0.6) keeps the match: no switch.
			want: Metrics{TP: 2, FP: 1, MOTA: 0.5, IDTP: 2, IDF1: 4.0 / 5}, wantMOTP: 0.6,
		},
		{
			name: "below IoU 0.5 is a miss and a false positive; a gap is a fragmentation",
			gt:   map[int][]Object{1: {o(1, 0)}, 2: {o(1, 0)}, 3: {o(1, 0)}},
			hyp:  map[int][]Object{1: {o(3, 0)}, 2: {o(3, 6)}, 3: {o(3, 0)}},
			want: Metrics{TP: 2, FP: 1, FN: 1, Frag: 1, MOTA: 1.0 / 3, IDTP: 2, IDF1: 4.0 / 6}, wantMOTP: 1,
		},
		{
			name: "identity prefers the longest overlap",
			gt:   map[int][]Object{1: {o(1, 0)}, 2: {o(1, 0)}, 3: {o(1, 0)}},
			hyp:  map[int][]Object{1: {o(8, 0)}, 2: {o(9, 0)}, 3: {o(9, 0)}},
			want: Metrics{TP: 3, IDSwitches: 1, MOTA: 2.0 / 3, IDTP: 2, IDF1: 4.0 / 6}, wantMOTP: 1,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := Evaluate(c.gt, c.hyp, nil)
			w := c.want
			if m.TP != w.TP || m.FP != w.FP || m.FN != w.FN || m.IDSwitches != w.IDSwitches || m.Frag != w.Frag ||
				!near(m.MOTA, w.MOTA) || m.IDTP != w.IDTP || !near(m.IDF1, w.IDF1) || math.Abs(m.MOTP-c.wantMOTP) > 1e-6 {
				t.Fatalf("got TP %d FP %d FN %d IDsw %d frag %d MOTA %v MOTP %v IDTP %d IDF1 %v\nwant TP %d FP %d FN %d IDsw %d frag %d MOTA %v MOTP %v IDTP %d IDF1 %v",
					m.TP, m.FP, m.FN, m.IDSwitches, m.Frag, m.MOTA, m.MOTP, m.IDTP, m.IDF1,
					w.TP, w.FP, w.FN, w.IDSwitches, w.Frag, w.MOTA, c.wantMOTP, w.IDTP, w.IDF1)
			}
			if m.GT != m.TP+m.FN || m.Hyp != m.TP+m.FP || m.IDFN != m.GT-m.IDTP || m.IDFP != m.Hyp-m.IDTP {
				t.Fatalf("totals disagree: %+v", m)
			}
		})
	}
}

func TestEvaluateFramesSubset(t *testing.T) {
	gt := map[int][]Object{1: {o(1, 0)}, 2: {o(1, 0)}, 3: {o(1, 0)}}
	hyp := map[int][]Object{1: {o(3, 0)}, 3: {o(3, 0)}}
	if m := Evaluate(gt, hyp, []int{3, 1}); m.Frames != 2 || m.TP != 2 || m.FN != 0 || m.MOTA != 1 {
		t.Fatalf("%+v", m)
	}
	d := EvaluateDetections(gt, map[int][]Object{1: {o(0, 0)}, 2: {o(0, 0)}, 3: {o(0, 100)}}, nil)
	if d.TP != 2 || d.FP != 1 || d.FN != 1 || d.IDSwitches != 0 || !near(d.MOTA, 1.0/3) || !near(d.Precision, 2.0/3) {
		t.Fatalf("%+v", d)
	}
}

func TestGreedy(t *testing.T) {
	g := NewGreedy()
	det := func(x float32, s float32) models.Detection {
		return models.Detection{Label: "person", Score: s, Box: box(x)}
	}
	seq := [][]models.Detection{
		{det(0, 0.9), det(30, 0.9), det(60, 0.3)}, // the weak one is ignored
		{det(31, 0.9), det(1, 0.9)},               // order swapped: ids follow the boxes
		{det(2, 0.9)},                             // id 2 vanishes
		{det(32, 0.9), det(3, 0.9)},               // and comes back as a new id
	}
	want := [][]uint64{{1, 2}, {1, 2}, {1}, {1, 3}}
	for i, objs := range seq {
		ts := g.Update(frame.Detections{FrameSeq: uint64(i + 1), Objects: objs})
		var ids []uint64
		for _, tk := range ts.Tracks {
			ids = append(ids, tk.ID)
		}
		if len(ids) != len(want[i]) {
			t.Fatalf("frame %d: ids %v, want %v", i+1, ids, want[i])
		}
		for k := range ids {
			if ids[k] != want[i][k] {
				t.Fatalf("frame %d: ids %v, want %v", i+1, ids, want[i])
			}
		}
	}
}
