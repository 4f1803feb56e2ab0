package motion

import (
	"context"
	"errors"
	"image"
	"math"
	"sync"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
)

// ReasonLearning: the motion detector (re)learns its background on this frame, so it runs
// one full-frame pass (nothing could be compared).
const ReasonLearning = "learning"

// GateConfig sets a Gate: one camera's motion-driven detection.
type GateConfig struct {
	// Detector is the motion detector's configuration (must pass Validate).
	Detector Config
	// FullFrameEvery is the longest time between full-frame passes, which re-confirm
	// stationary objects; 0 means none (only learning and coverage give full passes).
	FullFrameEvery time.Duration
	// Coverage and Margin are Plan's (0: its defaults).
	Coverage, Margin float64
	// FullFrameCost is the inferences one full-frame pass costs (Plan's); <1 means 1.
	FullFrameCost int
}

// Gate is the motion-driven detection of one camera, as the agent runs it and the replay
// harness (testvideos/score) reuses it: for each frame due at detect_fps, Plan updates the
// motion detector with the frame's luma and decides, from the motion and the tracks of the
// last analysed frame (SetTracks), where the detector runs.
//
// Motion wholly inside the box of a confirmed track that has stood still for StationaryAfter
// (a parked car's flickering lights, a seated person's hands) asks for no inference: the
// object is there and known, and the periodic full-frame pass re-confirms it, as Frigate
// treats stationary objects. Moving and lost tracks are looked at (see ActiveTracks).
//
// Call contract: Plan is called from one goroutine at a time, with the frames of one camera
// in order; SetTracks may be called from another goroutine (it is synchronised).
type Gate struct {
	cfg      GateConfig
	det      *Detector
	lastFull time.Duration // PTS of the last full-frame pass; -1 before the first
	luma     []byte        // the luma of a BGR frame (a decoder's frame needs none)

	mu         sync.Mutex
	active     []Box                    // lost and moving confirmed tracks, normalised
	still      []Box                    // confirmed tracks stationary for StationaryAfter, normalised
	stillSince map[uint64]time.Duration // track id → PTS from which it has stood still
}

// StationaryAfter is how long a confirmed track must stand still (move slower than
// MinActiveSpeed on every analysed frame) before motion inside its box is ignored: Frigate's
// default of 50 frames at its detect fps of 5. A person who only pauses is still looked at.
const StationaryAfter = 10 * time.Second

// NewGate returns a gate for cfg; the error (a *SettingError) names the bad setting.
func NewGate(cfg GateConfig) (*Gate, error) {
	det, err := New(cfg.Detector)
	if err != nil {
		return nil, err
	}
	return &Gate{cfg: cfg, det: det, lastFull: -1, stillSince: map[uint64]time.Duration{}}, nil
}

// Plan updates the motion detector with img (the frame at pts) and decides where the
// detector runs on it; modelW x modelH is the model's input size. A frame on which the
// detector (re)learns its background, or whose luma is inconsistent, gets a full-frame pass
// (ReasonLearning). A FullFrame decision starts the full_frame_every interval again.
func (g *Gate) Plan(img models.Image, pts time.Duration, modelW, modelH int) Decision {
	var res Result
	switch {
	case !img.Valid():
		res.Err = errors.New("motion: invalid frame")
	case img.Format == models.BGR24:
		g.luma = lumaOfBGR(img, g.luma)
		res = g.det.Update(g.luma, img.Width, img.Height, img.Width)
	default: // planar or semi-planar YUV: the Y plane is the luma
		res = g.det.Update(img.Pix, img.Width, img.Height, img.Stride)
	}
	since := time.Duration(math.MaxInt64)
	if g.lastFull >= 0 && pts >= g.lastFull {
		since = pts - g.lastFull
	}
	var d Decision
	if res.Err != nil || res.Learning {
		d = Decision{Mode: FullFrame, Reason: ReasonLearning}
	} else {
		g.mu.Lock()
		active, still := g.active, g.still
		g.mu.Unlock()
		d = Plan(PlanInput{Width: img.Width, Height: img.Height, ModelWidth: modelW, ModelHeight: modelH,
			Motion: Unexplained(res.Boxes, still, g.cfg.Margin), Tracks: active,
			SinceFull: since, FullFrameEvery: g.cfg.FullFrameEvery, FullFrameCost: g.cfg.FullFrameCost,
			Coverage: g.cfg.Coverage, Margin: g.cfg.Margin})
		if len(res.Boxes) > 0 && d.Mode == None {
			d.Reason = ReasonStill
		}
	}
	if d.Mode == FullFrame {
		g.lastFull = pts
	}
	return d
}

// ReasonStill: all the motion lies inside tracks that stand still, and no track is active: no
// inference.
const ReasonStill = "still_tracks"

// SetTracks keeps, for the next plans, the tracks of the frame just analysed: lost and moving
// ones are looked at (ActiveTracks); motion inside confirmed ones that have stood still on
// every analysed frame for StationaryAfter (by PTS) is not. Tracks without a frame size are
// forgotten.
func (g *Gate) SetTracks(ts frame.Tracks) {
	active := ActiveTracks(ts.Tracks, ts.Width, ts.Height)
	g.mu.Lock()
	defer g.mu.Unlock()
	if ts.Width <= 0 || ts.Height <= 0 {
		g.active, g.still, g.stillSince = nil, nil, map[uint64]time.Duration{}
		return
	}
	since := make(map[uint64]time.Duration, len(g.stillSince))
	var still []Box
	for _, t := range ts.Tracks {
		if t.State != frame.Confirmed || moving(t) {
			continue // moving, lost or gone: its stillness starts again
		}
		at, ok := g.stillSince[t.ID]
		if !ok {
			at = ts.PTS
		}
		since[t.ID] = at
		if ts.PTS-at >= StationaryAfter {
			still = append(still, normalise(t.Box, ts.Width, ts.Height))
		}
	}
	g.active, g.still, g.stillSince = active, still, since
}

// Unexplained returns the motion boxes not wholly inside one of the still boxes padded by
// margin of their size on each side (0: DefaultMargin). It returns motion itself (not a copy)
// when there are no still boxes.
func Unexplained(motion, still []Box, margin float64) []Box {
	if len(still) == 0 || len(motion) == 0 {
		return motion
	}
	if margin <= 0 {
		margin = DefaultMargin
	}
	out := make([]Box, 0, len(motion))
	for _, m := range motion {
		inside := false
		for _, s := range still {
			px, py := margin*(s.X2-s.X1), margin*(s.Y2-s.Y1)
			if m.X1 >= s.X1-px && m.Y1 >= s.Y1-py && m.X2 <= s.X2+px && m.Y2 <= s.Y2+py {
				inside = true
				break
			}
		}
		if !inside {
			out = append(out, m)
		}
	}
	return out
}

// DetectRegions runs det on each crop of img and maps the detections back to img's pixels
// (MapBack, at NMS threshold iou). It returns the detections and the rectangles the
// detector really looked at, one inference each (a YUV crop starts on even coordinates, so a
// rectangle may be a pixel larger than asked).
func DetectRegions(ctx context.Context, det models.Detector, img models.Image, regions []image.Rectangle, iou float32) ([]models.Detection, []image.Rectangle, error) {
	used := make([]image.Rectangle, 0, len(regions))
	dets := make([][]models.Detection, 0, len(regions))
	for _, r := range regions {
		sub, rr := img.Crop(r) // a YUV crop starts on even coordinates: rr is what was seen
		if sub.Width == 0 || sub.Height == 0 {
			continue
		}
		objs, err := det.Detect(ctx, sub)
		if err != nil {
			return nil, used, err
		}
		used = append(used, rr)
		dets = append(dets, objs)
	}
	return MapBack(img.Width, img.Height, used, dets, iou), used, nil
}

// lumaOfBGR returns the BT.601 luma of a packed BGR image (stride = width), in buf if large
// enough.
func lumaOfBGR(img models.Image, buf []byte) []byte {
	n := img.Width * img.Height
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	for y := range img.Height {
		row := img.Pix[y*img.Stride : y*img.Stride+3*img.Width]
		out := buf[y*img.Width : (y+1)*img.Width]
		for x := range out {
			p := row[3*x : 3*x+3]
			out[x] = uint8((29*uint32(p[0]) + 150*uint32(p[1]) + 77*uint32(p[2]) + 128) >> 8)
		}
	}
	return buf
}
