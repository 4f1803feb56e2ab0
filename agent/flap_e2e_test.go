package agent_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/server"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// flapBound is the test's bound on the time from the camera's return to the first detection
// after it. The goal is 2 s; the bound is generous so that a loaded CI machine does not make
// the test flaky. The measured value is logged. Before the fix it was about 9 s.
const flapBound = 4 * time.Second

// TestCameraFlapCostsLittleBlindness: the RTSP server of a streaming camera stops for 5 s (then
// 20 s) and comes back; the agent notices the loss at once, probes the camera cheaply and often while it
// is away, and detects again soon after its return.
func TestCameraFlapCostsLittleBlindness(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))
	file := data.MustPath(t, petsClip)
	start := func() *server.Server {
		srv, err := server.New(server.Config{Addr: addr, Files: []string{file}})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatalf("start the RTSP server on %s: %v", addr, err)
		}
		t.Cleanup(srv.Close)
		return srv
	}
	srv := start()
	broker := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	col := subscribe(t, broker.URL)
	cam := config.Camera{ID: "pets", URL: srv.URL("pedestrians_pets09_s2l1_vtest"), DetectFPS: 10}
	startAgent(t, baseConfig(t, broker.URL, cam))
	waitFor(t, 60*time.Second, "detections", func() bool { return len(col.get(wire.KindDetections)) >= 5 })

	// 5 s as in the issue, then 20 s: long enough for the old back-off (1 s doubling to 30 s)
	// to leave the camera unwatched for many seconds after its return.
	for _, away := range []time.Duration{5 * time.Second, 20 * time.Second} {
		srv.Close()
		stopped := time.Now()
		time.Sleep(away)
		srv = start()
		back := time.Now()
		var first time.Time
		waitFor(t, 60*time.Second, "a detection captured after the camera's return", func() bool {
			for _, b := range col.get(wire.KindDetections) {
				var d wire.Detections
				if json.Unmarshal(b, &d) == nil && time.UnixMilli(d.CapturedAt).After(back) {
					first = time.Now()
					return true
				}
			}
			return false
		})
		took := first.Sub(back)
		t.Logf("camera away %s; first detection %s after its return (goal 2 s, bound %s)", back.Sub(stopped).Round(time.Millisecond), took.Round(time.Millisecond), flapBound)
		if took > flapBound {
			t.Errorf("away %s: first detection %s after the camera's return, want < %s", away, took.Round(time.Millisecond), flapBound)
		}
	}
}
