package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// msg is one topic and payload to feed the registry.
type msg struct {
	topic   string
	payload []byte
}

func status(dev, state, msgID string, cams ...string) msg {
	s := wire.Status{
		Header:  wire.Header{Schema: wire.SchemaStatus, DeviceID: dev, Seq: 1, MsgID: msgID, CapturedAt: 1700000000000},
		State:   state,
		Version: "1.2.3",
		Cameras: cams,
	}
	return msg{wire.Topic(dev, wire.KindStatus, ""), mustJSON(s)}
}

// testEpoch is the outbox epoch of the test messages.
const testEpoch = "3f9a0c11d2e4"

// msgID is the agent's msg_id of message seq of dev in epoch.
func msgID(dev, epoch string, seq uint64) string { return fmt.Sprintf("%s-%s-%d", dev, epoch, seq) }

func detections(dev, cam string, seq uint64, labels ...string) msg {
	return detectionsIn(dev, cam, testEpoch, seq, false, labels...)
}

// detectionsIn is a detections message; with no labels it holds one "bicycle" (a detections
// message always holds an object).
func detectionsIn(dev, cam, epoch string, seq uint64, replayed bool, labels ...string) msg {
	if len(labels) == 0 {
		labels = []string{"bicycle"}
	}
	d := wire.Detections{
		Header: wire.Header{Schema: wire.SchemaDetections, DeviceID: dev, Seq: seq, MsgID: msgID(dev, epoch, seq),
			CapturedAt: 1700000001000, Replayed: replayed},
		Camera:      cam,
		FrameSeq:    seq + 1,
		Objects:     []wire.Object{},
		FrameWidth:  1280,
		FrameHeight: 720,
		Model:       wire.Model{Name: "yolox-nano", Version: "1"},
	}
	for _, l := range labels {
		d.Objects = append(d.Objects, wire.Object{Label: l, Score: 0.9})
	}
	return msg{wire.Topic(dev, wire.KindDetections, cam), mustJSON(d)}
}

// other is a valid message of another kind (events, alerts, telemetry), on the topic of cam.
func other(dev, kind, cam string, seq uint64) msg {
	at := time.UnixMilli(1700000001000)
	var m wire.Message
	switch kind {
	case wire.KindEvents:
		m = wire.NewEvent(frame.EventChange{Camera: cam, Type: wire.EventNew, At: at,
			After: frame.EventState{ID: "01KAMX3Q8R0000000000000001", TrackID: 1, Label: "person", Start: at}})
	case wire.KindAlerts:
		m = wire.NewAlert(frame.Alert{Camera: cam, RuleID: "door", RuleType: "zone", At: at, ID: "01KAMX3Q8R0000000000000002"})
	case wire.KindTelemetry:
		m = wire.NewTelemetry(at, wire.Telemetry{UptimeS: 1})
	default:
		panic(kind)
	}
	b, err := wire.Device{ID: dev, Epoch: testEpoch}.Outgoing(m).Build(seq)
	if err != nil {
		panic(err)
	}
	return msg{wire.Topic(dev, kind, cam), b}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// with returns m with its payload changed by f (on the decoded JSON object).
func with(m msg, f func(map[string]any)) msg {
	var o map[string]any
	if err := json.Unmarshal(m.payload, &o); err != nil {
		panic(err)
	}
	f(o)
	return msg{m.topic, mustJSON(o)}
}

func TestHandleMessage(t *testing.T) {
	type camWant struct {
		detections uint64
		objects    map[string]uint64
	}
	type devWant struct {
		online     bool
		state      string
		messages   map[string]uint64
		duplicates uint64
		cameras    map[string]camWant // by id; nil means no cameras
	}
	tests := []struct {
		name     string
		msgs     []msg
		devices  map[string]devWant
		rejected map[string]uint64
	}{
		{
			name:    "online",
			msgs:    []msg{status("d1", wire.StateOnline, "s1", "cam1")},
			devices: map[string]devWant{"d1": {online: true, state: "online", messages: map[string]uint64{"status": 1}, cameras: map[string]camWant{"cam1": {objects: map[string]uint64{}}}}},
		},
		{
			name:    "online then offline will",
			msgs:    []msg{status("d1", wire.StateOnline, "s1"), status("d1", wire.StateOffline, "will1")},
			devices: map[string]devWant{"d1": {online: false, state: "offline", messages: map[string]uint64{"status": 2}}},
		},
		{
			name:    "offline then online again",
			msgs:    []msg{status("d1", wire.StateOnline, "s1"), status("d1", wire.StateOffline, "will1"), status("d1", wire.StateOnline, "s2")},
			devices: map[string]devWant{"d1": {online: true, state: "online", messages: map[string]uint64{"status": 3}}},
		},
		{
			name: "detections counted by camera and label",
			msgs: []msg{
				status("d1", wire.StateOnline, "s1", "cam1", "cam2"),
				detections("d1", "cam1", 1, "person", "person", "car"),
				detections("d1", "cam1", 2, "person"),
				detections("d1", "cam3", 3),
			},
			devices: map[string]devWant{"d1": {online: true, state: "online", messages: map[string]uint64{"status": 1, "detections": 3}, cameras: map[string]camWant{
				"cam1": {detections: 2, objects: map[string]uint64{"person": 3, "car": 1}},
				"cam2": {objects: map[string]uint64{}},
				"cam3": {detections: 1, objects: map[string]uint64{"bicycle": 1}},
			}}},
		},
		{
			name: "detections before any status",
			msgs: []msg{detections("d2", "cam1", 1, "dog")},
			devices: map[string]devWant{"d2": {state: "", messages: map[string]uint64{"detections": 1}, cameras: map[string]camWant{
				"cam1": {detections: 1, objects: map[string]uint64{"dog": 1}},
			}}},
		},
		{
			name: "duplicates counted once",
			msgs: []msg{
				detections("d1", "cam1", 1, "person"),
				detections("d1", "cam1", 1, "person"),
				detections("d1", "cam1", 2, "person"),
				detections("d1", "cam1", 1, "person"),
				status("d1", wire.StateOnline, "s1"),
				status("d1", wire.StateOnline, "s1"), // retained status again after a resubscribe
			},
			devices: map[string]devWant{"d1": {online: true, state: "online", messages: map[string]uint64{"status": 1, "detections": 2}, duplicates: 3, cameras: map[string]camWant{
				"cam1": {detections: 2, objects: map[string]uint64{"person": 2}},
			}}},
		},
		{
			name: "same seq on two devices is not a duplicate",
			msgs: []msg{detections("d1", "cam1", 1), detections("d2", "cam1", 1)},
			devices: map[string]devWant{
				"d1": {messages: map[string]uint64{"detections": 1}, cameras: map[string]camWant{"cam1": {detections: 1, objects: map[string]uint64{"bicycle": 1}}}},
				"d2": {messages: map[string]uint64{"detections": 1}, cameras: map[string]camWant{"cam1": {detections: 1, objects: map[string]uint64{"bicycle": 1}}}},
			},
		},
		{
			name: "events, alerts and telemetry share the seq",
			msgs: []msg{
				detections("d1", "cam1", 1, "person"),
				other("d1", wire.KindEvents, "cam1", 2),
				other("d1", wire.KindAlerts, "cam1", 3),
				other("d1", wire.KindTelemetry, "", 4),
				other("d1", wire.KindEvents, "cam1", 2),
			},
			devices: map[string]devWant{"d1": {duplicates: 1, messages: map[string]uint64{"detections": 1, "events": 1, "alerts": 1, "telemetry": 1}, cameras: map[string]camWant{
				"cam1": {detections: 1, objects: map[string]uint64{"person": 1}},
			}}},
		},
		{
			name: "rejects",
			msgs: []msg{
				{"vigil/v1/d1/status", []byte("{not json")},
				{"vigil/v1/d1/status", []byte(`"a string"`)},
				{"vigil/v1/d1/status", nil},
				{"vigil/v2/d1/status", mustJSON(map[string]any{})},
				{"vigil/v1/d1", nil},
				{"vigil/v1/d1/status/extra", status("d1", "online", "x").payload},
				{"vigil/v1/d+1/status", nil},
				{"vigil/v1/d1/cmd/ota", []byte(`{}`)}, // a kind only the fleet sends
				{"vigil/v1/d1/detections/c#1", []byte(`{}`)},
				with(status("d1", "online", "s1"), func(o map[string]any) { o["schema"] = "vigil.status/2" }),
				with(detections("d1", "cam1", 1), func(o map[string]any) { o["schema"] = wire.SchemaStatus }),
				status("other", "online", "s1").withTopic("vigil/v1/d1/status"),
				detections("d1", "cam1", 1).withTopic("vigil/v1/d1/detections/cam2"),
				status("d1", "sleeping", "s1"),
				status("d1", "online", ""),
				status("d1", "online", strings.Repeat("x", 200)),
				with(detections("d1", "cam1", 1), func(o map[string]any) { o["msg_id"] = "m1" }),
				with(detections("d1", "cam1", 1), func(o map[string]any) { o["msg_id"] = "d1-" + testEpoch + "-2" }),
				with(detections("d1", "cam1", 1), func(o map[string]any) { o["msg_id"] = "d2-" + testEpoch + "-1" }),
				with(detections("d1", "cam1", 1), func(o map[string]any) { o["msg_id"] = "d1--1" }),
				with(detections("d1", "cam1", 1), func(o map[string]any) { o["msg_id"] = "d1-1" }),
				with(detections("d1", "cam1", 0), func(o map[string]any) { delete(o, "seq") }),
				with(other("d1", wire.KindEvents, "cam1", 1), func(o map[string]any) { o["schema"] = "x.event/1" }),
				other("d1", wire.KindTelemetry, "cam1", 1),
				other("d1", wire.KindEvents, "", 1),
			},
			devices: map[string]devWant{},
			rejected: map[string]uint64{
				wire.ReasonBadJSON: 3, wire.ReasonWrongSchema: 3, wire.ReasonBadTopic: 7, wire.ReasonUnknownKind: 1,
				wire.ReasonDeviceMismatch: 1, wire.ReasonCameraMismatch: 1, wire.ReasonBadState: 1, wire.ReasonBadHeader: 8,
			},
		},
		{
			name: "a reject does not disturb the device",
			msgs: []msg{
				status("d1", wire.StateOnline, "s1"),
				with(status("d1", "offline", "s2"), func(o map[string]any) { o["device_id"] = "d9" }),
			},
			devices:  map[string]devWant{"d1": {online: true, state: "online", messages: map[string]uint64{"status": 1}}},
			rejected: map[string]uint64{wire.ReasonDeviceMismatch: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(Options{})
			for i, m := range tt.msgs {
				err := r.HandleMessage(m.topic, m.payload)
				var re *RejectError
				var de *wire.DecodeError
				if err != nil && !errors.As(err, &re) && !errors.As(err, &de) {
					t.Errorf("message %d: error %v is neither a *RejectError nor a *wire.DecodeError", i, err)
				}
			}
			got := r.Devices()
			if len(got) != len(tt.devices) {
				t.Fatalf("got %d devices %+v, want %d", len(got), got, len(tt.devices))
			}
			for _, d := range got {
				want, ok := tt.devices[d.ID]
				if !ok {
					t.Errorf("unexpected device %q", d.ID)
					continue
				}
				if d.Online != want.online || d.State != want.state || d.Duplicates != want.duplicates {
					t.Errorf("device %s: online=%v state=%q duplicates=%d, want %v %q %d", d.ID, d.Online, d.State, d.Duplicates, want.online, want.state, want.duplicates)
				}
				if fmt.Sprint(d.Messages) != fmt.Sprint(want.messages) {
					t.Errorf("device %s: messages %v, want %v", d.ID, d.Messages, want.messages)
				}
				if len(d.Cameras) != len(want.cameras) {
					t.Errorf("device %s: cameras %+v, want %v", d.ID, d.Cameras, want.cameras)
				}
				for i, c := range d.Cameras {
					if i > 0 && d.Cameras[i-1].ID >= c.ID {
						t.Errorf("device %s: cameras not sorted: %q before %q", d.ID, d.Cameras[i-1].ID, c.ID)
					}
					wc, ok := want.cameras[c.ID]
					if !ok {
						t.Errorf("device %s: unexpected camera %q", d.ID, c.ID)
						continue
					}
					if c.Detections != wc.detections || fmt.Sprint(c.Objects) != fmt.Sprint(wc.objects) {
						t.Errorf("device %s camera %s: detections=%d objects=%v, want %d %v", d.ID, c.ID, c.Detections, c.Objects, wc.detections, wc.objects)
					}
				}
			}
			rej := r.Rejected()
			want := tt.rejected
			if want == nil {
				want = map[string]uint64{}
			}
			if fmt.Sprint(rej) != fmt.Sprint(want) {
				t.Errorf("rejected %v, want %v", rej, want)
			}
		})
	}
}

func (m msg) withTopic(topic string) msg { return msg{topic, m.payload} }

func TestDevicesSortedAndDevice(t *testing.T) {
	r := New(Options{})
	for _, id := range []string{"zeta", "alpha", "mid"} {
		if err := r.HandleMessage(status(id, wire.StateOnline, "s1").topic, status(id, wire.StateOnline, "s1").payload); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for _, d := range r.Devices() {
		ids = append(ids, d.ID)
	}
	if got := strings.Join(ids, ","); got != "alpha,mid,zeta" {
		t.Errorf("order %s", got)
	}
	if d, ok := r.Device("mid"); !ok || d.ID != "mid" || d.Version != "1.2.3" {
		t.Errorf("Device(mid) = %+v, %v", d, ok)
	}
	if _, ok := r.Device("nope"); ok {
		t.Error("Device(nope) found")
	}
}

// fakeClock is a settable clock for the rate window.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestRate(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1700000000, 0)}
	r := New(Options{Window: 10 * time.Second, Now: clk.now})
	rate := func() float64 {
		d, _ := r.Device("d1")
		return d.Cameras[0].Rate
	}
	n := 0
	send := func() {
		n++
		m := detections("d1", "cam1", uint64(n))
		if err := r.HandleMessage(m.topic, m.payload); err != nil {
			t.Fatal(err)
		}
	}
	// 5 messages a second for 20 seconds: a full window holds 5/s.
	for range 20 * 5 {
		send()
		clk.add(200 * time.Millisecond)
	}
	if got := rate(); got < 4.5 || got > 5.5 {
		t.Errorf("steady rate %.2f, want about 5", got)
	}
	// Silence longer than the window: the rate falls to zero.
	clk.add(11 * time.Second)
	if got := rate(); got != 0 {
		t.Errorf("rate after silence %.2f, want 0", got)
	}
	// A young camera's rate is over its age, not the whole window: 2 s at 5/s.
	clk2 := &fakeClock{t: time.Unix(1700000000, 500_000_000)}
	r = New(Options{Window: 10 * time.Second, Now: clk2.now})
	for range 10 {
		send()
		clk2.add(200 * time.Millisecond)
	}
	if got := rate(); got < 4.5 || got > 5.5 {
		t.Errorf("young camera rate %.2f, want about 5", got)
	}
}

func TestLimits(t *testing.T) {
	r := New(Options{MaxDevices: 2, MaxCameras: 2, MaxLabels: 2})
	feed := func(m msg) error { return r.HandleMessage(m.topic, m.payload) }
	for i, dev := range []string{"d1", "d2", "d3"} {
		err := feed(status(dev, wire.StateOnline, "s"))
		if (i == 2) != (err != nil) {
			t.Errorf("device %s: err %v", dev, err)
		}
	}
	for i, cam := range []string{"c1", "c2", "c3"} {
		err := feed(detections("d1", cam, uint64(i+1), "a", "b", "c", "a", strings.Repeat("l", 65)))
		if (i == 2) != (err != nil) {
			t.Errorf("camera %s: err %v", cam, err)
		}
	}
	d, _ := r.Device("d1")
	if len(d.Cameras) != 2 || fmt.Sprint(d.Cameras[0].Objects) != "map[_other:2 a:2 b:1]" {
		t.Errorf("cameras %+v", d.Cameras)
	}
	if got := fmt.Sprint(r.Rejected()); got != "map[too_many_cameras:1 too_many_devices:1]" {
		t.Errorf("rejected %s", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	r := New(Options{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				m := detections(fmt.Sprint("d", w), "cam1", uint64(i+1), "person")
				if err := r.HandleMessage(m.topic, m.payload); err != nil {
					t.Error(err)
				}
				_ = r.Devices()
			}
		})
	}
	wg.Wait()
	for _, d := range r.Devices() {
		if d.Cameras[0].Objects["person"] != 200 {
			t.Errorf("%s: %v", d.ID, d.Cameras[0].Objects)
		}
	}
}

func FuzzHandleMessage(f *testing.F) {
	seeds := []msg{
		status("d1", wire.StateOnline, "s1", "cam1"),
		status("d1", wire.StateOffline, "w1"),
		detections("d1", "cam1", 1, "person", "car"),
		other("d1", wire.KindTelemetry, "", 7),
		{"vigil/v1/d1/status", []byte("{not json")},
		{"vigil/v1/d1/detections/cam1", []byte(`{"schema":"vigil.detections/1","device_id":"d1","seq":3,"msg_id":"d1-e-3","camera":"cam1","objects":[{"label":""}]}`)},
		{"vigil/v1/d1/cmd_result/ota", []byte(`{}`)},
		{"vigil/v2/x", nil},
	}
	for _, s := range seeds {
		f.Add(s.topic, s.payload)
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		r := New(Options{MaxGaps: 2, MaxDevices: 2, MaxCameras: 2, MaxLabels: 2})
		for range 2 { // the second time it is a duplicate or the same reject
			err := r.HandleMessage(topic, payload)
			var re *RejectError
			var de *wire.DecodeError
			if err != nil && !errors.As(err, &re) && !errors.As(err, &de) {
				t.Fatalf("error %v is neither a *RejectError nor a *wire.DecodeError", err)
			}
		}
		var accepted uint64
		for _, d := range r.Devices() {
			if !wire.ValidID(d.ID) {
				t.Fatalf("invalid device id %q kept", d.ID)
			}
			for _, n := range d.Messages {
				accepted += n
			}
			if d.Online != (d.State == wire.StateOnline) {
				t.Fatalf("online %v with state %q", d.Online, d.State)
			}
		}
		var rejected uint64
		for _, n := range r.Rejected() {
			rejected += n
		}
		if accepted > 1 || accepted+rejected == 0 || (accepted == 1 && rejected != 0) {
			t.Fatalf("accepted %d rejected %d", accepted, rejected)
		}
	})
}
