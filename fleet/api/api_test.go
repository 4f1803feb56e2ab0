package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/registry"
	"github.com/vigil-edge/vigil/fleet/subscriber"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

func TestJSONShape(t *testing.T) {
	reg := registry.New(registry.Options{})
	st := wire.Status{Header: wire.Header{Schema: wire.SchemaStatus, DeviceID: "d1", MsgID: "s1"}, State: "online", Version: "1.0", Cameras: []string{"cam1"}}
	b, _ := json.Marshal(st)
	if err := reg.HandleMessage(wire.Topic("d1", wire.KindStatus, ""), b); err != nil {
		t.Fatal(err)
	}
	// Seqs 1 and 3 of outbox epoch ab12: 2 is missing.
	for _, seq := range []uint64{1, 3} {
		det := wire.Detections{Header: wire.Header{Schema: wire.SchemaDetections, DeviceID: "d1", Seq: seq, MsgID: fmt.Sprint("d1-ab12-", seq)}, Camera: "cam2",
			FrameSeq: seq, FrameWidth: 640, FrameHeight: 480, Model: wire.Model{Name: "m"}, Objects: []wire.Object{{Label: "car", Score: 0.5}}}
		b, _ := json.Marshal(det)
		if err := reg.HandleMessage(wire.Topic("d1", wire.KindDetections, "cam2"), b); err != nil {
			t.Fatal(err)
		}
	}
	// A subscriber that was never started: a real one, not connected.
	sub, err := subscriber.New(subscriber.Config{BrokerURL: "tcp://127.0.0.1:1", ClientID: "x"},
		subscriber.HandlerFunc(func(m *wire.Decoded) error { _, err := reg.Accept(m); return err }))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler(reg, sub, nil, nil))
	defer srv.Close()

	body := func(path string, wantCode int) string {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantCode {
			t.Errorf("GET %s: %d, want %d: %s", path, resp.StatusCode, wantCode, b)
		}
		return string(b)
	}
	dev := body("/api/v1/devices/d1", http.StatusOK)
	for _, key := range []string{`"id": "d1"`, `"online": true`, `"first_seen"`, `"last_seen"`, `"status_at"`, `"messages": {`, `"cameras": [`, `"detections": 0`, `"objects": {}`, `"rate": 0`,
		`"duplicates": 0`, `"replayed": 0`, `"epoch": "ab12"`, `"epoch_changes": 0`, `"highest_seq": 3`, `"watermark": 1`, `"missing": 1`, `"lost": 0`} {
		if !strings.Contains(dev, key) {
			t.Errorf("device JSON lacks %s:\n%s", key, dev)
		}
	}
	if strings.Contains(dev, "last_detection_at") {
		t.Errorf("zero time not omitted:\n%s", dev)
	}
	health := body("/healthz", http.StatusServiceUnavailable)
	for _, key := range []string{`"status": "unavailable"`, `"connected": false`, `"client_id": "x"`, `"devices": 1`, `"rejected": {}`} {
		if !strings.Contains(health, key) {
			t.Errorf("health JSON lacks %s:\n%s", key, health)
		}
	}
	if got := body("/api/v1/devices/zz", http.StatusNotFound); !strings.Contains(got, `"error": "unknown device zz"`) {
		t.Errorf("404 body %s", got)
	}
	if got := body("/api/v1/devices", http.StatusOK); !strings.HasPrefix(got, "[") {
		t.Errorf("list body %s", got)
	}
	if got := body("/metrics", http.StatusNotFound); !strings.Contains(got, "no such endpoint") {
		t.Errorf("/metrics without a metrics handler: %s", got)
	}
	resp, err := http.Post(srv.URL+"/api/v1/devices", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST devices: %d", resp.StatusCode)
	}
}
