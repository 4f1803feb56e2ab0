package postgres_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/catalog"
	"github.com/vigil-edge/vigil/fleet/postgres"
	"github.com/vigil-edge/vigil/fleet/rollout"
	"github.com/vigil-edge/vigil/fleet/simulate"
	vmodels "github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// instanceEnv, when set, makes the test binary a fleet instance (see TestMain): a JSON
// instanceConfig. Running instances as processes lets a test kill one with SIGKILL.
const instanceEnv = "VIGIL_TEST_FLEET_INSTANCE"

type instanceConfig struct {
	Broker, Store, ClientID, Share, HTTP string
	Ingest                               string // nats://…: the NATS ingest instead of Share
	DetectionsEvery                      int    // 1 when zero: every detections message stored
	// Data, when set, turns OTA on: the model catalogue is there, Key signs the commands.
	Data string
	Key  []byte
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
	var ota fleet.OTAConfig
	if c.Data != "" {
		ota = fleet.OTAConfig{DataDir: c.Data, SigningKey: ed25519.PrivateKey(c.Key), Tick: 100 * time.Millisecond}
	}
	core, err := fleet.New(fleet.Config{Broker: c.Broker, HTTPListen: c.HTTP, ClientID: c.ClientID, ShareGroup: c.Share, Ingest: c.Ingest,
		Logger: log, Events: fleet.EventsConfig{Postgres: c.Store, DetectionsEvery: max(c.DetectionsEvery, 1)}, OTA: ota})
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
// (shared subscription) and one PostgreSQL, feeds them simulated devices, starts a rollout
// through the instance that does not lead the rollouts, and kills the leader with SIGKILL
// mid-rollout. The survivor adopts the dead instance's session: every message the simulator
// had acknowledged by the broker is stored exactly once, and messages sent well after the
// kill are stored without waiting for the dead instance. It also takes the rollouts' leader
// lock within 10 s and runs the rollout to its end from the stored state: every device of it
// gets one update (one command id) and no rollback.
func TestInstancesShareTrafficAndSurviveSIGKILL(t *testing.T) {
	mosq, pg, key := rolloutWorld(t)
	cfg := func(name string) instanceConfig {
		return instanceConfig{Broker: mosq.URL, Store: pg.DSN, ClientID: name, Share: "vigil",
			HTTP: fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t)), Data: t.TempDir(), Key: key}
	}
	a := startInstance(t, cfg("fleet-a"))
	b := startInstance(t, cfg("fleet-b"))
	// a started first and took the leader lock; b answers the rollout API from PostgreSQL.
	waitFor(t, 10*time.Second, "fleet-a leads the rollouts", func() bool { return a.rolloutLeader(t) })
	if b.rolloutLeader(t) || !strings.Contains(b.get(t, "/metrics"), "\nvigil_fleet_rollout_leader 0\n") {
		t.Fatalf("fleet-b leads the rollouts too:\n%s", b.get(t, "/healthz"))
	}

	start := time.Now()
	var res simulate.Result
	var simErr error
	simCtx, stopSim := context.WithCancel(context.Background())
	var sim sync.WaitGroup
	sim.Go(func() {
		// Until stopped: the devices must report on the new model until the rollout ends.
		res, simErr = simulate.Run(simCtx, simulate.Config{Broker: mosq.URL, Devices: 30, Cameras: 2,
			Rate: 300, EventShare: 0.2, AlertShare: 0.05, Install: true, TelemetryEvery: 700 * time.Millisecond})
	})
	t.Cleanup(func() { stopSim(); sim.Wait() }) // before the broker stops, on a failure
	waitFor(t, 10*time.Second, "30 devices known", func() bool { return strings.Count(a.get(t, "/api/v1/devices"), `"id":`) >= 30 })

	// The rollout is asked of fleet-b, which does not lead: the leader applies it.
	var devices []string
	for i := 1; i <= 6; i++ {
		devices = append(devices, fmt.Sprintf("sim-%02d", i))
	}
	spec := fmt.Sprintf(`{"model":"yolox_nano@2.0.0","devices":%q,"canary":1,"waves":[50,100],"health_window":"2s","active_timeout":"20s"}`,
		strings.Join(devices, ","))
	resp, err := http.Post("http://"+b.http+"/api/v1/rollouts", "application/json", strings.NewReader(spec))
	if err != nil {
		t.Fatal(err)
	}
	var ro rollout.Rollout
	err = json.NewDecoder(resp.Body).Decode(&ro)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated || ro.ID == "" {
		t.Fatalf("create the rollout on fleet-b: %s %v %+v", resp.Status, err, ro)
	}
	// Kill the leader once the rollout is in its first wave.
	waitFor(t, 15*time.Second, "the rollout in its first wave", func() bool {
		r := b.rollout(t, ro.ID)
		if r.Done() {
			t.Fatalf("the rollout ended before the kill: %s %s", r.State, r.Reason)
		}
		return r.Step >= 1
	})
	before := b.rollout(t, ro.ID)
	a.kill(t)
	killTime := time.Now()
	t.Logf("killed fleet-a at %v, rollout at step %d (%s, %s)", killTime.Sub(start), before.Step, before.State, before.Phase)
	waitFor(t, 10*time.Second, "fleet-b leads the rollouts after the kill", func() bool { return b.rolloutLeader(t) })
	t.Logf("fleet-b leads %v after the kill", time.Since(killTime))
	var done rollout.Rollout
	waitFor(t, 30*time.Second, "the rollout complete on fleet-b", func() bool {
		done = b.rollout(t, ro.ID)
		if done.Done() && done.State != rollout.StateComplete {
			t.Fatalf("the rollout ended %s: %s", done.State, done.Reason)
		}
		return done.State == rollout.StateComplete
	})
	t.Logf("rollout complete %v after the kill", time.Since(killTime))
	if wait := 6*time.Second - time.Since(killTime); wait > 0 {
		time.Sleep(wait) // traffic from well after the kill, for the checks below
	}
	stopSim()
	sim.Wait()
	if simErr != nil {
		t.Fatal(simErr)
	}
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
	// Each device of the rollout got one update, from one leader or the other (the new leader
	// may send again, under the same id, one that shows sent: an agent ignores the repeat), and
	// runs the new model; no device got a rollback; the others got nothing.
	inRollout := map[string]bool{}
	for _, d := range devices {
		inRollout[d] = true
	}
	repeats := 0
	for _, d := range res.Devices {
		if !inRollout[d.ID] {
			if len(d.Commands) != 0 {
				t.Errorf("device %s is not in the rollout and received %v", d.ID, d.Commands)
			}
			continue
		}
		if d.Model.Version != "2.0.0" {
			t.Errorf("device %s runs %s@%s after the rollout", d.ID, d.Model.Name, d.Model.Version)
		}
		if len(d.Commands) == 0 {
			t.Errorf("device %s received no command", d.ID)
		}
		for _, id := range d.Commands {
			if id != ro.ID+"-update-"+d.ID {
				t.Errorf("device %s received %v, want only %s", d.ID, d.Commands, ro.ID+"-update-"+d.ID)
				break
			}
		}
		repeats += max(len(d.Commands)-1, 0)
	}
	t.Logf("updates sent again under the same id: %d", repeats)
	for _, d := range done.Devices {
		if d.State != rollout.DeviceActive {
			t.Errorf("device %s ends the rollout %s", d.ID, d.State)
		}
	}
}

// addModel adds yolox_nano@2.0.0 signed by key to the model catalogue in dsn.
// rolloutWorld starts a Mosquitto and a PostgreSQL for fleet instances that run rollouts,
// with a fleet signing key and a model signed by it in the catalogue.
func rolloutWorld(t testing.TB) (*testharness.Mosquitto, *testharness.Postgres, ed25519.PrivateKey) {
	t.Helper()
	mosq := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	pg := testharness.StartPostgres(t)
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	addModel(t, pg.DSN, key)
	return mosq, pg, key
}

func addModel(t testing.TB, dsn string, key ed25519.PrivateKey) {
	t.Helper()
	pc, err := postgres.OpenCatalog(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	reg, err := catalog.OpenShared(t.TempDir(), pc)
	if err != nil {
		t.Fatal(err)
	}
	base, err := vmodels.LoadManifest(filepath.Join("..", "..", "models", "yolox_nano_coco_416.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Add(data.MustPath(t, "models/yolox_nano_coco_416.onnx"),
		catalog.AddSpec{Name: "yolox_nano", Version: "2.0.0", Family: "yolox", Base: &base}, key); err != nil {
		t.Fatal(err)
	}
}

func (in *instance) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + in.http + path)
	if err != nil {
		t.Fatalf("%s: GET %s: %v", in.name, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: GET %s: %v", in.name, path, err)
	}
	return string(b)
}

// rolloutLeader reads /healthz: whether the instance runs the rollout engine.
func (in *instance) rolloutLeader(t *testing.T) bool {
	t.Helper()
	var h api.Health
	if err := json.Unmarshal([]byte(in.get(t, "/healthz")), &h); err != nil || h.Rollouts == nil || h.Rollouts.Store != "postgres" {
		t.Fatalf("%s: /healthz rollouts: %+v %v", in.name, h.Rollouts, err)
	}
	return h.Rollouts.Leader
}

func (in *instance) rollout(t *testing.T, id string) rollout.Rollout {
	t.Helper()
	var r rollout.Rollout
	if err := json.Unmarshal([]byte(in.get(t, "/api/v1/rollouts/"+id)), &r); err != nil || r.ID != id {
		t.Fatalf("%s: rollout %s: %v", in.name, id, err)
	}
	return r
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
	}
}
