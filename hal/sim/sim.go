// Package sim holds simulators of hardware we do not have, speaking the real protocols.
//
// Drone is an autopilot that flies an orbit or a lawn-mower pattern over a home point and sends
// MAVLink v2 telemetry over UDP (gomavlib, common dialect) as system 1, component 1 (autopilot),
// at the rates of a typical autopilot stream:
//
//	HEARTBEAT 1 Hz, SYSTEM_TIME 1 Hz, GPS_RAW_INT 5 Hz, GLOBAL_POSITION_INT 10 Hz,
//	GIMBAL_DEVICE_ATTITUDE_STATUS 10 Hz, ATTITUDE 25 Hz.
//
// The flight is a pure function of time ([Drone.TrueState]), so tests compare what a receiver
// reconstructs with the truth. Faults: a telemetry gap (nothing sent) and GPS loss (fix type 0).
package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gomavlib/v3"
	"github.com/bluenviron/gomavlib/v3/pkg/dialects/common"
	"github.com/bluenviron/gomavlib/v3/pkg/frame"
	"github.com/bluenviron/gomavlib/v3/pkg/message"

	"github.com/vigil-edge/vigil/hal/geo"
)

// Pattern is a flight pattern.
type Pattern string

// Patterns.
const (
	Orbit     Pattern = "orbit"     // clockwise circle of Radius around home
	Lawnmower Pattern = "lawnmower" // Rows north-south legs of Length, Spacing apart, centred on home
)

// DroneConfig configures a Drone. Start from [DefaultDroneConfig]: zero values are taken as
// given (a zero gimbal pitch looks forward).
type DroneConfig struct {
	Target                    string  // UDP host:port to send to (the companion's listener)
	HomeLat, HomeLon, HomeAlt float64 // degrees, degrees, metres MSL
	Pattern                   Pattern
	Alt                       float64 // metres above home
	Speed                     float64 // m/s along the path
	Radius                    float64 // orbit radius, metres
	Rows                      int     // lawn-mower legs (even)
	Spacing, Length           float64 // lawn-mower leg spacing and length, metres
	CruisePitch               float64 // vehicle pitch while flying, degrees (negative: nose down)
	GimbalPitch, GimbalYaw    float64 // degrees; roll and pitch relative to the horizon
	GimbalYawEarth            bool    // GimbalYaw is relative to north, else to the heading
	HDOP                      float64 // reported with a fix
	Satellites                int     // reported with a fix
	SystemID                  uint8
	Key                       *[32]byte // MAVLink 2 signing key; nil sends unsigned frames
	Logger                    *slog.Logger
}

// DefaultDroneConfig is a 100 m orbit at 100 m and 10 m/s over PX4's SITL home, nadir camera.
func DefaultDroneConfig() DroneConfig {
	return DroneConfig{
		HomeLat: 47.397742, HomeLon: 8.545594, HomeAlt: 488,
		Pattern: Orbit, Alt: 100, Speed: 10, Radius: 100,
		Rows: 4, Spacing: 40, Length: 200,
		CruisePitch: -3, GimbalPitch: -90,
		HDOP: 0.8, Satellites: 12, SystemID: 1,
	}
}

// Validate checks the config without I/O.
func (c DroneConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Target); err != nil {
		return fmt.Errorf("'target' %q must be host:port: %w", c.Target, err)
	}
	switch {
	case math.Abs(c.HomeLat) > 85 || math.Abs(c.HomeLon) > 180:
		return fmt.Errorf("'home' %g,%g out of range", c.HomeLat, c.HomeLon)
	case c.Alt <= 0:
		return fmt.Errorf("'alt' must be > 0, got %g", c.Alt)
	case c.Speed <= 0 || c.Speed > 100:
		return fmt.Errorf("'speed' must be in (0, 100] m/s, got %g", c.Speed)
	case c.SystemID == 0:
		return errors.New("'system_id' must be 1..255")
	case c.GimbalPitch < -90 || c.GimbalPitch > 90:
		return fmt.Errorf("'gimbal_pitch' must be in [-90, 90], got %g", c.GimbalPitch)
	}
	switch c.Pattern {
	case Orbit:
		if c.Radius < 5 {
			return fmt.Errorf("'radius' must be >= 5 m, got %g", c.Radius)
		}
	case Lawnmower:
		if c.Spacing < 5 || c.Length < c.Spacing {
			return fmt.Errorf("'spacing' must be >= 5 m and 'length' >= spacing, got %g and %g", c.Spacing, c.Length)
		}
		if c.Rows < 2 || c.Rows%2 != 0 {
			return fmt.Errorf("'rows' must be even and >= 2, got %d", c.Rows)
		}
	default:
		return fmt.Errorf("'pattern' must be orbit or lawnmower, got %q", c.Pattern)
	}
	return nil
}

// State is the simulated vehicle's true state.
type State struct {
	Lat, Lon, AltMSL, AltRel float64 // degrees, metres
	VelN, VelE, VelD         float64 // m/s
	Roll, Pitch, Yaw         float64 // degrees, Z-Y-X, NED; yaw in [-180, 180)
	RollRate, PitchRate      float64 // body rates p, q, rad/s
	YawRate                  float64 // body rate r, rad/s
	GimbalRoll, GimbalPitch  float64 // degrees, relative to the horizon
	GimbalYaw                float64 // degrees, relative to north or the heading (see config)
	North, East              float64 // metres from home
}

// Drone is the simulated autopilot.
//
// Call contract: New validates; Start opens the UDP socket and starts sending, at most once;
// Close stops and waits, any number of times. TrueState, SetGap, SetGPSLoss and Sent are safe
// for concurrent use.
type Drone struct {
	cfg  DroneConfig
	path *path
	boot time.Time

	gap, gpsLost atomic.Bool
	sent         atomic.Uint64

	startOnce sync.Once
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// NewDrone returns a drone for cfg; its clock (time_boot_ms 0) starts now.
func NewDrone(cfg DroneConfig) (*Drone, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("drone sim config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var p *path
	if cfg.Pattern == Orbit {
		p = orbitPath(cfg.Radius)
	} else {
		var err error
		if p, err = lawnmowerPath(cfg.Rows, cfg.Spacing, cfg.Length); err != nil {
			return nil, err
		}
	}
	return &Drone{cfg: cfg, path: p, boot: time.Now()}, nil
}

// SetGap stops (true) or resumes (false) all sending: a telemetry gap.
func (d *Drone) SetGap(on bool) { d.gap.Store(on) }

// SetGPSLoss makes GPS_RAW_INT report fix type 0 and no satellites (true) or a 3D fix (false).
func (d *Drone) SetGPSLoss(on bool) { d.gpsLost.Store(on) }

// Sent is the number of messages sent so far.
func (d *Drone) Sent() uint64 { return d.sent.Load() }

// Boot is the host time at which the drone's time_boot_ms is 0.
func (d *Drone) Boot() time.Time { return d.boot }

// TrueState returns the vehicle's state at t.
func (d *Drone) TrueState(t time.Time) State {
	st := d.stateAt(t.Sub(d.boot).Seconds())
	return st
}

// bank returns the coordinated-turn bank angle (radians) at distance s for the path's mean
// curvature over ±1 s of flight, so that the roll ramps instead of stepping at the joints of the
// path.
func (d *Drone) bank(s float64) float64 {
	k := d.path.avgCurvature(s, d.cfg.Speed*1)
	return math.Atan(d.cfg.Speed * d.cfg.Speed * k / gravity)
}

func (d *Drone) stateAt(sec float64) State {
	v := d.cfg.Speed
	s := v * sec
	n, e, hdg, _ := d.path.at(s)
	roll := d.bank(s)
	pitch := d.cfg.CruisePitch * math.Pi / 180

	// Euler rates by central differences, then body rates (Z-Y-X kinematics).
	const h = 0.01
	_, _, h1, _ := d.path.at(s - v*h)
	_, _, h2, _ := d.path.at(s + v*h)
	dpsi := angDiff(h2, h1) / (2 * h)
	dphi := (d.bank(s+v*h) - d.bank(s-v*h)) / (2 * h)
	sphi, cphi := math.Sincos(roll)
	sth, cth := math.Sincos(pitch)

	lat, lon := geo.Offset(d.cfg.HomeLat, d.cfg.HomeLon, d.cfg.HomeAlt, n, e)
	sh, ch := math.Sincos(hdg)
	const deg = 180 / math.Pi
	return State{
		Lat: lat, Lon: lon, AltMSL: d.cfg.HomeAlt + d.cfg.Alt, AltRel: d.cfg.Alt,
		VelN: v * ch, VelE: v * sh,
		Roll: roll * deg, Pitch: pitch * deg, Yaw: wrap180(hdg * deg),
		RollRate:    dphi - dpsi*sth,
		PitchRate:   dpsi * sphi * cth,
		YawRate:     dpsi * cphi * cth,
		GimbalPitch: d.cfg.GimbalPitch, GimbalYaw: d.cfg.GimbalYaw,
		North: n, East: e,
	}
}

func angDiff(a, b float64) float64 {
	return math.Remainder(a-b, 2*math.Pi)
}

func wrap180(x float64) float64 {
	x = math.Mod(x+180, 360)
	if x < 0 {
		x += 360
	}
	return x - 180
}

// Start opens the UDP socket to the target and starts sending; it stops when ctx is done or
// Close is called.
func (d *Drone) Start(ctx context.Context) error {
	err := errors.New("drone sim already started")
	d.startOnce.Do(func() {
		node := &gomavlib.Node{
			Endpoints:        []gomavlib.EndpointConf{gomavlib.EndpointUDPClient{Address: d.cfg.Target}},
			Dialect:          common.Dialect,
			OutVersion:       gomavlib.V2,
			OutSystemID:      d.cfg.SystemID,
			OutComponentID:   1, // MAV_COMP_ID_AUTOPILOT1
			HeartbeatDisable: true,
		}
		if d.cfg.Key != nil {
			k := frame.V2Key(*d.cfg.Key)
			node.OutKey = &k
		}
		if err = node.Initialize(); err != nil {
			err = fmt.Errorf("open mavlink udp to %s: %w", d.cfg.Target, err)
			return
		}
		ctx, d.cancel = context.WithCancel(ctx)
		d.wg.Add(2)
		go func() { // drain events: the node blocks until they are read
			defer d.wg.Done()
			for range node.Events() {
			}
		}()
		go func() {
			defer d.wg.Done()
			defer node.Close()
			d.run(ctx, node)
		}()
	})
	return err
}

// Close stops sending and waits.
func (d *Drone) Close() error {
	d.startOnce.Do(func() {})
	if d.cancel != nil {
		d.cancel()
		d.wg.Wait()
	}
	return nil
}

func (d *Drone) run(ctx context.Context, node *gomavlib.Node) {
	const tick = 20 * time.Millisecond // 50 Hz base rate
	t := time.NewTicker(tick)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if d.gap.Load() {
			continue
		}
		bootMs := uint32(time.Since(d.boot) / time.Millisecond)
		// the state exactly at the stamped time, so a receiver can be checked against TrueState
		st := d.stateAt(float64(bootMs) / 1000)
		var msgs []message.Message
		if i%50 == 0 {
			msgs = append(msgs, d.heartbeat(), &common.MessageSystemTime{
				TimeUnixUsec: uint64(d.boot.Add(time.Duration(bootMs) * time.Millisecond).UnixMicro()),
				TimeBootMs:   bootMs,
			})
		}
		if i%2 == 0 {
			msgs = append(msgs, &common.MessageAttitude{
				TimeBootMs: bootMs,
				Roll:       float32(st.Roll * math.Pi / 180), Pitch: float32(st.Pitch * math.Pi / 180), Yaw: float32(st.Yaw * math.Pi / 180),
				Rollspeed: float32(st.RollRate), Pitchspeed: float32(st.PitchRate), Yawspeed: float32(st.YawRate),
			})
		}
		if i%5 == 0 {
			msgs = append(msgs, globalPosition(bootMs, st), d.gimbal(bootMs, st))
		}
		if i%10 == 0 {
			msgs = append(msgs, d.gpsRaw(bootMs, st))
		}
		for _, m := range msgs {
			if err := node.WriteMessageAll(m); err != nil {
				d.cfg.Logger.Warn("drone sim write", "err", err)
				continue
			}
			d.sent.Add(1)
		}
	}
}

func (d *Drone) heartbeat() *common.MessageHeartbeat {
	return &common.MessageHeartbeat{
		Type:         common.MAV_TYPE_QUADROTOR,
		Autopilot:    common.MAV_AUTOPILOT_PX4,
		BaseMode:     common.MAV_MODE_FLAG_SAFETY_ARMED | common.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | common.MAV_MODE_FLAG_GUIDED_ENABLED,
		SystemStatus: common.MAV_STATE_ACTIVE,
	}
}

func globalPosition(bootMs uint32, st State) *common.MessageGlobalPositionInt {
	hdg := uint16(math.Mod(st.Yaw+360, 360) * 100)
	return &common.MessageGlobalPositionInt{
		TimeBootMs: bootMs,
		Lat:        int32(math.Round(st.Lat * 1e7)), Lon: int32(math.Round(st.Lon * 1e7)),
		Alt: int32(math.Round(st.AltMSL * 1000)), RelativeAlt: int32(math.Round(st.AltRel * 1000)),
		Vx: int16(math.Round(st.VelN * 100)), Vy: int16(math.Round(st.VelE * 100)), Vz: int16(math.Round(st.VelD * 100)),
		Hdg: hdg % 36000,
	}
}

func (d *Drone) gimbal(bootMs uint32, st State) *common.MessageGimbalDeviceAttitudeStatus {
	w, x, y, z := geo.EulerToQuat(st.GimbalRoll, st.GimbalPitch, st.GimbalYaw)
	flags := common.GIMBAL_DEVICE_FLAGS_YAW_IN_VEHICLE_FRAME
	if d.cfg.GimbalYawEarth {
		flags = common.GIMBAL_DEVICE_FLAGS_YAW_IN_EARTH_FRAME | common.GIMBAL_DEVICE_FLAGS_YAW_LOCK
	}
	nan := float32(math.NaN())
	return &common.MessageGimbalDeviceAttitudeStatus{
		TimeBootMs: bootMs, Flags: flags,
		Q:                [4]float32{float32(w), float32(x), float32(y), float32(z)},
		AngularVelocityX: nan, AngularVelocityY: nan, AngularVelocityZ: nan,
		DeltaYaw: float32(st.Yaw * math.Pi / 180), DeltaYawVelocity: nan,
	}
}

func (d *Drone) gpsRaw(bootMs uint32, st State) *common.MessageGpsRawInt {
	m := &common.MessageGpsRawInt{
		TimeUsec: uint64(bootMs) * 1000,
		FixType:  common.GPS_FIX_TYPE_3D_FIX,
		Lat:      int32(math.Round(st.Lat * 1e7)), Lon: int32(math.Round(st.Lon * 1e7)),
		Alt: int32(math.Round(st.AltMSL * 1000)),
		Eph: uint16(d.cfg.HDOP * 100), Epv: uint16(d.cfg.HDOP * 150),
		Vel:               uint16(d.cfg.Speed * 100),
		Cog:               uint16(math.Mod(st.Yaw+360, 360)*100) % 36000,
		SatellitesVisible: uint8(d.cfg.Satellites),
		AltEllipsoid:      int32(math.Round((st.AltMSL + 47) * 1000)), // a plausible geoid separation
	}
	if d.gpsLost.Load() {
		m.FixType = common.GPS_FIX_TYPE_NO_GPS
		m.Lat, m.Lon, m.Alt, m.AltEllipsoid = 0, 0, 0, 0
		m.Eph, m.Epv, m.Vel, m.Cog = math.MaxUint16, math.MaxUint16, math.MaxUint16, math.MaxUint16
		m.SatellitesVisible = 0
	}
	return m
}
