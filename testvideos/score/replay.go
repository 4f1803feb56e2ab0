package score

import (
	"context"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/models/onnx"
	"github.com/vigil-edge/vigil/pipeline/clip"
	"github.com/vigil-edge/vigil/pipeline/detect"
	"github.com/vigil-edge/vigil/pipeline/events"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/motion"
	"github.com/vigil-edge/vigil/pipeline/rules"
	"github.com/vigil-edge/vigil/pipeline/track"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/data"
)

// ReplayConfig says how Replay runs a clip through the camera's analysis.
type ReplayConfig struct {
	Clip string
	// DetectFPS is the camera's detect_fps (frames per second of video time that are
	// analysed); 0 analyses every frame.
	DetectFPS float64
	// Motion gates the detector with motion detection (pipeline/motion): crops around motion
	// and active tracks, a full-frame pass every FullFrameEvery (0: 10 s), one full-frame
	// pass when crops would cover Coverage of the frame (0: motion's default). Without it
	// every analysed frame gets one full-frame inference.
	Motion         bool
	MotionConfig   motion.Config
	FullFrameEvery time.Duration
	Coverage       float64
	// Labels and Score are the detector's (defaults: the agent's labels, the model's score).
	Labels []string
	Score  float32
	// Lines are line rules whose crossings are counted.
	Lines []rules.Rule
	// GTDir, when set, scores the tracks (MOTA, IDF1) against this MOTChallenge sequence.
	GTDir       string
	FrameOffset int
	MaxFrames   int
	Threads     int
	Manifest    string
	Track       track.Config
}

// ReplayResult is what one Replay counted.
type ReplayResult struct {
	Clip                 string
	Motion               bool
	Frames, Analysed     int            // decoded frames; frames at detect_fps
	Inferences           int            // detector runs (a crop or a full frame each)
	Reasons              map[string]int // analysed frames by plan reason (motion mode)
	EventsNew, EventsEnd int
	Lines                map[string]LineCounts
	Metrics              *Metrics // against GTDir, when set
	MotionTime           time.Duration
	InferTime            time.Duration
}

// Replay decodes cfg.Clip and runs the analysis the agent runs on a camera — detector (on
// the full frame, or as motion.Plan says), ByteTrack-style tracker, events, line rules —
// counting inferences, events and line crossings, and scoring the tracks when a ground
// truth is given. In motion mode the tracker is told where the detector looked
// (track.UpdateSeen), and the tracks it holds outside the crops count as output.
func Replay(ctx context.Context, cfg ReplayConfig) (ReplayResult, error) {
	res := ReplayResult{Clip: filepath.Base(cfg.Clip), Motion: cfg.Motion, Reasons: map[string]int{}, Lines: map[string]LineCounts{}}
	if cfg.Threads == 0 {
		cfg.Threads = 1
	}
	if cfg.FullFrameEvery == 0 {
		cfg.FullFrameEvery = 10 * time.Second
	}
	if len(cfg.Labels) == 0 {
		cfg.Labels = []string{"person", "bicycle", "car", "motorcycle", "bus", "truck"}
	}
	mc := Config{Manifest: cfg.Manifest}
	if mc.Manifest == "" {
		def, _ := mc.withDefaults()
		mc.Manifest = def.Manifest
	}
	man, err := models.LoadManifest(mc.Manifest)
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	if _, err := os.Stat(man.ModelPath()); err != nil {
		if man.Dir, err = data.Path("models"); err != nil {
			return res, fmt.Errorf("replay: %w", err)
		}
	}
	det, err := onnx.Open(man, onnx.Options{Threads: cfg.Threads, Score: cfg.Score, Labels: cfg.Labels})
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	defer det.Close()
	var md *motion.Detector
	if cfg.Motion {
		if md, err = motion.New(cfg.MotionConfig); err != nil {
			return res, fmt.Errorf("replay: %w", err)
		}
	}
	var seq *Sequence
	if cfg.GTDir != "" {
		s, err := LoadGT(cfg.GTDir)
		if err != nil {
			return res, fmt.Errorf("replay: %w", err)
		}
		seq = &s
	}
	eng, err := rules.New(cfg.Lines)
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	tr := track.New(cfg.Track)
	ev := events.New(events.Default())
	rl := detect.RateLimiter{FPS: cfg.DetectFPS}
	in := man.Input
	var (
		luma     []byte
		last     frame.Tracks
		lastFull = time.Duration(-1)
		hyp      = map[int][]Object{}
		scored   []int
	)
	total, err := clip.Decode(ctx, cfg.Clip, cfg.MaxFrames, func(n int, f *frame.Frame) error {
		if !rl.Allow(f.PTS) {
			return nil
		}
		res.Analysed++
		img := f.Image
		d := frame.Detections{Camera: res.Clip, FrameSeq: uint64(n), PTS: f.PTS, CapturedAt: epoch.Add(f.PTS), Width: img.Width, Height: img.Height}
		var seen []image.Rectangle
		full := image.Rect(0, 0, img.Width, img.Height)
		plan := motion.Decision{Mode: motion.FullFrame}
		if md != nil {
			luma = lumaOf(img, luma)
			start := time.Now()
			m := md.Update(luma, img.Width, img.Height, img.Width)
			res.MotionTime += time.Since(start)
			if m.Err != nil {
				return m.Err
			}
			since := time.Duration(1<<62 - 1)
			if lastFull >= 0 {
				since = f.PTS - lastFull
			}
			plan = motion.Plan(motion.PlanInput{
				Width: img.Width, Height: img.Height, ModelWidth: in.Width, ModelHeight: in.Height,
				Motion: m.Boxes, Tracks: motion.ActiveTracks(last.Tracks, img.Width, img.Height),
				SinceFull: since, FullFrameEvery: cfg.FullFrameEvery, FullFrameCost: 1, Coverage: cfg.Coverage,
			})
			res.Reasons[plan.Reason]++
		}
		start := time.Now()
		switch plan.Mode {
		case motion.FullFrame:
			objs, err := det.Detect(ctx, img)
			if err != nil {
				return fmt.Errorf("frame %d: %w", n, err)
			}
			res.Inferences++
			d.Objects = objs
			seen = []image.Rectangle{full}
			lastFull = f.PTS
		case motion.Regions:
			per := make([][]models.Detection, len(plan.Regions))
			seen = make([]image.Rectangle, len(plan.Regions))
			for i, r := range plan.Regions {
				var sub models.Image
				sub, seen[i] = img.Crop(r) // a YUV crop starts on even coordinates
				if per[i], err = det.Detect(ctx, sub); err != nil {
					return fmt.Errorf("frame %d crop %v: %w", n, r, err)
				}
				res.Inferences++
			}
			d.Objects = motion.MapBack(img.Width, img.Height, seen, per, man.Defaults.NMS)
		}
		res.InferTime += time.Since(start)
		var ts frame.Tracks
		if md != nil {
			ts = tr.UpdateSeen(d, seen)
		} else {
			ts = tr.Update(d)
		}
		last = ts
		for _, c := range ev.Update(ts, nil) {
			switch c.Type {
			case wire.EventNew:
				res.EventsNew++
			case wire.EventEnd:
				res.EventsEnd++
			}
		}
		for _, a := range eng.Update(ts) {
			if a.RuleType != rules.TypeLine {
				continue
			}
			c := res.Lines[a.RuleID]
			switch a.Kind {
			case rules.AToB:
				c.AToB++
			case rules.BToA:
				c.BToA++
			}
			res.Lines[a.RuleID] = c
		}
		if seq != nil {
			fn := n + cfg.FrameOffset
			scored = append(scored, fn)
			for _, t := range ts.Tracks {
				// output: confirmed tracks seen on this frame, and those held where the
				// detector did not look (motion mode: they are where they were)
				held := md != nil && !t.Matched && t.State == frame.Confirmed && !track.Looked(t.Box, seen, img.Width, img.Height)
				if t.State == frame.Confirmed && (t.Matched || held) {
					hyp[fn] = append(hyp[fn], Object{ID: t.ID, Box: t.Box})
				}
			}
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("replay: %s: %w", cfg.Clip, err)
	}
	res.Frames = total
	if seq != nil {
		m := Evaluate(seq.Frames, dropIgnored(*seq, hyp), scored)
		res.Metrics = &m
	}
	return res, nil
}

// lumaOf returns the BT.601 luma of a BGR image, packed (stride = width), in buf if large enough.
func lumaOf(img models.Image, buf []byte) []byte {
	n := img.Width * img.Height
	if img.Format != models.BGR24 { // a decoder's frame: its Y plane is the luma
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		for y := range img.Height {
			copy(buf[y*img.Width:(y+1)*img.Width], img.Pix[y*img.Stride:])
		}
		return buf
	}
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
