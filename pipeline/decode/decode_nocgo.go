//go:build !cgo

package decode

import (
	"errors"
	"fmt"

	"github.com/vigil-edge/vigil/pipeline/frame"
)

// The API of decode.go without libavcodec: New fails with errNoCgo, so no Decoder exists.

// Sentinel errors.
var (
	// ErrUnsupportedCodec: FFmpeg has no video decoder by the codec's name.
	ErrUnsupportedCodec = errors.New("unsupported codec")
	// ErrClosed: the Decoder was used after Close.
	ErrClosed = errors.New("decoder closed")
)

// errNoCgo: this build has no decoder at all.
var errNoCgo = errors.New("decode: this binary was built without cgo (CGO_ENABLED=0) and cannot decode video; build with cgo and FFmpeg's libavcodec")

// Option changes how New opens a decoder.
type Option func(*options)

type options struct{ threads int }

// WithThreads sets libavcodec's thread count (ignored: see New).
func WithThreads(n int) Option { return func(o *options) { o.threads = max(n, 0) } }

// Stats counts what a Decoder's buffer pool did.
type Stats struct {
	Allocated uint64 // buffers made
	Reused    uint64 // buffers taken from the free list
}

// Decoder is never made in this build.
type Decoder struct{}

// New fails: decoding needs libavcodec through cgo.
func New(c *frame.Codec, opts ...Option) (*Decoder, error) {
	name := ""
	if c != nil {
		name = c.Name
	}
	return nil, fmt.Errorf("open %q decoder: %w", name, errNoCgo)
}

// Name is "".
func (d *Decoder) Name() string { return "" }

// Stats is zero.
func (d *Decoder) Stats() Stats { return Stats{} }

// Decode fails: see New.
func (d *Decoder) Decode(p frame.Packet) ([]*frame.Frame, error) { return nil, errNoCgo }

// Flush fails: see New.
func (d *Decoder) Flush() ([]*frame.Frame, error) { return nil, errNoCgo }

// Close does nothing.
func (d *Decoder) Close() error { return nil }
