package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-edge/vigil/fleet/registry"
)

// RegistryStore keeps the device registry in PostgreSQL (table vigil_devices), shared by the
// fleet instances of a share group: a registry.Store. Each Update is one transaction that
// locks its devices' rows (FOR UPDATE, in id order, so two instances never deadlock on each
// other) and writes them with one statement; Load reads the rows written by transactions
// the last Load could not see yet.
type RegistryStore struct {
	pool *pgxpool.Pool
	own  bool

	mu    sync.Mutex
	known map[string]bool // ids whose row exists
}

var _ registry.Store = (*RegistryStore)(nil)

// OpenRegistryStore connects to dsn (migrating the schema); Close closes the connections.
func OpenRegistryStore(ctx context.Context, dsn string) (*RegistryStore, error) {
	pool, err := Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	s := NewRegistryStore(pool)
	s.own = true
	return s, nil
}

// NewRegistryStore keeps the registry on a pool that Connect opened (and migrated); Close
// does not close the pool.
func NewRegistryStore(pool *pgxpool.Pool) *RegistryStore {
	return &RegistryStore{pool: pool, known: map[string]bool{}}
}

// Load implements registry.Store. The cursor is the oldest transaction still running when
// Load read (pg_snapshot_xmin): rows it writes later are at or after it.
func (s *RegistryStore) Load(ctx context.Context, after int64) (recs []registry.Record, next int64, err error) {
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var xmin string
		if err := tx.QueryRow(ctx, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text").Scan(&xmin); err != nil {
			return err
		}
		if next, err = strconv.ParseInt(xmin, 10, 64); err != nil {
			return fmt.Errorf("snapshot xmin %q: %w", xmin, err)
		}
		rows, err := tx.Query(ctx, `SELECT id, data FROM vigil_devices
			WHERE data IS NOT NULL AND xid >= $1::text::xid8 ORDER BY id`, strconv.FormatInt(after, 10))
		if err != nil {
			return err
		}
		recs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (registry.Record, error) {
			var r registry.Record
			err := row.Scan(&r.ID, &r.Data)
			return r, err
		})
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("registry: load devices: %s", pgError(err))
	}
	s.mu.Lock()
	for _, r := range recs {
		s.known[r.ID] = true
	}
	s.mu.Unlock()
	return recs, next, nil
}

// Update implements registry.Store. A transaction that fails on a deadlock or a serialization
// conflict is tried again (up to 3 times), calling fn again.
func (s *RegistryStore) Update(ctx context.Context, ids []string, fn func(id string, old []byte) ([]byte, error)) error {
	if len(ids) == 0 {
		return nil
	}
	var err error
	for range 3 {
		if err = s.update(ctx, ids, fn); !retryable(err) {
			break
		}
	}
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return fmt.Errorf("registry: save devices: %s", pgError(err))
		}
		return err // fn's own, or the context's
	}
	s.mu.Lock()
	for _, id := range ids {
		s.known[id] = true
	}
	s.mu.Unlock()
	return nil
}

func (s *RegistryStore) update(ctx context.Context, ids []string, fn func(id string, old []byte) ([]byte, error)) error {
	s.mu.Lock()
	var missing []string
	for _, id := range ids {
		if !s.known[id] {
			missing = append(missing, id)
		}
	}
	s.mu.Unlock()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if len(missing) > 0 { // rows to lock; in id order like the locks below
			if _, err := tx.Exec(ctx, `INSERT INTO vigil_devices (id) SELECT i FROM unnest($1::text[]) AS i ORDER BY i
				ON CONFLICT DO NOTHING`, missing); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, "SELECT id, data FROM vigil_devices WHERE id = ANY($1) ORDER BY id FOR UPDATE", ids)
		if err != nil {
			return err
		}
		old := make(map[string][]byte, len(ids))
		var id string
		var data []byte
		if _, err := pgx.ForEachRow(rows, []any{&id, &data}, func() error {
			if data != nil {
				old[id] = bytes.Clone(data)
			}
			return nil
		}); err != nil {
			return err
		}
		var upIDs []string
		var upData [][]byte
		for _, id := range ids {
			v, err := fn(id, old[id])
			if err != nil {
				return err
			}
			if v != nil {
				upIDs, upData = append(upIDs, id), append(upData, v)
			}
		}
		if len(upIDs) == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE vigil_devices AS d SET data = u.data, xid = pg_current_xact_id(), updated_at = now()
			FROM unnest($1::text[], $2::bytea[]) AS u(id, data) WHERE d.id = u.id`, upIDs, upData)
		return err
	})
}

// retryable reports whether err is a deadlock or serialization failure, which a new try of
// the transaction can get past.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// Close implements registry.Store: it closes the connections when OpenRegistryStore made them.
func (s *RegistryStore) Close() error {
	if s.own {
		s.pool.Close()
	}
	return nil
}
