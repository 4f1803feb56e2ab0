//go:build !cgo

package mask

import (
	"errors"

	"github.com/vigil-edge/vigil/models"
)

// Apply fails when there is something to redact: filling and blurring polygons go through
// OpenCV (cgo). Nothing unredacted must leave the device, so there is no silent fallback.
func Apply(img models.Image, masks []Mask) error {
	if len(masks) == 0 {
		return nil
	}
	return errors.New("apply privacy masks: this binary was built without cgo (CGO_ENABLED=0) and cannot redact; build with cgo and OpenCV")
}
