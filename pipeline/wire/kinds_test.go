package wire_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

func TestMessageIDRoundTrip(t *testing.T) {
	for _, dev := range []string{"edge-01", "a", "x-y-z"} {
		id := wire.MessageID(dev, "0a1b2c", 42)
		epoch, err := wire.ParseMessageID(id, dev, 42)
		if err != nil || epoch != "0a1b2c" {
			t.Fatalf("%s: epoch %q, %v", id, epoch, err)
		}
	}
	for _, c := range []struct {
		id, dev string
		seq     uint64
	}{
		{"edge-01-abc-7", "edge-01", 8},  // wrong seq
		{"edge-02-abc-7", "edge-01", 7},  // another device
		{"edge-01-7", "edge-01", 7},      // no epoch
		{"edge-01-a/b-7", "edge-01", 7},  // bad epoch
		{"edge-01-abc-7", "edge-01", 0},  // no seq
		{"edge-01abc-7", "edge-01", 7},   // no separator
		{"edge-01--7", "edge-01", 7},     // empty epoch
		{"edge-01-abc-07", "edge-01", 7}, // not the canonical number
	} {
		if _, err := wire.ParseMessageID(c.id, c.dev, c.seq); err == nil {
			t.Errorf("%q (device %s, seq %d) accepted", c.id, c.dev, c.seq)
		}
	}
}

// TestOutgoing checks that the outbox entry of every kind a device stores takes its class and
// topic from the table, carries a complete header and matches the kind's JSON Schema.
func TestOutgoing(t *testing.T) {
	dev := wire.Device{ID: "edge-01", Epoch: "e1"}
	at := time.Date(2025, 11, 22, 17, 0, 0, 0, time.UTC)
	end := at.Add(time.Second)
	state := frame.EventState{ID: "01KAMX3Q8R0000000000000001", TrackID: 3, Label: "person", TopScore: 0.9, Score: 0.8,
		Start: at, LastSeen: at, Box: models.Box{X1: 10, Y1: 20, X2: 50, Y2: 120}, FrameWidth: 640, FrameHeight: 480,
		Geo: frame.Geo{OK: true, Lat: 47.1, Lon: 8.5, ErrM: 3}}
	ended := state
	ended.End, ended.Geo, ended.GeoStatus = end, frame.Geo{}, wire.GeoStale
	cases := []struct {
		msg    wire.Message
		schema string
		class  frame.Class
		topic  string
	}{
		{wire.NewDetections(frame.Detections{Camera: "gate", FrameSeq: 3, CapturedAt: at, Width: 640, Height: 480,
			Model:   frame.ModelInfo{Name: "yolox", Version: "1"},
			Objects: []models.Detection{{Label: "person", Score: 0.91234, Box: models.Box{X1: 1, Y1: 2, X2: 30, Y2: 40}}}}),
			"detections", frame.ClassDetections, "vigil/v1/edge-01/detections/gate"},
		{wire.NewEvent(frame.EventChange{Camera: "gate", Type: wire.EventNew, At: at, After: state}),
			"event", frame.ClassEvent, "vigil/v1/edge-01/events/gate"},
		{wire.NewEvent(frame.EventChange{Camera: "gate", Type: wire.EventUpdate, At: at, Before: &state, After: state}),
			"event", frame.ClassEventUpdate, "vigil/v1/edge-01/events/gate"},
		{wire.NewEvent(frame.EventChange{Camera: "gate", Type: wire.EventEnd, At: end, Before: &state, After: ended}),
			"event", frame.ClassEvent, "vigil/v1/edge-01/events/gate"},
		{wire.NewAlert(frame.Alert{Camera: "gate", RuleID: "door", RuleType: "zone", Kind: "entered", TrackIDs: []uint64{3},
			Label: "person", At: at, ID: "01KAMX3Q8R0000000000000002", EventIDs: []string{state.ID}, SnapshotOf: state.ID}),
			"alert", frame.ClassAlert, "vigil/v1/edge-01/alerts/gate"},
		{wire.NewTelemetry(at, wire.Telemetry{UptimeS: 5, Cameras: []wire.CameraTelemetry{{ID: "gate", State: "streaming"}}}),
			"telemetry", frame.ClassTelemetry, "vigil/v1/edge-01/telemetry"},
		{wire.NewCmdResult(at, wire.CmdResult{CmdID: "c1", Name: wire.CmdModelUpdate, State: wire.CmdAccepted}),
			"cmd_result", frame.ClassEvent, "vigil/v1/edge-01/cmd_result/model_update"},
	}
	for _, c := range cases {
		out := dev.Outgoing(c.msg)
		if out.Class != c.class || out.Topic != c.topic || !out.CapturedAt.Equal(c.msg.At()) {
			t.Errorf("%s: class %v topic %s at %v", c.schema, out.Class, out.Topic, out.CapturedAt)
		}
		b, err := out.Build(9)
		if err != nil {
			t.Fatal(err)
		}
		testharness.MustValidateJSON(t, c.schema, b)
		var h wire.Header
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatal(err)
		}
		spec, _ := wire.Lookup(c.msg.Kind())
		if h.Schema != spec.Schema || h.DeviceID != "edge-01" || h.Seq != 9 || h.MsgID != "edge-01-e1-9" ||
			h.CapturedAt != c.msg.At().UnixMilli() {
			t.Errorf("%s: header %+v", c.schema, h)
		}
		if c.schema == "event" && strings.Contains(string(b), `"type":"new"`) && !strings.Contains(string(b), `"lat":47.1`) {
			t.Errorf("event lost its geo: %s", b)
		}
		if c.schema == "event" && strings.Contains(string(b), `"type":"end"`) &&
			(!strings.Contains(string(b), `"geo_status":"stale"`) || strings.Count(string(b), `"lat"`) != 1) {
			t.Errorf("ended event: want geo_status on after and geo only on before: %s", b)
		}
	}
}

// TestTable checks that every row is complete and unique.
func TestTable(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range wire.Kinds() {
		if s.Kind == "" || seen[s.Kind] || !wire.ValidID(s.Kind) {
			t.Errorf("kind %q empty, repeated or not a topic level", s.Kind)
		}
		seen[s.Kind] = true
		if !s.Binary && (s.Schema == "" || s.File == "") {
			t.Errorf("%s: a JSON kind needs a schema name and a schema file", s.Kind)
		}
		if s.Sequenced && s.From != wire.FromDevice {
			t.Errorf("%s: only device kinds go through the outbox", s.Kind)
		}
	}
}

// TestOutgoingPicture checks the picture kinds' rows: class, topic (with the event id for a
// snapshot) and a payload DecodePicture reads back with the complete header.
func TestOutgoingPicture(t *testing.T) {
	dev := wire.Device{ID: "edge-01", Epoch: "e1"}
	at := time.Date(2025, 11, 22, 17, 0, 0, 0, time.UTC)
	jpeg := []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x02, 0xFF, 0xD9} // SOI, an empty APP0, EOI
	for _, c := range []struct {
		p            wire.Picture
		topic        string
		schema, kind string
	}{
		{wire.Picture{Camera: "gate", EventID: "01KAMX3Q8R0000000000000001"}, "vigil/v1/edge-01/snapshots/gate/01KAMX3Q8R0000000000000001",
			wire.SchemaSnapshot, wire.KindSnapshots},
		{wire.Picture{Camera: "gate", CmdID: "c1"}, "vigil/v1/edge-01/live/gate", wire.SchemaLiveView, wire.KindLive},
	} {
		out := dev.Outgoing(wire.NewPicture(at, c.p, jpeg))
		if out.Class != frame.ClassSnapshot || out.Topic != c.topic {
			t.Errorf("%s: class %v topic %s", c.kind, out.Class, out.Topic)
		}
		b, err := out.Build(4)
		if err != nil {
			t.Fatal(err)
		}
		p, err := wire.DecodePicture(b, 0)
		if err != nil || p.Schema != c.schema || p.MsgID != "edge-01-e1-4" || p.Seq != 4 || p.Camera != "gate" || p.CapturedAt != at.UnixMilli() {
			t.Errorf("%s: %+v, %v", c.kind, p, err)
		}
	}
}
