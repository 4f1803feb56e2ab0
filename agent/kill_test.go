package agent_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/agent"
	"github.com/vigil-edge/vigil/pipeline/outbox"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// TestMain lets the test binary run as vigil-agent itself (for the kill -9 test).
func TestMain(m *testing.M) {
	if cfg := os.Getenv("EDGE_TEST_AGENT_CONFIG"); cfg != "" {
		os.Exit(agent.Main([]string{"run", "--config", cfg}, os.Stdout, os.Stderr))
	}
	if args := os.Getenv("EDGE_TEST_AGENT_ARGS"); args != "" { // any command, e.g. doctor
		os.Exit(agent.Main(strings.Fields(args), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// storedSeqs opens the outbox file (the agent being dead), checks it, and returns its seqs.
func storedSeqs(t *testing.T, path string) []uint64 {
	t.Helper()
	if err := outbox.CheckFile(path); err != nil {
		t.Fatalf("outbox consistency check: %v", err)
	}
	ob, err := outbox.Open(path, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	es, err := ob.Read(0, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	seqs := make([]uint64, len(es))
	for i, e := range es {
		seqs[i] = e.Seq
	}
	return seqs
}

// TestAgentSurvivesKill9 runs the real agent (this test binary as vigil-agent run) on the PETS
// clip with its broker down, and kills it with SIGKILL 20 times at random moments, restarting
// it each time. After every kill the outbox file passes its checks and holds an unbroken run of
// seqs from 1: a message committed and then lost would leave a hole (an uncommitted one leaves
// none: its seq is given again after the restart). Then the broker comes up and a consumer
// receives every seq exactly once after dropping repeats.
func TestAgentSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	port := testharness.FreeFixedPort(t)
	obPath := filepath.Join(dir, "outbox.db")
	cfgPath := filepath.Join(dir, "agent.yaml")
	cfg := fmt.Sprintf(`device_id: kill-edge
log_level: error
http:
  listen: 127.0.0.1:0
mqtt:
  url: tcp://127.0.0.1:%d
outbox:
  path: %s
snapshots:
  dir: %s
model:
  manifest: %s
  dir: %s
cameras:
  - id: pets
    url: %s
    loop: true
    detect_fps: 10
`, port, obPath, filepath.Join(dir, "snapshots"), filepath.Join(testharness.RepoRoot(), "models", "yolox_nano_coco_416.json"),
		data.MustPath(t, "models"), data.MustPath(t, petsClip))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "EDGE_TEST_AGENT_CONFIG="+cfgPath)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	var last uint64
	for i := 0; i < 20; i++ {
		cmd := start()
		time.Sleep(time.Duration(1500+rand.IntN(1500)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		seqs := storedSeqs(t, obPath)
		for j, s := range seqs {
			if s != uint64(j+1) {
				t.Fatalf("after kill %d: the outbox holds seqs %v…: seq %d is missing", i+1, seqs[:min(len(seqs), j+2)], j+1)
			}
		}
		if n := uint64(len(seqs)); n < last {
			t.Fatalf("after kill %d: %d messages stored, %d before", i+1, n, last)
		}
		last = uint64(len(seqs))
	}
	if last < 20 {
		t.Fatalf("only %d messages stored over 20 runs: the agent did not get to work", last)
	}

	// The broker comes up; the agent, started once more, sends everything.
	broker := testharness.StartMosquitto(t, testharness.MosquittoOptions{Port: port})
	col := subscribe(t, broker.URL)
	cmd := start()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	got := map[uint64]int{}
	waitFor(t, 60*time.Second, fmt.Sprintf("seqs 1..%d at the consumer", last), func() bool {
		clear(got)
		for _, kind := range []string{wire.KindDetections, wire.KindEvents, wire.KindAlerts} {
			for _, b := range col.get(kind) {
				var h wire.Header
				if json.Unmarshal(b, &h) == nil {
					got[h.Seq]++
				}
			}
		}
		for _, b := range col.get(wire.KindSnapshots) { // JPEGs with their header inside
			if p, err := wire.DecodePicture(b, 0); err == nil {
				got[p.Seq]++
			}
		}
		for s := uint64(1); s <= last; s++ {
			if got[s] == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("20 kill -9: %d messages stored, all delivered after the restart", last)
}
