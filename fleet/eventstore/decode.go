package eventstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// topicKinds maps a topic's kind level to the record kind; other kinds are not stored.
var topicKinds = map[string]string{
	wire.KindEvents:     KindEvent,
	wire.KindAlerts:     KindAlert,
	wire.KindDetections: KindDetections,
}

// Decode makes a record of one decoded message (wire.Decode) received at receivedAt. ok is
// false for a kind that is not stored (status, telemetry, command results).
func Decode(m *wire.Decoded, receivedAt time.Time) (_ Record, ok bool, _ error) {
	kind, ok := topicKinds[m.Kind()]
	if !ok {
		return Record{}, false, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, m.Payload); err != nil {
		return Record{}, false, fmt.Errorf("%s: %w", m.Topic, err)
	}
	r := Record{Kind: kind, Device: m.Device, Camera: m.Camera(), ReceivedAt: receivedAt.UTC(), Payload: buf.Bytes()}
	switch v := m.Msg.(type) {
	case *wire.Event:
		r.EventID = v.After.ID
		r.Labels = appendLabel(r.Labels, v.After.Label)
	case *wire.Alert:
		r.RuleID, r.AlertID = v.RuleID, v.AlertID
		if len(v.EventIDs) > 0 {
			r.EventID = v.EventIDs[0]
		}
		r.Labels = appendLabel(r.Labels, v.Label)
	case *wire.Detections:
		for _, o := range v.Objects {
			r.Labels = appendLabel(r.Labels, o.Label)
		}
	default:
		return Record{}, false, fmt.Errorf("%s: a %s message holds %T", m.Topic, m.Kind(), m.Msg)
	}
	h := m.Header
	r.MsgID, r.Seq, r.CapturedAt = h.MsgID, h.Seq, h.CapturedAt
	if r.Labels == nil {
		r.Labels = []string{}
	}
	return r, true, nil
}

func appendLabel(labels []string, l string) []string {
	if l == "" || slices.Contains(labels, l) {
		return labels
	}
	return append(labels, l)
}
