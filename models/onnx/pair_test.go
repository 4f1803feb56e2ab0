package onnx

import (
	"context"
	"sync"
	"testing"

	"gocv.io/x/gocv"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/testvideos/data"
)

// clipFrames reads frames at the given indexes of a shared clip (OpenCV, independently of
// the agent's decoder).
func clipFrames(t testing.TB, rel string, at ...int) []models.Image {
	t.Helper()
	vc, err := gocv.VideoCaptureFile(data.MustPath(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	mat := gocv.NewMat()
	defer mat.Close()
	var out []models.Image
	for i := 0; len(out) < len(at); i++ {
		if !vc.Read(&mat) || mat.Empty() {
			t.Fatalf("%s ended at frame %d", rel, i)
		}
		for _, a := range at {
			if a == i {
				out = append(out, matImage(t, mat))
			}
		}
	}
	return out
}

// agree counts how many of want's detections at or above score have a detection of the same
// label in got with IoU >= 0.5.
func agree(want, got []models.Detection, score float32) (matched, total int) {
	for _, w := range want {
		if w.Score < score {
			continue
		}
		total++
		for _, g := range got {
			if g.Label == w.Label && g.Box.IoU(w.Box) >= 0.5 {
				matched++
				break
			}
		}
	}
	return matched, total
}

// TestDetectPair: two 16:9 frames in one run find what each finds in a run of its own (at
// 89 % of the scale): over 20 pairs of the highway clip, most confident detections agree
// both ways; no box leaves its frame; a 4:3 frame is not paired and gets exactly its
// one-frame result.
func TestDetectPair(t *testing.T) {
	d := open(t, manifest(t), Options{})
	if !d.CanPair(1280, 720) || d.CanPair(768, 576) || d.CanPair(0, 0) {
		t.Fatalf("CanPair: 16:9 %v, 4:3 %v", d.CanPair(1280, 720), d.CanPair(768, 576))
	}
	var at []int
	for i := range 40 {
		at = append(at, 10*i)
	}
	wide := clipFrames(t, "videos/traffic_highway_fixed_1.mp4", at...)
	var m1, n1, m2, n2 int
	for p := 0; p+1 < len(wide); p += 2 {
		pair, errs := d.DetectPair(context.Background(), [2]models.Image{wide[p], wide[p+1]}, [2]models.Filter{})
		for k := range 2 {
			if errs[k] != nil {
				t.Fatal(errs[k])
			}
			alone, err := d.Detect(context.Background(), wide[p+k])
			if err != nil {
				t.Fatal(err)
			}
			a, b := agree(alone, pair[k], 0.5)
			c, e := agree(pair[k], alone, 0.5)
			m1, n1, m2, n2 = m1+a, n1+b, m2+c, n2+e
			for _, o := range pair[k] {
				if o.Box.X2 > 1280 || o.Box.Y2 > 720 || o.Box.Area() <= 0 {
					t.Fatalf("frame %d: box %+v outside the frame", p+k, o.Box)
				}
			}
		}
	}
	t.Logf("40 frames in 20 pairs: %d/%d confident one-frame detections found in the pairs (%.0f %%), %d/%d the other way (%.0f %%)",
		m1, n1, 100*float64(m1)/float64(n1), m2, n2, 100*float64(m2)/float64(n2))
	if n1 < 40 || m1 < n1*8/10 || m2 < n2*8/10 {
		t.Errorf("pair and one-frame runs disagree: %d/%d and %d/%d", m1, n1, m2, n2)
	}
	// A 4:3 frame is not paired: exactly the one-frame result.
	pets := clipFrames(t, "videos/pedestrians_pets09_s2l1_vtest.avi", 0)[0]
	want, err := d.Detect(context.Background(), pets)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := d.DetectPair(context.Background(), [2]models.Image{pets, wide[0]}, [2]models.Filter{})
	if m, n := agree(want, got[0], 0); m != n || len(got[0]) != len(want) {
		t.Errorf("4:3 frame: %d detections, %d alone (%d/%d agree)", len(got[0]), len(want), m, n)
	}
}

// TestPairBatcher: four callers at once with wide frames (a pool's four workers on one
// session) share runs in pairs: while a pair runs, the next two wait and pair in turn.
func TestPairBatcher(t *testing.T) {
	d := open(t, manifest(t), Options{})
	wide := clipFrames(t, "videos/traffic_highway_fixed_1.mp4", 30, 200, 300, 400)
	b, hs := NewPairBatcher(d, 4)
	var wg sync.WaitGroup
	counts := make([][]int, len(hs))
	for i, h := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				r, err := h.Detect(context.Background(), wide[i])
				if err != nil {
					t.Error(err)
					return
				}
				counts[i] = append(counts[i], len(r))
			}
		}()
	}
	wg.Wait()
	st := b.Stats()
	t.Logf("%d frames in %d runs; detections per frame %v", st.Frames, st.Runs, counts)
	if st.Frames != 40 || st.Runs > st.Frames*3/4 {
		t.Fatalf("%d frames in %d runs: no pair shared a run", st.Frames, st.Runs)
	}
	for i := range hs {
		if len(counts[i]) != 10 || counts[i][0] == 0 {
			t.Fatalf("caller %d: %v", i, counts[i])
		}
		if err := hs[i].Close(); err != nil {
			t.Fatal(err)
		}
	}
}
