package fleet_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/internal/testpub"
	"github.com/vigil-edge/vigil/testvideos/harness"
)

func logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func start(t *testing.T, cfg fleet.Config) *fleet.Core {
	t.Helper()
	if cfg.HTTPListen == "" {
		cfg.HTTPListen = "127.0.0.1:0"
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "vigil-fleet-" + t.Name()
	}
	cfg.Logger = logger()
	c, err := fleet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return c
}

// get fetches url and decodes its JSON body into v; it returns the status code.
func get(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: content type %q", url, ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: decode: %v", url, err)
	}
	return resp.StatusCode
}

// eventually polls cond until it is true or 15 s pass; then it fails with cond's last words.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after 15s; last: %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitHealth(t *testing.T, base string, wantCode int) api.Health {
	t.Helper()
	var h api.Health
	eventually(t, fmt.Sprintf("healthz %d", wantCode), func() (bool, string) {
		h = api.Health{}
		code := get(t, base+"/healthz", &h)
		return code == wantCode, fmt.Sprintf("%d %+v", code, h)
	})
	return h
}

func device(t *testing.T, base, id string) (api.Device, int) {
	t.Helper()
	var d api.Device
	code := get(t, base+"/api/v1/devices/"+id, &d)
	return d, code
}

// waitDetections waits until the device's camera shows n detections messages.
func waitDetections(t *testing.T, base, dev, cam string, n uint64) api.Device {
	t.Helper()
	var d api.Device
	eventually(t, fmt.Sprintf("%s/%s has %d detections", dev, cam, n), func() (bool, string) {
		d, _ = device(t, base, dev)
		for _, c := range d.Cameras {
			if c.ID == cam && c.Detections == n {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", d)
	})
	return d
}

// exercise runs the agent story against a running core: online, detections with a repeat,
// then an unclean disconnect that makes the broker publish the offline will.
func exercise(t *testing.T, c *fleet.Core, brokerURL string) {
	base := "http://" + c.HTTPAddr()
	waitHealth(t, base, http.StatusOK)

	p := testpub.Connect(t, brokerURL, "edge-01")
	p.Online()
	p.Detections("cam1", "m1", "person", "person", "car")
	p.Detections("cam1", "m2", "person")
	p.Detections("cam1", "m1", "person", "person", "car") // a redelivery: counted once
	p.Detections("cam1", "m3")
	p.Detections("cam2", "m4", "dog")

	d := waitDetections(t, base, "edge-01", "cam2", 1)
	d = waitDetections(t, base, "edge-01", "cam1", 3)
	if !d.Online || d.State != "online" || d.Version != "0.0.1-test" {
		t.Errorf("device %+v: want online, version 0.0.1-test", d)
	}
	if d.Duplicates != 1 || d.Messages["detections"] != 4 || d.Messages["status"] != 1 {
		t.Errorf("duplicates=%d messages=%v, want 1 and detections:4 status:1", d.Duplicates, d.Messages)
	}
	if len(d.Cameras) != 2 || d.Cameras[0].ID != "cam1" || d.Cameras[1].ID != "cam2" {
		t.Fatalf("cameras %+v", d.Cameras)
	}
	if got := fmt.Sprint(d.Cameras[0].Objects); got != "map[car:1 person:3]" {
		t.Errorf("cam1 objects %s", got)
	}
	if d.Cameras[0].Rate <= 0 || d.Cameras[0].LastDetectionAt.IsZero() {
		t.Errorf("cam1 rate %v last detection %v: want > 0 and set", d.Cameras[0].Rate, d.Cameras[0].LastDetectionAt)
	}

	var list []api.Device
	if code := get(t, base+"/api/v1/devices", &list); code != http.StatusOK || len(list) != 1 || list[0].ID != "edge-01" {
		t.Errorf("devices: %d %+v", code, list)
	}

	p.Kill()
	eventually(t, "edge-01 offline after its connection dropped", func() (bool, string) {
		d, _ := device(t, base, "edge-01")
		return d.State == "offline" && !d.Online, fmt.Sprintf("%+v", d)
	})
}

func TestEmbeddedBroker(t *testing.T) {
	c := start(t, fleet.Config{MQTTListen: "127.0.0.1:0"})
	if c.BrokerAddr() == "" || c.BrokerAddr() == "127.0.0.1:0" {
		t.Fatalf("broker addr %q", c.BrokerAddr())
	}
	exercise(t, c, "tcp://"+c.BrokerAddr())
}

func TestExternalMosquitto(t *testing.T) {
	m := harness.StartMosquitto(t, harness.MosquittoOptions{})
	c := start(t, fleet.Config{Broker: m.URL})
	if c.BrokerAddr() != "" {
		t.Errorf("embedded broker running at %s with --broker", c.BrokerAddr())
	}
	exercise(t, c, m.URL)

	// The broker goes away: unhealthy. It comes back (without the old session, as it keeps no
	// state): healthy again, subscribed again, and new messages arrive.
	base := "http://" + c.HTTPAddr()
	m.Stop()
	var h api.Health
	eventually(t, "unhealthy with the reason", func() (bool, string) {
		h = api.Health{}
		code := get(t, base+"/healthz", &h)
		return code == http.StatusServiceUnavailable && h.MQTT.LastError != "", fmt.Sprintf("%d %+v", code, h)
	})
	if h.Status != "unavailable" || h.MQTT.Connected {
		t.Errorf("health while the broker is down: %+v", h)
	}
	m.Restart()
	h = waitHealth(t, base, http.StatusOK)
	if h.Status != "ok" || h.MQTT.Subscribes < 2 || h.Devices != 1 {
		t.Errorf("health after the broker came back: %+v", h)
	}
	p := testpub.Connect(t, m.URL, "edge-01")
	p.Online()
	p.Detections("cam1", "m10", "person")
	d := waitDetections(t, base, "edge-01", "cam1", 4)
	if !d.Online || d.Cameras[0].Objects["person"] != 4 {
		t.Errorf("after reconnect: %+v", d)
	}
}

func TestHealthAndNotFound(t *testing.T) {
	c := start(t, fleet.Config{MQTTListen: "127.0.0.1:0"})
	base := "http://" + c.HTTPAddr()
	h := waitHealth(t, base, http.StatusOK)
	if h.Status != "ok" || !h.MQTT.Connected || h.MQTT.Broker != "tcp://"+c.BrokerAddr() || h.Devices != 0 {
		t.Errorf("health %+v", h)
	}

	var e api.Error
	if code := get(t, base+"/api/v1/devices/nope", &e); code != http.StatusNotFound || e.Error != "unknown device nope" {
		t.Errorf("unknown device: %d %+v", code, e)
	}
	e = api.Error{}
	if code := get(t, base+"/api/v2/whatever", &e); code != http.StatusNotFound || e.Error == "" {
		t.Errorf("unknown path: %d %+v", code, e)
	}
	var list []api.Device
	if code := get(t, base+"/api/v1/devices", &list); code != http.StatusOK || list == nil || len(list) != 0 {
		t.Errorf("empty list: %d %#v", code, list)
	}

	// A bad message is counted by reason in the health body, and makes no device.
	p := testpub.Connect(t, "tcp://"+c.BrokerAddr(), "edge-02")
	p.Publish("vigil/v1/edge-02/status", []byte("{not json"), false)
	p.Publish("vigil/v1/edge-02/detections/cam1", []byte(`{"schema":"vigil.detections/1","device_id":"edge-99","msg_id":"x","camera":"cam1"}`), false)
	eventually(t, "two rejects counted", func() (bool, string) {
		h = api.Health{}
		get(t, base+"/healthz", &h)
		return h.Rejected["bad_json"] == 1 && h.Rejected["device_mismatch"] == 1, fmt.Sprintf("%+v", h)
	})
	if h.Devices != 0 || h.MQTT.Rejected != 2 {
		t.Errorf("health after rejects: %+v", h)
	}
}

func TestHealthUnavailableWithoutBroker(t *testing.T) {
	port := harness.FreePort(t) // nothing listens there
	c := start(t, fleet.Config{Broker: fmt.Sprintf("tcp://127.0.0.1:%d", port)})
	var h api.Health
	if code := get(t, "http://"+c.HTTPAddr()+"/healthz", &h); code != http.StatusServiceUnavailable || h.Status != "unavailable" || h.MQTT.Connected {
		t.Errorf("healthz %d %+v", code, h)
	}
}

func TestNewFailsOnBusyPort(t *testing.T) {
	c := start(t, fleet.Config{MQTTListen: "127.0.0.1:0"})
	_, err := fleet.New(fleet.Config{MQTTListen: c.BrokerAddr(), HTTPListen: "127.0.0.1:0", Logger: logger()})
	if err == nil {
		t.Fatal("a second broker on a busy port started")
	}
	_, err = fleet.New(fleet.Config{MQTTListen: "127.0.0.1:0", HTTPListen: c.HTTPAddr(), Logger: logger()})
	if err == nil {
		t.Fatal("a second API on a busy port started")
	}
}
