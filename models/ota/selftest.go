package ota

import (
	"context"
	"fmt"
	"image"
	_ "image/jpeg" // self-test images
	_ "image/png"
	"math"
	"os"
	"slices"
	"sync"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/models/onnx"
)

// selfTestImage is the image a new model must run on, decoded once.
type selfTestImage struct {
	once sync.Once
	img  models.Image
	err  error
}

// testImage returns the self-test image: Config.SelfTestImage, or a synthetic gray one.
func (h *Handler) testImage() (models.Image, error) {
	h.img.once.Do(func() {
		if h.cfg.SelfTestImage == "" {
			h.img.img = grayImage(640, 480, 114)
			return
		}
		h.img.img, h.img.err = readImage(h.cfg.SelfTestImage)
	})
	return h.img.img, h.img.err
}

// selfTest opens m with ONNX Runtime (which checks the file's sha256, that it is an ONNX
// model, that its input is [1 3 H W] as the manifest says and that the family's decoder
// accepts its output shape), warms it up with one run on the self-test image, runs it again
// and checks what it found: labels of the manifest, scores in (0,1], boxes inside the image,
// and each of Config.SelfTestLabels.
func (h *Handler) selfTest(ctx context.Context, m models.Manifest) error {
	img, err := h.testImage()
	if err != nil {
		return err
	}
	d, err := onnx.Open(m, onnx.Options{Threads: h.cfg.Threads})
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer d.Close()
	var dets []models.Detection
	for run := range 2 { // the first run warms the session up
		if dets, err = d.Detect(ctx, img); err != nil {
			return fmt.Errorf("run %d on the self-test image: %w", run+1, err)
		}
	}
	return checkDetections(m, img, dets, h.cfg.SelfTestLabels)
}

// checkDetections checks a model's output on img against the Detector contract.
func checkDetections(m models.Manifest, img models.Image, dets []models.Detection, want []string) error {
	W, H := float32(img.Width), float32(img.Height)
	for i, d := range dets {
		b := d.Box
		switch {
		case d.ClassID < 0 || d.ClassID >= len(m.Labels) || d.Label != m.Labels[d.ClassID]:
			return fmt.Errorf("detection %d: class %d %q is not one of the manifest's %d labels", i, d.ClassID, d.Label, len(m.Labels))
		case !(d.Score > 0 && d.Score <= 1):
			return fmt.Errorf("detection %d: score %v is not in (0,1]", i, d.Score)
		case !finite(b.X1, b.Y1, b.X2, b.Y2) || b.X1 < 0 || b.Y1 < 0 || b.X2 > W || b.Y2 > H || b.Area() <= 0:
			return fmt.Errorf("detection %d: box %+v is not inside the %dx%d image", i, b, img.Width, img.Height)
		}
	}
	for _, l := range want {
		if !slices.ContainsFunc(dets, func(d models.Detection) bool { return d.Label == l }) {
			return fmt.Errorf("found no %q in the self-test image (found %d objects)", l, len(dets))
		}
	}
	return nil
}

func finite(vs ...float32) bool {
	for _, v := range vs {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}

// grayImage is a uniform BGR image.
func grayImage(w, h int, v byte) models.Image {
	pix := make([]byte, 3*w*h)
	for i := range pix {
		pix[i] = v
	}
	return models.Image{Width: w, Height: h, Stride: 3 * w, Pix: pix}
}

// readImage decodes a JPEG or PNG file into a BGR image.
func readImage(path string) (models.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return models.Image{}, fmt.Errorf("self-test image: %w", err)
	}
	defer f.Close()
	src, _, err := image.Decode(f)
	if err != nil {
		return models.Image{}, fmt.Errorf("self-test image %s: %w", path, err)
	}
	r := src.Bounds()
	w, h := r.Dx(), r.Dy()
	im := models.Image{Width: w, Height: h, Stride: 3 * w, Pix: make([]byte, 3*w*h)}
	for y := range h {
		for x := range w {
			cr, cg, cb, _ := src.At(r.Min.X+x, r.Min.Y+y).RGBA()
			o := y*im.Stride + 3*x
			im.Pix[o], im.Pix[o+1], im.Pix[o+2] = byte(cb>>8), byte(cg>>8), byte(cr>>8)
		}
	}
	if !im.Valid() {
		return im, fmt.Errorf("self-test image %s is empty", path)
	}
	return im, nil
}
