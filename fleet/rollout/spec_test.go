package rollout

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		err  string // "" for valid
	}{
		{Spec{Model: "m@1", Devices: "all", Canary: 1}, ""},
		{Spec{Model: "m@1", Devices: "a, b,a", Canary: 2, Waves: []float64{25, 50, 100}}, ""},
		{Spec{Model: "m", Devices: "all", Canary: 1}, "'model'"},
		{Spec{Model: "m@1", Devices: "", Canary: 1}, "'devices'"},
		{Spec{Model: "m@1", Devices: "a,,b", Canary: 1}, "'devices'"},
		{Spec{Model: "m@1", Devices: "all", Canary: 0}, "'canary'"},
		{Spec{Model: "m@1", Devices: "all", Canary: 1, Waves: []float64{50, 25, 100}}, "'waves[1]'"},
		{Spec{Model: "m@1", Devices: "all", Canary: 1, Waves: []float64{50}}, "'waves' must end at 100%"},
		{Spec{Model: "m@1", Devices: "all", Canary: 1, MinDetectionRatio: 2}, "'min_detection_ratio'"},
		{Spec{Model: "m@1", Devices: "all", Canary: 1, HealthWindow: -1}, "'health_window'"},
	} {
		s := tc.spec
		err := s.Normalize()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%+v: %v", tc.spec, err)
		case tc.err != "" && (err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%+v: error %v, want one naming %s", tc.spec, err, tc.err)
		case tc.err == "" && (s.MinDetectionRatio != DefaultMinDetectionRatio || s.Waves[len(s.Waves)-1] != 100 || s.HealthWindow == 0):
			t.Errorf("defaults not filled: %+v", s)
		}
	}
	if ids, _ := ParseSelector("a, b,a"); fmt.Sprint(ids) != "[a b]" {
		t.Errorf("selector %v", ids)
	}
}

func TestBounds(t *testing.T) {
	for _, tc := range []struct {
		n, canary int
		waves     []float64
		want      string
	}{
		{3, 1, []float64{50, 100}, "[1 2 3]"},
		{10, 1, []float64{25, 50, 100}, "[1 3 5 10]"},
		{4, 2, []float64{25, 100}, "[2 2 4]"}, // the 25% wave is already covered by the canary
		{2, 5, []float64{100}, "[2 2]"},
	} {
		if got := fmt.Sprint(bounds(tc.n, tc.canary, tc.waves)); got != tc.want {
			t.Errorf("bounds(%d, %d, %v) = %s, want %s", tc.n, tc.canary, tc.waves, got, tc.want)
		}
	}
	if w, err := ParseWaves("25%, 50,100%"); err != nil || fmt.Sprint(w) != "[25 50 100]" {
		t.Errorf("ParseWaves: %v %v", w, err)
	}
	for _, s := range []string{"", "x", "25%%", "NaN", "Inf"} {
		if _, err := ParseWaves(s); err == nil {
			t.Errorf("ParseWaves(%q) accepted", s)
		}
	}
}

func FuzzParseWaves(f *testing.F) {
	for _, s := range []string{"25%,50%,100%", "100", "", "1e400", "-5%,100%", "50,50"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWaves(s)
		if err != nil {
			return
		}
		spec := Spec{Model: "m@1", Devices: "all", Canary: 1, Waves: w}
		if spec.Normalize() != nil {
			return
		}
		b := bounds(7, 1, spec.Waves)
		if b[len(b)-1] != 7 {
			t.Fatalf("waves %v: bounds %v do not reach every device", w, b)
		}
		for i := 1; i < len(b); i++ {
			if b[i] < b[i-1] {
				t.Fatalf("waves %v: bounds %v decrease", w, b)
			}
		}
	})
}
