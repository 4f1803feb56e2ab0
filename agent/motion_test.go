package agent

import (
	"context"
	"image"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/detect"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/metrics"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// runClip runs one camera over a file, as fast as the detector goes, on a pool of one real
// model session; it returns the camera's metrics and the frames whose detections were stored.
func runClip(t *testing.T, path string, motionOn bool) (*metrics.Metrics, int) {
	t.Helper()
	f := false
	cc := config.Camera{ID: "cam", URL: path, Realtime: &f, DetectFPS: 5}
	if motionOn {
		cc.Motion = &config.Motion{Enabled: true}
	}
	cc.ApplyDefaults()
	mc := config.Model{Manifest: filepath.Join(testharness.RepoRoot(), "models", "yolox_nano_coco_416.json"), Dir: data.MustPath(t, "models"), Threads: 1}
	dets, err := openSessions(mc, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := detect.NewPool(detect.PoolConfig{}, dets)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	m := metrics.NewUnregistered()
	var stored atomic.Int64
	in := pool.Manifest().Input
	c, err := newCamera(cc, cameraDeps{metrics: m, log: slog.New(slog.NewTextHandler(io.Discard, nil)), pool: pool,
		motion: motionOf(cc), input: image.Pt(in.Width, in.Height),
		sink: func(context.Context, frame.Detections) error { stored.Add(1); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	c.run(context.Background())
	if st := c.Status(); st.State != StateEnded {
		t.Fatalf("camera %+v", st)
	}
	return m, int(stored.Load())
}

// TestMotionGatesTheDetector: on a still scene, motion-driven detection runs the model only
// for the first frame (learning the background) and the periodic full-frame pass; on a busy
// scene it runs on crops or the whole frame and still finds the people. With motion off,
// every frame due at detect_fps gets one inference.
func TestMotionGatesTheDetector(t *testing.T) {
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg CLI not installed")
	}
	still := filepath.Join(t.TempDir(), "still.mp4")
	// 24 s of one picture at 25 fps: 120 frames due at 5 per second.
	if out, err := exec.Command(ff, "-hide_banner", "-loglevel", "error", "-nostdin", "-loop", "1", "-framerate", "25",
		"-i", data.MustPath(t, "images/darknet_person.jpg"), "-t", "24", "-vf", "scale=640:-2", "-pix_fmt", "yuv420p",
		"-c:v", "libx264", "-preset", "ultrafast", still).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	m, _ := runClip(t, still, true)
	runs := testutil.ToFloat64(m.Inferences.WithLabelValues("cam"))
	none := testutil.ToFloat64(m.MotionPlans.WithLabelValues("cam", "none", "no_motion"))
	t.Logf("still scene, motion on: %v inferences, %v frames without", runs, none)
	// 120 frames due: the learning frame, a full pass every 10 s (3), nothing else moves.
	if runs < 2 || runs > 8 || none < 100 {
		t.Errorf("still scene: %v inferences and %v frames without; want a handful and the rest none", runs, none)
	}

	pets := filepath.Join(t.TempDir(), "pets.avi") // the first 30 s: 150 frames due
	if out, err := exec.Command(ff, "-hide_banner", "-loglevel", "error", "-nostdin", "-i", data.MustPath(t, "videos/pedestrians_pets09_s2l1_vtest.avi"),
		"-t", "30", "-c", "copy", pets).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	mOff, storedOff := runClip(t, pets, false)
	mOn, storedOn := runClip(t, pets, true)
	off := testutil.ToFloat64(mOff.Inferences.WithLabelValues("cam"))
	on := testutil.ToFloat64(mOn.Inferences.WithLabelValues("cam"))
	regions := testutil.ToFloat64(mOn.MotionPlans.WithLabelValues("cam", "regions", "motion"))
	t.Logf("PETS09: %v inferences without motion, %v with (%v frames on crops); frames with people stored %d / %d",
		off, on, regions, storedOff, storedOn)
	if off < 100 || regions == 0 || on > off {
		t.Errorf("PETS09: %v inferences with motion, %v without, %v frames on crops", on, off, regions)
	}
	if storedOn < storedOff*8/10 {
		t.Errorf("PETS09 with motion stored people on %d frames, without %d", storedOn, storedOff)
	}
}

var _ models.Detector = (*pooledDetector)(nil)
