package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-edge/vigil/fleet/simulate"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// envInt reads an integer setting of the load test.
func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// TestScaleLoad is the city-scale load test of `make bench` (build/bench.sh), skipped unless
// VIGIL_SCALE_LOAD=1: VIGIL_SCALE_DEVICES simulated devices (1000) × VIGIL_SCALE_CAMERAS
// cameras (2) into two fleet instances (processes) sharing one Mosquitto (shared
// subscription) and one PostgreSQL, at each rate of VIGIL_SCALE_RATES messages/s (5000) for
// VIGIL_SCALE_SECONDS (60). Detections are stored 1 in 10, as by default; events and alerts
// all. For each rate it prints the rate the broker acknowledged, the records stored against
// those expected (each exactly once, by device and seq) and the ingest lag (capture to
// stored) percentiles. VIGIL_SCALE_BROKER=nats runs the same through a cluster of 3
// nats-server nodes (devices spread over the nodes' MQTT listeners, the instances on the NATS
// ingest, serve --ingest) instead of Mosquitto; VIGIL_SCALE_NATS_NODES sets the node count.
func TestScaleLoad(t *testing.T) {
	if os.Getenv("VIGIL_SCALE_LOAD") != "1" {
		t.Skip("load test: set VIGIL_SCALE_LOAD=1 (make bench runs it)")
	}
	devices := envInt(t, "VIGIL_SCALE_DEVICES", 1000)
	cameras := envInt(t, "VIGIL_SCALE_CAMERAS", 2)
	seconds := envInt(t, "VIGIL_SCALE_SECONDS", 60)
	rates := strings.Split(os.Getenv("VIGIL_SCALE_RATES"), ",")
	if rates[0] == "" {
		rates = []string{"5000"}
	}
	brokerName, brokerURL := "Mosquitto", ""
	pg := testharness.StartPostgres(t)
	switch os.Getenv("VIGIL_SCALE_BROKER") {
	case "", "mosquitto":
		mosq := testharness.StartMosquitto(t, testharness.MosquittoOptions{Extra: []string{
			"max_connections -1", "max_inflight_messages 100", "max_queued_messages 0"}})
		brokerURL = mosq.URL
		for _, name := range []string{"fleet-a", "fleet-b"} {
			startInstance(t, instanceConfig{Broker: mosq.URL, Store: pg.DSN, ClientID: name, Share: "vigil",
				HTTP: fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t)), DetectionsEvery: 10})
		}
	case "nats":
		nodes := envInt(t, "VIGIL_SCALE_NATS_NODES", 3)
		nc := testharness.StartNATS(t, nodes)
		brokerName, brokerURL = fmt.Sprintf("%d nats-server node(s) (NATS ingest)", nodes), nc.MQTTURLs()
		for i, name := range []string{"fleet-a", "fleet-b"} {
			mqttURLs, natsURLs := strings.Split(nc.MQTTURLs(), ","), strings.Split(nc.URLs(), ",")
			i %= nodes
			startInstance(t, instanceConfig{Broker: strings.Join(append(mqttURLs[i:], mqttURLs[:i]...), ","),
				Ingest: strings.Join(append(natsURLs[i:], natsURLs[:i]...), ","), Store: pg.DSN, ClientID: name,
				HTTP: fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t)), DetectionsEvery: 10})
		}
	default:
		t.Fatalf("VIGIL_SCALE_BROKER=%q: want mosquitto or nats", os.Getenv("VIGIL_SCALE_BROKER"))
	}
	conn, err := pgx.Connect(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	fmt.Printf("scale load: %d devices × %d cameras, 2 fleet instances, %s, PostgreSQL; %d s per rate\n", devices, cameras, brokerName, seconds)
	fmt.Printf("%-8s %-10s %-9s %-18s %-8s %-8s %-8s\n", "target", "acked/s", "failed", "stored/expected", "lag p50", "lag p99", "max")
	for i, r := range rates {
		rate, err := strconv.ParseFloat(r, 64)
		if err != nil {
			t.Fatalf("VIGIL_SCALE_RATES: %v", err)
		}
		prefix := fmt.Sprintf("r%d-", i)
		res, err := simulate.Run(context.Background(), simulate.Config{Broker: brokerURL, Devices: devices, Cameras: cameras,
			Rate: rate, Duration: time.Duration(seconds) * time.Second, Prefix: prefix, ConnectRate: 1000})
		if err != nil {
			t.Fatal(err)
		}
		// Expected: every event and alert; detections 1 in 10 per camera, which the fleet's
		// sampler decides: count them from what is stored, but check the exact kinds.
		want := res.AckedByKind["events"] + res.AckedByKind["alerts"]
		var stored, distinct, detections int64
		var p50, p99, pmax float64
		deadline := time.Now().Add(60 * time.Second)
		for {
			if err := conn.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE kind <> 'detections'),
				count(DISTINCT (device, seq)), count(*) FILTER (WHERE kind = 'detections') FROM vigil_events WHERE device LIKE $1`,
				prefix+"%").Scan(&stored, &distinct, &detections); err != nil {
				t.Fatal(err)
			}
			if uint64(stored) >= want || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err := conn.QueryRow(context.Background(), `SELECT
			percentile_cont(0.5) WITHIN GROUP (ORDER BY received_ms - captured_ms),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY received_ms - captured_ms),
			max(received_ms - captured_ms) FROM vigil_events WHERE device LIKE $1`, prefix+"%").Scan(&p50, &p99, &pmax); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("%-8.0f %-10.0f %-9d %-18s %-8s %-8s %-8s\n", rate, float64(res.Acked)/res.Elapsed.Seconds(), res.Failed,
			fmt.Sprintf("%d/%d +%d det", stored, want, detections), ms(p50), ms(p99), ms(pmax))
		if uint64(stored) != want || distinct != stored+detections {
			t.Errorf("rate %.0f: stored %d events/alerts of %d acknowledged; %d distinct (device, seq) of %d records",
				rate, stored, want, distinct, stored+detections)
		}
	}
}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + "ms" }
