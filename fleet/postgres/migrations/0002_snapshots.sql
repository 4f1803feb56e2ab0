-- Event pictures (JPEG), one per event id, the newest received replacing the one before; a
-- picture goes when no record of its event is left (see Sweep).
CREATE TABLE vigil_snapshots (
	event_id    text   PRIMARY KEY,
	received_ms bigint NOT NULL,
	jpeg        bytea  NOT NULL
);
