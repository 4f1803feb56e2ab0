package frame

import (
	"time"

	"github.com/vigil-edge/vigil/models"
)

// TrackState is where a track is in its life.
type TrackState int

// Track states: a track starts tentative, is confirmed after enough hits, is lost while it goes
// unmatched, and is removed when lost for too long (its last appearance in Tracks).
const (
	Tentative TrackState = iota
	Confirmed
	Lost
	Removed
)

func (s TrackState) String() string {
	switch s {
	case Tentative:
		return "tentative"
	case Confirmed:
		return "confirmed"
	case Lost:
		return "lost"
	case Removed:
		return "removed"
	}
	return "unknown"
}

// Track is one object followed across frames of one camera.
type Track struct {
	ID        uint64 // stable for the track's life; unique within the camera's run, from 1
	Label     string
	ClassID   int
	State     TrackState
	Box       models.Box // current estimate, source-frame pixels
	Score     float32    // score of the detection matched on this frame (0 when unmatched)
	TopScore  float32    // best score over the track's life
	Matched   bool       // a detection was matched to the track on this frame
	Hits      int        // frames with a matched detection
	FirstSeen time.Time  // capture time of the first matched detection
	LastSeen  time.Time  // capture time of the last matched detection
	// VX, VY is the box centre's velocity in source pixels per second (Kalman estimate).
	VX, VY float32
}

// BottomCenter is the middle of the box's bottom edge (where an object meets the ground), in pixels.
func (t Track) BottomCenter() (x, y float32) {
	return (t.Box.X1 + t.Box.X2) / 2, t.Box.Y2
}

// Tracks is the tracker's output for one detected frame: every track that is not tentative,
// including those removed on this frame (for the last time).
type Tracks struct {
	Camera     string
	FrameSeq   uint64
	PTS        time.Duration
	CapturedAt time.Time
	Width      int
	Height     int
	Tracks     []Track
}

// Alert is a behaviour rule firing.
type Alert struct {
	Camera   string
	RuleID   string
	RuleType string // zone, line, loitering, crowding, wrong_way, speed, stopped
	// Kind qualifies the firing: "entered"/"left" for zones, "a_to_b"/"b_to_a" for lines,
	// "started"/"ended" for crowding, "" where the rule has one kind of alert.
	Kind     string
	TrackIDs []uint64
	Label    string // label of the (first) track
	At       time.Time
	// Value is the measured quantity where the rule has one: seconds of dwell or of standing
	// still, number of objects, speed (m/s if calibrated, else px/s), angle off the allowed direction.
	Value float64
	Unit  string // "s", "objects", "m/s", "px/s", "deg"
	// Set by the events stage (events.Manager.Identify) before the alert is sent:
	ID         string   // the alert's ULID
	EventIDs   []string // the events of TrackIDs' tracks, where known
	SnapshotOf string   // the first of EventIDs that has a snapshot, else ""
}

// EventState is a tracked object's event as it stands after one frame (pipeline/events).
type EventState struct {
	ID       string // ULID, stable for the event
	TrackID  uint64
	Label    string
	TopScore float32   // best detection score over the event
	Score    float32   // this frame's score; 0 when the track was not matched on it
	Start    time.Time // first sighting
	LastSeen time.Time // last sighting
	End      time.Time // set on "end" only (the last sighting)
	Box      models.Box
	// FrameWidth, FrameHeight are the source frame's size, for normalised boxes.
	FrameWidth, FrameHeight int
	// Zones the object is in now; EnteredZones every zone it has been in, in order of entry.
	Zones, EnteredZones []string
	Stationary          bool
	Speed               float64
	SpeedUnit           string
	HasSnapshot         bool // a best frame was reported (see events.Manager.NoSnapshot)
	// Geo is where the object stands on the ground (drone mode, set by the agent); when it is
	// not OK on a camera with optics, GeoStatus says why.
	Geo       Geo
	GeoStatus string
}

// EventChange is one message's worth of an event's life.
type EventChange struct {
	Camera string
	Type   string      // "new", "update" or "end" (pipeline/wire's EventNew, EventUpdate, EventEnd)
	At     time.Time   // capture time of the frame that made the change
	Before *EventState // the state last sent; nil for "new"
	After  EventState
}
