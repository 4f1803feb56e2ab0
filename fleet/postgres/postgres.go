// Package postgres keeps the fleet controller's shared state in PostgreSQL, so several
// vigil-fleet instances can serve one fleet: the event store (behind eventstore.Store, like the
// embedded bbolt one), the rollouts (behind rollout.Store) and the leader lock that lets one
// instance at a time run the rollout engine (Rollouts; the others answer its API).
//
//	subscriber ─▶ Recorder ─Put─▶ Events: batch writer ─COPY-free multi-row INSERT─▶ vigil_events (by day)
//	                                          ▲ many Puts, one transaction          vigil_msg_seen (msg_id)
//	API ─────────────────────Query───────────┘                                    ▲
//	sweeper ─── drops day partitions past the age, then the oldest while over the size
//
// The schema is versioned: migrations are embedded in the binary (migrations/NNNN_name.sql),
// applied in order under an advisory lock at Open, and recorded in vigil_schema_migrations. A
// database whose schema is newer than the binary is refused with a clear error rather than
// written to.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-edge/vigil/internal/redact"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered schema step.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in order. Their numbers are 1, 2, 3, … with no
// gap (checked by a test).
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %q: want NNNN_name.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// SchemaVersion is the newest schema version this binary knows.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// ErrSchemaTooNew is returned by Open when the database was migrated by a newer vigil-fleet.
var ErrSchemaTooNew = errors.New("database schema is newer than this vigil-fleet")

// migrationLock is the advisory lock key held while migrating ("vigil" + 1).
const migrationLock = 0x76_69_67_69_6c_01

// Redact returns dsn with its password hidden, for logs and errors: the URL form through
// internal/redact, plus the password query parameter and the keyword/value form
// (password=...) that PostgreSQL also accepts.
func Redact(dsn string) string {
	if strings.Contains(dsn, "://") {
		out := redact.URL(dsn)
		if u, err := url.Parse(out); err == nil && u.Query().Has("password") {
			q := u.Query()
			q.Set("password", redact.Placeholder)
			u.RawQuery = q.Encode()
			out = u.String()
		}
		return out
	}
	fields := strings.Fields(dsn)
	for i, f := range fields {
		if k, _, ok := strings.Cut(f, "="); ok && k == "password" {
			fields[i] = "password=" + redact.Placeholder
		}
	}
	return strings.Join(fields, " ")
}

// Connect opens a connection pool to dsn, checks that the server answers, and applies the
// embedded migrations. Every error names the setting (--store) and never shows the password.
func Connect(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors can quote the DSN: do not pass them on.
		return nil, fmt.Errorf("--store %s: not a valid PostgreSQL connection string", Redact(dsn))
	}
	cfg.MaxConns = max(cfg.MaxConns, 8)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(pctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("--store %s: %w", Redact(dsn), err)
	}
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		if loginRefused(err) {
			return nil, fmt.Errorf("--store %s: the database refused the login (check the user and the password in $PGPASSWORD, ~/.pgpass or the URL): %s", Redact(dsn), pgError(err))
		}
		return nil, fmt.Errorf("--store %s: cannot reach the database: %s", Redact(dsn), pgError(err))
	}
	if err := migrate(pctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("--store %s: %w", Redact(dsn), err)
	}
	return pool, nil
}

// loginRefused reports whether err is the server refusing the credentials (SQLSTATE class 28:
// invalid authorization, e.g. 28P01 a wrong password), or pgx finding no password to give.
func loginRefused(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "28")
	}
	return strings.Contains(err.Error(), "password")
}

// pgError words a connection error without the DSN (pgconn's errors can include host and
// user, never the password; we keep only the server's message where there is one).
func pgError(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Severity + ": " + pe.Message + " (SQLSTATE " + pe.Code + ")"
	}
	return err.Error()
}

// migrate applies the missing migrations, each in its own transaction, under an advisory lock
// so that instances starting together migrate once.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLock)); err != nil {
		return fmt.Errorf("schema migration lock: %s", pgError(err))
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrationLock))
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS vigil_schema_migrations (
		version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("schema migrations table: %s", pgError(err))
	}
	rows, err := conn.Query(ctx, "SELECT version FROM vigil_schema_migrations")
	if err != nil {
		return fmt.Errorf("read schema version: %s", pgError(err))
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return fmt.Errorf("read schema version: %s", pgError(err))
	}
	current := 0
	done := map[int]bool{}
	for _, v := range applied {
		current = max(current, v)
		done[v] = true
	}
	newest := ms[len(ms)-1].version
	if current > newest {
		return fmt.Errorf("%w: the database is at schema version %d, this binary knows up to %d: run the newer vigil-fleet (or restore a backup)", ErrSchemaTooNew, current, newest)
	}
	// Every migration not applied yet, in order: one numbered below the newest applied (two
	// branches that each added one) is applied too rather than skipped.
	for _, m := range ms {
		if done[m.version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO vigil_schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("schema migration %04d_%s: %s", m.version, m.name, pgError(err))
		}
	}
	return nil
}
