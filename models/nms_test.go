package models

import (
	"errors"
	"strings"
	"testing"
)

func det(class int, score, x1, y1, x2, y2 float32) Detection {
	return Detection{ClassID: class, Score: score, Box: Box{x1, y1, x2, y2}}
}

func TestNMS(t *testing.T) {
	cases := []struct {
		name string
		in   []Detection
		iou  float32
		want []Detection
	}{
		{"empty", nil, 0.5, nil},
		{"single", []Detection{det(0, .9, 0, 0, 10, 10)}, 0.5, []Detection{det(0, .9, 0, 0, 10, 10)}},
		{
			"overlap same class keeps best",
			[]Detection{det(0, .6, 1, 1, 11, 11), det(0, .9, 0, 0, 10, 10)},
			0.5,
			[]Detection{det(0, .9, 0, 0, 10, 10)},
		},
		{
			"overlap other class kept",
			[]Detection{det(1, .6, 1, 1, 11, 11), det(0, .9, 0, 0, 10, 10)},
			0.5,
			[]Detection{det(0, .9, 0, 0, 10, 10), det(1, .6, 1, 1, 11, 11)},
		},
		{
			"disjoint kept, sorted",
			[]Detection{det(0, .3, 50, 50, 60, 60), det(0, .8, 0, 0, 10, 10), det(0, .5, 20, 0, 30, 10)},
			0.5,
			[]Detection{det(0, .8, 0, 0, 10, 10), det(0, .5, 20, 0, 30, 10), det(0, .3, 50, 50, 60, 60)},
		},
		{
			// IoU of these two is 50/150 = 1/3: suppressed at 0.3, kept at 0.4.
			"threshold is strict above", []Detection{det(0, .9, 0, 0, 10, 10), det(0, .8, 5, 0, 15, 10)}, 0.3,
			[]Detection{det(0, .9, 0, 0, 10, 10)},
		},
		{
			"threshold below iou keeps", []Detection{det(0, .9, 0, 0, 10, 10), det(0, .8, 5, 0, 15, 10)}, 0.4,
			[]Detection{det(0, .9, 0, 0, 10, 10), det(0, .8, 5, 0, 15, 10)},
		},
		{
			// Greedy: B is suppressed by A, so C (which overlaps only B) survives.
			"suppressed box does not suppress",
			[]Detection{det(0, .9, 0, 0, 10, 10), det(0, .8, 3, 0, 13, 10), det(0, .7, 9, 0, 19, 10)},
			0.4,
			[]Detection{det(0, .9, 0, 0, 10, 10), det(0, .7, 9, 0, 19, 10)},
		},
		{
			"iou 1 keeps duplicates", []Detection{det(2, .5, 0, 0, 10, 10), det(2, .5, 0, 0, 10, 10)}, 1,
			[]Detection{det(2, .5, 0, 0, 10, 10), det(2, .5, 0, 0, 10, 10)},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := NMS(append([]Detection(nil), c.in...), c.iou)
			if len(got) != len(c.want) {
				t.Fatalf("got %d detections %v, want %d %v", len(got), got, len(c.want), c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("[%d] = %+v, want %+v", i, got[i], c.want[i])
				}
			}
		})
	}
}

func BenchmarkNMS(b *testing.B) {
	in := make([]Detection, 0, 300)
	for i := range 300 {
		x := float32(i%30) * 7
		y := float32(i/30) * 7
		in = append(in, det(i%3, float32(i%97)/97, x, y, x+20, y+40))
	}
	buf := make([]Detection, len(in))
	b.ResetTimer()
	for b.Loop() {
		copy(buf, in)
		NMS(buf, 0.45)
	}
}

type nopDecoder struct{}

func (nopDecoder) Decode(dst []Detection, _ []float32, _ []int64, _ float32, _ int) ([]Detection, error) {
	return dst, nil
}

func TestDecoderRegistry(t *testing.T) {
	RegisterDecoder("test-nop", func(m Manifest) (Decoder, error) {
		if m.Input.Width == 7 {
			return nil, errors.New("width 7 refused")
		}
		return nopDecoder{}, nil
	})
	m := Manifest{Name: "m", Family: "test-nop", Input: Input{Width: 8}}
	if _, err := NewDecoder(m); err != nil {
		t.Fatalf("registered family: %v", err)
	}
	m.Input.Width = 7
	if _, err := NewDecoder(m); err == nil || !strings.Contains(err.Error(), "width 7 refused") {
		t.Fatalf("factory error not passed on: %v", err)
	}
	m.Family = "no-such-family"
	_, err := NewDecoder(m)
	if !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), `"no-such-family"`) || !strings.Contains(err.Error(), "test-nop") {
		t.Fatalf("unknown family: got %v, want ErrBadModel naming the family and the known ones", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("second registration of a family did not panic")
			}
		}()
		RegisterDecoder("test-nop", func(Manifest) (Decoder, error) { return nopDecoder{}, nil })
	}()
}

func TestResolveLabel(t *testing.T) {
	m := Manifest{Labels: []string{"person", "bicycle", "car", "motorbike", "aeroplane", "tvmonitor"}}
	for label, want := range map[string]int{
		"person": 0, "Person": 0, " car ": 2, "motorbike": 3, "motorcycle": 3, "airplane": 4, "tv": 5,
		"truck": -1, "": -1, "sofa": -1,
	} {
		if got := m.ResolveLabel(label); got != want {
			t.Errorf("ResolveLabel(%q) = %d, want %d", label, got, want)
		}
	}
}
