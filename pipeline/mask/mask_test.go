package mask

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
)

// pattern is a w x h image with busy, position-dependent content (a checkerboard of 2-pixel
// squares with a gradient), in rows of stride bytes.
func pattern(w, h, stride int) models.Image {
	img := models.Image{Width: w, Height: h, Stride: stride, Pix: make([]byte, (h-1)*stride+3*w)}
	for y := range h {
		for x := range w {
			v := byte(30 + (x*7+y*3)%60)
			if (x/2+y/2)%2 == 0 {
				v += 150
			}
			o := y*stride + 3*x
			img.Pix[o], img.Pix[o+1], img.Pix[o+2] = v, v/2+20, 255-v
		}
	}
	return img
}

func px(img models.Image, x, y int) [3]byte {
	o := y*img.Stride + 3*x
	return [3]byte{img.Pix[o], img.Pix[o+1], img.Pix[o+2]}
}

func clone(img models.Image) models.Image {
	img.Pix = append([]byte(nil), img.Pix...)
	return img
}

func TestBlackMaskZeroesExactlyThePolygon(t *testing.T) {
	for _, stride := range []int{3 * 100, 3*100 + 17} { // packed and padded rows
		orig := pattern(100, 80, stride)
		img := clone(orig)
		// A rectangle: vertices land on pixels x 25 and 50, y 20 and 40, edges included.
		rect := Mask{ID: "r", Points: Polygon{{0.25, 0.25}, {0.5, 0.25}, {0.5, 0.5}, {0.25, 0.5}}}
		if err := Apply(img, []Mask{rect}); err != nil {
			t.Fatal(err)
		}
		for y := range 80 {
			for x := range 100 {
				inside := x >= 25 && x <= 50 && y >= 20 && y <= 40
				got := px(img, x, y)
				if inside && got != [3]byte{} {
					t.Fatalf("stride %d: pixel (%d,%d) inside the mask is %v, want black", stride, x, y, got)
				}
				if !inside && got != px(orig, x, y) {
					t.Fatalf("stride %d: pixel (%d,%d) outside the mask changed", stride, x, y)
				}
			}
		}
		// Row padding is never written.
		for y := range 79 {
			for b := 300; b < stride; b++ {
				if img.Pix[y*stride+b] != orig.Pix[y*stride+b] {
					t.Fatalf("stride %d: padding byte %d of row %d changed", stride, b, y)
				}
			}
		}
	}
}

func TestBlackTriangle(t *testing.T) {
	orig := pattern(200, 200, 600)
	img := clone(orig)
	tri := Mask{ID: "t", Mode: ModeBlack, Points: Polygon{{0.1, 0.1}, {0.9, 0.1}, {0.1, 0.9}}}
	if err := Apply(img, []Mask{tri}); err != nil {
		t.Fatal(err)
	}
	zeroed := 0
	for y := range 200 {
		for x := range 200 {
			isZero := px(img, x, y) == [3]byte{}
			if isZero {
				zeroed++
			}
			// Clear of the edges by 2 pixels, inside must be black and outside unchanged.
			switch d := float64(x+y) - 200; {
			case x > 22 && y > 22 && d < -3 && !isZero:
				t.Fatalf("(%d,%d) inside the triangle is not black", x, y)
			case (x < 18 || y < 18 || d > 3) && px(img, x, y) != px(orig, x, y):
				t.Fatalf("(%d,%d) outside the triangle changed", x, y)
			}
		}
	}
	if want := 160 * 160 / 2; math.Abs(float64(zeroed-want)) > 0.03*float64(want) {
		t.Errorf("%d pixels black, want about %d (the triangle's area)", zeroed, want)
	}
}

// stats returns the mean and variance of the first channel over a rectangle.
func stats(img models.Image, x0, y0, x1, y1 int) (mean, variance float64) {
	var s, s2, n float64
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			v := float64(img.Pix[y*img.Stride+3*x])
			s += v
			s2 += v * v
			n++
		}
	}
	mean = s / n
	return mean, s2/n - mean*mean
}

func TestBlurDestroysDetailAndStaysInside(t *testing.T) {
	orig := pattern(320, 240, 960)
	img := clone(orig)
	m := Mask{ID: "face", Mode: ModeBlur, Points: Polygon{{0.25, 0.25}, {0.75, 0.25}, {0.75, 0.75}, {0.25, 0.75}}}
	if err := Apply(img, []Mask{m}); err != nil {
		t.Fatal(err)
	}
	// Inside (away from the edge): most pixels changed, and the variance collapsed.
	changed, total := 0, 0
	for y := 70; y < 170; y++ {
		for x := 90; x < 230; x++ {
			total++
			if px(img, x, y) != px(orig, x, y) {
				changed++
			}
		}
	}
	if changed < total*9/10 {
		t.Errorf("blur changed %d of %d pixels inside the mask", changed, total)
	}
	_, before := stats(orig, 90, 70, 230, 170)
	mean, after := stats(img, 90, 70, 230, 170)
	if after > before/50 {
		t.Errorf("variance inside the mask %.1f -> %.1f: not reduced strongly enough", before, after)
	}
	if origMean, _ := stats(orig, 90, 70, 230, 170); math.Abs(mean-origMean) > 10 {
		t.Errorf("blur moved the mean colour %.1f -> %.1f", origMean, mean)
	}
	// Far outside: untouched.
	for y := range 240 {
		for x := range 320 {
			if (x < 75 || x > 245 || y < 55 || y > 185) && px(img, x, y) != px(orig, x, y) {
				t.Fatalf("pixel (%d,%d) outside the blurred mask changed", x, y)
			}
		}
	}
}

func TestApplyRejectsBadImage(t *testing.T) {
	bad := models.Image{Width: 10, Height: 10, Stride: 30, Pix: make([]byte, 100)}
	if err := Apply(bad, []Mask{{ID: "a", Points: Polygon{{0, 0}, {1, 0}, {1, 1}}}}); !errors.Is(err, models.ErrBadImage) {
		t.Fatalf("Apply on a short buffer: %v", err)
	}
	if err := Apply(bad, nil); err != nil {
		t.Fatalf("Apply with no masks must not look at the image: %v", err)
	}
}

func TestValidate(t *testing.T) {
	sq := Polygon{{0.1, 0.1}, {0.5, 0.1}, {0.5, 0.5}, {0.1, 0.5}}
	for _, tc := range []struct {
		name  string
		masks []Mask
		excl  []Exclude
		want  string // "" = valid
	}{
		{"valid", []Mask{{ID: "a", Points: sq}, {ID: "b", Points: sq, Mode: ModeBlur}}, []Exclude{{ID: "a", Points: sq}}, ""},
		{"concave", []Mask{{ID: "c", Points: Polygon{{0, 0}, {1, 0}, {1, 1}, {0.5, 0.3}, {0, 1}}}}, nil, ""},
		{"no id", []Mask{{Points: sq}}, nil, "privacy_masks[0]: invalid mask: privacy mask has no id"},
		{"bad mode", []Mask{{ID: "m", Points: sq, Mode: "pixelate"}}, nil, `privacy mask "m": mode "pixelate"`},
		{"two points", []Mask{{ID: "m", Points: Polygon{{0, 0}, {1, 1}}}}, nil, `privacy mask "m": invalid mask: a polygon needs at least 3 points, got 2`},
		{"outside", []Mask{{ID: "m", Points: Polygon{{0, 0}, {1.2, 0}, {1, 1}}}}, nil, `privacy mask "m": invalid mask: point 1 (1.2, 0) is outside 0-1`},
		{"nan", []Mask{{ID: "m", Points: Polygon{{0, 0}, {math.NaN(), 0}, {1, 1}}}}, nil, "point 1 (NaN, 0) is outside 0-1"},
		{"bow tie", []Mask{{ID: "bow", Points: Polygon{{0, 0}, {1, 1}, {1, 0}, {0, 1}}}}, nil, `privacy mask "bow": invalid mask: edges 0 and 2 cross`},
		{"flat", []Mask{{ID: "m", Points: Polygon{{0, 0}, {0.5, 0.5}, {1, 1}}}}, nil, "edges 0 and 2 overlap"},
		{"tiny", []Mask{{ID: "m", Points: Polygon{{0, 0}, {1e-5, 0}, {0, 1e-5}}}}, nil, "encloses no area"},
		{"repeated vertex", []Mask{{ID: "m", Points: Polygon{{0, 0}, {1, 0}, {1, 0}, {0, 1}}}}, nil, "overlap"},
		{"duplicate id", []Mask{{ID: "a", Points: sq}, {ID: "a", Points: sq}}, nil, `privacy_masks[1]: id "a" is used twice`},
		{"bad exclusion", nil, []Exclude{{ID: "lot", Points: Polygon{{0, 0}, {1, 0}}}}, `exclude[0]: exclusion zone "lot"`},
	} {
		err := Validate(tc.masks, tc.excl)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid)):
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func TestFilterDetections(t *testing.T) {
	poster := Polygon{{0.5, 0}, {1, 0}, {1, 0.5}, {0.5, 0.5}} // top-right quarter
	obj := func(label string, x1, y1, x2, y2 float32) models.Detection {
		return models.Detection{Label: label, Score: 0.9, Box: models.Box{X1: x1, Y1: y1, X2: x2, Y2: y2}}
	}
	for _, tc := range []struct {
		name    string
		objects []models.Detection
		excl    []Polygon
		w, h    int
		want    []string
	}{
		{"inside dropped", []models.Detection{obj("a", 120, 10, 140, 40)}, []Polygon{poster}, 200, 100, nil},
		{"outside kept", []models.Detection{obj("a", 10, 10, 40, 40)}, []Polygon{poster}, 200, 100, []string{"a"}},
		{"feet below the poster kept", []models.Detection{obj("a", 120, 10, 140, 80)}, []Polygon{poster}, 200, 100, []string{"a"}},
		{"box overlaps, feet inside", []models.Detection{obj("a", 80, 10, 140, 40)}, []Polygon{poster}, 200, 100, []string{}},
		{"mixed keeps order", []models.Detection{obj("a", 10, 10, 20, 20), obj("b", 150, 10, 160, 20),
			obj("c", 30, 60, 40, 90), obj("d", 150, 5, 170, 45)}, []Polygon{poster}, 200, 100, []string{"a", "c"}},
		{"second polygon", []models.Detection{obj("a", 10, 60, 20, 90)}, []Polygon{poster, {{0, 0.5}, {0.5, 0.5}, {0.5, 1}, {0, 1}}}, 200, 100, []string{}},
		{"no polygons", []models.Detection{obj("a", 120, 10, 140, 40)}, nil, 200, 100, []string{"a"}},
		{"no frame size", []models.Detection{obj("a", 120, 10, 140, 40)}, []Polygon{poster}, 0, 0, []string{"a"}},
	} {
		in := frame.Detections{Camera: "c", Width: tc.w, Height: tc.h, Objects: tc.objects}
		before := append([]models.Detection(nil), tc.objects...)
		out := FilterDetections(in, tc.excl)
		var got []string
		for _, o := range out.Objects {
			got = append(got, o.Label)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: kept %v, want %v", tc.name, got, tc.want)
		}
		for i := range before {
			if tc.objects[i] != before[i] {
				t.Errorf("%s: the input slice was modified", tc.name)
			}
		}
		if out.Camera != "c" || out.Width != tc.w {
			t.Errorf("%s: the other fields were not kept", tc.name)
		}
	}
}

func FuzzValidate(f *testing.F) {
	f.Add(0.1, 0.1, 0.9, 0.1, 0.5, 0.9, 0.5, 0.5, uint8(3))
	f.Add(0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, uint8(4))
	f.Add(0.0, 0.0, 0.5, 0.5, 1.0, 1.0, 0.2, 0.2, uint8(3))
	f.Add(-1.0, 2.0, math.NaN(), 0.0, 1.0, 1.0, 0.0, 0.0, uint8(4))
	f.Fuzz(func(t *testing.T, x0, y0, x1, y1, x2, y2, x3, y3 float64, n uint8) {
		p := Polygon{{x0, y0}, {x1, y1}, {x2, y2}, {x3, y3}}[:min(int(n%5), 4)]
		m := Mask{ID: "f", Points: p, Mode: ModeBlur}
		err := m.Validate()
		if err != nil {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"f"`) {
				t.Fatalf("error does not wrap ErrInvalid or name the mask: %v", err)
			}
			return
		}
		// A valid polygon: at least 3 points inside 0-1, with area; applying it must work and
		// black out at least one pixel for a polygon large enough.
		if len(p) < 3 {
			t.Fatalf("accepted %d points", len(p))
		}
		for _, pt := range p {
			if !(pt[0] >= 0 && pt[0] <= 1 && pt[1] >= 0 && pt[1] <= 1) {
				t.Fatalf("accepted point %v", pt)
			}
		}
		img := pattern(32, 24, 96)
		if err := Apply(img, []Mask{m, {ID: "g", Points: p}}); err != nil {
			t.Fatal(err)
		}
	})
}
