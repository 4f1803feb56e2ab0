-- The device registry shared by the fleet instances (fleet/registry with a share group): one
-- row per device, its state as JSON in fleet/registry's record format, kept as bytes (bytea:
-- nothing to parse on the way in or out; convert_from(data, 'UTF8')::jsonb to query it). Each instance merges
-- what it saw into the rows under FOR UPDATE, then reloads the rows written since it last
-- read: xid is the transaction that last wrote the row, and a reader asks for the rows of
-- transactions at or after the oldest one still running at its last read, so no commit is
-- missed (a sequence number would be: numbers are taken before their commit).
CREATE TABLE vigil_devices (
	id         text        PRIMARY KEY,
	data       bytea,                   -- NULL: a row made only to be locked, never written
	xid        xid8        NOT NULL DEFAULT pg_current_xact_id(),
	updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vigil_devices_xid ON vigil_devices (xid);
