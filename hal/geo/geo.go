package geo

import (
	"errors"
	"fmt"
	"math"
)

// Errors returned by [Locate]; callers branch on them with errors.Is.
var (
	// ErrAboveHorizon: the pixel's ray points at or above the horizon and never meets the ground.
	ErrAboveHorizon = errors.New("ray at or above the horizon")
	// ErrTooFar: the ray meets the ground beyond Ground.MaxRange.
	ErrTooFar = errors.New("ground point beyond max range")
	// ErrBelowGround: the camera is at or below the ground plane.
	ErrBelowGround = errors.New("camera at or below ground altitude")
	// ErrInvalid: an input is out of range or not a number.
	ErrInvalid = errors.New("invalid input")
)

// DefaultMaxRange is the ground range, in metres, beyond which [Locate] gives up when
// Ground.MaxRange is zero.
const DefaultMaxRange = 2000.0

// Intrinsics is a pinhole camera model in pixels (see the package doc for pixel coordinates).
type Intrinsics struct {
	Width, Height int     // image size
	Fx, Fy        float64 // focal lengths
	Cx, Cy        float64 // principal point
}

// IntrinsicsFromHFOV builds square-pixel intrinsics with the principal point at the image centre
// from a horizontal field of view in degrees.
func IntrinsicsFromHFOV(width, height int, hfovDeg float64) (Intrinsics, error) {
	if width <= 0 || height <= 0 {
		return Intrinsics{}, fmt.Errorf("%w: image size %dx%d must be positive", ErrInvalid, width, height)
	}
	if !(hfovDeg > 0 && hfovDeg < 180) {
		return Intrinsics{}, fmt.Errorf("%w: horizontal fov %g must be in (0, 180) degrees", ErrInvalid, hfovDeg)
	}
	f := float64(width) / 2 / math.Tan(rad(hfovDeg)/2)
	return Intrinsics{Width: width, Height: height, Fx: f, Fy: f, Cx: float64(width) / 2, Cy: float64(height) / 2}, nil
}

// Validate reports whether the intrinsics can be used.
func (in Intrinsics) Validate() error {
	if in.Width <= 0 || in.Height <= 0 {
		return fmt.Errorf("%w: image size %dx%d must be positive", ErrInvalid, in.Width, in.Height)
	}
	if !(in.Fx > 0) || !(in.Fy > 0) || math.IsInf(in.Fx, 0) || math.IsInf(in.Fy, 0) {
		return fmt.Errorf("%w: focal lengths fx=%g fy=%g must be positive", ErrInvalid, in.Fx, in.Fy)
	}
	if !finite(in.Cx, in.Cy) {
		return fmt.Errorf("%w: principal point (%g, %g)", ErrInvalid, in.Cx, in.Cy)
	}
	return nil
}

// Ray returns the direction of pixel (u, v) in the camera frame (x right, y down, z forward),
// scaled so that z = 1.
func (in Intrinsics) Ray(u, v float64) Vec3 {
	return Vec3{(u - in.Cx) / in.Fx, (v - in.Cy) / in.Fy, 1}
}

// MountMode says which frame a [Mount]'s angles are given in (see the package doc).
type MountMode int

// Mount modes.
const (
	MountBody    MountMode = iota // relative to the vehicle body
	MountEarth                    // absolute roll, pitch, yaw in NED
	MountHeading                  // roll, pitch absolute; yaw relative to the vehicle heading
)

// String names the mode.
func (m MountMode) String() string {
	switch m {
	case MountBody:
		return "body"
	case MountEarth:
		return "earth"
	case MountHeading:
		return "heading"
	}
	return fmt.Sprintf("MountMode(%d)", int(m))
}

// Mount is the orientation of the camera: Z-Y-X Euler angles in degrees in the frame Mode names.
// The zero Mount looks forward along the body x axis; Pitch -90 looks straight down.
type Mount struct {
	Mode             MountMode
	Roll, Pitch, Yaw float64
}

// Camera is a camera's intrinsics and orientation.
type Camera struct {
	Intrinsics Intrinsics
	Mount      Mount
}

// Vehicle is the vehicle's position (WGS-84 latitude and longitude in degrees, altitude above
// mean sea level in metres) and attitude (Z-Y-X Euler angles in degrees, body to NED).
type Vehicle struct {
	Lat, Lon, AltMSL float64
	Roll, Pitch, Yaw float64
}

// Ground is the ground plane: a horizontal plane at AltMSL metres, searched up to MaxRange metres
// of horizontal distance from the vehicle (0 means [DefaultMaxRange]).
type Ground struct {
	AltMSL   float64
	MaxRange float64
}

// Point is where a pixel's ray meets the ground.
type Point struct {
	Lat, Lon, AltMSL   float64 // the ground point
	North, East, Down  float64 // offset from the camera, metres, NED
	GroundRange, Slant float64 // horizontal and straight-line distance from the camera, metres
	// Uncertainty, filled by [LocateWithSigma] only: the 1-sigma error ellipse of the ground
	// point (semi-axes in metres) and its distance-RMS radius sqrt(major²+minor²), which holds
	// the true point with a probability of roughly 63-68 %.
	ErrMajor, ErrMinor, ErrRadius float64
}

// CameraToNED returns the rotation that takes a camera-frame vector to NED for a camera on the
// given vehicle.
func CameraToNED(m Mount, v Vehicle) Mat3 {
	// camera (x right, y down, z fwd) -> "forward camera" body-like axes (x fwd, y right, z down)
	axes := Mat3{
		{0, 0, 1},
		{1, 0, 0},
		{0, 1, 0},
	}
	mount := Euler(m.Roll, m.Pitch, m.Yaw)
	var r Mat3
	switch m.Mode {
	case MountEarth:
		r = mount
	case MountHeading:
		r = Euler(m.Roll, m.Pitch, v.Yaw+m.Yaw)
	default:
		r = Euler(v.Roll, v.Pitch, v.Yaw).Mul(mount)
	}
	return r.Mul(axes)
}

// Locate intersects the ray of pixel (u, v) with the ground.
func Locate(c Camera, v Vehicle, u, px float64, g Ground) (Point, error) {
	if err := c.Intrinsics.Validate(); err != nil {
		return Point{}, err
	}
	if !finite(u, px, v.Lat, v.Lon, v.AltMSL, v.Roll, v.Pitch, v.Yaw, c.Mount.Roll, c.Mount.Pitch, c.Mount.Yaw, g.AltMSL, g.MaxRange) {
		return Point{}, fmt.Errorf("%w: not a finite number", ErrInvalid)
	}
	if math.Abs(v.Lat) > 89 || math.Abs(v.Lon) > 180 {
		return Point{}, fmt.Errorf("%w: position %g, %g", ErrInvalid, v.Lat, v.Lon)
	}
	h := v.AltMSL - g.AltMSL
	if h <= 0 {
		return Point{}, fmt.Errorf("%w: %.2f m above ground", ErrBelowGround, h)
	}
	maxRange := g.MaxRange
	if maxRange <= 0 {
		maxRange = DefaultMaxRange
	}
	d := CameraToNED(c.Mount, v).Apply(c.Intrinsics.Ray(u, px))
	// The ray must go down; a ray whose ground hit is beyond maxRange is rejected below, so any
	// d.Z that small only needs protecting from division by zero.
	if d[2] <= 0 {
		return Point{}, fmt.Errorf("%w: pixel (%.1f, %.1f) points %.2f° above the horizon", ErrAboveHorizon, u, px, deg(math.Atan2(-d[2], math.Hypot(d[0], d[1]))))
	}
	s := h / d[2]
	n, e := s*d[0], s*d[1]
	gr := math.Hypot(n, e)
	if gr > maxRange || math.IsInf(gr, 0) || math.IsNaN(gr) {
		return Point{}, fmt.Errorf("%w: pixel (%.1f, %.1f) meets the ground %.0f m away (max %.0f m)", ErrTooFar, u, px, gr, maxRange)
	}
	lat, lon := Offset(v.Lat, v.Lon, g.AltMSL, n, e)
	return Point{
		Lat: lat, Lon: lon, AltMSL: g.AltMSL,
		North: n, East: e, Down: h,
		GroundRange: gr, Slant: math.Sqrt(gr*gr + h*h),
	}, nil
}

// Sigma holds 1-sigma errors of the inputs of [LocateWithSigma]. Zero fields contribute nothing.
type Sigma struct {
	AttitudeDeg float64 // each of the vehicle's roll, pitch and yaw
	MountDeg    float64 // each of the mount's roll, pitch and yaw
	AltitudeM   float64 // height of the camera above the ground plane
	PositionM   float64 // horizontal position, per axis (north and east)
}

// LocateWithSigma is [Locate] plus an error estimate: it propagates the input errors in s to the
// ground point by central differences (independent, Gaussian, first order) and fills the Err
// fields of the Point. When a 1-sigma error would make the ray miss the ground (near the
// horizon), the Err fields are +Inf: the point is not trustworthy.
func LocateWithSigma(c Camera, v Vehicle, u, px float64, g Ground, s Sigma) (Point, error) {
	p, err := Locate(c, v, u, px, g)
	if err != nil {
		return p, err
	}
	type param struct {
		sigma float64
		set   func(c *Camera, v *Vehicle, g *Ground, d float64)
	}
	params := []param{
		{s.AttitudeDeg, func(_ *Camera, v *Vehicle, _ *Ground, d float64) { v.Roll += d }},
		{s.AttitudeDeg, func(_ *Camera, v *Vehicle, _ *Ground, d float64) { v.Pitch += d }},
		{s.AttitudeDeg, func(_ *Camera, v *Vehicle, _ *Ground, d float64) { v.Yaw += d }},
		{s.MountDeg, func(c *Camera, _ *Vehicle, _ *Ground, d float64) { c.Mount.Roll += d }},
		{s.MountDeg, func(c *Camera, _ *Vehicle, _ *Ground, d float64) { c.Mount.Pitch += d }},
		{s.MountDeg, func(c *Camera, _ *Vehicle, _ *Ground, d float64) { c.Mount.Yaw += d }},
		{s.AltitudeM, func(_ *Camera, v *Vehicle, _ *Ground, d float64) { v.AltMSL += d }},
	}
	// covariance of (north, east)
	var cnn, cne, cee float64
	g2 := g
	g2.MaxRange = math.MaxFloat64 // a perturbed point may lie a little beyond the limit
	for _, pr := range params {
		if pr.sigma <= 0 {
			continue
		}
		step := pr.sigma * 1e-3
		var pts [2]Point
		ok := true
		for i, sign := range []float64{1, -1} {
			c2, v2 := c, v
			pr.set(&c2, &v2, &g2, sign*step)
			q, err := Locate(c2, v2, u, px, g2)
			if err != nil {
				ok = false
				break
			}
			pts[i] = q
			// a full 1-sigma error must still meet the ground, or the linear estimate is meaningless
			c2, v2 = c, v
			pr.set(&c2, &v2, &g2, sign*pr.sigma)
			if _, err := Locate(c2, v2, u, px, g2); err != nil {
				ok = false
				break
			}
		}
		if !ok {
			p.ErrMajor, p.ErrMinor, p.ErrRadius = math.Inf(1), math.Inf(1), math.Inf(1)
			return p, nil
		}
		// jacobian column times sigma; the ground point is fixed in NED relative to the original
		// vehicle position, so compare offsets (the perturbation does not move the vehicle).
		jn := (pts[0].North - pts[1].North) / (2 * step) * pr.sigma
		je := (pts[0].East - pts[1].East) / (2 * step) * pr.sigma
		cnn += jn * jn
		cne += jn * je
		cee += je * je
	}
	pp := s.PositionM * s.PositionM
	cnn += pp
	cee += pp
	// eigenvalues of the 2x2 covariance
	tr, det := cnn+cee, cnn*cee-cne*cne
	disc := math.Sqrt(math.Max(tr*tr/4-det, 0))
	l1, l2 := tr/2+disc, math.Max(tr/2-disc, 0)
	p.ErrMajor, p.ErrMinor, p.ErrRadius = math.Sqrt(l1), math.Sqrt(l2), math.Sqrt(tr)
	return p, nil
}

// WGS-84 ellipsoid.
const (
	wgs84A  = 6378137.0
	wgs84F  = 1 / 298.257223563
	wgs84E2 = wgs84F * (2 - wgs84F)
)

// radii returns the meridional (north-south) and prime-vertical (east-west) radii of curvature
// of the WGS-84 ellipsoid at latitude latDeg.
func radii(latDeg float64) (m, n float64) {
	s := math.Sin(rad(latDeg))
	w := 1 - wgs84E2*s*s
	n = wgs84A / math.Sqrt(w)
	m = wgs84A * (1 - wgs84E2) / (w * math.Sqrt(w))
	return m, n
}

// Offset moves (lat, lon) by north and east metres on a local tangent plane at height h (metres
// above the ellipsoid; MSL is close enough) and returns the new latitude and longitude in degrees.
func Offset(lat, lon, h, north, east float64) (float64, float64) {
	m, n := radii(lat)
	dLat := north / (m + h)
	dLon := east / ((n + h) * math.Cos(rad(lat)))
	return lat + deg(dLat), lon + deg(dLon)
}

// NEDOffset is the inverse of [Offset]: the north and east metres from (lat0, lon0) to (lat, lon).
func NEDOffset(lat0, lon0, h, lat, lon float64) (north, east float64) {
	m, n := radii(lat0)
	dLon := lon - lon0
	if dLon > 180 {
		dLon -= 360
	} else if dLon < -180 {
		dLon += 360
	}
	return rad(lat-lat0) * (m + h), rad(dLon) * (n + h) * math.Cos(rad(lat0))
}

func rad(d float64) float64 { return d * math.Pi / 180 }
func deg(r float64) float64 { return r * 180 / math.Pi }

func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}
