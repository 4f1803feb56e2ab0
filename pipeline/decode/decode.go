//go:build cgo

// Package decode turns compressed video packets into frames with FFmpeg's libavcodec (through
// cgo). Frames are the decoder's own YUV pictures, referenced rather than copied; nothing is
// converted to BGR here: the detector scales the frames it runs on straight from YUV
// (models/onnx), and ToBGR makes a full-size BGR copy only for the frames a snapshot needs.
//
//	frame.Packet ──▶ Decoder.Decode ──▶ avcodec_send_packet / receive_frame ──▶ []*frame.Frame
//	                  (software, or VAAPI / V4L2 m2m    (I420 or NV12 planes of a referenced
//	                   with a fallback to software)      AVFrame; other layouts become I420)
//
// Any decoder FFmpeg was built with works (h264, hevc, mpeg4, msmpeg4v3, mjpeg, ...). A
// frame's picture goes back to libavcodec's buffer pool when the frame is Released; the pool
// grows to the number of pictures held at once (the decoder's reference frames plus what the
// caller holds) and no further. A picture is never reused while a frame still holds it.
//
// FFmpeg's own log is set to fatal messages only the first time a Decoder is made: per-packet
// complaints about corrupt input come back as errors instead, for the caller to count.
package decode

/*
#cgo pkg-config: libavcodec libavutil libswscale
#include <stdlib.h>
#include "vd.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
)

// Sentinel errors.
var (
	// ErrUnsupportedCodec: FFmpeg has no video decoder by the codec's name.
	ErrUnsupportedCodec = errors.New("unsupported codec")
	// ErrClosed: the Decoder was used after Close.
	ErrClosed = errors.New("decoder closed")
)

// aliases maps names people use to FFmpeg's decoder names.
var aliases = map[string]string{"h265": "hevc", "avc": "h264"}

// maxPending bounds the pts -> capture-time entries kept for frames not yet out of the decoder.
const maxPending = 64

// Option changes how New opens a decoder.
type Option func(*options)

type options struct {
	threads int
	hwaccel string
}

// Hardware decoding choices for WithHWAccel.
const (
	HWAuto    = "auto"    // VAAPI, else V4L2 memory-to-memory, else software
	HWVAAPI   = "vaapi"   // Intel/AMD GPUs (and others with a VA-API driver) through /dev/dri
	HWV4L2M2M = "v4l2m2m" // SoC decoders behind V4L2 (Raspberry Pi, Rockchip with a v4l2 driver)
	HWNone    = "none"    // software only
)

// HWAccels lists the accepted WithHWAccel values.
var HWAccels = []string{HWAuto, HWVAAPI, HWV4L2M2M, HWNone}

// WithHWAccel asks for hardware decoding (one of HWAccels; "" means none). When the hardware
// cannot be used (no device, no driver, the codec not supported) the decoder opens in
// software and HWFallback says why.
func WithHWAccel(name string) Option {
	return func(o *options) { o.hwaccel = name }
}

// WithThreads sets libavcodec's thread count: 1 (the default) decodes on the calling goroutine's
// thread with no added latency; n > 1 uses n threads (frame threading adds n-1 frames of delay);
// 0 lets FFmpeg pick from the number of CPUs.
func WithThreads(n int) Option {
	return func(o *options) { o.threads = max(n, 0) }
}

// Stats counts what a Decoder did besides decoding.
type Stats struct {
	Frames      uint64 // frames handed out
	Converted   uint64 // frames whose picture was not I420 or NV12 and was converted to I420
	Transferred uint64 // frames copied from a hardware surface to memory
}

// Decoder decodes one stream's packets. It is not safe for concurrent use: Decode, Flush and
// Close are called from one goroutine at a time. Frames it returns may be Released from any
// goroutine, also after Close.
type Decoder struct {
	c        *C.vd
	name     string // FFmpeg's decoder name
	hw       string // hardware in use: HWVAAPI, HWV4L2M2M or HWNone
	fallback error  // why the asked-for hardware is not in use; nil when it is, or none was asked for
	stats    Stats
	pending  []pending // capture times of packets whose frames are not out yet, oldest first
}

type pending struct {
	pts int64 // microseconds
	at  time.Time
}

var quietOnce sync.Once

// New opens a decoder for c: c.Name is FFmpeg's decoder name ("h264", "hevc", "mpeg4",
// "msmpeg4v3", ...; case does not matter, "h265" is taken for "hevc"), c.Extradata the out-of-band configuration, if
// any (avcC, hvcC, or Annex-B parameter sets; H.264/H.265 also decode with none when key
// frames carry their parameter sets in-band). Close the Decoder when done.
func New(c *frame.Codec, opts ...Option) (*Decoder, error) {
	if c == nil {
		return nil, fmt.Errorf("decode: %w: no codec given", ErrUnsupportedCodec)
	}
	o := options{threads: 1, hwaccel: HWNone}
	for _, opt := range opts {
		opt(&o)
	}
	switch o.hwaccel {
	case "":
		o.hwaccel = HWNone
	case HWAuto, HWVAAPI, HWV4L2M2M, HWNone:
	default:
		return nil, fmt.Errorf("decode: hwaccel %q: must be one of %s", o.hwaccel, strings.Join(HWAccels, ", "))
	}
	quietOnce.Do(func() { C.vd_quiet() })

	name := strings.ToLower(c.Name)
	if a, ok := aliases[name]; ok {
		name = a
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var extra *C.uint8_t
	if len(c.Extradata) > 0 {
		extra = (*C.uint8_t)(unsafe.Pointer(&c.Extradata[0]))
	}
	chw := C.CString(o.hwaccel)
	defer C.free(unsafe.Pointer(chw))
	var (
		cd    *C.vd
		dname *C.char
		hw    *C.char
		note  [512]C.char
	)
	ret := C.vd_open(cname, extra, C.int(len(c.Extradata)), C.int(max(c.Width, 0)), C.int(max(c.Height, 0)), C.int(o.threads),
		chw, &cd, &dname, &hw, &note[0], C.int(len(note)))
	switch {
	case ret == C.VD_ERR_NOT_FOUND:
		return nil, fmt.Errorf("decode: %w %q: FFmpeg has no decoder by that name", ErrUnsupportedCodec, c.Name)
	case ret == C.VD_ERR_NOT_VIDEO:
		return nil, fmt.Errorf("decode: %w %q: not a video decoder", ErrUnsupportedCodec, c.Name)
	case ret < 0:
		return nil, fmt.Errorf("decode: open %s decoder: %w", c.Name, avError(ret))
	}
	dec := &Decoder{c: cd, name: C.GoString(dname), hw: C.GoString(hw)}
	if o.hwaccel != HWNone && dec.hw == HWNone {
		dec.fallback = fmt.Errorf("%w: hwaccel %s: %s", ErrNoHardware, o.hwaccel, C.GoString(&note[0]))
	}
	return dec, nil
}

// ErrNoHardware: the hardware decoding asked for cannot be used here; the decoder runs in
// software.
var ErrNoHardware = errors.New("hardware decoding unavailable, decoding in software")

// Name is the name of the FFmpeg decoder in use.
func (d *Decoder) Name() string { return d.name }

// HWAccel is the hardware decoding in use: HWVAAPI, HWV4L2M2M or HWNone.
func (d *Decoder) HWAccel() string { return d.hw }

// HWFallback says why the hardware asked for in WithHWAccel is not in use (wrapping
// ErrNoHardware), or nil when it is or none was asked for.
func (d *Decoder) HWFallback() error { return d.fallback }

// Stats reports the decoder's counts so far.
func (d *Decoder) Stats() Stats { return d.stats }

// Decode sends one packet to the decoder and returns the frames that are ready: none while the
// decoder fills its reordering delay, sometimes more than one. Each frame carries the PTS and
// CapturedAt of the packet it came from, Camera "" and Seq 0 for the caller to fill; the
// caller owns the frames and Releases each one. An empty packet is ignored. p.Codec is not
// looked at: when a source's Codec changes, make a new Decoder.
//
// PTS should be presentation times (as RTSP and containers give them): the decoder reorders
// pictures, not timestamps, so a frame's PTS is its own packet's.
//
// A packet the decoder rejects (corrupt, truncated) gives an error naming the codec; the
// decoder stays usable and the next packets decode (until the next key frame, pictures may
// show damage). When err != nil the frames returned, if any, are still valid and owned by the
// caller.
func (d *Decoder) Decode(p frame.Packet) ([]*frame.Frame, error) {
	if d.c == nil {
		return nil, fmt.Errorf("decode %s: %w", d.name, ErrClosed)
	}
	if len(p.Data) == 0 {
		return nil, nil
	}
	if len(p.Data) > math.MaxInt32-1024 {
		return nil, fmt.Errorf("decode %s: packet of %d bytes is too big", d.name, len(p.Data))
	}
	pts := p.PTS.Microseconds()
	key := C.int(0)
	if p.Key {
		key = 1
	}
	data := (*C.uint8_t)(unsafe.Pointer(&p.Data[0]))
	ret := C.vd_send(d.c, data, C.int(len(p.Data)), C.int64_t(pts), key)
	var frames []*frame.Frame
	if ret == C.vd_eagain() {
		// The decoder wants its output read first: read it, then send again.
		var err error
		if frames, err = d.receive(frames); err != nil {
			return frames, err
		}
		ret = C.vd_send(d.c, data, C.int(len(p.Data)), C.int64_t(pts), key)
	}
	if ret < 0 {
		return frames, fmt.Errorf("decode %s packet (pts %v, %d bytes): %w", d.name, p.PTS, len(p.Data), avError(ret))
	}
	d.remember(pts, p.CapturedAt)
	return d.receive(frames)
}

// Flush drains the frames still held for reordering at the end of a stream and resets the
// decoder, which then takes a new stream starting at a key frame.
func (d *Decoder) Flush() ([]*frame.Frame, error) {
	if d.c == nil {
		return nil, fmt.Errorf("decode %s: %w", d.name, ErrClosed)
	}
	var frames []*frame.Frame
	var err error
	if ret := C.vd_drain(d.c); ret < 0 && ret != C.vd_eof() {
		err = fmt.Errorf("decode %s: drain: %w", d.name, avError(ret))
	} else {
		frames, err = d.receive(nil)
	}
	C.vd_reset(d.c)
	d.pending = d.pending[:0]
	return frames, err
}

// Close frees the decoder's native memory. It is safe to call more than once; frames already
// returned stay valid.
func (d *Decoder) Close() error {
	if d.c != nil {
		C.vd_close(d.c)
		d.c = nil
	}
	return nil
}

// receive appends every frame the decoder has ready to frames.
func (d *Decoder) receive(frames []*frame.Frame) ([]*frame.Frame, error) {
	for {
		var info C.vd_frame_info
		ret := C.vd_receive(d.c, &info)
		if ret == C.vd_eagain() || ret == C.vd_eof() {
			return frames, nil
		}
		if ret < 0 {
			return frames, fmt.Errorf("decode %s: %w", d.name, avError(ret))
		}
		w, h := int(info.width), int(info.height)
		img := models.Image{Width: w, Height: h, Format: models.I420, FullRange: info.full_range != 0, Matrix: int(info.matrix)}
		ch := (h + 1) / 2
		img.Stride = int(info.linesize[0])
		img.Pix = unsafe.Slice((*byte)(unsafe.Pointer(info.data[0])), img.Stride*h)
		img.UStride = int(info.linesize[1])
		img.U = unsafe.Slice((*byte)(unsafe.Pointer(info.data[1])), img.UStride*ch)
		if info.format == C.VD_FMT_NV12 {
			img.Format = models.NV12
		} else {
			img.VStride = int(info.linesize[2])
			img.V = unsafe.Slice((*byte)(unsafe.Pointer(info.data[2])), img.VStride*ch)
		}
		d.stats.Frames++
		d.stats.Converted += uint64(info.converted)
		d.stats.Transferred += uint64(info.transferred)
		pts := int64(info.pts)
		at := d.capturedAt(pts)
		if pts == math.MinInt64 {
			pts = 0
		}
		av := info.frame
		frames = append(frames, frame.NewFrame("", 0, time.Duration(pts)*time.Microsecond, at, img, func() { C.vd_frame_free(av) }))
	}
}

// remember keeps a packet's capture time until its frame comes out.
func (d *Decoder) remember(pts int64, at time.Time) {
	if len(d.pending) == maxPending {
		d.pending = append(d.pending[:0], d.pending[1:]...)
	}
	d.pending = append(d.pending, pending{pts: pts, at: at})
}

// capturedAt returns the capture time of the oldest pending packet with this pts and forgets
// it, or the newest packet's time when none matches (a decoder that made up a pts). Entries
// of packets that never gave a frame fall out once maxPending newer ones came.
func (d *Decoder) capturedAt(pts int64) time.Time {
	for i, p := range d.pending {
		if p.pts == pts {
			d.pending = append(d.pending[:i], d.pending[i+1:]...)
			return p.at
		}
	}
	if len(d.pending) > 0 {
		return d.pending[len(d.pending)-1].at
	}
	return time.Time{}
}

// ToBGR converts a YUV frame image (as Decode gives) into packed BGR24 in dst, which it
// grows when too small, and returns the BGR image (sharing dst's memory). A BGR image is
// copied as is.
func ToBGR(img models.Image, dst []byte) (models.Image, []byte, error) {
	if !img.Valid() {
		return models.Image{}, dst, fmt.Errorf("to bgr: %w: %s %dx%d", models.ErrBadImage, img.Format, img.Width, img.Height)
	}
	stride := 3 * img.Width
	n := stride * img.Height
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	out := models.Image{Width: img.Width, Height: img.Height, Stride: stride, Pix: dst}
	if img.Format == models.BGR24 {
		for y := range img.Height {
			copy(dst[y*stride:(y+1)*stride], img.Pix[y*img.Stride:])
		}
		return out, dst, nil
	}
	fmtC := C.int(C.VD_FMT_I420)
	var v *C.uint8_t
	if img.Format == models.NV12 {
		fmtC = C.VD_FMT_NV12
	} else {
		v = (*C.uint8_t)(unsafe.Pointer(&img.V[0]))
	}
	full := C.int(0)
	if img.FullRange {
		full = 1
	}
	ret := C.vd_to_bgr(fmtC, C.int(img.Width), C.int(img.Height),
		(*C.uint8_t)(unsafe.Pointer(&img.Pix[0])), C.int(img.Stride),
		(*C.uint8_t)(unsafe.Pointer(&img.U[0])), C.int(img.UStride), v, C.int(img.VStride),
		full, C.int(img.Matrix), (*C.uint8_t)(unsafe.Pointer(&dst[0])), C.int(stride))
	if ret < 0 {
		return models.Image{}, dst, fmt.Errorf("to bgr: %s %dx%d: %w", img.Format, img.Width, img.Height, avError(ret))
	}
	return out, dst, nil
}

// avError is an FFmpeg error code with FFmpeg's text for it.
type avError C.int

func (e avError) Error() string {
	var buf [128]C.char
	C.vd_strerror(C.int(e), &buf[0], C.int(len(buf)))
	return C.GoString(&buf[0])
}
