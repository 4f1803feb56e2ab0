-- Events, alerts and sampled detections, partitioned by the day the fleet received them
-- (UTC), so retention drops whole partitions instead of deleting rows.
CREATE SEQUENCE vigil_events_id_seq AS bigint;

CREATE TABLE vigil_events (
	id          bigint NOT NULL DEFAULT nextval('vigil_events_id_seq'),
	received_ms bigint NOT NULL, -- the fleet's clock: order, time filters, age
	kind        text   NOT NULL,
	device      text   NOT NULL,
	camera      text   NOT NULL,
	labels      text[] NOT NULL,
	rule_id     text   NOT NULL DEFAULT '',
	event_id    text   NOT NULL DEFAULT '',
	alert_id    text   NOT NULL DEFAULT '',
	msg_id      text   NOT NULL,
	seq         bigint NOT NULL,
	captured_ms bigint NOT NULL, -- the device's clock: data only
	payload     bytea  NOT NULL
) PARTITION BY RANGE (received_ms);

-- One index per shape of API query: the time range alone, and each equality filter with the
-- time order behind it, so a LIMIT query reads only the rows it returns (plus the filtered).
CREATE INDEX vigil_events_time    ON vigil_events (received_ms, id);
CREATE INDEX vigil_events_device  ON vigil_events (device, camera, received_ms, id);
CREATE INDEX vigil_events_device2 ON vigil_events (device, received_ms, id);
CREATE INDEX vigil_events_kind    ON vigil_events (kind, received_ms, id);
CREATE INDEX vigil_events_rule    ON vigil_events (rule_id, received_ms, id) WHERE rule_id <> '';
CREATE INDEX vigil_events_event   ON vigil_events (event_id) WHERE event_id <> '';
CREATE INDEX vigil_events_labels  ON vigil_events USING gin (labels);

-- msg_ids stored, for idempotent inserts across partitions and fleet instances: a message
-- delivered twice (to two instances of a shared subscription, or again after a reconnect)
-- is stored once. Rows age out with the events.
CREATE TABLE vigil_msg_seen (
	msg_id      text   PRIMARY KEY,
	received_ms bigint NOT NULL
);
CREATE INDEX vigil_msg_seen_time ON vigil_msg_seen (received_ms);
