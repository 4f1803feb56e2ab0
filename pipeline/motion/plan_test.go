package motion

import (
	"image"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
)

// px is a normalised box for pixel corners in a w x h frame.
func px(w, h int, x1, y1, x2, y2 float64) Box {
	return Box{x1 / float64(w), y1 / float64(h), x2 / float64(w), y2 / float64(h)}
}

func base() PlanInput {
	return PlanInput{Width: 1280, Height: 720, ModelWidth: 416, ModelHeight: 416,
		SinceFull: time.Second, FullFrameEvery: 10 * time.Second, FullFrameCost: 1}
}

// covered reports whether the pixel box of b lies inside one of rs.
func covered(rs []image.Rectangle, b Box, w, h int) bool {
	r := image.Rect(int(b.X1*float64(w)), int(b.Y1*float64(h)), int(math.Ceil(b.X2*float64(w))), int(math.Ceil(b.Y2*float64(h))))
	for _, q := range rs {
		if r.In(q) {
			return true
		}
	}
	return false
}

func TestPlanReasons(t *testing.T) {
	in := base()
	if p := Plan(in); p.Mode != None || p.Reason != ReasonNoMotion || p.Inferences(1) != 0 {
		t.Errorf("nothing: %+v", p)
	}
	in.SinceFull = 10 * time.Second
	if p := Plan(in); p.Mode != FullFrame || p.Reason != ReasonPeriodic || p.Inferences(3) != 3 {
		t.Errorf("periodic: %+v", p)
	}
	in = base()
	in.FullFrameEvery = 0 // never periodic
	in.SinceFull = time.Hour
	if p := Plan(in); p.Mode != None {
		t.Errorf("full_frame_every 0: %+v", p)
	}

	in = base()
	car := px(1280, 720, 900, 500, 960, 540)
	in.Motion = []Box{car}
	p := Plan(in)
	if p.Mode != Regions || p.Reason != ReasonMotion || len(p.Regions) != 1 || p.Inferences(1) != 1 {
		t.Fatalf("motion: %+v", p)
	}
	if r := p.Regions[0]; r.Dx() != 416 || r.Dy() != 416 || !r.In(image.Rect(0, 0, 1280, 720)) || !covered(p.Regions, car, 1280, 720) {
		t.Errorf("motion region %v: want 416x416 inside the frame around the car", r)
	}

	in.Motion = nil
	in.Tracks = []Box{car}
	if p := Plan(in); p.Mode != Regions || p.Reason != ReasonTracks {
		t.Errorf("tracks: %+v", p)
	}
	in.Motion = []Box{px(1280, 720, 800, 400, 820, 450)}
	if p := Plan(in); p.Mode != Regions || p.Reason != ReasonMotion || len(p.Regions) != 1 {
		t.Errorf("motion and tracks: %+v", p)
	}
}

func TestPlanCoverage(t *testing.T) {
	in := base()
	// two movers at opposite corners: one crop must hold both (cost 1), i.e. nearly the frame
	in.Motion = []Box{px(1280, 720, 20, 20, 80, 100), px(1280, 720, 1180, 600, 1260, 700)}
	if p := Plan(in); p.Mode != FullFrame || p.Reason != ReasonCoverage {
		t.Errorf("cost 1, corners: %+v", p)
	}
	// with a tiled detector of 6 tiles, two crops are cheaper and cover 38 % of the frame
	in.FullFrameCost = 6
	p := Plan(in)
	if p.Mode != Regions || len(p.Regions) != 2 {
		t.Fatalf("cost 6, corners: %+v", p)
	}
	// a large mover: its crop covers most of the frame
	in.Motion = []Box{px(1280, 720, 100, 50, 1100, 700)}
	if p := Plan(in); p.Mode != FullFrame || p.Reason != ReasonCoverage {
		t.Errorf("large mover: %+v", p)
	}
	// the setting moves the line: a 700x700 crop covers 53 % of the frame
	in.Motion = []Box{px(1280, 720, 300, 100, 800, 600)}
	if p := Plan(in); p.Mode != Regions || p.Regions[0].Dx() != 700 || p.Regions[0].Dy() != 700 {
		t.Errorf("default coverage, 500x500 mover: %+v", p)
	}
	in.Coverage = 0.5
	if p := Plan(in); p.Mode != FullFrame || p.Reason != ReasonCoverage {
		t.Errorf("coverage 0.5, 500x500 mover: %+v", p)
	}
	// a frame smaller than the model: any crop is the whole frame
	small := PlanInput{Width: 320, Height: 240, ModelWidth: 416, ModelHeight: 416, Motion: []Box{{0.4, 0.4, 0.5, 0.5}}}
	if p := Plan(small); p.Mode != FullFrame || p.Reason != ReasonCoverage {
		t.Errorf("frame smaller than the model: %+v", p)
	}
}

func TestPlanGroupsNearbyBoxes(t *testing.T) {
	in := base()
	in.FullFrameCost = 4
	// three people close together fit in one 416 crop: one inference, not three
	in.Motion = []Box{px(1280, 720, 500, 300, 530, 380), px(1280, 720, 560, 310, 590, 390), px(1280, 720, 620, 290, 650, 370)}
	p := Plan(in)
	if p.Mode != Regions || len(p.Regions) != 1 {
		t.Fatalf("three people together: %+v", p)
	}
	for _, b := range in.Motion {
		if !covered(p.Regions, b, 1280, 720) {
			t.Errorf("box %+v outside %v", b, p.Regions)
		}
	}
}

func TestPlanBorders(t *testing.T) {
	in := base()
	for _, b := range []Box{
		px(1280, 720, 0, 0, 30, 60),         // top-left corner
		px(1280, 720, 1250, 660, 1280, 720), // bottom-right corner
		{-0.1, 0.5, 0.05, 0.6},              // partly outside (a track's prediction)
	} {
		in.Motion = []Box{b}
		p := Plan(in)
		if p.Mode != Regions || len(p.Regions) != 1 {
			t.Fatalf("%+v: %+v", b, p)
		}
		r := p.Regions[0]
		if !r.In(image.Rect(0, 0, 1280, 720)) || r.Dx() != 416 || r.Dy() != 416 {
			t.Errorf("%+v: region %v not a 416x416 crop inside the frame", b, r)
		}
	}
	in.Motion = []Box{{1.1, 1.1, 1.2, 1.2}} // wholly outside
	if p := Plan(in); p.Mode != None {
		t.Errorf("box outside the frame: %+v", p)
	}
	// a tall narrow frame (a cropped stream): the crop keeps the model's aspect as far as it can
	tall := PlanInput{Width: 300, Height: 1200, ModelWidth: 416, ModelHeight: 416, Motion: []Box{{0.4, 0.9, 0.5, 0.95}}}
	p := Plan(tall)
	if p.Mode != Regions || p.Regions[0] != image.Rect(0, 784, 300, 1200) {
		t.Errorf("tall frame: %+v", p)
	}
}

// TestPlanProperties checks, on random inputs, what every plan must hold: never more
// inferences than a full-frame pass, regions inside the frame and at least the model's size
// where the frame allows, every box inside some region.
func TestPlanProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 1))
	for i := range 1000 {
		in := PlanInput{
			Width: 64 + rng.IntN(3000), Height: 64 + rng.IntN(2000),
			ModelWidth: 32 * (4 + rng.IntN(20)), ModelHeight: 32 * (4 + rng.IntN(20)),
			FullFrameCost: rng.IntN(12), Coverage: rng.Float64(),
		}
		for range rng.IntN(15) {
			x, y := rng.Float64(), rng.Float64()
			b := Box{x, y, x + rng.Float64()*0.3, y + rng.Float64()*0.3}
			if rng.IntN(2) == 0 {
				in.Motion = append(in.Motion, b)
			} else {
				in.Tracks = append(in.Tracks, b)
			}
		}
		checkPlan(t, i, in, Plan(in))
	}
}

func checkPlan(t *testing.T, i int, in PlanInput, p Decision) {
	t.Helper()
	cost := max(in.FullFrameCost, 1)
	frame := image.Rect(0, 0, in.Width, in.Height)
	if p.Inferences(cost) > cost {
		t.Fatalf("case %d %+v: %d inferences > full-frame cost %d", i, in, p.Inferences(cost), cost)
	}
	if p.Mode != Regions {
		return
	}
	for _, r := range p.Regions {
		if !r.In(frame) || r.Empty() {
			t.Fatalf("case %d: region %v outside the frame %v", i, r, frame)
		}
		if r.Dx() < min(in.ModelWidth, in.Width) || r.Dy() < min(in.ModelHeight, in.Height) {
			t.Fatalf("case %d: region %v smaller than the model's %dx%d", i, r, in.ModelWidth, in.ModelHeight)
		}
	}
	for _, b := range append(append([]Box(nil), in.Motion...), in.Tracks...) {
		c := Box{max(b.X1, 0), max(b.Y1, 0), min(b.X2, 1), min(b.Y2, 1)}
		if c.Area() > 0 && !covered(p.Regions, c, in.Width, in.Height) {
			t.Fatalf("case %d: box %+v in no region of %v", i, b, p.Regions)
		}
	}
}

func FuzzPlan(f *testing.F) {
	f.Add(1280, 720, 416, 416, 1, 0.6, 0.1, 0.1, 0.2, 0.3, 0.8, 0.8, 0.9, 0.95)
	f.Add(300, 1200, 640, 640, 4, 0.9, 0.0, 0.0, 1.0, 1.0, -1.0, 0.5, 2.0, 0.6)
	f.Fuzz(func(t *testing.T, w, h, mw, mh, cost int, coverage, a1, b1, a2, b2, c1, d1, c2, d2 float64) {
		if w < 1 || h < 1 || w > 10000 || h > 10000 || mw > 10000 || mh > 10000 {
			return
		}
		for _, v := range []float64{coverage, a1, b1, a2, b2, c1, d1, c2, d2} {
			if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e6 {
				return
			}
		}
		in := PlanInput{Width: w, Height: h, ModelWidth: mw, ModelHeight: mh, FullFrameCost: cost % 64, Coverage: coverage,
			Motion: []Box{{a1, b1, a2, b2}}, Tracks: []Box{{c1, d1, c2, d2}}}
		p := Plan(in)
		if mw <= 0 || mh <= 0 {
			in.ModelWidth, in.ModelHeight = w, h
		}
		checkPlan(t, 0, in, p)
	})
}

func TestMapBack(t *testing.T) {
	det := func(class int, score, x1, y1, x2, y2 float32) models.Detection {
		return models.Detection{ClassID: class, Score: score, Box: models.Box{X1: x1, Y1: y1, X2: x2, Y2: y2}}
	}
	a := image.Rect(100, 50, 516, 466)
	b := image.Rect(400, 50, 816, 466) // overlaps a on x 400..516
	got := MapBack(1280, 720, []image.Rectangle{a, b}, [][]models.Detection{
		{
			det(0, 0.9, 10, 10, 50, 100),    // only in a: frame 110,60-150,150
			det(0, 0.8, 320, 100, 360, 200), // in the overlap: frame 420-460
			det(2, 0.6, 380, 300, 416, 360), // a car cut at a's right edge (frame 480..516)
		},
		{
			det(0, 0.85, 21, 101, 61, 201), // the same person as a's second, frame 421-461
			det(2, 0.7, 78, 301, 200, 359), // the whole car: frame 478..600
		},
	}, 0.45)
	want := []models.Box{{X1: 110, Y1: 60, X2: 150, Y2: 150}, {X1: 420, Y1: 150, X2: 460, Y2: 250}, {X1: 478, Y1: 350, X2: 600, Y2: 410}}
	if len(got) != len(want) {
		t.Fatalf("got %d detections %+v, want %d", len(got), got, len(want))
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			if g.Box.IoU(w) > 0.9 {
				found = true
			}
		}
		if !found {
			t.Errorf("no detection at %+v in %+v", w, got)
		}
	}
	if one := MapBack(1280, 720, []image.Rectangle{a}, [][]models.Detection{{det(0, 0.5, 5, 5, 15, 15)}}, 0.45); len(one) != 1 || one[0].Box != (models.Box{X1: 105, Y1: 55, X2: 115, Y2: 65}) {
		t.Errorf("one region: %+v", one)
	}
	// a person cut by the crop's left edge (inside the frame) is dropped: the crop was not made
	// for them; one cut by the frame's edge is kept
	corner := image.Rect(0, 100, 416, 516)
	got = MapBack(1280, 720, []image.Rectangle{a, corner}, [][]models.Detection{{det(0, 0.9, 0, 200, 30, 300)}, {det(0, 0.9, 0, 10, 40, 110)}}, 0.45)
	if len(got) != 2 {
		t.Errorf("cut at a crop's inner edge, reaching the other crop: %+v", got)
	}
	got = MapBack(1280, 720, []image.Rectangle{image.Rect(500, 100, 916, 516), corner}, [][]models.Detection{{det(0, 0.9, 0, 200, 30, 300)}, {det(0, 0.9, 0, 10, 40, 110)}}, 0.45)
	if len(got) != 1 || got[0].Box != (models.Box{X1: 0, Y1: 110, X2: 40, Y2: 210}) {
		t.Errorf("cut at an inner edge: %+v", got)
	}
}

func TestActiveTracks(t *testing.T) {
	box := models.Box{X1: 100, Y1: 100, X2: 140, Y2: 200} // 100 px tall
	ts := []frame.Track{
		{ID: 1, State: frame.Confirmed, Box: box, VX: 30, VY: 0},   // 0.3 heights/s: active
		{ID: 2, State: frame.Confirmed, Box: box, VX: 5, VY: 5},    // parked: not
		{ID: 3, State: frame.Lost, Box: box},                       // lost: look for it
		{ID: 4, State: frame.Removed, Box: box, VX: 100},           // gone
		{ID: 5, State: frame.Confirmed, Box: box, VX: -20, VY: 20}, // 0.28 heights/s
	}
	got := ActiveTracks(ts, 1000, 500)
	want := Box{0.1, 0.2, 0.14, 0.4}
	if len(got) != 3 || got[0] != want {
		t.Fatalf("active: %+v", got)
	}
	if ActiveTracks(ts, 0, 0) != nil {
		t.Error("no frame size: want nil")
	}
}
