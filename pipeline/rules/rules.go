// Package rules is the behaviour-rules stage: it turns the tracker's stream of frame.Tracks
// for one camera into frame.Alert values (an object entered a zone, crossed a line, loitered,
// a crowd formed, something went the wrong way, too fast, or stopped) and keeps line-crossing
// counters.
//
// Rules are configured per camera (the agent embeds []Rule under each camera as `rules:`);
// every point is in normalised image coordinates, 0-1, x to the right and y down, so a rule
// survives a change of resolution. An object's position is the bottom centre of its box
// (frame.Track.BottomCenter, where it meets the ground) divided by the frame's size.
//
//	(0,0) ───────────▶ x (1,0)
//	  │   ┌──────┐
//	  │   │ box  │
//	  │   └──●───┘  ● = the position rules use
//	  ▼ y
//	(0,1)
//
// Validate checks a camera's rules without I/O; New compiles them into an Engine, which is
// fed one frame.Tracks per detected frame by Update. See the Rule fields for what each rule
// type does, and testdata/rules.example.yaml for one rule of each type.
package rules

import (
	"fmt"
	"math"
	"time"

	"gopkg.in/yaml.v3"
)

// Rule types, as written in `type:` and copied into frame.Alert.RuleType.
const (
	TypeZone      = "zone"      // alerts "entered" after min_dwell inside, "left" on leaving
	TypeLine      = "line"      // alerts and counts each crossing, kind "a_to_b" or "b_to_a"
	TypeLoitering = "loitering" // one alert per track per visit longer than min_duration
	TypeCrowding  = "crowding"  // "started"/"ended" as min_count objects gather or disperse
	TypeWrongWay  = "wrong_way" // one alert per track moving against direction_deg
	TypeSpeed     = "speed"     // one alert per track per episode faster than max_speed
	TypeStopped   = "stopped"   // one alert per episode of a track standing still min_duration
)

// allTypes lists every rule type, in the order the documentation gives them.
var allTypes = []string{TypeZone, TypeLine, TypeLoitering, TypeCrowding, TypeWrongWay, TypeSpeed, TypeStopped}

// Line directions, as written in `direction:` and in frame.Alert.Kind and LineCount.Direction.
const (
	AToB = "a_to_b"
	BToA = "b_to_a"
	Both = "both"
)

// Defaults applied by New where a field is left at zero, and limits Validate enforces.
const (
	DefaultHysteresis   = 0.01                   // line: normalised distance past the line
	DefaultMinFrames    = 1                      // line: frames on the new side
	DefaultSpeedWindow  = 500 * time.Millisecond // speed: time over which speed is measured
	DefaultStillRadius  = 0.02                   // stopped: normalised radius of "not moving"
	MaxPolygonPoints    = 100                    // the most points a polygon may have
	speedEpisodeEndFrac = 0.9                    // speed: an episode ends at or below 90 % of max_speed
)

// Rule is one behaviour rule of one camera. Which fields apply depends on Type; Validate
// rejects a field set for a type it does not apply to.
//
// zone: Polygon (>= 3 points), MinDwell (>= 0). A track that has been inside the polygon for
// MinDwell raises "entered" (Value = seconds inside); when it then leaves, or is removed,
// "left" (Value = seconds inside). A track that leaves before MinDwell raises nothing.
//
// line: A, B, Direction (a_to_b, b_to_a or both; default both), Hysteresis, MinFrames.
// Sides are taken from the directed segment A→B as seen on screen (y down): an a_to_b
// crossing moves the way A→B points once turned 90° clockwise, from the left side of A→B to
// its right side; b_to_a is the opposite way.
//
//	              left side of A→B
//	A ───────────────────────────────▶ B      a_to_b: crossing downwards ↓
//	              right side of A→B           b_to_a: crossing upwards ↑
//
//	A          the same rule for a line drawn downwards:
//	│          a_to_b crosses it from screen-right to screen-left ←
//	▼ B        b_to_a from screen-left to screen-right →
//
// A track is on a side once its position is more than Hysteresis (normalised distance,
// default 0.01) from the infinite line through A and B; nearer, it keeps the side it had. A
// crossing counts when a track that was on one side has been on the other for MinFrames
// consecutive frames (default 1) and its path between the two crosses the segment A-B itself
// (passing around an end does not count). Jitter within the hysteresis band therefore counts
// once at most. Lost tracks never cross; a track that reappears on the other side after being
// lost does.
//
// loitering: Polygon, MinDuration (> 0): one alert (Value = seconds) per track per visit once
// it has been inside for MinDuration.
//
// crowding: Polygon, MinCount (>= 1), MinDuration (> 0), EndAfter (>= 0, default
// MinDuration): "started" once MinCount or more matching objects have been inside for
// MinDuration without interruption; "ended" once fewer than MinCount have been inside for
// EndAfter. Value = the number of objects inside; TrackIDs = those objects.
//
// wrong_way: Polygon (optional; the whole frame when empty), DirectionDeg (required: the
// allowed direction of travel, degrees on screen, 0 = right, 90 = down, 180 = left, 270 =
// up), ToleranceDeg (0 < t <= 90), MinDistance (normalised, > 0). Each time a track inside the
// polygon has moved MinDistance from where the measurement started, the angle between that
// displacement and the allowed direction (0-180°, in pixels so a non-square frame does not
// skew it) is taken: more than 180 − ToleranceDeg is going the wrong way, and raises one alert
// per track (Value = the angle, deg). The measurement then starts again from there.
//
// speed: Polygon (optional), MaxSpeed (> 0), GroundPoints (none, or four), Window (>= 0,
// default 0.5 s). Speed is the distance covered over the last Window (the newest position
// at least Window old to the current one). With GroundPoints, positions are mapped to the
// ground by the homography they define and speed is in m/s; without, it is in source pixels
// per second. Faster than MaxSpeed raises one alert per episode (Value = the speed); the
// episode ends when the speed drops to 90 % of MaxSpeed or below, or the track leaves the
// polygon.
//
// stopped: Polygon (optional), MinDuration (> 0), Radius (normalised, default 0.02). A track
// whose position stays within Radius of where it came to rest for MinDuration raises one
// alert (Value = seconds) per such episode: illegal parking, an abandoned item. Moving beyond
// Radius starts a new episode; a slow mover that keeps leaving the radius never alerts.
//
// Labels filters the tracks a rule sees (case-insensitive); empty means every label.
type Rule struct {
	ID     string   `yaml:"id"`     // unique per camera, [A-Za-z0-9_.-]
	Type   string   `yaml:"type"`   // zone, line, loitering, crowding, wrong_way, speed, stopped
	Labels []string `yaml:"labels"` // empty: all

	Polygon []Point `yaml:"polygon"` // zone, loitering, crowding; optional for wrong_way, speed, stopped

	MinDwell time.Duration `yaml:"min_dwell"` // zone

	A          *Point  `yaml:"a"`          // line
	B          *Point  `yaml:"b"`          // line
	Direction  string  `yaml:"direction"`  // line: a_to_b, b_to_a, both (default)
	Hysteresis float64 `yaml:"hysteresis"` // line: normalised, default 0.01
	MinFrames  int     `yaml:"min_frames"` // line: default 1

	MinDuration time.Duration `yaml:"min_duration"` // loitering, crowding, stopped
	MinCount    int           `yaml:"min_count"`    // crowding
	EndAfter    time.Duration `yaml:"end_after"`    // crowding: default min_duration

	DirectionDeg *float64 `yaml:"direction_deg"` // wrong_way: allowed direction, 0 = right, 90 = down
	ToleranceDeg float64  `yaml:"tolerance_deg"` // wrong_way
	MinDistance  float64  `yaml:"min_distance"`  // wrong_way: normalised

	MaxSpeed     float64       `yaml:"max_speed"`     // speed: m/s with ground_points, else px/s
	GroundPoints []GroundPoint `yaml:"ground_points"` // speed: four image→ground pairs
	Window       time.Duration `yaml:"window"`        // speed: default 0.5 s

	Radius float64 `yaml:"radius"` // stopped: normalised, default 0.02
}

// Point is a position: normalised image coordinates (0-1, x right, y down) in rules, metres
// on the ground in GroundPoint.Ground. In YAML it is written [x, y] or {x: .., y: ..}.
type Point struct {
	X float64 `yaml:"x"`
	Y float64 `yaml:"y"`
}

// GroundPoint pairs a point of the image (normalised) with where it lies on the ground, in
// metres in any flat frame of reference (e.g. metres east and north of a corner).
type GroundPoint struct {
	Image  Point `yaml:"image"`
	Ground Point `yaml:"ground"`
}

// UnmarshalYAML reads [x, y] or {x: .., y: ..}.
func (p *Point) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.SequenceNode:
		var xy []float64
		if err := n.Decode(&xy); err != nil {
			return fmt.Errorf("point: %w", err)
		}
		if len(xy) != 2 {
			return fmt.Errorf("line %d: a point is [x, y], got %d numbers", n.Line, len(xy))
		}
		p.X, p.Y = xy[0], xy[1]
		return nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			var dst *float64
			switch k.Value {
			case "x":
				dst = &p.X
			case "y":
				dst = &p.Y
			default:
				return fmt.Errorf("line %d: field %s not found in a point (want x, y)", k.Line, k.Value)
			}
			if err := v.Decode(dst); err != nil {
				return fmt.Errorf("point %s: %w", k.Value, err)
			}
		}
		return nil
	}
	return fmt.Errorf("line %d: a point is [x, y]", n.Line)
}

// MarshalYAML writes [x, y].
func (p Point) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, v := range []float64{p.X, p.Y} {
		var c yaml.Node
		if err := c.Encode(v); err != nil {
			return nil, err
		}
		n.Content = append(n.Content, &c)
	}
	return n, nil
}

func (p Point) String() string { return fmt.Sprintf("(%g, %g)", p.X, p.Y) }

func (p Point) finite() bool {
	return !math.IsNaN(p.X) && !math.IsNaN(p.Y) && !math.IsInf(p.X, 0) && !math.IsInf(p.Y, 0)
}

func (p Point) normalised() bool { return p.X >= 0 && p.X <= 1 && p.Y >= 0 && p.Y <= 1 }

// RuleError is one problem of one rule, naming it by index and id:
// rules[1] "gate": polygon self-intersects. Validate and New join one per problem.
type RuleError struct {
	Index   int    // in the camera's list of rules
	ID      string // the rule's id, as written
	Problem string // what is wrong, lower case
}

func (e *RuleError) Error() string { return fmt.Sprintf("rules[%d] %q: %s", e.Index, e.ID, e.Problem) }
