package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/fleet/simulate"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// instanceEnv, when set, makes the test binary a fleet instance (see TestMain): a JSON
// instanceConfig. Running instances as processes lets a test kill one with SIGKILL.
const instanceEnv = "VIGIL_TEST_FLEET_INSTANCE"

type instanceConfig struct {
	Broker, Store, ClientID, Share, HTTP string
	DetectionsEvery                      int // 1 when zero: every detections message stored
}

func TestMain(m *testing.M) {
	if v := os.Getenv(instanceEnv); v != "" {
		os.Exit(runInstance(v))
	}
	os.Exit(m.Run())
}

func runInstance(v string) int {
	var c instanceConfig
	if err := json.Unmarshal([]byte(v), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if c.DetectionsEvery > 1 { // load test: keep the instance's log short
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	core, err := fleet.New(fleet.Config{Broker: c.Broker, HTTPListen: c.HTTP, ClientID: c.ClientID, ShareGroup: c.Share,
		Logger: log, Events: fleet.EventsConfig{Postgres: c.Store, DetectionsEvery: max(c.DetectionsEvery, 1)}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	select {
	case <-ctx.Done():
	case err := <-core.Failed():
		log.Error("failed", "err", err)
	}
	if err := core.Close(); err != nil {
		return 1
	}
	return 0
}

type instance struct {
	name, http string
	cmd        *exec.Cmd
	log        *strings.Builder
}

func startInstance(t *testing.T, c instanceConfig) *instance {
	t.Helper()
	b, _ := json.Marshal(c)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), instanceEnv+"="+string(b))
	in := &instance{name: c.ClientID, http: c.HTTP, cmd: cmd, log: &strings.Builder{}}
	cmd.Stdout, cmd.Stderr = in.log, in.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("instance %s log:\n%s", c.ClientID, in.log.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + c.HTTP + "/api/v1/devices")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s did not start: %v\n%s", c.ClientID, err, in.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // subscribed by now (the API starts after the subscriber)
	return in
}

func (in *instance) kill(t *testing.T) {
	if err := in.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = in.cmd.Wait()
}

// TestInstancesShareTrafficAndSurviveSIGKILL runs two fleet instances on one Mosquitto
// (shared subscription) and one PostgreSQL, feeds them simulated devices, and kills one with
// SIGKILL mid-run. The survivor adopts the dead instance's session: every message the
// simulator had acknowledged by the broker is stored exactly once, and messages sent well
// after the kill are stored without waiting for the dead instance.
func TestInstancesShareTrafficAndSurviveSIGKILL(t *testing.T) {
	mosq := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	pg := testharness.StartPostgres(t)
	cfg := func(name string) instanceConfig {
		return instanceConfig{Broker: mosq.URL, Store: pg.DSN, ClientID: name, Share: "vigil",
			HTTP: fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))}
	}
	a := startInstance(t, cfg("fleet-a"))
	b := startInstance(t, cfg("fleet-b"))

	const duration = 8 * time.Second
	killAt := 2500 * time.Millisecond
	start := time.Now()
	killed := make(chan time.Time, 1)
	go func() {
		time.Sleep(killAt)
		a.kill(t)
		killed <- time.Now()
	}()
	res, err := simulate.Run(context.Background(), simulate.Config{Broker: mosq.URL, Devices: 30, Cameras: 2,
		Rate: 300, Duration: duration, EventShare: 0.2, AlertShare: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	killTime := <-killed
	if res.Failed != 0 {
		t.Fatalf("%d messages not acknowledged by the broker", res.Failed)
	}
	want := res.AckedByKind["detections"] + res.AckedByKind["events"] + res.AckedByKind["alerts"]
	t.Logf("simulator: %d acknowledged in %v (%v); kill at %v", res.Acked, res.Elapsed, res.AckedByKind, killTime.Sub(start))

	conn, err := pgx.Connect(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var stored, distinct int64
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := conn.QueryRow(context.Background(), "SELECT count(*), count(DISTINCT (device, seq)) FROM vigil_events").Scan(&stored, &distinct); err != nil {
			t.Fatal(err)
		}
		if uint64(stored) >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if uint64(stored) != want || stored != distinct {
		t.Fatalf("stored %d records (%d distinct device/seq), want %d: every acknowledged message exactly once", stored, distinct, want)
	}
	// Per device: the stored seqs are within 1..LastSeq and none twice.
	for _, d := range res.Devices {
		var n, maxSeq, dup int64
		if err := conn.QueryRow(context.Background(), `SELECT count(*), coalesce(max(seq), 0), count(*) - count(DISTINCT seq)
			FROM vigil_events WHERE device = $1`, d.ID).Scan(&n, &maxSeq, &dup); err != nil {
			t.Fatal(err)
		}
		if dup != 0 || uint64(maxSeq) > d.LastSeq || n == 0 {
			t.Errorf("device %s: %d records, max seq %d (last acknowledged %d), %d repeated", d.ID, n, maxSeq, d.LastSeq, dup)
		}
	}
	// The survivor took the dead instance's share: what was sent from 3 s after the kill on
	// was stored promptly, not held for an instance that never came back.
	var late, slow int64
	after := killTime.Add(3 * time.Second).UnixMilli()
	if err := conn.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE received_ms - captured_ms > 2000)
		FROM vigil_events WHERE captured_ms > $1`, after).Scan(&late, &slow); err != nil {
		t.Fatal(err)
	}
	if late == 0 || slow > late/20 {
		t.Errorf("after the take-over: %d records, %d of them stored more than 2 s after capture", late, slow)
	}
	if !strings.Contains(b.log.String(), "adopted the session of a stopped instance") {
		t.Errorf("fleet-b never adopted fleet-a's session:\n%s", b.log.String())
	}
}
