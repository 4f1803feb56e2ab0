package onnx

import (
	"context"
	"image"
	"testing"

	"gocv.io/x/gocv"

	"github.com/vigil-edge/vigil/models"
)

// i420 converts a BGR image (even sizes) to an I420 one with OpenCV, as a decoder would give it.
func i420(t testing.TB, img models.Image) models.Image {
	t.Helper()
	if img.Width%2 != 0 || img.Height%2 != 0 {
		t.Fatalf("odd size %dx%d", img.Width, img.Height)
	}
	src, err := gocv.NewMatFromBytes(img.Height, img.Width, gocv.MatTypeCV8UC3, img.Pix)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := gocv.NewMat()
	defer dst.Close()
	gocv.CvtColor(src, &dst, gocv.ColorBGRToYUVI420)
	b := dst.ToBytes()
	w, h := img.Width, img.Height
	ys, cs := w*h, (w/2)*(h/2)
	return models.Image{Width: w, Height: h, Format: models.I420, Stride: w, Pix: b[:ys],
		U: b[ys : ys+cs], UStride: w / 2, V: b[ys+cs : ys+2*cs], VStride: w / 2}
}

// TestYUVMatchesBGR: a YUV frame scaled by libswscale straight into the input finds the same
// objects as the same picture in BGR through OpenCV.
func TestYUVMatchesBGR(t *testing.T) {
	d := open(t, manifest(t), Options{})
	ctx := context.Background()
	for _, rel := range []string{"images/darknet_dog.jpg", "images/darknet_person.jpg"} {
		bgr := readImage(t, rel)
		bgr.Width &^= 1
		bgr.Height &^= 1
		packed := make([]byte, 3*bgr.Width*bgr.Height)
		for y := range bgr.Height {
			copy(packed[y*3*bgr.Width:(y+1)*3*bgr.Width], bgr.Pix[y*bgr.Stride:])
		}
		bgr = models.Image{Width: bgr.Width, Height: bgr.Height, Stride: 3 * bgr.Width, Pix: packed}
		yuv := i420(t, bgr)
		want, err := d.Detect(ctx, bgr)
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.Detect(ctx, yuv)
		if err != nil {
			t.Fatal(err)
		}
		checkDetections(t, got, yuv, d.score)
		strong := 0
		for _, w := range want {
			if w.Score < 0.5 {
				continue
			}
			strong++
			best := float32(0)
			for _, g := range got {
				if g.Label == w.Label {
					best = max(best, g.Box.IoU(w.Box))
				}
			}
			if best < 0.85 {
				t.Errorf("%s: %s %.2f at %+v found from BGR, best IoU from YUV %.2f (YUV found %v)", rel, w.Label, w.Score, w.Box, best, got)
			}
		}
		if strong == 0 {
			t.Fatalf("%s: no object above 0.5 from BGR: %v", rel, want)
		}
	}
}

// TestYUVCrop: a crop of a YUV frame (plane pointers offset, parent strides) is detected as
// that part of the picture: its objects come back in the crop's pixels.
func TestYUVCrop(t *testing.T) {
	d := open(t, manifest(t), Options{})
	ctx := context.Background()
	bgr := readImage(t, "images/darknet_dog.jpg")
	bgr.Width &^= 1
	bgr.Height &^= 1
	packed := make([]byte, 3*bgr.Width*bgr.Height)
	for y := range bgr.Height {
		copy(packed[y*3*bgr.Width:(y+1)*3*bgr.Width], bgr.Pix[y*bgr.Stride:])
	}
	bgr = models.Image{Width: bgr.Width, Height: bgr.Height, Stride: 3 * bgr.Width, Pix: packed}
	yuv := i420(t, bgr)
	full, err := d.Detect(ctx, yuv)
	if err != nil {
		t.Fatal(err)
	}
	var dog *models.Detection
	for i := range full {
		if full[i].Label == "dog" {
			dog = &full[i]
			break
		}
	}
	if dog == nil {
		t.Fatalf("no dog in the whole frame: %v", full)
	}
	// A crop around the dog, starting at odd coordinates (moved to even ones).
	r := image.Rect(int(dog.Box.X1)-41, int(dog.Box.Y1)-31, int(dog.Box.X2)+23, int(dog.Box.Y2)+17).Intersect(image.Rect(0, 0, yuv.Width, yuv.Height))
	sub, rr := yuv.Crop(r)
	if rr.Min.X%2 != 0 || rr.Min.Y%2 != 0 || !sub.Valid() {
		t.Fatalf("crop %v -> %v, valid %v", r, rr, sub.Valid())
	}
	got, err := d.Detect(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	best := float32(0)
	for _, g := range got {
		if g.Label == "dog" {
			b := models.Box{X1: g.Box.X1 + float32(rr.Min.X), Y1: g.Box.Y1 + float32(rr.Min.Y), X2: g.Box.X2 + float32(rr.Min.X), Y2: g.Box.Y2 + float32(rr.Min.Y)}
			best = max(best, b.IoU(dog.Box))
		}
	}
	if best < 0.8 {
		t.Fatalf("dog in the crop %v: best IoU %.2f with the whole frame's %+v (crop found %v)", rr, best, dog.Box, got)
	}
}

// BenchmarkPrepareYUV is the letterbox and tensor fill of a 768x576 I420 frame (libswscale),
// to compare with BenchmarkPrepare (the same frame in BGR through OpenCV).
func BenchmarkPrepareYUV(b *testing.B) {
	d := open(b, manifest(b), Options{Threads: 1})
	img := i420(b, petsFrame(b))
	for b.Loop() {
		if _, err := d.prepare(img); err != nil {
			b.Fatal(err)
		}
	}
}
