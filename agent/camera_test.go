package agent

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/detect"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/metrics"
	"github.com/vigil-edge/vigil/pipeline/outbox"
	"github.com/vigil-edge/vigil/pipeline/rules"
	"github.com/vigil-edge/vigil/pipeline/snapshot"
)

// yuvFrame is a grey I420 frame of w x h, as the decoder gives them.
func yuvFrame(cam string, seq uint64, at time.Time, w, h int) *frame.Frame {
	y := make([]byte, w*h)
	for i := range y {
		y[i] = byte(60 + i%100)
	}
	u, v := make([]byte, (w/2)*(h/2)), make([]byte, (w/2)*(h/2))
	for i := range u {
		u[i], v[i] = 128, 128
	}
	img := models.Image{Width: w, Height: h, Format: models.I420, Stride: w, Pix: y, U: u, UStride: w / 2, V: v, VStride: w / 2}
	return frame.NewFrame(cam, seq, time.Duration(seq)*200*time.Millisecond, at, img, nil)
}

// TestCameraAnalysis runs a camera's per-frame analysis on detection results, without a model,
// a stream or a broker: a person walks across a line rule; the detections, the event, the
// crossing alert and the event's snapshot are stored in a real outbox and snapshot folder. A
// picture size change mid-stream ends the open event and restarts tracking.
func TestCameraAnalysis(t *testing.T) {
	dir := t.TempDir()
	ob, err := outbox.Open(filepath.Join(dir, "outbox.db"), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	snaps, err := snapshot.Open(filepath.Join(dir, "snapshots"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{DeviceID: "dev1"}
	a := &Agent{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil)), m: metrics.NewUnregistered(), ob: ob}
	s, err := newSensors(config.Default(), prometheusRegistry(), a.log)
	if err != nil {
		t.Fatal(err)
	}
	a.sensors = s
	cc := config.Camera{ID: "door", URL: "rtsp://127.0.0.1/x", Rules: []rules.Rule{
		{ID: "middle", Type: rules.TypeLine, A: &rules.Point{X: 0.5, Y: 0}, B: &rules.Point{X: 0.5, Y: 1}}}}
	cc.ApplyDefaults()
	c, err := newCamera(cc, cameraDeps{metrics: a.m, log: a.log, sink: a.store, out: outboxStore{a}, snaps: snaps})
	if err != nil {
		t.Fatal(err)
	}
	c.modelScore.Store(0x3eb33333) // 0.35, the model's default score
	ctx := context.Background()
	at := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	const w, h = 320, 240
	model := frame.ModelInfo{Name: "yolox_nano_coco_416", Version: "1.0.0"}
	for i := range 20 {
		x := float32(40 + i*12) // left to right, across x = 160
		f := yuvFrame("door", uint64(i+1), at.Add(time.Duration(i)*200*time.Millisecond), w, h)
		c.onResult(ctx, detect.Result{Frame: f, Model: model, Inference: 15 * time.Millisecond, Wait: time.Millisecond,
			Objects: []models.Detection{
				{ClassID: 0, Label: "person", Score: 0.9, Box: models.Box{X1: x, Y1: 80, X2: x + 30, Y2: 200}},
				{ClassID: 0, Label: "person", Score: 0.2, Box: models.Box{X1: 250, Y1: 10, X2: 270, Y2: 40}}, // tracker only
			}})
	}
	// The last frame's messages are waited for by the next frame, or when the camera stops.
	if kinds := storedKinds(t, ob); kinds["detections"] < 19 {
		t.Fatalf("stored %v before the last frame's wait; want at least the first 19 frames' detections", kinds)
	}
	c.waitStored()
	kinds := storedKinds(t, ob)
	if kinds["detections"] != 20 || kinds["events"] < 1 || kinds["alerts"] != 1 {
		t.Fatalf("stored %v; want 20 detections, the person's event and one line-crossing alert", kinds)
	}
	if got := testutil.ToFloat64(a.m.LineCrossings.WithLabelValues("door", "middle", "a_to_b", "person")) +
		testutil.ToFloat64(a.m.LineCrossings.WithLabelValues("door", "middle", "b_to_a", "person")); got != 1 {
		t.Fatalf("%v line crossings, want 1", got)
	}
	if snaps.Bytes() == 0 {
		t.Fatal("no snapshot saved for the event")
	}

	// The camera's picture size changes: the open event ends, tracking restarts.
	before := kinds["events"]
	f := yuvFrame("door", 21, at.Add(5*time.Second), 640, 480)
	c.onResult(ctx, detect.Result{Frame: f, Model: model, Objects: []models.Detection{
		{ClassID: 0, Label: "person", Score: 0.9, Box: models.Box{X1: 10, Y1: 10, X2: 50, Y2: 120}}}})
	if got := testutil.ToFloat64(a.m.SourceErrors.WithLabelValues("door", "resolution_change")); got != 1 {
		t.Fatalf("resolution changes counted: %v", got)
	}
	c.waitStored()
	kinds = storedKinds(t, ob)
	if kinds["events"] <= before {
		t.Fatalf("no event ended at the size change: %v", kinds)
	}
	// A failed detection is counted, nothing is stored.
	c.onResult(ctx, detect.Result{Frame: yuvFrame("door", 22, at.Add(6*time.Second), 640, 480), Err: models.ErrBadImage})
	if got := testutil.ToFloat64(a.m.DetectErrors.WithLabelValues("door")); got != 1 {
		t.Fatalf("detect errors %v", got)
	}
	c.waitStored()
	if k := storedKinds(t, ob); k["detections"] != kinds["detections"] {
		t.Fatalf("a failed detection stored detections: %v", k)
	}
}

// storedKinds counts the outbox's messages by the kind in their topic.
func storedKinds(t *testing.T, ob *outbox.Outbox) map[string]int {
	t.Helper()
	msgs, err := ob.Read(0, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, m := range msgs {
		parts := strings.Split(m.Topic, "/") // vigil/v1/<device>/<kind>/<camera>
		if len(parts) >= 4 {
			kinds[parts[3]]++
		}
	}
	return kinds
}

func prometheusRegistry() *prometheus.Registry { return prometheus.NewRegistry() }
