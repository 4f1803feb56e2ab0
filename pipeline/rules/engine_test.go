package rules_test

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/rules"
)

type scene struct {
	name   string
	rules  []rules.Rule
	frames []frame.Tracks
	want   []string
}

func runScenes(t *testing.T, cases []scene) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, got := run(t, c.rules, c.frames)
			equal(t, got, c.want)
		})
	}
}

// walkX: person 1 walks along y = 0.5, x = 0.05, 0.15, ... (inside 0.4-0.6 on frames 4 and 5).
func walkX(i int) []obj { return []obj{person(1, 0.05+0.1*float64(i), 0.5)} }

// stayIn: person 1 is inside 0.4-0.6 on frames from..to, and at (0.1, 0.1) otherwise.
func stayIn(from, to int) func(int) []obj {
	return func(i int) []obj {
		if i >= from && i <= to {
			return []obj{person(1, 0.5, 0.5)}
		}
		return []obj{person(1, 0.1, 0.1)}
	}
}

func TestZone(t *testing.T) {
	zone := func(dwell time.Duration, labels ...string) []rules.Rule {
		return []rules.Rule{{ID: "door", Type: rules.TypeZone, Labels: labels, Polygon: square(0.4, 0.4, 0.6, 0.6), MinDwell: dwell}}
	}
	runScenes(t, []scene{
		{"enter and leave", zone(0), movie(10, walkX),
			[]string{"f4 door zone/entered #1 person 0s", "f6 door zone/left #1 person 0.2s"}},
		{"dwell just below min_dwell", zone(time.Second), movie(15, stayIn(2, 11)), nil},
		{"dwell just reaching min_dwell", zone(time.Second), movie(15, stayIn(2, 12)),
			[]string{"f12 door zone/entered #1 person 1s", "f13 door zone/left #1 person 1.1s"}},
		{"removed track leaves", zone(0), movie(8, func(i int) []obj {
			o := person(1, 0.5, 0.5)
			switch {
			case i == 5:
				return []obj{o.removed()}
			case i > 5:
				return nil
			}
			return []obj{o}
		}), []string{"f0 door zone/entered #1 person 0s", "f5 door zone/left #1 person 0.5s"}},
		{"vanished track leaves", zone(0), movie(8, func(i int) []obj {
			if i < 3 {
				return []obj{person(1, 0.5, 0.5)}
			}
			return nil
		}), []string{"f0 door zone/entered #1 person 0s", "f3 door zone/left #1 person 0.3s"}},
		{"lost track stays where it was seen", zone(0), movie(8, func(i int) []obj {
			switch {
			case i < 2:
				return []obj{person(1, 0.5, 0.5)}
			case i < 6: // the tracker's prediction drifts out of the zone
				return []obj{person(1, 0.9, 0.9).lost()}
			case i == 6:
				return []obj{person(1, 0.9, 0.9).removed()}
			}
			return nil
		}), []string{"f0 door zone/entered #1 person 0s", "f6 door zone/left #1 person 0.6s"}},
		{"label filter", zone(0, "car"), movie(10, func(i int) []obj {
			return []obj{person(1, 0.05+0.1*float64(i), 0.5), car(2, 0.5, 0.05+0.1*float64(i))}
		}), []string{"f4 door zone/entered #2 car 0s", "f6 door zone/left #2 car 0.2s"}},
		{"two tracks in id order", zone(0), movie(2, func(int) []obj {
			return []obj{person(7, 0.5, 0.5), person(3, 0.45, 0.45), person(5, 0.1, 0.1)}
		}), []string{"f0 door zone/entered #3 person 0s", "f0 door zone/entered #7 person 0s"}},
	})
}

func TestLoitering(t *testing.T) {
	loiter := []rules.Rule{{ID: "atm", Type: rules.TypeLoitering, Polygon: square(0.4, 0.4, 0.6, 0.6), MinDuration: 2 * time.Second}}
	runScenes(t, []scene{
		{"just below", loiter, movie(25, stayIn(0, 19)), nil},
		{"just reaching", loiter, movie(25, stayIn(0, 20)), []string{"f20 atm loitering #1 person 2s"}},
		{"one alert per visit", loiter, movie(60, stayIn(0, 59)), []string{"f20 atm loitering #1 person 2s"}},
		{"second visit", loiter, movie(60, func(i int) []obj {
			if i >= 30 && i <= 55 || i <= 25 {
				return []obj{person(1, 0.5, 0.5)}
			}
			return []obj{person(1, 0.1, 0.1)}
		}), []string{"f20 atm loitering #1 person 2s", "f50 atm loitering #1 person 2s"}},
	})
}

// lineGate is a horizontal line across the middle: a_to_b is crossing downwards.
func lineGate(dir string, minFrames int, hyst float64, labels ...string) []rules.Rule {
	return []rules.Rule{{ID: "gate", Type: rules.TypeLine, Labels: labels, A: pt(0.2, 0.5), B: pt(0.8, 0.5),
		Direction: dir, MinFrames: minFrames, Hysteresis: hyst}}
}

// ys: person 1 at x = 0.5 and the given y on successive frames.
func ys(y ...float64) []frame.Tracks {
	return movie(len(y), func(i int) []obj { return []obj{person(1, 0.5, y[i])} })
}

func TestLine(t *testing.T) {
	runScenes(t, []scene{
		{"downwards is a_to_b", lineGate("", 0, 0), ys(0.3, 0.4, 0.45, 0.5, 0.55, 0.6), []string{"f4 gate line/a_to_b #1 person"}},
		{"upwards is b_to_a", lineGate("", 0, 0), ys(0.6, 0.55, 0.45, 0.4), []string{"f2 gate line/b_to_a #1 person"}},
		{"jitter inside the hysteresis counts once", lineGate("", 0, 0),
			ys(0.40, 0.45, 0.495, 0.505, 0.498, 0.507, 0.52, 0.505, 0.495, 0.509, 0.55),
			[]string{"f6 gate line/a_to_b #1 person"}},
		{"wider hysteresis ignores a bounce", lineGate("", 0, 0.05),
			ys(0.40, 0.52, 0.48, 0.53, 0.47, 0.54, 0.56, 0.58),
			[]string{"f6 gate line/a_to_b #1 person"}},
		{"every bounce past the hysteresis is a real crossing", lineGate("", 0, 0),
			ys(0.45, 0.52, 0.48, 0.52),
			[]string{"f1 gate line/a_to_b #1 person", "f2 gate line/b_to_a #1 person", "f3 gate line/a_to_b #1 person"}},
		{"min_frames holds the new side", lineGate("", 3, 0),
			ys(0.40, 0.45, 0.52, 0.48, 0.52, 0.53, 0.48, 0.52, 0.53, 0.54, 0.55),
			[]string{"f9 gate line/a_to_b #1 person"}},
		{"reversal counts both ways", lineGate(rules.Both, 0, 0), ys(0.4, 0.6, 0.6, 0.4),
			[]string{"f1 gate line/a_to_b #1 person", "f3 gate line/b_to_a #1 person"}},
		{"reversal on a one-way line", lineGate(rules.AToB, 0, 0), ys(0.4, 0.6, 0.6, 0.4, 0.6),
			[]string{"f1 gate line/a_to_b #1 person", "f4 gate line/a_to_b #1 person"}},
		{"b_to_a only", lineGate(rules.BToA, 0, 0), ys(0.4, 0.6, 0.6, 0.4),
			[]string{"f3 gate line/b_to_a #1 person"}},
		{"passing around the end does not count", lineGate("", 0, 0), movie(4, func(i int) []obj {
			return []obj{person(1, 0.9, 0.3+0.1*float64(i))}
		}), nil},
		{"starting in the band then leaving it is no crossing", lineGate("", 0, 0), ys(0.5, 0.505, 0.6, 0.7), nil},
		{"a lost track's prediction does not cross", lineGate("", 0, 0), movie(6, func(i int) []obj {
			o := person(1, 0.5, 0.4+0.05*float64(i))
			if i >= 2 {
				o = o.lost()
			}
			if i == 5 {
				o = o.removed()
			}
			return []obj{o}
		}), nil},
		{"a track found again on the other side crossed", lineGate("", 0, 0), movie(5, func(i int) []obj {
			o := person(1, 0.5, 0.4+0.05*float64(i))
			if i == 1 || i == 2 {
				o = o.lost()
			}
			return []obj{o}
		}), []string{"f3 gate line/a_to_b #1 person"}},
		{"label filter", lineGate("", 0, 0, "car"), movie(3, func(i int) []obj {
			return []obj{person(1, 0.5, 0.4+0.1*float64(i)), car(2, 0.4, 0.6-0.1*float64(i))}
		}), []string{"f2 gate line/b_to_a #2 car"}},
		{"downward line: right to left is a_to_b", []rules.Rule{{ID: "gate", Type: rules.TypeLine, A: pt(0.5, 0.2), B: pt(0.5, 0.8)}},
			movie(4, func(i int) []obj { return []obj{person(1, 0.7-0.1*float64(i), 0.5)} }),
			[]string{"f3 gate line/a_to_b #1 person"}},
	})
}

func TestLineCounts(t *testing.T) {
	rs := append(lineGate(rules.Both, 0, 0), rules.Rule{ID: "exit", Type: rules.TypeLine, A: pt(0.1, 0.9), B: pt(0.1, 0.1), Direction: rules.AToB})
	frames := movie(4, func(i int) []obj {
		y := []float64{0.4, 0.6, 0.4, 0.6}[i]
		return []obj{person(1, 0.5, y), car(2, 0.6, y), person(3, 0.05+0.03*float64(i), 0.5)}
	})
	e, got := run(t, rs, frames)
	if len(got) != 7 {
		t.Errorf("got %d alerts, want 7: %q", len(got), got)
	}
	want := []rules.LineCount{
		{RuleID: "gate", Direction: rules.AToB, Label: "car", Count: 2},
		{RuleID: "gate", Direction: rules.AToB, Label: "person", Count: 2},
		{RuleID: "gate", Direction: rules.BToA, Label: "car", Count: 1},
		{RuleID: "gate", Direction: rules.BToA, Label: "person", Count: 1},
		{RuleID: "exit", Direction: rules.AToB, Label: "person", Count: 1},
	}
	if c := e.Counts(); !reflect.DeepEqual(c, want) {
		t.Errorf("Counts:\n got %+v\nwant %+v", c, want)
	}
}

func TestCrowding(t *testing.T) {
	crowd := func(n int, end time.Duration, labels ...string) []rules.Rule {
		return []rules.Rule{{ID: "queue", Type: rules.TypeCrowding, Labels: labels, Polygon: square(0, 0, 0.5, 0.5), MinCount: n,
			MinDuration: time.Second, EndAfter: end}}
	}
	// Persons 1 and 2 and car 4 are inside throughout; person 3 is inside on the frames in3 says.
	three := func(in3 func(i int) bool) func(int) []obj {
		return func(i int) []obj {
			o3 := person(3, 0.8, 0.8)
			if in3(i) {
				o3 = person(3, 0.3, 0.3)
			}
			return []obj{person(1, 0.1, 0.1), person(2, 0.2, 0.2), o3, car(4, 0.25, 0.25)}
		}
	}
	runScenes(t, []scene{
		{"forms and disperses", crowd(4, 0), movie(40, three(func(i int) bool { return i >= 5 && i < 20 })),
			[]string{"f15 queue crowding/started #1,2,3,4 person 4objects", "f30 queue crowding/ended #1,2,4 person 3objects"}},
		{"labels filter what is counted", crowd(3, 0, "person"),
			movie(40, three(func(i int) bool { return i >= 5 && i < 20 })),
			[]string{"f15 queue crowding/started #1,2,3 person 3objects", "f30 queue crowding/ended #1,2 person 2objects"}},
		{"too short to start", crowd(4, 0), movie(40, three(func(i int) bool { return i >= 5 && i < 14 })), nil},
		{"a brief dip does not end it", crowd(4, 0), movie(40, three(func(i int) bool { return i >= 0 && i != 20 && i != 25 })),
			[]string{"f10 queue crowding/started #1,2,3,4 person 4objects"}},
		{"end_after", crowd(4, 500*time.Millisecond), movie(40, three(func(i int) bool { return i < 20 })),
			[]string{"f10 queue crowding/started #1,2,3,4 person 4objects", "f25 queue crowding/ended #1,2,4 person 3objects"}},
	})
	// a removed track no longer counts
	perLabel := []rules.Rule{{ID: "queue", Type: rules.TypeCrowding, Labels: []string{"person"}, Polygon: square(0, 0, 0.5, 0.5),
		MinCount: 2, MinDuration: 300 * time.Millisecond}}
	runScenes(t, []scene{{"removed track leaves the crowd", perLabel, movie(12, func(i int) []obj {
		o := []obj{person(1, 0.1, 0.1)}
		switch {
		case i < 5:
			o = append(o, person(2, 0.2, 0.2))
		case i == 5:
			o = append(o, person(2, 0.2, 0.2).removed())
		}
		return o
	}), []string{"f3 queue crowding/started #1,2 person 2objects", "f8 queue crowding/ended #1 person 1objects"}}})
}

// heading: person 1 moving from (0.5, 0.5) at angle a (degrees on screen) by step per frame.
func heading(a, step float64, n int) []frame.Tracks {
	dx, dy := math.Cos(a*math.Pi/180), math.Sin(a*math.Pi/180)
	return movie(n, func(i int) []obj {
		return []obj{person(1, 0.5+dx*step*float64(i), 0.5+dy*step*float64(i))}
	})
}

func TestWrongWay(t *testing.T) {
	// allowed: to the right; tolerance 30: wrong way is more than 150° off.
	ww := func(poly []rules.Point) []rules.Rule {
		return []rules.Rule{{ID: "oneway", Type: rules.TypeWrongWay, Polygon: poly, DirectionDeg: deg(0), ToleranceDeg: 30, MinDistance: 0.09}}
	}
	runScenes(t, []scene{
		{"straight against", ww(nil), heading(180, 0.02, 12), []string{"f5 oneway wrong_way #1 person 180deg"}},
		{"just past the tolerance", ww(nil), heading(151, 0.02, 12), []string{"f5 oneway wrong_way #1 person 151deg"}},
		{"just within the tolerance", ww(nil), heading(149, 0.02, 12), nil},
		{"with the flow", ww(nil), heading(0, 0.02, 12), nil},
		{"below min_distance", ww(nil), heading(180, 0.008, 12), nil},
		{"once per track", ww(nil), heading(180, 0.02, 24), []string{"f5 oneway wrong_way #1 person 180deg"}},
		{"outside the polygon", ww(square(0, 0, 0.3, 0.3)), heading(180, 0.02, 12), nil},
		{"upwards against down", []rules.Rule{{ID: "ramp", Type: rules.TypeWrongWay, DirectionDeg: deg(90), ToleranceDeg: 45, MinDistance: 0.045}},
			heading(270, 0.01, 10), []string{"f5 ramp wrong_way #1 person 180deg"}},
	})
}

func TestWrongWayNonSquareFrame(t *testing.T) {
	// On a 2000x500 frame, moving 0.1 left and 0.1 down in normalised units is 200 px left and
	// 50 px down: 166° off "right" in pixels (it would be 135° in normalised units).
	rs := []rules.Rule{{ID: "oneway", Type: rules.TypeWrongWay, DirectionDeg: deg(0), ToleranceDeg: 20, MinDistance: 0.1}}
	frames := movieSized(12, 2000, 500, func(i int) []obj { return []obj{person(1, 0.8-0.02*float64(i), 0.2+0.02*float64(i))} })
	_, got := run(t, rs, frames)
	equal(t, got, []string{"f4 oneway wrong_way #1 person 166deg"})
}

func TestSpeed(t *testing.T) {
	ground := []rules.GroundPoint{ // the whole image is a 20 m x 20 m square
		{Image: rules.Point{X: 0, Y: 0}, Ground: rules.Point{X: 0, Y: 0}},
		{Image: rules.Point{X: 1, Y: 0}, Ground: rules.Point{X: 20, Y: 0}},
		{Image: rules.Point{X: 1, Y: 1}, Ground: rules.Point{X: 20, Y: 20}},
		{Image: rules.Point{X: 0, Y: 1}, Ground: rules.Point{X: 0, Y: 20}},
	}
	speed := func(max float64, gp []rules.GroundPoint) []rules.Rule {
		return []rules.Rule{{ID: "limit", Type: rules.TypeSpeed, MaxSpeed: max, GroundPoints: gp}}
	}
	// 10 px a frame at 10 fps on a 1000 px frame: 100 px/s; 0.01 of 20 m = 0.2 m a frame: 2 m/s.
	tenPx := movie(12, func(i int) []obj { return []obj{car(1, 0.1+0.01*float64(i), 0.5)} })
	runScenes(t, []scene{
		{"px/s over the limit", speed(99, nil), tenPx, []string{"f5 limit speed #1 car 100px/s"}},
		{"px/s under the limit", speed(101, nil), tenPx, nil},
		{"m/s over the limit", speed(1.9, ground), tenPx, []string{"f5 limit speed #1 car 2m/s"}},
		{"m/s under the limit", speed(2.1, ground), tenPx, nil},
		{"one alert per episode", speed(50, nil), movie(40, func(i int) []obj {
			switch { // fast, stopped, fast again
			case i <= 10:
				return []obj{car(1, 0.1+0.01*float64(i), 0.5)}
			case i <= 20:
				return []obj{car(1, 0.2, 0.5)}
			}
			return []obj{car(1, 0.2+0.01*float64(i-20), 0.5)}
		}), []string{"f5 limit speed #1 car 100px/s", "f23 limit speed #1 car 60px/s"}},
		{"lost tracks have no speed", speed(50, nil), movie(12, func(i int) []obj {
			return []obj{car(1, 0.1+0.01*float64(i), 0.5).lost()}
		}), nil},
		{"outside the polygon", []rules.Rule{{ID: "limit", Type: rules.TypeSpeed, MaxSpeed: 50, Polygon: square(0.5, 0, 1, 1)}}, tenPx, nil},
	})
}

func TestStopped(t *testing.T) {
	stopped := func(poly []rules.Point) []rules.Rule {
		return []rules.Rule{{ID: "noparking", Type: rules.TypeStopped, Polygon: poly, MinDuration: 2 * time.Second}}
	}
	still := func(from, to int) func(int) []obj { // still at (0.5, 0.5) on frames from..to, walking away after
		return func(i int) []obj {
			if i <= to {
				return []obj{car(1, 0.5, 0.5)}
			}
			return []obj{car(1, 0.5+0.1*float64(i-to), 0.5)}
		}
	}
	runScenes(t, []scene{
		{"just below", stopped(nil), movie(25, still(0, 19)), nil},
		{"just reaching", stopped(nil), movie(25, still(0, 20)), []string{"f20 noparking stopped #1 car 2s"}},
		{"jitter within the radius", stopped(nil), movie(25, func(i int) []obj {
			return []obj{car(1, 0.5+0.01*float64(i%2), 0.5-0.01*float64(i%3/2))}
		}), []string{"f20 noparking stopped #1 car 2s"}},
		{"slow but beyond the radius", stopped(nil), movie(80, func(i int) []obj {
			return []obj{car(1, 0.1+0.005*float64(i), 0.5)}
		}), nil},
		{"one alert per episode", stopped(nil), movie(90, func(i int) []obj {
			switch {
			case i < 40:
				return []obj{car(1, 0.5, 0.5)}
			case i < 45:
				return []obj{car(1, 0.5+0.05*float64(i-39), 0.5)}
			}
			return []obj{car(1, 0.75, 0.5)}
		}), []string{"f20 noparking stopped #1 car 2s", "f64 noparking stopped #1 car 2s"}},
		{"a lost track does not move", stopped(nil), movie(25, func(i int) []obj {
			if i < 10 {
				return []obj{car(1, 0.5, 0.5)}
			}
			return []obj{car(1, 0.5+0.02*float64(i), 0.5).lost()}
		}), []string{"f20 noparking stopped #1 car 2s"}},
		{"outside the polygon", stopped(square(0, 0, 0.3, 0.3)), movie(25, still(0, 24)), nil},
		{"inside the polygon", stopped(square(0.4, 0.4, 0.6, 0.6)), movie(25, still(0, 24)), []string{"f20 noparking stopped #1 car 2s"}},
	})
}

func TestUpdateOddInput(t *testing.T) {
	e, err := rules.New([]rules.Rule{{ID: "door", Type: rules.TypeZone, Polygon: square(0, 0, 1, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	at := t0
	upd := func(w, h int, tr ...frame.Track) []string {
		at = at.Add(frameStep)
		var out []string
		for _, a := range e.Update(frame.Tracks{Camera: "c", CapturedAt: at, Width: w, Height: h, Tracks: tr}) {
			out = append(out, a.Kind)
		}
		return out
	}
	box := func(id uint64, s frame.TrackState) frame.Track {
		return frame.Track{ID: id, State: s, Label: "person", Box: models.Box{X1: 40, Y1: 10, X2: 60, Y2: 50}}
	}
	equal(t, upd(0, 0, box(1, frame.Confirmed)), nil)                                              // no frame size: nowhere to put it
	equal(t, upd(100, 100, box(1, frame.Tentative)), nil)                                          // tentative: ignored
	equal(t, upd(100, 100, box(1, frame.Confirmed), box(1, frame.Confirmed)), []string{"entered"}) // duplicate id: once
	equal(t, upd(0, 0, box(1, frame.Confirmed)), nil)                                              // stays where it was
	equal(t, upd(100, 100), []string{"left"})                                                      // vanished
}
