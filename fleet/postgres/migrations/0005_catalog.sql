-- The model catalogue shared by the fleet instances (fleet/catalog with a shared store): one
-- row per name@version with its record (catalog.Model as JSON) and its manifest exactly as
-- signed, and the artifact's bytes in 1 MiB chunks, so that no statement moves a whole
-- 20 MB model at once. Versions are immutable: only the record's bad mark changes.
-- No key is kept here: signatures are made by the instance that adds a model, with its key file.
CREATE TABLE vigil_models (
	name     text        NOT NULL,
	version  text        NOT NULL,
	record   jsonb       NOT NULL,
	manifest bytea       NOT NULL,
	added_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (name, version)
);

CREATE TABLE vigil_model_chunks (
	name    text  NOT NULL,
	version text  NOT NULL,
	n       int   NOT NULL, -- 0, 1, 2, … in file order
	data    bytea NOT NULL,
	PRIMARY KEY (name, version, n),
	FOREIGN KEY (name, version) REFERENCES vigil_models ON DELETE CASCADE
);
