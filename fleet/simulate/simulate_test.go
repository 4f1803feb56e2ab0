package simulate_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/fleet/simulate"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// TestSimulatedDevicesReachTheFleet runs 20 simulated devices × 2 cameras into a real fleet
// controller (embedded broker) and checks from the fleet's registry that every device's
// stream arrived whole: the fleet saw the simulator's epoch, every seq up to the last one
// acknowledged, no duplicates and no gaps.
func TestSimulatedDevicesReachTheFleet(t *testing.T) {
	port := testharness.FreePort(t)
	core, err := fleet.New(fleet.Config{MQTTListen: fmt.Sprintf("127.0.0.1:%d", port), HTTPListen: "127.0.0.1:0",
		ClientID: "vigil-fleet-simtest", Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	defer core.Close()

	var progress int
	res, err := simulate.Run(context.Background(), simulate.Config{
		Broker: "tcp://" + core.BrokerAddr(), Devices: 20, Cameras: 2, Rate: 400, Duration: 2 * time.Second,
		TelemetryEvery: time.Second, Progress: func(simulate.Stats) { progress++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 0 || res.Acked != res.Sent {
		t.Fatalf("sent %d, acked %d, failed %d", res.Sent, res.Acked, res.Failed)
	}
	// 400 msg/s for 2 s: at least half of it even on a loaded machine.
	if res.Acked < 400 {
		t.Fatalf("only %d messages acknowledged in %v", res.Acked, res.Elapsed)
	}
	if progress == 0 {
		t.Error("no progress report in a 2 s run")
	}
	kinds := map[string]uint64{}
	deadline := time.Now().Add(10 * time.Second)
	for _, want := range res.Devices {
		if want.LastSeq == 0 {
			t.Fatalf("device %s sent nothing", want.ID)
		}
		for {
			d, ok := core.Registry().Device(want.ID)
			if ok && d.Epoch == want.Epoch && d.Watermark >= want.LastSeq {
				// Each seq accepted once: the accepted sequenced messages number exactly
				// LastSeq (status repeats, as after a resubscription, are not in the sequence).
				var n uint64
				for k, c := range d.Messages {
					if k != "status" {
						n += c
					}
				}
				if n != want.LastSeq || d.Lost != 0 {
					t.Errorf("device %s: %d sequenced messages accepted for seqs 1..%d, %d lost: %+v", want.ID, n, want.LastSeq, d.Lost, d.Stream)
				}
				if d.Version != "simulated" || len(d.Cameras) != 2 {
					t.Errorf("device %s: version %q, cameras %v", want.ID, d.Version, d.Cameras)
				}
				for k, n := range d.Messages {
					kinds[k] += n
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("device %s: fleet has %+v, simulator acknowledged seq 1..%d in epoch %s", want.ID, d.Stream, want.LastSeq, want.Epoch)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The fleet accepted exactly what the broker acknowledged, kind by kind, and the mix
	// sent every kind.
	for k, n := range res.AckedByKind {
		if kinds[k] != n {
			t.Errorf("%s: the fleet accepted %d, the broker acknowledged %d", k, kinds[k], n)
		}
	}
	for _, k := range []string{"detections", "events", "alerts", "telemetry"} {
		if kinds[k] == 0 {
			t.Errorf("no %s message reached the fleet: %v", k, kinds)
		}
	}
	// The simulator said goodbye: every device is offline now.
	for _, want := range res.Devices {
		waitFor(t, func() bool { d, _ := core.Registry().Device(want.ID); return !d.Online })
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}

func TestConfigErrorsNameTheSetting(t *testing.T) {
	for _, c := range []struct {
		cfg  simulate.Config
		want string
	}{
		{simulate.Config{}, "--broker"},
		{simulate.Config{Broker: "tcp://127.0.0.1:1", Devices: -1, Cameras: 1, Rate: 1}, "--devices"},
		{simulate.Config{Broker: "tcp://127.0.0.1:1", Devices: 1, Cameras: 0, Rate: 1}, "--cameras"},
		{simulate.Config{Broker: "tcp://127.0.0.1:1", Devices: 1, Cameras: 1, Rate: 0}, "--rate"},
		{simulate.Config{Broker: "tcp://127.0.0.1:1", Devices: 1, Cameras: 1, Rate: 1, Prefix: "a/b"}, "--prefix"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one naming %s", c.cfg, err, c.want)
		}
	}
	// An unreachable broker fails at once, naming the device.
	_, err := simulate.Run(context.Background(), simulate.Config{Broker: fmt.Sprintf("tcp://127.0.0.1:%d", testharness.FreePort(t)), Devices: 1, Cameras: 1, Rate: 1})
	if err == nil || !strings.Contains(err.Error(), "sim-1") {
		t.Fatalf("unreachable broker: %v", err)
	}
}
