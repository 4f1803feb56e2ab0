//go:build !cgo

package decode

import (
	"errors"
	"fmt"

	"github.com/vigil-edge/vigil/models"
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

type options struct {
	threads int
	hwaccel string
}

// WithThreads sets libavcodec's thread count (ignored: see New).
func WithThreads(n int) Option { return func(o *options) { o.threads = max(n, 0) } }

// Hardware decoding choices for WithHWAccel.
const (
	HWAuto    = "auto"
	HWVAAPI   = "vaapi"
	HWV4L2M2M = "v4l2m2m"
	HWNone    = "none"
)

// HWAccels lists the accepted WithHWAccel values.
var HWAccels = []string{HWAuto, HWVAAPI, HWV4L2M2M, HWNone}

// WithHWAccel asks for hardware decoding (ignored: see New).
func WithHWAccel(name string) Option { return func(o *options) { o.hwaccel = name } }

// ErrNoHardware: the hardware decoding asked for cannot be used here.
var ErrNoHardware = errors.New("hardware decoding unavailable, decoding in software")

// Stats counts what a Decoder did besides decoding.
type Stats struct {
	Frames      uint64
	Converted   uint64
	Transferred uint64
}

// ToBGR fails: the conversion is libswscale's.
func ToBGR(img models.Image, dst []byte) (models.Image, []byte, error) {
	return models.Image{}, dst, errNoCgo
}

// HWAccel is HWNone.
func (d *Decoder) HWAccel() string { return HWNone }

// HWFallback is nil.
func (d *Decoder) HWFallback() error { return nil }

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
