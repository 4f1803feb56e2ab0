package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
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

// camera runs one camera's pipeline: ingest → decode → buffer → detect → track → rules,
// handing detections and alerts to the agent's outbox.
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

	det          *swappable // set when the camera starts; its model can be replaced
	tracker      *track.Tracker
	rules        *rules.Engine
	events       *events.Manager
	exclude      []mask.Polygon
	publishScore float32 // detections below it feed the tracker only
	frameW       int     // the last detected frame's size, for events ended after the stream
	frameH       int

	mu     sync.Mutex
	status CameraStatus
}

func newCamera(cfg config.Camera, m *metrics.Metrics, log *slog.Logger, sink func(context.Context, frame.Detections) error) (*camera, error) {
	eng, err := rules.New(cfg.Rules)
	if err != nil {
		return nil, fmt.Errorf("camera %s: %w", cfg.ID, err)
	}
	c := &camera{cfg: cfg, m: m, log: log.With("camera", cfg.ID), sink: sink,
		tracker: track.New(track.Default()), rules: eng, events: events.New(events.Default()),
		exclude: mask.Polygons(cfg.Exclude)}
	c.status = CameraStatus{ID: cfg.ID, URL: config.RedactURL(cfg.URL), State: StateStarting}
	// Make the per-camera series exist from the start, so dashboards see zeros, not gaps.
	m.PacketsReceived.WithLabelValues(cfg.ID)
	m.FramesDecoded.WithLabelValues(cfg.ID)
	m.FramesDropped.WithLabelValues(cfg.ID, "detect_queue")
	m.FramesDetected.WithLabelValues(cfg.ID)
	m.DecodeErrors.WithLabelValues(cfg.ID)
	m.Reconnects.WithLabelValues(cfg.ID)
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
	if len(c.exclude) > 0 {
		d = mask.FilterDetections(d, c.exclude)
	}
	pub := d
	pub.Objects = nil
	for _, o := range d.Objects {
		if o.Score >= c.publishScore {
			pub.Objects = append(pub.Objects, o)
		}
	}
	for _, o := range pub.Objects {
		c.m.Detections.WithLabelValues(c.cfg.ID, o.Label).Inc()
	}
	if err := c.sink(ctx, pub); err != nil {
		c.log.Error("store detections", "err", err)
	}
	tracks := c.tracker.Update(d)
	confirmed := 0
	for _, t := range tracks.Tracks {
		if t.State == frame.Confirmed {
			confirmed++
		}
	}
	c.m.TracksActive.WithLabelValues(c.cfg.ID).Set(float64(confirmed))
	alerts := c.rules.Update(tracks)
	changes := c.events.Update(tracks, c.rules.Zones)
	c.snapshot(d)
	c.frameW, c.frameH = d.Width, d.Height
	c.emitEvents(ctx, changes)
	c.answerLive(ctx, d, tracks.Tracks)
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
	redact := func(img models.Image) error { return mask.Apply(img, c.cfg.PrivacyMasks) }
	for _, b := range c.events.BestFrames() {
		jpeg, err := c.snaps.SaveJPEG(b.EventID, d.Image, b.Box, redact)
		if err != nil {
			c.events.NoSnapshot(b.EventID)
			c.log.Warn("save snapshot", "event", b.EventID, "err", err)
			continue
		}
		c.savedSnapshot(b.EventID, jpeg)
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

// run runs the camera until ctx is done (or a file played once ends). It owns det and closes
// it. Every goroutine it starts has ended when it returns.
func (c *camera) run(ctx context.Context, det models.Detector) {
	defer det.Close()
	c.publishScore = c.cfg.Score
	if c.publishScore == 0 {
		c.publishScore = det.Manifest().Defaults.Score
	}
	src, err := newSource(c.cfg, c.log)
	if err != nil {
		c.fail(fmt.Errorf("camera %s: %w", c.cfg.ID, err))
		return
	}
	id := c.cfg.ID
	var buf *detect.Buffer
	if isFile(c.cfg.URL) && !c.cfg.IsRealtime() {
		buf = detect.NewLosslessBuffer(c.cfg.QueueSize)
	} else {
		buf = detect.NewBuffer(c.cfg.QueueSize, func(*frame.Frame) {
			c.m.FramesDropped.WithLabelValues(id, "detect_queue").Inc()
			c.update(func(s *CameraStatus) { s.FramesDropped++ })
		})
	}

	// The detector: after the source stops it finishes the frames already queued, and every
	// result it makes reaches the sink.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		dctx := context.WithoutCancel(ctx)
		detect.Run(dctx, buf, det, func(d frame.Detections) { c.analyse(dctx, d) }, detect.Hooks{
			Detected: func(d frame.Detections) {
				c.m.FramesDetected.WithLabelValues(id).Inc()
				c.m.Inference.WithLabelValues(id).Observe(d.Inference.Seconds())
				c.update(func(s *CameraStatus) { s.Detected++ })
			},
			Failed: func(_ *frame.Frame, err error) {
				c.m.DetectErrors.WithLabelValues(id).Inc()
				c.log.Warn("detection failed", "err", err)
			},
		})
	}()

	p := &packetSink{cam: c, buf: buf, rl: detect.RateLimiter{FPS: c.cfg.DetectFPS}}
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
	buf.Close()
	wg.Wait()
	p.close()
	c.emitEvents(context.WithoutCancel(ctx), c.events.EndAll(time.Now().UTC())) // the stream is over: its events end
	c.m.SourceUp.WithLabelValues(id).Set(0)
	if errors.Is(err, io.EOF) {
		c.setState(StateEnded, nil)
		c.log.Info("source ended")
	} else {
		c.setState(StateStopped, nil)
	}
}

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

// packetSink decodes a source's packets and queues the frames for detection. It runs on the
// supervisor's goroutine only.
type packetSink struct {
	cam   *camera
	buf   *detect.Buffer
	rl    detect.RateLimiter
	wd    ingest.Watchdog
	codec *frame.Codec
	dec   *decode.Decoder
	seq   uint64

	decErrs    int
	lastErrLog time.Time
}

func (p *packetSink) handle(pkt frame.Packet) {
	c := p.cam
	id := c.cfg.ID
	c.m.PacketsReceived.WithLabelValues(id).Inc()
	if pkt.Codec != p.codec {
		p.close()
		p.codec = pkt.Codec
		dec, err := decode.New(pkt.Codec)
		if err != nil {
			c.setState(StateRetrying, fmt.Errorf("%w: %v", errDecoder, err))
			p.logErr("cannot decode the stream", err)
			return
		}
		p.dec = dec
	}
	if p.dec == nil {
		return
	}
	frames, err := p.dec.Decode(pkt)
	if err != nil {
		c.m.DecodeErrors.WithLabelValues(id).Inc()
		p.decErrs++
		p.logErr("decode error", err)
	}
	p.queue(frames)
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
			f.Release()
			continue
		}
		p.buf.Push(f)
	}
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
