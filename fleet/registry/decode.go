package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Reasons a message is rejected; each is a key of [Registry.Rejected].
const (
	ReasonBadTopic       = "bad_topic"        // not vigil/v1/<device>/<kind>[/<camera>], or a bad id in it
	ReasonUnknownKind    = "unknown_kind"     // a kind the registry does not read
	ReasonBadJSON        = "bad_json"         // the payload is not the kind's JSON object
	ReasonWrongSchema    = "wrong_schema"     // schema is not the kind's schema name
	ReasonBadHeader      = "bad_header"       // msg_id missing, too long, or not <device_id>-<epoch>-<seq>
	ReasonDeviceMismatch = "device_mismatch"  // device_id differs from the topic's device
	ReasonCameraMismatch = "camera_mismatch"  // camera differs from the topic's camera
	ReasonBadState       = "bad_state"        // status state is neither online nor offline
	ReasonTooManyDevices = "too_many_devices" // the registry is full
	ReasonTooManyCameras = "too_many_cameras" // the device has too many cameras
	ReasonStaleEpoch     = "stale_epoch"      // from the device's previous outbox epoch, after the change
	ReasonBadPicture     = "bad_picture"      // a snapshot or live view that is not a JPEG with its vigil header
	ReasonTooLarge       = "too_large"        // a snapshot or live view over wire.MaxPictureBytes
)

// Reasons lists every Reason constant.
func Reasons() []string {
	return []string{ReasonBadTopic, ReasonUnknownKind, ReasonBadJSON, ReasonWrongSchema, ReasonBadHeader,
		ReasonDeviceMismatch, ReasonCameraMismatch, ReasonBadState, ReasonTooManyDevices, ReasonTooManyCameras,
		ReasonStaleEpoch, ReasonBadPicture, ReasonTooLarge}
}

// Kinds lists the message kinds the registry accepts.
func Kinds() []string {
	return []string{wire.KindStatus, wire.KindDetections, KindEvents, KindAlerts, KindTelemetry, wire.KindSnapshots, wire.KindLive}
}

// Kinds that share the device's seq. The registry tracks their seqs (so that they are not taken
// for gaps) and counts them; of events and alerts it reads no further than the header, of
// telemetry (schema wire.SchemaTelemetry) it keeps the newest report, see [Device.Telemetry].
const (
	KindEvents    = "events"    // vigil/v1/<device>/events/<camera>
	KindAlerts    = "alerts"    // vigil/v1/<device>/alerts/<camera>
	KindTelemetry = "telemetry" // vigil/v1/<device>/telemetry
)

// cameraLevel tells, for the header-only kinds, whether their topic has a camera level.
var cameraLevel = map[string]bool{KindEvents: true, KindAlerts: true, KindTelemetry: false}

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

// message is one decoded, checked message: status is set for a status message, detections for
// a detections message; every other kind carries only its header.
type message struct {
	device     string
	kind       string
	camera     string
	header     wire.Header
	epoch      string // from msg_id; "" for status, which is outside the seq sequence
	status     *wire.Status
	detections *wire.Detections
	telemetry  *wire.Telemetry // for a telemetry message whose schema is wire.SchemaTelemetry
}

// decode parses and checks one MQTT message. Errors are *RejectError.
func decode(topic string, payload []byte) (message, error) {
	if strings.HasPrefix(topic, wire.Root+"/") && strings.Count(topic, "/") == 5 {
		return decodeSnapshot(topic, payload)
	}
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
	case KindEvents, KindAlerts, KindTelemetry:
		if cameraLevel[kind] && !wire.ValidID(camera) || !cameraLevel[kind] && camera != "" {
			return message{}, reject(ReasonBadTopic, "topic %q: bad camera level for %s", topic, kind)
		}
		var h wire.Header
		if err := unmarshal(payload, &h); err != nil {
			return message{}, err
		}
		if !strings.HasPrefix(h.Schema, "vigil.") {
			return message{}, reject(ReasonWrongSchema, "schema %q, want vigil.*", h.Schema)
		}
		if err := checkHeader(h, h.Schema, device); err != nil {
			return message{}, err
		}
		m.header = h
		if kind == KindTelemetry && h.Schema == wire.SchemaTelemetry {
			var tm wire.Telemetry
			if err := unmarshal(payload, &tm); err != nil {
				return message{}, err
			}
			m.telemetry = &tm
		}
	case wire.KindLive:
		if !wire.ValidID(camera) {
			return message{}, reject(ReasonBadTopic, "topic %q: invalid camera id", topic)
		}
		p, err := decodePicture(payload, wire.SchemaLiveView, device, camera)
		if err != nil {
			return message{}, err
		}
		m.header = p.Header
	default:
		return message{}, reject(ReasonUnknownKind, "kind %q", kind)
	}
	if kind != wire.KindStatus {
		epoch, err := parseMsgID(m.header, device)
		if err != nil {
			return message{}, err
		}
		m.epoch = epoch
	}
	return m, nil
}

// parseMsgID checks that a sequenced message's msg_id is <device_id>-<epoch>-<seq> with the
// header's seq, and returns the epoch. Device ids may contain '-': the seq is cut from the
// right, and the device id from the left.
func parseMsgID(h wire.Header, device string) (string, error) {
	if h.Seq == 0 {
		return "", &RejectError{Reason: ReasonBadHeader, Err: errors.New("seq is missing")}
	}
	rest, ok := strings.CutPrefix(h.MsgID, device+"-")
	i := strings.LastIndexByte(rest, '-')
	if !ok || i < 0 {
		return "", reject(ReasonBadHeader, "msg_id %q is not <device_id>-<epoch>-<seq>", h.MsgID)
	}
	epoch, seq := rest[:i], rest[i+1:]
	if !wire.ValidID(epoch) {
		return "", reject(ReasonBadHeader, "msg_id %q: invalid epoch", h.MsgID)
	}
	if seq != strconv.FormatUint(h.Seq, 10) {
		return "", reject(ReasonBadHeader, "msg_id %q does not end in seq %d", h.MsgID, h.Seq)
	}
	return epoch, nil
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

// decodeSnapshot reads a snapshot: vigil/v1/<device>/snapshots/<camera>/<event id>.
func decodeSnapshot(topic string, payload []byte) (message, error) {
	device, camera, eventID, err := wire.ParseSnapshotTopic(topic)
	if err != nil {
		return message{}, &RejectError{Reason: ReasonBadTopic, Err: err}
	}
	p, err := decodePicture(payload, wire.SchemaSnapshot, device, camera)
	if err != nil {
		return message{}, err
	}
	if p.EventID != eventID {
		return message{}, reject(ReasonBadHeader, "event_id %q on topic event %q", p.EventID, eventID)
	}
	m := message{device: device, kind: wire.KindSnapshots, camera: camera, header: p.Header}
	if m.epoch, err = parseMsgID(m.header, device); err != nil {
		return message{}, err
	}
	return m, nil
}

// decodePicture checks a picture's payload and header.
func decodePicture(payload []byte, schema, device, camera string) (wire.Picture, error) {
	p, err := wire.DecodePicture(payload, wire.MaxPictureBytes)
	switch {
	case errors.Is(err, wire.ErrPictureSize):
		return p, &RejectError{Reason: ReasonTooLarge, Err: err}
	case err != nil:
		return p, &RejectError{Reason: ReasonBadPicture, Err: err}
	}
	if err := checkHeader(p.Header, schema, device); err != nil {
		return p, err
	}
	if p.Camera != camera {
		return p, reject(ReasonCameraMismatch, "camera %q on topic camera %q", p.Camera, camera)
	}
	return p, nil
}
