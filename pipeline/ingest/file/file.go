//go:build cgo

// Package file is the ingest source for local video files (a plain path or a file:// URL),
// demuxed with FFmpeg's libavformat through cgo. It sends the packets of the file's best
// video stream, as fast as the sink takes them or paced to their timestamps like a camera
// (Realtime), once or over and over (Loop) with timestamps that keep increasing.
//
// Packets are in the container's own form: H.264/H.265 from MP4 or MKV are length-prefixed
// (AVCC/HVCC) with the avcC/hvcC record in Codec.Extradata, which libavcodec takes as is.
//
// PTS count from the stream's start time. A file without timestamps (a raw .h264 elementary
// stream) gets them by counting frames in file order, which is presentation order only when
// the stream has no B-frames.
package file

/*
#cgo pkg-config: libavformat libavcodec libavutil
#include <stdlib.h>
#include "vf.h"
*/
import "C"

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"
	"unsafe"

	"github.com/vigil-edge/vigil/pipeline/frame"
)

// defaultFrameDur is the frame time assumed when neither the file nor its packets give one.
const defaultFrameDur = 40 * time.Millisecond

// maxLag is how far behind its schedule a realtime source may fall before it stops trying to
// catch up and starts a new schedule from now.
const maxLag = time.Second

var quietOnce sync.Once

// New checks cfg and that the file exists; the file is opened by Run.
func New(cfg Config) (*Source, error) {
	p, err := LocalPath(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("file source: %w", err)
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("file source: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("file source: %s is not a regular file", p)
	}
	quietOnce.Do(func() { C.vf_quiet() })
	return &Source{cfg: cfg, path: p}, nil
}

// Run plays the file, calling sink for each packet of its video stream from this goroutine.
// It returns nil when ctx is cancelled (also during a realtime wait), io.EOF at the end of
// the file when not looping, and an error naming the file otherwise (ErrNotVideo when the
// file is not a video). The Codec pointer is the same for every packet of one Run.
func (s *Source) Run(ctx context.Context, sink func(frame.Packet)) error {
	if ctx.Err() != nil {
		return nil
	}
	d, info, err := s.open()
	if err != nil {
		return err
	}
	defer func() { C.vf_close(d) }()

	codec := &frame.Codec{
		Name:   C.GoString(info.codec),
		Width:  int(info.width),
		Height: int(info.height),
	}
	if info.extra_size > 0 {
		codec.Extradata = C.GoBytes(unsafe.Pointer(info.extra), info.extra_size)
	}
	frameDur := time.Duration(info.frame_dur) * time.Microsecond
	if frameDur <= 0 {
		frameDur = defaultFrameDur
	}

	var (
		start    = int64(info.start) // µs; the first packet's time when the stream has none
		offset   time.Duration       // added to the times of this pass over the file
		maxPTS   = time.Duration(math.MinInt64)
		lastPTS  time.Duration
		lastDur  time.Duration
		sent     int // packets sent in this pass
		wallBase time.Time
		timer    *time.Timer
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if ctx.Err() != nil {
			return nil
		}
		var pkt C.vf_packet
		ret := C.vf_read(d, &pkt)
		if ret == C.vf_eof() {
			if !s.cfg.Loop {
				return io.EOF
			}
			if sent == 0 {
				return fmt.Errorf("file source %s: no video packets to loop over", s.path)
			}
			// Start again: the next pass begins one frame after the latest picture of this one.
			C.vf_close(d)
			if d, _, err = s.open(); err != nil {
				d = nil
				return err
			}
			offset = maxPTS + max(lastDur, frameDur)
			sent = 0
			continue
		}
		if ret < 0 {
			return fmt.Errorf("file source %s: read: %w", s.path, avError(ret))
		}

		pts, dts := int64(pkt.pts), int64(pkt.dts)
		if start == C.VF_NOPTS {
			start = pts
			if start == C.VF_NOPTS {
				start = dts
			}
			if start == C.VF_NOPTS {
				start = 0
			}
		}
		var p frame.Packet
		switch {
		case pts != C.VF_NOPTS:
			p.PTS = time.Duration(pts-start)*time.Microsecond + offset
		case dts != C.VF_NOPTS:
			p.PTS = time.Duration(dts-start)*time.Microsecond + offset
		case sent == 0:
			p.PTS = offset
		default: // no timestamps at all: count frames
			p.PTS = lastPTS + max(lastDur, frameDur)
		}
		lastPTS = p.PTS
		maxPTS = max(maxPTS, p.PTS)
		lastDur = time.Duration(pkt.dur) * time.Microsecond

		if s.cfg.Realtime {
			// Pace on the decode timestamp: packets come in decode order, as from a camera.
			at := p.PTS
			if dts != C.VF_NOPTS {
				at = time.Duration(dts-start)*time.Microsecond + offset
			}
			now := time.Now()
			target := wallBase.Add(at)
			if wallBase.IsZero() || now.Sub(target) > maxLag {
				wallBase = now.Add(-at)
				target = now
			}
			if wait := target.Sub(now); wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-ctx.Done():
					return nil
				case <-timer.C:
				}
			}
		}

		p.Codec = codec
		p.Data = C.GoBytes(unsafe.Pointer(pkt.data), pkt.size)
		p.Key = pkt.key != 0
		p.CapturedAt = time.Now().UTC()
		sent++
		sink(p)
	}
}

// open opens the file and finds its video stream.
func (s *Source) open() (*C.vf, C.vf_info, error) {
	var info C.vf_info
	// "file:" makes FFmpeg read the path as a file even when it looks like another protocol.
	curl := C.CString("file:" + s.path)
	defer C.free(unsafe.Pointer(curl))
	var d *C.vf
	ret := C.vf_open(curl, &d, &info)
	switch {
	case ret == C.VF_NO_VIDEO:
		return nil, info, fmt.Errorf("file source %s: %w: it has no video stream", s.path, ErrNotVideo)
	case ret == C.int(avErrInvalidData):
		return nil, info, fmt.Errorf("file source %s: %w: not a media file FFmpeg can read", s.path, ErrNotVideo)
	case ret < 0:
		return nil, info, fmt.Errorf("file source %s: open: %w", s.path, avError(ret))
	}
	if C.GoString(info.format) == "tty" { // FFmpeg plays text files as ANSI art
		C.vf_close(d)
		return nil, info, fmt.Errorf("file source %s: %w: a text file", s.path, ErrNotVideo)
	}
	return d, info, nil
}

// avErrInvalidData is AVERROR_INVALIDDATA, FFERRTAG('I','N','D','A') negated.
const avErrInvalidData = -int32('I' | 'N'<<8 | 'D'<<16 | 'A'<<24)

// avError is an FFmpeg error code with FFmpeg's text for it.
type avError C.int

func (e avError) Error() string {
	var buf [128]C.char
	C.vf_strerror(C.int(e), &buf[0], C.int(len(buf)))
	return C.GoString(&buf[0])
}
