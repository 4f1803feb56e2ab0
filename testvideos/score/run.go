package score

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/models/onnx"
	"github.com/vigil-edge/vigil/pipeline/clip"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/track"
	"github.com/vigil-edge/vigil/testvideos/data"
)

// Tracker names for Config.Tracker.
const (
	ByteTrack = "bytetrack"
	GreedyIoU = "greedy"
)

// Config says what Run scores.
type Config struct {
	Clip  string // video file
	GTDir string // MOTChallenge sequence folder (gt/gt.txt, seqinfo.ini)
	// Tracker is ByteTrack (pipeline/track, the default) or GreedyIoU (the baseline).
	Tracker string
	// Track tunes the ByteTrack-style tracker; zero fields take track.Default's values.
	Track track.Config
	// DetectEvery runs the detector on every Nth video frame (1, the default: every frame),
	// like the agent's detect_fps; only those frames are scored.
	DetectEvery int
	// MaxFrames stops after this many video frames (0: the whole clip).
	MaxFrames int
	// FrameOffset maps video frame n (from 1) to ground-truth frame n+FrameOffset.
	FrameOffset int
	// Threads is ONNX Runtime's thread count (default 1).
	Threads int
	// Manifest is the model manifest (default: the repository's models/yolox_nano_coco_416.json,
	// the model file in the shared data's models/); ModelDir overrides the model file's folder.
	Manifest, ModelDir string
	// Score is the detector's score threshold (default 0.1: low enough for ByteTrack's second
	// stage). Labels are the classes kept (default [person]: the ground truth has only people).
	Score  float32
	Labels []string
	// CacheDir holds cached detections (default: the user cache folder/vigil/score); "off"
	// disables the cache.
	CacheDir string
	// Log gets progress lines; nil discards them.
	Log *slog.Logger
	// Motion runs the clip as a camera with motion-driven detection does (the agent's
	// pipeline/motion.Gate, through Replay): the detector runs on a crop around motion and
	// moving tracks, on the whole frame every FullFrameEvery (0: 10 s, the agent's default)
	// or when a crop would cover Coverage of it (0: 0.6), or not at all; the tracker holds the
	// tracks a crop did not look at, and those count as output. ByteTrack only. Detections
	// are not cached (where the detector runs depends on the tracks).
	Motion         bool
	FullFrameEvery time.Duration
	Coverage       float64
}

// MotionSuffix is appended to the tracker's name in a Result of a motion-driven run.
const MotionSuffix = "-motion"

// Result is the score of one tracker on one clip.
type Result struct {
	Tracker string
	Clip    string // file name
	GT      string // sequence name
	Frames  int    // frames scored (detected frames)
	Metrics Metrics
	// Detector is the raw detector (boxes with score >= the tracker's HighScore, no ids)
	// matched per frame at IoU >= 0.5: what the tracker starts from. Its identity fields are
	// zero and its MOTA is MODA (no switches).
	Detector Metrics
	// TrackTime is the time spent in the tracker's Update over the whole clip.
	TrackTime time.Duration
	// Inferences is how many times the detector ran (one per frame in full-frame mode, one per
	// crop or full-frame pass with Motion; 0 for frames it did not run on).
	Inferences int
	// Reasons counts the frames by the motion plan's reason (Motion only).
	Reasons map[string]int
	// Output is the tracker's output on the scored frames (confirmed tracks matched on the
	// frame, ignored regions included), for WriteMOT.
	Output []MOTRow
}

func (c Config) withDefaults() (Config, error) {
	if c.Tracker == "" {
		c.Tracker = ByteTrack
	}
	if c.Tracker != ByteTrack && c.Tracker != GreedyIoU {
		return c, fmt.Errorf("score: unknown tracker %q (want %s or %s)", c.Tracker, ByteTrack, GreedyIoU)
	}
	if c.DetectEvery == 0 {
		c.DetectEvery = 1
	}
	if c.DetectEvery < 0 || c.MaxFrames < 0 || c.Threads < 0 {
		return c, errors.New("score: DetectEvery, MaxFrames and Threads must not be negative")
	}
	if c.Threads == 0 {
		c.Threads = 1
	}
	if c.Manifest == "" {
		_, src, _, _ := runtime.Caller(0) // <repo>/testvideos/score/run.go
		c.Manifest = filepath.Join(filepath.Dir(src), "..", "..", "models", "yolox_nano_coco_416.json")
	}
	if c.Score == 0 {
		c.Score = 0.1
	}
	if len(c.Labels) == 0 {
		c.Labels = []string{"person"}
	}
	c.Track = c.Track.WithDefaults()
	if err := c.Track.Validate(); err != nil {
		return c, fmt.Errorf("score: %w", err)
	}
	if c.CacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		c.CacheDir = filepath.Join(dir, "vigil", "score")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Motion && c.Tracker != ByteTrack {
		return c, fmt.Errorf("score: motion mode needs the %s tracker (it holds the tracks a crop did not look at)", ByteTrack)
	}
	if c.FullFrameEvery < 0 || !(c.Coverage >= 0 && c.Coverage <= 1) {
		return c, errors.New("score: the full-frame interval must not be negative and the coverage must be in [0,1]")
	}
	if c.FullFrameEvery == 0 {
		c.FullFrameEvery = 10 * time.Second
	}
	if c.Clip == "" || c.GTDir == "" {
		return c, errors.New("score: name a clip and a ground-truth folder")
	}
	return c, nil
}

// updater is what Run needs of a tracker: pipeline/track.Tracker and Greedy.
type updater interface {
	Update(frame.Detections) frame.Tracks
}

// Run detects people on the clip (or takes them from the cache), tracks them with the chosen
// tracker and scores the confirmed, matched tracks of every detected frame against the
// ground truth (lost tracks are predictions, not output, as in MOTChallenge submissions).
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	seq, err := LoadGT(cfg.GTDir)
	if err != nil {
		return Result{}, fmt.Errorf("score: %w", err)
	}
	if cfg.Motion {
		return runMotion(ctx, cfg, seq)
	}
	dets, err := Detections(ctx, cfg)
	if err != nil {
		return Result{}, err
	}
	if len(dets) > 0 && seq.Width > 0 && (dets[0].Width != seq.Width || dets[0].Height != seq.Height) {
		return Result{}, fmt.Errorf("score: clip is %dx%d, ground truth %s is %dx%d", dets[0].Width, dets[0].Height, seq.Name, seq.Width, seq.Height)
	}
	var tr updater
	if cfg.Tracker == GreedyIoU {
		tr = NewGreedy()
	} else {
		tr = track.New(cfg.Track)
	}
	hyp := map[int][]Object{}
	raw := map[int][]Object{}
	var frames []int
	var output []MOTRow
	var took time.Duration
	for _, d := range dets {
		f := int(d.FrameSeq) + cfg.FrameOffset
		frames = append(frames, f)
		start := time.Now()
		ts := tr.Update(d)
		took += time.Since(start)
		for _, t := range ts.Tracks {
			if t.State == frame.Confirmed && t.Matched {
				hyp[f] = append(hyp[f], Object{ID: t.ID, Box: t.Box})
				output = append(output, MOTRow{Frame: f, ID: t.ID, Box: Object{ID: t.ID, Box: t.Box}, Score: t.Score})
			}
		}
		for _, o := range d.Objects {
			if o.Score >= cfg.Track.HighScore {
				raw[f] = append(raw[f], Object{Box: o.Box})
			}
		}
	}
	hyp, raw = dropIgnored(seq, hyp), dropIgnored(seq, raw)
	return Result{
		Tracker: cfg.Tracker, Clip: filepath.Base(cfg.Clip), GT: seq.Name, Frames: len(frames),
		Metrics:    Evaluate(seq.Frames, hyp, frames),
		Detector:   EvaluateDetections(seq.Frames, raw, frames),
		TrackTime:  took,
		Output:     output,
		Inferences: len(frames),
	}, nil
}

// runMotion is Run with motion-driven detection: Replay of the clip through the agent's gate.
func runMotion(ctx context.Context, cfg Config, seq Sequence) (Result, error) {
	manifest := cfg.Manifest
	r, err := Replay(ctx, ReplayConfig{Clip: cfg.Clip, DetectEvery: cfg.DetectEvery, Motion: true,
		FullFrameEvery: cfg.FullFrameEvery, Coverage: cfg.Coverage, Labels: cfg.Labels, Score: cfg.Score,
		GTDir: cfg.GTDir, FrameOffset: cfg.FrameOffset, MaxFrames: cfg.MaxFrames, Threads: cfg.Threads,
		Manifest: manifest, ModelDir: cfg.ModelDir, Track: cfg.Track})
	if err != nil {
		return Result{}, fmt.Errorf("score: %w", err)
	}
	return Result{
		Tracker: cfg.Tracker + MotionSuffix, Clip: filepath.Base(cfg.Clip), GT: seq.Name, Frames: r.Analysed,
		Metrics: *r.Metrics, Detector: *r.Detector, Output: r.Output, Inferences: r.Inferences, Reasons: r.Reasons,
	}, nil
}

// dropIgnored leaves out the boxes that cover an ignored ground-truth object (conf 0, IoU >=
// MinIoU) and no counted one, as the MOTChallenge devkit does: finding an object the ground
// truth chose not to count is neither a hit nor a false positive.
func dropIgnored(seq Sequence, hyp map[int][]Object) map[int][]Object {
	out := make(map[int][]Object, len(hyp))
	for f, objs := range hyp {
		for _, o := range objs {
			if covers(seq.Ignored[f], o.Box) && !covers(seq.Frames[f], o.Box) {
				continue
			}
			out[f] = append(out[f], o)
		}
	}
	return out
}

func covers(objs []Object, b models.Box) bool {
	for _, o := range objs {
		if o.Box.IoU(b) >= MinIoU {
			return true
		}
	}
	return false
}

// epoch is the capture time given to video time 0, so that trackers see video time.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// cacheFile is the on-disk form of one clip's detections under one model and setting.
type cacheFile struct {
	Total  int                 `json:"total,omitempty"` // frames in the clip, once known
	Frames map[int]cachedFrame `json:"frames"`
}

type cachedFrame struct {
	PTS     time.Duration      `json:"pts"`
	Width   int                `json:"w"`
	Height  int                `json:"h"`
	Objects []models.Detection `json:"objects"`
}

// Detections returns the detections of the frames cfg scores (every DetectEvery-th video
// frame from frame 1, up to MaxFrames), with CapturedAt = a fixed epoch + PTS so that the
// tracker sees video time. Frames missing from the cache are detected with the real pipeline
// pieces (file source, decoder, ONNX detector) and added to it.
func Detections(ctx context.Context, cfg Config) ([]frame.Detections, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	man, err := models.LoadManifest(cfg.Manifest)
	if err != nil {
		return nil, fmt.Errorf("score: %w", err)
	}
	switch {
	case cfg.ModelDir != "":
		man.Dir = cfg.ModelDir
	default:
		if _, err := os.Stat(man.ModelPath()); err != nil {
			if man.Dir, err = data.Path("models"); err != nil {
				return nil, fmt.Errorf("score: %w", err)
			}
		}
	}
	clipSum, err := fileSHA256(cfg.Clip)
	if err != nil {
		return nil, fmt.Errorf("score: %w", err)
	}
	labels := slices.Clone(cfg.Labels)
	slices.Sort(labels)
	// preprocess names how frames become the model's input: a change there changes detections.
	const preprocess = "yuv-sws"
	key := fmt.Sprintf("%s-%.16s-%.16s-s%g-%s-%s", strings.TrimSuffix(filepath.Base(cfg.Clip), filepath.Ext(cfg.Clip)),
		man.SHA256, clipSum, cfg.Score, strings.ReplaceAll(strings.Join(labels, "+"), " ", "_"), preprocess)
	cachePath := ""
	cache := cacheFile{Frames: map[int]cachedFrame{}}
	if cfg.CacheDir != "off" {
		cachePath = filepath.Join(cfg.CacheDir, key+".json")
		if b, err := os.ReadFile(cachePath); err == nil {
			if err := json.Unmarshal(b, &cache); err != nil || cache.Frames == nil {
				cfg.Log.Warn("detection cache unreadable; detecting again", "file", cachePath, "err", err)
				cache = cacheFile{Frames: map[int]cachedFrame{}}
			}
		}
	}
	wanted := func(n int) bool {
		return (n-1)%cfg.DetectEvery == 0 && (cfg.MaxFrames == 0 || n <= cfg.MaxFrames)
	}
	complete := func() bool {
		last := cfg.MaxFrames
		if cache.Total > 0 && (last == 0 || last > cache.Total) {
			last = cache.Total
		}
		if last == 0 {
			return false // the clip's length is not known yet
		}
		for n := 1; n <= last; n += cfg.DetectEvery {
			if _, ok := cache.Frames[n]; !ok {
				return false
			}
		}
		return true
	}
	if !complete() {
		det, err := onnx.Open(man, onnx.Options{Threads: cfg.Threads, Score: cfg.Score, Labels: cfg.Labels})
		if err != nil {
			return nil, fmt.Errorf("score: %w", err)
		}
		defer det.Close()
		start := time.Now()
		detected := 0
		total, err := clip.Decode(ctx, cfg.Clip, cfg.MaxFrames, func(n int, f *frame.Frame) error {
			if !wanted(n) {
				return nil
			}
			if _, ok := cache.Frames[n]; ok {
				return nil
			}
			objs, err := det.Detect(ctx, f.Image)
			if err != nil {
				return fmt.Errorf("frame %d: %w", n, err)
			}
			detected++
			cache.Frames[n] = cachedFrame{PTS: f.PTS, Width: f.Image.Width, Height: f.Image.Height, Objects: objs}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("score: %s: %w", cfg.Clip, err)
		}
		if total > 0 {
			cache.Total = total
		}
		cfg.Log.Info("detected", "clip", cfg.Clip, "frames", detected, "took", time.Since(start).Round(time.Millisecond))
		if cachePath != "" && detected > 0 {
			if err := writeCache(cachePath, cache); err != nil {
				cfg.Log.Warn("detection cache not written", "err", err)
			}
		}
	}
	info := frame.ModelInfo{Name: man.Name, Version: man.Version, SHA256: man.SHA256}
	var out []frame.Detections
	for _, n := range slices.Sorted(maps.Keys(cache.Frames)) {
		if !wanted(n) || cache.Total > 0 && n > cache.Total {
			continue
		}
		c := cache.Frames[n]
		out = append(out, frame.Detections{
			Camera: filepath.Base(cfg.Clip), FrameSeq: uint64(n), PTS: c.PTS, CapturedAt: epoch.Add(c.PTS),
			Width: c.Width, Height: c.Height, Model: info, Objects: c.Objects,
		})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("score: %s: no frame decoded", cfg.Clip)
	}
	return out, nil
}

func writeCache(path string, c cacheFile) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
