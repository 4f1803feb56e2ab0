package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-edge/vigil/fleet/postgres"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// One of two instances leads; when the leader's database session dies (as when its process
// is killed), the other takes over within a few retries.
func TestLeadershipMoves(t *testing.T) {
	pg := testharness.StartPostgres(t)
	var mu sync.Mutex
	leading := map[string]int{} // name → times it started leading
	active := map[string]bool{}
	var killed time.Time // when a's session was terminated
	var staleWrites int  // successful writes through a's first term's fence after that
	var firstFence *postgres.Fence
	run := func(name string) (context.CancelFunc, *sync.WaitGroup) {
		pool, err := postgres.Connect(ctx, pg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		c, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		l := &postgres.Leader{Pool: pool, Name: "rollouts", Retry: 100 * time.Millisecond}
		wg.Go(func() {
			defer pool.Close()
			l.Run(c, func(lctx context.Context, f *postgres.Fence) {
				mu.Lock()
				leading[name]++
				active[name] = true
				if firstFence == nil {
					firstFence = f
				}
				mu.Unlock()
				// Write as leader through the fence every 10 ms; count writes that succeed
				// while the other also leads.
				for lctx.Err() == nil {
					err := f.Do(lctx, func(c *pgx.Conn) error {
						_, err := c.Exec(lctx, "SELECT 1")
						return err
					})
					mu.Lock()
					if err == nil && f == firstFence && !killed.IsZero() {
						staleWrites++
					}
					mu.Unlock()
					time.Sleep(10 * time.Millisecond)
				}
				mu.Lock()
				delete(active, name)
				mu.Unlock()
			})
		})
		return cancel, &wg
	}
	stopA, wgA := run("a")
	waitUntil(t, func() bool { mu.Lock(); defer mu.Unlock(); return active["a"] })
	stopB, wgB := run("b")
	defer func() { stopB(); wgB.Wait() }()
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	if active["b"] {
		t.Fatal("b leads while a holds the lock")
	}
	mu.Unlock()

	// Kill a's session from the server side, as if its process died.
	conn, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND ((classid::bigint << 32) | objid::bigint) = $1`, postgres.Key("rollouts")).Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminate the leader's session: %d %v", n, err)
	}
	mu.Lock()
	killed = time.Now() // the session is gone (terminate waited for it)
	mu.Unlock()
	stopA() // a's process is gone too: it will not compete again
	start := time.Now()
	waitUntil(t, func() bool { mu.Lock(); defer mu.Unlock(); return active["b"] })
	t.Logf("b leads %v after a's session died", time.Since(start))
	wgA.Wait()
	mu.Lock()
	defer mu.Unlock()
	if staleWrites != 0 {
		t.Errorf("a wrote %d times as leader through its fence after its session died", staleWrites)
	}
	if leading["b"] != 1 {
		t.Errorf("leadership terms: %v", leading)
	}
}

func waitUntil(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}
