package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/agent"
	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/hal/sim"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

func findCheck(t *testing.T, r agent.DoctorReport, name string) agent.Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s check in %+v", name, r.Checks)
	return agent.Check{}
}

// doctorConfig is a configuration of one camera on srv (or url) and the broker at mqttURL.
func doctorConfig(t *testing.T, mqttURL, camURL string) config.Config {
	t.Helper()
	cfg := baseConfig(t, mqttURL, config.Camera{ID: "gate", URL: camURL, Transport: "tcp"})
	cfg.HTTP.Listen = "" // no running agent to ask
	return cfg
}

func doctor(t *testing.T, cfg config.Config, opts agent.DoctorOptions) agent.DoctorReport {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.ModelRuns == 0 {
		opts.ModelRuns = 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return agent.Doctor(ctx, cfg, opts)
}

// clipFPS is the frame rate ffprobe reads from the clip.
func clipFPS(t *testing.T, path string) float64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=r_frame_rate",
		"-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	num, den, _ := strings.Cut(strings.TrimSpace(string(out)), "/")
	n, _ := strconv.ParseFloat(num, 64)
	d, _ := strconv.ParseFloat(den, 64)
	if d == 0 {
		d = 1
	}
	return n / d
}

// A healthy device: every check passes but the clock, whose state is this machine's.
func TestDoctorPassesOnAHealthyDevice(t *testing.T) {
	srv := startRTSP(t, "", "", petsClip)
	mq := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	cfg := doctorConfig(t, mq.URL, srv.URL("pedestrians_pets09_s2l1_vtest"))
	r := doctor(t, cfg, agent.DoctorOptions{})
	for _, c := range r.Checks {
		t.Logf("%-5s %-12s %s", c.Status, c.Name, c.Detail)
	}
	for _, name := range []string{"config", "onnxruntime", "model", "camera/gate", "broker", "outbox"} {
		if c := findCheck(t, r, name); c.Status != agent.CheckPass {
			t.Errorf("%s: %s %s (fix: %s)", name, c.Status, c.Detail, c.Fix)
		}
	}
	cam := findCheck(t, r, "camera/gate")
	wantFPS := clipFPS(t, data.MustPath(t, petsClip))
	if cam.Data["codec"] != "h264" || cam.Data["width"] != 768 || cam.Data["height"] != 576 {
		t.Errorf("camera data %v, want h264 768x576", cam.Data)
	}
	if fps, _ := cam.Data["fps"].(float64); fps < wantFPS*0.9 || fps > wantFPS*1.1 {
		t.Errorf("camera fps %.2f, the clip's is %.2f", fps, wantFPS)
	}
	if ms, _ := findCheck(t, r, "model").Data["inference_ms"].(float64); ms <= 0 {
		t.Errorf("model check timed nothing: %v", findCheck(t, r, "model").Data)
	}
	clock := findCheck(t, r, "clock")
	if (clock.Status != agent.CheckPass && clock.Status != agent.CheckWarn) || !strings.Contains(clock.Detail, "adjtimex") {
		t.Errorf("clock: %s %q", clock.Status, clock.Detail)
	}
	if d := findCheck(t, r, "drone"); d.Status != agent.CheckSkip {
		t.Errorf("drone without drone.mavlink: %s", d.Status)
	}
	if !r.OK {
		t.Errorf("report not OK: %+v", r.Checks)
	}
}

// Each broken part is named by its check, with a fix, and fails the report.
func TestDoctorNamesEachFailure(t *testing.T) {
	srv := startRTSP(t, "admin", "s3cret", petsClip)
	mq := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	good := strings.Replace(srv.URL("pedestrians_pets09_s2l1_vtest"), "rtsp://", "rtsp://admin:s3cret@", 1)
	closed := fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))

	cases := []struct {
		name   string
		edit   func(*config.Config)
		check  string
		detail string // in the check's detail
		fix    string // in its fix
	}{
		{"wrong camera password", func(c *config.Config) { c.Cameras[0].URL = strings.Replace(good, "s3cret", "wrong", 1) },
			"camera/gate", "unauthorized", "password"},
		{"camera unreachable", func(c *config.Config) { c.Cameras[0].URL = "rtsp://" + closed + "/cam" },
			"camera/gate", "unreachable", "nothing answers"},
		{"no stream at the path", func(c *config.Config) {
			c.Cameras[0].URL = strings.Replace(good, "pedestrians_pets09_s2l1_vtest", "nosuchstream", 1)
		}, "camera/gate", "not found", "discover"},
		{"broker unreachable", func(c *config.Config) { c.MQTT.URL = "tcp://" + closed }, "broker", "refused", "nothing accepts"},
		{"outbox folder is a file", func(c *config.Config) {
			f := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(f, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			c.Outbox.Path = filepath.Join(f, "outbox.db")
		}, "outbox", "not a directory", "outbox.path"},
		{"model file does not match its sha256", func(c *config.Config) {
			b, err := os.ReadFile(c.Model.Manifest)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			m["sha256"] = strings.Repeat("ab", 32)
			b, _ = json.Marshal(m)
			p := filepath.Join(t.TempDir(), "model.json")
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			c.Model.Manifest = p
		}, "model", "sha256", "damaged"},
		{"drone link silent", func(c *config.Config) { c.Drone.MAVLink = fmt.Sprintf("udp://127.0.0.1:%d", testharness.FreePort(t)) },
			"drone", "no autopilot HEARTBEAT", "telemetry cable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := doctorConfig(t, mq.URL, good)
			tc.edit(&cfg)
			r := doctor(t, cfg, agent.DoctorOptions{Timeout: 3 * time.Second})
			c := findCheck(t, r, tc.check)
			if c.Status != agent.CheckFail || !strings.Contains(c.Detail, tc.detail) || !strings.Contains(c.Fix, tc.fix) {
				t.Errorf("%s: %s %q fix %q; want fail, %q, fix with %q", tc.check, c.Status, c.Detail, c.Fix, tc.detail, tc.fix)
			}
			if r.OK {
				t.Error("report OK despite a failed check")
			}
			for _, o := range r.Checks {
				if o.Name != tc.check && o.Status == agent.CheckFail {
					t.Errorf("%s failed too: %s", o.Name, o.Detail)
				}
				if strings.Contains(o.Detail, "s3cret") || strings.Contains(o.Fix, "s3cret") {
					t.Errorf("%s shows the camera password: %s", o.Name, o.Detail)
				}
			}
		})
	}
}

// The broker check uses the configured credentials and TLS: a wrong password and a broker
// certificate from another CA fail with fixes that say so; the right ones pass.
func TestDoctorBrokerCredentialsAndTLS(t *testing.T) {
	srv := startRTSP(t, "", "", petsClip)
	cam := srv.URL("pedestrians_pets09_s2l1_vtest")
	pki := testharness.NewPKI(t, "vigil-test-ca")
	other := testharness.NewPKI(t, "another-ca")
	cert, key := pki.Issue(t, "broker", true)
	port := testharness.FreePort(t)
	passwd := testharness.PasswordFile(t, map[string]string{"test-edge": "edge-pass"})
	testharness.StartMosquitto(t, testharness.MosquittoOptions{Port: port, NoListener: true, Extra: []string{
		fmt.Sprintf("listener %d 127.0.0.1", port), "allow_anonymous false", "password_file " + passwd,
		"cafile " + pki.CAFile, "certfile " + cert, "keyfile " + key}})
	url := fmt.Sprintf("ssl://127.0.0.1:%d", port)

	for _, tc := range []struct {
		name, pass, ca, status, fix string
	}{
		{"right password and CA", "edge-pass", pki.CAFile, agent.CheckPass, ""},
		{"wrong password", "nope", pki.CAFile, agent.CheckFail, "check mqtt.username and mqtt.password"},
		{"certificate from another CA", "edge-pass", other.CAFile, agent.CheckFail, "not signed by mqtt.tls.ca_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := doctorConfig(t, url, cam)
			cfg.MQTT.Username, cfg.MQTT.Password, cfg.MQTT.TLS.CAFile = "test-edge", tc.pass, tc.ca
			c := findCheck(t, doctor(t, cfg, agent.DoctorOptions{ModelRuns: 1}), "broker")
			if c.Status != tc.status || !strings.Contains(c.Fix, tc.fix) {
				t.Errorf("broker: %s %q fix %q; want %s with %q", c.Status, c.Detail, c.Fix, tc.status, tc.fix)
			}
			if tc.status == agent.CheckPass && !strings.Contains(c.Detail, "over TLS as test-edge") {
				t.Errorf("broker detail %q", c.Detail)
			}
			if strings.Contains(c.Detail, tc.pass) {
				t.Errorf("broker detail shows the password: %q", c.Detail)
			}
		})
	}
}

// The drone check passes once the simulated autopilot's heartbeats arrive over UDP.
func TestDoctorHearsTheDrone(t *testing.T) {
	mq := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	srv := startRTSP(t, "", "", petsClip)
	port := testharness.FreePort(t)
	dcfg := sim.DefaultDroneConfig()
	dcfg.Target = fmt.Sprintf("127.0.0.1:%d", port)
	drone, err := sim.NewDrone(dcfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := drone.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer drone.Close()
	cfg := doctorConfig(t, mq.URL, srv.URL("pedestrians_pets09_s2l1_vtest"))
	cfg.Drone.MAVLink = fmt.Sprintf("udp://127.0.0.1:%d", port)
	c := findCheck(t, doctor(t, cfg, agent.DoctorOptions{ModelRuns: 1}), "drone")
	if c.Status == agent.CheckFail || c.Status == agent.CheckSkip || !strings.Contains(c.Detail, "autopilot system 1 heard") {
		t.Errorf("drone: %s %q (fix %q)", c.Status, c.Detail, c.Fix)
	}
}

// The clock check reads the kernel's synchronisation state and the time itself.
func TestDoctorClock(t *testing.T) {
	mq := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	srv := startRTSP(t, "", "", petsClip)
	cfg := doctorConfig(t, mq.URL, srv.URL("pedestrians_pets09_s2l1_vtest"))
	synced := func(tx *syscall.Timex) (int, error) { tx.Status, tx.Maxerror = 0, 20000; return 0, nil }
	unsynced := func(tx *syscall.Timex) (int, error) { tx.Status, tx.Maxerror = 0x40, 16000000; return 5, nil }
	for _, tc := range []struct {
		name   string
		now    time.Time
		adj    func(*syscall.Timex) (int, error)
		status string
		ok     bool
	}{
		{"synchronised", time.Now(), synced, agent.CheckPass, true},
		{"not synchronised", time.Now(), unsynced, agent.CheckWarn, true},
		{"never set (1970)", time.Unix(0, 0), synced, agent.CheckFail, false},
	} {
		r := doctor(t, cfg, agent.DoctorOptions{ModelRuns: 1, Now: func() time.Time { return tc.now }, Adjtimex: tc.adj})
		c := findCheck(t, r, "clock")
		if c.Status != tc.status || r.OK != tc.ok {
			t.Errorf("%s: clock %s %q, report ok %v; want %s, %v", tc.name, c.Status, c.Detail, r.OK, tc.status, tc.ok)
		}
		if c.Status != agent.CheckPass && c.Fix == "" {
			t.Errorf("%s: no fix", tc.name)
		}
	}
	r := doctor(t, cfg, agent.DoctorOptions{ModelRuns: 1, Strict: true, Adjtimex: unsynced})
	if r.OK {
		t.Error("--strict: a warning must fail the report")
	}
}

// The command: exit 0 and a JSON report when healthy; exit 1 naming the key for a bad
// configuration; exit 1 when ONNX Runtime cannot be loaded (run in a child process, since the
// runtime is loaded once per process).
func TestDoctorCommand(t *testing.T) {
	srv := startRTSP(t, "", "", petsClip)
	mq := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	dir := t.TempDir()
	good := writeYAML(t, fmt.Sprintf(`device_id: test-edge
http: {listen: ""}
mqtt: {url: %q}
outbox: {path: %q}
snapshots: {dir: ""}
model: {manifest: %q, dir: %q}
cameras:
  - {id: gate, url: %q, transport: tcp}
`, mq.URL, filepath.Join(dir, "outbox.db"), filepath.Join(testharness.RepoRoot(), "models", "yolox_nano_coco_416.json"),
		data.MustPath(t, "models"), srv.URL("pedestrians_pets09_s2l1_vtest")))

	var out, errOut bytes.Buffer
	code := agent.Main([]string{"doctor", "--config", good, "--json", "--model-runs", "1"}, &out, &errOut)
	var r agent.DoctorReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("doctor --json: %v\n%s%s", err, out.String(), errOut.String())
	}
	if code != 0 || !r.OK || len(r.Checks) != 8 {
		t.Errorf("healthy: exit %d, ok %v, %d checks:\n%s", code, r.OK, len(r.Checks), out.String())
	}

	bad := writeYAML(t, "device_id: test-edge\ncameras:\n  - {id: gate, url: rtsp://127.0.0.1/x, detect_fps: -1}\n")
	out.Reset()
	code = agent.Main([]string{"doctor", "--config", bad}, &out, &errOut)
	if code != 1 || !strings.Contains(out.String(), "FAIL  config") || !strings.Contains(out.String(), "detect_fps") ||
		!strings.Contains(out.String(), "fix:") {
		t.Errorf("bad config: exit %d\n%s", code, out.String())
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EDGE_TEST_AGENT_ARGS=doctor --config "+good+" --model-runs 1", "ONNXRUNTIME_LIB=/nonexistent/libonnxruntime.so")
	b, err := cmd.CombinedOutput()
	ee, _ := err.(*exec.ExitError)
	if ee == nil || ee.ExitCode() != 1 || !strings.Contains(string(b), "FAIL  onnxruntime") || !strings.Contains(string(b), "SKIP  model") {
		t.Errorf("without ONNX Runtime: %v\n%s", err, b)
	}
}
