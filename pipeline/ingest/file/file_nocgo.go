//go:build !cgo

package file

import (
	"context"
	"errors"
	"fmt"

	"github.com/vigil-edge/vigil/pipeline/frame"
)

// errNoCgo: this build has no FFmpeg demuxer.
var errNoCgo = errors.New("file source: this binary was built without cgo (CGO_ENABLED=0) and cannot read video files; build with cgo and FFmpeg's libavformat")

// New fails: reading video files needs libavformat through cgo.
func New(cfg Config) (*Source, error) { return nil, errNoCgo }

// Run fails: see New.
func (s *Source) Run(ctx context.Context, sink func(frame.Packet)) error {
	return fmt.Errorf("file %s: %w", s.path, errNoCgo)
}
