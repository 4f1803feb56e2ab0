package rules_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/rules"
)

// Synthetic scenes: 10 frames a second of a 1000x1000 camera unless a test says otherwise.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const (
	frameStep = 100 * time.Millisecond
	camW      = 1000
	camH      = 1000
)

// obj is one track on one frame: its bottom centre in normalised coordinates.
type obj struct {
	id    uint64
	label string
	x, y  float64
	state frame.TrackState // zero value Tentative is never wanted here: see mk
}

// person, car: a confirmed track at (x, y).
func person(id uint64, x, y float64) obj { return obj{id, "person", x, y, frame.Confirmed} }
func car(id uint64, x, y float64) obj    { return obj{id, "car", x, y, frame.Confirmed} }

func (o obj) lost() obj    { o.state = frame.Lost; return o }
func (o obj) removed() obj { o.state = frame.Removed; return o }

// movie builds n frames; objs(i) gives the tracks on frame i.
func movie(n int, objs func(i int) []obj) []frame.Tracks {
	return movieSized(n, camW, camH, objs)
}

func movieSized(n, w, h int, objs func(i int) []obj) []frame.Tracks {
	out := make([]frame.Tracks, n)
	for i := range n {
		ft := frame.Tracks{Camera: "cam1", FrameSeq: uint64(i), CapturedAt: t0.Add(time.Duration(i) * frameStep), Width: w, Height: h}
		for _, o := range objs(i) {
			bx, by := float32(o.x*float64(w)), float32(o.y*float64(h))
			ft.Tracks = append(ft.Tracks, frame.Track{ID: o.id, Label: o.label, State: o.state, Matched: o.state == frame.Confirmed,
				Box: models.Box{X1: bx - 10, Y1: by - 40, X2: bx + 10, Y2: by}})
		}
		out[i] = ft
	}
	return out
}

// lerp is the point k/n of the way from a to b.
func lerp(a, b float64, k, n int) float64 { return a + (b-a)*float64(k)/float64(n) }

// run feeds frames to a new engine of rs and returns the engine and its alerts, summarised.
func run(t *testing.T, rs []rules.Rule, frames []frame.Tracks) (*rules.Engine, []string) {
	t.Helper()
	e, err := rules.New(rs)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var got []string
	for _, f := range frames {
		for _, a := range e.Update(f) {
			if a.Camera != f.Camera || !a.At.Equal(f.CapturedAt) {
				t.Errorf("alert %+v: camera/time not the frame's (%s, %v)", a, f.Camera, f.CapturedAt)
			}
			got = append(got, summary(a))
		}
	}
	return e, got
}

// summary writes an alert as "f<frame> <rule>/<kind> <ids> <label> <value><unit>".
func summary(a frame.Alert) string {
	ids := make([]string, len(a.TrackIDs))
	for i, id := range a.TrackIDs {
		ids[i] = fmt.Sprint(id)
	}
	kind := a.RuleType
	if a.Kind != "" {
		kind += "/" + a.Kind
	}
	s := fmt.Sprintf("f%d %s %s #%s %s", a.At.Sub(t0)/frameStep, a.RuleID, kind, strings.Join(ids, ","), a.Label)
	if a.Unit != "" {
		s += fmt.Sprintf(" %.4g%s", a.Value, a.Unit)
	}
	return s
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("alerts:\n got: %q\nwant: %q", got, want)
	}
}

func pt(x, y float64) *rules.Point { return &rules.Point{X: x, Y: y} }

func deg(d float64) *float64 { return &d }

// square is the axis-aligned polygon from (x1, y1) to (x2, y2).
func square(x1, y1, x2, y2 float64) []rules.Point {
	return []rules.Point{{X: x1, Y: y1}, {X: x2, Y: y1}, {X: x2, Y: y2}, {X: x1, Y: y2}}
}
