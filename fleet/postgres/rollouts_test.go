package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-edge/vigil/fleet/postgres"
	"github.com/vigil-edge/vigil/fleet/rollout"
	"github.com/vigil-edge/vigil/fleet/rollout/rollouttest"
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
