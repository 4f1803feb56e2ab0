// Package agent wires the edge binary: it loads the configuration, owns every long-lived part
// (the MQTT publisher, one pipeline per camera, the HTTP server for metrics and status),
// starts them in dependency order and stops them in reverse, so a clean stop loses nothing.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/internal/version"
	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/models/ota"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/metrics"
	"github.com/vigil-edge/vigil/pipeline/outbox"
	"github.com/vigil-edge/vigil/pipeline/publish"
	"github.com/vigil-edge/vigil/pipeline/rules"
	"github.com/vigil-edge/vigil/pipeline/snapshot"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Agent is one running edge agent.
type Agent struct {
	cfg config.Config
	log *slog.Logger
	reg *prometheus.Registry
	m   *metrics.Metrics

	sensors *sensors        // MAVLink, GNSS, board (drone.go)
	tele    *telemetry      // periodic health report (telemetry.go)
	health  healthState     // what /healthz needs besides the parts' own state (health.go)
	obc     *outboxCounters // outbox corruption counters (health.go)

	mu       sync.Mutex
	httpAddr string
	ob       *outbox.Outbox     // set by Run
	pub      *publish.Publisher // set by Run
	snaps    *snapshot.Store    // set by Run; nil when snapshots are off
	ota      *ota.Handler       // set by Run; nil when updates are off
	cams     []*camera          // set by Run, once their pools are open
	pools    *pools             // set by Run
}

// New builds an agent from a validated configuration. It does no I/O: Run does.
func New(cfg config.Config, log *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	reg := prometheus.NewRegistry()
	a := &Agent{cfg: cfg, log: log, reg: reg, m: metrics.New(reg), obc: newOutboxCounters(reg)}
	s, err := newSensors(cfg, reg, log)
	if err != nil {
		return nil, err
	}
	a.sensors, a.tele = s, newTelemetry(cfg.Telemetry.DiskPath)
	for _, c := range cfg.Cameras { // the cameras are made by Run, when what they need is open
		if _, err := rules.New(c.Rules); c.IsEnabled() && err != nil {
			return nil, fmt.Errorf("camera %s: %w", c.ID, err)
		}
	}
	return a, nil
}

// store appends a frame's detections to the outbox; it returns once they are durable.
func (a *Agent) store(ctx context.Context, d frame.Detections) error {
	if len(d.Objects) == 0 {
		return nil
	}
	a.sensors.geoReference(&d)
	return a.append(ctx, a.ob, wire.NewDetections(d))
}

// append stores one message in the outbox ob; a failure (not a cancelled context) is counted
// in vigil_outbox_append_errors_total and returned naming the message's kind. When ctx
// carries a frame's storeBatch (withStoreBatch) it only enqueues the message: the batch's
// wait reports the outcome, one disk commit for all the frame's messages.
func (a *Agent) append(ctx context.Context, ob *outbox.Outbox, m wire.Message) error {
	t, err := ob.Enqueue(wire.Device{ID: a.cfg.DeviceID, Epoch: ob.Epoch()}.Outgoing(m))
	if err == nil {
		if b, ok := ctx.Value(storeBatchKey{}).(*storeBatch); ok {
			b.add(a, t, m.Kind())
			return nil
		}
		_, err = t.Wait(ctx)
	}
	return a.appended(m.Kind(), err)
}

// appended records an append's outcome: a failure (not a cancelled context) is counted in
// vigil_outbox_append_errors_total and returned naming the message's kind.
func (a *Agent) appended(kind string, err error) error {
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			a.m.OutboxErrors.Inc()
			a.health.appended(err)
		}
		return fmt.Errorf("store %s: %w", kind, err)
	}
	a.health.appended(nil)
	return nil
}

// storeBatch holds the messages one frame's analysis enqueued until they are durable.
type storeBatch struct {
	a       *Agent
	tickets []*outbox.Ticket
	kinds   []string
}

type storeBatchKey struct{}

// withStoreBatch makes the appends under the returned context enqueue only; wait on the
// batch before the next frame.
func withStoreBatch(ctx context.Context) (context.Context, *storeBatch) {
	b := &storeBatch{}
	return context.WithValue(ctx, storeBatchKey{}, b), b
}

func (b *storeBatch) add(a *Agent, t *outbox.Ticket, kind string) {
	b.a = a
	b.tickets = append(b.tickets, t)
	b.kinds = append(b.kinds, kind)
}

// wait returns once every message of the batch is durable, with the failures (each counted
// as append does) joined; the batch is empty after.
func (b *storeBatch) wait(ctx context.Context) error {
	var errs []error
	for i, t := range b.tickets {
		_, err := t.Wait(ctx)
		if err := b.a.appended(b.kinds[i], err); err != nil {
			errs = append(errs, err)
		}
	}
	b.tickets, b.kinds = b.tickets[:0], b.kinds[:0]
	return errors.Join(errs...)
}

// outboxStore is the agent's outbox as the cameras' message store.
type outboxStore struct{ a *Agent }

func (s outboxStore) Store(ctx context.Context, m wire.Message) error {
	return s.a.append(ctx, s.a.ob, m)
}

// openOutbox opens the outbox file, creating its folder, with metrics wired in.
func (a *Agent) openOutbox() (*outbox.Outbox, error) {
	oc := a.cfg.Outbox
	if err := os.MkdirAll(filepath.Dir(oc.Path), 0o750); err != nil {
		return nil, fmt.Errorf("outbox folder for %s: %w", oc.Path, err)
	}
	ob, err := outbox.Open(oc.Path, outbox.Options{MaxBytes: oc.MaxBytes, HardMaxBytes: oc.HardMaxBytes, MaxAge: oc.MaxAge,
		OnDrop:           func(c frame.Class, reason string) { a.m.OutboxDropped.WithLabelValues(c.String(), reason).Inc() },
		MoveAsideCorrupt: true, OnCorrupt: a.outboxCorrupt})
	if err != nil {
		return nil, err
	}
	a.outboxRecovered(ob.Recovered()) // health.go
	metrics.WatchOutbox(a.reg, func() metrics.OutboxStats {
		st := ob.Stats()
		return metrics.OutboxStats{Messages: st.Messages, Bytes: st.Bytes, Oldest: st.OldestAt}
	})
	return ob, nil
}

// OpenDetector loads the model a camera uses.
func OpenDetector(mc config.Model, cam config.Camera) (models.Detector, error) {
	man, err := modelManifest(mc)
	if err != nil {
		return nil, err
	}
	return openManifest(man, mc.Threads, 1, cam)
}

// modelManifest loads mc's manifest, with the folder its model file is in.
func modelManifest(mc config.Model) (models.Manifest, error) {
	man, err := models.LoadManifest(mc.Manifest)
	if err != nil {
		return man, fmt.Errorf("model %s: %w", mc.Manifest, err)
	}
	switch {
	case mc.Dir != "":
		man.Dir = mc.Dir
	case !exists(man.ModelPath()) && os.Getenv("EDGE_DATA_DIR") != "":
		// The shipped manifests name models kept in the shared data folder.
		man.Dir = filepath.Join(os.Getenv("EDGE_DATA_DIR"), "models")
	}
	if abs, err := filepath.Abs(man.Dir); err == nil {
		man.Dir = abs
	}
	return man, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// HTTPAddr is the address the HTTP server listens on, once Run has started it.
func (a *Agent) HTTPAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.httpAddr
}

// Registry is the agent's metrics registry.
func (a *Agent) Registry() *prometheus.Registry { return a.reg }

// Run runs the agent until ctx is done, then stops every part in reverse order. The agent
// starts completely or not at all: when one of its own parts cannot start (the outbox, the
// HTTP port, the model store, the snapshot folder, the publisher's TLS files), Run stops what
// it had started, in reverse order, and returns at once with the reason. A camera that cannot
// run (its model fails to load, its URL is wrong) is reported and the others go on.
//
// Order: every camera has its detector before the publisher connects, so no fleet command
// (which may swap models) is handled before the cameras exist.
func (a *Agent) Run(ctx context.Context) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stack []func() // closers of the parts started, in start order
	defer func() {
		cancel() // the parts that wait for ctx (sensors, telemetry) end now
		for i := len(stack) - 1; i >= 0; i-- {
			stack[i]()
		}
	}()

	ob, err := a.openOutbox()
	if err != nil {
		return err
	}
	stack = append(stack, func() { ob.Close() }) // last of all: after the publisher has stopped reading it
	var ids []string
	for _, c := range a.cfg.Cameras {
		if c.IsEnabled() {
			ids = append(ids, c.ID)
		}
	}
	pub, err := publish.New(publish.Config{
		DeviceID: a.cfg.DeviceID, Epoch: ob.Epoch(), URL: a.cfg.MQTT.URL, ClientID: a.cfg.MQTT.ClientID,
		Username: a.cfg.MQTT.Username, Password: a.cfg.MQTT.Password, TLS: a.cfg.MQTT.TLS,
		KeepAlive: a.cfg.MQTT.KeepAlive, MaxInflight: a.cfg.MQTT.MaxInflight, ReplayRate: a.cfg.Outbox.ReplayRate,
		Version: version.Get(), Cameras: ids, OnCommand: a.handleCommand, OutboxLost: outboxLost(ob.Recovered()),
	}, ob, a.m, a.log)
	if err != nil {
		return err
	}
	var snaps *snapshot.Store
	if a.cfg.Snapshots.Dir != "" {
		if snaps, err = snapshot.Open(a.cfg.Snapshots.Dir, a.cfg.Snapshots.MaxBytes); err != nil {
			return fmt.Errorf("snapshots: %w", err)
		}
	}
	a.mu.Lock()
	a.ob, a.pub, a.snaps = ob, pub, snaps
	a.mu.Unlock()
	if snaps != nil {
		snaps.SetEncoding(snapshot.Encoding{MaxWidth: a.cfg.Snapshots.MaxWidth, Quality: a.cfg.Snapshots.Quality})
	}

	if a.cfg.HTTP.Listen != "" {
		ln, err := net.Listen("tcp", a.cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http listen on %s: %w", a.cfg.HTTP.Listen, err)
		}
		a.mu.Lock()
		a.httpAddr = ln.Addr().String()
		a.mu.Unlock()
		srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}
		served := make(chan struct{})
		go func() {
			defer close(served)
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("http server", "err", err)
			}
		}()
		stack = append(stack, func() { // the HTTP server goes last but one: metrics stay visible to the end
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			_ = srv.Shutdown(sctx)
			<-served
		})
		a.log.Info("serving metrics and status", "addr", a.httpAddr)
	}

	fleetModel, stopOTA, err := a.startOTA(ctx)
	if err != nil {
		return err
	}
	stack = append(stack, stopOTA)

	// Every camera gets its detector before anything can swap it (see Order above).
	if testHookCamerasStarting != nil {
		testHookCamerasStarting()
	}
	ps := a.openPools(fleetModel)
	stack = append(stack, ps.close) // after the cameras have left them
	cams, err := a.newCameras(ps, snaps)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.cams, a.pools = cams, ps
	a.mu.Unlock()
	// The sensors start before the cameras run and stop after them; the telemetry they
	// report names the cameras and their model from the first message.
	stack = append(stack, a.startSensors(ctx, ob))

	pub.Start()                                                  // connects, then subscribes to commands
	stack = append(stack, func() { pub.Close(shutdownTimeout) }) // sends "offline" once the cameras have handed on every result
	var wg sync.WaitGroup
	for _, cam := range cams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cam.run(ctx)
		}()
	}
	stack = append(stack, wg.Wait) // cameras finish their queued frames and hand on every result
	a.log.Info("agent running", "device_id", a.cfg.DeviceID, "cameras", len(cams))
	stack = append(stack, a.notifySystemd(ctx)) // READY=1 now; STOPPING=1 first thing on the way out

	var resume sync.WaitGroup
	if a.ota != nil {
		resume.Add(1)
		go func() { // an update interrupted by a restart goes on
			defer resume.Done()
			if err := a.ota.ResumePending(ctx); err != nil {
				a.log.Warn("resume model update", "err", err)
			}
		}()
	}

	<-ctx.Done()
	a.log.Info("stopping")
	stopOTA() // no model swap from here on (the stack calls it again: it is idempotent)
	resume.Wait()
	return nil
}

// newCameras makes the enabled cameras, each with everything it needs: the outbox, the
// snapshot store, its model's detector pool (a camera whose model did not open is marked
// failed, with the reason), its tiling and, with optics, geo-referencing.
func (a *Agent) newCameras(ps *pools, snaps *snapshot.Store) ([]*camera, error) {
	cams := []*camera{} // not nil: the agent has started its cameras, perhaps none
	for i, cc := range a.cfg.Cameras {
		if !cc.IsEnabled() {
			continue
		}
		badMotion := errors.Join(a.cfg.CameraMotionErrors(i)...) // fails this camera only
		deps := cameraDeps{metrics: a.m, log: a.log, sink: a.store, out: outboxStore{a}, snaps: snaps, device: a.cfg.DeviceID,
			pics: newPictures(a.pictureSender(), snaps != nil && a.cfg.Snapshots.Send, a.cfg.Snapshots.MaxSendBytes,
				snapshot.Encoding{MaxWidth: a.cfg.Snapshots.MaxWidth, Quality: a.cfg.Snapshots.Quality}),
			wrap: func(d models.Detector) (models.Detector, error) { return a.prepareDetector(cc, d) }}
		if cc.Optics != nil {
			deps.locate = a.sensors.geoReference
		}
		if badMotion == nil {
			deps.motion = motionOf(cc)
		}
		pool, perr := ps.forCamera(a.cfg.Model, cc)
		if pool != nil {
			deps.pool = pool
			in := pool.Manifest().Input
			deps.input = image.Pt(in.Width, in.Height)
		}
		cam, err := newCamera(cc, deps)
		if err != nil {
			return nil, err
		}
		if badMotion != nil {
			cam.fail(fmt.Errorf("camera %s: %w", cc.ID, badMotion))
			cam.pool = nil
		} else if pool == nil {
			cam.fail(fmt.Errorf("camera %s: %w", cc.ID, perr))
		} else if err := a.checkCameraModel(cc, pool.Manifest()); err != nil {
			cam.fail(err)
			cam.pool = nil
		} else {
			a.tele.setModel(pool.Manifest())
		}
		cams = append(cams, cam)
	}
	return cams, nil
}

// checkCameraModel checks what a camera asks of its model (its labels, its tiling) before it
// runs, so that a bad setting fails the camera at start with its name.
func (a *Agent) checkCameraModel(cc config.Camera, m models.Manifest) error {
	if _, err := m.KeepLabels(cc.Labels); err != nil {
		return fmt.Errorf("camera %s: 'labels': %w", cc.ID, err)
	}
	return nil
}

// cameras returns the running cameras.
func (a *Agent) cameras() []*camera {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cams
}

// testHookCamerasStarting, set by tests only, runs just before the cameras' detectors open.
var testHookCamerasStarting func()

// Status is the agent's answer on /api/v1/status.
type Status struct {
	DeviceID string         `json:"device_id"`
	Version  string         `json:"version"`
	MQTT     MQTTStatus     `json:"mqtt"`
	Outbox   *OutboxStatus  `json:"outbox,omitempty"`
	Cameras  []CameraStatus `json:"cameras"`
}

// OutboxStatus is the store-and-forward queue's state.
type OutboxStatus struct {
	Path     string `json:"path"`
	Messages int64  `json:"messages"`
	Bytes    int64  `json:"bytes"`
	NextSeq  uint64 `json:"next_seq"`
	// Corrupt counts records skipped since the start because they failed their checksum.
	Corrupt uint64 `json:"corrupt_records,omitempty"`
	// Recovered is set when the file was found corrupt at start, moved aside and replaced.
	Recovered *outbox.Recovery `json:"recovered,omitempty"`
}

// MQTTStatus is the broker connection's state.
type MQTTStatus struct {
	URL       string `json:"url"`
	Connected bool   `json:"connected"`
	LastError string `json:"last_error,omitempty"`
}

// Status reports the agent's state now.
func (a *Agent) Status() Status {
	s := Status{DeviceID: a.cfg.DeviceID, Version: version.Get(), MQTT: MQTTStatus{URL: config.RedactURL(a.cfg.MQTT.URL)}}
	a.mu.Lock()
	pub, ob := a.pub, a.ob
	a.mu.Unlock()
	if pub != nil {
		s.MQTT.Connected, s.MQTT.LastError = pub.Connected(), pub.LastError()
	}
	if ob != nil {
		st := ob.Stats()
		s.Outbox = &OutboxStatus{Path: ob.Path(), Messages: st.Messages, Bytes: st.Bytes, NextSeq: st.NextSeq,
			Corrupt: st.Corrupt, Recovered: ob.Recovered()}
	}
	cams := a.cameras()
	for _, c := range cams {
		s.Cameras = append(s.Cameras, c.Status())
	}
	if cams == nil { // not started yet
		for _, c := range a.cfg.Cameras {
			if c.IsEnabled() {
				s.Cameras = append(s.Cameras, CameraStatus{ID: c.ID, URL: config.RedactURL(c.URL), State: StateStarting})
			}
		}
	}
	return s
}

// Handler serves /metrics, /healthz and /api/v1/status.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	mux.HandleFunc("GET "+wire.SnapshotPrefix+"{file}", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		snaps := a.snaps
		a.mu.Unlock()
		if snaps == nil {
			http.NotFound(w, r)
			return
		}
		snaps.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /healthz", a.serveHealth) // health.go
	if a.cfg.HTTP.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	}
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(a.Status())
	})
	return mux
}
