package sim

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/hal/geo"
)

func TestPathsAreContinuousClosedLoops(t *testing.T) {
	lm, err := lawnmowerPath(6, 40, 200)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*path{"orbit": orbitPath(100), "lawnmower": lm} {
		const step = 0.05
		pn, pe, ph, _ := p.at(0)
		for d := step; d <= p.total+step; d += step {
			n, e, h, _ := p.at(d)
			if jump := math.Hypot(n-pn, e-pe); jump > step*1.0001 {
				t.Fatalf("%s: position jumps %.3f m at %.2f m", name, jump, d)
			}
			if dh := math.Abs(math.Remainder(h-ph, 2*math.Pi)); dh > 0.01 {
				t.Fatalf("%s: heading jumps %.3f rad at %.2f m", name, dh, d)
			}
			pn, pe, ph = n, e, h
		}
	}
	// the lawn-mower covers the rectangle centred on home: legs at east -100, -60, ..., 100
	n, e, h, _ := lm.at(0)
	if math.Abs(n+100) > 1e-9 || math.Abs(e+100) > 1e-9 || h != 0 {
		t.Errorf("first leg starts at %.2f,%.2f heading %.2f", n, e, h)
	}
	wantLen := 6*200.0 + 5*math.Pi*20 + math.Pi*20 + 4*40
	if math.Abs(lm.total-wantLen) > 1e-9 {
		t.Errorf("length %.2f, want %.2f", lm.total, wantLen)
	}
	if _, err := lawnmowerPath(3, 40, 200); err == nil {
		t.Error("odd rows accepted")
	}
}

func TestOrbitTruth(t *testing.T) {
	cfg := DefaultDroneConfig()
	cfg.Target = "127.0.0.1:14550"
	cfg.Speed = 20
	d, err := NewDrone(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wantBank := math.Atan(20*20/(gravity*100)) * 180 / math.Pi
	for _, sec := range []float64{0, 3, 17.5, 100} {
		s := d.TrueState(d.Boot().Add(time.Duration(sec * float64(time.Second))))
		n, e := geo.NEDOffset(cfg.HomeLat, cfg.HomeLon, cfg.HomeAlt, s.Lat, s.Lon)
		if r := math.Hypot(n, e); math.Abs(r-100) > 0.01 {
			t.Errorf("t=%g: radius %.3f", sec, r)
		}
		if math.Abs(s.Roll-wantBank) > 1e-6 || math.Abs(math.Hypot(s.VelN, s.VelE)-20) > 1e-9 {
			t.Errorf("t=%g: roll %.3f (want %.3f), speed %.3f", sec, s.Roll, wantBank, math.Hypot(s.VelN, s.VelE))
		}
		// clockwise: heading is 90° right of the bearing from home
		bearing := math.Atan2(e, n) * 180 / math.Pi
		if dh := math.Remainder(s.Yaw-bearing-90, 360); math.Abs(dh) > 0.01 {
			t.Errorf("t=%g: yaw %.2f bearing %.2f", sec, s.Yaw, bearing)
		}
		// body yaw rate of a level-ish coordinated turn: ω·cosφ·cosθ with ω = V/R
		if w := 0.2 * math.Cos(s.Roll*math.Pi/180) * math.Cos(s.Pitch*math.Pi/180); math.Abs(s.YawRate-w) > 1e-4 {
			t.Errorf("t=%g: yaw rate %.4f want %.4f", sec, s.YawRate, w)
		}
	}
}

func TestDroneConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		edit func(*DroneConfig)
		want string
	}{
		{func(c *DroneConfig) { c.Target = "nowhere" }, "'target'"},
		{func(c *DroneConfig) { c.Alt = 0 }, "'alt'"},
		{func(c *DroneConfig) { c.Speed = -1 }, "'speed'"},
		{func(c *DroneConfig) { c.Pattern = "zigzag" }, "'pattern'"},
		{func(c *DroneConfig) { c.Pattern, c.Rows = Lawnmower, 3 }, "'rows'"},
		{func(c *DroneConfig) { c.Radius = 1 }, "'radius'"},
		{func(c *DroneConfig) { c.GimbalPitch = -120 }, "'gimbal_pitch'"},
	} {
		c := DefaultDroneConfig()
		c.Target = "127.0.0.1:14550"
		tc.edit(&c)
		if _, err := NewDrone(c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
}
