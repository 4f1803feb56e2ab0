package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Pictures: event snapshots and live views travel as JPEG files whose header sits in the
// JPEG itself, so that a consumer that only wants the picture can save the payload as it is,
// and one that wants the header finds it without MQTT v5 user properties (paho speaks 3.1.1):
//
//	FF D8                 SOI, as every JPEG starts
//	FF FE <len:2 BE>      a COM (comment) segment; len counts itself and the text
//	<text>                the header: one JSON object (Picture), at most MaxPictureHeader bytes
//	…                     the rest of the JPEG, from the segment after its own SOI
//
// Any JPEG decoder skips the comment: the payload is a valid JPEG file.

// Schemas of the picture messages.
const (
	SchemaSnapshot = "vigil.snapshot/1" // an event's best frame
	SchemaLiveView = "vigil.live/1"     // a camera's current frame, on a live_view command
)

// Kinds of the picture messages (topic levels).
const (
	// KindSnapshots: vigil/v1/<device>/snapshots/<camera>/<event id>.
	KindSnapshots = "snapshots"
	// KindLive: vigil/v1/<device>/live/<camera>, the answer to a CmdLiveView.
	KindLive = "live"
)

// CmdLiveView asks the agent for one camera's current frame (Command.Camera names it).
const CmdLiveView = "live_view"

// MaxPictureHeader bounds a picture's header text.
const MaxPictureHeader = 4096

// MaxPictureBytes bounds a picture message: the fleet refuses larger ones.
const MaxPictureBytes = 1 << 20

// Picture is the header of a snapshot or live-view JPEG.
type Picture struct {
	Header
	Camera  string `json:"camera"`
	EventID string `json:"event_id,omitempty"` // snapshots: the event's id (ULID)
	CmdID   string `json:"cmd_id,omitempty"`   // live views: the command answered
	Width   int    `json:"width"`              // the JPEG's size in pixels
	Height  int    `json:"height"`
}

// Picture errors.
var (
	ErrNotJPEG     = errors.New("picture is not a JPEG (no SOI marker)")
	ErrNoHeader    = errors.New("picture has no vigil header (no COM segment after SOI)")
	ErrBadHeader   = errors.New("picture header is malformed")
	ErrTruncated   = errors.New("picture JPEG is truncated (no EOI marker)")
	ErrPictureSize = errors.New("picture is too large")
)

// SnapshotTopic is vigil/v1/<device>/snapshots/<camera>/<event id>.
func SnapshotTopic(device, camera, eventID string) string {
	return Topic(device, KindSnapshots, camera) + "/" + eventID
}

// ParseSnapshotTopic splits a snapshot topic; ids are checked (ValidID, ValidULID).
func ParseSnapshotTopic(topic string) (device, camera, eventID string, err error) {
	rest, ok := strings.CutPrefix(topic, Root+"/")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 4 || parts[1] != KindSnapshots {
		return "", "", "", fmt.Errorf("topic %q: want %s/<device>/%s/<camera>/<event id>", topic, Root, KindSnapshots)
	}
	if !ValidID(parts[0]) || !ValidID(parts[2]) || !ValidULID(parts[3]) {
		return "", "", "", fmt.Errorf("topic %q: invalid device, camera or event id", topic)
	}
	return parts[0], parts[2], parts[3], nil
}

// EncodePicture returns jpeg with p as its header (see the layout above). jpeg must start
// with SOI; a COM segment it already has right after SOI is kept after the header.
func EncodePicture(p Picture, jpeg []byte) ([]byte, error) {
	if len(jpeg) < 4 || jpeg[0] != 0xFF || jpeg[1] != 0xD8 {
		return nil, ErrNotJPEG
	}
	text, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	if len(text) > MaxPictureHeader {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadHeader, len(text))
	}
	out := make([]byte, 0, len(jpeg)+len(text)+4)
	out = append(out, 0xFF, 0xD8, 0xFF, 0xFE)
	out = binary.BigEndian.AppendUint16(out, uint16(len(text)+2))
	out = append(out, text...)
	return append(out, jpeg[2:]...), nil
}

// DecodePicture reads a picture's header and checks the payload's shape: SOI, the header's
// COM segment, a JSON object in it, and EOI at the end; maxBytes (> 0) bounds the payload.
// It does not decode the image. The picture is the whole payload.
func DecodePicture(payload []byte, maxBytes int) (Picture, error) {
	var p Picture
	if maxBytes > 0 && len(payload) > maxBytes {
		return p, fmt.Errorf("%w: %d bytes, limit %d", ErrPictureSize, len(payload), maxBytes)
	}
	if len(payload) < 2 || payload[0] != 0xFF || payload[1] != 0xD8 {
		return p, ErrNotJPEG
	}
	if len(payload) < 6 || payload[2] != 0xFF || payload[3] != 0xFE {
		return p, ErrNoHeader
	}
	n := int(binary.BigEndian.Uint16(payload[4:6]))
	if n < 2+2 || n-2 > MaxPictureHeader || 6+n-2 > len(payload) {
		return p, fmt.Errorf("%w: comment length %d", ErrBadHeader, n)
	}
	text := payload[6 : 6+n-2]
	if len(text) == 0 || text[0] != '{' {
		return p, fmt.Errorf("%w: not a JSON object", ErrBadHeader)
	}
	if err := json.Unmarshal(text, &p); err != nil {
		return p, fmt.Errorf("%w: %v", ErrBadHeader, err)
	}
	rest := payload[6+n-2:]
	if len(rest) < 4 || rest[0] != 0xFF || !bytes.HasSuffix(rest, []byte{0xFF, 0xD9}) {
		return p, ErrTruncated
	}
	return p, nil
}
