package rules

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Validate checks a camera's rules without I/O and returns every problem found, joined, one
// *RuleError each: rules[1] "gate": polygon self-intersects. labels are the labels the camera
// detects (compared case-insensitively); a rule naming another label is an error. With no
// labels, label names are not checked.
func Validate(rules []Rule, labels []string) error {
	var errs []error
	seen := map[string]int{}
	for i, r := range rules {
		bad := func(format string, args ...any) {
			errs = append(errs, &RuleError{Index: i, ID: r.ID, Problem: fmt.Sprintf(format, args...)})
		}
		checkRule(r, bad)
		if r.ID != "" {
			if j, dup := seen[r.ID]; dup {
				bad("duplicate id (also rules[%d])", j)
			} else {
				seen[r.ID] = i
			}
		}
		if len(labels) > 0 {
			for _, l := range r.Labels {
				if strings.TrimSpace(l) != "" && !hasLabel(labels, l) {
					bad("unknown label %q (the camera detects %s)", l, strings.Join(labels, ", "))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func hasLabel(labels []string, l string) bool {
	for _, x := range labels {
		if strings.EqualFold(x, l) {
			return true
		}
	}
	return false
}

// validID reports whether id is 1-64 characters of [A-Za-z0-9_.-].
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// field is one type-specific setting: whether it is set and which types it applies to.
type field struct {
	name  string
	set   bool
	types []string
}

// checkRule reports each problem of r (everything but uniqueness and label names) to bad.
func checkRule(r Rule, bad func(string, ...any)) {
	switch {
	case r.ID == "":
		bad("id is required")
	case !validID(r.ID):
		bad("id must be 1-64 characters of A-Z a-z 0-9 _ . -")
	}
	known := false
	for _, t := range allTypes {
		known = known || r.Type == t
	}
	if r.Type == "" {
		bad("type is required (%s)", strings.Join(allTypes, ", "))
		return
	}
	if !known {
		bad("unknown type %q (want %s)", r.Type, strings.Join(allTypes, ", "))
		return
	}
	for _, l := range r.Labels {
		if strings.TrimSpace(l) == "" {
			bad("labels has an empty label")
		}
	}
	for _, f := range []field{
		{"polygon", len(r.Polygon) > 0, []string{TypeZone, TypeLoitering, TypeCrowding, TypeWrongWay, TypeSpeed, TypeStopped}},
		{"min_dwell", r.MinDwell != 0, []string{TypeZone}},
		{"a", r.A != nil, []string{TypeLine}},
		{"b", r.B != nil, []string{TypeLine}},
		{"direction", r.Direction != "", []string{TypeLine}},
		{"hysteresis", r.Hysteresis != 0, []string{TypeLine}},
		{"min_frames", r.MinFrames != 0, []string{TypeLine}},
		{"min_duration", r.MinDuration != 0, []string{TypeLoitering, TypeCrowding, TypeStopped}},
		{"min_count", r.MinCount != 0, []string{TypeCrowding}},
		{"end_after", r.EndAfter != 0, []string{TypeCrowding}},
		{"direction_deg", r.DirectionDeg != nil, []string{TypeWrongWay}},
		{"tolerance_deg", r.ToleranceDeg != 0, []string{TypeWrongWay}},
		{"min_distance", r.MinDistance != 0, []string{TypeWrongWay}},
		{"max_speed", r.MaxSpeed != 0, []string{TypeSpeed}},
		{"ground_points", len(r.GroundPoints) > 0, []string{TypeSpeed}},
		{"window", r.Window != 0, []string{TypeSpeed}},
		{"radius", r.Radius != 0, []string{TypeStopped}},
	} {
		applies := false
		for _, t := range f.types {
			applies = applies || t == r.Type
		}
		if f.set && !applies {
			bad("%s does not apply to type %s", f.name, r.Type)
		}
	}

	switch r.Type {
	case TypeZone, TypeLoitering, TypeCrowding:
		checkPolygon(r.Polygon, true, bad)
	case TypeWrongWay, TypeSpeed, TypeStopped:
		checkPolygon(r.Polygon, false, bad)
	}
	switch r.Type {
	case TypeZone:
		if r.MinDwell < 0 {
			bad("min_dwell must be >= 0 (got %v)", r.MinDwell)
		}
	case TypeLine:
		checkLine(r, bad)
	case TypeLoitering, TypeStopped:
		positive("min_duration", r.MinDuration, bad)
		if r.Type == TypeStopped && !(r.Radius >= 0 && r.Radius < 0.5) {
			bad("radius must be in 0-0.5 (got %g)", r.Radius)
		}
	case TypeCrowding:
		positive("min_duration", r.MinDuration, bad)
		if r.MinCount < 1 {
			bad("min_count must be >= 1 (got %d)", r.MinCount)
		}
		if r.EndAfter < 0 {
			bad("end_after must be >= 0 (got %v)", r.EndAfter)
		}
	case TypeWrongWay:
		if r.DirectionDeg == nil {
			bad("direction_deg is required (0 = right, 90 = down, 180 = left, 270 = up)")
		} else if !(math.Abs(*r.DirectionDeg) <= 360) {
			bad("direction_deg must be in -360 to 360 (got %g)", *r.DirectionDeg)
		}
		if !(r.ToleranceDeg > 0 && r.ToleranceDeg <= 90) {
			bad("tolerance_deg must be > 0 and <= 90 (got %g)", r.ToleranceDeg)
		}
		if !(r.MinDistance > 0 && r.MinDistance <= math.Sqrt2) {
			bad("min_distance must be > 0 and <= 1.414 (got %g)", r.MinDistance)
		}
	case TypeSpeed:
		if !(r.MaxSpeed > 0) || math.IsInf(r.MaxSpeed, 0) {
			bad("max_speed must be > 0 (got %g)", r.MaxSpeed)
		}
		if r.Window < 0 || r.Window > 10*time.Second {
			bad("window must be in 0-10s (got %v)", r.Window)
		}
		checkGround(r.GroundPoints, bad)
	}
}

func positive(name string, d time.Duration, bad func(string, ...any)) {
	if d <= 0 {
		bad("%s must be > 0 (got %v)", name, d)
	}
}

// checkPolygon checks a polygon; an empty one is fine where it is optional.
func checkPolygon(poly []Point, required bool, bad func(string, ...any)) {
	if len(poly) == 0 && !required {
		return
	}
	if len(poly) < 3 {
		bad("polygon needs at least 3 points (got %d)", len(poly))
		return
	}
	if len(poly) > MaxPolygonPoints {
		bad("polygon has more than %d points (got %d)", MaxPolygonPoints, len(poly))
		return
	}
	ok := true
	for i, p := range poly {
		if !p.normalised() {
			bad("point %d %v is outside 0-1", i, p)
			ok = false
		}
	}
	if !ok {
		return
	}
	if selfIntersects(poly) {
		bad("polygon self-intersects")
	} else if area(poly) < 1e-9 {
		bad("polygon has zero area")
	}
}

func checkLine(r Rule, bad func(string, ...any)) {
	if r.A == nil || r.B == nil {
		bad("line needs points a and b")
	} else {
		okA, okB := r.A.normalised(), r.B.normalised()
		if !okA {
			bad("a %v is outside 0-1", *r.A)
		}
		if !okB {
			bad("b %v is outside 0-1", *r.B)
		}
		if okA && okB && dist(*r.A, *r.B) < 1e-6 {
			bad("line has zero length")
		}
	}
	switch r.Direction {
	case "", AToB, BToA, Both:
	default:
		bad("direction must be a_to_b, b_to_a or both (got %q)", r.Direction)
	}
	if !(r.Hysteresis >= 0 && r.Hysteresis < 0.5) {
		bad("hysteresis must be in 0-0.5 (got %g)", r.Hysteresis)
	}
	if r.MinFrames < 0 || r.MinFrames > 1000 {
		bad("min_frames must be in 0-1000 (got %d)", r.MinFrames)
	}
}

func checkGround(gp []GroundPoint, bad func(string, ...any)) {
	if len(gp) == 0 {
		return
	}
	if len(gp) != 4 {
		bad("ground_points needs exactly 4 pairs (got %d)", len(gp))
		return
	}
	var src, dst [4]Point
	ok := true
	for i, g := range gp {
		src[i], dst[i] = g.Image, g.Ground
	}
	for i, g := range gp {
		if !g.Image.normalised() {
			bad("ground_points[%d].image %v is outside 0-1", i, g.Image)
			ok = false
		}
		if !g.Ground.finite() {
			bad("ground_points[%d].ground %v is not a finite point", i, g.Ground)
			ok = false
		}
	}
	if !ok {
		return
	}
	if i, j, k, bad3 := collinear(src); bad3 {
		bad("ground_points: image points %d, %d and %d are collinear", i, j, k)
	} else if i, j, k, bad3 := collinear(dst); bad3 {
		bad("ground_points: ground points %d, %d and %d are collinear", i, j, k)
	} else if _, err := NewHomography(src, dst); err != nil {
		bad("ground_points: %v", err)
	}
}
