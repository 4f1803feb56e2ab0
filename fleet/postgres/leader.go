package postgres

import (
	"context"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Leader holds a PostgreSQL session advisory lock named by a string, so that one instance
// at a time runs a job (the rollout engine). The lock lives as long as the database session
// that took it: when the holder dies, PostgreSQL drops its session and another instance takes
// the lock at its next try.
//
// Run tries every Retry; while it holds the lock it checks the session every Retry and calls
// lead with a context that is cancelled as soon as the lock may be lost (the session failed,
// or Run's ctx ended). lead is never called twice at once.
//
// A holder whose session died while its process lives (a network partition) learns it at its
// next check, up to Retry later, while another instance may already lead: lead gets the
// Fence to write its state through the session that holds the lock: a dead session writes
// nothing.
type Leader struct {
	Pool  *pgxpool.Pool
	Name  string        // e.g. "rollouts"
	Retry time.Duration // 1 s when zero
	Log   *slog.Logger

	mu      sync.Mutex
	leading bool
}

// Key is the advisory lock key of a name.
func Key(name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("vigil-leader/" + name))
	return int64(h.Sum64())
}

// Leading reports whether this instance holds the lock now.
func (l *Leader) Leading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leading
}

func (l *Leader) set(v bool) {
	l.mu.Lock()
	l.leading = v
	l.mu.Unlock()
}

// Run competes for the lock until ctx ends, calling lead while it holds it.
func (l *Leader) Run(ctx context.Context, lead func(ctx context.Context, f *Fence)) {
	retry := l.Retry
	if retry <= 0 {
		retry = time.Second
	}
	log := l.Log
	if log == nil {
		log = slog.Default()
	}
	key := Key(l.Name)
	for ctx.Err() == nil {
		if l.hold(ctx, key, retry, log, lead) {
			continue // lost it: try again at once
		}
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}

// hold tries the lock once; when it gets it, it leads until the session fails or ctx ends,
// and reports true.
func (l *Leader) hold(ctx context.Context, key int64, retry time.Duration, log *slog.Logger, lead func(context.Context, *Fence)) bool {
	conn, err := l.Pool.Acquire(ctx)
	if err != nil {
		return false
	}
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&got); err != nil || !got {
		conn.Release()
		return false
	}
	// This connection now carries the lock: it never goes back to the pool.
	raw := conn.Hijack()
	defer raw.Close(context.WithoutCancel(ctx))
	log.Info("leading", "job", l.Name)
	l.set(true)
	defer l.set(false)
	fence := &Fence{conn: raw}
	leadCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		lead(leadCtx, fence)
	}()
	t := time.NewTicker(retry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			cancel()
			<-done
			return true
		case <-t.C:
			pctx, pcancel := context.WithTimeout(ctx, retry)
			err := fence.Do(pctx, func(c *pgx.Conn) error { return c.Ping(pctx) })
			pcancel()
			if err != nil && ctx.Err() == nil {
				log.Warn("lost the leader lock's database session; stepping down", "job", l.Name, "err", err)
				cancel()
				<-done
				return true
			}
		}
	}
}

// Fence runs work on the database session that holds a Leader's lock, one call at a time: if
// the session died (and with it the lock), the work fails instead of acting as a leader that
// is no longer one.
type Fence struct {
	mu   sync.Mutex
	conn *pgx.Conn
}

// Do runs fn with the lock's connection.
func (f *Fence) Do(ctx context.Context, fn func(*pgx.Conn) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn(f.conn)
}
