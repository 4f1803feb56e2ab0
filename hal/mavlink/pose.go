package mavlink

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/vigil-edge/vigil/hal/geo"
)

// Errors of [Client.PoseAt].
var (
	// ErrNoTelemetry: no position or attitude has been received (or the history does not reach
	// back to the requested time).
	ErrNoTelemetry = errors.New("no telemetry")
	// ErrStale: the newest position or attitude sample is older than Config.MaxAge at the
	// requested time (link lost or the stream stopped).
	ErrStale = errors.New("telemetry stale")
	// ErrNoFix: the GPS reported a fix below Config.MinFix at the requested time.
	ErrNoFix = errors.New("no gps fix")
)

// FixType is MAVLink's GPS_FIX_TYPE.
type FixType int

// GPS fix types (MAVLink GPS_FIX_TYPE); FixUnknown means no GPS_RAW_INT was received.
const (
	FixUnknown FixType = -1
	FixNoGPS   FixType = 0
	FixNone    FixType = 1
	Fix2D      FixType = 2
	Fix3D      FixType = 3
	FixDGPS    FixType = 4
	FixRTKFlt  FixType = 5
	FixRTK     FixType = 6
	FixStatic  FixType = 7
	FixPPP     FixType = 8
)

// Gimbal is a gimbal's attitude in degrees (Z-Y-X Euler). Roll and pitch are relative to the
// horizon; Yaw is relative to north when YawEarth, else to the vehicle heading (see
// geo.MountEarth and geo.MountHeading).
type Gimbal struct {
	Roll     float64 `json:"roll_deg"`
	Pitch    float64 `json:"pitch_deg"`
	Yaw      float64 `json:"yaw_deg"`
	YawEarth bool    `json:"yaw_earth"`
}

// Mount returns the gimbal attitude as a hal/geo mount.
func (g Gimbal) Mount() geo.Mount {
	m := geo.Mount{Mode: geo.MountHeading, Roll: g.Roll, Pitch: g.Pitch, Yaw: g.Yaw}
	if g.YawEarth {
		m.Mode = geo.MountEarth
	}
	return m
}

// Pose is the vehicle's state at one instant.
type Pose struct {
	Time   time.Time `json:"time"`
	Lat    float64   `json:"lat"`          // degrees, WGS-84
	Lon    float64   `json:"lon"`          // degrees
	AltMSL float64   `json:"alt_msl_m"`    // metres above mean sea level
	AltRel float64   `json:"alt_rel_m"`    // metres above home
	VelN   float64   `json:"vel_n_m_s"`    // m/s, NED
	VelE   float64   `json:"vel_e_m_s"`    // m/s
	VelD   float64   `json:"vel_d_m_s"`    // m/s
	Roll   float64   `json:"roll_deg"`     // degrees, Z-Y-X Euler, NED
	Pitch  float64   `json:"pitch_deg"`    // degrees
	Yaw    float64   `json:"yaw_deg"`      // degrees in [-180, 180), 0 = north
	Gimbal *Gimbal   `json:"gimbal"`       // nil when no fresh gimbal status
	Fix    FixType   `json:"gps_fix_type"` // at Time
	Sats   int       `json:"gps_satellites"`
	HDOP   float64   `json:"hdop"` // 0 when unknown
	VDOP   float64   `json:"vdop"` // 0 when unknown
	// PositionSigma and AltitudeSigma are 1-sigma GPS errors in metres (h_acc/v_acc when the
	// receiver gives them, else DOP × UERE); 0 when unknown.
	PositionSigma float64 `json:"position_sigma_m"`
	AltitudeSigma float64 `json:"altitude_sigma_m"`
	// Extrapolated is how far Time lies beyond the newest position or attitude sample.
	Extrapolated time.Duration `json:"extrapolated_ns"`
}

// Vehicle returns the pose as a hal/geo vehicle.
func (p Pose) Vehicle() geo.Vehicle {
	return geo.Vehicle{Lat: p.Lat, Lon: p.Lon, AltMSL: p.AltMSL, Roll: p.Roll, Pitch: p.Pitch, Yaw: p.Yaw}
}

type posSample struct {
	t                time.Time
	lat, lon         float64
	altMSL, altRel   float64
	vn, ve, vd       float64
	headingAvailable bool
}

func (s posSample) at() time.Time { return s.t }

type attSample struct {
	t                time.Time
	roll, pitch, yaw float64 // degrees
	p, q, r          float64 // body rates, rad/s
}

func (s attSample) at() time.Time { return s.t }

type gpsSample struct {
	t          time.Time
	fix        FixType
	sats       int
	hdop, vdop float64
	hacc, vacc float64 // metres, 0 unknown
}

func (s gpsSample) at() time.Time { return s.t }

type gimbalSample struct {
	t time.Time
	Gimbal
}

func (s gimbalSample) at() time.Time { return s.t }

// poseAt computes the pose at t from the histories; the caller holds the lock.
func (c *Client) poseAt(t time.Time) (Pose, error) {
	if c.pos.len() == 0 || c.att.len() == 0 {
		return Pose{}, fmt.Errorf("%w: %d position and %d attitude samples", ErrNoTelemetry, c.pos.len(), c.att.len())
	}
	if age := t.Sub(c.pos.newest().t); age > c.cfg.MaxAge {
		return Pose{}, fmt.Errorf("%w: newest position %v before t (max %v)", ErrStale, age.Round(time.Millisecond), c.cfg.MaxAge)
	}
	if age := t.Sub(c.att.newest().t); age > c.cfg.MaxAge {
		return Pose{}, fmt.Errorf("%w: newest attitude %v before t (max %v)", ErrStale, age.Round(time.Millisecond), c.cfg.MaxAge)
	}
	p := Pose{Time: t, Fix: FixUnknown}
	if g, ok := c.gps.atOrBefore(t); ok {
		p.Fix, p.Sats, p.HDOP, p.VDOP = g.fix, g.sats, g.hdop, g.vdop
		if p.Fix < c.cfg.MinFix {
			return Pose{}, fmt.Errorf("%w: fix type %d, want >= %d", ErrNoFix, g.fix, c.cfg.MinFix)
		}
		p.PositionSigma, p.AltitudeSigma = g.hacc, g.vacc
		if p.PositionSigma == 0 {
			p.PositionSigma = g.hdop * c.cfg.UERE
		}
		if p.AltitudeSigma == 0 {
			p.AltitudeSigma = g.vdop * c.cfg.UERE
		}
	}

	a, b, f, ok := c.pos.around(t)
	if !ok {
		return Pose{}, fmt.Errorf("%w: t is %v before the oldest position sample", ErrNoTelemetry, c.pos.oldest().t.Sub(t).Round(time.Millisecond))
	}
	p.Lat, p.Lon = lerp(a.lat, b.lat, f), lerp(a.lon, b.lon, f)
	p.AltMSL, p.AltRel = lerp(a.altMSL, b.altMSL, f), lerp(a.altRel, b.altRel, f)
	p.VelN, p.VelE, p.VelD = lerp(a.vn, b.vn, f), lerp(a.ve, b.ve, f), lerp(a.vd, b.vd, f)
	if dt := t.Sub(a.t); a.t.Equal(b.t) && dt > 0 {
		s := dt.Seconds()
		p.Lat, p.Lon = geo.Offset(a.lat, a.lon, a.altMSL, a.vn*s, a.ve*s)
		p.AltMSL -= a.vd * s
		p.AltRel -= a.vd * s
		p.Extrapolated = dt
	}

	x, y, g, ok := c.att.around(t)
	if !ok {
		return Pose{}, fmt.Errorf("%w: t is %v before the oldest attitude sample", ErrNoTelemetry, c.att.oldest().t.Sub(t).Round(time.Millisecond))
	}
	p.Roll, p.Pitch, p.Yaw = lerpAngle(x.roll, y.roll, g), lerpAngle(x.pitch, y.pitch, g), lerpAngle(x.yaw, y.yaw, g)
	if dt := t.Sub(x.t); x.t.Equal(y.t) && dt > 0 {
		p.Roll, p.Pitch, p.Yaw = integrateRates(x, dt.Seconds())
		p.Extrapolated = max(p.Extrapolated, dt)
	}

	if c.gim.len() > 0 && t.Sub(c.gim.newest().t) <= c.cfg.MaxAge {
		if ga, gb, gf, ok := c.gim.around(t); ok {
			p.Gimbal = &Gimbal{
				Roll:     lerpAngle(ga.Roll, gb.Roll, gf),
				Pitch:    lerpAngle(ga.Pitch, gb.Pitch, gf),
				Yaw:      lerpAngle(ga.Yaw, gb.Yaw, gf),
				YawEarth: ga.YawEarth,
			}
		}
	}
	return p, nil
}

// integrateRates extrapolates Euler angles by s seconds from body rates (one Euler step of the
// Z-Y-X kinematic equations).
func integrateRates(a attSample, s float64) (roll, pitch, yaw float64) {
	phi, theta := a.roll*math.Pi/180, a.pitch*math.Pi/180
	sp, cp := math.Sincos(phi)
	ct := math.Cos(theta)
	if math.Abs(ct) < 1e-3 || !finiteAll(a.p, a.q, a.r) {
		return a.roll, a.pitch, a.yaw
	}
	tt := math.Tan(theta)
	dphi := a.p + (a.q*sp+a.r*cp)*tt
	dtheta := a.q*cp - a.r*sp
	dpsi := (a.q*sp + a.r*cp) / ct
	const d = 180 / math.Pi
	return wrap180(a.roll + dphi*s*d), math.Max(-90, math.Min(90, a.pitch+dtheta*s*d)), wrap180(a.yaw + dpsi*s*d)
}

func finiteAll(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}
