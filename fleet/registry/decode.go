package registry

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Reasons a message is rejected; each is a key of [Registry.Rejected].
const (
	ReasonBadTopic       = "bad_topic"        // not vigil/v1/<device>/<kind>[/<camera>], or a bad id in it
	ReasonUnknownKind    = "unknown_kind"     // a kind the registry does not read
	ReasonBadJSON        = "bad_json"         // the payload is not the kind's JSON object
	ReasonWrongSchema    = "wrong_schema"     // schema is not the kind's schema name
	ReasonBadHeader      = "bad_header"       // msg_id missing or too long
	ReasonDeviceMismatch = "device_mismatch"  // device_id differs from the topic's device
	ReasonCameraMismatch = "camera_mismatch"  // camera differs from the topic's camera
	ReasonBadState       = "bad_state"        // status state is neither online nor offline
	ReasonTooManyDevices = "too_many_devices" // the registry is full
	ReasonTooManyCameras = "too_many_cameras" // the device has too many cameras
)

// maxMsgIDLen bounds the memory the duplicate filter holds per remembered message.
const maxMsgIDLen = 128

// RejectError says why a message was rejected.
type RejectError struct {
	Reason string // one of the Reason constants
	Err    error
}

func (e *RejectError) Error() string { return e.Reason + ": " + e.Err.Error() }

func (e *RejectError) Unwrap() error { return e.Err }

func reject(reason, format string, args ...any) error {
	return &RejectError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// message is one decoded, checked message: exactly one of status or detections is set.
type message struct {
	device     string
	kind       string
	camera     string
	header     wire.Header
	status     *wire.Status
	detections *wire.Detections
}

// decode parses and checks one MQTT message. Errors are *RejectError.
func decode(topic string, payload []byte) (message, error) {
	device, kind, camera, err := wire.ParseTopic(topic)
	if err != nil {
		return message{}, &RejectError{Reason: ReasonBadTopic, Err: err}
	}
	if !wire.ValidID(device) {
		return message{}, reject(ReasonBadTopic, "topic %q: invalid device id", topic)
	}
	m := message{device: device, kind: kind, camera: camera}
	switch kind {
	case wire.KindStatus:
		if camera != "" {
			return message{}, reject(ReasonBadTopic, "topic %q: status has no camera level", topic)
		}
		var s wire.Status
		if err := unmarshal(payload, &s); err != nil {
			return message{}, err
		}
		if err := checkHeader(s.Header, wire.SchemaStatus, device); err != nil {
			return message{}, err
		}
		if s.State != wire.StateOnline && s.State != wire.StateOffline {
			return message{}, reject(ReasonBadState, "state %q", s.State)
		}
		m.header, m.status = s.Header, &s
	case wire.KindDetections:
		if !wire.ValidID(camera) {
			return message{}, reject(ReasonBadTopic, "topic %q: invalid camera id", topic)
		}
		var d wire.Detections
		if err := unmarshal(payload, &d); err != nil {
			return message{}, err
		}
		if err := checkHeader(d.Header, wire.SchemaDetections, device); err != nil {
			return message{}, err
		}
		if d.Camera != camera {
			return message{}, reject(ReasonCameraMismatch, "camera %q on topic camera %q", d.Camera, camera)
		}
		m.header, m.detections = d.Header, &d
	default:
		return message{}, reject(ReasonUnknownKind, "kind %q", kind)
	}
	return m, nil
}

func unmarshal(payload []byte, v any) error {
	if err := json.Unmarshal(payload, v); err != nil {
		return &RejectError{Reason: ReasonBadJSON, Err: err}
	}
	return nil
}

func checkHeader(h wire.Header, schema, device string) error {
	if h.Schema != schema {
		return reject(ReasonWrongSchema, "schema %q, want %q", h.Schema, schema)
	}
	if h.DeviceID != device {
		return reject(ReasonDeviceMismatch, "device_id %q on topic device %q", h.DeviceID, device)
	}
	if h.MsgID == "" {
		return &RejectError{Reason: ReasonBadHeader, Err: errors.New("msg_id is missing")}
	}
	if len(h.MsgID) > maxMsgIDLen {
		return reject(ReasonBadHeader, "msg_id is %d bytes, more than %d", len(h.MsgID), maxMsgIDLen)
	}
	return nil
}
