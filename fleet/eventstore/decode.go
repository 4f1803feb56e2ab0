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

// Decode makes a record of one MQTT message received at receivedAt. ok is false for a kind
// that is not stored (status, telemetry). The message is expected to have passed the
// registry's checks; Decode reads only what the record needs.
func Decode(topic string, payload []byte, receivedAt time.Time) (_ Record, ok bool, _ error) {
	device, tkind, camera, err := wire.ParseTopic(topic)
	if err != nil {
		return Record{}, false, err
	}
	kind, ok := topicKinds[tkind]
	if !ok {
		return Record{}, false, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, payload); err != nil {
		return Record{}, false, fmt.Errorf("%s: %w", topic, err)
	}
	r := Record{Kind: kind, Device: device, Camera: camera, ReceivedAt: receivedAt.UTC(), Payload: buf.Bytes()}
	var h wire.Header
	switch kind {
	case KindEvent:
		var e wire.Event
		err = json.Unmarshal(payload, &e)
		h, r.EventID = e.Header, e.After.ID
		r.Labels = appendLabel(r.Labels, e.After.Label)
	case KindAlert:
		var a wire.Alert
		err = json.Unmarshal(payload, &a)
		h, r.RuleID, r.AlertID = a.Header, a.RuleID, a.AlertID
		if len(a.EventIDs) > 0 {
			r.EventID = a.EventIDs[0]
		}
		r.Labels = appendLabel(r.Labels, a.Label)
	case KindDetections:
		var d wire.Detections
		err = json.Unmarshal(payload, &d)
		h = d.Header
		for _, o := range d.Objects {
			r.Labels = appendLabel(r.Labels, o.Label)
		}
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("%s: %w", topic, err)
	}
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
