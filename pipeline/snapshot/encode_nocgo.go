//go:build !cgo

package snapshot

import (
	"errors"

	"github.com/vigil-edge/vigil/models"
)

// Encode fails: JPEG encoding and drawing go through OpenCV (cgo).
func Encode(img models.Image, boxes []Box, redact Redact, enc Encoding) ([]byte, error) {
	return nil, errors.New("snapshot: this binary was built without cgo (CGO_ENABLED=0) and cannot encode JPEGs; build with cgo (libjpeg-turbo, libswscale)")
}
