package wire

import "encoding/json"

// Schemas of the event and alert messages.
const (
	SchemaEvent = "vigil.event/1"
	SchemaAlert = "vigil.alert/1"
)

// Event types: an event is one tracked object's life on one camera.
const (
	EventNew    = "new"    // the object's track was confirmed
	EventUpdate = "update" // something about it changed, or a periodic refresh
	EventEnd    = "end"    // the track was removed; after.end_time is set
)

// Speed units of EventState.SpeedUnit and Alert.Unit.
const (
	UnitPxPerS = "px/s" // source-frame pixels per second (no calibration)
	UnitMPerS  = "m/s"  // metres per second (ground-plane calibration)
)

// SnapshotPrefix is where the agent's HTTP server serves event snapshots:
// SnapshotPrefix + <event id> + ".jpg".
const SnapshotPrefix = "/api/v1/snapshots/"

// SnapshotPath is the snapshot's path on the agent's HTTP server for an event id.
func SnapshotPath(eventID string) string { return SnapshotPrefix + eventID + ".jpg" }

// ValidULID reports whether s is a ULID in canonical form, as event and alert ids are: 26
// characters of Crockford's upper-case base32 (no I, L, O, U), the first at most '7'. Such an
// id is safe as a file name and as a URL path segment.
func ValidULID(s string) bool {
	if len(s) != 26 || s[0] > '7' {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U') {
			return false
		}
	}
	return true
}

// Event is the message on vigil/v1/<device>/events/<camera>: one step in the life of a
// tracked object, Frigate-style. Before is the state last sent for the event (null on "new");
// After is the state now.
type Event struct {
	Header
	Camera string      `json:"camera"`
	Type   string      `json:"type"` // EventNew, EventUpdate, EventEnd
	Before *EventState `json:"before"`
	After  EventState  `json:"after"`
}

// EventState is a tracked object as an event message describes it.
type EventState struct {
	ID        string  `json:"id"` // ULID, stable for the event's life
	TrackID   uint64  `json:"track_id"`
	Label     string  `json:"label"`
	TopScore  float64 `json:"top_score"` // best detection score so far, 0-1
	Score     float64 `json:"score"`     // this frame's score, 0 when the object was not seen on it
	StartTime int64   `json:"start_time"`
	EndTime   *int64  `json:"end_time"` // UTC ms of the last sighting, set on "end" only
	BoxPx     [4]int  `json:"box_px"`   // x1, y1, x2, y2 in source-frame pixels
	// BoxNorm is BoxPx divided by the frame's width and height, 0-1.
	BoxNorm [4]float64 `json:"box_norm"`
	// Zones are the ids of the zone rules the object is in now; EnteredZones every zone it has
	// been in during the event, in the order it first entered them. Never null.
	Zones        []string `json:"zones"`
	EnteredZones []string `json:"entered_zones"`
	Stationary   bool     `json:"stationary"` // it has stood still for a while
	Speed        float64  `json:"speed"`
	SpeedUnit    string   `json:"speed_unit"` // UnitPxPerS or UnitMPerS
	HasSnapshot  bool     `json:"has_snapshot"`
	// Geo (drone mode) is where the object stands on the ground now; when the camera has
	// optics but the object could not be located, GeoStatus says why.
	Geo       *ObjectGeo `json:"geo,omitempty"`
	GeoStatus string     `json:"geo_status,omitempty"`
	// Snapshot is SnapshotPath(ID) when HasSnapshot, else "".
	Snapshot string `json:"snapshot"`
}

// MarshalJSON writes nil zone lists as [] rather than null.
func (s EventState) MarshalJSON() ([]byte, error) {
	type plain EventState
	if s.Zones == nil {
		s.Zones = []string{}
	}
	if s.EnteredZones == nil {
		s.EnteredZones = []string{}
	}
	return json.Marshal(plain(s))
}

// Alert is the message on vigil/v1/<device>/alerts/<camera>: a behaviour rule fired.
type Alert struct {
	Header
	Camera   string `json:"camera"`
	AlertID  string `json:"alert_id"` // ULID
	RuleID   string `json:"rule_id"`
	RuleType string `json:"rule_type"` // zone, line, loitering, crowding, wrong_way, speed, stopped
	// Kind qualifies the firing ("entered", "a_to_b", "started", ...), "" where a rule has one kind.
	Kind string `json:"kind"`
	// EventIDs are the events of TrackIDs' tracks, where known; never null.
	EventIDs []string `json:"event_ids"`
	TrackIDs []uint64 `json:"track_ids"`
	Label    string   `json:"label"` // label of the first track, "" when there is none
	Time     int64    `json:"time"`  // UTC ms of the frame that fired the rule
	Value    float64  `json:"value"` // the measured quantity, 0 when the rule has none
	Unit     string   `json:"unit"`  // "s", "objects", "m/s", "px/s", "deg" or ""
	// Snapshot is the snapshot path of the first of EventIDs that has one, else "".
	Snapshot string `json:"snapshot"`
}

// MarshalJSON writes nil id lists as [] rather than null.
func (a Alert) MarshalJSON() ([]byte, error) {
	type plain Alert
	if a.EventIDs == nil {
		a.EventIDs = []string{}
	}
	if a.TrackIDs == nil {
		a.TrackIDs = []uint64{}
	}
	return json.Marshal(plain(a))
}
