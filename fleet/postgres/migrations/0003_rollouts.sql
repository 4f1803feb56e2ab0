-- Rollouts, one row per rollout (its whole state as JSON, as the engine keeps it), written only
-- by the instance that leads the rollouts (through the session that holds the leader lock)
-- and read by every instance for the API.
CREATE TABLE vigil_rollouts (
	id         text        PRIMARY KEY,
	created_at timestamptz NOT NULL,
	state      text        NOT NULL,
	body       jsonb       NOT NULL,
	saved_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vigil_rollouts_created ON vigil_rollouts (created_at, id);

-- Operator calls (create, pause, resume, abort) made on an instance that does not lead, for the
-- leader to apply: pending → taken (by the leader) → done (with its answer), or cancelled by
-- the asking instance when no leader took it in time.
CREATE TABLE vigil_rollout_requests (
	id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	body        jsonb       NOT NULL,
	state       text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'taken', 'done', 'cancelled')),
	result      jsonb,
	error_kind  text        NOT NULL DEFAULT '',
	error       text        NOT NULL DEFAULT '',
	created_at  timestamptz NOT NULL DEFAULT now(),
	answered_at timestamptz
);
CREATE INDEX vigil_rollout_requests_pending ON vigil_rollout_requests (id) WHERE state = 'pending';
