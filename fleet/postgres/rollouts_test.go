package postgres_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-edge/vigil/fleet/catalog"
	"github.com/vigil-edge/vigil/fleet/postgres"
	"github.com/vigil-edge/vigil/fleet/registry"
	"github.com/vigil-edge/vigil/fleet/rollout"
	"github.com/vigil-edge/vigil/fleet/rollout/rollouttest"
	"github.com/vigil-edge/vigil/fleet/subscriber"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// leaderStore is a RolloutStore of a real leadership term: Close ends the term and the pool.
type leaderStore struct {
	rollout.Store
	end func()
}

func (s leaderStore) Close() error {
	err := s.Store.Close()
	s.end()
	return err
}

// lead takes the rollouts' leader lock on dsn and returns its fence and how to give it up.
func lead(t *testing.T, dsn string) (*postgres.Fence, func()) {
	t.Helper()
	pool, err := postgres.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithCancel(ctx)
	fences := make(chan *postgres.Fence, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l := &postgres.Leader{Pool: pool, Name: postgres.LeaderRollouts, Retry: 50 * time.Millisecond}
		l.Run(c, func(lctx context.Context, f *postgres.Fence) {
			fences <- f
			<-lctx.Done()
		})
	}()
	end := func() { cancel(); <-done; pool.Close() }
	select {
	case f := <-fences:
		return f, end
	case <-time.After(10 * time.Second):
		end()
		t.Fatal("no leadership within 10 s")
		return nil, nil
	}
}

func TestRolloutStoreConformance(t *testing.T) {
	pg := testharness.StartPostgres(t)
	dbs := map[string]string{}
	rollouttest.Run(t, func(t *testing.T, name string) rollout.Store {
		dsn, ok := dbs[name]
		if !ok {
			dsn = pg.CreateDB("ro_" + name)
			dbs[name] = dsn
		}
		f, end := lead(t, dsn)
		return leaderStore{Store: postgres.RolloutStore(f), end: end}
	})
}

// A leader whose session died cannot save: what it saved before stays, nothing after.
func TestStaleLeaderCannotSaveRollouts(t *testing.T) {
	pg := testharness.StartPostgres(t)
	f, end := lead(t, pg.DSN)
	defer end()
	s := postgres.RolloutStore(f)
	r := rollout.Rollout{ID: "ro-1", State: rollout.StateCanary, CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
		Devices: []rollout.DeviceProgress{{ID: "d1", State: rollout.DeviceSent}}}
	if err := s.Save(ctx, []rollout.Rollout{r}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND ((classid::bigint << 32) | objid::bigint) = $1`, postgres.Key(postgres.LeaderRollouts)).Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminate the leader's session: %d %v", n, err)
	}
	stale := r
	stale.State = rollout.StateRolledBack
	if err := s.Save(ctx, []rollout.Rollout{stale}); err == nil {
		t.Fatal("a leader whose session died saved a rollout")
	}
	var state string
	if err := conn.QueryRow(ctx, "SELECT state FROM vigil_rollouts WHERE id = 'ro-1'").Scan(&state); err != nil || state != rollout.StateCanary {
		t.Fatalf("stored state %q %v, want %q (the stale write refused)", state, err, rollout.StateCanary)
	}
	if _, err := s.Load(ctx); err == nil || !strings.Contains(err.Error(), "PostgreSQL") {
		t.Fatalf("load through the dead session: %v", err)
	}
}

// newRollouts starts the rollout side of one fleet instance on dsn: a real MQTT connection
// (the commands' publisher, feeding the rollouts), the shared model catalogue, an in-memory
// registry. Stopped at the test's end, or by the returned stop.
func newRollouts(t testing.TB, name, broker, dsn string, key ed25519.PrivateKey) (*postgres.Rollouts, func()) {
	t.Helper()
	var ro *postgres.Rollouts
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sub, err := subscriber.New(subscriber.Config{BrokerURL: broker, ClientID: wire.FleetClientID(name), RetryInterval: 200 * time.Millisecond,
		Logger: log},
		subscriber.HandlerFunc(func(m *wire.Decoded) error {
			mu.Lock()
			r := ro
			mu.Unlock()
			if r != nil {
				r.Feed(m)
			}
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	pc, err := postgres.OpenCatalog(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	models, err := catalog.OpenShared(t.TempDir(), pc)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := postgres.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	r, err := postgres.StartRollouts(postgres.RolloutsConfig{Pool: pool, Retry: 100 * time.Millisecond, Wait: time.Second,
		Poll: 20 * time.Millisecond, Logger: log, Engine: rollout.Config{Publisher: sub, Key: key, Models: models,
			Devices: registry.New(registry.Options{}), Tick: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	ro = r
	mu.Unlock()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = r.Close()
			pool.Close()
			pc.Close()
			_ = sub.Close()
		})
	}
	t.Cleanup(stop)
	return r, stop
}

// The instance that does not lead answers every rollout call through the leader, with the
// leader's errors; when the leader stops, the other takes over the stored rollouts; when no
// instance can lead, a call fails with ErrUnavailable and changes nothing.
func TestRolloutCallsOnEveryInstance(t *testing.T) {
	mosq, pg, key := rolloutWorld(t)
	a, stopA := newRollouts(t, "fleet-a", mosq.URL, pg.DSN, key)
	waitFor(t, 10*time.Second, "fleet-a leads", a.Leading)
	b, stopB := newRollouts(t, "fleet-b", mosq.URL, pg.DSN, key)
	time.Sleep(300 * time.Millisecond) // three tries of the lock
	if b.Leading() {
		t.Fatal("both instances lead")
	}

	created, err := b.Create(rollout.Spec{Model: "yolox_nano@2.0.0", Devices: "d1,d2", Canary: 1})
	if err != nil {
		t.Fatalf("create on the instance that does not lead: %v", err)
	}
	if got, ok := a.Get(created.ID); !ok || got.Spec.Model != "yolox_nano@2.0.0" || len(got.Devices) != 2 {
		t.Fatalf("the leader's view of the new rollout: %v %+v", ok, got)
	}
	waitFor(t, 5*time.Second, "fleet-b reads the canary from PostgreSQL", func() bool {
		got, ok, err := b.GetErr(created.ID)
		return err == nil && ok && got.State == rollout.StateCanary
	})
	if _, err := b.Create(rollout.Spec{Model: "yolox_nano@2.0.0", Devices: "d2", Canary: 1}); !errors.Is(err, rollout.ErrState) ||
		!strings.Contains(err.Error(), "unfinished rollout "+created.ID) {
		t.Fatalf("a device already in a rollout, asked of fleet-b: %v, want the leader's ErrState", err)
	}
	if _, err := b.Pause("ro-nope"); !errors.Is(err, rollout.ErrNotFound) {
		t.Fatalf("pause an unknown rollout on fleet-b: %v, want ErrNotFound", err)
	}
	for _, step := range []struct {
		call func(string) (rollout.Rollout, error)
		want string
	}{{b.Pause, rollout.StatePaused}, {b.Resume, rollout.StateCanary}, {b.Pause, rollout.StatePaused}} {
		got, err := step.call(created.ID)
		if err != nil || got.State != step.want {
			t.Fatalf("on fleet-b: %s %v, want %s", got.State, err, step.want)
		}
		if r, _ := a.Get(created.ID); r.State != step.want {
			t.Fatalf("the leader shows %s, want %s", r.State, step.want)
		}
	}
	if list, err := b.ListErr(); err != nil || len(list) != 1 || list[0].State != rollout.StatePaused {
		t.Fatalf("list on fleet-b: %v %+v", err, list)
	}

	// The leader stops: fleet-b takes the lock and the stored, paused rollout.
	stopA()
	waitFor(t, 10*time.Second, "fleet-b leads after fleet-a stopped", b.Leading)
	if got, ok := b.Get(created.ID); !ok || got.State != rollout.StatePaused {
		t.Fatalf("fleet-b's engine: %v %s", ok, got.State)
	}

	// No instance can lead (another session holds the lock): a call changes nothing.
	stopB()
	conn, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", postgres.Key(postgres.LeaderRollouts)); err != nil {
		t.Fatal(err)
	}
	c, _ := newRollouts(t, "fleet-c", mosq.URL, pg.DSN, key)
	start := time.Now()
	if _, err := c.Abort(created.ID); !errors.Is(err, rollout.ErrUnavailable) || !strings.Contains(err.Error(), "no fleet instance leads") {
		t.Fatalf("abort with no leader: %v, want ErrUnavailable", err)
	}
	t.Logf("refused after %v", time.Since(start))
	var pending int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM vigil_rollout_requests WHERE state IN ('pending', 'taken')").Scan(&pending); err != nil || pending != 0 {
		t.Fatalf("calls left for a leader to come: %d %v", pending, err)
	}
	if got, ok, err := c.GetErr(created.ID); err != nil || !ok || got.State != rollout.StatePaused {
		t.Fatalf("after the refused abort: %v %v %s", err, ok, got.State)
	}
	// The lock is free again: fleet-c leads.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", postgres.Key(postgres.LeaderRollouts)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "fleet-c leads once the lock is free", c.Leading)
	if got, err := c.Abort(created.ID); err != nil || got.State != rollout.StateAborted {
		t.Fatalf("abort on the new leader: %s %v", got.State, err)
	}
}

// BenchmarkRolloutCall measures one pause+resume pair asked of the leader (its engine) and of
// an instance that does not lead (through vigil_rollout_requests; the leader looks every
// 20 ms here, 100 ms by default).
func BenchmarkRolloutCall(b *testing.B) {
	mosq := testharness.StartMosquitto(b, testharness.MosquittoOptions{})
	pg := testharness.StartPostgres(b)
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	addModel(b, pg.DSN, key)
	leader, _ := newRollouts(b, "fleet-a", mosq.URL, pg.DSN, key)
	for deadline := time.Now().Add(10 * time.Second); !leader.Leading(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("no leader")
		}
	}
	follower, _ := newRollouts(b, "fleet-b", mosq.URL, pg.DSN, key)
	ro, err := leader.Create(rollout.Spec{Model: "yolox_nano@2.0.0", Devices: "d1", Canary: 1})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		r    *postgres.Rollouts
	}{{"leader", leader}, {"follower", follower}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.r.Pause(ro.ID); err != nil {
					b.Fatal(err)
				}
				if _, err := c.r.Resume(ro.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
