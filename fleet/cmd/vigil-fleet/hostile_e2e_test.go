package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/internal/testpub"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// End to end: a device publishing a label with terminal escapes (ESC [2J, OSC 52 clipboard
// write) and telemetry with "cameras":[null] has both refused at the fleet's edge and counted;
// the API, `vigil-fleet watch` and the dashboard's stream carry none of it.
func TestHostileDeviceEndToEnd(t *testing.T) {
	mqttAddr := fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))
	_, _, base := serveAPIHealthy(t, "--mqtt-listen", mqttAddr, "--client-id", "hostile-e2e")

	// The dashboards' live stream, followed from before the device speaks.
	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	req, _ := http.NewRequestWithContext(sctx, http.MethodGet, base+"/api/v1/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var stream testharness.SyncBuffer
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		_, _ = io.Copy(&stream, resp.Body)
	}()
	defer func() { scancel(); resp.Body.Close(); <-streamDone }()

	p := testpub.Connect(t, "tcp://"+mqttAddr, "edge-07")
	p.Online()
	p.Detections("cam1", "person")
	const escape = "person\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07"
	p.Detections("cam1", escape)
	seq := p.Seq() + 1
	tel := fmt.Sprintf(`{"schema":%q,"device_id":"edge-07","seq":%d,"msg_id":%q,"captured_at":%d,"uptime_s":1,"cameras":[null]}`,
		wire.SchemaTelemetry, seq, p.MsgID(seq), time.Now().UnixMilli())
	p.Publish(wire.Topic("edge-07", wire.KindTelemetry, ""), []byte(tel), false)
	p.DetectionsSeq("cam1", seq+1, false, "car") // after the refused ones: the device goes on

	client := &http.Client{Timeout: 5 * time.Second}
	var h api.Health
	var d api.Device
	deadline := time.Now().Add(15 * time.Second)
	for {
		h, d = api.Health{}, api.Device{}
		getJSON(t, client, base+"/healthz", &h)
		getJSON(t, client, base+"/api/v1/devices/edge-07", &d)
		refused := uint64(0)
		for _, n := range h.Rejected {
			refused += n
		}
		if refused >= 2 && len(d.Cameras) > 0 && d.Cameras[0].Objects["car"] == 1 {
			if refused != 2 {
				t.Errorf("refused %v, want 2 messages", h.Rejected)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fleet did not refuse and count both messages: rejected %v, device %+v", h.Rejected, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, ok := d.Cameras[0].Objects[escape]; ok || d.Telemetry != nil {
		t.Errorf("the refused messages reached the registry: objects %v, telemetry %+v", d.Cameras[0].Objects, d.Telemetry)
	}
	time.Sleep(200 * time.Millisecond) // the stream has what the fleet accepted
	if s := stream.String(); !strings.Contains(s, "edge-07") || strings.Contains(s, `\u001b`) || strings.Contains(s, "\x1b") || strings.Contains(s, "[null]") {
		t.Errorf("the dashboards' stream carried refused data, or nothing:\n%q", s)
	}
	var out testharness.SyncBuffer
	if err := run(context.Background(), []string{"watch", "--api", base, "--interval", "50ms", "--duration", "300ms"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "edge-07/cam1") || strings.ContainsAny(out.String(), "\x1b\x07") {
		t.Errorf("watch output:\n%q", out.String())
	}
}

func getJSON(t *testing.T, c *http.Client, url string, v any) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
