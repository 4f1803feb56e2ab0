package agent_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/fleet/catalog"
	"github.com/vigil-edge/vigil/fleet/rollout"
	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// otaRig is vigil-fleet with its model registry and rollout engine, plus agents pinned to its key.
type otaRig struct {
	core    *fleet.Core
	dataDir string
	key     ed25519.PrivateKey
	broker  string
}

func startFleetWithOTA(t *testing.T) *otaRig {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = pub
	dataDir := t.TempDir()
	core, err := fleet.New(fleet.Config{MQTTListen: fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t)), HTTPListen: "127.0.0.1:0",
		OTA: fleet.OTAConfig{DataDir: dataDir, SigningKey: key, Tick: 100 * time.Millisecond}})
	if err != nil {
		t.Fatalf("fleet: %v", err)
	}
	t.Cleanup(func() { core.Close() })
	return &otaRig{core: core, dataDir: dataDir, key: key, broker: "tcp://" + core.BrokerAddr()}
}

// addModel registers the shared YOLOX model file under version v, with the shipped manifest's
// input, labels and thresholds (or a broken copy of them via edit).
func (r *otaRig) addModel(t *testing.T, v string, file string, edit func(*models.Manifest)) {
	t.Helper()
	base, err := models.LoadManifest(filepath.Join(testharness.RepoRoot(), "models", "yolox_nano_coco_416.json"))
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&base)
	}
	if _, err := r.core.Models().Add(file, catalog.AddSpec{Name: "yolox_nano_coco_416", Version: v, Family: "yolox", Base: &base}, r.key); err != nil {
		t.Fatalf("add model %s: %v", v, err)
	}
}

func (r *otaRig) agentConfig(t *testing.T, id, rtspURL string) config.Config {
	cfg := baseConfig(t, r.broker, config.Camera{ID: "pets", URL: rtspURL})
	cfg.DeviceID = id
	cfg.OTA.FleetKey = base64.StdEncoding.EncodeToString(r.key.Public().(ed25519.PublicKey))
	cfg.OTA.StoreDir = filepath.Join(t.TempDir(), "models")
	cfg.Telemetry.Interval = time.Second
	return cfg
}

func waitRollout(t *testing.T, e fleet.Rollouts, id string, timeout time.Duration, states ...string) rollout.Rollout {
	t.Helper()
	var ro rollout.Rollout
	waitFor(t, timeout, "rollout state "+strings.Join(states, " or "), func() bool {
		ro, _ = e.Get(id)
		for _, s := range states {
			if ro.State == s {
				return true
			}
		}
		return false
	})
	return ro
}

// modelVersions returns, per device, the model versions seen in its detections messages.
func modelVersions(t *testing.T, col *collector) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, b := range col.get(wire.KindDetections) {
		var d wire.Detections
		if json.Unmarshal(b, &d) != nil {
			continue
		}
		if out[d.DeviceID] == nil {
			out[d.DeviceID] = map[string]int{}
		}
		out[d.DeviceID][d.Model.Version]++
	}
	return out
}

func TestCanaryRolloutToThreeAgentsWhileStreaming(t *testing.T) {
	rtsp := startRTSP(t, "", "", petsClip)
	r := startFleetWithOTA(t)
	modelFile := data.MustPath(t, "models/yolox_nano_coco_416.onnx")
	r.addModel(t, "2.0.0", modelFile, nil)
	col := subscribe(t, r.broker)
	devices := []string{"edge-a", "edge-b", "edge-c"}
	var agents []*runningAgent
	for _, id := range devices {
		agents = append(agents, startAgent(t, r.agentConfig(t, id, rtsp.URL("pedestrians_pets09_s2l1_vtest"))))
	}
	waitFor(t, 60*time.Second, "detections and telemetry from the three agents", func() bool {
		v := modelVersions(t, col)
		return len(v) == 3 && len(col.get(wire.KindTelemetry)) >= 6
	})

	ro, err := r.core.Rollouts().Create(rollout.Spec{Model: "yolox_nano_coco_416@2.0.0", Devices: strings.Join(devices, ","),
		Canary: 1, Waves: []float64{100}, HealthWindow: rollout.Duration(2 * time.Second), MinDetectionRatio: 0.2})
	if err != nil {
		t.Fatalf("create rollout: %v", err)
	}
	done := waitRollout(t, r.core.Rollouts(), ro.ID, 120*time.Second, rollout.StateComplete, rollout.StateRolledBack, rollout.StateAborted)
	if done.State != rollout.StateComplete {
		t.Fatalf("rollout ended %s: %s", done.State, done.Reason)
	}
	// Every agent now detects with the new model, and its stream never stopped.
	waitFor(t, 30*time.Second, "detections made by 2.0.0 on every agent", func() bool {
		v := modelVersions(t, col)
		for _, id := range devices {
			if v[id]["2.0.0"] == 0 {
				return false
			}
		}
		return true
	})
	for i, a := range agents {
		st := a.Status().Cameras[0]
		if st.Reconnects != 0 || st.State != "streaming" {
			t.Errorf("%s: camera %+v: the stream was interrupted by the update", devices[i], st)
		}
	}
	// The progress reports went through accepted … active, and validate as JSON.
	states := map[string]bool{}
	for _, b := range col.get(wire.KindCmdResult) {
		var res wire.CmdResult
		json.Unmarshal(b, &res)
		states[res.State] = true
	}
	for _, s := range []string{wire.CmdAccepted, wire.CmdDownloading, wire.CmdActive} {
		if !states[s] {
			t.Errorf("no %q progress report among %v", s, states)
		}
	}
}

func TestBadModelsAreRefusedAndRolledBack(t *testing.T) {
	rtsp := startRTSP(t, "", "", petsClip)
	r := startFleetWithOTA(t)
	// 3.0.0 fails its self-test on the device: the manifest says 320x320, the model is 416.
	r.addModel(t, "3.0.0", data.MustPath(t, "models/yolox_nano_coco_416.onnx"), func(m *models.Manifest) {
		m.Input.Width, m.Input.Height = 320, 320
	})
	col := subscribe(t, r.broker)
	a := startAgent(t, r.agentConfig(t, "edge-x", rtsp.URL("pedestrians_pets09_s2l1_vtest")))
	waitFor(t, 60*time.Second, "detections", func() bool { return len(modelVersions(t, col)["edge-x"]) > 0 })

	ro, err := r.core.Rollouts().Create(rollout.Spec{Model: "yolox_nano_coco_416@3.0.0", Devices: "edge-x", Canary: 1,
		HealthWindow: rollout.Duration(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	done := waitRollout(t, r.core.Rollouts(), ro.ID, 90*time.Second, rollout.StateComplete, rollout.StateRolledBack, rollout.StateAborted)
	if done.State != rollout.StateRolledBack {
		t.Fatalf("rollout of a model that fails its self-test ended %s", done.State)
	}
	failed := false
	for _, b := range col.get(wire.KindCmdResult) {
		var res wire.CmdResult
		json.Unmarshal(b, &res)
		failed = failed || (res.State == wire.CmdFailed && res.Reason != "")
	}
	if !failed {
		t.Error("the device never reported the failure with a reason")
	}
	// It keeps running the old model.
	time.Sleep(time.Second)
	before := modelVersions(t, col)["edge-x"]["2.0.0"] + modelVersions(t, col)["edge-x"]["3.0.0"]
	if before != 0 {
		t.Errorf("the device ran a refused model: %v", modelVersions(t, col)["edge-x"])
	}
	if st := a.Status().Cameras[0]; st.State != "streaming" {
		t.Errorf("camera after the refused update: %+v", st)
	}

	// A corrupted artifact is refused by the fleet itself: it never reaches a device.
	dir := t.TempDir()
	orig, _ := os.ReadFile(data.MustPath(t, "models/yolox_nano_coco_416.onnx"))
	bad := filepath.Join(dir, "yolox_nano_coco_416.onnx")
	os.WriteFile(bad, orig, 0o644)
	r.addModel(t, "4.0.0", bad, nil)
	m, err := r.core.Models().Get("yolox_nano_coco_416", "4.0.0")
	if err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(r.dataDir, "models", "yolox_nano_coco_416", "4.0.0", filepath.Base(m.File))
	b, _ := os.ReadFile(art)
	b[len(b)/2] ^= 0xff
	os.WriteFile(art, b, 0o644)
	if _, err := r.core.Rollouts().Create(rollout.Spec{Model: "yolox_nano_coco_416@4.0.0", Devices: "edge-x", Canary: 1}); err == nil {
		t.Error("a rollout of a corrupted artifact was accepted")
	}
}
