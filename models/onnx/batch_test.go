package onnx

import (
	"context"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vigil-edge/vigil/models"
)

// rebatchScript makes a copy of a YOLOX ONNX model whose batch dimension is dynamic: the
// input's and output's first dimension become "batch", the intermediate shapes recorded for
// batch 1 are dropped, and the head's Reshape targets
// [1, 85, -1] become [0, 85, -1] (0: keep the input's batch). Debian's python3-onnx (make deps).
const rebatchScript = `
import sys, onnx
from onnx import numpy_helper
m = onnx.load(sys.argv[1])
g = m.graph
for v in list(g.input) + list(g.output):
    d = v.type.tensor_type.shape.dim[0]
    d.ClearField("dim_value"); d.dim_param = "batch"
del g.value_info[:]  # shapes inferred for batch 1
consts = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
inits = {i.name: i for i in g.initializer}
n = 0
for node in g.node:
    if node.op_type != "Reshape":
        continue
    src = node.input[1]
    t = consts[src].attribute[0].t if src in consts else inits[src]
    a = numpy_helper.to_array(t).copy()
    if a[0] == 1:
        a[0] = 0
        t.CopyFrom(numpy_helper.from_array(a, t.name))
        n += 1
onnx.checker.check_model(m)
onnx.save(m, sys.argv[2])
print(n)
`

// dynamicBatchManifest writes a dynamic-batch copy of the YOLOX-nano model into a temporary
// folder and returns its manifest, declaring input.max_batch maxBatch.
func dynamicBatchManifest(t testing.TB, maxBatch int) models.Manifest {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import onnx").Run(); err != nil {
		t.Fatalf("%s cannot import onnx (%v): install python3-onnx (make deps)", py, err)
	}
	m := manifest(t)
	dst := filepath.Join(t.TempDir(), "yolox_nano_batch.onnx")
	out, err := exec.Command(py, "-c", rebatchScript, m.ModelPath(), dst).CombinedOutput()
	if err != nil {
		t.Fatalf("rebatch the model: %v: %s", err, out)
	}
	m.File, m.Dir, m.SHA256 = filepath.Base(dst), filepath.Dir(dst), ""
	m.Input.MaxBatch = maxBatch
	return m
}

// TestDetectBatch: a run of several different frames gives each the detections a one-frame
// run gives it, and a bad frame fails alone.
func TestDetectBatch(t *testing.T) {
	m := dynamicBatchManifest(t, 4)
	single := open(t, manifest(t), Options{})
	batched := open(t, m, Options{Batch: 4})
	if batched.MaxBatch() != 4 || single.MaxBatch() != 1 {
		t.Fatalf("MaxBatch = %d and %d", batched.MaxBatch(), single.MaxBatch())
	}
	imgs := testFrames(t, 3)
	bad := models.Image{Width: 10, Height: 10, Stride: 30, Pix: make([]byte, 20)}
	in := append(append([]models.Image{}, imgs[:2]...), bad, imgs[2])
	res, errs := batched.DetectBatch(context.Background(), in, nil)
	if errs[2] == nil {
		t.Error("a bad frame in the batch did not fail")
	}
	for i, img := range in {
		if i == 2 {
			continue
		}
		if errs[i] != nil {
			t.Fatalf("frame %d: %v", i, errs[i])
		}
		want, err := single.Detect(context.Background(), img)
		if err != nil {
			t.Fatal(err)
		}
		sameDetections(t, i, res[i], want)
	}
	if _, err := Open(manifest(t), Options{Batch: 2}); err == nil {
		t.Error("Options.Batch 2 on the fixed-batch model opened")
	}
}

// sameDetections compares two frames' detections, allowing float noise from batched kernels.
func sameDetections(t *testing.T, frame int, got, want []models.Detection) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("frame %d: the one-frame run found nothing to compare", frame)
	}
	if len(got) != len(want) {
		t.Fatalf("frame %d: %d detections batched, %d alone", frame, len(got), len(want))
	}
	for j := range got {
		g, w := got[j], want[j]
		if g.Label != w.Label || abs32(g.Score-w.Score) > 1e-3 || abs32(g.Box.X1-w.Box.X1) > 0.5 || abs32(g.Box.Y2-w.Box.Y2) > 0.5 {
			t.Fatalf("frame %d detection %d: batched %+v, alone %+v", frame, j, g, w)
		}
	}
}

func abs32(v float32) float32 { return max(v, -v) }

// TestBatcherGathersConcurrentCalls: four goroutines detecting at once through their handles
// get the one-frame results, in fewer runs than frames; the last Close closes the detector.
func TestBatcherGathersConcurrentCalls(t *testing.T) {
	single := open(t, manifest(t), Options{})
	d, err := Open(dynamicBatchManifest(t, 4), Options{Batch: 4})
	if err != nil {
		t.Fatal(err)
	}
	b, hs := NewBatcher(d, 4)
	imgs := testFrames(t, 4)
	want := make([][]models.Detection, len(imgs))
	for i, img := range imgs {
		if want[i], err = single.Detect(context.Background(), img); err != nil {
			t.Fatal(err)
		}
	}
	const rounds = 8
	var wg sync.WaitGroup
	got := make([][][]models.Detection, len(hs))
	errs := make([]error, len(hs))
	for i, h := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				r, err := h.Detect(context.Background(), imgs[i])
				if err != nil {
					errs[i] = err
					return
				}
				got[i] = append(got[i], r)
			}
		}()
	}
	wg.Wait()
	for i := range hs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		for _, r := range got[i] {
			sameDetections(t, i, r, want[i])
		}
	}
	st := b.Stats()
	if st.Frames != 4*rounds || st.Runs >= st.Frames {
		t.Fatalf("%d frames in %d runs: want %d frames in fewer runs", st.Frames, st.Runs, 4*rounds)
	}
	t.Logf("%d frames in %d runs", st.Frames, st.Runs)
	for _, h := range hs {
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if d.batch != nil {
		t.Fatal("the detector is still open after the last handle closed")
	}
	if _, err := hs[0].Detect(context.Background(), imgs[0]); err == nil {
		t.Fatal("Detect after Close worked")
	}
}

// testFrames returns n (at most 4) pictures of different sizes, each with objects in it.
func testFrames(t testing.TB, n int) []models.Image {
	t.Helper()
	var out []models.Image
	for _, name := range []string{"darknet_person.jpg", "darknet_dog.jpg", "darknet_horses.jpg", "darknet_kite.jpg"}[:n] {
		out = append(out, readImage(t, "images/"+name))
	}
	return out
}

// BenchmarkBatchOf4: four frames in one batched run against four one-frame runs, one thread.
func BenchmarkBatchOf4(b *testing.B) {
	imgs := testFrames(b, 4)
	b.Run("one-frame-runs", func(b *testing.B) {
		d := open(b, manifest(b), Options{Threads: 1})
		for b.Loop() {
			for _, img := range imgs {
				if _, err := d.Detect(context.Background(), img); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(4*b.N)/1e6, "ms/frame")
	})
	b.Run("batched", func(b *testing.B) {
		d := open(b, dynamicBatchManifest(b, 4), Options{Threads: 1, Batch: 4})
		for b.Loop() {
			if _, errs := d.DetectBatch(context.Background(), imgs, nil); errs[0] != nil {
				b.Fatal(errs[0])
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(4*b.N)/1e6, "ms/frame")
	})
}
