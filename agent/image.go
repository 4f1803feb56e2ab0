//go:build cgo

package agent

import (
	"errors"

	"gocv.io/x/gocv"

	"github.com/vigil-edge/vigil/models"
)

// readImage reads a picture file (JPEG, PNG, BMP, WebP) into a BGR image with OpenCV.
func readImage(path string) (models.Image, error) {
	mat := gocv.IMRead(path, gocv.IMReadColor)
	defer mat.Close()
	if mat.Empty() {
		return models.Image{}, errors.New("cannot read the image (missing, or not an image)")
	}
	return models.Image{Width: mat.Cols(), Height: mat.Rows(), Stride: mat.Cols() * 3, Pix: mat.ToBytes()}, nil
}
