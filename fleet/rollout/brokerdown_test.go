package rollout_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet/rollout"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// TestAPIReadsStayFastWithTheBrokerDown stops a real Mosquitto (SIGSTOP: the fleet's
// connection stays open and nothing answers, as with a hung broker or a dead link) while a
// rollout has a command to send, and checks that reads of the API never wait for the broker
// the whole time the engine does. Before the engine was split, it published while holding
// the lock every read takes, and each read waited up to 5 s; the bound here, 1 s, is far
// from that and from a loaded machine's slowest honest read (~400 ms seen at load 18).
func TestAPIReadsStayFastWithTheBrokerDown(t *testing.T) {
	mq := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	fx := newFixture(t)
	fx.brokerURL = mq.URL
	_, base, _ := fx.start(t, nil)
	mq.Freeze()
	t.Cleanup(mq.Thaw) // before the core stops (cleanups run last first)

	// The canary's command is sent while the broker is down: no acknowledgement comes.
	body := `{"model":"yolox_nano@2.0.0","devices":"edge-a,edge-b","canary":1,"active_timeout":"10m"}`
	resp, err := http.Post(base+"/api/v1/rollouts", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var r rollout.Rollout
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &r) != nil {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}

	read := func(path string) time.Duration {
		start := time.Now()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", path, resp.StatusCode)
		}
		return time.Since(start)
	}
	// 3 s of reads, while the engine waits (5 s) for the first command's acknowledgement.
	var worst time.Duration
	var n int
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); n++ {
		for _, p := range []string{"/api/v1/rollouts", "/api/v1/rollouts/" + r.ID, "/api/v1/devices"} {
			if d := read(p); d > worst {
				worst = d
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d rounds of reads, the slowest %v", n, worst.Round(time.Millisecond))
	if worst > time.Second {
		t.Errorf("with the broker down, a read of the API took %v, want well under the engine's 5 s wait (at most 1 s)", worst)
	}
	// The engine did try to send, and says why it could not.
	waitState(t, base, r.ID, func(r rollout.Rollout) bool {
		return strings.Contains(device(r, "edge-a").Reason, "acknowledgement")
	})
}
