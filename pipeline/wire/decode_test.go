package wire_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// sample is one valid message of a kind, as the agent writes it.
type sample struct {
	topic   string
	payload []byte
}

var dev = wire.Device{ID: "edge-01", Epoch: "e1"}

func built(t testing.TB, m wire.Message, seq uint64) sample {
	out := dev.Outgoing(m)
	b, err := out.Build(seq)
	if err != nil {
		t.Fatal(err)
	}
	return sample{out.Topic, b}
}

// tinyJPEG is SOI, an empty APP0 segment and EOI: the shape DecodePicture checks.
var tinyJPEG = []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x02, 0xFF, 0xD9}

func samples(t testing.TB) map[string]sample {
	at := time.Date(2025, 11, 22, 17, 0, 0, 0, time.UTC)
	st := frame.EventState{ID: "01KAMX3Q8R0000000000000001", TrackID: 3, Label: "person", Start: at, LastSeen: at,
		Box: models.Box{X1: 10, Y1: 20, X2: 50, Y2: 120}, FrameWidth: 640, FrameHeight: 480, Zones: []string{"door"}}
	status, _ := json.Marshal(wire.Status{Header: wire.Header{Schema: wire.SchemaStatus, DeviceID: "edge-01", Seq: 4,
		MsgID: wire.StatusMessageID("edge-01", "e1", at), CapturedAt: at.UnixMilli()}, State: wire.StateOnline,
		Version: "1.0", Cameras: []string{"gate"}})
	return map[string]sample{
		"status": {wire.Topic("edge-01", wire.KindStatus, ""), status},
		"detections": built(t, wire.NewDetections(frame.Detections{Camera: "gate", FrameSeq: 3, CapturedAt: at, Width: 640, Height: 480,
			Model:   frame.ModelInfo{Name: "yolox", Version: "1"},
			Objects: []models.Detection{{Label: "person", Score: 0.9, Box: models.Box{X1: 1, Y1: 2, X2: 30, Y2: 40}}}}), 1),
		"events": built(t, wire.NewEvent(frame.EventChange{Camera: "gate", Type: wire.EventNew, At: at, After: st}), 2),
		"alerts": built(t, wire.NewAlert(frame.Alert{Camera: "gate", RuleID: "door", RuleType: "zone", Kind: "entered",
			TrackIDs: []uint64{3}, Label: "person", At: at, ID: "01KAMX3Q8R0000000000000002", EventIDs: []string{st.ID}}), 3),
		"telemetry": built(t, wire.NewTelemetry(at, wire.Telemetry{UptimeS: 5,
			Cameras: []wire.CameraTelemetry{{ID: "gate", State: "streaming"}}}), 4),
		"cmd_result": built(t, wire.NewCmdResult(at, wire.CmdResult{CmdID: "c1", Name: wire.CmdModelUpdate,
			State: wire.CmdFailed, Reason: "download: 404\nsee the log"}), 5),
		"snapshots": built(t, wire.NewPicture(at, wire.Picture{Camera: "gate", EventID: st.ID}, tinyJPEG), 6),
		"live":      built(t, wire.NewPicture(at, wire.Picture{Camera: "gate", CmdID: "c2"}, tinyJPEG), 7),
	}
}

func TestDecodeAcceptsWhatTheAgentWrites(t *testing.T) {
	for kind, s := range samples(t) {
		d, err := wire.Decode(s.topic, s.payload)
		if err != nil {
			t.Errorf("%s: %v\n%s", kind, err, s.payload)
			continue
		}
		if d.Kind() != kind || d.Device != "edge-01" || d.Header.DeviceID != "edge-01" || d.Msg == nil {
			t.Errorf("%s: decoded %+v", kind, d)
		}
		if d.Spec.Sequenced && (d.Epoch != "e1" || d.Header.Seq == 0) {
			t.Errorf("%s: epoch %q seq %d", kind, d.Epoch, d.Header.Seq)
		}
	}
}

// edit returns s with its payload changed by f (on the decoded JSON object).
func edit(t *testing.T, s sample, f func(o map[string]any)) sample {
	t.Helper()
	var o map[string]any
	if err := json.Unmarshal(s.payload, &o); err != nil {
		t.Fatal(err)
	}
	f(o)
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return sample{s.topic, b}
}

func TestDecodeRefuses(t *testing.T) {
	ss := samples(t)
	det, tel, ev, al := ss["detections"], ss["telemetry"], ss["events"], ss["alerts"]
	label := func(s string) func(o map[string]any) {
		return func(o map[string]any) { o["objects"].([]any)[0].(map[string]any)["label"] = s }
	}
	cases := []struct {
		name   string
		s      sample
		reason string
	}{
		{"topic root", sample{"vigil/v2/edge-01/status", ss["status"].payload}, wire.ReasonBadTopic},
		{"device id", sample{"vigil/v1/edge+01/status", ss["status"].payload}, wire.ReasonBadTopic},
		{"device id with ESC", sample{"vigil/v1/edge\x1b01/status", ss["status"].payload}, wire.ReasonBadTopic},
		{"status with a camera level", sample{"vigil/v1/edge-01/status/gate", ss["status"].payload}, wire.ReasonBadTopic},
		{"detections without camera", sample{"vigil/v1/edge-01/detections", det.payload}, wire.ReasonBadTopic},
		{"a fleet kind", sample{"vigil/v1/edge-01/cmd/model_update", []byte(`{}`)}, wire.ReasonUnknownKind},
		{"unknown kind", sample{"vigil/v1/edge-01/gossip", []byte(`{}`)}, wire.ReasonUnknownKind},
		{"too large", sample{det.topic, make([]byte, wire.MaxPayload+1)}, wire.ReasonTooLarge},
		{"not JSON", sample{det.topic, []byte("{")}, wire.ReasonBadJSON},
		{"not an object", sample{det.topic, []byte(`[1]`)}, wire.ReasonBadJSON},
		{"empty", sample{det.topic, nil}, wire.ReasonBadJSON},
		{"schema name", edit(t, det, func(o map[string]any) { o["schema"] = "vigil.detections/2" }), wire.ReasonWrongSchema},
		{"device mismatch", edit(t, det, func(o map[string]any) { o["device_id"] = "edge-02" }), wire.ReasonDeviceMismatch},
		{"no msg_id", edit(t, det, func(o map[string]any) { delete(o, "msg_id") }), wire.ReasonBadHeader},
		{"msg_id of another seq", edit(t, det, func(o map[string]any) { o["msg_id"] = "edge-01-e1-2" }), wire.ReasonBadHeader},
		{"camera mismatch", sample{"vigil/v1/edge-01/detections/yard", det.payload}, wire.ReasonCameraMismatch},
		{"command name mismatch", sample{"vigil/v1/edge-01/cmd_result/model_rollback", ss["cmd_result"].payload}, wire.ReasonCameraMismatch},
		{"status state", edit(t, ss["status"], func(o map[string]any) { o["state"] = "sleeping" }), wire.ReasonBadState},
		{"telemetry cameras [null]", edit(t, tel, func(o map[string]any) { o["cameras"] = []any{nil} }), wire.ReasonInvalid},
		{"unknown field", edit(t, det, func(o map[string]any) { o["extra"] = 1 }), wire.ReasonInvalid},
		{"score above 1", edit(t, det, func(o map[string]any) { o["objects"].([]any)[0].(map[string]any)["score"] = 7 }), wire.ReasonInvalid},
		{"event without after", edit(t, ev, func(o map[string]any) { delete(o, "after") }), wire.ReasonInvalid},
		{"label with ESC", edit(t, det, label("person\x1b[2J")), wire.ReasonControlChar},
		{"label with OSC 52", edit(t, det, label("\x1b]52;c;ZWNobyBoaQ==\x07")), wire.ReasonControlChar},
		{"label with C1 CSI", edit(t, det, label("a\u009b31m")), wire.ReasonControlChar},
		{"label with DEL", edit(t, det, label("a\x7f")), wire.ReasonControlChar},
		{"label with a bidi override", edit(t, det, label("gpj.\u202eexe")), wire.ReasonControlChar},
		{"label with an isolate", edit(t, det, label("a\u2066b")), wire.ReasonControlChar},
		{"rule id with a newline", edit(t, al, func(o map[string]any) { o["rule_id"] = "door\nfake log line" }), wire.ReasonControlChar},
		{"event label with NUL", edit(t, ev, func(o map[string]any) { o["after"].(map[string]any)["label"] = "a\x00" }), wire.ReasonControlChar},
		{"zone with ESC", edit(t, ev, func(o map[string]any) { o["after"].(map[string]any)["zones"] = []any{"\x1b[1m"} }), wire.ReasonControlChar},
		{"model name with ESC", edit(t, tel, func(o map[string]any) {
			o["model"] = map[string]any{"name": "m\x1b", "version": "1", "sha256": ""}
		}), wire.ReasonControlChar},
		{"status version with ESC", edit(t, ss["status"], func(o map[string]any) { o["version"] = "1\x1b[0m" }), wire.ReasonControlChar},
		{"reason with ESC", edit(t, ss["cmd_result"], func(o map[string]any) { o["reason"] = "x\x1b[31m" }), wire.ReasonControlChar},
		{"snapshot not a JPEG", sample{ss["snapshots"].topic, []byte("GIF89a")}, wire.ReasonBadPicture},
		{"snapshot of another event", sample{"vigil/v1/edge-01/snapshots/gate/01KAMX3Q8R0000000000000009", ss["snapshots"].payload}, wire.ReasonCameraMismatch},
		{"snapshot topic without event", sample{"vigil/v1/edge-01/snapshots/gate", ss["snapshots"].payload}, wire.ReasonBadTopic},
		{"snapshot with a bad event id", sample{"vigil/v1/edge-01/snapshots/gate/x", ss["snapshots"].payload}, wire.ReasonBadTopic},
		{"live view on another camera", sample{"vigil/v1/edge-01/live/yard", ss["live"].payload}, wire.ReasonCameraMismatch},
		{"picture too large", sample{ss["live"].topic, append(append([]byte{}, ss["live"].payload...), make([]byte, wire.MaxPictureBytes)...)}, wire.ReasonTooLarge},
		{"live view cmd_id with ESC", built(t, wire.NewPicture(time.Now(), wire.Picture{Camera: "gate", CmdID: "c\x1b]0;x\x07"}, tinyJPEG), 8), wire.ReasonControlChar},
	}
	for _, c := range cases {
		d, err := wire.Decode(c.s.topic, c.s.payload)
		var de *wire.DecodeError
		if !errors.As(err, &de) || de.Reason != c.reason {
			t.Errorf("%s: got %v (%+v), want reason %s", c.name, err, d, c.reason)
		}
	}
}

// TestDecodeNamesTheField checks that refusals say where the problem is.
func TestDecodeNamesTheField(t *testing.T) {
	tel := samples(t)["telemetry"]
	_, err := wire.Decode(tel.topic, edit(t, tel, func(o map[string]any) { o["cameras"] = []any{nil} }).payload)
	if err == nil || !strings.Contains(err.Error(), "/cameras/0") {
		t.Errorf("cameras [null]: %v, want the path /cameras/0", err)
	}
	det := samples(t)["detections"]
	_, err = wire.Decode(det.topic, edit(t, det, func(o map[string]any) {
		o["objects"].([]any)[0].(map[string]any)["label"] = "p\x1b"
	}).payload)
	if err == nil || !strings.Contains(err.Error(), "/objects/0/label") || !strings.Contains(err.Error(), "U+001B") {
		t.Errorf("ESC in a label: %v, want the path and the character", err)
	}
}

// FuzzDecode feeds Decode arbitrary topics and payloads: it must never panic, and what it
// accepts must be a complete message of its kind, from the topic's device, with no unsafe
// character in any string.
func FuzzDecode(f *testing.F) {
	for _, s := range samples(f) {
		f.Add(s.topic, s.payload)
	}
	f.Add("vigil/v1/edge-01/telemetry", []byte(`{"cameras":[null]}`))
	f.Add("vigil/v1/edge-01/detections/gate", []byte(`{"schema":"vigil.detections/1","objects":[{"label":"\u001b"}]}`))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		d, err := wire.Decode(topic, payload)
		if err != nil {
			var de *wire.DecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("error %v is not a *DecodeError with a reason", err)
			}
			return
		}
		if d.Msg == nil || d.Header.DeviceID != d.Device || !wire.ValidID(d.Device) || d.Header.MsgID == "" {
			t.Fatalf("accepted an incomplete message: %+v", d)
		}
		var walk func(v any)
		walk = func(v any) {
			switch x := v.(type) {
			case string:
				for _, r := range x {
					if wire.Unsafe(r) && !(r == '\n' || r == '\t') {
						t.Fatalf("accepted a string with U+%04X: %q", r, x)
					}
				}
			case map[string]any:
				for _, e := range x {
					walk(e)
				}
			case []any:
				for _, e := range x {
					walk(e)
				}
			}
		}
		var v any
		text := payload
		if d.Spec.Binary {
			text, _ = json.Marshal(d.Msg) // a picture's header
		}
		if err := json.Unmarshal(text, &v); err != nil {
			t.Fatalf("accepted a payload that is not JSON: %v", err)
		}
		walk(v)
	})
}

// BenchmarkDecode measures the fleet's per-message check (JSON, header, JSON Schema, strings)
// on the messages the agent writes; the JSON Schema walk is most of it.
func BenchmarkDecode(b *testing.B) {
	ss := samples(b)
	for _, kind := range []string{"detections", "events", "telemetry"} {
		s := ss[kind]
		b.Run(kind, func(b *testing.B) {
			b.SetBytes(int64(len(s.payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := wire.Decode(s.topic, s.payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
