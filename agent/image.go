package agent

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif"  // decoders for image.Decode
	_ "image/jpeg" //
	_ "image/png"  //
	"os"

	_ "golang.org/x/image/bmp"  //
	_ "golang.org/x/image/webp" //

	"github.com/vigil-edge/vigil/models"
)

// maxImagePixels bounds a picture given to `detect`, checked from its header before decoding.
const maxImagePixels = 64 << 20

// readImage reads a picture file (JPEG, PNG, BMP, WebP, GIF) into a packed BGR image.
func readImage(path string) (models.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return models.Image{}, fmt.Errorf("cannot read the image: %w", err)
	}
	defer f.Close()
	cfg, format, err := image.DecodeConfig(f)
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return models.Image{}, errors.New("cannot read the image: not a JPEG, PNG, BMP, WebP or GIF picture")
		}
		return models.Image{}, fmt.Errorf("cannot read the image: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxImagePixels {
		return models.Image{}, fmt.Errorf("cannot read the image: a %s picture of %dx%d is empty or too large (at most %d pixels)", format, cfg.Width, cfg.Height, maxImagePixels)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return models.Image{}, err
	}
	src, _, err := image.Decode(f)
	if err != nil {
		return models.Image{}, fmt.Errorf("cannot read the image: %s: %w", format, err)
	}
	return toBGR(src), nil
}

// toBGR copies any image into packed BGR rows.
func toBGR(src image.Image) models.Image {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	out := models.Image{Width: w, Height: h, Stride: 3 * w, Pix: make([]byte, 3*w*h)}
	for y := range h {
		row := out.Pix[y*out.Stride:]
		for x := range w {
			c := color.NRGBAModel.Convert(src.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			row[3*x], row[3*x+1], row[3*x+2] = c.B, c.G, c.R
		}
	}
	return out
}
