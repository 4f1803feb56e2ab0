package geo

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

const home = 47.3977 // latitude used by most cases (PX4 SITL's home)

func nadirCam(t *testing.T) Camera {
	t.Helper()
	in, err := IntrinsicsFromHFOV(1920, 1080, 90)
	if err != nil {
		t.Fatal(err)
	}
	return Camera{Intrinsics: in, Mount: Mount{Mode: MountBody, Pitch: -90}}
}

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.IsNaN(got) || math.Abs(got-want) > tol {
		t.Errorf("%s = %.6f, want %.6f ± %g", what, got, want, tol)
	}
}

func TestIntrinsicsFromHFOV(t *testing.T) {
	in, err := IntrinsicsFromHFOV(1920, 1080, 90)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "fx", in.Fx, 960, 1e-9) // tan(45°) = 1
	near(t, "cy", in.Cy, 540, 0)
	for _, bad := range []struct {
		w, h int
		fov  float64
	}{{0, 10, 60}, {10, -1, 60}, {10, 10, 0}, {10, 10, 180}, {10, 10, math.NaN()}} {
		if _, err := IntrinsicsFromHFOV(bad.w, bad.h, bad.fov); !errors.Is(err, ErrInvalid) {
			t.Errorf("IntrinsicsFromHFOV(%v) err = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestNadirCentreIsBelow(t *testing.T) {
	c := nadirCam(t)
	v := Vehicle{Lat: home, Lon: 8.5456, AltMSL: 588}
	p, err := Locate(c, v, 960, 540, Ground{AltMSL: 488})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "north", p.North, 0, 1e-9)
	near(t, "east", p.East, 0, 1e-9)
	near(t, "down", p.Down, 100, 1e-9)
	near(t, "lat", p.Lat, v.Lat, 1e-12)
	near(t, "lon", p.Lon, v.Lon, 1e-12)
	near(t, "alt", p.AltMSL, 488, 0)
}

func TestNadirPixelOffset(t *testing.T) {
	c := nadirCam(t)
	v := Vehicle{Lat: home, Lon: 8.5, AltMSL: 100}
	// 240 px right and 96 px down of centre; f = 960: ground offset = 100*240/960 = 25 m east,
	// 100*96/960 = 10 m south (the top of the image faces the vehicle's heading, north).
	p, err := Locate(c, v, 960+240, 540+96, Ground{})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "east", p.East, 25, 0.01)
	near(t, "north", p.North, -10, 0.01)
	near(t, "ground range", p.GroundRange, math.Hypot(25, 10), 0.01)
	// lat/lon agree with the offset through the WGS-84 radii
	n, e := NEDOffset(v.Lat, v.Lon, 0, p.Lat, p.Lon)
	near(t, "north from lat", n, -10, 0.01)
	near(t, "east from lon", e, 25, 0.01)
}

func TestGimbalPitch45(t *testing.T) {
	c := nadirCam(t)
	c.Mount.Pitch = -45
	v := Vehicle{Lat: home, Lon: 8.5, AltMSL: 100}
	for _, mode := range []MountMode{MountBody, MountEarth, MountHeading} {
		c.Mount.Mode = mode
		p, err := Locate(c, v, 960, 540, Ground{})
		if err != nil {
			t.Fatal(err)
		}
		near(t, mode.String()+" north", p.North, 100, 0.01)
		near(t, mode.String()+" east", p.East, 0, 0.01)
	}
}

func TestVehicleYaw90RotatesToEast(t *testing.T) {
	c := nadirCam(t)
	c.Mount.Pitch = -45
	v := Vehicle{Lat: home, Lon: 8.5, AltMSL: 100, Yaw: 90}
	p, err := Locate(c, v, 960, 540, Ground{})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "north", p.North, 0, 0.01)
	near(t, "east", p.East, 100, 0.01)

	// nadir: image right now points south, image down points west
	c.Mount.Pitch = -90
	p, err = Locate(c, v, 960+240, 540+96, Ground{})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "north", p.North, -25, 0.01)
	near(t, "east", p.East, -10, 0.01)

	// an earth-frame gimbal ignores the vehicle's yaw; a heading-frame one follows it
	c.Mount = Mount{Mode: MountEarth, Pitch: -45}
	p, _ = Locate(c, v, 960, 540, Ground{})
	near(t, "earth north", p.North, 100, 0.01)
	c.Mount = Mount{Mode: MountHeading, Pitch: -45, Yaw: 90}
	p, _ = Locate(c, v, 960, 540, Ground{})
	near(t, "heading+90 north", p.North, -100, 0.01)
	near(t, "heading+90 east", p.East, 0, 0.01)
}

func TestRollTiltsSideways(t *testing.T) {
	c := nadirCam(t)
	for _, roll := range []float64{-20, 5, 10, 30} {
		v := Vehicle{Lat: home, Lon: 8.5, AltMSL: 100, Roll: roll}
		p, err := Locate(c, v, 960, 540, Ground{})
		if err != nil {
			t.Fatal(err)
		}
		// right wing down: a body-fixed nadir camera looks to the left (west when heading north)
		near(t, fmt.Sprintf("roll %g east", roll), p.East, -100*math.Tan(rad(roll)), 0.01)
		near(t, fmt.Sprintf("roll %g north", roll), p.North, 0, 0.01)
		// a stabilised gimbal does not tilt
		c2 := c
		c2.Mount.Mode = MountHeading
		p, _ = Locate(c2, v, 960, 540, Ground{})
		near(t, "stabilised east", p.East, 0, 1e-9)
	}
}

func TestNoIntersection(t *testing.T) {
	c := nadirCam(t)
	v := Vehicle{Lat: home, Lon: 8.5, AltMSL: 100}
	for _, tc := range []struct {
		name  string
		pitch float64
		v     float64
		want  error
	}{
		{"horizon", 0, 540, ErrAboveHorizon},
		{"above", 10, 540, ErrAboveHorizon},
		{"top row above horizon", -20, 0, ErrAboveHorizon}, // vfov/2 ≈ 29.4° > 20°
		{"grazing", -1, 540, ErrTooFar},                    // 100/tan(1°) ≈ 5.7 km
	} {
		c.Mount.Pitch = tc.pitch
		_, err := Locate(c, v, 960, tc.v, Ground{})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	c.Mount.Pitch = -90
	if _, err := Locate(c, v, 960, 540, Ground{AltMSL: 100}); !errors.Is(err, ErrBelowGround) {
		t.Errorf("at ground: err = %v", err)
	}
	if _, err := Locate(c, Vehicle{Lat: math.NaN(), AltMSL: 100}, 960, 540, Ground{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NaN lat: err = %v", err)
	}
	// within a configured max range
	c.Mount.Pitch = -1
	if _, err := Locate(c, v, 960, 540, Ground{MaxRange: 6000}); err != nil {
		t.Errorf("grazing within 6 km: %v", err)
	}
}

// quatMul is the Hamilton product a⊗b.
func quatMul(a, b [4]float64) [4]float64 {
	return [4]float64{
		a[0]*b[0] - a[1]*b[1] - a[2]*b[2] - a[3]*b[3],
		a[0]*b[1] + a[1]*b[0] + a[2]*b[3] - a[3]*b[2],
		a[0]*b[2] - a[1]*b[3] + a[2]*b[0] + a[3]*b[1],
		a[0]*b[3] + a[1]*b[2] - a[2]*b[1] + a[3]*b[0],
	}
}

func quatRotate(q [4]float64, v Vec3) Vec3 {
	p := quatMul(quatMul(q, [4]float64{0, v[0], v[1], v[2]}), [4]float64{q[0], -q[1], -q[2], -q[3]})
	return Vec3{p[1], p[2], p[3]}
}

func quat(r, p, y float64) [4]float64 {
	w, x, yy, z := EulerToQuat(r, p, y)
	return [4]float64{w, x, yy, z}
}

// TestIndependentFormulation checks Locate against a second formulation: quaternion products
// for the rotations, the camera axes remapped by hand, and a spherical-earth-free check of the
// lat/lon through the radii of curvature written out with explicit trig.
func TestIndependentFormulation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	in := Intrinsics{Width: 1280, Height: 720, Fx: 1000, Fy: 1010, Cx: 641.5, Cy: 359.25}
	checked := 0
	for range 500 {
		v := Vehicle{
			Lat: -60 + 120*rng.Float64(), Lon: -180 + 360*rng.Float64(), AltMSL: 20 + 300*rng.Float64(),
			Roll: -30 + 60*rng.Float64(), Pitch: -20 + 40*rng.Float64(), Yaw: -180 + 360*rng.Float64(),
		}
		m := Mount{Mode: MountMode(rng.IntN(3)), Roll: -10 + 20*rng.Float64(), Pitch: -90 + 60*rng.Float64(), Yaw: -60 + 120*rng.Float64()}
		u, px := rng.Float64()*1280, rng.Float64()*720
		g := Ground{AltMSL: -10 + 20*rng.Float64(), MaxRange: 1e6}

		// second formulation
		camRay := Vec3{(u - in.Cx) / in.Fx, (px - in.Cy) / in.Fy, 1}
		fwd := Vec3{camRay[2], camRay[0], camRay[1]} // x fwd, y right, z down
		var q [4]float64
		switch m.Mode {
		case MountBody:
			q = quatMul(quat(v.Roll, v.Pitch, v.Yaw), quat(m.Roll, m.Pitch, m.Yaw))
		case MountEarth:
			q = quat(m.Roll, m.Pitch, m.Yaw)
		case MountHeading:
			q = quatMul(quat(0, 0, v.Yaw+m.Yaw), quat(m.Roll, m.Pitch, 0))
		}
		d := quatRotate(q, fwd)
		p, err := Locate(Camera{in, m}, v, u, px, g)
		if d[2] <= 1e-9 {
			if !errors.Is(err, ErrAboveHorizon) && !errors.Is(err, ErrTooFar) {
				t.Fatalf("ray %v up but err = %v", d, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Locate(%+v, %+v, %g, %g): %v", m, v, u, px, err)
		}
		h := v.AltMSL - g.AltMSL
		n, e := h*d[0]/d[2], h*d[1]/d[2]
		if math.Hypot(n, e) > 3000 {
			continue // keep to the tangent-plane regime
		}
		near(t, "north", p.North, n, 0.01)
		near(t, "east", p.East, e, 0.01)
		// explicit WGS-84 radii
		phi := v.Lat * math.Pi / 180
		den := 1 - 0.00669437999014*math.Sin(phi)*math.Sin(phi)
		rm := 6378137 * (1 - 0.00669437999014) / math.Pow(den, 1.5)
		rn := 6378137 / math.Sqrt(den)
		near(t, "lat", p.Lat, v.Lat+n/(rm+g.AltMSL)*180/math.Pi, 1e-9)
		near(t, "lon", p.Lon, v.Lon+e/((rn+g.AltMSL)*math.Cos(phi))*180/math.Pi, 1e-9)
		checked++
	}
	if checked < 200 {
		t.Fatalf("only %d random poses checked", checked)
	}
}

func TestQuatEulerRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		r, p, y := -179+358*rng.Float64(), -89+178*rng.Float64(), -179+358*rng.Float64()
		r2, p2, y2 := QuatToEuler(EulerToQuat(r, p, y))
		near(t, "roll", r2, r, 1e-6)
		near(t, "pitch", p2, p, 1e-6)
		near(t, "yaw", y2, y, 1e-6)
		// the matrix and the quaternion agree
		q := quat(r, p, y)
		m := Euler(r, p, y)
		x := Vec3{0.3, -0.5, 0.8}
		a, b := m.Apply(x), quatRotate(q, x)
		for i := range 3 {
			near(t, "rotated", a[i], b[i], 1e-12)
		}
	}
}

func TestOffsetRadii(t *testing.T) {
	// at the equator the prime-vertical radius is the semi-major axis: 1 km east = 1000/a rad
	_, lon := Offset(0, 10, 0, 0, 1000)
	near(t, "lon", lon, 10+1000/6378137.0*180/math.Pi, 1e-12)
	// and the meridional radius is a(1-e²) = 6335439.327 m
	lat, _ := Offset(0, 10, 0, 1000, 0)
	near(t, "lat", lat, 1000/6335439.327*180/math.Pi, 1e-11)
	n, e := NEDOffset(home, 179.999, 0, home+0.001, -179.999)
	near(t, "north across date line", n, 111.2, 0.1)
	if e < 140 || e > 160 {
		t.Errorf("east across date line = %g, want ~150", e)
	}
}

func TestUncertainty(t *testing.T) {
	c := nadirCam(t)
	v := Vehicle{Lat: home, Lon: 8.5, AltMSL: 100}
	// centre pixel of a level nadir camera: 1° of roll or pitch moves the point 100·tan(1°)
	// sideways (first order: 100·π/180 = 1.745 m); yaw and altitude do not move it.
	p, err := LocateWithSigma(c, v, 960, 540, Ground{}, Sigma{AttitudeDeg: 1, AltitudeM: 5})
	if err != nil {
		t.Fatal(err)
	}
	a := 100 * math.Pi / 180
	near(t, "major", p.ErrMajor, a, 1e-3)
	near(t, "minor", p.ErrMinor, a, 1e-3)
	near(t, "radius", p.ErrRadius, a*math.Sqrt2, 1e-3)

	// position error adds per axis
	p, _ = LocateWithSigma(c, v, 960, 540, Ground{}, Sigma{PositionM: 3})
	near(t, "position radius", p.ErrRadius, 3*math.Sqrt2, 1e-9)

	// off-centre pixel: altitude error scales the offset: 25 m east at 100 m, σh = 10 m → 2.5 m
	p, _ = LocateWithSigma(c, v, 960+240, 540, Ground{}, Sigma{AltitudeM: 10})
	near(t, "alt major", p.ErrMajor, 2.5, 1e-6)
	near(t, "alt minor", p.ErrMinor, 0, 1e-6)

	// 45° oblique: 1° of pitch moves the hit point by h/sin²(45°)·π/180 = 3.49 m along track
	c.Mount.Pitch = -45
	p, _ = LocateWithSigma(c, v, 960, 540, Ground{}, Sigma{MountDeg: 1})
	near(t, "oblique major", p.ErrMajor, 200*math.Pi/180, 1e-3)

	// near the horizon a perturbation misses: infinite radius, not a wrong finite one
	c.Mount.Pitch = -0.5
	p, err = LocateWithSigma(c, v, 960, 540, Ground{MaxRange: 1e5}, Sigma{AttitudeDeg: 1})
	if err != nil || !math.IsInf(p.ErrRadius, 1) {
		t.Errorf("grazing: radius %g err %v, want +Inf", p.ErrRadius, err)
	}
}

func ExampleLocate() {
	in, _ := IntrinsicsFromHFOV(1920, 1080, 90)
	cam := Camera{Intrinsics: in, Mount: Mount{Mode: MountHeading, Pitch: -45}}
	veh := Vehicle{Lat: 47.3977, Lon: 8.5456, AltMSL: 588, Yaw: 90}
	p, err := Locate(cam, veh, 960, 540, Ground{AltMSL: 488})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%.1f m north, %.1f m east, %.6f %.6f\n", p.North, p.East, p.Lat, p.Lon)
	// Output: 0.0 m north, 100.0 m east, 47.397700 8.546925
}

func TestQuatToEulerGimbalLock(t *testing.T) {
	for _, tc := range []struct{ r, p, y, wantYaw float64 }{
		{0, -90, 0, 0}, {0, -90, 30, 30}, {10, -90, 20, 30}, {0, -89.95, -120, -120}, // at -90 only yaw+roll matters
	} {
		w, x, y, z := EulerToQuat(tc.r, tc.p, tc.y)
		r, p, yy := QuatToEuler(float64(float32(w)), float64(float32(x)), float64(float32(y)), float64(float32(z)))
		near(t, "roll", r, 0, 1e-9)
		near(t, "pitch", p, tc.p, 0.03) // float32 quaternion
		near(t, "yaw", yy, tc.wantYaw, 0.01)
		// the same rotation either way
		a, b := Euler(tc.r, tc.p, tc.y), Euler(r, p, yy)
		for i := range 3 {
			for j := range 3 {
				near(t, "matrix", a[i][j], b[i][j], 2e-3)
			}
		}
	}
}
