package detect_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/models/onnx"
	"github.com/vigil-edge/vigil/pipeline/detect"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// The pool runs the real model (YOLOX-nano through ONNX Runtime) on a real picture.

func manifest(t testing.TB) models.Manifest {
	t.Helper()
	m, err := models.LoadManifest(filepath.Join(testharness.RepoRoot(), "models", "yolox_nano_coco_416.json"))
	if err != nil {
		t.Fatal(err)
	}
	m.Dir = data.MustPath(t, "models")
	return m
}

func openN(t testing.TB, m models.Manifest, n int) []models.Detector {
	t.Helper()
	var dets []models.Detector
	for range n {
		d, err := onnx.Open(m, onnx.Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		dets = append(dets, d)
	}
	return dets
}

func newPool(t testing.TB, n int, cfg detect.PoolConfig) *detect.Pool {
	t.Helper()
	p, err := detect.NewPool(cfg, openN(t, manifest(t), n))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

var (
	dogOnce sync.Once
	dog     models.Image
)

func picture(t testing.TB) models.Image {
	t.Helper()
	dogOnce.Do(func() {
		mat := gocv.IMRead(data.MustPath(t, "images/darknet_dog.jpg"), gocv.IMReadColor)
		defer mat.Close()
		dog = models.Image{Width: mat.Cols(), Height: mat.Rows(), Stride: 3 * mat.Cols(), Pix: mat.ToBytes()}
	})
	if !dog.Valid() {
		t.Fatal("no picture")
	}
	return dog
}

// frames makes frames of the picture and counts their releases.
type frames struct {
	img      models.Image
	released atomic.Int64
}

func (fs *frames) make(cam string, seq uint64) *frame.Frame {
	return frame.NewFrame(cam, seq, time.Duration(seq)*time.Millisecond, time.Now(), fs.img, func() { fs.released.Add(1) })
}

// recorder is a camera's sink.
type recorder struct {
	mu   sync.Mutex
	seqs []uint64
	errs []error
	obj  int
	ver  []string
}

func (r *recorder) sink(res detect.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seqs = append(r.seqs, res.Frame.Seq)
	r.ver = append(r.ver, res.Model.Version)
	if res.Err != nil {
		r.errs = append(r.errs, res.Err)
	}
	r.obj += len(res.Objects)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seqs)
}

func TestPoolSizeZero(t *testing.T) {
	if _, err := detect.NewPool(detect.PoolConfig{}, nil); !errors.Is(err, detect.ErrPoolSize) {
		t.Fatalf("NewPool with no detector = %v, want ErrPoolSize", err)
	}
	p := newPool(t, 1, detect.PoolConfig{})
	if _, err := p.Join(detect.SlotConfig{Camera: "c", Depth: 0, Sink: func(detect.Result) {}}); err == nil {
		t.Fatal("a slot of depth 0 was accepted")
	}
	if _, err := p.Join(detect.SlotConfig{Camera: "c", Depth: 1}); err == nil {
		t.Fatal("a slot without a sink was accepted")
	}
}

// TestPoolLosslessInOrder: a lossless slot gets every frame detected, in order, and Close
// returns after the last result reached the sink; every frame is released once.
func TestPoolLosslessInOrder(t *testing.T) {
	p := newPool(t, 2, detect.PoolConfig{})
	fs := &frames{img: picture(t)}
	var rec recorder
	s, err := p.Join(detect.SlotConfig{Camera: "a", Depth: 2, Lossless: true, Sink: rec.sink})
	if err != nil {
		t.Fatal(err)
	}
	const n = 12
	for i := uint64(1); i <= n; i++ {
		s.Submit(fs.make("a", i))
	}
	s.Close()
	if len(rec.seqs) != n || len(rec.errs) != 0 {
		t.Fatalf("%d results (%v), errors %v; want %d", len(rec.seqs), rec.seqs, rec.errs, n)
	}
	for i, q := range rec.seqs {
		if q != uint64(i+1) {
			t.Fatalf("results out of order: %v", rec.seqs)
		}
	}
	if rec.obj < n { // the dog picture has a dog, a bicycle and a truck
		t.Fatalf("%d objects in %d frames", rec.obj, n)
	}
	if fs.released.Load() != n {
		t.Fatalf("%d frames released, want %d", fs.released.Load(), n)
	}
	s.Submit(fs.make("a", 99)) // after Close: released unseen
	if fs.released.Load() != n+1 || rec.count() != n {
		t.Fatal("a frame submitted after Close was not released, or was detected")
	}
}

// TestPoolLatestFrameWins: frames coming faster than the detector drop in the slot, oldest
// first; the newest frame is always detected.
func TestPoolLatestFrameWins(t *testing.T) {
	p := newPool(t, 1, detect.PoolConfig{})
	fs := &frames{img: picture(t)}
	var rec recorder
	var dropped atomic.Int64
	s, err := p.Join(detect.SlotConfig{Camera: "a", Depth: 1, Sink: rec.sink, OnDrop: func(*frame.Frame) { dropped.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := uint64(1); i <= n; i++ {
		s.Submit(fs.make("a", i))
	}
	s.Close()
	if got := int64(rec.count()) + dropped.Load(); got != n {
		t.Fatalf("%d detected + %d dropped, want %d", rec.count(), dropped.Load(), n)
	}
	if dropped.Load() < n/2 || rec.seqs[len(rec.seqs)-1] != n {
		t.Fatalf("detected %v, %d dropped: want most dropped and the last frame detected", rec.seqs, dropped.Load())
	}
	if fs.released.Load() != n {
		t.Fatalf("%d released, want %d", fs.released.Load(), n)
	}
}

// gated is a camera's detection that waits for the test's go-ahead, then runs the model: the
// test decides when the one worker takes the next frame and sees which camera it took.
type gated struct {
	gate  chan struct{}
	order chan string
}

func (g *gated) detect(cam string) detect.DetectFunc {
	return func(ctx context.Context, det models.Detector, f *frame.Frame) ([]models.Detection, error) {
		g.order <- cam
		<-g.gate
		return det.Detect(ctx, f.Image)
	}
}

// TestPoolFairness: one camera flooding the pool does not starve the others: with frames
// waiting everywhere, the camera waiting longest goes next, so the cameras take turns.
func TestPoolFairness(t *testing.T) {
	p := newPool(t, 1, detect.PoolConfig{})
	fs := &frames{img: picture(t)}
	g := &gated{gate: make(chan struct{}), order: make(chan string, 1)}
	cams := []string{"flood", "b", "c"}
	slots := map[string]*detect.Slot{}
	for _, cam := range cams {
		s, err := p.Join(detect.SlotConfig{Camera: cam, Depth: 1, Sink: func(detect.Result) {}, Detect: g.detect(cam)})
		if err != nil {
			t.Fatal(err)
		}
		slots[cam] = s
	}
	seq := uint64(0)
	submit := func(cam string) { seq++; slots[cam].Submit(fs.make(cam, seq)) }
	got := map[string]int{}
	submit("flood")
	for range 30 {
		cam := <-g.order // the worker holds a frame of cam
		got[cam]++
		// Every camera has a frame waiting; the flooding one sends ten for each of the others'.
		for range 10 {
			submit("flood")
		}
		submit("b")
		submit("c")
		g.gate <- struct{}{}
	}
	go func() {
		for range g.order {
			g.gate <- struct{}{}
		}
	}()
	for _, s := range slots {
		s.Close()
	}
	close(g.order)
	t.Logf("turns: %v", got)
	for _, cam := range cams {
		if got[cam] < 9 || got[cam] > 11 {
			t.Errorf("camera %s had %d of 30 turns, want about 10 each: %v", cam, got[cam], got)
		}
	}
}

// TestPoolPriority: a camera marked busy (active tracks) goes ahead of idle ones for as long
// as they have waited less than the priority boost; past it, they get their turns.
func TestPoolPriority(t *testing.T) {
	const boost = time.Second
	p := newPool(t, 1, detect.PoolConfig{PriorityBoost: boost})
	fs := &frames{img: picture(t)}
	g := &gated{gate: make(chan struct{}), order: make(chan string, 1)}
	slots := map[string]*detect.Slot{}
	for _, cam := range []string{"busy", "b", "c"} {
		s, err := p.Join(detect.SlotConfig{Camera: cam, Depth: 1, Sink: func(detect.Result) {}, Detect: g.detect(cam)})
		if err != nil {
			t.Fatal(err)
		}
		slots[cam] = s
	}
	slots["busy"].SetPriority(true)
	seq := uint64(0)
	submit := func(cam string) { seq++; slots[cam].Submit(fs.make(cam, seq)) }
	submit("b")
	submit("c")
	start := time.Now()
	submit("busy")
	n := map[string]int{}
	var first = map[string]time.Duration{}
	for (n["b"] == 0 || n["c"] == 0) && time.Since(start) < 3*boost {
		cam := <-g.order
		n[cam]++
		if _, ok := first[cam]; !ok {
			first[cam] = time.Since(start)
		}
		submit("busy") // busy always has a fresh frame; b and c keep theirs waiting
		time.Sleep(20 * time.Millisecond)
		g.gate <- struct{}{}
	}
	go func() {
		for range g.order {
			g.gate <- struct{}{}
		}
	}()
	for _, s := range slots {
		s.Close()
	}
	close(g.order)
	t.Logf("turns %v; first turns at %v", n, first)
	if n["b"] == 0 || n["c"] == 0 {
		t.Fatalf("idle cameras starved for %v by a busy one: %v", 3*boost, n)
	}
	for _, cam := range []string{"b", "c"} {
		if first[cam] < boost-100*time.Millisecond {
			t.Errorf("idle camera %s went at %v, ahead of the busy one within the boost of %v", cam, first[cam], boost)
		}
	}
	if n["busy"] < 2 {
		t.Errorf("busy camera had only %d turns", n["busy"])
	}
}

// TestPoolSlowSink: a camera whose sink blocks holds no detector: the other camera goes on.
func TestPoolSlowSink(t *testing.T) {
	p := newPool(t, 1, detect.PoolConfig{})
	fs := &frames{img: picture(t)}
	block := make(chan struct{})
	var slow, fast recorder
	ss, err := p.Join(detect.SlotConfig{Camera: "slow", Depth: 1, Sink: func(r detect.Result) { <-block; slow.sink(r) }})
	if err != nil {
		t.Fatal(err)
	}
	sf, err := p.Join(detect.SlotConfig{Camera: "fast", Depth: 1, Lossless: true, Sink: fast.sink})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 5; i++ {
		ss.Submit(fs.make("slow", i))
	}
	for i := uint64(1); i <= 10; i++ {
		sf.Submit(fs.make("fast", i))
	}
	sf.Close()
	if fast.count() != 10 {
		t.Fatalf("fast camera got %d of 10 results while another camera's sink blocked", fast.count())
	}
	close(block)
	ss.Close()
	if slow.count() == 0 || slow.count() > 3 { // one in its sink, one waiting for it, one in the slot
		t.Fatalf("slow camera: %d results", slow.count())
	}
	if fs.released.Load() != 15 {
		t.Fatalf("%d frames released, want 15", fs.released.Load())
	}
}

// TestPoolSwap: a model update replaces every detector between frames; every frame after
// Swap returns runs the new model.
func TestPoolSwap(t *testing.T) {
	p := newPool(t, 2, detect.PoolConfig{})
	fs := &frames{img: picture(t)}
	var rec recorder
	s, err := p.Join(detect.SlotConfig{Camera: "a", Depth: 4, Lossless: true, Sink: rec.sink})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	var swappedAt atomic.Uint64
	go func() { // swap while frames flow
		defer wg.Done()
		for rec.count() < 3 && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		m := manifest(t)
		m.Version = "2.0.0"
		if err := p.Swap(openN(t, m, 2)); err != nil {
			t.Error(err)
		}
		swappedAt.Store(uint64(rec.count()))
	}()
	for i := uint64(1); i <= 16; i++ {
		s.Submit(fs.make("a", i))
	}
	wg.Wait()
	s2, err := p.Join(detect.SlotConfig{Camera: "b", Depth: 1, Lossless: true, Sink: rec.sink})
	if err != nil {
		t.Fatal(err)
	}
	s2.Submit(fs.make("b", 1))
	s.Close()
	s2.Close()
	old := 0
	for i, v := range rec.ver {
		if v == "1.0.0" {
			old++
			if old != i+1 {
				t.Fatalf("old model after the new one: %v", rec.ver)
			}
		}
	}
	if old < 3 || rec.ver[len(rec.ver)-1] != "2.0.0" || p.Manifest().Version != "2.0.0" {
		t.Fatalf("versions %v (swapped after %d)", rec.ver, swappedAt.Load())
	}
	if err := p.Swap(openN(t, manifest(t), 1)); err == nil {
		t.Fatal("a swap with fewer detectors than the pool was accepted")
	}
}
