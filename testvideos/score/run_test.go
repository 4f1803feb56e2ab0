package score

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/vigil-edge/vigil/testvideos/data"
)

// TestRealClips runs the real pipeline pieces (file source, decoder, YOLOX-nano, trackers)
// and scores them. Detections come from the cache after the first run.
//
// Measured (YOLOX-nano 416, score 0.1, person):
//
//	TUD-Campus, 71 frames:   bytetrack MOTA 66.3 % IDF1 68.0 % IDsw 2;  greedy MOTA 60.7 % IDF1 59.9 % IDsw 10
//	PETS09-S2L1, 150 frames: bytetrack MOTA 68.4 % IDF1 74.5 % IDsw 8;  greedy MOTA 54.9 % IDF1 63.3 % IDsw 17
func TestRealClips(t *testing.T) {
	cases := []struct {
		clip, gt       string
		maxFrames      int
		minMOTA, minID float64
	}{
		{"videos/mot15_tud_campus.mp4", "gt/mot15/TUD-Campus", 0, 0.62, 0.64},
		{"videos/pedestrians_pets09_s2l1_vtest.avi", "gt/mot15/PETS09-S2L1", 150, 0.64, 0.70},
	}
	for _, c := range cases {
		t.Run(c.gt, func(t *testing.T) {
			cfg := Config{Clip: data.MustPath(t, c.clip), GTDir: data.MustPath(t, c.gt), MaxFrames: c.maxFrames}
			bt, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Tracker = GreedyIoU
			gr, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := WriteTable(&out, []Result{bt, gr}); err != nil {
				t.Fatal(err)
			}
			t.Logf("\n%s", out.String())
			b, g := bt.Metrics, gr.Metrics
			if want := c.maxFrames; want > 0 && bt.Frames != want {
				t.Errorf("scored %d frames, want %d", bt.Frames, want)
			}
			if b.MOTA < c.minMOTA || b.IDF1 < c.minID {
				t.Errorf("bytetrack MOTA %.3f IDF1 %.3f, want >= %.2f, %.2f", b.MOTA, b.IDF1, c.minMOTA, c.minID)
			}
			if b.IDF1 < g.IDF1 || b.IDSwitches > g.IDSwitches {
				t.Errorf("bytetrack IDF1 %.3f IDsw %d does not beat greedy IDF1 %.3f IDsw %d", b.IDF1, b.IDSwitches, g.IDF1, g.IDSwitches)
			}
			if !strings.Contains(out.String(), "bytetrack") || !strings.Contains(out.String(), "detector") {
				t.Errorf("table:\n%s", out.String())
			}
		})
	}
}

func TestDetectEveryScoresFewerFrames(t *testing.T) {
	cfg := Config{Clip: data.MustPath(t, "videos/mot15_tud_campus.mp4"), GTDir: data.MustPath(t, "gt/mot15/TUD-Campus"), DetectEvery: 3, MaxFrames: 30}
	dets, err := Detections(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(dets) != 10 || dets[1].FrameSeq != 4 || dets[9].FrameSeq != 28 {
		t.Fatalf("%d frames, seqs %d..%d", len(dets), dets[0].FrameSeq, dets[len(dets)-1].FrameSeq)
	}
	// Capture times follow the video (25 fps): 3 frames = 120 ms apart.
	if dt := dets[1].CapturedAt.Sub(dets[0].CapturedAt); dt.Milliseconds() != 120 {
		t.Fatalf("dt %v, want 120ms", dt)
	}
	if _, err := Run(context.Background(), Config{Clip: cfg.Clip, GTDir: cfg.GTDir, Tracker: "sort"}); err == nil {
		t.Fatal("unknown tracker accepted")
	}
}

func TestDetectionCacheOff(t *testing.T) {
	// With the cache off the detector runs: 5 frames, and the same result as from the cache.
	cfg := Config{Clip: data.MustPath(t, "videos/mot15_tud_campus.mp4"), GTDir: data.MustPath(t, "gt/mot15/TUD-Campus"), MaxFrames: 5}
	cached, err := Detections(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.CacheDir = "off"
	fresh, err := Detections(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh) != 5 || len(cached) != 5 {
		t.Fatalf("%d and %d frames", len(fresh), len(cached))
	}
	for i := range fresh {
		if len(fresh[i].Objects) != len(cached[i].Objects) || fresh[i].PTS != cached[i].PTS {
			t.Fatalf("frame %d: fresh %+v, cached %+v", i+1, fresh[i], cached[i])
		}
	}
}
