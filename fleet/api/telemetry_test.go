package api_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/registry"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

func TestTelemetryJSON(t *testing.T) {
	temp, load, mem, disk := 61.5, 0.5, uint64(1024), uint64(2048)
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	d := registry.Device{ID: "edge-01", Telemetry: &registry.Telemetry{ReceivedAt: at, CapturedAt: at, UptimeS: 3,
		Board:    wire.BoardHealth{CPUTempC: &temp, Load1: &load, MemAvailable: &mem, DiskFree: &disk},
		Outbox:   &wire.OutboxHealth{Messages: 4, Bytes: 500},
		Model:    &wire.Model{Name: "yolox-nano", Version: "2"},
		Cameras:  []wire.CameraTelemetry{{ID: "cam1", State: "streaming", FPS: 15, DetectFPS: 5}},
		Position: &wire.GeoFix{Lat: 48.1, Lon: 11.5, Source: "gnss"},
	}}
	b, err := json.Marshal(api.FromRegistry(d))
	if err != nil {
		t.Fatal(err)
	}
	want := `"telemetry":{"received_at":"2024-05-01T12:00:00Z","captured_at":"2024-05-01T12:00:00Z","uptime_s":3,` +
		`"cpu_temp_c":61.5,"load1":0.5,"mem_available_bytes":1024,"disk_free_bytes":2048,` +
		`"outbox":{"messages":4,"bytes":500,"oldest_age_s":0},"model":{"name":"yolox-nano","version":"2","sha256":""},` +
		`"cameras":[{"id":"cam1","state":"streaming","fps":15,"detect_fps":5,"detections_per_s":0,"inference_errors":0,"frames_dropped":0}],` +
		`"position":{"lat":48.1,"lon":11.5,"alt_m":0,"source":"gnss"}}`
	if !strings.Contains(string(b), want) {
		t.Errorf("device JSON\n%s\nwant it to hold\n%s", b, want)
	}
	if b, _ := json.Marshal(api.FromRegistry(registry.Device{ID: "x"})); strings.Contains(string(b), "telemetry") {
		t.Errorf("no telemetry yet: %s", b)
	}
}

func TestClockSkewJSON(t *testing.T) {
	for _, tc := range []struct {
		clock registry.Clock
		want  string
	}{
		{registry.Clock{}, `"clock_skewed":false`},
		{registry.Clock{SkewKnown: true, Skew: -90 * time.Second, Skewed: true}, `"clock_skew_seconds":-90,"clock_skewed":true`},
	} {
		b, err := json.Marshal(api.FromRegistry(registry.Device{ID: "edge-01", Clock: tc.clock}))
		if err != nil || !strings.Contains(string(b), tc.want) {
			t.Errorf("%+v: %s %v, want %s in it", tc.clock, b, err, tc.want)
		}
	}
}
