package web_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/fleet/auth"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

const (
	adminToken = "admin-token-for-the-dashboard-test"
	readToken  = "read-token-for-the-dashboard-test"
	devicePW   = "edge-07-password"
)

// startCore starts a fleet controller whose broker wants credentials (device edge-07) and
// whose API wants tokens.
func startCore(t *testing.T) *fleet.Core {
	t.Helper()
	h, err := auth.HashPasswordIterations(devicePW, 1000)
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(t.TempDir(), "credentials.yaml")
	if err := os.WriteFile(creds, []byte("devices:\n  edge-07: "+h+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens := &auth.Tokens{}
	if err := tokens.Add("ops", auth.RoleAdmin, adminToken); err != nil {
		t.Fatal(err)
	}
	if err := tokens.Add("wall", auth.RoleRead, readToken); err != nil {
		t.Fatal(err)
	}
	core, err := fleet.New(fleet.Config{
		MQTTListen:      fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t)),
		HTTPListen:      "127.0.0.1:0",
		ClientID:        "fleet-dashboard-test",
		MQTTCredentials: creds,
		APITokens:       tokens,
		Logger:          slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { core.Close() })
	return core
}

// device is edge-07, connected with its credentials.
type device struct {
	t   *testing.T
	c   paho.Client
	seq uint64
}

func connectDevice(t *testing.T, core *fleet.Core) *device {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + core.BrokerAddr()).SetClientID("edge-07").
		SetUsername("edge-07").SetPassword(devicePW).SetProtocolVersion(4).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return &device{t: t, c: c}
}

// asMap is a wire message as a JSON object, for device.publish to complete its header.
func asMap(v any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	return m
}

// eventMsg is a "new" event of a tracked object on camera gate, as the agent writes it.
func eventMsg(label string, track uint64) map[string]any {
	now := time.Now()
	return asMap(wire.EncodeEvent(wire.Header{}, frame.EventChange{Camera: "gate", Type: wire.EventNew, At: now,
		After: frame.EventState{ID: "01KAMX3Q8R0000000000000001", TrackID: track, Label: label, TopScore: 0.9, Score: 0.9,
			Start: now, LastSeen: now, FrameWidth: 640, FrameHeight: 480}}))
}

func (d *device) publish(topic string, retained bool, msg map[string]any) {
	d.t.Helper()
	d.seq++
	msg["device_id"] = "edge-07"
	msg["captured_at"] = time.Now().UnixMilli()
	if msg["schema"] != wire.SchemaStatus {
		msg["seq"] = d.seq
		msg["msg_id"] = fmt.Sprintf("edge-07-e1-%d", d.seq)
	} else {
		msg["seq"] = d.seq - 1
		msg["msg_id"] = "edge-07-e1-status"
		d.seq--
	}
	b, _ := json.Marshal(msg)
	if tok := d.c.Publish(topic, 1, retained, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		d.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func get(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPIAuth(t *testing.T) {
	core := startCore(t)
	base := "http://" + core.HTTPAddr()
	for _, tt := range []struct {
		method, path, token string
		code                int
	}{
		{"GET", "/healthz", "", 0}, // open; 200 or 503 while the subscriber connects
		{"GET", "/", "", 200},
		{"GET", "/static/app.js", "", 200},
		{"GET", "/api/v1/devices", "", 401},
		{"GET", "/api/v1/stream", "", 401},
		{"GET", "/metrics", "wrong-token-wrong-token", 401},
		{"GET", "/api/v1/devices", readToken, 200},
		{"POST", "/api/v1/devices", readToken, 403},
		{"POST", "/api/v1/devices", adminToken, 405}, // past auth, no such POST endpoint
	} {
		code, body := get(t, tt.method, base+tt.path, tt.token)
		if tt.code == 0 {
			if code != 200 && code != 503 || !strings.Contains(body, `"mqtt_auth"`) {
				t.Errorf("%s %s: %d %s, want the broker's auth counters", tt.method, tt.path, code, body)
			}
			continue
		}
		if code != tt.code {
			t.Errorf("%s %s (token %v): %d, want %d: %s", tt.method, tt.path, tt.token != "", code, tt.code, body)
		}
	}
}

// pageState is what the test reads of the dashboard's DOM.
type pageState struct {
	Devices  []string `json:"devices"`
	Events   []string `json:"events"`
	Live     string   `json:"live"`
	Rollouts string   `json:"rollouts"`
	Login    bool     `json:"login"`
	URL      string   `json:"url"`
}

const stateJS = `(() => {
  const $ = (id) => document.getElementById(id);
  if (!$('live') || !$('login') || !$('rollouts') || !$('events')) return {url: location.href}; // not loaded yet
  return {
    devices: [...document.querySelectorAll('#devices tr.device')].map(tr => tr.innerText),
    events: [...document.querySelectorAll('#events li.event')].map(li => li.innerText),
    live: $('live').textContent,
    rollouts: $('rollouts').innerText,
    login: !$('login').hidden,
    url: location.href,
  };
})()`

// waitPage polls the page until ok accepts its state.
func waitPage(t *testing.T, c *testharness.Page, what string, ok func(pageState) bool) pageState {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st pageState
		c.Eval(stateJS, &st)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard never showed %s; it shows %+v", what, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func anyContains(list []string, subs ...string) bool {
	for _, s := range list {
		all := true
		for _, sub := range subs {
			all = all && strings.Contains(s, sub)
		}
		if all {
			return true
		}
	}
	return false
}

func TestDashboardInChromium(t *testing.T) {
	core := startCore(t)
	base := "http://" + core.HTTPAddr()
	dev := connectDevice(t, core)
	dev.publish("vigil/v1/edge-07/status", true, map[string]any{"schema": wire.SchemaStatus, "state": "online", "version": "v0.9.1", "cameras": []string{"gate"}})
	dev.publish("vigil/v1/edge-07/telemetry", false, map[string]any{"schema": wire.SchemaTelemetry, "uptime_s": 12.5,
		"board": map[string]any{"cpu_temp_c": 51.0, "load1": 0.42},
		"model": map[string]any{"name": "yolox_nano", "version": "2.1.0", "sha256": ""}})
	// The registry has the device before the page loads.
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := get(t, "GET", base+"/api/v1/devices/edge-07", readToken)
		if code == 200 && strings.Contains(body, `"online": true`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("device not registered: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}

	c := testharness.StartChromium(t)
	c.Call("Page.navigate", map[string]any{"url": base + "/#token=" + readToken}, nil)
	st := waitPage(t, c, "the device, its model and a live stream", func(s pageState) bool {
		return anyContains(s.Devices, "edge-07", "online", "v0.9.1", "2.1.0", "51 °C") && s.Live == "stream: live"
	})
	if strings.Contains(st.URL, "token") {
		t.Errorf("the token stays in the address bar: %s", st.URL)
	}
	if st.Login {
		t.Error("the login form shows with a valid read-only token")
	}

	// A live event and alert, sent after the page subscribed.
	dev.publish("vigil/v1/edge-07/events/gate", false, eventMsg("person", 42))
	dev.publish("vigil/v1/edge-07/alerts/gate", false, asMap(wire.EncodeAlert(wire.Header{}, frame.Alert{Camera: "gate",
		RuleID: "square", RuleType: "crowding", Kind: "started", TrackIDs: []uint64{42}, Label: "person", At: time.Now(),
		ID: "01KAMX3Q8R0000000000000002"})))
	st = waitPage(t, c, "the live event and alert", func(s pageState) bool {
		return anyContains(s.Events, "edge-07/gate", "new", "person", "#42") && anyContains(s.Events, "alert", "crowding")
	})
	// Rollouts: "no rollouts" while GET /api/v1/rollouts does not exist, a list once it does;
	// never an error.
	st = waitPage(t, c, "the rollouts section", func(s pageState) bool { return s.Rollouts != "loading…" })
	if code, _ := get(t, "GET", base+"/api/v1/rollouts", readToken); code == 404 && st.Rollouts != "no rollouts" {
		t.Errorf("rollouts section %q, want \"no rollouts\"", st.Rollouts)
	}
	var errs int
	c.Eval(`document.querySelectorAll('#rollouts .error').length`, &errs)
	if errs != 0 {
		t.Errorf("rollouts section shows an error: %q", st.Rollouts)
	}

	var shot struct{ Data string }
	c.Call("Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	b, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard.png")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if r := img.Bounds(); r.Dx() < 400 || r.Dy() < 300 {
		t.Errorf("screenshot is %v", r)
	}
	if err := os.WriteFile("/tmp/vigil-dashboard.png", b, 0o644); err != nil {
		t.Logf("copy screenshot: %v", err)
	}

	// A wrong token shows the login form instead of data.
	c.Call("Page.navigate", map[string]any{"url": base + "/?again#token=not-a-valid-token-at-all"}, nil)
	waitPage(t, c, "the login form", func(s pageState) bool { return s.Login })
}
