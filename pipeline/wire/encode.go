package wire

import (
	"cmp"
	"encoding/json"
	"math"
	"slices"
	"time"

	"github.com/vigil-edge/vigil/pipeline/frame"
)

// NewDetections is the detections message of one frame (KindDetections, on the frame's camera).
func NewDetections(d frame.Detections) Message { return detectionsMsg{d} }

// NewEvent is the event message of one change of an event (KindEvents, on its camera). An
// "update" goes in the outbox class frame.ClassEventUpdate, dropped before the others.
func NewEvent(ch frame.EventChange) Message { return eventMsg{ch} }

// NewAlert is the alert message of a rule's firing (KindAlerts, on its camera); a is
// identified (events.Manager.Identify) first.
func NewAlert(a frame.Alert) Message { return alertMsg{a} }

// NewTelemetry is a telemetry report made at (KindTelemetry); its header is ignored.
func NewTelemetry(at time.Time, t Telemetry) Message { return telemetryMsg{at, t} }

// NewCmdResult is a command's progress report made at (KindCmdResult, on the command's
// name); its header is ignored.
func NewCmdResult(at time.Time, r CmdResult) Message { return cmdResultMsg{at, r} }

// NewPicture is a picture made at: an event's snapshot when p.EventID is set (KindSnapshots,
// on <camera>/<event id>), else a live view (KindLive, on the camera); p.Camera names the
// camera, its header is ignored. The payload is jpeg with p as its header (EncodePicture).
func NewPicture(at time.Time, p Picture, jpeg []byte) Message { return pictureMsg{at, p, jpeg} }

type detectionsMsg struct{ d frame.Detections }

func (m detectionsMsg) Kind() string  { return KindDetections }
func (m detectionsMsg) Level() string { return m.d.Camera }
func (m detectionsMsg) At() time.Time { return m.d.CapturedAt }
func (m detectionsMsg) Encode(h Header) ([]byte, error) {
	return json.Marshal(EncodeDetections(h, m.d))
}

type eventMsg struct{ ch frame.EventChange }

func (m eventMsg) Kind() string                    { return KindEvents }
func (m eventMsg) Level() string                   { return m.ch.Camera }
func (m eventMsg) At() time.Time                   { return m.ch.At }
func (m eventMsg) Encode(h Header) ([]byte, error) { return json.Marshal(EncodeEvent(h, m.ch)) }
func (m eventMsg) class() frame.Class {
	if m.ch.Type == EventUpdate {
		return frame.ClassEventUpdate
	}
	return frame.ClassEvent
}

type alertMsg struct{ a frame.Alert }

func (m alertMsg) Kind() string                    { return KindAlerts }
func (m alertMsg) Level() string                   { return m.a.Camera }
func (m alertMsg) At() time.Time                   { return m.a.At }
func (m alertMsg) Encode(h Header) ([]byte, error) { return json.Marshal(EncodeAlert(h, m.a)) }

type telemetryMsg struct {
	at time.Time
	t  Telemetry
}

func (m telemetryMsg) Kind() string  { return KindTelemetry }
func (m telemetryMsg) Level() string { return "" }
func (m telemetryMsg) At() time.Time { return m.at }
func (m telemetryMsg) Encode(h Header) ([]byte, error) {
	t := m.t
	t.Header = h
	return json.Marshal(t)
}

type cmdResultMsg struct {
	at time.Time
	r  CmdResult
}

func (m cmdResultMsg) Kind() string  { return KindCmdResult }
func (m cmdResultMsg) Level() string { return m.r.Name }
func (m cmdResultMsg) At() time.Time { return m.at }
func (m cmdResultMsg) Encode(h Header) ([]byte, error) {
	r := m.r
	r.Header = h
	return json.Marshal(r)
}

type pictureMsg struct {
	at   time.Time
	p    Picture
	jpeg []byte
}

func (m pictureMsg) Kind() string {
	if m.p.EventID != "" {
		return KindSnapshots
	}
	return KindLive
}

func (m pictureMsg) Level() string {
	if m.p.EventID != "" {
		return m.p.Camera + "/" + m.p.EventID
	}
	return m.p.Camera
}

func (m pictureMsg) At() time.Time { return m.at }
func (m pictureMsg) Encode(h Header) ([]byte, error) {
	p := m.p
	p.Header = h
	return EncodePicture(p, m.jpeg)
}

// EncodeDetections builds the wire message for d under header h: scores to three decimals,
// boxes in whole pixels and normalised to four decimals, geo to seven.
func EncodeDetections(h Header, d frame.Detections) Detections {
	msg := Detections{
		Header: h, Camera: d.Camera, FrameSeq: d.FrameSeq, FrameWidth: d.Width, FrameHeight: d.Height,
		Model:       Model{Name: d.Model.Name, Version: d.Model.Version, SHA256: d.Model.SHA256},
		InferenceMS: round(float64(d.Inference)/float64(time.Millisecond), 2),
		Objects:     make([]Object, 0, len(d.Objects)),
		GeoStatus:   d.GeoStatus,
	}
	w, hgt := float64(max(d.Width, 1)), float64(max(d.Height, 1))
	for i, o := range d.Objects {
		b := o.Box
		obj := Object{
			Label: o.Label, ClassID: o.ClassID, Score: round(float64(o.Score), 3),
			BoxPx: [4]int{int(math.Round(float64(b.X1))), int(math.Round(float64(b.Y1))), int(math.Round(float64(b.X2))), int(math.Round(float64(b.Y2)))},
			BoxNorm: [4]float64{clamp01(round(float64(b.X1)/w, 4)), clamp01(round(float64(b.Y1)/hgt, 4)),
				clamp01(round(float64(b.X2)/w, 4)), clamp01(round(float64(b.Y2)/hgt, 4))},
		}
		if i < len(d.Geo) && d.Geo[i].OK {
			g := d.Geo[i]
			obj.Geo = &ObjectGeo{Lat: round(g.Lat, 7), Lon: round(g.Lon, 7), ErrM: round(g.ErrM, 2)}
		}
		msg.Objects = append(msg.Objects, obj)
	}
	return msg
}

// EncodeEvent builds the wire message for an event's change under header h (Schema and
// CapturedAt are filled in when empty).
func EncodeEvent(h Header, c frame.EventChange) Event {
	h.Schema = cmp.Or(h.Schema, SchemaEvent)
	h.CapturedAt = cmp.Or(h.CapturedAt, c.At.UnixMilli())
	e := Event{Header: h, Camera: c.Camera, Type: c.Type, After: encodeEventState(c.After)}
	if c.Before != nil {
		b := encodeEventState(*c.Before)
		e.Before = &b
	}
	return e
}

func encodeEventState(s frame.EventState) EventState {
	w := EventState{ID: s.ID, TrackID: s.TrackID, Label: s.Label, TopScore: score(s.TopScore),
		Score: score(s.Score), StartTime: s.Start.UnixMilli(), Zones: slices.Clone(s.Zones),
		EnteredZones: slices.Clone(s.EnteredZones), Stationary: s.Stationary,
		Speed: math.Round(finite(s.Speed)*100) / 100, SpeedUnit: s.SpeedUnit, HasSnapshot: s.HasSnapshot,
		GeoStatus: s.GeoStatus}
	if w.SpeedUnit == "" {
		w.SpeedUnit = UnitPxPerS
	}
	if !s.End.IsZero() {
		end := s.End.UnixMilli()
		w.EndTime = &end
	}
	if s.HasSnapshot {
		w.Snapshot = SnapshotPath(s.ID)
	}
	if s.Geo.OK {
		w.Geo, w.GeoStatus = &ObjectGeo{Lat: s.Geo.Lat, Lon: s.Geo.Lon, ErrM: s.Geo.ErrM}, ""
	}
	b := [4]float32{s.Box.X1, s.Box.Y1, s.Box.X2, s.Box.Y2}
	size := [4]int{s.FrameWidth, s.FrameHeight, s.FrameWidth, s.FrameHeight}
	for i, v := range b {
		v := max(finite(float64(v)), 0)
		if size[i] > 0 {
			v = min(v, float64(size[i]))
			w.BoxNorm[i] = math.Round(v/float64(size[i])*1e4) / 1e4
		}
		w.BoxPx[i] = int(math.Round(v))
	}
	return w
}

// EncodeAlert builds the wire message for an identified alert under header h (Schema and
// CapturedAt are filled in when empty).
func EncodeAlert(h Header, a frame.Alert) Alert {
	h.Schema = cmp.Or(h.Schema, SchemaAlert)
	h.CapturedAt = cmp.Or(h.CapturedAt, a.At.UnixMilli())
	w := Alert{Header: h, Camera: a.Camera, AlertID: a.ID, RuleID: a.RuleID, RuleType: a.RuleType,
		Kind: a.Kind, EventIDs: slices.Clone(a.EventIDs), TrackIDs: slices.Clone(a.TrackIDs), Label: a.Label,
		Time: a.At.UnixMilli(), Value: finite(a.Value), Unit: a.Unit}
	if a.SnapshotOf != "" {
		w.Snapshot = SnapshotPath(a.SnapshotOf)
	}
	return w
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func clamp01(v float64) float64 { return min(max(v, 0), 1) }

func score(v float32) float64 {
	return math.Round(min(max(finite(float64(v)), 0), 1)*1000) / 1000
}

func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}
