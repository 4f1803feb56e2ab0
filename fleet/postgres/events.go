package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-edge/vigil/fleet/eventstore"
)

// EventsOptions tunes the PostgreSQL event store.
type EventsOptions struct {
	// MaxAge drops day partitions whose every record was received longer ago than this (so a
	// record lives between MaxAge and MaxAge + 1 day).
	MaxAge time.Duration
	// MaxBytes drops the oldest day partitions while the events take more than this on disk
	// (tables and indexes); the newest partition is never dropped. 0: no bound.
	MaxBytes int64
	// BatchSize bounds the records of one insert; BatchWait is how long the writer waits for
	// more records after the first of a batch.
	BatchSize int
	BatchWait time.Duration
	// SweepEvery is how often retention runs.
	SweepEvery time.Duration
	// SnapshotWait bounds how long PutSnapshot waits for its event to be stored (3 s when
	// zero): with a share group an event and its picture may reach two instances at once.
	SnapshotWait time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
}

func (o EventsOptions) withDefaults() EventsOptions {
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.BatchWait <= 0 {
		o.BatchWait = 2 * time.Millisecond
	}
	if o.SweepEvery <= 0 {
		o.SweepEvery = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SnapshotWait <= 0 {
		o.SnapshotWait = 3 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Events is the PostgreSQL-backed eventstore.Store. Puts from many goroutines are gathered by
// one writer into multi-row inserts, one transaction (and one commit) per batch; each Put
// returns once its batch committed. A record whose msg_id is already stored (by this
// instance or another) is not stored again.
type Events struct {
	pool *pgxpool.Pool
	opts EventsOptions
	log  *slog.Logger
	own  bool // Close closes the pool

	reqs   chan putReq
	stop   chan struct{} // closed by Close: Puts stop waiting to hand over
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool

	partMu sync.Mutex
	parts  map[int64]bool // day partitions known to exist, by day number
}

type putReq struct {
	r    eventstore.Record
	done chan error
}

var _ eventstore.Store = (*Events)(nil)

// OpenEvents connects to dsn (migrating the schema) and starts the store's writer and sweeper.
func OpenEvents(ctx context.Context, dsn string, opts EventsOptions) (*Events, error) {
	pool, err := Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	e := NewEvents(pool, opts)
	e.own = true
	return e, nil
}

// NewEvents starts an event store on a pool that Connect opened (and migrated). Close does
// not close the pool.
func NewEvents(pool *pgxpool.Pool, opts EventsOptions) *Events {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	e := &Events{pool: pool, opts: opts, log: opts.Logger.With("component", "events"), reqs: make(chan putReq),
		stop: make(chan struct{}), cancel: cancel, parts: map[int64]bool{}}
	e.wg.Go(func() { e.writer(ctx) })
	e.wg.Go(func() { e.sweeper(ctx) })
	return e
}

// Put implements eventstore.Store.
func (e *Events) Put(ctx context.Context, r eventstore.Record) error {
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = e.opts.Now().UTC()
	}
	req := putReq{r: r, done: make(chan error, 1)}
	select {
	case e.reqs <- req:
	case <-e.stop:
		return eventstore.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		// The batch may still commit: the record is then stored, which a retry finds by msg_id.
		return ctx.Err()
	}
}

// writer gathers Puts into batches until ctx is cancelled; then it answers what it holds.
func (e *Events) writer(ctx context.Context) {
	for {
		var batch []putReq
		select {
		case <-ctx.Done():
			return
		case r := <-e.reqs:
			batch = append(batch, r)
		}
		timer := time.NewTimer(e.opts.BatchWait)
	gather:
		for len(batch) < e.opts.BatchSize {
			select {
			case r := <-e.reqs:
				batch = append(batch, r)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		err := e.insert(context.WithoutCancel(ctx), batch)
		if err != nil {
			err = fmt.Errorf("store: put: %w", err)
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}

const dayMS = int64(24 * time.Hour / time.Millisecond)

// insert stores a batch in one transaction: msg_ids first (ON CONFLICT DO NOTHING), then the
// records whose msg_id was new.
func (e *Events) insert(ctx context.Context, batch []putReq) error {
	n := len(batch)
	var (
		received, seq, captured      = make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n)
		kind, device, camera, labels = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		rule, event, alert, msgID    = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		payload                      = make([][]byte, 0, n)
		seen                         = make(map[string]bool, n)
		days                         = map[int64]bool{}
	)
	for _, q := range batch {
		r := q.r
		if seen[r.MsgID] { // the same message twice in one batch: store it once
			continue
		}
		seen[r.MsgID] = true
		ms := r.ReceivedAt.UnixMilli()
		days[floorDiv(ms, dayMS)] = true
		ls, _ := json.Marshal(nonNil(r.Labels))
		received, seq, captured = append(received, ms), append(seq, int64(r.Seq)), append(captured, r.CapturedAt)
		kind, device, camera, labels = append(kind, r.Kind), append(device, r.Device), append(camera, r.Camera), append(labels, string(ls))
		rule, event, alert, msgID = append(rule, r.RuleID), append(event, r.EventID), append(alert, r.AlertID), append(msgID, r.MsgID)
		payload = append(payload, r.Payload)
	}
	for d := range days {
		if err := e.ensurePartition(ctx, d); err != nil {
			return err
		}
	}
	return pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
WITH input AS (
	SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
		$8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::bytea[])
		AS t(received_ms, kind, device, camera, labels, rule_id, event_id, alert_id, msg_id, seq, captured_ms, payload)
), fresh AS (
	INSERT INTO vigil_msg_seen (msg_id, received_ms) SELECT msg_id, received_ms FROM input
	ON CONFLICT (msg_id) DO NOTHING RETURNING msg_id
)
INSERT INTO vigil_events (received_ms, kind, device, camera, labels, rule_id, event_id, alert_id, msg_id, seq, captured_ms, payload)
SELECT i.received_ms, i.kind, i.device, i.camera, ARRAY(SELECT jsonb_array_elements_text(i.labels::jsonb)),
	i.rule_id, i.event_id, i.alert_id, i.msg_id, i.seq, i.captured_ms, i.payload
FROM input i JOIN fresh f ON f.msg_id = i.msg_id
ORDER BY i.received_ms`,
			received, kind, device, camera, labels, rule, event, alert, msgID, seq, captured, payload)
		return err
	})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// partitionName is the table of one UTC day: vigil_events_YYYYMMDD.
func partitionName(day int64) string {
	return "vigil_events_" + time.UnixMilli(day*dayMS).UTC().Format("20060102")
}

// partitionLock serialises partition DDL between instances.
const partitionLock = 0x76_69_67_69_6c_02

// ensurePartition creates the day's partition unless it is known to exist.
func (e *Events) ensurePartition(ctx context.Context, day int64) error {
	e.partMu.Lock()
	defer e.partMu.Unlock()
	if e.parts[day] {
		return nil
	}
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(partitionLock)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF vigil_events FOR VALUES FROM (%d) TO (%d)",
			partitionName(day), day*dayMS, (day+1)*dayMS))
		return err
	})
	if err != nil {
		return fmt.Errorf("create partition %s: %s", partitionName(day), pgError(err))
	}
	e.parts[day] = true
	return nil
}

// Query implements eventstore.Store: one indexed SQL query, newest (or oldest) first.
func (e *Events) Query(ctx context.Context, f eventstore.Filter) ([]eventstore.Record, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	eq := map[string]string{"kind": f.Kind, "device": f.Device, "camera": f.Camera, "rule_id": f.RuleID}
	for _, col := range []string{"kind", "device", "camera", "rule_id"} {
		if v := eq[col]; v != "" {
			where = append(where, col+" = "+arg(v))
		}
	}
	if f.RuleID != "" {
		where = append(where, "rule_id <> ''") // lets the partial index serve
	}
	switch {
	case f.Label != "" && f.Device != "":
		// A device's records are few: walk its index and check the label on each (the GIN
		// index would fetch the label's records of every device, millions for "person").
		where = append(where, arg(f.Label)+" = ANY(labels)")
	case f.Label != "":
		where = append(where, "labels @> ARRAY["+arg(f.Label)+"]::text[]")
	}
	if !f.Since.IsZero() {
		where = append(where, "received_ms >= "+arg(f.Since.UnixMilli()))
	}
	if !f.Until.IsZero() {
		where = append(where, "received_ms < "+arg(f.Until.UnixMilli()))
	}
	order := "DESC"
	cmp := "<"
	if f.Oldest {
		order, cmp = "ASC", ">"
	}
	if f.After != nil {
		where = append(where, "(received_ms, id) "+cmp+" ("+arg(f.After.At)+", "+arg(int64(f.After.ID))+")")
	}
	q := "SELECT id, received_ms, kind, device, camera, labels, rule_id, event_id, alert_id, msg_id, seq, captured_ms, payload FROM vigil_events"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY received_ms " + order + ", id " + order
	if f.Limit > 0 {
		q += " LIMIT " + arg(f.Limit)
	}
	rows, err := e.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, e.queryErr(err)
	}
	out := []eventstore.Record{}
	for rows.Next() {
		var r eventstore.Record
		var id, seq, received int64
		if err := rows.Scan(&id, &received, &r.Kind, &r.Device, &r.Camera, &r.Labels, &r.RuleID, &r.EventID, &r.AlertID,
			&r.MsgID, &seq, &r.CapturedAt, &r.Payload); err != nil {
			rows.Close()
			return nil, e.queryErr(err)
		}
		r.ID, r.Seq, r.ReceivedAt = uint64(id), uint64(seq), time.UnixMilli(received).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, e.queryErr(err)
	}
	return out, nil
}

func (e *Events) queryErr(err error) error {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return eventstore.ErrClosed
	}
	return fmt.Errorf("store: query: %s", pgError(err))
}

// sweeper runs Sweep every SweepEvery until ctx is cancelled.
func (e *Events) sweeper(ctx context.Context) {
	t := time.NewTicker(e.opts.SweepEvery)
	defer t.Stop()
	for {
		if _, err := e.Sweep(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("retention sweep failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep drops the day partitions that retention no longer allows and forgets their msg_ids;
// it returns the partitions dropped.
func (e *Events) Sweep(ctx context.Context) (dropped []string, err error) {
	rows, err := e.pool.Query(ctx, `SELECT c.relname, pg_total_relation_size(c.oid)
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
		WHERE p.relname = 'vigil_events' ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("store: sweep: %s", pgError(err))
	}
	type part struct {
		name string
		day  int64
		size int64
	}
	var parts []part
	var total int64
	for rows.Next() {
		var p part
		if err := rows.Scan(&p.name, &p.size); err != nil {
			rows.Close()
			return nil, err
		}
		t, err := time.Parse("20060102", strings.TrimPrefix(p.name, "vigil_events_"))
		if err != nil {
			continue // not one of ours
		}
		p.day = t.UnixMilli() / dayMS
		parts = append(parts, p)
		total += p.size
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	now := e.opts.Now().UnixMilli()
	for i, p := range parts {
		expired := e.opts.MaxAge > 0 && (p.day+1)*dayMS <= now-e.opts.MaxAge.Milliseconds()
		over := e.opts.MaxBytes > 0 && total > e.opts.MaxBytes && i < len(parts)-1
		if !expired && !over {
			break
		}
		err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(partitionLock)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+p.name); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "DELETE FROM vigil_msg_seen WHERE received_ms < $1", (p.day+1)*dayMS); err != nil {
				return err
			}
			// Pictures go with their event's last record.
			// (A picture is stored only when its event has a record, so an orphan is one whose
			// records were all dropped.)
			_, err := tx.Exec(ctx, `DELETE FROM vigil_snapshots s
				WHERE NOT EXISTS (SELECT 1 FROM vigil_events e WHERE e.event_id = s.event_id)`)
			return err
		})
		if err != nil {
			return dropped, fmt.Errorf("store: drop %s: %s", p.name, pgError(err))
		}
		e.partMu.Lock()
		delete(e.parts, p.day)
		e.partMu.Unlock()
		total -= p.size
		dropped = append(dropped, p.name)
		e.log.Info("dropped event partition", "partition", p.name, "bytes", p.size, "expired", expired)
	}
	return dropped, nil
}

// Close implements eventstore.Store: it stops the writer (answering Puts still queued with
// ErrClosed) and the sweeper, waits for them, and closes the pool it opened.
func (e *Events) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	close(e.stop)
	e.cancel()
	e.wg.Wait() // the writer answered every record it took
	if e.own {
		e.pool.Close()
	}
	return nil
}

// Pool is the store's connection pool (for tools and tests that load or inspect data).
func (e *Events) Pool() *pgxpool.Pool { return e.pool }

var _ eventstore.Snapshots = (*Events)(nil)

// PutSnapshot implements eventstore.Snapshots.
func (e *Events) PutSnapshot(ctx context.Context, eventID string, jpeg []byte) error {
	deadline := time.Now().Add(e.opts.SnapshotWait)
	for {
		tag, err := e.pool.Exec(ctx, `INSERT INTO vigil_snapshots (event_id, received_ms, jpeg)
			SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM vigil_events WHERE event_id = $1)
			ON CONFLICT (event_id) DO UPDATE SET received_ms = excluded.received_ms, jpeg = excluded.jpeg`,
			eventID, e.opts.Now().UnixMilli(), jpeg)
		if err != nil {
			return e.queryErr(err)
		}
		if tag.RowsAffected() > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return eventstore.ErrUnknownEvent
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Snapshot implements eventstore.Snapshots.
func (e *Events) Snapshot(ctx context.Context, eventID string) ([]byte, error) {
	var jpeg []byte
	err := e.pool.QueryRow(ctx, "SELECT jpeg FROM vigil_snapshots WHERE event_id = $1", eventID).Scan(&jpeg)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, eventstore.ErrNoSnapshot
	}
	if err != nil {
		return nil, e.queryErr(err)
	}
	return jpeg, nil
}
