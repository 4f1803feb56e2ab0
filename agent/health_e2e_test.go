package agent_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/server"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// healthz returns /healthz's status code and body.
func healthz(t *testing.T, addr string) (int, string) {
	t.Helper()
	if addr == "" {
		return 0, "not serving yet"
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHealthzTellsTheTruth: /healthz answers 200 ok while the camera streams and the broker is
// connected; with the broker gone and the backlog older than its bound it answers 503 naming
// the broker; with the camera gone too, 503 naming the camera.
func TestHealthzTellsTheTruth(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))
	srv, err := server.New(server.Config{Addr: addr, Files: []string{data.MustPath(t, petsClip)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	broker := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	cfg := baseConfig(t, broker.URL, config.Camera{ID: "pets", URL: srv.URL("pedestrians_pets09_s2l1_vtest"), Watchdog: 2 * time.Second})
	cfg.HTTP.HealthMaxBacklog = 2 * time.Second
	cfg.Telemetry.Interval = time.Second // something to store even without detections
	ra := startAgent(t, cfg)

	var code int
	var body string
	waitFor(t, 60*time.Second, "healthz 200 ok", func() bool {
		code, body = healthz(t, ra.HTTPAddr())
		return code == http.StatusOK && body == "ok\n"
	})
	broker.Stop()
	waitFor(t, 30*time.Second, "healthz 503 naming the broker", func() bool {
		code, body = healthz(t, ra.HTTPAddr())
		return code == http.StatusServiceUnavailable && strings.Contains(body, "broker: not connected")
	})
	if strings.Contains(body, "camera") {
		t.Errorf("the camera still streams, yet healthz says:\n%s", body)
	}
	srv.Close()
	waitFor(t, 30*time.Second, "healthz 503 naming the camera", func() bool {
		code, body = healthz(t, ra.HTTPAddr())
		return code == http.StatusServiceUnavailable && strings.Contains(body, "camera pets: retrying")
	})
	t.Logf("healthz with broker and camera gone: %d\n%s", code, body)
}
