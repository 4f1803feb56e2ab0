package wire

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-edge/vigil/pipeline/frame"
)

// Level is what a topic's level after the kind holds.
type Level uint8

// Topic shapes: vigil/v1/<device>/<kind>, …/<kind>/<camera id>, …/<kind>/<command name>,
// …/<kind>/<camera id>/<event id>.
const (
	NoLevel          Level = iota // vigil/v1/<device>/<kind>
	CameraLevel                   // vigil/v1/<device>/<kind>/<camera>; the message's "camera" names it too
	NameLevel                     // vigil/v1/<device>/<kind>/<command name>
	CameraEventLevel              // vigil/v1/<device>/<kind>/<camera>/<event id> (snapshots)
)

// Sender says who publishes a kind.
type Sender uint8

// Senders.
const (
	FromDevice Sender = iota // the agent publishes it; the fleet reads it with Decode
	FromFleet                // the fleet publishes it to one device (commands)
)

// Spec is one row of the contract: a message kind, its schema and its topic's shape.
//
// Adding a kind is one row in kinds (and, for a JSON kind, its Go type and its JSON Schema in
// docs/schemas): Decode, the fleet's reject counters and the agent's outbox all read the row.
type Spec struct {
	Kind   string // the topic level after the device id
	Schema string // the "schema" every message of the kind carries; "" for a binary kind
	// File is the kind's JSON Schema in docs/schemas (embedded), checked by Decode; "" for none.
	File  string
	Level Level
	From  Sender
	// Sequenced kinds go through the agent's outbox: their seq is the device's message counter
	// and their msg_id is MessageID(device, epoch, seq). Status is not sequenced.
	Sequenced bool
	Class     frame.Class // the outbox class (its priority when the outbox is full), sequenced kinds
	Retained  bool        // published with the MQTT retain flag
	// Binary kinds carry a payload that is not JSON (a picture: a JPEG with its header in a
	// comment); Decode checks the payload's shape and its header, not the image.
	Binary bool
	// new returns a pointer to a zero message of the kind, for Decode (JSON kinds).
	new func() any
	// parse reads a binary kind's payload into a pointer to its header type, for Decode.
	parse func(payload []byte) (any, error)
}

// kinds is the table: every message on vigil/v1/<device>/….
var kinds = []Spec{
	{Kind: KindStatus, Schema: SchemaStatus, File: "status.schema.json", Level: NoLevel, From: FromDevice,
		Retained: true, new: func() any { return new(Status) }},
	{Kind: KindDetections, Schema: SchemaDetections, File: "detections.schema.json", Level: CameraLevel, From: FromDevice,
		Sequenced: true, Class: frame.ClassDetections, new: func() any { return new(Detections) }},
	{Kind: KindEvents, Schema: SchemaEvent, File: "event.schema.json", Level: CameraLevel, From: FromDevice,
		Sequenced: true, Class: frame.ClassEvent, new: func() any { return new(Event) }}, // "update": frame.ClassEventUpdate
	{Kind: KindAlerts, Schema: SchemaAlert, File: "alert.schema.json", Level: CameraLevel, From: FromDevice,
		Sequenced: true, Class: frame.ClassAlert, new: func() any { return new(Alert) }},
	{Kind: KindTelemetry, Schema: SchemaTelemetry, File: "telemetry.schema.json", Level: NoLevel, From: FromDevice,
		Sequenced: true, Class: frame.ClassTelemetry, new: func() any { return new(Telemetry) }},
	{Kind: KindCmdResult, Schema: SchemaCmdResult, File: "cmd_result.schema.json", Level: NameLevel, From: FromDevice,
		Sequenced: true, Class: frame.ClassEvent, new: func() any { return new(CmdResult) }},
	{Kind: KindCmd, Schema: SchemaCommand, File: "cmd.schema.json", Level: NameLevel, From: FromFleet,
		new: func() any { return new(SignedCommand) }},
	// Pictures: JPEGs carrying their header (Picture) in a COM segment, see picture.go.
	{Kind: KindSnapshots, Schema: SchemaSnapshot, Level: CameraEventLevel, From: FromDevice,
		Sequenced: true, Class: frame.ClassSnapshot, Binary: true, parse: parsePicture},
	{Kind: KindLive, Schema: SchemaLiveView, Level: CameraLevel, From: FromDevice,
		Sequenced: true, Class: frame.ClassSnapshot, Binary: true, parse: parsePicture},
}

// Lookup returns the row of a kind.
func Lookup(kind string) (Spec, bool) {
	for _, s := range kinds {
		if s.Kind == kind {
			return s, true
		}
	}
	return Spec{}, false
}

// Kinds lists every kind's row, in table order.
func Kinds() []Spec { return append([]Spec(nil), kinds...) }

// DeviceKinds lists the kinds a device publishes (the fleet reads them).
func DeviceKinds() []string {
	var out []string
	for _, s := range kinds {
		if s.From == FromDevice {
			out = append(out, s.Kind)
		}
	}
	return out
}

// MessageID is the msg_id of message seq of a device's outbox epoch: <device>-<epoch>-<seq>.
func MessageID(device, epoch string, seq uint64) string {
	return device + "-" + epoch + "-" + strconv.FormatUint(seq, 10)
}

// StatusMessageID is the msg_id of a status message made at (status is not sequenced):
// <device>-<epoch>-status-<unix nanoseconds>.
func StatusMessageID(device, epoch string, at time.Time) string {
	return device + "-" + epoch + "-status-" + strconv.FormatInt(at.UnixNano(), 10)
}

// ParseMessageID checks that a sequenced message's msg_id is MessageID(device, epoch, seq) and
// returns the epoch. Device ids may contain '-': the seq is cut from the right, and the device
// id from the left.
func ParseMessageID(msgID, device string, seq uint64) (epoch string, err error) {
	if seq == 0 {
		return "", fmt.Errorf("seq is missing")
	}
	rest, ok := strings.CutPrefix(msgID, device+"-")
	i := strings.LastIndexByte(rest, '-')
	if !ok || i < 0 {
		return "", fmt.Errorf("msg_id %q is not <device_id>-<epoch>-<seq>", msgID)
	}
	epoch, s := rest[:i], rest[i+1:]
	if !ValidID(epoch) {
		return "", fmt.Errorf("msg_id %q: invalid epoch", msgID)
	}
	if s != strconv.FormatUint(seq, 10) {
		return "", fmt.Errorf("msg_id %q does not end in seq %d", msgID, seq)
	}
	return epoch, nil
}

// Message is one message a device sends through its outbox, before the outbox numbers it.
// NewDetections, NewEvent, NewAlert, NewTelemetry, NewCmdResult and NewPicture make them.
//
// Call contract: Encode is called once, by the outbox's append, with the message's complete
// header; it must be quick and must not keep h.
type Message interface {
	Kind() string  // the message's row in the table
	Level() string // the topic after the kind: camera id, command name, camera/event id, or "" for none
	At() time.Time // capture time: the header's captured_at
	Encode(h Header) ([]byte, error)
}

// classer is a Message whose outbox class differs from its row's (event updates).
type classer interface{ class() frame.Class }

// Device writes one device's messages for its outbox.
type Device struct {
	ID    string // the device id
	Epoch string // the outbox's epoch, part of every message id
}

// Outgoing is the outbox entry for m: its class and topic from m's row, and a payload built
// once the outbox has given it a seq.
func (d Device) Outgoing(m Message) frame.Outgoing {
	spec, ok := Lookup(m.Kind())
	if !ok || !spec.Sequenced || spec.From != FromDevice {
		panic(fmt.Sprintf("wire: %q is not a kind a device stores in its outbox", m.Kind()))
	}
	class := spec.Class
	if c, ok := m.(classer); ok {
		class = c.class()
	}
	at := m.At()
	return frame.Outgoing{
		Class: class, Topic: Topic(d.ID, spec.Kind, m.Level()), CapturedAt: at,
		Build: func(seq uint64) ([]byte, error) {
			return m.Encode(Header{Schema: spec.Schema, DeviceID: d.ID, Seq: seq,
				MsgID: MessageID(d.ID, d.Epoch, seq), CapturedAt: at.UTC().UnixMilli()})
		},
	}
}
