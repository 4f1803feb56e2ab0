package agent

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/detect"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/metrics"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// BenchmarkPipelineFile runs one camera's whole pipeline (file ingest, decode, pool slot, detect)
// on the PETS clip with detection on every frame, as fast as it goes: b.N frames detected.
// Compare its frames/s with models/onnx's BenchmarkInferenceOnly (same threads): the
// pipeline's rate should be at least 0.95 of the raw inference rate.
func BenchmarkPipelineFile(b *testing.B) {
	f := false
	cam := config.Camera{ID: "bench", URL: data.MustPath(b, "videos/pedestrians_pets09_s2l1_vtest.avi"), Realtime: &f, Loop: true}
	cam.ApplyDefaults()
	cam.DetectFPS = 0
	mc := config.Model{Manifest: filepath.Join(testharness.RepoRoot(), "models", "yolox_nano_coco_416.json"), Dir: data.MustPath(b, "models"), Threads: 1}
	det, err := OpenDetector(mc, cam)
	if err != nil {
		b.Fatal(err)
	}
	// Warm the session up, as the raw-inference benchmark does: the first run is slow.
	w, h := 768, 576
	if _, err := det.Detect(context.Background(), models.Image{Width: w, Height: h, Stride: 3 * w, Pix: make([]byte, 3*w*h)}); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n atomic.Int64
	target := int64(b.N)
	sink := func(context.Context, frame.Detections) error {
		if n.Add(1) >= target {
			cancel()
		}
		return nil
	}
	pool, err := detect.NewPool(detect.PoolConfig{}, []models.Detector{det}) // one session, as the raw benchmark
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	c, err := newCamera(cam, cameraDeps{metrics: metrics.NewUnregistered(), log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		sink: sink, pool: pool})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	c.run(ctx)
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(n.Load())/el.Seconds(), "frames/s")
}
