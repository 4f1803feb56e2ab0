package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-edge/vigil/agent"
	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/pipeline/motion"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/server"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

const petsClip = "videos/pedestrians_pets09_s2l1_vtest.avi"

// startRTSP serves the given shared-data clips on a free port.
func startRTSP(t *testing.T, user, pass string, clips ...string) *server.Server {
	t.Helper()
	var files []string
	for _, c := range clips {
		files = append(files, data.MustPath(t, c))
	}
	srv, err := server.New(server.Config{Addr: "127.0.0.1:0", Files: files, User: user, Pass: pass})
	if err != nil {
		t.Fatalf("rtsp server: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("rtsp server start: %v", err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// baseConfig is an agent configuration for tests: HTTP on a free port, the shipped model.
func baseConfig(t *testing.T, mqttURL string, cams ...config.Camera) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DeviceID = "test-edge"
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.MQTT.URL = mqttURL
	cfg.Outbox.Path = filepath.Join(t.TempDir(), "outbox.db")
	cfg.Snapshots.Dir = filepath.Join(t.TempDir(), "snapshots")
	cfg.Model.Manifest = filepath.Join(testharness.RepoRoot(), "models", "yolox_nano_coco_416.json")
	cfg.Model.Dir = data.MustPath(t, "models")
	for _, c := range cams {
		if c.DetectFPS == 0 {
			c.DetectFPS = 5
		}
		cfg.Cameras = append(cfg.Cameras, c)
	}
	for i := range cfg.Cameras {
		cfg.Cameras[i].ApplyDefaults()
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	return cfg
}

// runningAgent runs an agent until the test ends.
type runningAgent struct {
	*agent.Agent
	cancel context.CancelFunc
	done   chan error
	t      *testing.T
	once   sync.Once
}

func startAgent(t *testing.T, cfg config.Config) *runningAgent {
	t.Helper()
	a, err := agent.New(cfg, nil)
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra := &runningAgent{Agent: a, cancel: cancel, done: make(chan error, 1)}
	go func() { ra.done <- a.Run(ctx) }()
	ra.t = t
	t.Cleanup(ra.stop)
	return ra
}

func (ra *runningAgent) stop() {
	ra.once.Do(ra.stopOnce)
}

func (ra *runningAgent) stopOnce() {
	ra.cancel()
	select {
	case <-ra.done:
	case <-time.After(30 * time.Second):
		buf := make([]byte, 1<<20)
		ra.t.Errorf("agent did not stop within 30s; goroutines:\n%s", buf[:runtime.Stack(buf, true)])
	}
}

// collector subscribes to everything under vigil/v1/ and keeps what arrives.
type collector struct {
	mu   sync.Mutex
	msgs map[string][][]byte // by kind
	c    mqtt.Client
}

func subscribe(t *testing.T, brokerURL string) *collector {
	t.Helper()
	col := &collector{msgs: map[string][][]byte{}}
	opts := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(fmt.Sprintf("test-sub-%d", time.Now().UnixNano()))
	col.c = mqtt.NewClient(opts)
	if tok := col.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	tok := col.c.Subscribe(wire.Root+"/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		_, kind, _, err := wire.ParseTopic(m.Topic())
		if err != nil {
			if _, _, _, err := wire.ParseSnapshotTopic(m.Topic()); err != nil {
				return
			}
			kind = wire.KindSnapshots
		}
		col.mu.Lock()
		col.msgs[kind] = append(col.msgs[kind], append([]byte(nil), m.Payload()...))
		col.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { col.c.Disconnect(100) })
	return col
}

func (c *collector) get(kind string) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.msgs[kind]...)
}

// waitFor polls cond every 100 ms until it is true or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// personMessages counts detections messages (validated against the schema) with a person.
func personMessages(t *testing.T, col *collector) int {
	n := 0
	for _, b := range col.get(wire.KindDetections) {
		testharness.MustValidateJSON(t, "detections", b)
		var d wire.Detections
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		for _, o := range d.Objects {
			if o.Label == "person" {
				n++
				break
			}
		}
	}
	return n
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metricValue sums the samples of name whose labels contain every given fragment.
func metricValue(exposition, name string, fragments ...string) float64 {
	var sum float64
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, f := range fragments {
			ok = ok && strings.Contains(line, f)
		}
		if !ok {
			continue
		}
		var v float64
		fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v)
		sum += v
	}
	return sum
}

func TestEndToEndRTSPToMosquitto(t *testing.T) {
	rtsp := startRTSP(t, "", "", petsClip)
	broker := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	col := subscribe(t, broker.URL)
	name := strings.TrimSuffix(filepath.Base(petsClip), filepath.Ext(petsClip))
	ra := startAgent(t, baseConfig(t, broker.URL, config.Camera{ID: "pets", URL: rtsp.URL(name)}))

	waitFor(t, 60*time.Second, "3 detections messages with a person", func() bool { return personMessages(t, col) >= 3 })
	var online bool
	for _, b := range col.get(wire.KindStatus) {
		testharness.MustValidateJSON(t, "status", b)
		var s wire.Status
		_ = json.Unmarshal(b, &s)
		online = online || (s.State == wire.StateOnline && s.DeviceID == "test-edge" && len(s.Cameras) == 1)
	}
	if !online {
		t.Fatalf("no online status among %d status messages", len(col.get(wire.KindStatus)))
	}
	// seq increases and msg_id is unique across the device's messages.
	seen := map[string]bool{}
	var last uint64
	for _, b := range col.get(wire.KindDetections) {
		var d wire.Detections
		_ = json.Unmarshal(b, &d)
		if seen[d.MsgID] {
			t.Fatalf("msg_id %s repeated", d.MsgID)
		}
		seen[d.MsgID] = true
		if d.Seq <= last {
			t.Fatalf("seq went from %d to %d", last, d.Seq)
		}
		last = d.Seq
		if d.FrameWidth != 768 || d.FrameHeight != 576 || d.Model.Name != "yolox_nano_coco_416" || len(d.Model.SHA256) != 64 {
			t.Fatalf("frame/model fields: %+v", d)
		}
	}

	exp := scrape(t, ra.HTTPAddr())
	for _, m := range []string{"vigil_packets_received_total", "vigil_frames_decoded_total", "vigil_frames_detected_total"} {
		if v := metricValue(exp, m, `camera="pets"`); v <= 0 {
			t.Errorf("%s = %v, want > 0", m, v)
		}
	}
	if v := metricValue(exp, "vigil_detections_total", `label="person"`); v <= 0 {
		t.Errorf("no person counted in vigil_detections_total")
	}
	if v := metricValue(exp, "vigil_mqtt_publishes_total", `kind="detections"`); v <= 0 {
		t.Errorf("no publish counted")
	}
	if v := metricValue(exp, "vigil_inference_duration_seconds_count", `camera="pets"`); v <= 0 {
		t.Errorf("inference histogram empty")
	}
	promtoolCheck(t, exp)

	// A clean stop leaves "offline" as the retained status.
	ra.stop()
	waitFor(t, 10*time.Second, "offline status", func() bool {
		st := col.get(wire.KindStatus)
		var s wire.Status
		return len(st) > 0 && json.Unmarshal(st[len(st)-1], &s) == nil && s.State == wire.StateOffline
	})
}

// promtoolCheck lints an exposition with Prometheus's promtool (installed by make deps).
func promtoolCheck(t *testing.T, exposition string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		p := filepath.Join(testharness.RepoRoot(), ".deps", "prometheus", "usr", "bin", "promtool")
		if _, e := os.Stat(p); e != nil {
			t.Fatalf("promtool not found: run `make deps`")
		}
		bin = p
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestReconnectsAfterRTSPServerRestart(t *testing.T) {
	port := testharness.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	file := data.MustPath(t, petsClip)
	srv, err := server.New(server.Config{Addr: addr, Files: []string{file}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	broker := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	col := subscribe(t, broker.URL)
	cam := config.Camera{ID: "pets", URL: srv.URL("pedestrians_pets09_s2l1_vtest"), Watchdog: 3 * time.Second}
	ra := startAgent(t, baseConfig(t, broker.URL, cam))
	waitFor(t, 60*time.Second, "first detections", func() bool { return len(col.get(wire.KindDetections)) >= 2 })

	srv.Close()
	time.Sleep(5 * time.Second)
	before := len(col.get(wire.KindDetections))
	srv2, err := server.New(server.Config{Addr: addr, Files: []string{file}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv2.Start(); err != nil {
		t.Fatalf("restart the RTSP server on %s: %v", addr, err)
	}
	t.Cleanup(srv2.Close)
	waitFor(t, 60*time.Second, "detections after the restart", func() bool { return len(col.get(wire.KindDetections)) >= before+3 })
	if v := metricValue(scrape(t, ra.HTTPAddr()), "vigil_source_reconnects_total", `camera="pets"`); v < 1 {
		t.Fatalf("vigil_source_reconnects_total = %v, want >= 1", v)
	}
	if st := ra.Status().Cameras[0]; st.Reconnects < 1 || st.State != agent.StateStreaming {
		t.Fatalf("camera status after reconnect: %+v", st)
	}
}

func TestBadInputIsNamedAndOtherCamerasKeepRunning(t *testing.T) {
	rtsp := startRTSP(t, "", "", petsClip)
	locked := startRTSP(t, "viewer", "right", "videos/mot15_tud_campus.mp4")
	broker := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	col := subscribe(t, broker.URL)
	dir := t.TempDir()

	notVideo := filepath.Join(dir, "notes.mp4")
	os.WriteFile(notVideo, []byte("this is not a video\n"), 0o644)

	realManifest := filepath.Join(testharness.RepoRoot(), "models", "yolox_nano_coco_416.json")
	manifest := func(name string, edit func(m map[string]any)) string {
		b, _ := os.ReadFile(realManifest)
		var m map[string]any
		json.Unmarshal(b, &m)
		edit(m)
		out, _ := json.Marshal(m)
		p := filepath.Join(dir, name+".json")
		os.WriteFile(p, out, 0o644)
		return p
	}
	os.WriteFile(filepath.Join(dir, "corrupt.onnx"), []byte("\x08\x07garbage, not a model"), 0o644)
	corrupt := manifest("corrupt", func(m map[string]any) { m["file"] = "corrupt.onnx"; delete(m, "sha256") })
	shape := manifest("shape", func(m map[string]any) {
		m["file"] = filepath.Join(data.MustPath(t, "models"), "yolox_nano_coco_416.onnx")
		m["input"].(map[string]any)["width"] = 320
		m["input"].(map[string]any)["height"] = 320
	})

	// A stream whose picture size changes twice in each loop (320x240, 176x144, 320x240).
	resizing := filepath.Join(dir, "resizing.h264")
	if ff, err := exec.LookPath("ffmpeg"); err == nil {
		var all []byte
		for i, size := range []string{"320x240", "176x144", "320x240"} {
			part := filepath.Join(dir, fmt.Sprintf("part%d.h264", i))
			out, err := exec.Command(ff, "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc2=size="+size+":rate=25",
				"-frames:v", "25", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-f", "h264", part).CombinedOutput()
			if err != nil {
				t.Fatalf("ffmpeg: %v: %s", err, out)
			}
			b, _ := os.ReadFile(part)
			all = append(all, b...)
		}
		os.WriteFile(resizing, all, 0o644)
	} else {
		t.Skip("ffmpeg CLI not installed")
	}

	pets := rtsp.URL("pedestrians_pets09_s2l1_vtest")
	wrong := strings.Replace(locked.URL("mot15_tud_campus"), "rtsp://", "rtsp://viewer:wrong@", 1)
	cfg := baseConfig(t, broker.URL,
		config.Camera{ID: "good", URL: pets},
		config.Camera{ID: "unreachable", URL: fmt.Sprintf("rtsp://127.0.0.1:%d/none", testharness.FreePort(t))},
		config.Camera{ID: "badcreds", URL: wrong},
		config.Camera{ID: "notvideo", URL: notVideo},
		config.Camera{ID: "corruptmodel", URL: pets, Model: &config.Model{Manifest: corrupt, Dir: dir, Threads: 1}},
		config.Camera{ID: "badshape", URL: pets, Model: &config.Model{Manifest: shape, Dir: dir, Threads: 1}},
		config.Camera{ID: "batched", URL: pets, Model: &config.Model{Manifest: realManifest, Dir: data.MustPath(t, "models"), Threads: 1, BatchSize: 4}},
		config.Camera{ID: "resizing", URL: resizing, Loop: true},
		config.Camera{ID: "badmask", URL: pets, Motion: &config.Motion{Enabled: true, Masks: []motion.Polygon{{{0, 0}, {0.5, 0}, {1.2, 0.5}}}}},
	)
	ra := startAgent(t, cfg)

	waitFor(t, 60*time.Second, "detections from the good camera", func() bool { return personMessages(t, col) >= 3 })
	want := map[string][]string{
		"unreachable":  {"unreachable"},
		"badcreds":     {"401", "unauthorized"},
		"notvideo":     {"notes.mp4", "not a video"},
		"corruptmodel": {"corrupt.onnx"},
		"badshape":     {"does not match"},
		"batched":      {"'cameras[6].model.batch_size' is 4"},
		"badmask":      {"'cameras[8].motion.masks[0]' point 2 (1.2, 0.5) is outside the frame"},
	}
	waitFor(t, 30*time.Second, "an error on every bad camera", func() bool {
		for _, c := range ra.Status().Cameras {
			if _, bad := want[c.ID]; bad && c.LastError == "" {
				return false
			}
		}
		return true
	})
	for _, c := range ra.Status().Cameras {
		frags, bad := want[c.ID]
		if c.ID == "resizing" {
			continue // below
		}
		if !bad {
			if c.ID != "good" || c.State != agent.StateStreaming || c.Detected == 0 {
				t.Errorf("good camera: %+v", c)
			}
			continue
		}
		hit := false
		for _, f := range frags {
			hit = hit || strings.Contains(strings.ToLower(c.LastError), strings.ToLower(f))
		}
		if !hit {
			t.Errorf("camera %s: error %q names none of %v", c.ID, c.LastError, frags)
		}
		if strings.Contains(c.LastError, "wrong") {
			t.Errorf("camera %s: a password leaked into the error: %q", c.ID, c.LastError)
		}
	}
	for _, b := range col.get(wire.KindDetections) {
		var d wire.Detections
		json.Unmarshal(b, &d)
		if d.Camera != "good" && d.Camera != "resizing" {
			t.Fatalf("detections from camera %s, which cannot run", d.Camera)
		}
	}
	// The camera whose picture size changes goes on, counting each change.
	waitFor(t, 30*time.Second, "the resizing camera through a size change", func() bool {
		return registryValue(t, ra.Agent, `vigil_source_errors_total{camera="resizing",reason="resolution_change"}`) >= 1
	})
	for _, c := range ra.Status().Cameras {
		if c.ID == "resizing" && (c.State != agent.StateStreaming || c.Detected == 0) {
			t.Errorf("resizing camera: %+v", c)
		}
	}
}

// registryValue reads one series from the agent's registry, 0 when absent.
func registryValue(t *testing.T, a *agent.Agent, series string) float64 {
	t.Helper()
	mfs, err := a.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName() + "{"
			for i, l := range m.GetLabel() {
				if i > 0 {
					name += ","
				}
				name += l.GetName() + "=\"" + l.GetValue() + "\""
			}
			name += "}"
			if name == series {
				switch {
				case m.GetCounter() != nil:
					return m.GetCounter().GetValue()
				case m.GetGauge() != nil:
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

func TestCheckConfigNamesEveryBadKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(p, []byte("device_id: 'no spaces allowed'\ncameras:\n  - id: c1\n    url: ftp://x/y\n    detect_fps: -2\n"), 0o644)
	var out, errb strings.Builder
	if code := agent.Main([]string{"check-config", "--config", p}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	for _, key := range []string{"'device_id'", "'cameras[0].url'", "'cameras[0].detect_fps'"} {
		found := 0
		for _, l := range lines {
			if strings.Contains(l, key) {
				found++
			}
		}
		if found != 1 {
			t.Errorf("want one line naming %s, got:\n%s", key, errb.String())
		}
	}
	// a motion mask outside the frame fails its camera when the agent runs: check-config names it
	mask := filepath.Join(t.TempDir(), "mask.yaml")
	os.WriteFile(mask, []byte(fmt.Sprintf("device_id: d\nmodel: {manifest: %q, dir: %q}\ncameras:\n  - id: c1\n    url: rtsp://127.0.0.1/x\n"+
		"    motion: {enabled: true, masks: [[[0, 0], [0.5, 0], [1.2, 0.5]]]}\n",
		filepath.Join(testharness.RepoRoot(), "models", "yolox_nano_coco_416.json"), data.MustPath(t, "models"))), 0o644)
	out.Reset()
	errb.Reset()
	if code := agent.Main([]string{"check-config", "--config", mask}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "'cameras[0].motion.masks[0]' point 2 (1.2, 0.5) is outside the frame") {
		t.Errorf("mask outside the frame: exit %d, stderr %q", code, errb.String())
	}
	good := filepath.Join(t.TempDir(), "good.yaml")
	os.WriteFile(good, []byte(fmt.Sprintf("device_id: d\nmodel: {manifest: %q, dir: %q}\ncameras:\n  - id: c1\n    url: rtsp://127.0.0.1/x\n",
		filepath.Join(testharness.RepoRoot(), "models", "yolox_nano_coco_416.json"), data.MustPath(t, "models"))), 0o644)
	out.Reset()
	errb.Reset()
	if code := agent.Main([]string{"check-config", "--config", good}, &out, &errb); code != 0 || !strings.Contains(out.String(), "config ok") {
		t.Fatalf("good config: exit %d, %q %q", code, out.String(), errb.String())
	}
}

func TestEndToEndThroughFleetEmbeddedBroker(t *testing.T) {
	rtsp := startRTSP(t, "", "", petsClip)
	core, err := fleet.New(fleet.Config{MQTTListen: fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t)), HTTPListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("fleet: %v", err)
	}
	t.Cleanup(func() { core.Close() })
	brokerURL := "tcp://" + core.BrokerAddr()
	col := subscribe(t, brokerURL)
	startAgent(t, baseConfig(t, brokerURL, config.Camera{ID: "pets", URL: rtsp.URL("pedestrians_pets09_s2l1_vtest")}))

	waitFor(t, 60*time.Second, "persons through the embedded broker", func() bool { return personMessages(t, col) >= 3 })
	// The fleet's own view, over its HTTP API.
	waitFor(t, 10*time.Second, "the fleet API to show the device with persons", func() bool {
		resp, err := http.Get("http://" + core.HTTPAddr() + "/api/v1/devices/test-edge")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var dev struct {
			Online  bool `json:"online"`
			Cameras []struct {
				ID      string            `json:"id"`
				Objects map[string]uint64 `json:"objects"`
			} `json:"cameras"`
		}
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&dev) != nil {
			return false
		}
		return dev.Online && len(dev.Cameras) == 1 && dev.Cameras[0].ID == "pets" && dev.Cameras[0].Objects["person"] > 0
	})
}
