package agent_test

import (
	"bufio"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-edge/vigil/agent"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

func detectCLI(t *testing.T, args ...string) ([]agent.DetectLine, string, int) {
	t.Helper()
	var out, errb strings.Builder
	base := []string{"detect", "--model", filepath.Join(testharness.RepoRoot(), "models", "yolox_nano_coco_416.json"), "--model-dir", data.MustPath(t, "models")}
	code := agent.Main(append(base, args...), &out, &errb)
	var lines []agent.DetectLine
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l agent.DetectLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("output line is not JSON: %v\n%s", err, sc.Text())
		}
		lines = append(lines, l)
	}
	return lines, errb.String(), code
}

func TestDetectCommandOnImagesAndVideo(t *testing.T) {
	dog := data.MustPath(t, "images/darknet_dog.jpg")
	clip := data.MustPath(t, "videos/mot15_tud_campus.mp4")
	lines, stderr, code := detectCLI(t, "--max-frames", "5", dog, clip)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if len(lines) != 6 {
		t.Fatalf("got %d lines, want 1 for the image + 5 frames", len(lines))
	}
	labels := map[string]bool{}
	for _, o := range lines[0].Objects {
		labels[o.Label] = true
	}
	if !labels["bicycle"] || !(labels["car"] || labels["truck"]) || lines[0].FrameWidth != 768 {
		t.Errorf("dog image: %+v", lines[0])
	}
	for i, l := range lines[1:] {
		if l.FrameSeq != uint64(i+1) || l.FrameWidth != 640 || l.Source != clip {
			t.Errorf("frame line %d: %+v", i, l)
		}
		persons := 0
		for _, o := range l.Objects {
			if o.Label == "person" {
				persons++
			}
		}
		if persons == 0 {
			t.Errorf("frame %d of TUD-Campus: no person", l.FrameSeq)
		}
	}
}

func TestDetectCommandNamesBadFiles(t *testing.T) {
	notImage := filepath.Join(t.TempDir(), "x.jpg")
	_, stderr, code := detectCLI(t, notImage, "/nonexistent/clip.mp4")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{notImage + ": cannot read the image", "/nonexistent/clip.mp4"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// TestDetectCommandTiled runs the tiled detector on an aerial picture: it reports the model
// runs (a 2048x1365 picture in 416-pixel tiles at 20 % overlap is a 6x4 grid, plus the whole
// with --full-frame) and finds at least what the whole-picture pass finds; a bad overlap is a
// usage error naming the flag.
func TestDetectCommandTiled(t *testing.T) {
	img := data.MustPath(t, "images/aerial_terrain1_sahi.jpg")
	whole, stderr, code := detectCLI(t, img)
	if code != 0 || len(whole) != 1 {
		t.Fatalf("whole: exit %d, %d lines\n%s", code, len(whole), stderr)
	}
	tiled, stderr, code := detectCLI(t, "--tile", "416", "--overlap", "0.2", "--full-frame", img)
	if code != 0 || len(tiled) != 1 {
		t.Fatalf("tiled: exit %d, %d lines\n%s", code, len(tiled), stderr)
	}
	if tiled[0].Inferences != 6*4+1 {
		t.Errorf("tiled: %d inferences, want 25 (6x4 tiles + the whole)", tiled[0].Inferences)
	}
	if whole[0].Inferences != 0 {
		t.Errorf("whole: inferences %d, want none reported", whole[0].Inferences)
	}
	if len(tiled[0].Objects) < len(whole[0].Objects) {
		t.Errorf("tiled found %d objects, the whole picture %d", len(tiled[0].Objects), len(whole[0].Objects))
	}
	if _, stderr, code := detectCLI(t, "--tile", "416", "--overlap", "0.95", img); code != 2 || !strings.Contains(stderr, "--overlap") {
		t.Errorf("overlap 0.95: exit %d, stderr %q", code, stderr)
	}
}
