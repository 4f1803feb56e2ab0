package rules_test

import (
	"math"
	"os"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/rules"
)

// FuzzRules decodes arbitrary YAML as a camera's rules, validates and compiles them, and runs
// the engine on tracks driven by the second input: no panics, Validate and New agree, alerts
// name a configured rule and the frame's time, and every track's state is gone once it ends.
func FuzzRules(f *testing.F) {
	example, err := os.ReadFile("testdata/rules.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	walk := []byte{1, 1, 1, 40, 128, 2, 1, 128, 30, 1, 1, 60, 128, 2, 1, 128, 60, 1, 1, 90, 128, 2, 1, 128, 90, 1, 1, 200, 128}
	f.Add(example, walk)
	for _, s := range []string{
		"rules: [{id: z, type: zone, polygon: [[0,0],[1,0],[1,1],[0,1]]}]",
		"rules: [{id: l, type: line, a: [0, 0.5], b: [1, 0.5], min_frames: 2}]",
		"rules: [{id: c, type: crowding, polygon: [[0,0],[1,0],[0,1]], min_count: 1, min_duration: 1ns}]",
		"rules: [{id: w, type: wrong_way, direction_deg: 0, tolerance_deg: 90, min_distance: 0.01}]",
		"rules: [{id: s, type: speed, max_speed: 0.1, window: 1ns, ground_points: [{image: [0,0], ground: [0,0]}, {image: [1,0], ground: [1e9,0]}, {image: [1,1], ground: [1e9,1]}, {image: [0,1], ground: [0,1]}]}]",
		"rules: [{id: p, type: stopped, min_duration: 1ns, radius: 0}]",
		"rules: [{id: g, type: zone, polygon: [[0,0],[1,1],[1,0],[0,1]]}]",
		"rules: [{id: x, type: loitering, polygon: [{x: 0, y: 0}, [1, 0], [1, 1]], min_duration: 1ns, labels: [car]}]",
	} {
		f.Add([]byte(s), walk)
	}
	f.Fuzz(func(t *testing.T, src, moves []byte) {
		if len(src) > 8<<10 || len(moves) > 3<<10 {
			return
		}
		rs, err := decode(src)
		if err != nil {
			return
		}
		verr := rules.Validate(rs, cameraLabels)
		e, nerr := rules.New(rs)
		if (nerr == nil) != (rules.Validate(rs, nil) == nil) {
			t.Fatalf("New says %v, Validate without labels says otherwise", nerr)
		}
		if verr == nil && nerr != nil {
			t.Fatalf("valid rules rejected by New: %v", nerr)
		}
		if nerr != nil {
			return
		}
		ids := map[string]string{}
		for _, r := range rs {
			ids[r.ID] = r.Type
		}
		labels := []string{"person", "car", "dog"}
		states := []frame.TrackState{frame.Confirmed, frame.Lost, frame.Removed, frame.Tentative}
		check := func(ft frame.Tracks) {
			for _, a := range e.Update(ft) {
				if ids[a.RuleID] != a.RuleType || !a.At.Equal(ft.CapturedAt) || a.Camera != ft.Camera || math.IsNaN(a.Value) {
					t.Fatalf("alert %+v does not fit rules %v on frame at %v", a, ids, ft.CapturedAt)
				}
			}
		}
		// Each 5 bytes: track id (0-7), state, label, x, y (the box may leave the frame);
		// a track id repeated starts the next frame. A 0 byte first means frames of no size.
		w, h := 1000, 1000
		if len(moves) > 0 && moves[0] == 0 {
			w, h = 0, 0
		}
		ft := frame.Tracks{Camera: "fz", Width: w, Height: h, CapturedAt: t0}
		seen := map[uint64]bool{}
		for i := 0; i+5 <= len(moves); i += 5 {
			m := moves[i : i+5]
			id := uint64(m[0] % 8)
			if seen[id] {
				check(ft)
				ft.Tracks, seen = nil, map[uint64]bool{}
				ft.CapturedAt = ft.CapturedAt.Add(time.Duration(m[0]) * 10 * time.Millisecond)
			}
			seen[id] = true
			x, y := float32(m[3])*1200/255-100, float32(m[4])*1200/255-100
			ft.Tracks = append(ft.Tracks, frame.Track{ID: id, State: states[m[1]%4], Label: labels[m[2]%3],
				Box: models.Box{X1: x - 5, Y1: y - 20, X2: x + 5, Y2: y}})
		}
		check(ft)
		check(frame.Tracks{Camera: "fz", Width: w, Height: h, CapturedAt: ft.CapturedAt.Add(time.Second)})
		if n := e.StateSize(); n != 0 {
			t.Fatalf("%d per-track entries left after every track ended", n)
		}
	})
}

func TestStateIsBounded(t *testing.T) {
	b, err := os.ReadFile("testdata/rules.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := decode(b)
	if err != nil {
		t.Fatal(err)
	}
	rs = append(rs, rules.Rule{ID: "everywhere", Type: rules.TypeStopped, MinDuration: time.Second})
	e, err := rules.New(rs)
	if err != nil {
		t.Fatal(err)
	}
	// 200 waves of 5 tracks crossing the frame; each wave is removed, or simply vanishes.
	const waves, per, steps = 200, 5, 20
	maxState := 0
	for wv := range waves {
		for s := range steps + 1 {
			ft := frame.Tracks{Camera: "c", Width: 1000, Height: 1000, CapturedAt: t0.Add(time.Duration(wv*(steps+1)+s) * frameStep)}
			for k := range per {
				st := frame.Confirmed
				if s == steps {
					if wv%2 == 1 {
						break // the odd waves vanish without a Removed
					}
					st = frame.Removed
				}
				x, y := float32(100+180*k), float32(50+45*s)
				ft.Tracks = append(ft.Tracks, frame.Track{ID: uint64(wv*per + k + 1), Label: []string{"person", "car"}[k%2], State: st,
					Box: models.Box{X1: x - 10, Y1: y - 30, X2: x + 10, Y2: y}})
			}
			e.Update(ft)
			maxState = max(maxState, e.StateSize())
		}
	}
	if n := e.StateSize(); n != 0 {
		t.Errorf("%d per-track entries left", n)
	}
	if limit := per * (len(rs) + 1); maxState > limit {
		t.Errorf("state grew to %d entries, more than %d live tracks × (rules + 1)", maxState, per)
	}
	if len(e.Counts()) == 0 {
		t.Error("no crossings counted: the waves should cross the gate")
	}
}

// BenchmarkUpdate: the example rules (one of each type) on 30 tracks walking across the frame.
func BenchmarkUpdate(b *testing.B) {
	src, err := os.ReadFile("testdata/rules.example.yaml")
	if err != nil {
		b.Fatal(err)
	}
	rs, err := decode(src)
	if err != nil {
		b.Fatal(err)
	}
	e, err := rules.New(rs)
	if err != nil {
		b.Fatal(err)
	}
	labels := []string{"person", "car", "truck"}
	ft := frame.Tracks{Camera: "c", Width: 1920, Height: 1080, Tracks: make([]frame.Track, 30)}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ft.CapturedAt = t0.Add(time.Duration(i) * frameStep)
		for k := range ft.Tracks {
			x := float32((i*7 + k*61) % 1920)
			y := float32((i*3 + k*37) % 1080)
			ft.Tracks[k] = frame.Track{ID: uint64(k + 1), Label: labels[k%3], State: frame.Confirmed,
				Box: models.Box{X1: x - 20, Y1: y - 60, X2: x + 20, Y2: y}}
		}
		e.Update(ft)
	}
}
