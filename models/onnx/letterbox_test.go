package onnx

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-edge/vigil/models"
)

func TestLetterboxGeometry(t *testing.T) {
	for _, c := range []struct {
		mode           string
		srcW, srcH     int
		rw, rh, ox, oy int
		sx, sy         float32
	}{
		{"top-left", 768, 576, 416, 312, 0, 0, 416. / 768, 312. / 576},
		{"center", 768, 576, 416, 312, 0, 52, 416. / 768, 312. / 576},
		{"top-left", 480, 640, 312, 416, 0, 0, 312. / 480, 416. / 640},
		{"center", 480, 640, 312, 416, 52, 0, 312. / 480, 416. / 640},
		{"stretch", 768, 576, 416, 416, 0, 0, 416. / 768, 416. / 576},
		{"top-left", 416, 416, 416, 416, 0, 0, 1, 1},
		{"top-left", 100, 50, 416, 208, 0, 0, 4.16, 4.16}, // upscaled
		{"top-left", 10000, 1, 416, 1, 0, 0, 0.0416, 1},   // at least one pixel
	} {
		g := letterbox(c.mode, c.srcW, c.srcH, 416, 416)
		want := geometry{c.srcW, c.srcH, c.rw, c.rh, c.ox, c.oy, c.sx, c.sy}
		if g != want {
			t.Errorf("letterbox(%s, %dx%d) = %+v, want %+v", c.mode, c.srcW, c.srcH, g, want)
		}
	}
	// toSource undoes the placement and clips to the frame.
	g := letterbox("center", 768, 576, 416, 416)
	got := g.toSource(models.Box{X1: 208, Y1: 52 + 156, X2: 416 + 30, Y2: 52 + 312 + 10})
	want := models.Box{X1: 384, Y1: 288, X2: 768, Y2: 576}
	if math.Abs(float64(got.X1-want.X1)) > 0.01 || math.Abs(float64(got.Y1-want.Y1)) > 0.01 || got.X2 != want.X2 || got.Y2 != want.Y2 {
		t.Errorf("toSource = %+v, want %+v", got, want)
	}
	if b := g.toSource(models.Box{X1: 0, Y1: 0, X2: 100, Y2: 40}); b.Area() != 0 {
		t.Errorf("box in the padding maps to %+v, want an empty box", b)
	}
}

// TestPrepare checks the tensor a frame becomes, for each colour order, normalisation and
// letterbox mode: the picture's rectangle holds the mapped pixel values, the rest the padding.
func TestPrepare(t *testing.T) {
	d := open(t, manifest(t), Options{})
	orig := d.m.Input
	const w, h = 832, 416 // half-size and same aspect for the model: no interpolation blur on a flat colour
	img := models.Image{Width: w, Height: h, Stride: 3 * w, Pix: make([]byte, 3*w*h)}
	for i := 0; i < len(img.Pix); i += 3 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2] = 10, 20, 30 // B, G, R
	}
	for _, c := range []struct {
		name   string
		in     func(*models.Input)
		pic    [3]float32 // input channels inside the picture
		pad    [3]float32 // and in the padding
		picTop int        // first row of the picture (208 rows tall)
	}{
		{"yolox bgr top-left", func(*models.Input) {}, [3]float32{10, 20, 30}, [3]float32{114, 114, 114}, 0},
		{"rgb 0-1 center", func(in *models.Input) {
			in.ColorOrder, in.Scale, in.Letterbox, in.PadValue = "rgb", 1.0/255, "center", 0
		}, [3]float32{30. / 255, 20. / 255, 10. / 255}, [3]float32{0, 0, 0}, 104},
		{"mean std", func(in *models.Input) {
			in.Mean, in.Std, in.PadValue = [3]float32{10, 10, 10}, [3]float32{2, 0, 5}, 10
		}, [3]float32{0, 10, 4}, [3]float32{0, 0, 0}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			d.m.Input = orig
			c.in(&d.m.Input)
			d.setupInput()
			d.geom = geometry{} // force the padding to be rewritten
			if _, err := d.prepare(img); err != nil {
				t.Fatal(err)
			}
			tensor := d.in.GetData()
			for ch := range 3 {
				for _, y := range []int{0, 103, 104, 311, 312, 415} {
					for _, x := range []int{0, 415} {
						v := tensor[ch*416*416+y*416+x]
						want := c.pad[ch]
						if y >= c.picTop && y < c.picTop+208 {
							want = c.pic[ch]
						}
						if math.Abs(float64(v-want)) > 1e-5 {
							t.Fatalf("channel %d at (%d,%d) = %v, want %v", ch, x, y, v, want)
						}
					}
				}
			}
		})
	}
}

func TestFindLibrary(t *testing.T) {
	root := t.TempDir()
	lib := filepath.Join(root, "proj", ".deps", "onnxruntime", "x64", libName)
	if err := os.MkdirAll(filepath.Dir(lib), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lib, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(root, "proj", "a", "b")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	nowhere := filepath.Join(root, "elsewhere")
	beside := filepath.Join(root, "bin", libName)
	if err := os.MkdirAll(filepath.Dir(beside), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(beside, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name, setting, cwd, exe, arch, want string
	}{
		{"setting wins", beside, deep, "", "x64", beside},
		{"upward from cwd", "", deep, "", "x64", lib},
		{"upward from the executable", "", nowhere, filepath.Join(deep, "vigil-agent"), "x64", lib},
		{"beside the executable", "", nowhere, filepath.Join(root, "bin", "vigil-agent"), "x64", beside},
	} {
		if got, looked := findLibrary(c.setting, c.cwd, c.exe, c.arch); got != c.want {
			t.Errorf("%s: got %q, want %q (looked in %v)", c.name, got, c.want, looked)
		}
	}
	// A setting that names no file stops the search and is reported.
	got, looked := findLibrary(filepath.Join(root, "missing.so"), deep, "", "x64")
	if got != "" || len(looked) != 1 || !strings.HasPrefix(looked[0], LibraryEnv+"=") {
		t.Errorf("missing setting: got %q, looked %v", got, looked)
	}
	// Nothing anywhere (arm64 has no library here): the search lists where it looked.
	if _, err := os.Stat("/usr/lib/" + libName); err == nil {
		t.Skip("a system-wide library is installed")
	}
	if _, err := os.Stat("/usr/local/lib/" + libName); err == nil {
		t.Skip("a system-wide library is installed")
	}
	if _, err := os.Stat("/usr/lib/vigil/" + libName); err == nil {
		t.Skip("the vigil-agent package is installed")
	}
	got, looked = findLibrary("", deep, filepath.Join(root, "bin2", "x"), "arm64")
	want := []string{
		filepath.Join(deep, ".deps/onnxruntime/arm64", libName),
		filepath.Join(root, "bin2", libName),
		"/usr/lib/vigil/" + libName,
		"/usr/lib/" + libName,
		"/usr/local/lib/" + libName,
	}
	for _, w := range want {
		if !strings.Contains(strings.Join(looked, "\n"), w) {
			t.Errorf("looked in %v, missing %s", looked, w)
		}
	}
	if got != "" {
		t.Errorf("found %q", got)
	}
	if msg := notFound(looked).Error(); !strings.Contains(msg, "run make deps") || !strings.Contains(msg, want[0]) {
		t.Errorf("not-found error %q does not say where it looked and what to do", msg)
	}
}
