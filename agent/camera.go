package agent

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"math"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/decode"
	"github.com/vigil-edge/vigil/pipeline/detect"
	"github.com/vigil-edge/vigil/pipeline/events"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/ingest"
	"github.com/vigil-edge/vigil/pipeline/ingest/file"
	"github.com/vigil-edge/vigil/pipeline/ingest/rtsp"
	"github.com/vigil-edge/vigil/pipeline/mask"
	"github.com/vigil-edge/vigil/pipeline/metrics"
	"github.com/vigil-edge/vigil/pipeline/motion"
	"github.com/vigil-edge/vigil/pipeline/rules"
	"github.com/vigil-edge/vigil/pipeline/snapshot"
	"github.com/vigil-edge/vigil/pipeline/track"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// newSource picks the ingest source by the camera URL's scheme.
func newSource(c config.Camera, log *slog.Logger) (ingest.Source, error) {
	u, err := url.Parse(c.URL)
	if err == nil && (u.Scheme == "rtsp" || u.Scheme == "rtsps") {
		return rtsp.New(rtsp.Config{URL: c.URL, Transport: c.Transport, Logger: log})
	}
	path := c.URL
	if err == nil && u.Scheme == "file" {
		path = u.Path
	}
	return file.New(file.Config{Path: path, Realtime: c.IsRealtime(), Loop: c.Loop})
}

// CameraStatus is what the agent reports about one camera.
type CameraStatus struct {
	ID            string    `json:"id"`
	URL           string    `json:"url"` // password redacted
	State         string    `json:"state"`
	LastError     string    `json:"last_error,omitempty"`
	FramesDecoded uint64    `json:"frames_decoded"`
	FramesDropped uint64    `json:"frames_dropped"`
	Detected      uint64    `json:"frames_detected"`
	LastFrameAt   time.Time `json:"last_frame_at,omitzero"`
	Reconnects    uint64    `json:"reconnects"`
}

// Camera states.
const (
	StateStarting   = "starting"
	StateStreaming  = "streaming"
	StateRetrying   = "retrying"
	StateFailed     = "failed" // cannot run (bad model); other cameras go on
	StateEnded      = "ended"  // a file played once is done
	StateStopped    = "stopped"
	errorLogPeriod  = 10 * time.Second
	shutdownTimeout = 5 * time.Second
)

// camera runs one camera's pipeline: ingest → decode → its slot in the model's detector pool
// → track → rules → events, handing detections, events and alerts to the outbox.
//
//	packets ─▶ decode (YUV) ─▶ detect_fps ─▶ pool slot (latest wins) ─▶ pool worker: detectOn
//	                                                                         │ (letterbox from YUV,
//	          onResult (the slot's sink goroutine): analyse ◀────────────────┘  run, NMS, tiling)
//
// Everything it needs comes through newCamera; run starts it once.
type camera struct {
	cfg    config.Camera
	m      *metrics.Metrics
	log    *slog.Logger
	sink   func(context.Context, frame.Detections) error // detections of interest, per frame
	out    messageStore                                  // nil: events and alerts are only counted
	snaps  *snapshot.Store                               // nil: no snapshots
	locate func(d *frame.Detections)                     // nil: no geo (drone mode sets it)
	pics   *pictures                                     // snapshots and live views for the fleet (pictures.go); nil: none
	device string                                        // the agent's device id
	pool   detectorPool                                  // nil: the camera cannot run (its model did not open)
	wrap   func(models.Detector) (models.Detector, error)

	gate  *motion.Gate  // nil: motion-driven detection is off
	input atomic.Uint64 // the model's input size (w<<32 | h), for motion plans

	// Used only on the pool's workers, one at a time (detectOn).
	bound      *pooledDetector // the pool detector the frame runs on, with the camera's filter
	chain      models.Detector // bound, tiled when the camera asks for it
	chainModel string          // the model chain was built for
	modelScore atomic.Uint32   // the running model's default score (float32 bits), for publishScore

	// Used only on the slot's sink goroutine (onResult, analyse).
	tracker *track.Tracker
	rules   *rules.Engine
	events  *events.Manager
	exclude []mask.Polygon
	frameW  int // the last detected frame's size, for events ended after the stream
	frameH  int
	bgr     []byte      // the BGR copy of frame bgrSeq, for its snapshots and live view; back to bgrBuffers after
	bgrLent bool        // bgr (maybe still nil) is a loan from bgrBuffers
	stored  *storeBatch // the last frame's messages, on their way to the disk (analyse)
	bgrSeq  uint64
	seen    []image.Rectangle // where the detector looked on the frame being analysed (motion)
	slot    *detect.Slot

	mu     sync.Mutex
	status CameraStatus
}

// detectorPool is the camera's handle on the detector pool of its model.
//
// Call contract: Join is called once per run of the camera; the slot is closed by the camera.
type detectorPool interface {
	Join(cfg detect.SlotConfig) (*detect.Slot, error)
}

// cameraDeps is everything a camera needs besides its configuration.
type cameraDeps struct {
	metrics *metrics.Metrics
	log     *slog.Logger
	// sink stores the detections of interest of a frame; out its events and alerts (nil:
	// only counted): both into the outbox, returning once the message is durable.
	sink func(context.Context, frame.Detections) error
	out  messageStore
	// snaps keeps event snapshots (nil: none); locate geo-references detections (nil: none);
	// pics sends snapshots and live views to the fleet (nil: none) as device.
	snaps  *snapshot.Store
	locate func(d *frame.Detections)
	pics   *pictures
	device string
	// pool runs the camera's detections; nil when its model could not be opened (run then
	// reports fail's error).
	pool detectorPool
	// wrap prepares the pool detector for the camera (tiling); nil: used as it is.
	wrap func(models.Detector) (models.Detector, error)
	// motion turns on motion-driven detection; nil: every frame due at detect_fps is detected
	// whole. input is the model's input size (crops are at least that large).
	motion *motion.GateConfig
	input  image.Point
}

func newCamera(cfg config.Camera, deps cameraDeps) (*camera, error) {
	eng, err := rules.New(cfg.Rules)
	if err != nil {
		return nil, fmt.Errorf("camera %s: %w", cfg.ID, err)
	}
	if deps.wrap == nil {
		deps.wrap = func(d models.Detector) (models.Detector, error) { return d, nil }
	}
	c := &camera{cfg: cfg, m: deps.metrics, log: deps.log.With("camera", cfg.ID), sink: deps.sink, out: deps.out,
		snaps: deps.snaps, locate: deps.locate, pics: deps.pics, device: deps.device, pool: deps.pool, wrap: deps.wrap,
		tracker: track.New(track.Default()), rules: eng, events: events.New(events.Default()),
		exclude: mask.Polygons(cfg.Exclude)}
	c.status = CameraStatus{ID: cfg.ID, URL: config.RedactURL(cfg.URL), State: StateStarting}
	c.input.Store(uint64(deps.input.X)<<32 | uint64(uint32(deps.input.Y)))
	if deps.motion != nil {
		if c.gate, err = motion.NewGate(*deps.motion); err != nil {
			return nil, fmt.Errorf("camera %s: motion: %w", cfg.ID, err)
		}
	}
	m := deps.metrics
	// Make the per-camera series exist from the start, so dashboards see zeros, not gaps.
	m.PacketsReceived.WithLabelValues(cfg.ID)
	m.FramesDecoded.WithLabelValues(cfg.ID)
	m.FramesDropped.WithLabelValues(cfg.ID, "detect_queue")
	m.FramesDetected.WithLabelValues(cfg.ID)
	m.DecodeErrors.WithLabelValues(cfg.ID)
	m.Reconnects.WithLabelValues(cfg.ID)
	m.Inferences.WithLabelValues(cfg.ID)
	m.SourceUp.WithLabelValues(cfg.ID).Set(0)
	m.TracksActive.WithLabelValues(cfg.ID).Set(0)
	return c, nil
}

// TrackerScore is the score threshold a camera's detector runs at: low enough for the
// tracker's second association stage. Detections messages use the camera's own threshold.
func TrackerScore() float32 { return track.Default().LowScore }

// messageStore stores a camera's events and alerts.
//
// Call contract: Store returns once m is durable, or with the reason it is not; it is called
// from the camera's detect goroutine.
type messageStore interface {
	Store(ctx context.Context, m wire.Message) error
}

// analyse is the per-frame work after detection, on the detect goroutine: drop detections in
// exclusion areas, store the detections of interest, track, run the rules, follow the events
// (saving the best frame of each, privacy masks applied) and store events and alerts. Every
// result is stored before it returns.
func (c *camera) analyse(ctx context.Context, d frame.Detections) {
	// The frame's messages (detections, events, snapshots, alerts) are handed to the outbox
	// together, and waited for once the next frame's are handed over: the disk commits them
	// while the next frame is analysed, instead of the camera waiting for a commit per message.
	// A camera has at most two frames of messages on their way to the disk; the last ones are
	// waited for when it stops (waitStored).
	ctx, batch := withStoreBatch(ctx)
	defer func() {
		c.waitStored()
		c.stored = batch
	}()
	if len(c.exclude) > 0 {
		d = mask.FilterDetections(d, c.exclude)
	}
	publishScore := c.cfg.Score
	if publishScore == 0 {
		publishScore = math.Float32frombits(c.modelScore.Load())
	}
	pub := d
	pub.Objects = nil
	for _, o := range d.Objects {
		if o.Score >= publishScore {
			pub.Objects = append(pub.Objects, o)
		}
	}
	for _, o := range pub.Objects {
		c.m.Detections.WithLabelValues(c.cfg.ID, o.Label).Inc()
	}
	if err := c.sink(ctx, pub); err != nil {
		c.log.Error("store detections", "err", err)
	}
	var tracks frame.Tracks
	if c.gate != nil { // the detector looked only at c.seen: tracks elsewhere are held
		tracks = c.tracker.UpdateSeen(d, c.seen)
		c.gate.SetTracks(tracks)
	} else {
		tracks = c.tracker.Update(d)
	}
	confirmed := 0
	for _, t := range tracks.Tracks {
		if t.State == frame.Confirmed {
			confirmed++
		}
	}
	c.m.TracksActive.WithLabelValues(c.cfg.ID).Set(float64(confirmed))
	if c.slot != nil { // a camera following objects goes ahead in the pool
		c.slot.SetPriority(confirmed > 0)
	}
	alerts := c.rules.Update(tracks)
	changes := c.events.Update(tracks, c.rules.Zones)
	c.snapshot(d) // gives the BGR copy back before the events: storing them may wait on the disk
	c.frameW, c.frameH = d.Width, d.Height
	c.emitEvents(ctx, changes)
	c.answerLive(ctx, d, tracks.Tracks)
	c.releaseBGR()
	for _, a := range alerts {
		c.m.Alerts.WithLabelValues(c.cfg.ID, a.RuleType).Inc()
		if a.RuleType == rules.TypeLine {
			c.m.LineCrossings.WithLabelValues(c.cfg.ID, a.RuleID, a.Kind, a.Label).Inc()
		}
		if c.out == nil {
			continue
		}
		if err := c.out.Store(ctx, wire.NewAlert(c.events.Identify(a))); err != nil {
			c.log.Error("store alert", "rule", a.RuleID, "err", err)
		}
	}
}

// geoEvent puts the ground point of the event's object (drone mode) on its state: the same
// geo-referencing as detections, for the bottom centre of the event's box at its time.
func (c *camera) geoEvent(ch *events.Change) {
	if c.locate == nil {
		return
	}
	d := frame.Detections{Camera: c.cfg.ID, CapturedAt: ch.At, Width: c.frameW, Height: c.frameH,
		Objects: []models.Detection{{Label: ch.After.Label, Box: ch.After.Box}}}
	c.locate(&d)
	if len(d.Geo) == 1 && d.Geo[0].OK {
		ch.After.Geo = d.Geo[0]
	} else {
		ch.After.GeoStatus = d.GeoStatus
	}
}

// snapshot saves the current frame for every event whose best frame it is, with the camera's
// privacy masks applied.
func (c *camera) snapshot(d frame.Detections) {
	if c.snaps == nil || !d.Image.Valid() {
		for _, b := range c.events.BestFrames() {
			c.events.NoSnapshot(b.EventID)
		}
		return
	}
	best := c.events.BestFrames()
	if len(best) == 0 {
		return
	}
	img, err := c.frameBGR(d)
	if err != nil {
		c.releaseBGR()
		for _, b := range best {
			c.events.NoSnapshot(b.EventID)
		}
		c.log.Warn("convert frame for snapshot", "err", err)
		return
	}
	redact := func(img models.Image) error { return mask.Apply(img, c.cfg.PrivacyMasks) }
	jpegs := make([][]byte, len(best))
	for i, b := range best {
		if jpegs[i], err = snapshot.Encode(img, []snapshot.Box{{Box: b.Box}}, redact, c.snaps.Encoding()); err != nil {
			c.events.NoSnapshot(b.EventID)
			c.log.Warn("save snapshot", "event", b.EventID, "err", err)
		}
	}
	c.releaseBGR() // encoded: the picture goes back before the files are written
	for i, b := range best {
		if jpegs[i] == nil {
			continue
		}
		if err := c.snaps.Put(b.EventID, jpegs[i]); err != nil {
			c.events.NoSnapshot(b.EventID)
			c.log.Warn("save snapshot", "event", b.EventID, "err", err)
			continue
		}
		c.savedSnapshot(b.EventID, jpegs[i])
	}
}

// frameBGR is the full-size BGR copy of d's frame: made only for a frame a snapshot or a live
// view needs, once per frame.
func (c *camera) frameBGR(d frame.Detections) (models.Image, error) {
	if d.Image.Format == models.BGR24 {
		return d.Image, nil
	}
	w, h := d.Image.Width, d.Image.Height
	if c.bgrSeq == d.FrameSeq && c.bgrSeq != 0 && len(c.bgr) == 3*w*h {
		return models.Image{Width: w, Height: h, Stride: 3 * w, Pix: c.bgr}, nil
	}
	if !c.bgrLent {
		c.bgr, c.bgrLent = <-bgrBuffers, true
	}
	img, buf, err := decode.ToBGR(d.Image, c.bgr)
	c.bgr, c.bgrSeq = buf, 0
	if err == nil {
		c.bgrSeq = d.FrameSeq
	}
	return img, err
}

// waitStored returns once the messages of the last frame analysed are durable, logging any
// that could not be stored (each is also counted in vigil_outbox_append_errors_total).
func (c *camera) waitStored() {
	if c.stored == nil {
		return
	}
	if err := c.stored.wait(context.Background()); err != nil {
		c.log.Error("store the frame's messages", "err", err)
	}
	c.stored = nil
}

// bgrBuffers lends the full-size BGR copies the frames with a snapshot or a live view need
// (a few a minute per camera): one per core, shared by every camera, so that a dozen cameras
// hold a few copies (2.6 MiB each at 720p) instead of one each or, at a burst of events, a
// dozen. A camera that needs one while all are lent waits for one, a snapshot's encoding
// (milliseconds), on its own analysis goroutine.
var bgrBuffers = func() chan []byte {
	ch := make(chan []byte, runtime.NumCPU())
	for range cap(ch) {
		ch <- nil // allocated on first use, kept at the largest size asked for
	}
	return ch
}()

// releaseBGR gives the frame's BGR copy, if it borrowed one, back to bgrBuffers.
func (c *camera) releaseBGR() {
	if c.bgrLent {
		bgrBuffers <- c.bgr
		c.bgr, c.bgrSeq, c.bgrLent = nil, 0, false
	}
}

// emitEvents stores event changes: new and end as events, updates as event updates (the
// class the outbox drops first when full).
func (c *camera) emitEvents(ctx context.Context, changes []events.Change) {
	defer c.sendSnapshots(ctx, changes) // after their events: the fleet files them beside
	if c.out == nil {
		return
	}
	for _, ch := range changes {
		c.geoEvent(&ch)
		if err := c.out.Store(ctx, wire.NewEvent(ch)); err != nil {
			c.log.Error("store event", "type", ch.Type, "err", err)
		}
	}
}

func (c *camera) setState(state string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status.State = state
	if err != nil {
		c.status.LastError = err.Error()
	}
}

func (c *camera) update(fn func(*CameraStatus)) {
	c.mu.Lock()
	fn(&c.status)
	c.mu.Unlock()
}

// Status returns a copy of the camera's status.
func (c *camera) Status() CameraStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// fail marks the camera as unable to run.
func (c *camera) fail(err error) {
	c.setState(StateFailed, err)
	c.log.Error("camera cannot run", "err", err)
}

// run runs the camera until ctx is done (or a file played once ends). Every goroutine it
// starts has ended when it returns. It is called once.
func (c *camera) run(ctx context.Context) {
	if c.pool == nil {
		return // failed at start: fail said why
	}
	src, err := newSource(c.cfg, c.log)
	if err != nil {
		c.fail(fmt.Errorf("camera %s: %w", c.cfg.ID, err))
		return
	}
	id := c.cfg.ID
	dctx := context.WithoutCancel(ctx) // results of frames already taken are stored after a stop
	c.slot, err = c.pool.Join(detect.SlotConfig{Camera: id, Depth: c.cfg.QueueSize,
		Lossless: isFile(c.cfg.URL) && !c.cfg.IsRealtime(),
		Detect:   c.detectOn,
		Sink:     func(r detect.Result) { c.onResult(dctx, r) },
		OnDrop: func(*frame.Frame) {
			c.m.FramesDropped.WithLabelValues(id, "detect_queue").Inc()
			c.update(func(s *CameraStatus) { s.FramesDropped++ })
		}})
	if err != nil {
		c.fail(fmt.Errorf("camera %s: %w", id, err))
		return
	}

	p := &packetSink{cam: c, slot: c.slot, rl: detect.RateLimiter{FPS: c.cfg.DetectFPS}}
	err = ingest.Supervise(ctx, src, p.handle, &p.wd, c.cfg.Watchdog, ingest.Backoff{}, ingest.Hooks{
		Probe: sourceProbe(src), // health.go
		SessionEnded: func(err error, wait time.Duration) {
			c.m.SourceUp.WithLabelValues(id).Set(0)
			c.m.SourceErrors.WithLabelValues(id, reason(err)).Inc()
			c.setState(StateRetrying, err)
			c.log.Warn("source failed; retrying", "err", err, "retry_in", wait.Round(time.Millisecond))
		},
		Reconnecting: func(int) {
			c.m.Reconnects.WithLabelValues(id).Inc()
			c.update(func(s *CameraStatus) { s.Reconnects++ })
		},
	})
	p.flush()
	c.slot.Close() // the frames already queued are detected, and every result analysed
	c.waitStored()
	p.close()
	c.emitEvents(dctx, c.events.EndAll(time.Now().UTC())) // the stream is over: its events end
	c.m.SourceUp.WithLabelValues(id).Set(0)
	if errors.Is(err, io.EOF) {
		c.setState(StateEnded, nil)
		c.log.Info("source ended")
	} else {
		c.setState(StateStopped, nil)
	}
}

// detectOn runs the camera's detection of f on det, one of its pool's detectors, on the
// pool's worker: det with the camera's labels and NMS threshold, tiled when asked for. The
// chain is rebuilt when the pool's model changed (a fleet update).
func (c *camera) detectOn(ctx context.Context, det models.Detector, f *frame.Frame) ([]models.Detection, error) {
	m := det.Manifest()
	if id := m.Name + "@" + m.Version + "#" + m.SHA256; c.chain == nil || c.chainModel != id {
		keep, err := m.KeepLabels(c.cfg.Labels)
		if err != nil {
			return nil, fmt.Errorf("camera %s: 'labels': %w", c.cfg.ID, err)
		}
		c.bound = &pooledDetector{det: det, filter: models.Filter{NMS: c.cfg.NMS, Keep: keep}}
		chain, err := c.wrap(c.bound)
		if err != nil {
			return nil, err
		}
		c.chain, c.chainModel = chain, id
		c.modelScore.Store(math.Float32bits(m.Defaults.Score))
		c.input.Store(uint64(m.Input.Width)<<32 | uint64(uint32(m.Input.Height)))
	}
	c.bound.det = det
	defer func() { c.bound.det = nil }()
	if f.Regions != nil { // motion-driven: crops around motion and active tracks
		nms := c.cfg.NMS
		if nms == 0 {
			nms = m.Defaults.NMS
		}
		objs, seen, err := motion.DetectRegions(ctx, c.bound, f.Image, f.Regions, nms)
		c.m.Inferences.WithLabelValues(c.cfg.ID).Add(float64(len(seen)))
		f.Regions = seen // what the detector really looked at (YUV crops start on even pixels)
		return objs, err
	}
	objs, err := c.chain.Detect(ctx, f.Image)
	runs := 1
	if t, ok := c.chain.(interface{ LastInferences() int }); ok {
		runs = t.LastInferences() // tiles
	}
	c.m.Inferences.WithLabelValues(c.cfg.ID).Add(float64(runs))
	return objs, err
}

// onResult is the slot's sink: each detected frame, in order, on the slot's goroutine.
func (c *camera) onResult(ctx context.Context, r detect.Result) {
	id := c.cfg.ID
	c.m.Stage.WithLabelValues(id, metrics.StageQueueWait).Observe(r.Wait.Seconds())
	if r.Err != nil {
		c.m.DetectErrors.WithLabelValues(id).Inc()
		c.log.Warn("detection failed", "err", r.Err)
		return
	}
	f := r.Frame
	d := frame.Detections{Camera: f.Camera, FrameSeq: f.Seq, PTS: f.PTS, CapturedAt: f.CapturedAt,
		Width: f.Image.Width, Height: f.Image.Height, Model: r.Model, Objects: r.Objects, Inference: r.Inference, Image: f.Image}
	c.m.FramesDetected.WithLabelValues(id).Inc()
	c.m.Inference.WithLabelValues(id).Observe(r.Inference.Seconds())
	c.m.Stage.WithLabelValues(id, metrics.StageInference).Observe(r.Inference.Seconds())
	c.update(func(s *CameraStatus) { s.Detected++ })
	if c.frameW != 0 && (d.Width != c.frameW || d.Height != c.frameH) {
		c.restart(ctx, d)
	}
	c.seen = f.Regions
	if c.seen == nil {
		c.seen = []image.Rectangle{image.Rect(0, 0, d.Width, d.Height)}
	}
	start := time.Now()
	c.analyse(ctx, d)
	c.m.Stage.WithLabelValues(id, metrics.StageAnalysis).Observe(time.Since(start).Seconds())
}

// restart follows a picture size change in the middle of a stream: tracks and rule states in
// the old frame's pixels mean nothing in the new one, so the open events end and tracking
// starts again.
func (c *camera) restart(ctx context.Context, d frame.Detections) {
	c.log.Warn("the stream's picture size changed: open events end and tracking restarts",
		"from", fmt.Sprintf("%dx%d", c.frameW, c.frameH), "to", fmt.Sprintf("%dx%d", d.Width, d.Height))
	c.m.SourceErrors.WithLabelValues(c.cfg.ID, "resolution_change").Inc()
	c.emitEvents(ctx, c.events.EndAll(d.CapturedAt))
	c.tracker = track.New(track.Default())
	if eng, err := rules.New(c.cfg.Rules); err == nil { // validated at newCamera
		c.rules = eng
	}
}

// pooledDetector is a camera's view of the pool detector its frame runs on: the camera's
// labels and NMS threshold applied per call. det is set for each frame, on the pool's worker.
type pooledDetector struct {
	det    models.Detector
	filter models.Filter
}

func (p *pooledDetector) Detect(ctx context.Context, img models.Image) ([]models.Detection, error) {
	if fd, ok := p.det.(models.FilteredDetector); ok {
		return fd.DetectFiltered(ctx, img, p.filter)
	}
	objs, err := p.det.Detect(ctx, img)
	if err != nil || p.filter.Keep == nil {
		return objs, err
	}
	return slices.DeleteFunc(objs, func(o models.Detection) bool {
		return o.ClassID >= len(p.filter.Keep) || !p.filter.Keep[o.ClassID]
	}), nil
}

func (p *pooledDetector) Manifest() models.Manifest { return p.det.Manifest() }

// Close does nothing: the pool owns its detectors.
func (p *pooledDetector) Close() error { return nil }

func isFile(u string) bool {
	return !strings.HasPrefix(u, "rtsp://") && !strings.HasPrefix(u, "rtsps://")
}

// reason is a short, low-cardinality label for a source error.
func reason(err error) string {
	switch {
	case errors.Is(err, ingest.ErrStalled):
		return "stalled"
	case errors.Is(err, rtsp.ErrUnauthorized):
		return "unauthorized"
	case errors.Is(err, rtsp.ErrUnreachable):
		return "unreachable"
	case errors.Is(err, rtsp.ErrNoVideo), errors.Is(err, file.ErrNotVideo):
		return "no_video"
	case errors.Is(err, errDecoder):
		return "decoder"
	default:
		return "other"
	}
}

var errDecoder = errors.New("cannot decode the stream")

// packetSink decodes a source's packets and offers the frames due at detect_fps to the pool.
// It runs on the supervisor's goroutine only.
type packetSink struct {
	cam   *camera
	slot  *detect.Slot
	rl    detect.RateLimiter
	wd    ingest.Watchdog
	codec *frame.Codec
	dec   *decode.Decoder
	disp  decode.Disposable // pictures that may be left undecoded
	seq   uint64

	decErrs    int
	lastErrLog time.Time
	hwWarned   bool
}

func (p *packetSink) handle(pkt frame.Packet) {
	c := p.cam
	id := c.cfg.ID
	c.m.PacketsReceived.WithLabelValues(id).Inc()
	if pkt.Codec != p.codec {
		p.close()
		p.codec = pkt.Codec
		if !p.open(pkt.Codec) {
			return
		}
	}
	if p.dec == nil {
		return
	}
	if p.disp.Check(pkt) && !p.rl.Due(pkt.PTS) {
		// No picture refers to this one and the detector would not see it: not decoding it
		// spares about a third of decoding on streams with B-frames (detect_fps < fps).
		c.m.FramesUndecoded.WithLabelValues(id).Inc()
		return
	}
	start := time.Now()
	frames, err := p.dec.Decode(pkt)
	c.m.Stage.WithLabelValues(id, metrics.StageDecode).Observe(time.Since(start).Seconds())
	if err != nil {
		c.m.DecodeErrors.WithLabelValues(id).Inc()
		p.decErrs++
		p.logErr("decode error", err)
	}
	p.queue(frames)
}

// open opens the decoder for a new stream session, with the camera's threads and hwaccel.
func (p *packetSink) open(codec *frame.Codec) bool {
	c := p.cam
	threads := 1
	if c.cfg.DecoderThreads != nil {
		threads = *c.cfg.DecoderThreads
	}
	dec, err := decode.New(codec, decode.WithThreads(threads), decode.WithHWAccel(c.cfg.HWAccel))
	if err != nil {
		c.setState(StateRetrying, fmt.Errorf("%w: %v", errDecoder, err))
		p.logErr("cannot decode the stream", err)
		return false
	}
	if fb := dec.HWFallback(); fb != nil {
		c.m.HWFallbacks.WithLabelValues(c.cfg.ID, c.cfg.HWAccel).Inc()
		if !p.hwWarned { // once per camera run, not per reconnect
			p.hwWarned = true
			c.log.Warn("'hwaccel' "+c.cfg.HWAccel+": no hardware decoder here; decoding in software", "err", fb)
		}
	}
	p.dec = dec
	return true
}

func (p *packetSink) queue(frames []*frame.Frame) {
	c := p.cam
	id := c.cfg.ID
	for _, f := range frames {
		p.seq++
		f.Camera, f.Seq = id, p.seq
		p.wd.Alive()
		c.m.FramesDecoded.WithLabelValues(id).Inc()
		if p.seq == 1 || c.Status().State != StateStreaming {
			c.m.SourceUp.WithLabelValues(id).Set(1)
			c.setState(StateStreaming, nil)
		}
		c.update(func(s *CameraStatus) { s.FramesDecoded++; s.LastFrameAt = f.CapturedAt })
		if !p.rl.Allow(f.PTS) {
			c.m.FramesSkipped.WithLabelValues(id).Inc()
			f.Release() // never converted: its picture goes straight back to the decoder
			continue
		}
		if c.gate != nil && !p.plan(f) {
			f.Release() // nothing moves and no track is active: no inference
			continue
		}
		p.slot.Submit(f)
	}
}

// plan runs motion-driven detection's decision for f, on the decoder's Y plane: it sets
// f.Regions to the crops to detect, leaves them nil for a full-frame pass, or returns false
// when the frame needs no inference.
func (p *packetSink) plan(f *frame.Frame) bool {
	c := p.cam
	in := c.input.Load()
	d := c.gate.Plan(f.Image, f.PTS, int(in>>32), int(uint32(in)))
	c.m.MotionPlans.WithLabelValues(c.cfg.ID, d.Mode.String(), d.Reason).Inc()
	switch d.Mode {
	case motion.None:
		return false
	case motion.Regions:
		f.Regions = d.Regions
	}
	return true
}

// logErr logs a per-packet error at most once per errorLogPeriod, with the count since.
func (p *packetSink) logErr(msg string, err error) {
	if time.Since(p.lastErrLog) < errorLogPeriod {
		return
	}
	p.cam.log.Warn(msg, "err", err, "errors_since_last_log", p.decErrs)
	p.lastErrLog = time.Now()
	p.decErrs = 0
}

// flush drains the decoder's delayed frames at the end of the stream.
func (p *packetSink) flush() {
	if p.dec == nil {
		return
	}
	frames, _ := p.dec.Flush()
	p.queue(frames)
}

func (p *packetSink) close() {
	if p.dec != nil {
		p.dec.Close()
		p.dec = nil
	}
}
