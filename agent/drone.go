package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/hal/board"
	"github.com/vigil-edge/vigil/hal/geo"
	"github.com/vigil-edge/vigil/hal/gnss"
	"github.com/vigil-edge/vigil/hal/mavlink"
	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/models/tile"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/outbox"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// sensors are the agent's hardware inputs besides cameras: the autopilot's MAVLink telemetry
// (drone mode) and the GNSS receiver. They geo-reference detections and size detector tiles.
//
// Call contract: newSensors does no I/O; start opens the devices (once, before the cameras
// start); close stops them and waits (once, after the cameras have stopped). geoReference,
// height and position are safe for concurrent use at any time, also before start and after
// close.
type sensors struct {
	cfg    config.Drone
	log    *slog.Logger
	mav    *mavlink.Client // nil without drone.mavlink
	gnss   gnss.Source     // nil without gnss
	gnssID string          // "static" or "gnss", the telemetry's position source
	optics map[string]config.Optics

	located *prometheus.CounterVec // camera
	missed  *prometheus.CounterVec // camera, reason

	mu         sync.Mutex
	ground     float64 // metres MSL
	haveGround bool
}

// newSensors builds the MAVLink client and GNSS source the configuration asks for and
// registers their metrics, and the board's, on reg.
func newSensors(cfg config.Config, reg prometheus.Registerer, log *slog.Logger) (*sensors, error) {
	s := &sensors{cfg: cfg.Drone, log: log.With("component", "sensors"), optics: map[string]config.Optics{}}
	if err := reg.Register(board.NewCollector("/", cfg.Telemetry.DiskPath)); err != nil {
		return nil, fmt.Errorf("register board metrics: %w", err)
	}
	if cfg.Drone.Enabled() {
		key, err := cfg.Drone.SigningKey()
		if err != nil {
			return nil, fmt.Errorf("'drone.mavlink_key' %w", err)
		}
		mc, err := mavlink.New(mavlink.Config{Endpoint: cfg.Drone.MAVLink, MaxAge: cfg.Drone.MaxAge,
			Key: key, SystemID: uint8(cfg.Drone.SystemID),
			Logger: log.With("component", "mavlink"), Registerer: reg})
		if err != nil {
			return nil, err
		}
		s.mav = mc
	}
	if g := cfg.Drone.GroundAltM; g != nil {
		s.ground, s.haveGround = *g, true
	}
	switch {
	case cfg.GNSS.Static != nil:
		st := cfg.GNSS.Static
		src, err := gnss.NewStatic(st.Lat, st.Lon, deref(st.AltM), st.AltM != nil)
		if err != nil {
			return nil, err
		}
		s.gnss, s.gnssID = src, "static"
	case cfg.GNSS.NMEA != "":
		src, err := gnss.NewSerial(gnss.SerialConfig{Path: cfg.GNSS.NMEA, Baud: cfg.GNSS.Baud, Logger: log})
		if err != nil {
			return nil, err
		}
		s.gnss, s.gnssID = src, "gnss"
	}

	s.located = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "vigil", Name: "geo_located_total",
		Help: "Detected objects given a ground position."}, []string{"camera"})
	s.missed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "vigil", Name: "geo_unlocated_total",
		Help: "Detected objects on cameras with optics left without a ground position, by reason."}, []string{"camera", "reason"})
	if err := reg.Register(s.located); err != nil {
		return nil, fmt.Errorf("register geo metrics: %w", err)
	}
	if err := reg.Register(s.missed); err != nil {
		return nil, fmt.Errorf("register geo metrics: %w", err)
	}
	for _, c := range cfg.Cameras {
		if c.Optics != nil && c.IsEnabled() {
			s.optics[c.ID] = *c.Optics
			s.located.WithLabelValues(c.ID)
		}
	}
	return s, nil
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// start opens the MAVLink endpoint and the GNSS receiver. A device that cannot be opened is
// logged and left out: the cameras run without it (their detections say geo_status
// "no_telemetry").
func (s *sensors) start(ctx context.Context) {
	if s.mav != nil {
		if err := s.mav.Start(ctx); err != nil {
			s.log.Error("mavlink unavailable; detections go without geo", "err", err)
		}
	}
	if s.gnss != nil {
		if err := s.gnss.Start(ctx); err != nil {
			s.log.Error("gnss unavailable", "err", err)
		}
	}
}

// close stops the devices and waits for their goroutines.
func (s *sensors) close() {
	if s.mav != nil {
		_ = s.mav.Close()
	}
	if s.gnss != nil {
		_ = s.gnss.Close()
	}
}

// groundAlt is the ground plane's altitude: the configured one, else the home altitude of the
// first pose (altitude MSL minus altitude above home), kept from then on.
func (s *sensors) groundAlt(p mavlink.Pose) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.haveGround {
		s.ground, s.haveGround = p.AltMSL-p.AltRel, true
		s.log.Info("ground altitude from home", "alt_msl_m", math.Round(s.ground*10)/10)
	}
	return s.ground
}

// geoReference gives each object of d the ground point under the bottom centre of its box,
// from the drone's pose at the frame's capture time, when the camera has optics. Objects that
// cannot be located get none, and d.GeoStatus says why (the first reason met).
func (s *sensors) geoReference(d *frame.Detections) {
	opt, ok := s.optics[d.Camera]
	if !ok || s.mav == nil || len(d.Objects) == 0 {
		return
	}
	d.Geo = make([]frame.Geo, len(d.Objects))
	miss := func(reason string, n int) {
		if d.GeoStatus == "" {
			d.GeoStatus = reason
		}
		s.missed.WithLabelValues(d.Camera, reason).Add(float64(n))
	}
	pose, err := s.mav.PoseAt(d.CapturedAt)
	if err != nil {
		miss(poseReason(err), len(d.Objects))
		return
	}
	cam, err := cameraModel(opt, d.Width, d.Height, pose)
	if err != nil {
		miss(locateReason(err), len(d.Objects))
		return
	}
	ground := geo.Ground{AltMSL: s.groundAlt(pose)}
	sigma := geo.Sigma{AttitudeDeg: s.cfg.AttitudeSigmaDeg, MountDeg: s.cfg.AttitudeSigmaDeg,
		AltitudeM: s.cfg.AltSigmaM, PositionM: pose.PositionSigma}
	v := pose.Vehicle()
	for i, o := range d.Objects {
		u, px := float64(o.Box.X1+o.Box.X2)/2, float64(o.Box.Y2)
		p, err := geo.LocateWithSigma(cam, v, u, px, ground, sigma)
		switch {
		case err != nil:
			miss(locateReason(err), 1)
		case math.IsInf(p.ErrRadius, 0) || math.IsNaN(p.ErrRadius):
			miss(wire.GeoUncertain, 1)
		default:
			d.Geo[i] = frame.Geo{OK: true, Lat: p.Lat, Lon: p.Lon, ErrM: p.ErrRadius}
			s.located.WithLabelValues(d.Camera).Inc()
		}
	}
}

// cameraModel is the geo camera for a w x h frame at pose p.
func cameraModel(o config.Optics, w, h int, p mavlink.Pose) (geo.Camera, error) {
	var c geo.Camera
	if o.HFOVDeg > 0 {
		in, err := geo.IntrinsicsFromHFOV(w, h, o.HFOVDeg)
		if err != nil {
			return c, err
		}
		c.Intrinsics = in
	} else {
		c.Intrinsics = geo.Intrinsics{Width: w, Height: h, Fx: o.Fx, Fy: o.Fy, Cx: o.Cx, Cy: o.Cy}
		if o.Cx == 0 {
			c.Intrinsics.Cx = float64(w) / 2
		}
		if o.Cy == 0 {
			c.Intrinsics.Cy = float64(h) / 2
		}
	}
	if o.UseGimbal {
		if p.Gimbal == nil {
			return c, errNoGimbal
		}
		c.Mount = p.Gimbal.Mount()
		return c, nil
	}
	c.Mount = geo.Mount{Roll: o.Mount.RollDeg, Pitch: o.Mount.PitchDeg, Yaw: o.Mount.YawDeg}
	switch o.Mount.Mode {
	case "earth":
		c.Mount.Mode = geo.MountEarth
	case "heading":
		c.Mount.Mode = geo.MountHeading
	default:
		c.Mount.Mode = geo.MountBody
	}
	return c, nil
}

var errNoGimbal = errors.New("no fresh gimbal attitude")

// poseReason is the geo_status for an error of mavlink.Client.PoseAt.
func poseReason(err error) string {
	switch {
	case errors.Is(err, mavlink.ErrStale):
		return wire.GeoStale
	case errors.Is(err, mavlink.ErrNoFix):
		return wire.GeoNoFix
	default:
		return wire.GeoNoTelemetry
	}
}

// locateReason is the geo_status for an error of geo.Locate or cameraModel.
func locateReason(err error) string {
	switch {
	case errors.Is(err, errNoGimbal):
		return wire.GeoNoGimbal
	case errors.Is(err, geo.ErrAboveHorizon):
		return wire.GeoAboveHorizon
	case errors.Is(err, geo.ErrTooFar):
		return wire.GeoTooFar
	case errors.Is(err, geo.ErrBelowGround):
		return wire.GeoBelowGround
	default:
		return wire.GeoInvalid
	}
}

// height is the drone's height above the ground plane now; false without a pose.
func (s *sensors) height() (float64, bool) {
	if s.mav == nil {
		return 0, false
	}
	p, err := s.mav.PoseAt(time.Now())
	if err != nil {
		return 0, false
	}
	return p.AltMSL - s.groundAlt(p), true
}

// position is where the device is now, for telemetry: the drone's pose, else the GNSS fix.
func (s *sensors) position() *wire.GeoFix {
	if s.mav != nil {
		if p, err := s.mav.PoseAt(time.Now()); err == nil {
			return &wire.GeoFix{Lat: p.Lat, Lon: p.Lon, AltM: p.AltMSL, Source: "mavlink"}
		}
	}
	if s.gnss != nil {
		if f, err := s.gnss.Position(); err == nil {
			return &wire.GeoFix{Lat: f.Lat, Lon: f.Lon, AltM: f.AltM, Source: s.gnssID}
		}
	}
	return nil
}

// prepareDetector is called with each camera's freshly opened detector: it wraps the detector
// in tiles when the camera's tiling is enabled. It owns det: on error det is closed.
func (a *Agent) prepareDetector(cam config.Camera, det models.Detector) (models.Detector, error) {
	t := cam.Tiling
	if t == nil || !t.Enabled {
		return det, nil
	}
	tc := tile.Config{TileWidth: t.Tile, TileHeight: t.Tile, Overlap: t.Overlap, FullFrame: t.FullFrame}
	if t.Auto && a.sensors.mav != nil {
		return newAutoTiler(det, tc, func(w int) float64 { return hfovDeg(cam.Optics, w) }, a.sensors.height)
	}
	td, err := tile.New(det, tc)
	if err != nil {
		_ = det.Close()
		return nil, fmt.Errorf("camera %s: %w", cam.ID, err)
	}
	return td, nil
}

// hfovDeg is the horizontal field of view of a camera w pixels wide with optics o; 0 when
// unknown (GridForAltitude then assumes a typical drone camera).
func hfovDeg(o *config.Optics, w int) float64 {
	switch {
	case o == nil:
		return 0
	case o.HFOVDeg > 0:
		return o.HFOVDeg
	case o.Fx > 0 && w > 0:
		return 2 * math.Atan(float64(w)/2/o.Fx) * 180 / math.Pi
	}
	return 0
}

// autoTiler is a models.Detector that tiles each frame with the coarsest grid that keeps a
// person detectable at the drone's current height (tile.GridForAltitude), and with the fixed
// tiles of its base configuration while the height is unknown. Like any models.Detector it
// is used from one goroutine at a time.
type autoTiler struct {
	inner  models.Detector
	base   tile.Config
	hfov   func(width int) float64 // the camera's horizontal field of view, degrees; 0 unknown
	height func() (float64, bool)
	grids  map[[2]int]*tile.Detector
	fixed  *tile.Detector
}

// newAutoTiler wraps inner, taking ownership of it; base is checked at once.
func newAutoTiler(inner models.Detector, base tile.Config, hfov func(int) float64, height func() (float64, bool)) (*autoTiler, error) {
	fixed, err := tile.New(keepOpen{inner}, base)
	if err != nil {
		_ = inner.Close()
		return nil, err
	}
	return &autoTiler{inner: inner, base: base, hfov: hfov, height: height, grids: map[[2]int]*tile.Detector{}, fixed: fixed}, nil
}

// Detect implements models.Detector.
func (t *autoTiler) Detect(ctx context.Context, img models.Image) ([]models.Detection, error) {
	return t.detector(img.Width, img.Height).Detect(ctx, img)
}

// detector picks the tiled detector for a w x h frame now.
func (t *autoTiler) detector(w, h int) *tile.Detector {
	alt, ok := t.height()
	if !ok || w <= 0 {
		return t.fixed
	}
	in := t.inner.Manifest().Input
	cols, rows := tile.GridForAltitude(alt, w, h, tile.Optics{HFOVDeg: t.hfov(w), ModelW: in.Width, ModelH: in.Height, Overlap: t.base.Overlap})
	key := [2]int{cols, rows}
	if d, ok := t.grids[key]; ok {
		return d
	}
	d, err := tile.New(keepOpen{t.inner}, tile.Config{Cols: cols, Rows: rows, Overlap: t.base.Overlap, FullFrame: t.base.FullFrame})
	if err != nil { // cannot happen: the base configuration passed the same checks
		return t.fixed
	}
	t.grids[key] = d
	return d
}

// Manifest implements models.Detector.
func (t *autoTiler) Manifest() models.Manifest { return t.inner.Manifest() }

// Close closes the inner detector.
func (t *autoTiler) Close() error { return t.inner.Close() }

// keepOpen shares a detector among several tile.Detectors, which each close what they wrap:
// its Close does nothing, and the owner closes the detector itself.
type keepOpen struct{ models.Detector }

func (keepOpen) Close() error { return nil }

// startSensors opens the sensors and starts the telemetry loop, before the cameras start. The
// returned stop, called once ctx is done and the cameras have stopped, waits for the loop and
// closes the sensors.
func (a *Agent) startSensors(ctx context.Context, ob *outbox.Outbox) (stop func()) {
	a.sensors.start(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.runTelemetry(ctx, ob)
	}()
	return func() {
		<-done
		a.sensors.close()
	}
}
