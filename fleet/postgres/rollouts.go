package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-edge/vigil/fleet/rollout"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// LeaderRollouts names the leader lock of the rollout engine (see Leader).
const LeaderRollouts = "rollouts"

const (
	// replayWindow is how old a device result or telemetry report kept by an instance that
	// does not lead may be, to be given to the engine when the instance starts leading.
	replayWindow = 30 * time.Second
	// maxRecent bounds the messages an instance that does not lead keeps for that.
	maxRecent = 20000
	// answerPoll is how often a call made on an instance that does not lead looks for the
	// leader's answer; answerGrace how long it waits for one after the leader took the call.
	answerPoll  = 50 * time.Millisecond
	answerGrace = 10 * time.Second
	// requestsKept is how long answered calls stay in vigil_rollout_requests.
	requestsKept = time.Hour
)

// RolloutStore is the rollout.Store of one leadership term: it reads and writes vigil_rollouts
// through f, the session that holds the leader lock, so that once the session (and with it the
// lock) is gone every Save fails and the engine sends nothing more. Close does not end the
// session (the Leader owns it).
func RolloutStore(f *Fence) rollout.Store { return fencedStore{f} }

type fencedStore struct{ f *Fence }

func (s fencedStore) Load(ctx context.Context) ([]rollout.Rollout, error) {
	var out []rollout.Rollout
	err := s.f.Do(ctx, func(c *pgx.Conn) error {
		var err error
		out, err = scanRollouts(c.Query(ctx, "SELECT body FROM vigil_rollouts ORDER BY created_at, id"))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("rollout: load from PostgreSQL: %s", pgError(err))
	}
	return out, nil
}

func (s fencedStore) Save(ctx context.Context, rs []rollout.Rollout) error {
	if len(rs) == 0 {
		return nil
	}
	bodies := make([]json.RawMessage, len(rs))
	for i := range rs {
		b, err := json.Marshal(&rs[i])
		if err != nil {
			return fmt.Errorf("rollout: save %s: %w", rs[i].ID, err)
		}
		bodies[i] = b
	}
	err := s.f.Do(ctx, func(c *pgx.Conn) error {
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			for i := range rs {
				if _, err := tx.Exec(ctx, `INSERT INTO vigil_rollouts (id, created_at, state, body) VALUES ($1, $2, $3, $4)
					ON CONFLICT (id) DO UPDATE SET state = excluded.state, body = excluded.body, saved_at = now()`,
					rs[i].ID, rs[i].CreatedAt, rs[i].State, bodies[i]); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("rollout: save to PostgreSQL: %s", pgError(err))
	}
	return nil
}

func (fencedStore) Close() error { return nil }

func scanRollouts(rows pgx.Rows, err error) ([]rollout.Rollout, error) {
	if err != nil {
		return nil, err
	}
	var out []rollout.Rollout
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return nil, err
		}
		var r rollout.Rollout
		if err := json.Unmarshal(b, &r); err != nil {
			rows.Close()
			return nil, fmt.Errorf("stored rollout: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RolloutsConfig configures Rollouts.
type RolloutsConfig struct {
	Pool *pgxpool.Pool // required; Rollouts does not close it
	// Engine configures the engine this instance runs while it leads; Store is set for each
	// term (RolloutStore). Create checks the model and devices here, on the instance asked.
	Engine rollout.Config
	// Retry is how often an instance that does not lead tries the leader lock, and the leader
	// checks its session (1 s when zero).
	Retry time.Duration
	// Wait bounds how long a call on an instance that does not lead waits for the leader to
	// take it (10 s when zero); then it fails with rollout.ErrUnavailable, changing nothing.
	Wait time.Duration
	// Poll is how often the leader looks for calls made on other instances (100 ms when zero).
	Poll   time.Duration
	Logger *slog.Logger
}

// Rollouts is the rollout API of one of several fleet instances sharing a PostgreSQL database.
// The instance that holds the leader lock (LeaderRollouts) runs the rollout engine, which
// keeps its state in vigil_rollouts through the lock's session; every instance answers:
//
//	API call ─▶ leading? ─yes─▶ the engine (Create, Pause, …; List and Get from its view)
//	              │ no
//	              ├─ List, Get: SELECT … FROM vigil_rollouts (the leader's last save)
//	              └─ Create, Pause, Resume, Abort: INSERT INTO vigil_rollout_requests
//	                    ─▶ the leader takes it (Poll) ─▶ engine.Apply ─▶ its answer ─▶ the caller
//
// When the leader dies its session ends, and with it the lock: another instance takes the lock
// at its next try (Retry), loads the rollouts and continues them from their stored state. Each
// instance sees every device's command results and telemetry (they are not shared out, see
// fleet.otaKinds); one that does not lead keeps those of the last replayWindow and hands them
// to its engine when it starts leading, so a result that arrived while the leader changed is
// not lost.
//
// Its methods may be called concurrently; Close it once.
type Rollouts struct {
	cfg    RolloutsConfig
	log    *slog.Logger
	leader *Leader
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	eng    *rollout.Engine // while leading
	recent []recentMsg     // while not leading
}

type recentMsg struct {
	at  time.Time
	msg *wire.Decoded
}

// StartRollouts starts competing for the leader lock; it returns at once.
func StartRollouts(cfg RolloutsConfig) (*Rollouts, error) {
	if cfg.Pool == nil {
		return nil, errors.New("rollout: no database pool")
	}
	if cfg.Engine.Publisher == nil || cfg.Engine.Models == nil || cfg.Engine.Devices == nil {
		return nil, errors.New("rollout: a publisher, models and devices are required")
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 10 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Engine.Logger == nil {
		cfg.Engine.Logger = cfg.Logger
	}
	log := cfg.Logger.With("component", "rollout")
	ctx, cancel := context.WithCancel(context.Background())
	r := &Rollouts{cfg: cfg, log: log, cancel: cancel, done: make(chan struct{}),
		leader: &Leader{Pool: cfg.Pool, Name: LeaderRollouts, Retry: cfg.Retry, Log: log}}
	go func() {
		defer close(r.done)
		r.leader.Run(ctx, r.lead)
	}()
	return r, nil
}

// Close stops leading (the engine saves its state and stops) and competing for the lock.
func (r *Rollouts) Close() error {
	r.cancel()
	<-r.done
	return nil
}

// Leading reports whether this instance runs the rollout engine now.
func (r *Rollouts) Leading() bool { return r.engine() != nil }

// Connected reports whether the commands' MQTT connection is up.
func (r *Rollouts) Connected() bool { return r.cfg.Engine.Publisher.Connected() }

func (r *Rollouts) engine() *rollout.Engine {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng
}

// lead runs one leadership term: an engine on the state stored, fed the messages kept while
// not leading, answering the calls of other instances until ctx ends.
func (r *Rollouts) lead(ctx context.Context, f *Fence) {
	ecfg := r.cfg.Engine
	ecfg.Store = RolloutStore(f)
	var eng *rollout.Engine
	for {
		var err error
		if eng, err = rollout.New(ecfg); err == nil { // loads the stored rollouts
			break
		}
		r.log.Error("start the rollout engine", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.cfg.Retry):
		}
	}
	// The kept messages go in before Start: the engine's first step applies them before it
	// sends again what the stored state shows sent (rollout.Machine.Resend).
	r.mu.Lock()
	replayed := 0
	for _, m := range r.recent {
		if time.Since(m.at) <= replayWindow {
			eng.Feed(m.msg)
			replayed++
		}
	}
	r.recent = nil
	if err := eng.Start(); err != nil { // only fails when started twice
		r.mu.Unlock()
		r.log.Error("start the rollout engine", "err", err)
		_ = eng.Close()
		return
	}
	r.eng = eng
	r.mu.Unlock()
	r.log.Info("running the rollouts", "rollouts", len(eng.List()), "replayed_messages", replayed)

	r.serveRequests(ctx, f, eng)

	r.mu.Lock()
	r.eng = nil
	r.mu.Unlock()
	if err := eng.Close(); err != nil {
		r.log.Warn("stop the rollout engine", "err", err)
	}
	r.log.Info("no longer running the rollouts")
}

// serveRequests applies the calls other instances stored, until ctx ends.
func (r *Rollouts) serveRequests(ctx context.Context, f *Fence, eng *rollout.Engine) {
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	var swept time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		reqs, err := takeRequests(ctx, f)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("read the rollout calls of other instances", "err", err)
			}
			continue
		}
		for _, q := range reqs {
			ro, err := eng.Apply(q.req)
			if err := answer(ctx, f, q.id, ro, err); err != nil && ctx.Err() == nil {
				r.log.Warn("answer a rollout call", "request", q.id, "err", err)
			}
		}
		if time.Since(swept) > time.Minute {
			swept = time.Now()
			err := f.Do(ctx, func(c *pgx.Conn) error {
				_, err := c.Exec(ctx, "DELETE FROM vigil_rollout_requests WHERE created_at < now() - $1::interval", requestsKept.String())
				return err
			})
			if err != nil && ctx.Err() == nil {
				r.log.Warn("forget old rollout calls", "err", err)
			}
		}
	}
}

type storedRequest struct {
	id  int64
	req rollout.Request
}

// takeRequests marks the pending calls taken and returns them, oldest first.
func takeRequests(ctx context.Context, f *Fence) ([]storedRequest, error) {
	var out []storedRequest
	err := f.Do(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, "UPDATE vigil_rollout_requests SET state = 'taken' WHERE state = 'pending' RETURNING id, body")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var q storedRequest
			var b []byte
			if err := rows.Scan(&q.id, &b); err != nil {
				return err
			}
			if err := json.Unmarshal(b, &q.req); err != nil {
				q.req = rollout.Request{Op: "unreadable: " + err.Error()} // answered as invalid
			}
			out = append(out, q)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("%s", pgError(err))
	}
	// UPDATE … RETURNING has no order.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].id < out[j-1].id; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// errorKinds maps the engine's errors to their stored names and back.
var errorKinds = map[string]error{"invalid": rollout.ErrInvalid, "not_found": rollout.ErrNotFound,
	"state": rollout.ErrState, "unavailable": rollout.ErrUnavailable}

func answer(ctx context.Context, f *Fence, id int64, ro rollout.Rollout, err error) error {
	var result json.RawMessage
	kind, msg := "", ""
	if err != nil {
		msg, kind = err.Error(), "other"
		for k, e := range errorKinds {
			if errors.Is(err, e) {
				kind = k
			}
		}
	} else {
		b, merr := json.Marshal(&ro)
		if merr != nil {
			return merr
		}
		result = b
	}
	return f.Do(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, `UPDATE vigil_rollout_requests SET state = 'done', result = $2, error_kind = $3, error = $4,
			answered_at = now() WHERE id = $1`, id, result, kind, msg)
		return err
	})
}

// answerError is the leader's error, as the caller's instance gets it back.
type answerError struct {
	kind error // nil: none of the engine's sentinels
	msg  string
}

func (e *answerError) Error() string { return e.msg }
func (e *answerError) Unwrap() error { return e.kind }

// submit stores a call for the leader and waits for its answer.
func (r *Rollouts) submit(req rollout.Request) (rollout.Rollout, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Wait+answerGrace)
	defer cancel()
	body, err := json.Marshal(&req)
	if err != nil {
		return rollout.Rollout{}, fmt.Errorf("rollout: %w", err)
	}
	pool := r.cfg.Pool
	var id int64
	if err := pool.QueryRow(ctx, "INSERT INTO vigil_rollout_requests (body) VALUES ($1) RETURNING id", json.RawMessage(body)).Scan(&id); err != nil {
		return rollout.Rollout{}, fmt.Errorf("%w: cannot store the %s call for the leading instance: %s", rollout.ErrUnavailable, req.Op, pgError(err))
	}
	deadline := time.Now().Add(r.cfg.Wait)
	taken := false
	for {
		select {
		case <-ctx.Done():
			return rollout.Rollout{}, fmt.Errorf("%w: the leading instance took the %s call of rollout %s but gave no answer "+
				"within %v (it may have stopped): see GET /api/v1/rollouts/%s", rollout.ErrUnavailable, req.Op, req.ID, answerGrace, req.ID)
		case <-time.After(answerPoll):
		}
		var state, kind, msg string
		var result []byte
		if err := pool.QueryRow(ctx, "SELECT state, result, error_kind, error FROM vigil_rollout_requests WHERE id = $1", id).
			Scan(&state, &result, &kind, &msg); err != nil {
			if ctx.Err() != nil {
				continue // answered by the case above
			}
			return rollout.Rollout{}, fmt.Errorf("%w: read the answer to the %s call: %s", rollout.ErrUnavailable, req.Op, pgError(err))
		}
		switch state {
		case "done":
			if kind != "" {
				return rollout.Rollout{}, &answerError{kind: errorKinds[kind], msg: msg}
			}
			var ro rollout.Rollout
			if err := json.Unmarshal(result, &ro); err != nil {
				return rollout.Rollout{}, fmt.Errorf("rollout: the leader's answer: %w", err)
			}
			return ro, nil
		case "taken":
			taken = true
		}
		if !taken && time.Now().After(deadline) {
			tag, err := pool.Exec(ctx, "UPDATE vigil_rollout_requests SET state = 'cancelled' WHERE id = $1 AND state = 'pending'", id)
			if err == nil && tag.RowsAffected() == 1 {
				return rollout.Rollout{}, fmt.Errorf("%w: no fleet instance leads the rollouts now (the leader lock is free or "+
					"changing hands), so the %s call was not made: try again", rollout.ErrUnavailable, req.Op)
			}
			taken = err == nil // taken meanwhile: wait for its answer
		}
	}
}

// call applies req on this instance's engine when it leads, else through the leader.
func (r *Rollouts) call(req rollout.Request) (rollout.Rollout, error) {
	if eng := r.engine(); eng != nil {
		return eng.Apply(req)
	}
	return r.submit(req)
}

// Create checks spec here (model, devices) and has the leader store the rollout.
func (r *Rollouts) Create(spec rollout.Spec) (rollout.Rollout, error) {
	req, err := rollout.Prepare(r.cfg.Engine, spec)
	if err != nil {
		return rollout.Rollout{}, err
	}
	return r.call(req)
}

// Pause pauses a rollout (see rollout.Engine.Pause).
func (r *Rollouts) Pause(id string) (rollout.Rollout, error) {
	return r.call(rollout.Request{Op: rollout.OpPause, ID: id})
}

// Resume resumes a paused rollout (see rollout.Engine.Resume).
func (r *Rollouts) Resume(id string) (rollout.Rollout, error) {
	return r.call(rollout.Request{Op: rollout.OpResume, ID: id})
}

// Abort aborts a rollout (see rollout.Engine.Abort).
func (r *Rollouts) Abort(id string) (rollout.Rollout, error) {
	return r.call(rollout.Request{Op: rollout.OpAbort, ID: id})
}

// ListErr returns every rollout, oldest first: the engine's view on the leader, the leader's
// last save elsewhere.
func (r *Rollouts) ListErr() ([]rollout.Rollout, error) {
	if eng := r.engine(); eng != nil {
		return eng.List(), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rs, err := scanRollouts(r.cfg.Pool.Query(ctx, "SELECT body FROM vigil_rollouts ORDER BY created_at, id"))
	if err != nil {
		return nil, fmt.Errorf("%w: read the rollouts: %s", rollout.ErrUnavailable, pgError(err))
	}
	return rs, nil
}

// GetErr returns one rollout, as ListErr.
func (r *Rollouts) GetErr(id string) (rollout.Rollout, bool, error) {
	if eng := r.engine(); eng != nil {
		ro, ok := eng.Get(id)
		return ro, ok, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rs, err := scanRollouts(r.cfg.Pool.Query(ctx, "SELECT body FROM vigil_rollouts WHERE id = $1", id))
	if err != nil {
		return rollout.Rollout{}, false, fmt.Errorf("%w: read rollout %s: %s", rollout.ErrUnavailable, id, pgError(err))
	}
	if len(rs) == 0 {
		return rollout.Rollout{}, false, nil
	}
	return rs[0], true, nil
}

// List is ListErr without its error (logged; an empty list then).
func (r *Rollouts) List() []rollout.Rollout {
	rs, err := r.ListErr()
	if err != nil {
		r.log.Warn("list rollouts", "err", err)
	}
	return rs
}

// Get is GetErr without its error (logged; not found then).
func (r *Rollouts) Get(id string) (rollout.Rollout, bool) {
	ro, ok, err := r.GetErr(id)
	if err != nil {
		r.log.Warn("get rollout", "err", err)
	}
	return ro, ok
}

// Feed hands a device message to the engine when this instance leads; otherwise it keeps
// command results and telemetry of the last replayWindow for a term to come. It never blocks
// on I/O.
func (r *Rollouts) Feed(m *wire.Decoded) {
	switch m.Msg.(type) {
	case *wire.CmdResult, *wire.Telemetry:
	default:
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.eng != nil {
		r.eng.Feed(m)
		return
	}
	now := time.Now()
	old := 0
	for old < len(r.recent) && now.Sub(r.recent[old].at) > replayWindow {
		old++
	}
	if len(r.recent)-old >= maxRecent {
		old++
	}
	r.recent = r.recent[old:] // append reallocates once the front is used up: amortised O(1)
	r.recent = append(r.recent, recentMsg{at: now, msg: m})
}
