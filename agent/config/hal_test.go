package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestExampleHALSectionsAreDefaults(t *testing.T) {
	cfg, err := Load("../agent.example.yaml", nil)
	if err != nil {
		t.Fatalf("the shipped example does not load: %v", err)
	}
	def := Default()
	if !reflect.DeepEqual(cfg.Drone, def.Drone) || !reflect.DeepEqual(cfg.GNSS, def.GNSS) || cfg.Telemetry != def.Telemetry {
		t.Errorf("example drone/gnss/telemetry = %+v %+v %+v, defaults %+v %+v %+v",
			cfg.Drone, cfg.GNSS, cfg.Telemetry, def.Drone, def.GNSS, def.Telemetry)
	}
}

const droneCam = "device_id: d1\ndrone:\n  mavlink: udp://127.0.0.1:14550\ncameras:\n  - id: c1\n    url: rtsp://h/x\n"

func TestDroneConfigLoads(t *testing.T) {
	cfg, err := Load(write(t, droneCam+"    optics:\n      hfov_deg: 60\n      use_gimbal: true\n    tiling: {enabled: true, auto: true}\n"+
		"gnss:\n  static: {lat: 47.1, lon: 8.5, alt_m: 500}\ntelemetry:\n  interval: 2s\n"),
		[]string{"VIGIL_DRONE_MAX_AGE=500ms", "VIGIL_DRONE_GROUND_ALT_M=488", "VIGIL_CAMERAS_0_OPTICS_MOUNT_PITCH_DEG=-45"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Drone.MAVLink != "udp://127.0.0.1:14550" || cfg.Drone.MaxAge != 500*time.Millisecond || cfg.Drone.GroundAltM == nil || *cfg.Drone.GroundAltM != 488 ||
		cfg.Drone.AttitudeSigmaDeg != 1 {
		t.Errorf("drone = %+v", cfg.Drone)
	}
	o := cfg.Cameras[0].Optics
	if o == nil || o.HFOVDeg != 60 || !o.UseGimbal || o.Mount.PitchDeg != -45 {
		t.Errorf("optics = %+v", o)
	}
	if tl := cfg.Cameras[0].Tiling; tl == nil || !tl.Enabled || !tl.Auto {
		t.Errorf("tiling = %+v", tl)
	}
	if s := cfg.GNSS.Static; s == nil || s.Lat != 47.1 || s.AltM == nil || *s.AltM != 500 {
		t.Errorf("gnss = %+v", cfg.GNSS)
	}
	if cfg.Telemetry.Interval != 2*time.Second || cfg.Telemetry.DiskPath != "/" {
		t.Errorf("telemetry = %+v", cfg.Telemetry)
	}
}

func TestHALConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"bad endpoint", minimal + "drone:\n  mavlink: http://x:1\n", []string{"'drone.mavlink'", "unknown scheme"}},
		{"max age", minimal + "drone:\n  max_age: 0s\n", []string{"'drone.max_age' must be between 10ms and 1m"}},
		{"ground", minimal + "drone:\n  ground_alt_m: 20000\n", []string{"'drone.ground_alt_m' must be between"}},
		{"sigma", minimal + "drone:\n  attitude_sigma_deg: -1\n  alt_sigma_m: -2\n", []string{"'drone.attitude_sigma_deg' must be in [0,45]", "'drone.alt_sigma_m'"}},
		{"hfov", droneCam + "    optics:\n      hfov_deg: 190\n", []string{"'cameras[0].optics.hfov_deg' must be in (0,180)"}},
		{"no intrinsics", droneCam + "    optics:\n      use_gimbal: true\n", []string{"'cameras[0].optics' must give hfov_deg or fx, fy"}},
		{"both intrinsics", droneCam + "    optics:\n      hfov_deg: 60\n      fx: 500\n", []string{"'cameras[0].optics' must give hfov_deg or fx, fy, cx, cy, not both"}},
		{"fy", droneCam + "    optics:\n      fx: 500\n", []string{"'cameras[0].optics.fy' must be > 0"}},
		{"mount", droneCam + "    optics:\n      hfov_deg: 60\n      mount: {mode: sideways, pitch_deg: -100}\n",
			[]string{"'cameras[0].optics.mount.mode' must be body, earth or heading", "'cameras[0].optics.mount.pitch_deg' must be in [-90,90]"}},
		{"optics without drone", minimal + "    optics:\n      hfov_deg: 60\n", []string{"'cameras[0].optics' needs drone.mavlink"}},
		{"tiling", minimal + "    tiling: {enabled: true, tile: 8, overlap: 0.95, auto: true}\n",
			[]string{"'cameras[0].tiling.tile' must be between 32", "'cameras[0].tiling.overlap' must be in [0,0.9)", "'cameras[0].tiling.auto' needs drone.mavlink"}},
		{"gnss both", minimal + "gnss:\n  static: {lat: 1, lon: 2}\n  nmea: /dev/ttyUSB0\n", []string{"'gnss' must have static or nmea, not both"}},
		{"gnss range", minimal + "gnss:\n  static: {lat: 91, lon: 200}\n", []string{"'gnss.static.lat' must be in [-90,90]", "'gnss.static.lon' must be in [-180,180]"}},
		{"gnss baud", minimal + "gnss:\n  nmea: /dev/ttyUSB0\n  baud: 1234\n", []string{"'gnss.baud' must be a standard rate"}},
		{"telemetry", minimal + "telemetry:\n  interval: 100ms\n  disk_path: var\n", []string{"'telemetry.interval' must be >= 1s", "'telemetry.disk_path' must be an absolute path"}},
		{"unknown key", droneCam + "    optics:\n      hfov: 60\n", []string{"field hfov not found"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(write(t, tc.yaml), nil)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestMotionConfig(t *testing.T) {
	cfg, err := Load("../agent.example.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Cameras[0].Motion
	if m == nil || !m.Enabled || m.AnalysisWidth != 320 || m.Threshold != 30 || m.MinArea != 20 || len(m.Masks) != 1 ||
		m.Masks[0][2] != [2]float64{0.15, 0.6} || m.FullFrameInterval() != 10*time.Second || m.Coverage != 0.6 {
		t.Errorf("example motion = %+v", m)
	}
	if cfg.Cameras[1].Motion != nil {
		t.Errorf("second camera has motion %+v", cfg.Cameras[1].Motion)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"mask outside", minimal + "    motion:\n      masks:\n        - [[0, 0], [0.5, 0], [1.2, 0.5]]\n",
			"'cameras[0].motion.masks[0]' point 2 (1.2, 0.5) is outside the frame (0-1)"},
		{"threshold", minimal + "    motion: {enabled: true, threshold: 255}\n", "'cameras[0].motion.threshold' must be in 1-254, got 255"},
		{"analysis width", minimal + "    motion: {analysis_width: 8}\n", "'cameras[0].motion.analysis_width' must be in 16-4096, got 8"},
		{"full frame every", minimal + "    motion: {full_frame_every: 10ms}\n", "'cameras[0].motion.full_frame_every' must be >= 100ms"},
		{"coverage", minimal + "    motion: {coverage: 1.5}\n", "'cameras[0].motion.coverage' must be in [0,1]"},
		{"unknown key", minimal + "    motion: {enable: true}\n", "enable"},
	} {
		cfg, err := Load(write(t, tc.yaml), nil)
		if err == nil { // a bad motion section fails its camera only (the agent goes on)
			err = errors.Join(cfg.MotionErrors()...)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}
