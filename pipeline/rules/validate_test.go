package rules_test

import (
	"bytes"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-edge/vigil/pipeline/rules"
)

var cameraLabels = []string{"person", "bicycle", "car", "motorcycle", "bus", "truck"}

func zoneRule(id string, poly ...rules.Point) rules.Rule {
	return rules.Rule{ID: id, Type: rules.TypeZone, Polygon: poly}
}

func TestValidate(t *testing.T) {
	sq := square(0.1, 0.1, 0.5, 0.5)
	ground := func(img ...rules.Point) []rules.GroundPoint {
		gp := make([]rules.GroundPoint, len(img))
		for i, p := range img {
			gp[i] = rules.GroundPoint{Image: p, Ground: rules.Point{X: p.X * 10, Y: p.Y * 10}}
		}
		return gp
	}
	cases := []struct {
		name  string
		rules []rules.Rule
		want  string // errors joined by newlines; "" for valid
	}{
		{"valid", []rules.Rule{
			zoneRule("door", sq...),
			{ID: "gate", Type: rules.TypeLine, A: pt(0, 0.5), B: pt(1, 0.5), Direction: rules.AToB, Labels: []string{"Person"}},
			{ID: "ww", Type: rules.TypeWrongWay, DirectionDeg: deg(0), ToleranceDeg: 90, MinDistance: 0.1},
			{ID: "s", Type: rules.TypeSpeed, MaxSpeed: 5, GroundPoints: ground(sq...)},
			{ID: "st", Type: rules.TypeStopped, MinDuration: time.Minute},
		}, ""},
		{"self-intersecting polygon", []rules.Rule{zoneRule("ok", sq...),
			zoneRule("gate", rules.Point{X: 0, Y: 0}, rules.Point{X: 1, Y: 1}, rules.Point{X: 1, Y: 0}, rules.Point{X: 0, Y: 1})},
			`rules[1] "gate": polygon self-intersects`},
		{"zero-length line", []rules.Rule{{ID: "door", Type: rules.TypeLine, A: pt(0.3, 0.3), B: pt(0.3, 0.3)}},
			`rules[0] "door": line has zero length`},
		{"point outside 0-1", []rules.Rule{zoneRule("a", sq...), zoneRule("b", sq...),
			zoneRule("lot", rules.Point{X: 0.1, Y: 0.1}, rules.Point{X: 0.5, Y: 0.1}, rules.Point{X: 0.6, Y: 0.6}, rules.Point{X: 1.2, Y: 0.5})},
			`rules[2] "lot": point 3 (1.2, 0.5) is outside 0-1`},
		{"NaN point", []rules.Rule{zoneRule("lot", rules.Point{X: math.NaN(), Y: 0.1}, rules.Point{X: 0.5, Y: 0.1}, rules.Point{X: 0.6, Y: 0.6})},
			`rules[0] "lot": point 0 (NaN, 0.1) is outside 0-1`},
		{"unknown label", []rules.Rule{{ID: "x", Type: rules.TypeZone, Polygon: sq, Labels: []string{"person", "persn"}}},
			`rules[0] "x": unknown label "persn" (the camera detects person, bicycle, car, motorcycle, bus, truck)`},
		{"empty label", []rules.Rule{{ID: "x", Type: rules.TypeZone, Polygon: sq, Labels: []string{" "}}},
			`rules[0] "x": labels has an empty label`},
		{"unknown type", []rules.Rule{{ID: "x", Type: "zon", Polygon: sq}},
			`rules[0] "x": unknown type "zon" (want zone, line, loitering, crowding, wrong_way, speed, stopped)`},
		{"missing type and id", []rules.Rule{{}},
			"rules[0] \"\": id is required\nrules[0] \"\": type is required (zone, line, loitering, crowding, wrong_way, speed, stopped)"},
		{"bad id", []rules.Rule{zoneRule("front door", sq...)},
			`rules[0] "front door": id must be 1-64 characters of A-Z a-z 0-9 _ . -`},
		{"duplicate id", []rules.Rule{zoneRule("door", sq...), zoneRule("gate", sq...), zoneRule("door", sq...)},
			`rules[2] "door": duplicate id (also rules[0])`},
		{"polygon too short", []rules.Rule{zoneRule("z", sq[:2]...)},
			`rules[0] "z": polygon needs at least 3 points (got 2)`},
		{"polygon missing", []rules.Rule{{ID: "z", Type: rules.TypeLoitering, MinDuration: time.Second}},
			`rules[0] "z": polygon needs at least 3 points (got 0)`},
		{"polygon flat", []rules.Rule{zoneRule("z", rules.Point{X: 0.1, Y: 0.1}, rules.Point{X: 0.2, Y: 0.2}, rules.Point{X: 0.3, Y: 0.3})},
			`rules[0] "z": polygon has zero area`},
		{"polygon too long", []rules.Rule{zoneRule("z", make([]rules.Point, 101)...)},
			`rules[0] "z": polygon has more than 100 points (got 101)`},
		{"negative dwell", []rules.Rule{{ID: "z", Type: rules.TypeZone, Polygon: sq, MinDwell: -time.Second}},
			`rules[0] "z": min_dwell must be >= 0 (got -1s)`},
		{"loitering without duration", []rules.Rule{{ID: "l", Type: rules.TypeLoitering, Polygon: sq}},
			`rules[0] "l": min_duration must be > 0 (got 0s)`},
		{"crowding", []rules.Rule{{ID: "c", Type: rules.TypeCrowding, Polygon: sq, MinDuration: time.Second, EndAfter: -1}},
			"rules[0] \"c\": min_count must be >= 1 (got 0)\nrules[0] \"c\": end_after must be >= 0 (got -1ns)"},
		{"line fields", []rules.Rule{{ID: "l", Type: rules.TypeLine, A: pt(0, 0), Direction: "up", Hysteresis: 0.5, MinFrames: -1}},
			"rules[0] \"l\": line needs points a and b\n" +
				"rules[0] \"l\": direction must be a_to_b, b_to_a or both (got \"up\")\n" +
				"rules[0] \"l\": hysteresis must be in 0-0.5 (got 0.5)\n" +
				"rules[0] \"l\": min_frames must be in 0-1000 (got -1)"},
		{"line outside", []rules.Rule{{ID: "l", Type: rules.TypeLine, A: pt(-0.1, 0), B: pt(1, 2)}},
			"rules[0] \"l\": a (-0.1, 0) is outside 0-1\nrules[0] \"l\": b (1, 2) is outside 0-1"},
		{"wrong_way fields", []rules.Rule{{ID: "w", Type: rules.TypeWrongWay, ToleranceDeg: 91}},
			"rules[0] \"w\": direction_deg is required (0 = right, 90 = down, 180 = left, 270 = up)\n" +
				"rules[0] \"w\": tolerance_deg must be > 0 and <= 90 (got 91)\n" +
				"rules[0] \"w\": min_distance must be > 0 and <= 1.414 (got 0)"},
		{"wrong_way angle", []rules.Rule{{ID: "w", Type: rules.TypeWrongWay, DirectionDeg: deg(400), ToleranceDeg: 10, MinDistance: 0.1}},
			`rules[0] "w": direction_deg must be in -360 to 360 (got 400)`},
		{"speed fields", []rules.Rule{{ID: "s", Type: rules.TypeSpeed, Window: -time.Second, GroundPoints: ground(sq[:3]...)}},
			"rules[0] \"s\": max_speed must be > 0 (got 0)\n" +
				"rules[0] \"s\": window must be in 0-10s (got -1s)\n" +
				"rules[0] \"s\": ground_points needs exactly 4 pairs (got 3)"},
		{"collinear image points", []rules.Rule{{ID: "s", Type: rules.TypeSpeed, MaxSpeed: 1,
			GroundPoints: ground(rules.Point{X: 0.1, Y: 0.1}, rules.Point{X: 0.2, Y: 0.2}, rules.Point{X: 0.3, Y: 0.3}, rules.Point{X: 0.1, Y: 0.9})}},
			`rules[0] "s": ground_points: image points 0, 1 and 2 are collinear`},
		{"collinear ground points", []rules.Rule{{ID: "s", Type: rules.TypeSpeed, MaxSpeed: 1, GroundPoints: []rules.GroundPoint{
			{Image: sq[0], Ground: rules.Point{X: 0, Y: 0}}, {Image: sq[1], Ground: rules.Point{X: 5, Y: 0}},
			{Image: sq[2], Ground: rules.Point{X: 5, Y: 5}}, {Image: sq[3], Ground: rules.Point{X: 10, Y: 10}}}}},
			`rules[0] "s": ground_points: ground points 0, 2 and 3 are collinear`},
		{"ground point outside the image", []rules.Rule{{ID: "s", Type: rules.TypeSpeed, MaxSpeed: 1,
			GroundPoints: ground(rules.Point{X: 0.1, Y: 0.1}, rules.Point{X: 2, Y: 0.2}, rules.Point{X: 0.3, Y: 0.3}, rules.Point{X: 0.1, Y: 0.9})}},
			`rules[0] "s": ground_points[1].image (2, 0.2) is outside 0-1`},
		{"stopped radius", []rules.Rule{{ID: "p", Type: rules.TypeStopped, MinDuration: time.Second, Radius: 0.6}},
			`rules[0] "p": radius must be in 0-0.5 (got 0.6)`},
		{"field of another type", []rules.Rule{{ID: "z", Type: rules.TypeZone, Polygon: sq, MinCount: 3, A: pt(0, 0)}},
			"rules[0] \"z\": a does not apply to type zone\nrules[0] \"z\": min_count does not apply to type zone"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := rules.Validate(c.rules, cameraLabels)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != c.want {
				t.Fatalf("Validate:\n got %q\nwant %q", got, c.want)
			}
			if err == nil {
				return
			}
			var re *rules.RuleError
			if !errors.As(err, &re) || re.ID != c.rules[re.Index].ID {
				t.Errorf("error %v is not a *RuleError naming its rule", err)
			}
			// New checks the same, except label names.
			_, nerr := rules.New(c.rules)
			if strings.Contains(c.want, "unknown label") {
				if nerr != nil {
					t.Errorf("New checked labels: %v", nerr)
				}
			} else if nerr == nil || nerr.Error() != c.want {
				t.Errorf("New: %v, want %q", nerr, c.want)
			}
		})
	}
}

func TestValidateWithoutLabels(t *testing.T) {
	rs := []rules.Rule{{ID: "x", Type: rules.TypeZone, Polygon: square(0, 0, 1, 1), Labels: []string{"unicorn"}}}
	if err := rules.Validate(rs, nil); err != nil {
		t.Errorf("labels checked without a camera's labels: %v", err)
	}
}

// decode reads a rules: list the way the agent's config does: unknown keys are errors.
func decode(b []byte) ([]rules.Rule, error) {
	var doc struct {
		Rules []rules.Rule `yaml:"rules"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	err := dec.Decode(&doc)
	return doc.Rules, err
}

func TestExampleFile(t *testing.T) {
	b, err := os.ReadFile("testdata/rules.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := rules.Validate(rs, cameraLabels); err != nil {
		t.Fatal(err)
	}
	if _, err := rules.New(rs); err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	for _, r := range rs {
		types[r.Type] = true
	}
	for _, typ := range []string{rules.TypeZone, rules.TypeLine, rules.TypeLoitering, rules.TypeCrowding, rules.TypeWrongWay, rules.TypeSpeed, rules.TypeStopped} {
		if !types[typ] {
			t.Errorf("the example has no %s rule", typ)
		}
	}
	if g := rs[0]; g.MinDwell != 2*time.Second || len(g.Polygon) != 4 || g.Polygon[3] != (rules.Point{X: 0.10, Y: 0.95}) {
		t.Errorf("doorway decoded as %+v", g)
	}
	if s := rs[5]; len(s.GroundPoints) != 4 || s.GroundPoints[1].Ground != (rules.Point{X: 12, Y: 30}) {
		t.Errorf("speed-limit decoded as %+v", s)
	}
}

func TestPointYAML(t *testing.T) {
	cases := []struct {
		src     string
		want    rules.Point
		wantErr string
	}{
		{"[0.25, 0.5]", rules.Point{X: 0.25, Y: 0.5}, ""},
		{"{x: 0.25, y: 0.5}", rules.Point{X: 0.25, Y: 0.5}, ""},
		{"[1]", rules.Point{}, "a point is [x, y], got 1 numbers"},
		{"[1, 2, 3]", rules.Point{}, "a point is [x, y], got 3 numbers"},
		{"{x: 1, z: 2}", rules.Point{}, "field z not found in a point"},
		{"[a, b]", rules.Point{}, "cannot unmarshal"},
		{"0.5", rules.Point{}, "a point is [x, y]"},
	}
	for _, c := range cases {
		var p rules.Point
		err := yaml.Unmarshal([]byte(c.src), &p)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: error %v, want one containing %q", c.src, err, c.wantErr)
			}
			continue
		}
		if err != nil || p != c.want {
			t.Errorf("%s: got %v, %v; want %v", c.src, p, err, c.want)
		}
		out, err := yaml.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var back rules.Point
		if err := yaml.Unmarshal(out, &back); err != nil || back != p {
			t.Errorf("%s: round trip through %q gave %v, %v", c.src, out, back, err)
		}
	}
}
