// Package clip reads a video file frame by frame: the file source and the decoder, run
// together on the caller's goroutine. It is a shortcut for tools (vigil-agent detect, the
// scorer in testvideos), not a stage of the running pipeline, where a camera's packets go
// through its supervisor and decoder (agent/camera.go).
package clip

import (
	"context"
	"errors"
	"io"

	"github.com/vigil-edge/vigil/pipeline/decode"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/ingest/file"
)

// Decode decodes the video file at path frame by frame (n from 1), calling fn for each, until
// the end of the file or maxFrames (0: no limit). It returns the number of frames in the clip
// when it read to the end, else 0. Each frame (the decoder's YUV picture) is released after fn
// returns.
func Decode(ctx context.Context, path string, maxFrames int, fn func(n int, f *frame.Frame) error) (int, error) {
	src, err := file.New(file.Config{Path: path})
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		dec     *decode.Decoder
		codec   *frame.Codec
		n       int
		ferr    error
		stopped bool
	)
	handle := func(f *frame.Frame) {
		defer f.Release()
		if ferr != nil || stopped {
			return
		}
		n++
		if err := fn(n, f); err != nil {
			ferr = err
			cancel()
			return
		}
		if maxFrames > 0 && n >= maxFrames {
			stopped = true
			cancel()
		}
	}
	err = src.Run(ctx, func(p frame.Packet) {
		if p.Codec != codec {
			if dec != nil {
				dec.Close()
			}
			codec = p.Codec
			if dec, ferr = decode.New(codec); ferr != nil {
				cancel()
				return
			}
		}
		frames, err := dec.Decode(p)
		if err != nil {
			return // a damaged packet: the next key frame recovers
		}
		for _, f := range frames {
			handle(f)
		}
	})
	if dec != nil {
		frames, _ := dec.Flush()
		for _, f := range frames {
			handle(f)
		}
		dec.Close()
	}
	switch {
	case ferr != nil:
		return 0, ferr
	case stopped:
		return 0, nil
	case err != nil && !errors.Is(err, io.EOF):
		return 0, err
	case ctx.Err() != nil:
		return 0, ctx.Err()
	case n == 0:
		return 0, errors.New("no frame could be decoded")
	}
	return n, nil
}
