package agent

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/models/tile"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// TestAutoTilerFollowsHeight: with tiling.auto the grid is tile.GridForAltitude's for the
// drone's current height, the fixed tiles while the height is unknown, and the real model runs
// on whichever is chosen.
func TestAutoTilerFollowsHeight(t *testing.T) {
	mc := config.Model{Manifest: filepath.Join(testharness.RepoRoot(), "models", "yolox_nano_coco_416.json"),
		Dir: data.MustPath(t, "models"), Threads: 1}
	det, err := OpenDetector(mc, config.Camera{})
	if err != nil {
		t.Fatal(err)
	}
	var alt float64
	known := false
	opt := &config.Optics{HFOVDeg: 80}
	at, err := newAutoTiler(det, tile.Config{}, func(w int) float64 { return hfovDeg(opt, w) }, func() (float64, bool) { return alt, known })
	if err != nil {
		t.Fatal(err)
	}
	defer at.Close()

	const w, h = 1920, 1080
	in := det.Manifest().Input
	for _, tc := range []struct {
		known bool
		alt   float64
	}{{false, 0}, {true, 10}, {true, 60}, {true, 120}} {
		known, alt = tc.known, tc.alt
		got := tiles(at, w, h)
		want := len(tile.Grid(w, h, in.Width, in.Height, tile.DefaultOverlap)) // fixed tiles of the model's size
		if tc.known {
			c, r := tile.GridForAltitude(tc.alt, w, h, tile.Optics{HFOVDeg: 80, ModelW: in.Width, ModelH: in.Height})
			want = c * r
		}
		if got != want {
			t.Errorf("height %v (known %v): %d tiles, want %d", tc.alt, tc.known, got, want)
		}
	}
	// Higher means smaller people, so more tiles.
	known, alt = true, 10
	low := tiles(at, w, h)
	alt = 60
	if high := tiles(at, w, h); high <= low {
		t.Errorf("tiles at 60 m (%d) not more than at 10 m (%d)", high, low)
	}
	img := models.Image{Width: w, Height: h, Stride: 3 * w, Pix: make([]byte, 3*w*h)}
	if _, err := at.Detect(context.Background(), img); err != nil {
		t.Fatal(err)
	}
	if n := at.detector(w, h).LastInferences(); n != tiles(at, w, h) {
		t.Errorf("ran %d inferences, want one per tile (%d)", n, tiles(at, w, h))
	}
	if got := hfovDeg(&config.Optics{Fx: 960}, 1920); got < 89.99 || got > 90.01 {
		t.Errorf("hfov from fx = %v, want 90", got)
	}
}

// tiles is the number of tiles the auto tiler would use on a w x h frame now.
func tiles(at *autoTiler, w, h int) int { return len(at.detector(w, h).Grid(w, h)) }
