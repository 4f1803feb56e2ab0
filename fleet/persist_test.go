package fleet_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/internal/testpub"
	"github.com/vigil-edge/vigil/fleet/registry"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// A Core with a registry file forgets nothing when it restarts: devices, counts, cameras,
// telemetry and the seq watermark come back.
func TestRegistrySurvivesRestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data", registry.FileName)
	cfg := fleet.Config{MQTTListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", ClientID: "vigil-fleet-restart",
		Logger: logger(), RegistryFile: file}
	c, err := fleet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + c.HTTPAddr()
	waitHealth(t, base, http.StatusOK)
	p := testpub.Connect(t, "tcp://"+c.BrokerAddr(), "edge-01")
	p.Online()
	p.Detections("cam1", "person", "car")
	p.Detections("cam1", "person")
	temp, mem := 63.5, uint64(1<<30)
	tm := wire.Telemetry{
		Header:  wire.Header{Schema: wire.SchemaTelemetry, DeviceID: "edge-01", Seq: 3, MsgID: p.MsgID(3), CapturedAt: time.Now().UnixMilli()},
		Board:   &wire.BoardHealth{CPUTempC: &temp, MemAvailable: &mem},
		Outbox:  &wire.OutboxHealth{Messages: 7, Bytes: 2048},
		Model:   &wire.Model{Name: "yolox-nano", Version: "3"},
		Cameras: []wire.CameraTelemetry{{ID: "cam1", State: "streaming", FPS: 14.5}},
		Geo:     &wire.GeoFix{Lat: 1, Lon: 2, Source: "static"},
	}
	b, _ := json.Marshal(tm)
	p.Publish(wire.Topic("edge-01", wire.KindTelemetry, ""), b, false)
	var before api.Device
	eventually(t, "edge-01 telemetry", func() (bool, string) {
		before, _ = device(t, base, "edge-01")
		return before.Telemetry != nil && before.Messages["detections"] == 2, fmt.Sprintf("%+v", before)
	})
	if got := *before.Telemetry; *got.CPUTempC != 63.5 || *got.MemAvailableBytes != 1<<30 || got.Outbox.Messages != 7 ||
		got.Model.Version != "3" || len(got.Cameras) != 1 || got.Cameras[0].FPS != 14.5 || got.Position.Lat != 1 {
		t.Errorf("telemetry %+v", got)
	}
	p.Disconnect()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// A fresh broker: nothing is retained, only the file remembers.
	cfg.ClientID = "vigil-fleet-restart-2"
	c2 := start(t, cfg)
	base = "http://" + c2.HTTPAddr()
	var list []api.Device
	if code := get(t, base+"/api/v1/devices", &list); code != http.StatusOK || len(list) != 1 {
		t.Fatalf("devices after restart: %d %+v", code, list)
	}
	d := list[0]
	if d.ID != "edge-01" || d.Messages["detections"] != 2 || d.Messages["telemetry"] != 1 || d.Watermark != 3 ||
		d.Epoch != p.Epoch || len(d.Cameras) != 1 || d.Cameras[0].Objects["person"] != 2 || d.Version != "0.0.1-test" {
		t.Errorf("edge-01 after restart: %+v", d)
	}
	if d.Telemetry == nil || *d.Telemetry.CPUTempC != 63.5 || d.Telemetry.Cameras[0].FPS != 14.5 {
		t.Errorf("telemetry after restart: %+v", d.Telemetry)
	}
	if d.State != "" || d.Online {
		t.Errorf("state after restart %q online %v: want unknown until the next status", d.State, d.Online)
	}

	// The agent reconnects and sends its backlog's last message again: a duplicate.
	waitHealth(t, base, http.StatusOK)
	p2 := testpub.Connect(t, "tcp://"+c2.BrokerAddr(), "edge-01")
	p2.Epoch = p.Epoch
	p2.Online()
	p2.DetectionsSeq("cam1", 2, true, "person")
	eventually(t, "edge-01 online again, the repeat counted as a duplicate", func() (bool, string) {
		d, _ = device(t, base, "edge-01")
		return d.Online && d.Duplicates == 1 && d.Messages["detections"] == 2, fmt.Sprintf("%+v", d)
	})
}
