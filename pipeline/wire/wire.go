// Package wire is Vigil's MQTT contract, the one place where agent and fleet meet: topic names,
// the JSON messages on them and one table (kinds.go) that maps each message kind to its schema,
// its outbox class and its topic's shape. The agent encodes its messages here (NewDetections,
// NewEvent, NewAlert, NewTelemetry, NewCmdResult; Device.Outgoing makes the outbox entry and the
// message id); the fleet reads every device message with Decode, which checks it against its
// JSON Schema (docs/schemas, embedded). Of Vigil's packages it imports only pipeline/frame (the
// data it encodes) and docs (the schemas).
//
// Topics live under vigil/v1/<device_id>/. Every message carries schema, device_id, seq,
// msg_id and captured_at (UTC milliseconds since the Unix epoch).
package wire

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Root is the first level of every Vigil topic.
const Root = "vigil/v1"

// Schema names, one per message kind; the suffix is the message's version.
const (
	SchemaDetections = "vigil.detections/1"
	SchemaStatus     = "vigil.status/1"
)

// Message kinds: the topic level after the device id.
const (
	KindStatus     = "status"
	KindDetections = "detections"
)

// Topic builds vigil/v1/<device>/<kind>[/<camera>].
func Topic(device, kind, camera string) string {
	if camera == "" {
		return Root + "/" + device + "/" + kind
	}
	return Root + "/" + device + "/" + kind + "/" + camera
}

// ParseTopic splits a Vigil topic into device, kind and (optional) camera.
func ParseTopic(topic string) (device, kind, camera string, err error) {
	rest, ok := strings.CutPrefix(topic, Root+"/")
	if !ok {
		return "", "", "", fmt.Errorf("topic %q is not under %s/", topic, Root)
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return "", "", "", fmt.Errorf("topic %q: want %s/<device>/<kind>[/<camera>]", topic, Root)
	}
	if len(parts) == 3 {
		camera = parts[2]
	}
	return parts[0], parts[1], camera, nil
}

// ValidID reports whether s may be a device or camera id: 1-64 of [A-Za-z0-9_.-], so it is
// one safe topic level and file name.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return s != "." && s != ".."
}

// Header is the part every message shares.
type Header struct {
	Schema     string `json:"schema"`
	DeviceID   string `json:"device_id"`
	Seq        uint64 `json:"seq"`         // per device, increasing by one per message sent
	MsgID      string `json:"msg_id"`      // unique per message: a consumer drops a repeat
	CapturedAt int64  `json:"captured_at"` // UTC milliseconds since the Unix epoch
	// Replayed is true on a message sent from the backlog after a reconnect rather than live.
	Replayed bool `json:"replayed,omitempty"`
}

// Model names the model that made detections.
type Model struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
}

// Object is one detected object.
type Object struct {
	Label   string     `json:"label"`
	ClassID int        `json:"class_id"`
	Score   float64    `json:"score"`    // 0-1, three decimals
	BoxPx   [4]int     `json:"box_px"`   // x1, y1, x2, y2 in source-frame pixels
	BoxNorm [4]float64 `json:"box_norm"` // x1, y1, x2, y2 divided by the frame's width/height, 0-1
	// Geo is where the object stands on the ground (drone mode); absent when the camera has no
	// optics configured or the object could not be located (Detections.GeoStatus says why).
	Geo *ObjectGeo `json:"geo,omitempty"`
}

// ObjectGeo is the ground point under the bottom centre of an object's box.
type ObjectGeo struct {
	Lat  float64 `json:"lat"`   // WGS-84 degrees, 7 decimals
	Lon  float64 `json:"lon"`   // WGS-84 degrees, 7 decimals
	ErrM float64 `json:"err_m"` // 1-sigma horizontal error radius in metres (holds the point ~65 % of the time)
}

// Reasons an object has no geo, in Detections.GeoStatus.
const (
	GeoNoTelemetry  = "no_telemetry"  // no pose received yet, or none that reaches back to the frame
	GeoStale        = "stale"         // the newest pose is older than drone.max_age (link lost)
	GeoNoFix        = "no_fix"        // the GPS has no 3D fix
	GeoNoGimbal     = "no_gimbal"     // use_gimbal is set but no fresh gimbal attitude came
	GeoAboveHorizon = "above_horizon" // the pixel's ray never meets the ground
	GeoTooFar       = "too_far"       // the ray meets the ground beyond the maximum range
	GeoBelowGround  = "below_ground"  // the camera is at or below the ground altitude
	GeoUncertain    = "uncertain"     // a 1-sigma attitude error would make the ray miss the ground
	GeoInvalid      = "invalid"       // an input was out of range (bad optics or pose)
)

// Detections is the message on vigil/v1/<device>/detections/<camera>: the objects found on
// one frame. A frame with no object of interest sends no message.
type Detections struct {
	Header
	Camera      string   `json:"camera"`
	FrameSeq    uint64   `json:"frame_seq"` // frame number within the camera's run
	FrameWidth  int      `json:"frame_width"`
	FrameHeight int      `json:"frame_height"`
	Model       Model    `json:"model"`
	InferenceMS float64  `json:"inference_ms"`
	Objects     []Object `json:"objects"`
	// GeoStatus, on a camera with optics, says why one or more objects have no geo (the
	// first such object's reason: GeoStale, GeoNoFix, …); absent when all were located.
	GeoStatus string `json:"geo_status,omitempty"`
}

// Status states.
const (
	StateOnline  = "online"
	StateOffline = "offline"
)

// Status is the retained message on vigil/v1/<device>/status: "online" when the agent
// connects, "offline" when it stops cleanly or, through the MQTT last will, when it vanishes.
type Status struct {
	Header
	State   string   `json:"state"`
	Version string   `json:"version,omitempty"`
	Cameras []string `json:"cameras,omitempty"`
	// OutboxLost is set, on every status of the run, when the agent found its outbox file
	// corrupt at start and began a new one (a new epoch): what the old file held is lost.
	OutboxLost *OutboxLost `json:"outbox_lost,omitempty"`
}

// OutboxLost tells that the device's outbox file was corrupt and replaced.
type OutboxLost struct {
	At      int64  `json:"at"`       // UTC ms
	Reason  string `json:"reason"`   // what was wrong with the file
	MovedTo string `json:"moved_to"` // the file's name on the device, kept for inspection
}

func keyID(pub []byte) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}
