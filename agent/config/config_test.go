package config

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := Load("../agent.example.yaml", nil)
	if err != nil {
		t.Fatalf("the shipped example does not load: %v", err)
	}
	def := Default()
	// Everything but the example-marked keys equals the defaults.
	if cfg.LogLevel != def.LogLevel || cfg.HTTP != def.HTTP || cfg.Model != def.Model || cfg.Outbox != def.Outbox || cfg.Snapshots != def.Snapshots || cfg.OTA != def.OTA {
		t.Errorf("example differs from defaults: %+v %+v %+v %+v", cfg.LogLevel, cfg.HTTP, cfg.Model, cfg.Outbox)
	}
	if !reflect.DeepEqual(cfg.MQTT, def.MQTT) {
		t.Errorf("example mqtt = %+v, defaults %+v", cfg.MQTT, def.MQTT)
	}
	if len(cfg.Cameras) != 2 || cfg.Cameras[0].ID != "gate" || cfg.Cameras[0].DetectFPS != 5 {
		t.Fatalf("cameras = %+v", cfg.Cameras)
	}
	c := cfg.Cameras[1]
	if !c.IsEnabled() || !c.IsRealtime() || !c.Loop || c.Watchdog != 10*time.Second || c.QueueSize != 1 || *c.DecoderThreads != 1 || c.HWAccel != "none" || c.Transport != "auto" {
		t.Errorf("camera defaults not applied: %+v", c)
	}
	if !reflect.DeepEqual(c.Labels, DefaultLabels) {
		t.Errorf("labels = %v", c.Labels)
	}
}

func write(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const minimal = "device_id: d1\ncameras:\n  - id: c1\n    url: rtsp://127.0.0.1:8554/x\n"

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // each must appear, one per line
	}{
		{"unknown key", minimal + "mqtt:\n  urll: tcp://x:1\n", []string{"field urll not found"}},
		{"not yaml", "device_id: [", []string{"parse yaml"}},
		{"no cameras", "device_id: d1\n", []string{"'cameras' must list at least one camera"}},
		{"bad fps and id", "device_id: d1\ncameras:\n  - id: c1\n    url: rtsp://h/x\n  - id: 'bad id'\n    url: rtsp://h/y\n  - id: c3\n    url: rtsp://h/z\n    detect_fps: -1\n",
			[]string{"'cameras[1].id' must be 1-64", "'cameras[2].detect_fps' must be between 0"}},
		{"duplicate camera", "device_id: d1\ncameras:\n  - id: c1\n    url: rtsp://h/x\n  - id: c1\n    url: rtsp://h/y\n", []string{"'cameras[1].id' \"c1\" is already used by cameras[0]"}},
		{"bad scheme", "device_id: d1\ncameras:\n  - id: c1\n    url: http://h/x\n", []string{"'cameras[0].url' scheme must be rtsp"}},
		{"bad mqtt", minimal + "mqtt:\n  url: nowhere\n", []string{"'mqtt.url' must be a URL"}},
		{"bad transport", "device_id: d1\ncameras:\n  - id: c1\n    url: rtsp://h/x\n    transport: quic\n", []string{"'cameras[0].transport' must be auto, udp or tcp"}},
		{"tls pair", minimal + "mqtt:\n  tls:\n    cert_file: a.pem\n", []string{"'mqtt.tls' cert_file and key_file"}},
		{"bad duration", minimal + "mqtt:\n  keepalive: soon\n", []string{"parse yaml"}},
		{"threads", minimal + "model:\n  threads: 0\n", []string{"'model.threads' must be between 1 and 64"}},
		{"pool size 0", minimal + "model:\n  pool_size: 0\n", []string{"'model.pool_size' must be between 1 and 64"}},
		{"batch size", minimal + "model:\n  batch_size: -2\n", []string{"'model.batch_size' must be between 1 and 64"}},
		{"pairs with batches", minimal + "model:\n  batch_size: 2\n  pair_frames: true\n", []string{"'model.pair_frames' cannot be used with batch_size 2"}},
		{"camera pool size 0", "device_id: d1\ncameras:\n  - id: c1\n    url: rtsp://h/x\n    model:\n      manifest: m.json\n      threads: 1\n      pool_size: 0\n",
			[]string{"'cameras[0].model.pool_size' must be between 1 and 64"}},
		{"hwaccel", "device_id: d1\ncameras:\n  - id: c1\n    url: rtsp://h/x\n    hwaccel: cuda\n", []string{"'cameras[0].hwaccel' must be none, auto, vaapi or v4l2m2m"}},
		{"decoder threads", "device_id: d1\ncameras:\n  - id: c1\n    url: rtsp://h/x\n    decoder_threads: -1\n", []string{"'cameras[0].decoder_threads' must be between 0"}},
		{"log level", minimal + "log_level: loud\n", []string{"'log_level' must be debug"}},
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

func TestEnvOverrides(t *testing.T) {
	cfg, err := Load(write(t, minimal), []string{
		"VIGIL_DEVICE_ID=from-env", "VIGIL_MQTT_PASSWORD=s3cret", "VIGIL_MQTT_MAX_INFLIGHT=7",
		"VIGIL_CAMERAS_0_DETECT_FPS=2.5", "VIGIL_CAMERAS_0_LABELS=person, car", "VIGIL_CAMERAS_1_ID=c2",
		"VIGIL_CAMERAS_1_URL=/tmp/x.mp4", "VIGIL_CAMERAS_1_LOOP=true", "VIGIL_MQTT_KEEPALIVE=5s", "PATH=/bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DeviceID != "from-env" || cfg.MQTT.Password != "s3cret" || cfg.MQTT.MaxInflight != 7 || cfg.MQTT.KeepAlive != 5*time.Second {
		t.Errorf("top-level overrides: %+v", cfg)
	}
	if cfg.Cameras[0].DetectFPS != 2.5 || !reflect.DeepEqual(cfg.Cameras[0].Labels, []string{"person", "car"}) {
		t.Errorf("camera 0: %+v", cfg.Cameras[0])
	}
	if len(cfg.Cameras) != 2 || cfg.Cameras[1].ID != "c2" || !cfg.Cameras[1].Loop {
		t.Errorf("camera 1: %+v", cfg.Cameras)
	}
	if r := cfg.Redacted(); r.MQTT.Password != "REDACTED" {
		t.Errorf("password not redacted: %q", r.MQTT.Password)
	}
	for _, bad := range []string{"VIGIL_MQTT_URLL=x", "VIGIL_CAMERAS_X_URL=y", "VIGIL_MQTT_KEEPALIVE=soon", "VIGIL_MQTT=x"} {
		if _, err := Load(write(t, minimal), []string{bad}); err == nil || !strings.Contains(err.Error(), strings.Split(bad, "=")[0]) {
			t.Errorf("%s: err = %v, want one naming the variable", bad, err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	if got := RedactURL("rtsp://u:pw@h:554/s"); strings.Contains(got, "pw") || !strings.Contains(got, "u:REDACTED@h") {
		t.Errorf("RedactURL = %q", got)
	}
	if got := RedactURL("rtsp://h/s"); got != "rtsp://h/s" {
		t.Errorf("RedactURL changed a URL without password: %q", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("device_id: [\n"))
	b, _ := os.ReadFile("../agent.example.yaml")
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := Default()
		if err := Parse(in, &cfg); err != nil {
			return
		}
		_ = cfg.Validate() // must not panic
	})
}

// TestSessions: the pool defaults to one session per core, never more than its cameras; a
// pool_size that is set is taken as it is.
func TestSessions(t *testing.T) {
	cores := runtime.NumCPU()
	var m Model
	if got := m.Sessions(1); got != 1 {
		t.Errorf("1 camera: %d sessions, want 1", got)
	}
	if got := m.Sessions(100); got != cores {
		t.Errorf("100 cameras: %d sessions, want %d (cores)", got, cores)
	}
	if got := m.Sessions(0); got != 1 {
		t.Errorf("no camera: %d sessions, want 1", got)
	}
	three := 3
	m.PoolSize = &three
	if got := m.Sessions(1); got != 3 {
		t.Errorf("pool_size 3, 1 camera: %d sessions", got)
	}
}
