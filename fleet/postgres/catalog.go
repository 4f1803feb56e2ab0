package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-edge/vigil/fleet/catalog"
)

// chunkSize is the size of the artifact's rows in vigil_model_chunks.
const chunkSize = 1 << 20

// Catalog keeps the model catalogue in PostgreSQL (tables vigil_models and
// vigil_model_chunks), shared by the fleet instances: a catalog.Shared.
type Catalog struct {
	pool *pgxpool.Pool
	own  bool
}

var _ catalog.Shared = (*Catalog)(nil)

// OpenCatalog connects to dsn (migrating the schema); Close closes the connections.
func OpenCatalog(ctx context.Context, dsn string) (*Catalog, error) {
	pool, err := Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &Catalog{pool: pool, own: true}, nil
}

// NewCatalog keeps the catalogue on a pool that Connect opened; Close does not close it.
func NewCatalog(pool *pgxpool.Pool) *Catalog { return &Catalog{pool: pool} }

// Close closes the connections when OpenCatalog made them.
func (c *Catalog) Close() {
	if c.own {
		c.pool.Close()
	}
}

// Insert implements catalog.Shared: the record, the manifest and every chunk in one
// transaction.
func (c *Catalog) Insert(ctx context.Context, m catalog.Model, manifest []byte, artifact io.Reader) error {
	rec, err := json.Marshal(m)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO vigil_models (name, version, record, manifest) VALUES ($1, $2, $3::jsonb, $4)",
			m.Name, m.Version, string(rec), manifest); err != nil {
			return err
		}
		buf := make([]byte, chunkSize)
		for n := 0; ; n++ {
			k, rerr := io.ReadFull(artifact, buf)
			if k > 0 {
				if _, err := tx.Exec(ctx, "INSERT INTO vigil_model_chunks (name, version, n, data) VALUES ($1, $2, $3, $4)",
					m.Name, m.Version, n, buf[:k]); err != nil {
					return err
				}
			}
			if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
				return nil
			}
			if rerr != nil {
				return fmt.Errorf("read artifact: %w", rerr)
			}
		}
	})
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "23505":
		return fmt.Errorf("%w: %s@%s", catalog.ErrExists, m.Name, m.Version)
	case err != nil:
		return fmt.Errorf("model registry: store %s@%s: %s", m.Name, m.Version, pgError(err))
	}
	return nil
}

// List implements catalog.Shared.
func (c *Catalog) List(ctx context.Context) ([]catalog.Model, error) {
	rows, err := c.pool.Query(ctx, "SELECT record::text FROM vigil_models ORDER BY name, version")
	if err != nil {
		return nil, fmt.Errorf("model registry: list: %s", pgError(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (catalog.Model, error) {
		var s string
		var m catalog.Model
		if err := row.Scan(&s); err != nil {
			return m, err
		}
		return m, json.Unmarshal([]byte(s), &m)
	})
	if err != nil {
		return nil, fmt.Errorf("model registry: list: %s", pgError(err))
	}
	return out, nil
}

// Get implements catalog.Shared.
func (c *Catalog) Get(ctx context.Context, name, version string) (catalog.Model, error) {
	var s string
	err := c.pool.QueryRow(ctx, "SELECT record::text FROM vigil_models WHERE name = $1 AND version = $2", name, version).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) {
		return catalog.Model{}, fmt.Errorf("%w: %s@%s", catalog.ErrNotFound, name, version)
	}
	if err != nil {
		return catalog.Model{}, fmt.Errorf("model registry: get %s@%s: %s", name, version, pgError(err))
	}
	var m catalog.Model
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return catalog.Model{}, fmt.Errorf("model registry: record %s@%s: %w", name, version, err)
	}
	return m, nil
}

// SetBad implements catalog.Shared.
func (c *Catalog) SetBad(ctx context.Context, name, version, reason string) error {
	tag, err := c.pool.Exec(ctx, `UPDATE vigil_models SET record = record || jsonb_build_object('bad', true, 'bad_reason', $3::text)
		WHERE name = $1 AND version = $2`, name, version, reason)
	if err != nil {
		return fmt.Errorf("model registry: mark %s@%s bad: %s", name, version, pgError(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s@%s", catalog.ErrNotFound, name, version)
	}
	return nil
}

// Fetch implements catalog.Shared: the chunks are read in one snapshot, in order.
func (c *Catalog) Fetch(ctx context.Context, name, version string, w io.Writer) (manifest []byte, err error) {
	err = pgx.BeginTxFunc(ctx, c.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT manifest FROM vigil_models WHERE name = $1 AND version = $2", name, version).Scan(&manifest); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT n, data FROM vigil_model_chunks WHERE name = $1 AND version = $2 ORDER BY n", name, version)
		if err != nil {
			return err
		}
		var n, want int
		var data []byte
		_, err = pgx.ForEachRow(rows, []any{&n, &data}, func() error {
			if n != want {
				return fmt.Errorf("chunk %d missing", want)
			}
			want++
			_, err := w.Write(data)
			return err
		})
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s@%s", catalog.ErrNotFound, name, version)
	}
	if err != nil {
		return nil, fmt.Errorf("model registry: fetch %s@%s: %s", name, version, pgError(err))
	}
	return manifest, nil
}
