package agent_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-edge/vigil/agent"
	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/pipeline/outbox"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// writeYAML writes an agent configuration file for the real binary.
func writeYAML(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runBinary runs this test binary as `vigil-agent run` (see TestMain) with cfgPath and extra
// environment, and returns its exit status, its output and how long it ran. It is killed
// after limit.
func runBinary(t *testing.T, cfgPath string, limit time.Duration, env ...string) (int, string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "EDGE_TEST_AGENT_CONFIG="+cfgPath, "EDGE_DATA_DIR="+data.Dir()), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if ctx.Err() != nil {
		return -1, string(out), took
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out), took
	}
	if err != nil {
		t.Fatalf("run the agent: %v", err)
	}
	return 0, string(out), took
}

// TestBadFleetKeyIsCaughtByCheckConfigAndAtStart: a fleet key that is not an ed25519 public
// key is named by check-config, and `run` exits non-zero at once with the reason instead of
// idling with no camera.
func TestBadFleetKeyIsCaughtByCheckConfigAndAtStart(t *testing.T) {
	dir := t.TempDir()
	manifest := filepath.Join(testharness.RepoRoot(), "models", "yolox_nano_coco_416.json")
	for name, key := range map[string]string{
		"not base64": "this is not a key!",
		"too short":  base64.StdEncoding.EncodeToString([]byte("sixteen byte key")),
	} {
		t.Run(name, func(t *testing.T) {
			cfg := writeYAML(t, fmt.Sprintf(`device_id: keytest
http: {listen: "127.0.0.1:0"}
mqtt: {url: "tcp://127.0.0.1:%d"}
outbox: {path: %q}
snapshots: {dir: ""}
model: {manifest: %q}
ota: {fleet_key: %q, store_dir: %q}
cameras:
  - {id: c1, url: %q}
`, testharness.FreePort(t), filepath.Join(dir, name, "outbox.db"), manifest, key, filepath.Join(dir, name, "models"), data.MustPath(t, petsClip)))
			var out, errb strings.Builder
			if code := agent.Main([]string{"check-config", "--config", cfg}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "'ota.fleet_key'") {
				t.Fatalf("check-config: exit %d, stderr %q; want 1 naming 'ota.fleet_key'", code, errb.String())
			}
			code, logs, took := runBinary(t, cfg, 20*time.Second)
			if code <= 0 || !strings.Contains(logs, "ota.fleet_key") {
				t.Fatalf("run: exit %d after %s, want non-zero at once naming ota.fleet_key; output:\n%s", code, took, logs)
			}
			t.Logf("run exited %d after %s", code, took.Round(time.Millisecond))
		})
	}
}

// TestStartFailsCompletelyAndClosesWhatItStarted: when a part of the agent cannot start after
// others have (here the model store, whose folder is a file), Run returns at once with the
// reason, having closed the HTTP server, the sensors and the outbox: the port is free again
// and the outbox file can be opened.
func TestStartFailsCompletelyAndClosesWhatItStarted(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "models")
	if err := os.WriteFile(notDir, []byte("a file, not a folder"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testharness.FreePort(t)
	cfg := baseConfig(t, fmt.Sprintf("tcp://127.0.0.1:%d", testharness.FreePort(t)), config.Camera{ID: "c1", URL: data.MustPath(t, petsClip)})
	cfg.HTTP.Listen = fmt.Sprintf("127.0.0.1:%d", port)
	pub, _, _ := ed25519.GenerateKey(nil)
	cfg.OTA.FleetKey = base64.StdEncoding.EncodeToString(pub)
	cfg.OTA.StoreDir = notDir
	cfg.Telemetry.Interval = time.Second
	a, err := agent.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background()) // never cancelled before Run returns
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "ota.store_dir") {
			t.Fatalf("Run: %v, want an error naming ota.store_dir", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s after a part failed to start")
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		t.Fatalf("the HTTP port is still held after a failed start: %v", err)
	}
	ln.Close()
	ob, err := outbox.Open(cfg.Outbox.Path, outbox.Options{})
	if err != nil {
		t.Fatalf("the outbox is still open after a failed start: %v", err)
	}
	ob.Close()
}

// TestCommandsWaitForCameras: a model update waiting for the device when it connects (here a
// retained command) is carried out on the cameras. Before the fix the publisher subscribed to
// commands before the cameras had their detectors: swapModel read camera.det on the OTA
// goroutine while Run set it (a data race), an update arriving then was swapped into no
// camera, and the device kept running its old model while reporting the new one active. The
// hook holds Run just before the cameras' detectors open, until the command has been carried
// out (or for 3 s when no command arrives: the fixed agent is not connected yet).
func TestCommandsWaitForCameras(t *testing.T) {
	// Three cameras, one clip each (gortsplib's server races when sessions of one stream set up at once).
	rtsp := startRTSP(t, "", "", petsClip, "videos/mot15_tud_campus.mp4", "videos/parking_lot_cars_intel.mp4")
	r := startFleetWithOTA(t)
	r.addModel(t, "9.0.0", data.MustPath(t, "models/yolox_nano_coco_416.onnx"), nil)
	m, err := r.core.Models().Get("yolox_nano_coco_416", "9.0.0")
	if err != nil {
		t.Fatal(err)
	}
	const dev = "race-edge"
	ref := m.Ref("http://" + r.core.HTTPAddr())
	now := time.Now()
	sc, err := wire.Sign(wire.Command{Schema: wire.SchemaCommand, ID: "cmd-race-1", DeviceID: dev, Name: wire.CmdModelUpdate,
		IssuedAt: now.UnixMilli(), ExpiresAt: now.Add(5 * time.Minute).UnixMilli(), Model: &ref}, r.key)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(sc)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(r.broker).SetClientID("test-commander"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	if tok := c.Publish(wire.Topic(dev, wire.KindCmd, wire.CmdModelUpdate), 1, true, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish the retained command: %v", tok.Error())
	}
	c.Disconnect(100)
	col := subscribe(t, r.broker)
	result := func(states ...string) bool {
		for _, b := range col.get(wire.KindCmdResult) {
			var res wire.CmdResult
			if json.Unmarshal(b, &res) == nil && slices.Contains(states, res.State) {
				return true
			}
		}
		return false
	}
	agent.SetCamerasStartingHook(func() {
		deadline := time.Now().Add(3 * time.Second)
		for !result(wire.CmdAccepted) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if !result(wire.CmdAccepted) {
			return
		}
		deadline = time.Now().Add(60 * time.Second)
		for !result(wire.CmdActive, wire.CmdFailed) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	})
	t.Cleanup(func() { agent.SetCamerasStartingHook(nil) })

	cfg := r.agentConfig(t, dev, rtsp.URL("pedestrians_pets09_s2l1_vtest"))
	for _, name := range []string{"mot15_tud_campus", "parking_lot_cars_intel"} {
		cam := cfg.Cameras[0]
		cam.ID, cam.URL = name, rtsp.URL(name)
		cfg.Cameras = append(cfg.Cameras, cam)
	}
	startAgent(t, cfg)
	waitFor(t, 90*time.Second, "the update's active result", func() bool { return result(wire.CmdActive) })
	// From the result on, every camera's detections come from 9.0.0.
	mark := len(col.get(wire.KindDetections))
	waitFor(t, 60*time.Second, "9.0.0 detections from every camera", func() bool {
		seen := map[string]bool{}
		for _, b := range col.get(wire.KindDetections)[mark:] {
			var d wire.Detections
			if json.Unmarshal(b, &d) == nil && d.Model.Version == "9.0.0" {
				seen[d.Camera] = true
			}
		}
		return len(seen) == len(cfg.Cameras)
	})
}

// TestCheckConfigChecksTheFilesSettingsName: check-config (which passed these before) names a
// model manifest that does not exist, a camera model whose file is missing and an MQTT CA
// file that holds no certificate.
func TestCheckConfigChecksTheFilesSettingsName(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	cfg := writeYAML(t, fmt.Sprintf(`device_id: d
model: {manifest: %q}
mqtt: {url: "ssl://127.0.0.1:8883", tls: {ca_file: %q}}
cameras:
  - {id: c1, url: "rtsp://127.0.0.1/x"}
  - {id: c2, url: "rtsp://127.0.0.1/y", model: {manifest: %q, dir: %q, threads: 1}}
`, filepath.Join(dir, "missing.json"), notPEM, filepath.Join(testharness.RepoRoot(), "models", "yolox_nano_coco_416.json"), dir))
	var out, errb strings.Builder
	code := agent.Main([]string{"check-config", "--config", cfg}, &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stdout %q stderr %q", code, out.String(), errb.String())
	}
	for _, key := range []string{"'model.manifest'", "'cameras[1].model.dir'", "'mqtt.tls'"} {
		if !strings.Contains(errb.String(), key) {
			t.Errorf("stderr names no %s:\n%s%s", key, errb.String(), out.String())
		}
	}
}
