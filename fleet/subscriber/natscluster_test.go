package subscriber_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/fleet/simulate"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// TestNATSClusterIngestSurvivesNodeKill: three nats-server nodes clustered on loopback,
// simulated devices speaking MQTT QoS 1 to all three (device i to node i mod 3 first), two
// fleet instances consuming through the NATS ingest into one PostgreSQL, and the node that
// fleet-a and a third of the devices are connected to is killed with SIGKILL mid-run.
//
// What may be lost, and why nothing is: nats-server acknowledges a device's PUBLISH (PUBACK)
// when it has taken the message, and from there core NATS delivery is at most once. Had the
// instances read the subjects with a plain queue subscription, what was in flight to fleet-a
// through the killed node (its socket and buffers) would be gone, PUBACKed to the devices and
// never sent again. The ingest reads through a JetStream stream replicated on the three nodes
// and one shared durable consumer instead: a message handed to an instance and not
// acknowledged (the instance acknowledges once it stored the message) is handed out again
// after the ack wait. The devices' own in-flight messages on the killed node (not PUBACKed)
// are sent again by the device after it reconnected to another node, as the agent's outbox
// does; duplicates from both paths are dropped by msg_id in the store. The test asserts that
// every message the devices saw acknowledged is stored exactly once, by (device, epoch, seq).
//
// One window stays open by design of nats-server's MQTT, and this test would show it as a
// missing message: a PUBACK sent by the killed node for a message that had not yet reached
// the stream's leader on another node.
func TestNATSClusterIngestSurvivesNodeKill(t *testing.T) {
	nc := testharness.StartNATS(t, 3)
	pg := testharness.StartPostgres(t)
	rotate := func(list string, by int) string {
		l := strings.Split(list, ",")
		return strings.Join(append(l[by:], l[:by]...), ",")
	}
	var cores []*fleet.Core
	for i, name := range []string{"fleet-a", "fleet-b"} {
		log := slog.New(slog.NewTextHandler(testWriter{t, name}, &slog.HandlerOptions{Level: slog.LevelInfo}))
		c, err := fleet.New(fleet.Config{
			Broker: rotate(nc.MQTTURLs(), i), Ingest: rotate(nc.URLs(), i), ClientID: name,
			HTTPListen: "127.0.0.1:0", Logger: log,
			Events: fleet.EventsConfig{Postgres: pg.DSN, DetectionsEvery: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
		cores = append(cores, c)
		t.Cleanup(func() { c.Close() })
	}
	waitIngest(t, cores)

	// Kill n1 once traffic flows (about 2 s of it), not during the devices' connects.
	const duration = 8 * time.Second
	start := time.Now()
	var killedAt time.Duration
	res, err := simulate.Run(context.Background(), simulate.Config{Broker: nc.MQTTURLs(), Devices: 30, Cameras: 2,
		Rate: 300, Duration: duration, EventShare: 0.2, AlertShare: 0.05, Prefix: "nsim-",
		Progress: func(st simulate.Stats) {
			if killedAt == 0 && st.Acked >= 600 {
				nc.Nodes[0].Kill()
				killedAt = time.Since(start)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("simulator: %d acknowledged, %d failed, %d re-sent in %v (%v); node n1 killed at %v (0: never)", res.Acked, res.Failed, res.Resent, res.Elapsed,
		res.AckedByKind, killedAt)
	if killedAt == 0 {
		t.Fatal("the node was never killed: too little traffic acknowledged")
	}
	if res.Failed != 0 {
		t.Errorf("%d messages never acknowledged by the cluster (the devices reconnect to the live nodes)", res.Failed)
	}
	want := res.AckedByKind["detections"] + res.AckedByKind["events"] + res.AckedByKind["alerts"]

	conn, err := pgx.Connect(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var stored, distinct int64
	deadline := time.Now().Add(40 * time.Second) // the ack wait (10 s) for what the dead node held, and more
	for {
		if err := conn.QueryRow(context.Background(), "SELECT count(*), count(DISTINCT msg_id) FROM vigil_events").Scan(&stored, &distinct); err != nil {
			t.Fatal(err)
		}
		if uint64(stored) >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if uint64(stored) != want || stored != distinct {
		logConsumer(t, nc.Nodes[1].URL)
		t.Fatalf("stored %d records (%d distinct msg_ids), want %d: every acknowledged message exactly once", stored, distinct, want)
	}
	// By (device, epoch, seq): every stored message carries its device's epoch, a seq that
	// was acknowledged, and no (device, seq) twice.
	for _, d := range res.Devices {
		var n, maxSeq, dup, otherEpoch int64
		if err := conn.QueryRow(context.Background(), `SELECT count(*), coalesce(max(seq), 0), count(*) - count(DISTINCT seq),
			count(*) FILTER (WHERE msg_id <> $2 || seq::text)
			FROM vigil_events WHERE device = $1`, d.ID, d.ID+"-"+d.Epoch+"-").Scan(&n, &maxSeq, &dup, &otherEpoch); err != nil {
			t.Fatal(err)
		}
		if dup != 0 || otherEpoch != 0 || uint64(maxSeq) > d.LastSeq || n == 0 {
			t.Errorf("device %s: %d records, max seq %d (last acknowledged %d), %d repeated, %d of another epoch",
				d.ID, n, maxSeq, d.LastSeq, dup, otherEpoch)
		}
	}
	// Both instances took a share, and status reached both (every device known to each).
	for i, c := range cores {
		st := c.Ingest().Status()
		if st.Messages == 0 {
			t.Errorf("instance %d received no device traffic: %+v", i, st)
		}
		if n := len(c.Registry().Devices()); n != len(res.Devices) {
			t.Errorf("instance %d knows %d devices, want %d (status is a plain subscription on every instance)", i, n, len(res.Devices))
		}
	}
}

// logConsumer logs the ingest stream's and consumer's state, to tell what was left where.
func logConsumer(t *testing.T, url string) {
	conn, err := nats.Connect(url)
	if err != nil {
		t.Log(err)
		return
	}
	defer conn.Close()
	js, _ := jetstream.New(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := js.Stream(ctx, "vigil-ingest-vigil-fleet"); err == nil {
		t.Logf("stream: %+v; cluster %+v", st.CachedInfo().State, st.CachedInfo().Cluster)
	}
	if c, err := js.Consumer(ctx, "vigil-ingest-vigil-fleet", "vigil-fleet"); err == nil {
		i := c.CachedInfo()
		t.Logf("consumer: pending %d, ack pending %d, redelivered %d, waiting %d, delivered %+v, acked %+v, cluster %+v",
			i.NumPending, i.NumAckPending, i.NumRedelivered, i.NumWaiting, i.Delivered, i.AckFloor, i.Cluster)
	} else {
		t.Log(err)
	}
}

// waitIngest waits until every instance's MQTT and NATS connections are up.
func waitIngest(t *testing.T, cores []*fleet.Core) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range cores {
		for !c.Ingest().Connected() {
			if time.Now().After(deadline) {
				t.Fatalf("ingest not connected after 30 s: %+v", c.Ingest().Status())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(500 * time.Millisecond) // the consumers' first pull requests
}

// testWriter logs an instance's lines through t.Log.
type testWriter struct {
	t    *testing.T
	name string
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
