package fleet_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/internal/testpub"
	"github.com/vigil-edge/vigil/fleet/registry"
	"github.com/vigil-edge/vigil/testvideos/testharness"
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
	first := p.Detections("cam1", "person", "person", "car")
	p.Detections("cam1", "person")
	p.DetectionsSeq("cam1", first, false, "person", "person", "car") // a redelivery: counted once
	p.Detections("cam1", "car")
	p.Detections("cam2", "dog")

	d := waitDetections(t, base, "edge-01", "cam2", 1)
	d = waitDetections(t, base, "edge-01", "cam1", 3)
	if !d.Online || d.State != "online" || d.Version != "0.0.1-test" {
		t.Errorf("device %+v: want online, version 0.0.1-test", d)
	}
	if d.Duplicates != 1 || d.Messages["detections"] != 4 || d.Messages["status"] != 1 {
		t.Errorf("duplicates=%d messages=%v, want 1 and detections:4 status:1", d.Duplicates, d.Messages)
	}
	if d.Epoch != p.Epoch || d.HighestSeq != 4 || d.Watermark != 4 || d.Missing != 0 || d.Lost != 0 {
		t.Errorf("stream: epoch %q highest %d watermark %d missing %d lost %d; want %q 4 4 0 0",
			d.Epoch, d.HighestSeq, d.Watermark, d.Missing, d.Lost, p.Epoch)
	}
	if len(d.Cameras) != 2 || d.Cameras[0].ID != "cam1" || d.Cameras[1].ID != "cam2" {
		t.Fatalf("cameras %+v", d.Cameras)
	}
	if got := fmt.Sprint(d.Cameras[0].Objects); got != "map[car:2 person:3]" {
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
	m := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
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
	p.Detections("cam1", "person") // seq 1 of a new publisher: a new outbox epoch
	d := waitDetections(t, base, "edge-01", "cam1", 4)
	if !d.Online || d.Cameras[0].Objects["person"] != 4 || d.EpochChanges != 1 || d.Epoch != p.Epoch || d.Watermark != 1 {
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
	port := testharness.FreePort(t) // nothing listens there
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

// clock is a settable clock for the registry, safe for concurrent use.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }

// scrapeMetrics fetches /metrics.
func scrapeMetrics(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// TestStoreAndForward plays an agent's outbox through the embedded broker: seqs 1..200, with
// a reconnect after 100 whose backlog (101..120) is replayed interleaved with live messages,
// repeats of some seqs, and seq 110 never sent. The API and /metrics show the repeats once,
// the hole as missing, and after the gap timeout as lost.
func TestStoreAndForward(t *testing.T) {
	const gapTimeout = time.Minute
	clk := newClock(time.Unix(1700000000, 0))
	c := start(t, fleet.Config{MQTTListen: "127.0.0.1:0", Registry: registry.Options{GapTimeout: gapTimeout, Now: clk.now}})
	base := "http://" + c.HTTPAddr()
	waitHealth(t, base, http.StatusOK)

	p := testpub.Connect(t, "tcp://"+c.BrokerAddr(), "edge-05-a") // a device id with '-' in it
	p.Online()
	for seq := uint64(1); seq <= 100; seq++ {
		p.DetectionsSeq("cam1", seq, false, "person")
	}
	// Reconnected: the backlog 101..120 goes out replayed, between live messages from 121 on.
	for i := uint64(0); i < 80; i++ {
		p.DetectionsSeq("cam1", 121+i, false, "person")
		if backlog := 101 + i; backlog <= 120 && backlog != 110 {
			p.DetectionsSeq("cam1", backlog, true, "person")
		}
	}
	for seq := uint64(50); seq <= 54; seq++ { // a replay of what had arrived already
		p.DetectionsSeq("cam1", seq, true, "person")
	}
	p.DetectionsSeq("cam1", 200, false, "person") // a redelivery of a live one

	var d api.Device
	eventually(t, "199 detections and 6 duplicates", func() (bool, string) {
		d, _ = device(t, base, p.Device)
		return len(d.Cameras) == 1 && d.Cameras[0].Detections == 199 && d.Duplicates == 6, fmt.Sprintf("%+v", d)
	})
	if d.Epoch != p.Epoch || d.HighestSeq != 200 || d.Watermark != 109 || d.Missing != 1 || d.Lost != 0 ||
		d.Replayed != 24 || d.Messages["detections"] != 199 || d.Cameras[0].Objects["person"] != 199 {
		t.Errorf("before the gap timeout: %+v", d)
	}
	exp := scrapeMetrics(t, base)
	testharness.LintMetrics(t, exp)
	for _, w := range []struct {
		name, labels string
		want         float64
	}{
		{"vigil_fleet_messages_received_total", `kind="detections"`, 205},
		{"vigil_fleet_duplicates_total", "", 6},
		{"vigil_fleet_replayed_total", "", 24},
		{"vigil_fleet_seq_missing", "", 1},
		{"vigil_fleet_seq_lost_total", "", 0},
		{"vigil_fleet_devices_with_gaps", "", 1},
		{"vigil_fleet_devices", `state="online"`, 1},
		{"vigil_fleet_mqtt_connected", "", 1},
	} {
		if v, ok := testharness.MetricValue(exp, w.name, w.labels); !ok || v != w.want {
			t.Errorf("%s{%s} = %v (present %v), want %v", w.name, w.labels, v, ok, w.want)
		}
	}

	// Seq 110 never comes: once it has been missing for the gap timeout it is lost.
	clk.add(gapTimeout)
	d, _ = device(t, base, p.Device)
	if d.Missing != 0 || d.Lost != 1 || d.Watermark != 200 || d.HighestSeq != 200 {
		t.Errorf("after the gap timeout: missing %d lost %d watermark %d highest %d, want 0 1 200 200", d.Missing, d.Lost, d.Watermark, d.HighestSeq)
	}
	exp = scrapeMetrics(t, base)
	testharness.LintMetrics(t, exp)
	if v, _ := testharness.MetricValue(exp, "vigil_fleet_seq_lost_total", ""); v != 1 {
		t.Errorf("vigil_fleet_seq_lost_total %v, want 1", v)
	}
	if v, _ := testharness.MetricValue(exp, "vigil_fleet_seq_missing", ""); v != 0 {
		t.Errorf("vigil_fleet_seq_missing %v, want 0", v)
	}
}
