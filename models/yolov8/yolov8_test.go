package yolov8

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/vigil-edge/vigil/models"
)

func near(a, b float32) bool { return math.Abs(float64(a-b)) < 1e-4 }

func same(t *testing.T, got, want []models.Detection) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d detections %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i, w := range want {
		g := got[i]
		if g.ClassID != w.ClassID || !near(g.Score, w.Score) || !near(g.Box.X1, w.Box.X1) || !near(g.Box.Y1, w.Box.Y1) ||
			!near(g.Box.X2, w.Box.X2) || !near(g.Box.Y2, w.Box.Y2) {
			t.Errorf("[%d] = %+v, want %+v", i, g, w)
		}
	}
}

func decoder(t *testing.T, family string) models.Decoder {
	t.Helper()
	d, err := models.NewDecoder(models.Manifest{Name: "t", Family: family})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// v8Tensor builds a [1, 4+3, 5] tensor: 5 anchors, 3 labels, columns written by hand.
func v8Tensor() ([]float32, []int64) {
	const n, c = 5, 3
	out := make([]float32, (4+c)*n)
	col := func(j int, cx, cy, w, h float32, scores ...float32) {
		for r, v := range append([]float32{cx, cy, w, h}, scores...) {
			out[r*n+j] = v
		}
	}
	col(0, 100, 50, 20, 40, 0.1, 0.9, 0.2)   // class 1, 0.9: box 90,30-110,70
	col(1, 10, 10, 4, 4, 0.2, 0.1, 0.24)     // best 0.24 < 0.25: dropped
	col(2, 320, 240, 640, 480, 0.5, 0.5, 0.) // tie: first class wins
	col(3, 0, 0, 0, 0, 0, 0, 0)              // empty
	col(4, 7, 8, 2, 6, 0.3, 0.2, 0.31)       // class 2, 0.31
	return out, []int64{1, 4 + c, n}
}

func TestV8Decode(t *testing.T) {
	d := decoder(t, FamilyV8)
	out, shape := v8Tensor()
	got, err := d.Decode(nil, out, shape, 0.25, 3)
	if err != nil {
		t.Fatal(err)
	}
	same(t, got, []models.Detection{
		{ClassID: 1, Score: 0.9, Box: models.Box{X1: 90, Y1: 30, X2: 110, Y2: 70}},
		{ClassID: 0, Score: 0.5, Box: models.Box{X1: 0, Y1: 0, X2: 640, Y2: 480}},
		{ClassID: 2, Score: 0.31, Box: models.Box{X1: 6, Y1: 5, X2: 8, Y2: 11}},
	})
	// The decoder reuses scratch between calls: a second, larger tensor still decodes right.
	big := make([]float32, 7*100)
	big[4*100+99], big[0*100+99], big[1*100+99], big[2*100+99], big[3*100+99] = 0.8, 50, 60, 10, 10
	got, err = d.Decode(nil, big, []int64{1, 7, 100}, 0.25, 3)
	if err != nil {
		t.Fatal(err)
	}
	same(t, got, []models.Detection{{ClassID: 0, Score: 0.8, Box: models.Box{X1: 45, Y1: 55, X2: 55, Y2: 65}}})
}

func TestV5Decode(t *testing.T) {
	d := decoder(t, FamilyV5)
	rows := [][]float32{
		{100, 50, 20, 40, 0.9, 0.1, 1.0, 0.2}, // class 1, 0.9
		{10, 10, 4, 4, 0.2, 1, 1, 1},          // obj 0.2 < 0.25: dropped
		{10, 10, 4, 4, 1, 0.1, 0.2, 0.24},     // 0.24: dropped
		{30, 40, 10, 20, 0.5, 0.6, 0.2, 0.7},  // class 2, 0.35
	}
	var out []float32
	for _, r := range rows {
		out = append(out, r...)
	}
	got, err := d.Decode(nil, out, []int64{1, int64(len(rows)), 8}, 0.25, 3)
	if err != nil {
		t.Fatal(err)
	}
	same(t, got, []models.Detection{
		{ClassID: 1, Score: 0.9, Box: models.Box{X1: 90, Y1: 30, X2: 110, Y2: 70}},
		{ClassID: 2, Score: 0.35, Box: models.Box{X1: 25, Y1: 30, X2: 35, Y2: 50}},
	})
}

func TestShapeErrors(t *testing.T) {
	for _, c := range []struct {
		family string
		shape  []int64
		labels int
		want   string
	}{
		{FamilyV8, []int64{1, 84, 8400}, 3, "yolov8 output shape [1 84 8400] does not match [1 7 N]"},
		{FamilyV8, []int64{1, 8400, 7}, 3, "[1 8400 7] does not match [1 7 N]"}, // not transposed
		{FamilyV8, []int64{7, 5}, 3, "[7 5]"},
		{FamilyV8, []int64{2, 7, 5}, 3, "[2 7 5]"},
		{FamilyV8, []int64{1, 4, 5}, 0, "at least one label"},
		{FamilyV5, []int64{1, 25200, 85}, 3, "yolov5 output shape [1 25200 85] does not match [1 N 8]"},
		{FamilyV5, []int64{1, 8, 4}, 3, "[1 8 4] does not match [1 N 8]"}, // transposed
		{FamilyV5, []int64{1, 0, 8}, 3, "[1 0 8]"},
		{FamilyV5, []int64{1, 4, 8}, 0, "at least one label"},
	} {
		t.Run(c.family+c.want, func(t *testing.T) {
			_, err := decoder(t, c.family).Decode(nil, make([]float32, 64), c.shape, 0.25, c.labels)
			if !errors.Is(err, models.ErrBadModel) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrBadModel containing %q", err, c.want)
			}
		})
	}
	// Right shape, too little data.
	for _, f := range []string{FamilyV8, FamilyV5} {
		shape := []int64{1, 7, 5}
		if f == FamilyV5 {
			shape = []int64{1, 5, 8}
		}
		if _, err := decoder(t, f).Decode(nil, make([]float32, 10), shape, 0.25, 3); !errors.Is(err, models.ErrBadModel) {
			t.Errorf("%s short data: %v", f, err)
		}
	}
}

// FuzzDecode runs both layouts on arbitrary values and shapes: no panic, and every detection
// meets the threshold with a valid class.
func FuzzDecode(f *testing.F) {
	out, shape := v8Tensor()
	raw := make([]byte, 4*len(out))
	for i, v := range out {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	f.Add(raw, shape[0], shape[1], shape[2])
	f.Add(raw, int64(1), int64(5), int64(7))
	f.Add([]byte{0, 0, 0xc0, 0x7f}, int64(1), int64(1), int64(7))
	f.Fuzz(func(t *testing.T, raw []byte, a, b, c int64) {
		vals := make([]float32, len(raw)/4)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		for _, d := range []models.Decoder{NewV8(), NewV5()} {
			dets, err := d.Decode(nil, vals, []int64{a, b, c}, 0.25, 2)
			if err != nil {
				continue
			}
			for _, x := range dets {
				if x.ClassID < 0 || x.ClassID >= 2 || !(x.Score >= 0.25) {
					t.Fatalf("%T: bad detection %+v", d, x)
				}
			}
		}
	})
}

func BenchmarkV8Decode(b *testing.B) {
	const n, c = 8400, 80
	out := make([]float32, (4+c)*n)
	for j := 0; j < n; j += 200 {
		out[(4+j%c)*n+j] = 0.9
	}
	d := NewV8()
	var dst []models.Detection
	for b.Loop() {
		dst, _ = d.Decode(dst[:0], out, []int64{1, 4 + c, n}, 0.25, c)
	}
}
