// Package frame holds the plain data that flows between pipeline stages: compressed packets
// from ingest, decoded frames, and the detections made on them. Stages import this package
// and never each other.
package frame

import (
	"image"
	"time"

	"github.com/vigil-edge/vigil/models"
)

// Codec identifies a compressed video stream by FFmpeg's decoder name ("h264", "hevc",
// "mpeg4", ...) plus the out-of-band codec configuration, if any.
type Codec struct {
	Name      string
	Extradata []byte // e.g. avcC/hvcC from a container, or Annex-B parameter sets; may be nil
	Width     int    // as announced by the source; 0 when unknown
	Height    int
}

// Packet is one compressed access unit (one picture) from a source.
// For H.264/H.265 from RTSP, Data is Annex-B with parameter sets prepended to key frames.
type Packet struct {
	Codec      *Codec        // the same pointer for every packet of one stream session
	Data       []byte        // owned by the receiver once handed over
	PTS        time.Duration // presentation time from the start of the stream
	Key        bool          // a random-access point
	CapturedAt time.Time     // wall-clock capture (or receive) time, UTC
}

// Frame is one decoded picture.
type Frame struct {
	Camera     string
	Seq        uint64 // frame number within the camera's run, from 1
	PTS        time.Duration
	CapturedAt time.Time
	Image      models.Image // the decoder's YUV picture (or BGR, from an image file)
	// Regions, when not nil, are where the detector should look (motion-driven detection), in
	// the frame's pixels; nil: the whole frame.
	Regions []image.Rectangle

	release func()
}

// NewFrame wraps a decoded image; release, if not nil, is called once by Release to hand the
// image's buffer back to its pool.
func NewFrame(camera string, seq uint64, pts time.Duration, at time.Time, img models.Image, release func()) *Frame {
	return &Frame{Camera: camera, Seq: seq, PTS: pts, CapturedAt: at, Image: img, release: release}
}

// Release hands the frame's buffer back. The frame must not be used afterwards. Safe to call
// on nil and more than once from the one owner.
func (f *Frame) Release() {
	if f == nil || f.release == nil {
		return
	}
	r := f.release
	f.release = nil
	r()
}

// ModelInfo names the model that made a set of detections.
type ModelInfo struct {
	Name    string
	Version string
	SHA256  string
}

// Detections are the objects found on one frame.
type Detections struct {
	Camera     string
	FrameSeq   uint64
	PTS        time.Duration
	CapturedAt time.Time
	Width      int // source frame size, pixels
	Height     int
	Model      ModelInfo
	Objects    []models.Detection // boxes in source-frame pixels
	Inference  time.Duration
	// Geo, when not nil, holds each object's ground position, in the order of Objects.
	// GeoStatus says why an object has none (no_fix, stale, no_telemetry, above_horizon, …;
	// see pipeline/wire); it is empty when every object was located.
	Geo       []Geo
	GeoStatus string
	// Image is the frame the objects were found on. It is valid only while the detect stage's
	// sink runs (for snapshots); the frame's buffer goes back to its pool afterwards.
	Image models.Image
}
