package yolox

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/vigil-edge/vigil/models"
)

const labels = 80

// tensor is a zeroed YOLOX output for a 416x416 input.
func tensor() ([]float32, []int64) {
	return make([]float32, 3549*(5+labels)), []int64{1, 3549, 5 + labels}
}

// set writes one cell's raw values; row is the output row of grid (gx, gy) at stride s.
func set(out []float32, s, gx, gy int, x, y, w, h, obj float32, class int, cls float32) {
	row := 0
	for _, st := range strides {
		if st == s {
			break
		}
		row += (416 / st) * (416 / st)
	}
	row += gy*(416/s) + gx
	v := out[row*(5+labels) : (row+1)*(5+labels)]
	copy(v, []float32{x, y, w, h, obj})
	v[5+class] = cls
}

func near(a, b float32) bool { return math.Abs(float64(a-b)) < 1e-3 }

func TestDecode(t *testing.T) {
	m := models.Manifest{Name: "t", Family: Family, Input: models.Input{Width: 416, Height: 416}}
	dec, err := models.NewDecoder(m) // through the registry: importing the package registered it
	if err != nil {
		t.Fatal(err)
	}
	if r := dec.(*Decoder).Rows(); r != 3549 {
		t.Fatalf("rows = %d, want 52*52+26*26+13*13 = 3549", r)
	}
	out, shape := tensor()
	ln := func(v float64) float32 { return float32(math.Log(v)) }
	// stride 8, grid (10,20): centre (84,162), size 32x64, dog 0.9*0.8.
	set(out, 8, 10, 20, 0.5, 0.25, ln(4), ln(8), 0.9, 16, 0.8)
	// stride 32, grid (12,12), last cell: centre (392,400), size 64x32, person 0.6*1.
	set(out, 32, 12, 12, 0.25, 0.5, ln(2), ln(1), 0.6, 0, 1)
	// stride 16, grid (3,5): best class 2 (0.7) over class 7 (0.5).
	set(out, 16, 3, 5, 0, 0, 0, 0, 1, 7, 0.5)
	out[(52*52+5*26+3)*(5+labels)+5+2] = 0.7
	// below threshold: obj high, class low; and obj low, class high.
	set(out, 8, 0, 0, 0, 0, 0, 0, 0.9, 3, 0.2)
	set(out, 8, 1, 0, 0, 0, 0, 0, 0.2, 3, 0.99)

	dets, err := dec.Decode(nil, out, shape, 0.3, labels)
	if err != nil {
		t.Fatal(err)
	}
	want := []models.Detection{
		{ClassID: 16, Score: 0.72, Box: models.Box{X1: 68, Y1: 130, X2: 100, Y2: 194}},
		{ClassID: 2, Score: 0.7, Box: models.Box{X1: 40, Y1: 72, X2: 56, Y2: 88}},
		{ClassID: 0, Score: 0.6, Box: models.Box{X1: 360, Y1: 384, X2: 424, Y2: 416}},
	}
	if len(dets) != len(want) {
		t.Fatalf("got %d detections %+v, want %d", len(dets), dets, len(want))
	}
	for i, w := range want {
		d := dets[i]
		if d.ClassID != w.ClassID || !near(d.Score, w.Score) || !near(d.Box.X1, w.Box.X1) || !near(d.Box.Y1, w.Box.Y1) ||
			!near(d.Box.X2, w.Box.X2) || !near(d.Box.Y2, w.Box.Y2) || d.Label != "" {
			t.Errorf("[%d] = %+v, want %+v", i, d, w)
		}
	}
	// Decode appends to dst.
	again, _ := dec.Decode(dets, out, shape, 0.3, labels)
	if len(again) != 6 {
		t.Errorf("decode into a non-empty dst: %d, want 6", len(again))
	}
}

func TestShapeErrors(t *testing.T) {
	dec, err := NewForSize(416, 416)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := tensor()
	for _, c := range []struct {
		name   string
		shape  []int64
		labels int
		want   string
	}{
		{"320 grid", []int64{1, 2100, 85}, 80, "[1 2100 85] does not match [1 3549 85]"},
		{"wrong labels", []int64{1, 3549, 85}, 20, "does not match [1 3549 25]"},
		{"transposed", []int64{1, 85, 3549}, 80, "[1 85 3549]"},
		{"rank 2", []int64{3549, 85}, 80, "[3549 85]"},
		{"batch 2", []int64{2, 3549, 85}, 80, "[2 3549 85]"},
		{"no labels", []int64{1, 3549, 5}, 0, "at least one label"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := dec.Decode(nil, out, c.shape, 0.3, c.labels)
			if !errors.Is(err, models.ErrBadModel) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrBadModel containing %q", err, c.want)
			}
		})
	}
	if _, err := dec.Decode(nil, out[:100], []int64{1, 3549, 85}, 0.3, 80); !errors.Is(err, models.ErrBadModel) {
		t.Errorf("short data: %v", err)
	}
	for _, sz := range [][2]int{{0, 416}, {400, 416}, {416, 100}} {
		if _, err := NewForSize(sz[0], sz[1]); !errors.Is(err, models.ErrBadModel) {
			t.Errorf("NewForSize(%v): %v, want ErrBadModel", sz, err)
		}
	}
}

// FuzzDecode feeds arbitrary values and shapes to a 32x32 decoder (21 rows, 2 labels): it must
// never panic, and every detection must meet the threshold with a valid class.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{}, int64(1), int64(21), int64(7))
	f.Add(make([]byte, 4*21*7), int64(1), int64(21), int64(7))
	f.Add([]byte{0, 0, 0x80, 0x7f, 0, 0, 0xc0, 0x7f}, int64(1), int64(21), int64(7)) // +Inf, NaN
	dec, err := NewForSize(32, 32)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte, a, b, c int64) {
		out := make([]float32, 21*7)
		for i := 0; i+4 <= len(raw) && i/4 < len(out); i += 4 {
			out[i/4] = math.Float32frombits(binary.LittleEndian.Uint32(raw[i:]))
		}
		dets, err := dec.Decode(nil, out, []int64{a, b, c}, 0.25, 2)
		if err != nil {
			return
		}
		for _, d := range dets {
			if d.ClassID < 0 || d.ClassID >= 2 || !(d.Score >= 0.25) {
				t.Fatalf("bad detection %+v", d)
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	dec, _ := NewForSize(416, 416)
	out, shape := tensor()
	for i := range 3549 { // realistic: a little objectness everywhere, a few hits
		out[i*85+4] = 0.01
	}
	for i := range 40 {
		set(out, 8, i, i, 0.5, 0.5, 1, 1, 0.9, i%80, 0.9)
	}
	var dst []models.Detection
	for b.Loop() {
		dst, _ = dec.Decode(dst[:0], out, shape, 0.35, labels)
	}
}
