package rollout_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/fleet/broker"
	"github.com/vigil-edge/vigil/fleet/catalog"
	"github.com/vigil-edge/vigil/fleet/rollout"
	vmodels "github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/data"
)

// clock is a settable clock for the engine; it starts at the real time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture is a broker that outlives the cores, a fleet key and a data folder holding
// yolox_nano@2.0.0.
type fixture struct {
	brokerURL string
	priv      ed25519.PrivateKey
	pub       ed25519.PublicKey
	dataDir   string
	model     catalog.Model
}

func logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	b, err := broker.New(broker.Config{Addr: "127.0.0.1:0", Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{brokerURL: b.URL(), priv: priv, pub: pub, dataDir: t.TempDir()}
	reg, err := catalog.Open(fx.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	base, err := vmodels.LoadManifest(filepath.Join("..", "..", "models", "yolox_nano_coco_416.json"))
	if err != nil {
		t.Fatal(err)
	}
	fx.model, err = reg.Add(data.MustPath(t, "models/yolox_nano_coco_416.onnx"),
		catalog.AddSpec{Name: "yolox_nano", Version: "2.0.0", Family: "yolox", Base: &base}, priv)
	if err != nil {
		t.Fatal(err)
	}
	return fx
}

// start starts a Core on the fixture's broker and data folder; clk nil uses the real clock.
// The returned stop closes it (also at the test's end, when not closed before).
func (fx *fixture) start(t *testing.T, clk *clock) (*fleet.Core, string, func()) {
	t.Helper()
	ota := fleet.OTAConfig{DataDir: fx.dataDir, SigningKey: fx.priv, Tick: 20 * time.Millisecond}
	if clk != nil {
		ota.Now = clk.Now
	}
	c, err := fleet.New(fleet.Config{Broker: fx.brokerURL, HTTPListen: "127.0.0.1:0", ClientID: "fleet-" + t.Name(),
		Logger: logger(), OTA: ota})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if err := c.Close(); err != nil {
				t.Errorf("close core: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	eventually(t, "rollout engine connected", func() (bool, string) { return c.Rollouts().Connected(), "" })
	return c, "http://" + c.HTTPAddr(), stop
}

// eventually polls cond until it is true or 20 s pass.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after 20s; last: %s", what, last)
		}
		time.Sleep(15 * time.Millisecond)
	}
}

func call(t *testing.T, method, url string, body any, want int, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode: %v: %s", method, url, err, b)
		}
	}
}

func get(t *testing.T, base, id string) rollout.Rollout {
	t.Helper()
	var r rollout.Rollout
	call(t, http.MethodGet, base+"/api/v1/rollouts/"+id, nil, http.StatusOK, &r)
	return r
}

func waitState(t *testing.T, base, id string, cond func(rollout.Rollout) bool) rollout.Rollout {
	t.Helper()
	var r rollout.Rollout
	eventually(t, "rollout "+id, func() (bool, string) {
		r = get(t, base, id)
		b, _ := json.Marshal(r)
		return cond(r), string(b)
	})
	return r
}

func ended(r rollout.Rollout) bool { return r.Done() }

// waitTelemetry waits until the registry counts n telemetry reports of each device, so
// that the engine (subscribed before the agents started) has seen their rate before updates.
func waitTelemetry(t *testing.T, c *fleet.Core, n uint64, ids ...string) {
	t.Helper()
	for _, id := range ids {
		eventually(t, id+" telemetry", func() (bool, string) {
			d, ok := c.Registry().Device(id)
			return ok && d.Messages["telemetry"] >= n, fmt.Sprintf("%+v", d.Messages)
		})
	}
}

func device(r rollout.Rollout, id string) rollout.DeviceProgress {
	for _, d := range r.Devices {
		if d.ID == id {
			return d
		}
	}
	return rollout.DeviceProgress{}
}

func TestCanaryThenWavesComplete(t *testing.T) {
	fx := newFixture(t)
	c, base, _ := fx.start(t, nil)
	ids := []string{"edge-a", "edge-b", "edge-c"}
	agents := map[string]*agent{}
	for _, id := range ids {
		agents[id] = newAgent(t, fx.brokerURL, id, fx.pub, nil)
	}
	waitTelemetry(t, c, 3, ids...)

	var r rollout.Rollout
	call(t, http.MethodPost, base+"/api/v1/rollouts", rollout.Spec{Model: "yolox_nano@2.0.0", Devices: "all", Canary: 1,
		Waves: []float64{50, 100}, HealthWindow: rollout.Duration(300 * time.Millisecond)}, http.StatusCreated, &r)
	if r.State != rollout.StatePending || fmt.Sprint(r.Bounds) != "[1 2 3]" || len(r.Devices) != 3 || r.Devices[0].ID != "edge-a" {
		t.Fatalf("created %+v", r)
	}
	r = waitState(t, base, r.ID, ended)
	if r.State != rollout.StateComplete {
		t.Fatalf("state %s (%s), want complete", r.State, r.Reason)
	}
	var sent []time.Time
	for i, id := range ids {
		d := device(r, id)
		if d.State != rollout.DeviceActive || d.Step != i || d.PostSamples == 0 || d.BaselineSamples == 0 || d.Baseline != 10 {
			t.Errorf("device %+v", d)
		}
		if d.PrevModel == nil || *d.PrevModel != oldModel {
			t.Errorf("%s prev model %+v", id, d.PrevModel)
		}
		a := agents[id]
		ups := a.commands(wire.CmdModelUpdate)
		if len(ups) != 1 || len(a.commands(wire.CmdModelRollback)) != 0 || a.rejected != 0 {
			t.Fatalf("%s: updates %+v, rollbacks %d, rejected %d", id, ups, len(a.commands(wire.CmdModelRollback)), a.rejected)
		}
		ref := fx.model.Ref("http://" + c.HTTPAddr())
		if u := ups[0]; u.RolloutID != r.ID || u.Model == nil || *u.Model != ref || u.ExpiresAt <= u.IssuedAt {
			t.Errorf("%s: command %+v, want model %+v", id, u, ref)
		}
		if got := a.running(); got.Version != "2.0.0" {
			t.Errorf("%s runs %+v", id, got)
		}
		sent = append(sent, d.SentAt)
	}
	// The canary goes first and its health window passes before the first wave.
	if !sent[1].After(device(r, "edge-a").ActiveAt.Add(300 * time.Millisecond)) {
		t.Errorf("wave 1 sent at %v, before the canary's window ended (active at %v)", sent[1], device(r, "edge-a").ActiveAt)
	}

	var list []rollout.Rollout
	call(t, http.MethodGet, base+"/api/v1/rollouts", nil, http.StatusOK, &list)
	if len(list) != 1 || list[0].ID != r.ID {
		t.Errorf("list %+v", list)
	}
	// The devices are free again: a second rollout of them is accepted; a busy one is refused.
	var r2 rollout.Rollout
	call(t, http.MethodPost, base+"/api/v1/rollouts", rollout.Spec{Model: "yolox_nano@2.0.0", Devices: "edge-a", Canary: 1,
		HealthWindow: rollout.Duration(time.Hour)}, http.StatusCreated, &r2)
	call(t, http.MethodPost, base+"/api/v1/rollouts", rollout.Spec{Model: "yolox_nano@2.0.0", Devices: "edge-a,edge-b", Canary: 1},
		http.StatusConflict, nil)
	call(t, http.MethodPost, base+"/api/v1/rollouts/"+r2.ID+"/abort", nil, http.StatusOK, nil)
}

func TestFailedDeviceRollsBack(t *testing.T) {
	fx := newFixture(t)
	c, base, _ := fx.start(t, nil)
	a := newAgent(t, fx.brokerURL, "edge-a", fx.pub, nil)
	b := newAgent(t, fx.brokerURL, "edge-b", fx.pub, func(a *agent) { a.failUpdate = true })
	cc := newAgent(t, fx.brokerURL, "edge-c", fx.pub, nil)
	waitTelemetry(t, c, 2, "edge-a", "edge-b", "edge-c")

	var r rollout.Rollout
	call(t, http.MethodPost, base+"/api/v1/rollouts", rollout.Spec{Model: "yolox_nano@2.0.0", Devices: "edge-a,edge-b,edge-c",
		Canary: 1, HealthWindow: rollout.Duration(200 * time.Millisecond)}, http.StatusCreated, &r)
	r = waitState(t, base, r.ID, ended)
	if r.State != rollout.StateRolledBack || !strings.Contains(r.Reason, "edge-b") || !strings.Contains(r.Reason, "sha256 mismatch") {
		t.Fatalf("state %s reason %q, want rolled_back because of edge-b", r.State, r.Reason)
	}
	// Everyone that took the new model gets it taken back (edge-c may report active after the
	// failure: the engine then rolls it back at once); edge-b never switched.
	for _, ag := range []*agent{a, cc} {
		eventually(t, ag.id+" rolled back", func() (bool, string) {
			rb := ag.commands(wire.CmdModelRollback)
			return len(rb) == 1 && rb[0].RolloutID == r.ID && ag.running() == oldModel, fmt.Sprintf("%+v %+v", rb, ag.running())
		})
		if rb := ag.commands(wire.CmdModelRollback)[0]; rb.Model == nil || rb.Model.Version != oldModel.Version {
			t.Errorf("%s: rollback names %+v, want the previous model", ag.id, rb.Model)
		}
	}
	if n := len(b.commands(wire.CmdModelRollback)); n != 0 {
		t.Errorf("edge-b got %d rollbacks; it never switched", n)
	}
	r = waitState(t, base, r.ID, func(r rollout.Rollout) bool {
		return device(r, "edge-a").State == rollout.DeviceRolledBack && device(r, "edge-c").State == rollout.DeviceRolledBack
	})
	if d := device(r, "edge-b"); d.State != rollout.DeviceFailed || d.Reason != "sha256 mismatch" {
		t.Errorf("edge-b %+v", d)
	}
}

func TestHealthGateRollsBack(t *testing.T) {
	fx := newFixture(t)
	c, base, _ := fx.start(t, nil)
	a := newAgent(t, fx.brokerURL, "edge-a", fx.pub, func(a *agent) { a.rateAfter = 0 })
	b := newAgent(t, fx.brokerURL, "edge-b", fx.pub, nil)
	waitTelemetry(t, c, 3, "edge-a", "edge-b")

	var r rollout.Rollout
	call(t, http.MethodPost, base+"/api/v1/rollouts", rollout.Spec{Model: "yolox_nano@2.0.0", Devices: "edge-a,edge-b",
		Canary: 1, HealthWindow: rollout.Duration(300 * time.Millisecond), MinDetectionRatio: 0.5}, http.StatusCreated, &r)
	r = waitState(t, base, r.ID, ended)
	if r.State != rollout.StateRolledBack || !strings.Contains(r.Reason, "detections_per_s") {
		t.Fatalf("state %s reason %q, want rolled_back by the detection gate", r.State, r.Reason)
	}
	if d := device(r, "edge-a"); d.BaselineSamples == 0 || d.Baseline != 10 || d.PostSamples == 0 || d.PostRate() != 0 {
		t.Errorf("canary %+v", d)
	}
	eventually(t, "canary rolled back", func() (bool, string) {
		return len(a.commands(wire.CmdModelRollback)) == 1 && a.running() == oldModel, fmt.Sprint(a.running())
	})
	if n := len(b.commands(wire.CmdModelUpdate)); n != 0 {
		t.Errorf("edge-b got %d updates; the canary failed first", n)
	}
}

func TestPauseResumeAndRestart(t *testing.T) {
	fx := newFixture(t)
	clk := &clock{t: time.Now()}
	c, base, stop := fx.start(t, clk)
	a := newAgent(t, fx.brokerURL, "edge-a", fx.pub, nil)
	b := newAgent(t, fx.brokerURL, "edge-b", fx.pub, nil)
	waitTelemetry(t, c, 2, "edge-a", "edge-b")

	var r rollout.Rollout
	call(t, http.MethodPost, base+"/api/v1/rollouts", rollout.Spec{Model: "yolox_nano@2.0.0", Devices: "edge-a,edge-b",
		Canary: 1, HealthWindow: rollout.Duration(time.Minute)}, http.StatusCreated, &r)
	// The engine's clock stands still: the canary's window cannot end until the test moves it.
	r = waitState(t, base, r.ID, func(r rollout.Rollout) bool {
		return r.Phase == rollout.PhaseObserving && device(r, "edge-a").PostSamples > 0
	})
	if r.State != rollout.StateCanary || r.Step != 0 {
		t.Fatalf("rollout %+v", r)
	}
	call(t, http.MethodPost, base+"/api/v1/rollouts/"+r.ID+"/pause", nil, http.StatusOK, &r)
	if r.State != rollout.StatePaused {
		t.Fatalf("after pause: %s", r.State)
	}
	call(t, http.MethodPost, base+"/api/v1/rollouts/"+r.ID+"/pause", nil, http.StatusConflict, nil)
	clk.Advance(2 * time.Minute) // past the window: a paused rollout does not move
	paused := get(t, base, r.ID)
	waitState(t, base, r.ID, func(x rollout.Rollout) bool { return x.UpdatedAt.After(paused.UpdatedAt) }) // telemetry went on
	if x := get(t, base, r.ID); x.State != rollout.StatePaused || x.Step != 0 || len(b.commands(wire.CmdModelUpdate)) != 0 {
		t.Fatalf("paused rollout moved: %+v", x)
	}

	// Restart the controller: the rollout comes back as it was.
	stop()
	c, base, stop = fx.start(t, clk)
	r2 := get(t, base, r.ID)
	if r2.State != rollout.StatePaused || r2.Step != 0 || r2.Phase != rollout.PhaseObserving ||
		device(r2, "edge-a").State != rollout.DeviceActive || device(r2, "edge-a").Baseline != 10 || r2.Model != r.Model {
		t.Fatalf("after restart: %+v", r2)
	}

	call(t, http.MethodPost, base+"/api/v1/rollouts/"+r.ID+"/resume", nil, http.StatusOK, &r)
	if r.State != rollout.StateCanary || !r.ObserveUntil.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("after resume: state %s, window until %v (now %v)", r.State, r.ObserveUntil, clk.Now())
	}
	clk.Advance(61 * time.Second)
	r = waitState(t, base, r.ID, func(r rollout.Rollout) bool {
		return r.Step == 1 && r.Phase == rollout.PhaseObserving && device(r, "edge-b").PostSamples > 0
	})
	clk.Advance(61 * time.Second)
	r = waitState(t, base, r.ID, ended)
	if r.State != rollout.StateComplete || len(b.commands(wire.CmdModelUpdate)) != 1 || len(a.commands(wire.CmdModelUpdate)) != 1 {
		t.Fatalf("state %s (%s); updates a=%d b=%d", r.State, r.Reason, len(a.commands(wire.CmdModelUpdate)), len(b.commands(wire.CmdModelUpdate)))
	}
	_ = c
	call(t, http.MethodPost, base+"/api/v1/rollouts/"+r.ID+"/resume", nil, http.StatusConflict, nil)
	call(t, http.MethodPost, base+"/api/v1/rollouts/nope/abort", nil, http.StatusNotFound, nil)
}

func TestActiveTimeoutAndAbort(t *testing.T) {
	fx := newFixture(t)
	clk := &clock{t: time.Now()}
	_, base, _ := fx.start(t, clk)
	// edge-z never answers: no agent.
	var r rollout.Rollout
	call(t, http.MethodPost, base+"/api/v1/rollouts", rollout.Spec{Model: "yolox_nano@2.0.0", Devices: "edge-z",
		Canary: 1, ActiveTimeout: rollout.Duration(30 * time.Second)}, http.StatusCreated, &r)
	waitState(t, base, r.ID, func(r rollout.Rollout) bool { return device(r, "edge-z").State == rollout.DeviceSent })
	clk.Advance(31 * time.Second)
	r = waitState(t, base, r.ID, ended)
	if r.State != rollout.StateRolledBack || !strings.Contains(r.Reason, "did not report active") {
		t.Fatalf("state %s reason %q", r.State, r.Reason)
	}

	a := newAgent(t, fx.brokerURL, "edge-a", fx.pub, nil)
	call(t, http.MethodPost, base+"/api/v1/rollouts", rollout.Spec{Model: "yolox_nano@2.0.0", Devices: "edge-a",
		Canary: 1, HealthWindow: rollout.Duration(time.Hour)}, http.StatusCreated, &r)
	waitState(t, base, r.ID, func(r rollout.Rollout) bool { return r.Phase == rollout.PhaseObserving })
	call(t, http.MethodPost, base+"/api/v1/rollouts/"+r.ID+"/abort", nil, http.StatusOK, &r)
	if r.State != rollout.StateAborted {
		t.Fatalf("after abort: %s", r.State)
	}
	eventually(t, "aborted canary rolled back", func() (bool, string) {
		return a.running() == oldModel && len(a.commands(wire.CmdModelRollback)) == 1, fmt.Sprint(a.running())
	})
}

func TestCreateErrors(t *testing.T) {
	fx := newFixture(t)
	_, base, _ := fx.start(t, nil)
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"model":"yolox_nano@9","devices":"a","canary":1}`, http.StatusBadRequest},       // unknown model
		{`{"model":"yolox_nano","devices":"a","canary":1}`, http.StatusBadRequest},         // no version
		{`{"model":"yolox_nano@2.0.0","devices":"a","canary":0}`, http.StatusBadRequest},   // no canary
		{`{"model":"yolox_nano@2.0.0","devices":"a/b","canary":1}`, http.StatusBadRequest}, // bad id
		{`{"model":"yolox_nano@2.0.0","devices":"a","canary":1,"waves":[50]}`, http.StatusBadRequest},
		{`{"model":"yolox_nano@2.0.0","devices":"all","canary":1}`, http.StatusBadRequest}, // no device known
		{`{"model":"yolox_nano@2.0.0","devices":"a","canary":1,"bogus":1}`, http.StatusBadRequest},
		{`{"model":"yolox_nano@2.0.0","devices":"a","canary":1,"health_window":"soon"}`, http.StatusBadRequest},
	} {
		resp, err := http.Post(base+"/api/v1/rollouts", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.body, resp.StatusCode, b, tc.want)
		}
	}
	// A model whose artifact changed on disk is refused and marked bad.
	p := filepath.Join(fx.dataDir, "models", "yolox_nano", "2.0.0", fx.model.File)
	if err := os.WriteFile(p, []byte("not the model"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(base+"/api/v1/rollouts", "application/json",
		strings.NewReader(`{"model":"yolox_nano@2.0.0","devices":"a","canary":1}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "bad") {
		t.Errorf("corrupt model: %d %s", resp.StatusCode, b)
	}
	var ms []map[string]any
	call(t, http.MethodGet, base+"/api/v1/models", nil, http.StatusOK, &ms)
	if len(ms) != 1 || ms[0]["bad"] != true {
		t.Errorf("models %+v", ms)
	}
}

func TestBusyDeviceGetsTheUpdateAgain(t *testing.T) {
	fx := newFixture(t)
	clk := &clock{t: time.Now()}
	c, base, _ := fx.start(t, clk)
	a := newAgent(t, fx.brokerURL, "edge-a", fx.pub, func(a *agent) { a.busyOnce = true })
	waitTelemetry(t, c, 1, "edge-a")
	var r rollout.Rollout
	call(t, http.MethodPost, base+"/api/v1/rollouts", rollout.Spec{Model: "yolox_nano@2.0.0", Devices: "edge-a",
		Canary: 1, HealthWindow: rollout.Duration(time.Minute)}, http.StatusCreated, &r)
	r = waitState(t, base, r.ID, func(r rollout.Rollout) bool { return strings.HasPrefix(device(r, "edge-a").Reason, "busy") })
	if d := device(r, "edge-a"); d.State != rollout.DeviceWaiting || r.State != rollout.StateCanary {
		t.Fatalf("after busy: rollout %s, device %+v", r.State, d)
	}
	clk.Advance(6 * time.Second)
	waitState(t, base, r.ID, func(r rollout.Rollout) bool { return device(r, "edge-a").PostSamples > 0 })
	clk.Advance(time.Minute)
	r = waitState(t, base, r.ID, ended)
	ups := a.commands(wire.CmdModelUpdate)
	if r.State != rollout.StateComplete || len(ups) != 2 || ups[0].ID != ups[1].ID {
		t.Fatalf("state %s (%s), updates %+v", r.State, r.Reason, ups)
	}
}
