package score

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/pipeline/rules"
	"github.com/vigil-edge/vigil/testvideos/data"
)

// stillClip makes (once, in the user cache folder, never in the repository) a clip of
// seconds of one still picture at 1280x720, 30 fps, H.264, as `ffmpeg -loop 1` does.
func stillClip(t testing.TB, seconds int) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (make deps installs it)")
	}
	img := data.MustPath(t, "images/darknet_dog.jpg")
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "vigil", "clips")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, fmt.Sprintf("still_720p30_%ds.mp4", seconds))
	if _, err := os.Stat(out); err == nil {
		return out
	}
	tmp := out + ".tmp.mp4"
	cmd := exec.Command("ffmpeg", "-v", "error", "-y", "-loop", "1", "-i", img, "-t", fmt.Sprint(seconds), "-r", "30",
		"-vf", "scale=1280:720,format=yuv420p", "-c:v", "libx264", "-preset", "veryfast", "-g", "60", tmp)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStillSceneRunsNoInference: a still 720p scene at detect_fps 5 with motion-driven
// detection runs the detector only for the full-frame passes (the first frame, while the
// background is learnt, then every full_frame_every), never for noise or compression artefacts.
func TestStillSceneRunsNoInference(t *testing.T) {
	clip := stillClip(t, 6)
	res, err := Replay(context.Background(), ReplayConfig{Clip: clip, DetectFPS: 5, Motion: true, FullFrameEvery: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Analysed < 29 || res.Analysed > 31 {
		t.Fatalf("analysed %d frames of 6 s at 5 fps", res.Analysed)
	}
	// the first frame: the background is learnt, the whole frame detected (as the agent does)
	if res.Inferences != 2 || res.Reasons["learning"] != 1 || res.Reasons["periodic"] != 1 || res.Reasons["no_motion"] != res.Analysed-2 {
		t.Errorf("still scene: %d inferences %v, want the first frame's and the periodic pass (5 s) only", res.Inferences, res.Reasons)
	}
}

// TestMotionEvaluation replays the clips of docs/BENCHMARKS.md ("Motion-driven detection")
// with and without motion-driven detection and prints inferences, events, line crossings and
// tracking scores. It takes minutes and asserts nothing about the figures (they are for the
// docs and `make bench`), so it runs only with VIGIL_MOTION_EVAL=1.
func TestMotionEvaluation(t *testing.T) {
	if os.Getenv("VIGIL_MOTION_EVAL") == "" {
		t.Skip("set VIGIL_MOTION_EVAL=1 to run the motion evaluation (minutes)")
	}
	ctx := context.Background()
	lines := func(ls ...rules.Rule) []rules.Rule { return ls }
	line := func(id string, ax, ay, bx, by float64) rules.Rule {
		return rules.Rule{ID: id, Type: rules.TypeLine, A: &rules.Point{X: ax, Y: ay}, B: &rules.Point{X: bx, Y: by}}
	}
	var pets []rules.Rule
	for _, l := range PETSLines {
		a, b := l.A, l.B
		pets = append(pets, rules.Rule{ID: l.Name, Type: rules.TypeLine, A: &a, B: &b})
	}
	type clip struct {
		name  string
		cfg   ReplayConfig
		ratio bool // report the inference ratio and the 2 % check
	}
	clips := []clip{
		{"parking lot, detect_fps 5", ReplayConfig{Clip: data.MustPath(t, "videos/parking_lot_cars_intel.mp4"), DetectFPS: 5,
			Lines: lines(line("y0.5", 0.02, 0.5, 0.98, 0.5), line("y0.3", 0.02, 0.3, 0.98, 0.3))}, true},
		{"PETS09-S2L1, detect_fps 5", ReplayConfig{Clip: data.MustPath(t, "videos/pedestrians_pets09_s2l1_vtest.avi"), DetectFPS: 5, Lines: pets}, true},
		{"still 720p30 60 s, detect_fps 5", ReplayConfig{Clip: stillClip(t, 60), DetectFPS: 5}, false},
		{"PETS09-S2L1 vs GT, every frame", ReplayConfig{Clip: data.MustPath(t, "videos/pedestrians_pets09_s2l1_vtest.avi"),
			GTDir: data.MustPath(t, "gt/mot15/PETS09-S2L1"), Labels: []string{"person"}, Score: 0.1}, false},
		{"TUD-Campus vs GT, every frame", ReplayConfig{Clip: data.MustPath(t, "videos/mot15_tud_campus.mp4"),
			GTDir: data.MustPath(t, "gt/mot15/TUD-Campus"), Labels: []string{"person"}, Score: 0.1}, false},
	}
	if only := os.Getenv("VIGIL_MOTION_EVAL_CLIP"); only != "" {
		clips = slicesFilter(clips, func(c clip) bool { return strings.Contains(c.name, only) })
	}
	for _, c := range clips {
		var runs [2]ReplayResult
		for i, on := range []bool{false, true} {
			cfg := c.cfg
			cfg.Motion = on
			start := time.Now()
			r, err := Replay(ctx, cfg)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			runs[i] = r
			mode := "every frame"
			if on {
				mode = "motion"
			}
			fmt.Printf("motion-eval %-34s %-11s analysed %4d inferences %4d events new %3d end %3d lines %s",
				c.name, mode, r.Analysed, r.Inferences, r.EventsNew, r.EventsEnd, lineTotals(cfg.Lines, r.Lines))
			if r.Metrics != nil {
				fmt.Printf(" MOTA %.1f%% IDF1 %.1f%% IDsw %d", 100*r.Metrics.MOTA, 100*r.Metrics.IDF1, r.Metrics.IDSwitches)
			}
			if on {
				fmt.Printf(" reasons %v motion %.3f ms/frame", r.Reasons, float64(r.MotionTime.Microseconds())/1000/float64(max(r.Analysed, 1)))
			}
			fmt.Printf(" (%.0f s)\n", time.Since(start).Seconds())
		}
		if c.ratio {
			base, gated := runs[0], runs[1]
			fmt.Printf("motion-eval %-34s inferences %.2fx fewer; events %+d/%+d; line crossings %+d of %d\n", c.name,
				float64(base.Inferences)/float64(max(gated.Inferences, 1)), gated.EventsNew-base.EventsNew, gated.EventsEnd-base.EventsEnd,
				crossings(gated.Lines)-crossings(base.Lines), crossings(base.Lines))
		}
	}
}

func slicesFilter[T any](s []T, keep func(T) bool) []T {
	var out []T
	for _, v := range s {
		if keep(v) {
			out = append(out, v)
		}
	}
	return out
}

func lineTotals(ls []rules.Rule, got map[string]LineCounts) string {
	var parts []string
	for _, l := range ls {
		c := got[l.ID]
		parts = append(parts, fmt.Sprintf("%s %d/%d", l.ID, c.AToB, c.BToA))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func crossings(m map[string]LineCounts) int {
	n := 0
	for _, c := range m {
		n += c.Total()
	}
	return n
}
