package motion

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// scene is a synthetic camera: a textured background (blobs of 8x8 pixels, grey 40-200,
// like a street seen from afar), per-frame sensor noise, and optional rectangles drawn on it.
type scene struct {
	w, h, stride int
	bg           []byte
	rng          *rand.Rand
	noise        int // ± grey levels, uniform
	noiseTab     []int16
}

func newScene(w, h int, seed uint64) *scene {
	s := &scene{w: w, h: h, stride: w + 32, rng: rand.New(rand.NewPCG(seed, 1)), noise: 4}
	s.bg = make([]byte, s.stride*h)
	cells := make([]byte, (w/8+2)*(h/8+2))
	for i := range cells {
		cells[i] = byte(40 + s.rng.IntN(161))
	}
	cw := w/8 + 2
	for y := range h {
		for x := range w {
			// bilinear between cell values: smooth texture, edges everywhere
			cx, cy := x/8, y/8
			fx, fy := float64(x%8)/8, float64(y%8)/8
			v := float64(cells[cy*cw+cx])*(1-fx)*(1-fy) + float64(cells[cy*cw+cx+1])*fx*(1-fy) +
				float64(cells[(cy+1)*cw+cx])*(1-fx)*fy + float64(cells[(cy+1)*cw+cx+1])*fx*fy
			s.bg[y*s.stride+x] = byte(v)
		}
	}
	return s
}

type rect struct {
	x, y, w, h int
	grey       byte
}

// frame renders the background through gain and offset, the rectangles on top, plus noise
// (from a table of random values read at a random offset: cheap under the race detector).
func (s *scene) frame(gain, off float64, rs ...rect) []byte {
	if len(s.noiseTab) == 0 {
		s.noiseTab = make([]int16, 65521)
		for i := range s.noiseTab {
			s.noiseTab[i] = int16(s.rng.IntN(2*s.noise+1) - s.noise)
		}
	}
	var lut [256]int16
	for v := range lut {
		lut[v] = int16(min(max(float64(v)*gain+off, 0), 255))
	}
	out := make([]byte, len(s.bg))
	j := s.rng.IntN(len(s.noiseTab))
	for y := range s.h {
		row := s.bg[y*s.stride : y*s.stride+s.w]
		o := out[y*s.stride : y*s.stride+s.w]
		for x, v := range row {
			lv := lut[v]
			for _, r := range rs {
				if x >= r.x && x < r.x+r.w && y >= r.y && y < r.y+r.h {
					lv = lut[r.grey]
				}
			}
			o[x] = byte(min(max(lv+s.noiseTab[j], 0), 255))
			if j++; j == len(s.noiseTab) {
				j = 0
			}
		}
	}
	return out
}

func newDetector(t testing.TB, cfg Config) *Detector {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// learn feeds n still frames.
func learn(t *testing.T, d *Detector, s *scene, n int) {
	t.Helper()
	for i := range n {
		r := d.Update(s.frame(1, 0), s.w, s.h, s.stride)
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if i == 0 && !r.Learning {
			t.Fatal("first frame: Learning not set")
		}
		if i > 0 && len(r.Boxes) > 0 {
			t.Fatalf("still frame %d: motion %v", i, r.Boxes)
		}
	}
}

func contains(b Box, x1, y1, x2, y2 float64) bool {
	const tol = 0.02
	return b.X1 <= x1+tol && b.Y1 <= y1+tol && b.X2 >= x2-tol && b.Y2 >= y2-tol
}

func overlaps(b Box, x1, y1, x2, y2 float64) bool {
	return b.X1 < x2 && x1 < b.X2 && b.Y1 < y2 && y1 < b.Y2
}

func TestStillSceneWithNoise(t *testing.T) {
	s := newScene(1280, 720, 1)
	s.noise = 8 // strong sensor noise: ±8 grey levels per pixel and frame
	d := newDetector(t, Config{})
	learn(t, d, s, 25)
	if w, h := d.AnalysisSize(); w != 320 || h != 180 {
		t.Fatalf("analysis size %dx%d, want 320x180", w, h)
	}
}

func TestMovingRectangle(t *testing.T) {
	s := newScene(1280, 720, 2)
	d := newDetector(t, Config{})
	learn(t, d, s, 12)
	for i := range 12 {
		r := rect{x: 100 + 25*i, y: 300, w: 60, h: 120, grey: 230}
		res := d.Update(s.frame(1, 0, r), s.w, s.h, s.stride)
		x1, y1 := float64(r.x)/1280, float64(r.y)/720
		x2, y2 := float64(r.x+r.w)/1280, float64(r.y+r.h)/720
		found := false
		for _, b := range res.Boxes {
			if contains(b, x1, y1, x2, y2) {
				found = true
			}
			// the box may include where the rectangle was in the last frames (the background,
			// learnt at Alpha 0.2, still shows a fading trail there: up to 5 steps here)
			px1 := float64(r.x-5*25-8) / 1280
			if b.X1 < px1 || b.X2 > x2+0.02 || b.Y1 < y1-0.02 || b.Y2 > y2+0.02 {
				t.Errorf("frame %d: box %+v strays from the rectangle %v", i, b, r)
			}
		}
		if !found {
			t.Fatalf("frame %d: no box contains the rectangle %+v: %+v", i, r, res.Boxes)
		}
		if res.Fraction <= 0 || res.Fraction > 0.03 {
			t.Errorf("frame %d: fraction %v, want about 0.01", i, res.Fraction)
		}
	}
}

func TestGhostOfFirstFrameFades(t *testing.T) {
	s := newScene(640, 360, 3)
	d := newDetector(t, Config{})
	obj := rect{x: 200, y: 100, w: 50, h: 80, grey: 250}
	d.Update(s.frame(1, 0, obj), s.w, s.h, s.stride) // learns with the object in it
	var last Result
	for range 10 { // the object has left; its ghost must fade within LearnFrames
		last = d.Update(s.frame(1, 0), s.w, s.h, s.stride)
	}
	if len(last.Boxes) > 0 {
		t.Fatalf("ghost still reported after 10 frames: %+v", last.Boxes)
	}
}

func TestStoppedObjectFadesIntoBackground(t *testing.T) {
	s := newScene(640, 360, 4)
	d := newDetector(t, Config{Alpha: 0.2})
	learn(t, d, s, 12)
	obj := rect{x: 300, y: 200, w: 40, h: 40, grey: 0}
	first := d.Update(s.frame(1, 0, obj), s.w, s.h, s.stride)
	if len(first.Boxes) != 1 {
		t.Fatalf("object appearing: %d boxes, want 1", len(first.Boxes))
	}
	var last Result
	for range 25 { // 5 time constants
		last = d.Update(s.frame(1, 0, obj), s.w, s.h, s.stride)
	}
	if len(last.Boxes) > 0 {
		t.Fatalf("a stopped object is still motion after 25 updates at alpha 0.2: %+v", last.Boxes)
	}
}

func TestLightingChange(t *testing.T) {
	s := newScene(1280, 720, 5)
	d := newDetector(t, Config{})
	learn(t, d, s, 12)
	// auto-exposure / lights: brighter and more contrast at once, a person walking meanwhile
	walker := rect{x: 600, y: 400, w: 40, h: 100, grey: 20}
	res := d.Update(s.frame(1.35, 25, walker), s.w, s.h, s.stride)
	if res.Relearned || len(res.Boxes) != 1 || !contains(res.Boxes[0], 600.0/1280, 400.0/720, 640.0/1280, 500.0/720) {
		t.Fatalf("brightness+contrast step: want only the walker, got %+v", res)
	}
	// then darker than before
	res = d.Update(s.frame(0.6, -10), s.w, s.h, s.stride)
	if len(res.Boxes) > 0 {
		t.Fatalf("darkening: motion %+v", res.Boxes)
	}
	// a non-linear change, as an exposure change through a camera's tone curve makes: twice
	// as bright, the light greys saturating at 255
	f := s.frame(1, 0)
	for i, v := range f {
		f[i] = byte(min(255, 2*math.Pow(float64(v), 1.05)))
	}
	d.Update(s.frame(1, 0), s.w, s.h, s.stride)
	if res = d.Update(f, s.w, s.h, s.stride); len(res.Boxes) > 0 || res.Relearned {
		t.Fatalf("gamma change: %+v", res)
	}
}

func TestGlobalChangeRelearns(t *testing.T) {
	s := newScene(640, 360, 6)
	d := newDetector(t, Config{})
	learn(t, d, s, 20)
	other := newScene(640, 360, 7) // the camera turned: another scene altogether
	res := d.Update(other.frame(1, 0), other.w, other.h, other.stride)
	if !res.Relearned || len(res.Boxes) > 0 {
		t.Fatalf("scene change: want a relearn and no boxes, got %+v", res)
	}
	for i := range 5 {
		if res := d.Update(other.frame(1, 0), other.w, other.h, other.stride); len(res.Boxes) > 0 || res.Relearned {
			t.Fatalf("frame %d after the relearn: %+v", i, res)
		}
	}
	obj := rect{x: 100, y: 100, w: 40, h: 40, grey: 255}
	if res := d.Update(other.frame(1, 0, obj), other.w, other.h, other.stride); len(res.Boxes) != 1 {
		t.Fatalf("motion after the relearn: %d boxes, want 1", len(res.Boxes))
	}
}

func TestMaskIgnoresMotion(t *testing.T) {
	s := newScene(640, 360, 8)
	// a tree on the left third, an on-screen clock top right
	tree := Polygon{{0, 0}, {0.33, 0}, {0.33, 1}, {0, 1}}
	clock := Polygon{{0.8, 0}, {1, 0}, {1, 0.08}, {0.8, 0.08}}
	d := newDetector(t, Config{Masks: []Polygon{tree, clock}})
	learn(t, d, s, 12)
	for i := range 10 {
		leaves := rect{x: 50 + 5*i, y: 100, w: 100, h: 100, grey: byte(50 + 20*i)}
		digits := rect{x: 550, y: 5, w: 75, h: 15, grey: byte(255 * (i % 2))}
		if res := d.Update(s.frame(1, 0, leaves, digits), s.w, s.h, s.stride); len(res.Boxes) > 0 {
			t.Fatalf("frame %d: motion inside masks: %+v", i, res.Boxes)
		}
	}
	car := rect{x: 350, y: 200, w: 60, h: 30, grey: 240}
	res := d.Update(s.frame(1, 0, car), s.w, s.h, s.stride)
	if len(res.Boxes) != 1 || !contains(res.Boxes[0], 350.0/640, 200.0/360, 410.0/640, 230.0/360) {
		t.Fatalf("motion outside the masks: %+v", res.Boxes)
	}
}

func TestResolutionChangeResets(t *testing.T) {
	a := newScene(1280, 720, 9)
	d := newDetector(t, Config{})
	learn(t, d, a, 3)
	b := newScene(768, 432, 10)
	res := d.Update(b.frame(1, 0), b.w, b.h, b.stride)
	if !res.Learning || res.Err != nil || len(res.Boxes) > 0 {
		t.Fatalf("new resolution: want a fresh start, got %+v", res)
	}
	if w, h := d.AnalysisSize(); w != 256 || h != 144 {
		t.Fatalf("analysis size %dx%d at 768x432, want 256x144", w, h)
	}
	for range 10 {
		d.Update(b.frame(1, 0), b.w, b.h, b.stride)
	}
	obj := rect{x: 500, y: 300, w: 60, h: 60, grey: 255}
	res = d.Update(b.frame(1, 0, obj), b.w, b.h, b.stride)
	if len(res.Boxes) != 1 || !contains(res.Boxes[0], 500.0/768, 300.0/432, 560.0/768, 360.0/432) {
		t.Fatalf("motion at the new resolution: %+v", res.Boxes)
	}
}

func TestSmallFrameAndEdges(t *testing.T) {
	s := newScene(100, 60, 11) // smaller than the analysis width: k = 1
	d := newDetector(t, Config{MinArea: 4})
	learn(t, d, s, 10)
	obj := rect{x: 90, y: 50, w: 10, h: 10, grey: 255} // in the bottom-right corner
	res := d.Update(s.frame(1, 0, obj), s.w, s.h, s.stride)
	if len(res.Boxes) != 1 || res.Boxes[0].X2 != 1 || res.Boxes[0].Y2 != 1 {
		t.Fatalf("corner object: %+v", res.Boxes)
	}
}

func TestBadPlane(t *testing.T) {
	d := newDetector(t, Config{})
	for _, c := range []struct{ n, w, h, stride int }{{100, 10, 10, 10 - 1}, {99, 10, 10, 10}, {0, 0, 10, 10}} {
		if res := d.Update(make([]byte, c.n), c.w, c.h, c.stride); res.Err == nil || !strings.Contains(res.Err.Error(), "inconsistent luma plane") {
			t.Errorf("%+v: err %v", c, res.Err)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{AnalysisWidth: 8}, "motion.analysis_width: must be in 16-4096, got 8"},
		{Config{Threshold: 300}, "motion.threshold: must be in 1-254, got 300"},
		{Config{MinArea: -1}, "motion.min_area: must be >= 1, got -1"},
		{Config{Alpha: 1.5}, "motion.alpha: must be in (0, 1], got 1.5"},
		{Config{Relearn: -0.1}, "motion.relearn: must be in (0, 1], got -0.1"},
		{Config{Masks: []Polygon{{{0, 0}, {1, 0}, {1, 1}}, {{0, 0}, {1.2, 0.5}, {0, 1}}}},
			"motion.masks[1]: point 1 (1.2, 0.5) is outside the frame (0-1)"},
		{Config{Masks: []Polygon{{{0, 0}, {1, 1}}}}, "motion.masks[0]: a mask needs at least 3 points, got 2"},
		{Config{Masks: []Polygon{{{0, 0}, {0.5, 0.5}, {1, 1}}}}, "motion.masks[0]: the mask encloses no area"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if err == nil || err.Error() != c.want {
			t.Errorf("%+v: got %v, want %q", c.cfg, err, c.want)
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v does not wrap ErrInvalid", c.cfg, err)
		}
		if _, err := New(c.cfg); err == nil {
			t.Errorf("New accepted %+v", c.cfg)
		}
	}
	if err := (Config{Masks: []Polygon{{{0, 0}, {1, 0}, {1, 1}, {0, 1}}}}).Validate(); err != nil {
		t.Errorf("a full-frame mask: %v", err)
	}
}

func BenchmarkUpdate720p(b *testing.B) {
	s := newScene(1280, 720, 12)
	d := newDetector(b, Config{})
	still := s.frame(1, 0)
	moving := s.frame(1, 0, rect{x: 400, y: 300, w: 80, h: 160, grey: 240}, rect{x: 900, y: 100, w: 60, h: 40, grey: 10})
	d.Update(still, s.w, s.h, s.stride)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		f := still
		if i%2 == 1 {
			f = moving
		}
		d.Update(f, s.w, s.h, s.stride)
	}
}

func TestDownsampleIsBoxAverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 1))
	for _, c := range []struct{ w, h, aw int }{
		{1280, 720, 320}, {768, 432, 320}, {640, 480, 320}, {1920, 1080, 320}, {333, 101, 64}, {50, 30, 320}, {1000, 9, 100}, {3000, 20, 16},
	} {
		stride := c.w + 7
		y := make([]byte, stride*c.h)
		for i := range y {
			y[i] = byte(rng.IntN(256))
		}
		d := newDetector(t, Config{AnalysisWidth: c.aw})
		d.Update(y, c.w, c.h, stride)
		k := d.k
		want := max(1, (c.w+c.aw-1)/c.aw)
		if c.h < want {
			want = 1 // a strip thinner than a block is analysed as it is
		}
		if k != want || d.aw != c.w/k || d.ah != c.h/k {
			t.Fatalf("%+v: k=%d, analysis %dx%d", c, k, d.aw, d.ah)
		}
		for oy := range d.ah {
			for ox := range d.aw {
				s := 0
				for yy := oy * k; yy < oy*k+k; yy++ {
					for xx := ox * k; xx < ox*k+k; xx++ {
						s += int(y[yy*stride+xx])
					}
				}
				want := (2*s + k*k) / (2 * k * k) // rounded mean
				if got := int(d.small[oy*d.aw+ox]); got < want-1 || got > want+1 {
					t.Fatalf("%+v: pixel (%d,%d) = %d, want %d", c, ox, oy, got, want)
				}
			}
		}
	}
}
