//go:build cgo

// Package decode turns compressed video packets into BGR frames with FFmpeg's libavcodec
// (through cgo) and libswscale, into buffers taken from a per-decoder pool.
//
//	frame.Packet ──▶ Decoder.Decode ──▶ avcodec_send_packet / receive_frame ──▶ sws_scale ──▶ []*frame.Frame
//	                                                                              (pooled BGR24 buffer)
//
// Any decoder FFmpeg was built with works (h264, hevc, mpeg4, msmpeg4v3, mjpeg, ...). A frame's
// buffer returns to its decoder's pool when the frame is Released; a buffer is never handed out
// again while a frame still holds it.
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

// maxFree bounds the idle buffers a pool keeps.
const maxFree = 8

// Option changes how New opens a decoder.
type Option func(*options)

type options struct {
	threads int
}

// WithThreads sets libavcodec's thread count: 1 (the default) decodes on the calling goroutine's
// thread with no added latency; n > 1 uses n threads (frame threading adds n-1 frames of delay);
// 0 lets FFmpeg pick from the number of CPUs.
func WithThreads(n int) Option {
	return func(o *options) { o.threads = max(n, 0) }
}

// Stats counts what a Decoder's buffer pool did.
type Stats struct {
	Allocated uint64 // buffers made
	Reused    uint64 // buffers taken from the free list
}

// Decoder decodes one stream's packets. It is not safe for concurrent use: Decode, Flush and
// Close are called from one goroutine at a time. Frames it returns may be Released from any
// goroutine, also after Close.
type Decoder struct {
	c       *C.vd
	name    string // FFmpeg's decoder name
	pool    *pool
	pending []pending // capture times of packets whose frames are not out yet, oldest first
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
	o := options{threads: 1}
	for _, opt := range opts {
		opt(&o)
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
	var (
		cd    *C.vd
		dname *C.char
	)
	ret := C.vd_open(cname, extra, C.int(len(c.Extradata)), C.int(max(c.Width, 0)), C.int(max(c.Height, 0)), C.int(o.threads), &cd, &dname)
	switch {
	case ret == C.VD_ERR_NOT_FOUND:
		return nil, fmt.Errorf("decode: %w %q: FFmpeg has no decoder by that name", ErrUnsupportedCodec, c.Name)
	case ret == C.VD_ERR_NOT_VIDEO:
		return nil, fmt.Errorf("decode: %w %q: not a video decoder", ErrUnsupportedCodec, c.Name)
	case ret < 0:
		return nil, fmt.Errorf("decode: open %s decoder: %w", c.Name, avError(ret))
	}
	return &Decoder{c: cd, name: C.GoString(dname), pool: &pool{}}, nil
}

// Name is the name of the FFmpeg decoder in use.
func (d *Decoder) Name() string { return d.name }

// Stats reports the buffer pool's counts so far.
func (d *Decoder) Stats() Stats {
	d.pool.mu.Lock()
	defer d.pool.mu.Unlock()
	return d.pool.stats
}

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
		stride := 3 * w
		buf := d.pool.get(stride * h)
		if ret := C.vd_convert(d.c, (*C.uint8_t)(unsafe.Pointer(&buf[0])), C.int(stride)); ret < 0 {
			d.pool.put(buf)
			return frames, fmt.Errorf("decode %s: convert %dx%d picture to BGR: %w", d.name, w, h, avError(ret))
		}
		pts := int64(info.pts)
		at := d.capturedAt(pts)
		if pts == math.MinInt64 {
			pts = 0
		}
		img := models.Image{Width: w, Height: h, Stride: stride, Pix: buf}
		p := d.pool
		frames = append(frames, frame.NewFrame("", 0, time.Duration(pts)*time.Microsecond, at, img, func() { p.put(buf) }))
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

// pool is a free list of frame buffers of one size; Release may call put from any goroutine.
type pool struct {
	mu    sync.Mutex
	size  int
	free  [][]byte
	stats Stats
}

// get returns a buffer of n bytes that no frame holds.
func (p *pool) get(n int) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n != p.size { // the picture size changed: the old buffers are of no use
		p.size = n
		clear(p.free)
		p.free = p.free[:0]
	}
	if k := len(p.free); k > 0 {
		b := p.free[k-1]
		p.free[k-1] = nil
		p.free = p.free[:k-1]
		p.stats.Reused++
		return b
	}
	p.stats.Allocated++
	return make([]byte, n)
}

// put takes back a buffer no frame holds any more.
func (p *pool) put(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(b) == p.size && len(p.free) < maxFree {
		p.free = append(p.free, b)
	}
}

// avError is an FFmpeg error code with FFmpeg's text for it.
type avError C.int

func (e avError) Error() string {
	var buf [128]C.char
	C.vd_strerror(C.int(e), &buf[0], C.int(len(buf)))
	return C.GoString(&buf[0])
}
