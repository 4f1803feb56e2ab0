package agent

import (
	"context"
	"image"
	"math"
	"sync"
	"time"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/motion"
)

// motionSettings turn on motion-driven detection for a camera (its motion: section).
type motionSettings struct {
	detector       motion.Config
	fullFrameEvery time.Duration // the longest time between full-frame passes
	coverage       float64       // share of the frame at which crops give way to a full pass; 0: the default
}

// motionOf is a camera's motion settings, nil when motion-driven detection is off.
func motionOf(cc config.Camera) *motionSettings {
	m := cc.Motion
	if m == nil || !m.Enabled {
		return nil
	}
	return &motionSettings{detector: m.DetectorConfig(), fullFrameEvery: m.FullFrameInterval(), coverage: m.Coverage}
}

// motionGate decides, for each frame due at detect_fps, where the detector runs: nowhere
// when nothing moves and no track is active, on crops around motion and active tracks, or on
// the whole frame (periodically, or when crops would cover most of it). It works on the
// decoder's Y plane, on the ingest goroutine; the tracks come from the analysis goroutine.
type motionGate struct {
	set      motionSettings
	det      *motion.Detector
	lastFull time.Duration // PTS of the last full-frame pass; -1 before the first

	mu     sync.Mutex
	tracks []motion.Box // active tracks, normalised, from the last analysed frame
}

func newMotionGate(set motionSettings) (*motionGate, error) {
	det, err := motion.New(set.detector)
	if err != nil {
		return nil, err
	}
	return &motionGate{set: set, det: det, lastFull: -1}, nil
}

// plan decides for frame f; model is the model's input size.
func (g *motionGate) plan(f *frame.Frame, modelW, modelH int) motion.Decision {
	img := f.Image
	res := g.det.Update(img.Pix, img.Width, img.Height, img.Stride)
	g.mu.Lock()
	tracks := g.tracks
	g.mu.Unlock()
	since := time.Duration(math.MaxInt64)
	if g.lastFull >= 0 && f.PTS >= g.lastFull {
		since = f.PTS - g.lastFull
	}
	var d motion.Decision
	if res.Err != nil || res.Learning { // nothing to compare with yet: the whole frame
		d = motion.Decision{Mode: motion.FullFrame, Reason: reasonLearning}
	} else {
		d = motion.Plan(motion.PlanInput{Width: img.Width, Height: img.Height, ModelWidth: modelW, ModelHeight: modelH,
			Motion: res.Boxes, Tracks: tracks, SinceFull: since, FullFrameEvery: g.set.fullFrameEvery, FullFrameCost: 1,
			Coverage: g.set.coverage})
	}
	if d.Mode == motion.FullFrame {
		g.lastFull = f.PTS
	}
	return d
}

// reasonLearning: the motion detector (re)learns its background on this frame.
const reasonLearning = "learning"

// setTracks keeps the boxes of the active tracks (lost, or confirmed and moving: see
// motion.ActiveTracks) of the frame just analysed, for the next plans.
func (g *motionGate) setTracks(tracks []frame.Track, w, h int) {
	boxes := motion.ActiveTracks(tracks, w, h)
	g.mu.Lock()
	g.tracks = boxes
	g.mu.Unlock()
}

// detectRegions runs det on each crop of img and maps the detections back to the frame.
func detectRegions(ctx context.Context, det models.Detector, img models.Image, regions []image.Rectangle, iou float32) ([]models.Detection, int, error) {
	used := make([]image.Rectangle, 0, len(regions))
	dets := make([][]models.Detection, 0, len(regions))
	for _, r := range regions {
		sub, rr := img.Crop(r)
		if sub.Width == 0 || sub.Height == 0 {
			continue
		}
		objs, err := det.Detect(ctx, sub)
		if err != nil {
			return nil, len(used), err
		}
		used = append(used, rr)
		dets = append(dets, objs)
	}
	return motion.MapBack(img.Width, img.Height, used, dets, iou), len(used), nil
}
