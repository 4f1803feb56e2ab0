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
	// analysed); 0 analyses every frame. DetectEvery > 0 analyses every Nth video frame
	// instead (from frame 1), as Config.DetectEvery does.
	DetectFPS   float64
	DetectEvery int
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
	// Manifest is the model manifest (default: the repository's YOLOX-nano); ModelDir
	// overrides the model file's folder.
	Manifest, ModelDir string
	Track              track.Config
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
	// Detector scores the raw detections (score >= the tracker's HighScore) against GTDir,
	// and Output is the tracker's output on the analysed frames (as scored), when GTDir is set.
	Detector   *Metrics
	Output     []MOTRow
	MotionTime time.Duration
	InferTime  time.Duration
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
	if cfg.ModelDir != "" {
		man.Dir = cfg.ModelDir
	} else if _, err := os.Stat(man.ModelPath()); err != nil {
		if man.Dir, err = data.Path("models"); err != nil {
			return res, fmt.Errorf("replay: %w", err)
		}
	}
	det, err := onnx.Open(man, onnx.Options{Threads: cfg.Threads, Score: cfg.Score, Labels: cfg.Labels})
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	defer det.Close()
	var gate *motion.Gate
	if cfg.Motion {
		gc := motion.GateConfig{Detector: cfg.MotionConfig, FullFrameEvery: cfg.FullFrameEvery, Coverage: cfg.Coverage, FullFrameCost: 1}
		if gate, err = motion.NewGate(gc); err != nil {
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
		hyp    = map[int][]Object{}
		raw    = map[int][]Object{}
		scored []int
	)
	total, err := clip.Decode(ctx, cfg.Clip, cfg.MaxFrames, func(n int, f *frame.Frame) error {
		if cfg.DetectEvery > 0 && (n-1)%cfg.DetectEvery != 0 || cfg.DetectEvery <= 0 && !rl.Allow(f.PTS) {
			return nil
		}
		res.Analysed++
		img := f.Image
		d := frame.Detections{Camera: res.Clip, FrameSeq: uint64(n), PTS: f.PTS, CapturedAt: epoch.Add(f.PTS), Width: img.Width, Height: img.Height}
		var seen []image.Rectangle
		plan := motion.Decision{Mode: motion.FullFrame}
		if gate != nil { // the agent's motion path (agent/motion.go runs the same Gate)
			start := time.Now()
			plan = gate.Plan(img, f.PTS, in.Width, in.Height)
			res.MotionTime += time.Since(start)
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
			seen = []image.Rectangle{image.Rect(0, 0, img.Width, img.Height)}
		case motion.Regions:
			d.Objects, seen, err = motion.DetectRegions(ctx, det, img, plan.Regions, man.Defaults.NMS)
			res.Inferences += len(seen)
			if err != nil {
				return fmt.Errorf("frame %d: %w", n, err)
			}
		}
		res.InferTime += time.Since(start)
		var ts frame.Tracks
		if gate != nil {
			ts = tr.UpdateSeen(d, seen)
			gate.SetTracks(ts)
		} else {
			ts = tr.Update(d)
		}
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
				held := gate != nil && !t.Matched && t.State == frame.Confirmed && !track.Looked(t.Box, seen, img.Width, img.Height)
				if t.State == frame.Confirmed && (t.Matched || held) {
					hyp[fn] = append(hyp[fn], Object{ID: t.ID, Box: t.Box})
					res.Output = append(res.Output, MOTRow{Frame: fn, ID: t.ID, Box: Object{ID: t.ID, Box: t.Box}, Score: t.Score})
				}
			}
			for _, o := range d.Objects {
				if o.Score >= tr.Config().HighScore {
					raw[fn] = append(raw[fn], Object{Box: o.Box})
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
		dm := EvaluateDetections(seq.Frames, dropIgnored(*seq, raw), scored)
		res.Metrics, res.Detector = &m, &dm
	}
	return res, nil
}
