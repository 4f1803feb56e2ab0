package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/vigil-edge/vigil/docs"
)

// Reasons Decode refuses a device message; each is the Reason of a *DecodeError.
const (
	ReasonBadTopic       = "bad_topic"       // not vigil/v1/<device>/<kind>[/<level>], or a bad id in it
	ReasonUnknownKind    = "unknown_kind"    // a kind no device sends
	ReasonTooLarge       = "too_large"       // the payload is larger than MaxPayload
	ReasonBadJSON        = "bad_json"        // the payload is not the kind's JSON object
	ReasonWrongSchema    = "wrong_schema"    // "schema" is not the kind's schema name
	ReasonBadHeader      = "bad_header"      // msg_id missing, too long, or not <device_id>-<epoch>-<seq>
	ReasonDeviceMismatch = "device_mismatch" // device_id differs from the topic's device
	ReasonCameraMismatch = "camera_mismatch" // camera (or command name) differs from the topic's level
	ReasonBadState       = "bad_state"       // status state is neither online nor offline
	ReasonInvalid        = "invalid"         // the message does not match its JSON Schema
	ReasonControlChar    = "control_char"    // a string holds a control or bidi-override character
	ReasonBadPicture     = "bad_picture"     // a picture that is not a JPEG with its vigil header
)

// DecodeReasons lists every reason Decode may give, for metrics that want all their series.
func DecodeReasons() []string {
	return []string{ReasonBadTopic, ReasonUnknownKind, ReasonTooLarge, ReasonBadJSON, ReasonWrongSchema,
		ReasonBadHeader, ReasonDeviceMismatch, ReasonCameraMismatch, ReasonBadState, ReasonInvalid, ReasonControlChar,
		ReasonBadPicture}
}

// MaxPayload bounds a device message Decode accepts.
const MaxPayload = 1 << 20

// maxMsgIDLen bounds a msg_id (a consumer remembers them to drop repeats).
const maxMsgIDLen = 128

// DecodeError says why Decode refused a message.
type DecodeError struct {
	Reason string // one of the Reason constants
	Err    error
}

func (e *DecodeError) Error() string { return e.Reason + ": " + e.Err.Error() }

func (e *DecodeError) Unwrap() error { return e.Err }

func refuse(reason, format string, args ...any) error {
	return &DecodeError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Decoded is one device message that Decode accepted.
type Decoded struct {
	Topic   string
	Payload []byte // as received
	Spec    Spec   // the kind's row
	Device  string // the topic's device id (equal to Header.DeviceID)
	Level   string // the topic after the kind: camera id, command name, <camera>/<event id>; "" for none
	Header  Header // zero for a binary kind
	Epoch   string // a sequenced kind's outbox epoch, from its msg_id
	// Msg is the message: *Status, *Detections, *Event, *Alert, *Telemetry, *CmdResult, or
	// *Picture for the picture kinds (its header; the JPEG is Payload).
	Msg any
}

// Camera is the camera on the message's topic, "" when it has none.
func (d *Decoded) Camera() string {
	switch d.Spec.Level {
	case CameraLevel:
		return d.Level
	case CameraEventLevel:
		camera, _, _ := strings.Cut(d.Level, "/")
		return camera
	}
	return ""
}

// Kind is the message's kind.
func (d *Decoded) Kind() string { return d.Spec.Kind }

// headed is every JSON message: it embeds Header.
type headed interface{ head() Header }

func (h Header) head() Header { return h }

// leveled is a message that names its topic's level (camera or command name).
type leveled interface{ topicLevel() string }

func (d Detections) topicLevel() string { return d.Camera }
func (e Event) topicLevel() string      { return e.Camera }
func (a Alert) topicLevel() string      { return a.Camera }
func (r CmdResult) topicLevel() string  { return r.Name }
func (p Picture) topicLevel() string {
	if p.EventID != "" {
		return p.Camera + "/" + p.EventID
	}
	return p.Camera
}

func parsePicture(payload []byte) (any, error) {
	p, err := DecodePicture(payload, MaxPictureBytes)
	switch {
	case errors.Is(err, ErrPictureSize):
		return nil, &DecodeError{Reason: ReasonTooLarge, Err: err}
	case err != nil:
		return nil, &DecodeError{Reason: ReasonBadPicture, Err: err}
	}
	return &p, nil
}

// splitTopic splits vigil/v1/<device>/<kind>[/<level>…] into the device, the kind and the
// rest.
func splitTopic(topic string) (device, kind, level string, err error) {
	rest, ok := strings.CutPrefix(topic, Root+"/")
	if !ok {
		return "", "", "", fmt.Errorf("topic %q is not under %s/", topic, Root)
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return "", "", "", fmt.Errorf("topic %q: want %s/<device>/<kind>[/…]", topic, Root)
	}
	if len(parts) == 3 {
		level = parts[2]
	}
	return parts[0], parts[1], level, nil
}

// validLevel checks the topic's levels after the kind against the kind's shape.
func validLevel(l Level, level string) bool {
	switch l {
	case NoLevel:
		return level == ""
	case CameraLevel, NameLevel:
		return ValidID(level)
	case CameraEventLevel:
		camera, event, ok := strings.Cut(level, "/")
		return ok && ValidID(camera) && ValidULID(event)
	}
	return false
}

// Decode reads one message a device published on topic, checking, in order: the topic (a
// kind a device sends, valid ids, the kind's topic shape), the size, the JSON, the schema
// name, the header (device id as on the topic, msg_id, the message id of a sequenced kind),
// the topic level against the message's camera or command name, the status state, the
// kind's JSON Schema (docs/schemas), and that no string holds a control character (C0, DEL,
// C1, which include ESC) or a bidi override. A refused message gives a *DecodeError naming
// the reason and the field. Decode is safe for concurrent use.
func Decode(topic string, payload []byte) (*Decoded, error) {
	device, kind, level, err := splitTopic(topic)
	if err != nil {
		return nil, &DecodeError{Reason: ReasonBadTopic, Err: err}
	}
	if !ValidID(device) {
		return nil, refuse(ReasonBadTopic, "topic %q: invalid device id", topic)
	}
	spec, ok := Lookup(kind)
	if !ok || spec.From != FromDevice {
		return nil, refuse(ReasonUnknownKind, "topic %q: kind %q is not one a device sends", topic, kind)
	}
	if !validLevel(spec.Level, level) {
		return nil, refuse(ReasonBadTopic, "topic %q: want %s", topic, topicShape(spec))
	}
	if len(payload) > MaxPayload {
		return nil, refuse(ReasonTooLarge, "%d bytes, more than %d", len(payload), MaxPayload)
	}
	d := &Decoded{Topic: topic, Payload: payload, Spec: spec, Device: device, Level: level}
	var msg any
	if spec.Binary {
		if msg, err = spec.parse(payload); err != nil {
			return nil, err
		}
	} else {
		msg = spec.new()
		if err := json.Unmarshal(payload, msg); err != nil {
			return nil, &DecodeError{Reason: ReasonBadJSON, Err: err}
		}
	}
	h := msg.(headed).head()
	switch {
	case h.Schema != spec.Schema:
		return nil, refuse(ReasonWrongSchema, "schema %q, want %q", h.Schema, spec.Schema)
	case h.DeviceID != device:
		return nil, refuse(ReasonDeviceMismatch, "device_id %q on topic device %q", h.DeviceID, device)
	case h.MsgID == "":
		return nil, refuse(ReasonBadHeader, "msg_id is missing")
	case len(h.MsgID) > maxMsgIDLen:
		return nil, refuse(ReasonBadHeader, "msg_id is %d bytes, more than %d", len(h.MsgID), maxMsgIDLen)
	}
	if spec.Sequenced {
		if d.Epoch, err = ParseMessageID(h.MsgID, device, h.Seq); err != nil {
			return nil, &DecodeError{Reason: ReasonBadHeader, Err: err}
		}
	}
	if l, ok := msg.(leveled); ok && l.topicLevel() != level {
		return nil, refuse(ReasonCameraMismatch, "%s %q on topic %s %q", levelName(spec.Level), l.topicLevel(), levelName(spec.Level), level)
	}
	if s, ok := msg.(*Status); ok && s.State != StateOnline && s.State != StateOffline {
		return nil, refuse(ReasonBadState, "state %q", s.State)
	}
	if spec.Binary {
		err = validateHeader(msg)
	} else {
		err = validate(spec, payload)
	}
	if err != nil {
		return nil, err
	}
	d.Header, d.Msg = h, msg
	return d, nil
}

func levelName(l Level) string {
	switch l {
	case NameLevel:
		return "command name"
	case CameraEventLevel:
		return "camera/event id"
	}
	return "camera"
}

// topicShape is the topic a kind's messages come on, for errors.
func topicShape(s Spec) string {
	t := Root + "/<device>/" + s.Kind
	switch s.Level {
	case CameraLevel:
		t += "/<camera>"
	case NameLevel:
		t += "/<command name>"
	case CameraEventLevel:
		t += "/<camera>/<event id>"
	}
	return t
}

// validateHeader refuses control characters in a binary kind's header (its JSON text).
func validateHeader(msg any) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return &DecodeError{Reason: ReasonBadPicture, Err: err}
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return &DecodeError{Reason: ReasonBadPicture, Err: err}
	}
	return checkStrings(v, "")
}

// validate checks payload against the kind's JSON Schema, then its strings for control
// characters.
func validate(spec Spec, payload []byte) error {
	sch, err := schema(spec.File)
	if err != nil {
		return refuse(ReasonInvalid, "%v", err) // cannot happen: the schemas are embedded and tested
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return &DecodeError{Reason: ReasonBadJSON, Err: err}
	}
	if err := sch.Validate(v); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return refuse(ReasonInvalid, "does not match %s: %s", spec.File, firstCause(ve))
		}
		return refuse(ReasonInvalid, "does not match %s: %v", spec.File, err)
	}
	return checkStrings(v, "")
}

// firstCause is the deepest first error of a validation error, on one line.
func firstCause(ve *jsonschema.ValidationError) string {
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	return fmt.Sprintf("at /%s: %s", strings.Join(ve.InstanceLocation, "/"), ve.ErrorKind.LocalizedString(printer))
}

var printer = message.NewPrinter(language.English)

// checkStrings refuses a control or bidi-override character in any string of v (a value of
// jsonschema.UnmarshalJSON); "reason" fields, free text, may hold tabs and line feeds.
func checkStrings(v any, path string) error {
	switch x := v.(type) {
	case string:
		free := strings.HasSuffix(path, "/reason")
		for i, r := range x {
			if free && (r == '\t' || r == '\n') {
				continue
			}
			if Unsafe(r) {
				return refuse(ReasonControlChar, "%s: character U+%04X at byte %d", cmpPath(path), r, i)
			}
		}
	case map[string]any:
		for k, e := range x {
			if err := checkStrings(e, path+"/"+k); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := checkStrings(e, fmt.Sprintf("%s/%d", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func cmpPath(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// Unsafe reports whether r must not reach a terminal or a page from a device: a C0 control
// (which includes ESC), DEL, a C1 control, a bidi embedding, override or isolate (U+202A-E,
// U+2066-9), a direction mark (U+200E, U+200F, U+061C), or an invalid encoding.
func Unsafe(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	case r == utf8.RuneError:
		return true
	}
	return false
}

// schemas compiles each embedded JSON Schema once.
var (
	schemaMu sync.Mutex
	compiled = map[string]*jsonschema.Schema{}
)

// schemaBase is the $id prefix of the schemas in docs/schemas.
const schemaBase = "https://vigil.example/schemas/"

func schema(file string) (*jsonschema.Schema, error) {
	schemaMu.Lock()
	defer schemaMu.Unlock()
	if s, ok := compiled[file]; ok {
		return s, nil
	}
	b, err := fs.ReadFile(docs.Schemas, "schemas/"+file)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", file, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", file, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schemaBase+file, doc); err != nil {
		return nil, fmt.Errorf("schema %s: %w", file, err)
	}
	s, err := c.Compile(schemaBase + file)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", file, err)
	}
	compiled[file] = s
	return s, nil
}
