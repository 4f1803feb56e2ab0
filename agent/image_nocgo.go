//go:build !cgo

package agent

import (
	"errors"

	"github.com/vigil-edge/vigil/models"
)

// readImage fails: pictures are read with OpenCV (cgo).
func readImage(path string) (models.Image, error) {
	return models.Image{}, errors.New("this binary was built without cgo (CGO_ENABLED=0) and cannot read pictures; build with cgo and OpenCV")
}
